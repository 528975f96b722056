"""Time and memory of every stage of the paper at the paper's shapes (configs/paper/*.toml), and what the whole
stage would take: randomly initialised networks, fixed seeds, each stage run through the library's own code.

    OMP_NUM_THREADS=1 python benchmarks/bm_paper_scale.py [--device cpu|cuda|auto] [--repeats 2]
        [--stages gan-step synthesis mask-rcnn inverse-step neural-warmup neural-finetune] [--gpus 1 4 8]
        [--neural-batch N] [--image-batch N]

Stages (each case in a fresh subprocess, so that its peak resident memory is its own):
- gan-step: one step of `gan train`'s trainer (stylegan2.train.Trainer: G's and D's forward + backward, Adam,
  the EMA; no R1, no path length) with gan.toml's config-f networks, on one sample in float32 and bfloat16; on
  CUDA also at the paper's per-GPU batch 32 / N for each N of --gpus, in gan.toml's bfloat16 (a case that runs
  out of GPU memory says so) -> 25,000 kimg;
- synthesis: `dataset synth`'s image (dataset.views.render_view_content: a view-mixed 512 x 512 config-f image,
  no grad, cropped to 384 x 512) -> 234,000 images (6,000 contents x 39 views);
- mask-rcnn: `dataset synth`'s segmenter, torchvision's COCO Mask R-CNN, on 384 x 512 images (resized to 800 px
  inside) -> 234,000 images. Random weights return torchvision's most detections, 100, so the mask head runs on
  100 boxes, where a COCO model finds a few in a car image: an upper bound (on one CPU core the mask head's 100
  boxes are about 1.2 s of the 4.9 s);
- inverse-step: `inverse train`'s step (inverse.train.Trainer.train_step) with inverse.toml's settings (batch 16,
  64 px, 39 learned cameras) on a world multi-view set of 3 cars x 39 views at 64 px, without and with the
  perceptual term (LPIPS on a random VGG-16), in float32 and bfloat16 (`--precision`: the network and VGG under
  autocast) -> 200k steps;
- neural-warmup, neural-finetune: `neural train`'s step (neural.train.Trainer.train_step, StyleGAN-R, Sec. 3.3)
  with neural.toml's settings on a config-f generator (16 W*, 4 view layers, 39 annotated view codes), a 64-px
  inverse network (64 x 128 texture) and the Mask R-CNN (its 100 boxes too) -> 700 warm-up and 2,500
  fine-tuning steps of batch 16, extrapolated per example from a step of --neural-batch examples (2 on CPU: a
  batch of 16 takes minutes there; 4 on CUDA, the paper's per-GPU batch on four GPUs); fine-tuning in float32
  and bfloat16 (`--precision`: the trained StyleGAN's synthesis and D under autocast).
--image-batch sets the synthesis and Mask R-CNN batch (1 on CPU; 32 on CUDA, `dataset synth`'s default).

Each case: the best of --repeats calls after one warm-up call (on CUDA each until the GPU is done), the
process's peak resident memory (ru_maxrss, also above its size after set-up) and on CUDA the peak GPU memory
allocated from set-up on (torch.cuda.max_memory_allocated). The paper-scale time is the paper's work divided by a
call's work, times the best call, on one device and divided by N for each N of --gpus: the ideal division,
without the gradient exchange of data-parallel training. Prints a table and writes
benchmarks/results/bm_paper_scale.json.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import tomllib
from datetime import datetime, timezone
from functools import partial
from pathlib import Path

from common import (add_device_option, case_result, machine, memory_baseline, resolve_device, run_case_in_subprocess,
                    timed, write_results)

PAPER = Path(__file__).resolve().parents[1] / "configs" / "paper"
STAGES = ("gan-step", "synthesis", "mask-rcnn", "inverse-step", "neural-warmup", "neural-finetune")
# Views and contents of the world multi-view set the inverse network trains on here (39 views: the paper's cameras).
WORLD_CARS, WORLD_VIEWS = 3, 39
SEED = 0


def paper(name: str) -> dict:
    return tomllib.loads((PAPER / f"{name}.toml").read_text())


def paper_config(config_class, name: str, **overrides):
    """``config_class`` with configs/paper/NAME.toml's values, then ``overrides``; checked."""
    from ganverse3d import runs

    config = config_class(**{**runs.read_config_file(config_class, PAPER / f"{name}.toml"), **overrides})
    config.check()
    return config


