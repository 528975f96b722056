"""`ganverse3d reconstruct` on CPU (or CUDA): cold and warm latency for a 512-px photo, phone-size photos, the
inverse-graphics training step, and peak memory.

    python benchmarks/bm_reconstruct.py [--repeat 5] [--model PATH] [--only TEXT] [--device cpu|cuda|auto]

``--only TEXT`` runs the cases whose name contains TEXT (``--only photo`` runs the photo sizes).

Cases (each in a fresh subprocess, so its peak resident memory above the size after set-up is its own):
- cold CLI: the whole `ganverse3d reconstruct photo.png -o car.glb` process (Python start, imports, model load,
  segmentation, prediction, .glb and turntable sheet written), wall-clock;
- cold API: first `ganverse3d.api.reconstruct` call in a fresh process that has imported torch (the
  ganverse3d imports, model and segmenter loads are included);
- warm API with and without a mask: later calls (the model is cached; without a mask the embedded segmenter
  runs too);
- photo sizes: warm API calls (segmenter, no mask) on docs/example_car.png as it is (256 px) and scaled up to
  phone photos, 12 MP (4000 x 3000) and 48 MP (8000 x 6000) JPEGs with a little sensor noise (so that they
  decode like camera files); the peak memory is above the process after a 256-px call. Target (issue 17): a
  48 MP photo under 2 s and 1 GB beyond the 256-px case;
- train step: one `inverse train` step at the defaults (batch 16, 64 px, multi-view, learned cameras) on a small
  world dataset made in a temporary folder, and one with `--image-cameras` (the other view's images also go
  through the encoder for their cameras).
The photo is docs/example_car.png scaled to 512 x 512. Target (issue 5): warm ≤ 0.5 s (SF3D: 0.5 s on an A100).
On CUDA the table adds each case's peak GPU memory allocated (torch.cuda.max_memory_allocated; not for the
cold CLI, a process of its own). Prints a table and writes benchmarks/results/bm_reconstruct.json.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import (add_device_option, case_result, machine, memory_baseline, memory_cells, memory_header,
                    resolve_device, run_case_in_subprocess, timed, write_results)

REPO = Path(__file__).resolve().parents[1]
CASES = ("cold CLI (process, 512 px, writes .glb)", "cold API (first call, torch already loaded)",
         "warm API, 512 px, segmenter", "warm API, 512 px, mask given", "train step (batch 16, 64 px, multi-view)",
         "train step, image cameras")
# Photo-size cases: name -> (width, height) of the JPEG, or None for docs/example_car.png itself.
PHOTO_SIZES = {"photo 256 px (PNG)": None, "photo 12 MP (JPEG)": (4000, 3000), "photo 48 MP (JPEG)": (8000, 6000)}


def make_photo(folder: Path) -> tuple[Path, Path]:
    """docs/example_car.png and its car mask (from the photo's own reconstruction framing) at 512 x 512."""
    from PIL import Image

    photo = folder / "car512.png"
    Image.open(REPO / "docs" / "example_car.png").convert("RGB").resize((512, 512), Image.BICUBIC).save(photo)
    from ganverse3d.api import read_photo, segment_photo

    rgb, _ = read_photo(photo)
    mask = folder / "car512_mask.png"
    Image.fromarray(segment_photo(rgb, "world", "cpu").astype("uint8") * 255).save(mask)
    return photo, mask


def make_phone_photos(folder: Path) -> None:
    """docs/example_car.png scaled up to each JPEG size of PHOTO_SIZES, with noise of 3 grey levels."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    example = Image.open(REPO / "docs" / "example_car.png").convert("RGB")
    for name, size in PHOTO_SIZES.items():
        if size is not None:
            pixels = np.array(example.resize(size, Image.BICUBIC))
            for rows in np.array_split(np.arange(size[1]), 16):  # in bands: a 48 MP float copy would be 1 GB
                band = pixels[rows[0]:rows[-1] + 1].astype(np.int16) + rng.normal(0, 3, (len(rows), size[0], 3))
                pixels[rows[0]:rows[-1] + 1] = band.clip(0, 255).astype(np.uint8)
            Image.fromarray(pixels).save(photo_path(folder, name), quality=90)


def photo_path(folder: Path, name: str) -> Path:
    """The photo of a PHOTO_SIZES case."""
    size = PHOTO_SIZES[name]
    return REPO / "docs" / "example_car.png" if size is None else folder / f"phone{size[0]}x{size[1]}.jpg"


def run_case(name: str, repeat: int, model: str | None, folder: Path, device: str) -> dict:
    photo, mask = folder / "car512.png", folder / "car512_mask.png"
    if name in PHOTO_SIZES:
        from ganverse3d.api import reconstruct

        reconstruct(REPO / "docs" / "example_car.png", model=model, device=device)  # models loaded, a 256-px call
        baseline_kib = memory_baseline(device)
        case_photo = photo_path(folder, name)
        times = timed(lambda: reconstruct(case_photo, model=model, device=device), repeat, device)
        return case_result(name, times, baseline_kib, device)
    if name == CASES[0]:
        command = [sys.executable, "-m", "ganverse3d.cli", "reconstruct", str(photo), "-o", str(folder / "car.glb"),
                   "--device", device]
        command += ["--model", model] if model else []
        times = []
        for _ in range(repeat):
            start = time.perf_counter()
            subprocess.run(command, check=True, capture_output=True)
            times.append(time.perf_counter() - start)
        peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024  # the whole CLI process
        return {"case": name, "median_s": statistics.median(times), "min_s": min(times), "peak_extra_mib": peak}

    baseline_kib = memory_baseline(device)
    if name == CASES[1]:
        start = time.perf_counter()
        from ganverse3d.api import reconstruct

        reconstruct(photo, model=model, device=device)
        times = [time.perf_counter() - start]
    elif name in CASES[2:4]:
        from ganverse3d.api import reconstruct

        given = mask if name == CASES[3] else None
        times = timed(lambda: reconstruct(photo, mask=given, model=model, device=device), repeat, device)
    else:
        from ganverse3d.inverse.train import Trainer, TrainConfig

        data = folder / "world"
        subprocess.run([sys.executable, "-m", "ganverse3d.cli", "dataset", "world", "--cars", "16", "--views", "4",
                        "--resolution", "64", "--seed", "3", "--out", str(data)], check=True, capture_output=True)
        import torch

        image_cameras = name == CASES[5]
        config = TrainConfig(data=str(data), holdout_fraction=0.0, image_cameras=image_cameras, image_cameras_start=0)
        trainer = Trainer(config, folder / f"run-{int(image_cameras)}", torch.device(device), progress=False)
        baseline_kib = memory_baseline(device)
        times = timed(trainer.train_step, repeat, device)
    return case_result(name, times, baseline_kib, device)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--model", default=None, help="Inverse-graphics bundle [default: the embedded one].")
    parser.add_argument("--only", default="", help="Run only the cases whose name contains this text.")
    add_device_option(parser)
    parser.add_argument("--case", help=argparse.SUPPRESS)
    parser.add_argument("--folder", help=argparse.SUPPRESS)
    parser.add_argument("--make-photos", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    device = resolve_device(args.device)
    if args.case:
        print(json.dumps(run_case(args.case, args.repeat, args.model, Path(args.folder), device)))
        return
    if args.make_photos:
        make_photo(Path(args.folder))
        make_phone_photos(Path(args.folder))
        return
    with tempfile.TemporaryDirectory() as folder:
        # In a process of its own: Linux starts a child's peak resident memory at its parent's size, so this
        # process must stay small for the cases' peaks to be their own.
        subprocess.run([sys.executable, __file__, "--make-photos", "--folder", folder], check=True)
        model = ["--model", args.model] if args.model else []
        results = [run_case_in_subprocess(__file__, name, "--repeat", str(args.repeat), "--folder", folder,
                                          "--device", device, *model)
                   for name in (*CASES, *PHOTO_SIZES) if args.only in name]
    description = machine(device)
    print(f"bm_reconstruct — {device} ({description})")
    print(f"{'case':<44} {'median s':>9} {'min s':>8} {memory_header(device)}")
    for row in results:
        print(f"{row['case']:<44} {row['median_s']:>9.3f} {row['min_s']:>8.3f} {memory_cells(row)}")
    print("peak MiB: the whole process for the cold CLI, above a 256-px call for the photo sizes, else above the "
          "size after set-up")
    write_results("bm_reconstruct", {"machine": description, "device": device, "model": args.model or "embedded",
                                     "only": args.only, "results": results})


if __name__ == "__main__":
    main()