# -- the inputs the stages read, written once into a temporary folder --------------------------------------------
def config_f_generator():
    """gan.toml's generator (config-f: 512 x 384 content in a 512 x 512 canvas, 16 W*), seeded."""
    import torch

    from ganverse3d.stylegan2.networks import Generator

    gan = paper("gan")
    torch.manual_seed(SEED)
    return Generator(z_dim=gan["z_dim"], w_dim=gan["w_dim"], img_resolution=gan["resolution"], img_channels=3,
                     channel_base=gan["channel_base"], channel_max=gan["channel_max"],
                     num_mapping_layers=gan["mapping_layers"], img_content_shape=(384, 512))


def write_gan_images(folder: Path) -> None:
    """Two random 512 x 512 images: `gan train`'s image folder (the step's cost does not depend on them)."""
    import torch

    from ganverse3d.files import save_png

    generator = torch.Generator().manual_seed(SEED)
    for index in range(2):
        save_png(folder / "gan_images" / f"{index}.png", torch.rand(3, 512, 512, generator=generator))


def write_maskrcnn(folder: Path) -> None:
    import torch
    from torchvision.models.detection import maskrcnn_resnet50_fpn

    torch.manual_seed(SEED)
    torch.save(maskrcnn_resnet50_fpn(weights=None, weights_backbone=None).state_dict(), folder / "maskrcnn.pth")


def write_vgg(folder: Path) -> None:
    """A random VGG-16 trunk as torchvision names it (``features.*``, all PerceptualLoss reads)."""
    import torch
    from torchvision.models import vgg16

    torch.manual_seed(SEED)
    state = {f"features.{name}": tensor for name, tensor in vgg16(weights=None).features.state_dict().items()}
    torch.save(state, folder / "vgg16.pth")


def write_world_views(folder: Path) -> None:
    from ganverse3d.dataset.world_multiview import write_world_multiview

    write_world_multiview(folder / "world_views", WORLD_CARS, WORLD_VIEWS, paper("inverse")["resolution"], seed=SEED,
                          progress=False)


def write_neural_inputs(folder: Path) -> None:
    """The config-f generator bundle, its 39 annotated view codes (views/views.toml, bins k mod 12) and a 64-px
    inverse network of inverse.toml's texture size, all random."""
    import torch

    from ganverse3d.bundle import save_module
    from ganverse3d.dataset.views import Candidates, generator_fingerprint, sample_codes, save_candidates
    from ganverse3d.inverse.model import InverseGraphicsNet

    G, dataset, inverse = config_f_generator(), paper("dataset"), paper("inverse")
    save_module(folder / "generator.safetensors", G)
    truncation = 0.7
    ws = sample_codes(G, dataset["views"], torch.Generator().manual_seed(SEED), truncation)
    save_candidates(folder / "views" / "candidates.safetensors",
                    Candidates(ws, dataset["view_layers"], truncation, SEED, generator_fingerprint(G)),
                    folder / "generator.safetensors")
    lines = ['candidates = "candidates.safetensors"', "[views]"]
    lines += [f"{view} = {{ bin = {view % 12} }}" for view in range(dataset["views"])]
    (folder / "views" / "views.toml").write_text("\n".join(lines) + "\n")
    torch.manual_seed(SEED)
    save_module(folder / "inverse.safetensors",
                InverseGraphicsNet(resolution=inverse["resolution"], texture_height=inverse["texture_height"]))


INPUTS = {"gan-step": (write_gan_images,), "synthesis": (), "mask-rcnn": (write_maskrcnn,),
          "inverse-step": (write_world_views, write_vgg), "neural-warmup": (write_maskrcnn, write_neural_inputs),
          "neural-finetune": (write_maskrcnn, write_neural_inputs)}


# -- the cases -------------------------------------------------------------------------------------------------
def cases(stages: list[str], device: str, gpus: list[int], neural_batch: int, image_batch: int) -> list[dict]:
    """Each case's subprocess settings: stage, variant, batch."""
    chosen = []
    for stage in stages:
        if stage == "gan-step":
            chosen += [dict(stage=stage, variant=precision, batch=1) for precision in ("float32", "bfloat16")]
            if device == "cuda":
                batch = paper("gan")["batch"]
                chosen += [dict(stage=stage, variant=paper("gan")["precision"], batch=batch // count)
                           for count in sorted(set(gpus)) if batch % count == 0]
        elif stage == "inverse-step":
            chosen += [dict(stage=stage, variant=f"{term}, {precision}", batch=paper("inverse")["batch"])
                       for term in ("no perceptual", "perceptual") for precision in ("float32", "bfloat16")]
        elif stage == "neural-finetune":
            chosen += [dict(stage=stage, variant=precision, batch=neural_batch) for precision in ("float32", "bfloat16")]
        elif stage == "neural-warmup":
            chosen.append(dict(stage=stage, variant="", batch=neural_batch))
        else:
            chosen.append(dict(stage=stage, variant="", batch=image_batch))
    return chosen


# Each builder sets a case up and returns (step: a callable, the work of one call, the paper's work, its unit).
def gan_step(folder: Path, variant: str, batch: int, device: str):
    from ganverse3d.stylegan2.train import Trainer, TrainConfig

    config = paper_config(TrainConfig, "gan", data=str(folder / "gan_images"), batch=batch, precision=variant,
                          r1_gamma=0.0, pl_weight=0.0)
    trainer = Trainer(config, None, device, progress=False)
    return trainer.train_step, batch, config.kimg * 1000, "images"


def synthesis(folder: Path, variant: str, batch: int, device: str):
    import torch

    from ganverse3d.dataset.views import render_view_content

    dataset = paper("dataset")
    G = config_f_generator().to(device).eval()
    with torch.no_grad():
        ws_view, ws_content = G.mapping(torch.randn(2 * batch, G.z_dim, device=device), truncation_psi=0.7).chunk(2)
    return (lambda: render_view_content(G, ws_view, ws_content, dataset["view_layers"]), batch,
            dataset["views"] * dataset["contents"], "images")


def mask_rcnn(folder: Path, variant: str, batch: int, device: str):
    import torch

    from ganverse3d.dataset.segment import MaskRCNNSegmenter

    dataset = paper("dataset")
    segmenter = MaskRCNNSegmenter(folder / "maskrcnn.pth", device=device)
    images = torch.rand(batch, 3, 384, 512, generator=torch.Generator().manual_seed(SEED))
    return lambda: segmenter.segment(images), batch, dataset["views"] * dataset["contents"], "images"


def inverse_step(folder: Path, variant: str, batch: int, device: str):
    from ganverse3d.inverse.train import Trainer, TrainConfig

    # The perceptual term from the first step on, as it is after percept_start (3,000 steps).
    term, precision = variant.rsplit(", ", 1)
    perceptual = dict(vgg_weights=str(folder / "vgg16.pth"), percept_start=0) if term == "perceptual" else {}
    config = paper_config(TrainConfig, "inverse", data=str(folder / "world_views"), precision=precision,
                          **perceptual)
    trainer = Trainer(config, None, device, progress=False)
    return trainer.train_step, 1, config.iterations, "steps"


def neural_step(folder: Path, variant: str, batch: int, device: str, finetune: bool):
    from ganverse3d.neural.train import Trainer, TrainConfig

    config = paper_config(TrainConfig, "neural", views=str(folder / "views" / "views.toml"),
                          generator=str(folder / "generator.safetensors"), inverse=str(folder / "inverse.safetensors"),
                          segmenter=f"maskrcnn:{folder / 'maskrcnn.pth'}", batch=batch,
                          **({"precision": variant} if variant else {}))
    trainer = Trainer(config, None, device, progress=False)
    steps = config.warmup_steps
    if finetune:
        trainer.step = config.warmup_steps  # as a run after its warm-up: the first call starts fine-tuning
        steps = config.finetune_steps
    return trainer.train_step, batch, steps * paper("neural")["batch"], "examples"


BUILDERS = {"gan-step": gan_step, "synthesis": synthesis, "mask-rcnn": mask_rcnn, "inverse-step": inverse_step,
            "neural-warmup": partial(neural_step, finetune=False),
            "neural-finetune": partial(neural_step, finetune=True)}


def case_name(stage: str, variant: str, batch: int) -> str:
    return " ".join(part for part in (stage, variant, f"batch {batch}") if part)


def run_case(folder: Path, stage: str, variant: str, batch: int, repeats: int, device: str) -> dict:
    import torch

    torch.manual_seed(SEED)
    name = case_name(stage, variant, batch)
    try:
        step, work, paper_work, unit = BUILDERS[stage](folder, variant, batch, device)
        baseline_kib = memory_baseline(device)
        row = case_result(name, timed(step, repeats, device), baseline_kib, device)
    except torch.cuda.OutOfMemoryError:
        return {"case": name, "stage": stage, "error": "out of GPU memory"}
    return {**row, "stage": stage, "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "work_per_call": work, "paper_work": paper_work, "unit": unit,
            "paper_s_one_device": paper_work / work * row["min_s"]}


# -- the report --------------------------------------------------------------------------------------------------
def duration(seconds: float) -> str:
    """A rough human duration: seconds, minutes, hours, days or years."""
    for size, unit, limit in ((1, "s", 120), (60, "min", 120), (3600, "h", 48), (86400, "days", 730)):
        if seconds < size * limit:
            return f"{seconds / size:.3g} {unit}"
    return f"{seconds / (365 * 86400):.3g} years"


def run_in_subprocess(settings: dict, folder: Path, repeats: int, device: str) -> dict:
    """A case's row from its own process; a case whose process fails gets its last error line."""
    arguments = ["--variant", settings["variant"], "--batch", str(settings["batch"]), "--files", str(folder),
                 "--repeats", str(repeats), "--device", device]
    try:
        return run_case_in_subprocess(__file__, settings["stage"], *arguments)
    except subprocess.CalledProcessError as error:
        lines = error.stderr.strip().splitlines() or [f"exit status {error.returncode}"]
        return {"case": case_name(**settings), "stage": settings["stage"], "error": lines[-1]}


def print_table(results: list[dict], gpus: list[int], device: str, description: str) -> None:
    print(f"bm_paper_scale — configs/paper shapes, random weights, {device} ({description})")
    gpu_memory = f" {'GPU MiB':>8}" if device == "cuda" else ""
    header = (f"{'case':<48} {'best s':>8} {'RSS MiB':>8} {'over set-up':>12}{gpu_memory} {'a call':>14} "
              f"{'paper':>18} " + " ".join(f"{f'on {count}':>11}" for count in gpus))
    print(header)
    for row in results:
        if "error" in row:
            print(f"{row['case']:<48} {row['error']}")
            continue
        memory = f" {row['gpu_peak_mib']:>8.0f}" if device == "cuda" else ""
        times = " ".join(f"{duration(row['paper_s_one_device'] / count):>11}" for count in gpus)
        work = f"{row['work_per_call']:>7} {row['unit']:<6} {row['paper_work']:>11,.0f} {row['unit']:<6}"
        print(f"{row['case']:<48} {row['min_s']:>8.3f} {row['peak_rss_mib']:>8.0f} {row['peak_extra_mib']:>12.0f}"
              f"{memory} {work} {times}")
    print(f"on N: the paper's work / a call's work x the best call / N, the ideal division over N "
          f"{'GPUs' if device == 'cuda' else 'devices'} (no gradient exchange).")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_device_option(parser)
    parser.add_argument("--repeats", type=int, default=2, help="Timed calls after the warm-up call [default: 2].")
    parser.add_argument("--stages", nargs="+", choices=STAGES, default=list(STAGES), help="The stages to run.")
    parser.add_argument("--gpus", nargs="+", type=int, default=[1, 4, 8],
                        help="Device counts the paper-scale times are divided by [default: 1 4 8].")
    parser.add_argument("--neural-batch", type=int, help="Examples a StyleGAN-R step [default: 2 on CPU, 4 on CUDA].")
    parser.add_argument("--image-batch", type=int, help="Images a synthesis or Mask R-CNN call [default: 1 on CPU, "
                                                        "32 on CUDA].")
    parser.add_argument("--case", help=argparse.SUPPRESS)
    parser.add_argument("--variant", default="", help=argparse.SUPPRESS)
    parser.add_argument("--batch", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--files", help=argparse.SUPPRESS)
    args = parser.parse_args()
    device = resolve_device(args.device)
    if args.case:
        print(json.dumps(run_case(Path(args.files), args.case, args.variant, args.batch, args.repeats, device)))
        return
    if min(args.gpus) < 1 or args.repeats < 1:
        sys.exit("--gpus and --repeats take counts of 1 or more.")
    neural_batch = args.neural_batch or (4 if device == "cuda" else 2)
    image_batch = args.image_batch or (32 if device == "cuda" else 1)
    if neural_batch < 2 or image_batch < 1:
        sys.exit("--neural-batch must be at least 2 (fine-tuning pairs each example with another) and --image-batch 1.")
    stages = [stage for stage in STAGES if stage in args.stages]
    with tempfile.TemporaryDirectory(prefix="bm_paper_scale-") as temporary:
        folder = Path(temporary)
        for writer in dict.fromkeys(writer for stage in stages for writer in INPUTS[stage]):
            writer(folder)
        results = [run_in_subprocess(settings, folder, args.repeats, device)
                   for settings in cases(stages, device, args.gpus, neural_batch, image_batch)]
    description = machine(device)
    print_table(results, args.gpus, device, description)
    write_results("bm_paper_scale", {"machine": description, "device": device,
                                     "date": datetime.now(timezone.utc).strftime("%Y-%m-%d"), "repeats": args.repeats,
                                     "gpus": args.gpus, "neural_batch": neural_batch, "image_batch": image_batch,
                                     "results": results})


if __name__ == "__main__":
    main()
