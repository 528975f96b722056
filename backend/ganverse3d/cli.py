"""The ``ganverse3d`` command line: one sub-command per stage.

Problems the user can fix raise :class:`ganverse3d.errors.InputError`; they are printed as one sentence
and the command exits with code 2, without a traceback and without partial output.
"""

from __future__ import annotations

import contextlib
import math
import re
import sys
from pathlib import Path

import click

from . import __version__
from .errors import InputError


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="ganverse3d")
def cli():
    """GANverse3D: photos of cars to textured 3D meshes, and StyleGAN-R neural rendering.

    \b
    Examples:
      ganverse3d world render --n 64 --resolution 128 --seed 0 --out world64
      ganverse3d render car.glb --azimuth 30 --elevation 15 -o car.png
    """


@cli.group()
def world():
    """The procedural car world: parametric cars, scenes and ground-truth renders."""


@world.command("render")
@click.option("--n", "count", type=int, required=True, help="Number of items (images) in the dataset, at least 1.")
@click.option("--resolution", type=int, default=128, show_default=True, help="Image width and height, 16 to 2048.")
@click.option("--seed", type=int, default=0, show_default=True, help="Dataset seed, 0 or more; item i uses (seed, i).")
@click.option("--out", "out_dir", required=True, help="Dataset folder: new, empty, or one to resume.")
def world_render(count, resolution, seed, out_dir):
    """Render N procedural cars in random scenes into a dataset folder.

    Each item gets images/ID.png, masks/ID.png (255 = car), parts/ID.png (part label + 1: body, window,
    wheel, light, plate; 0 = background) and meshes/ID.glb (the ground-truth car), plus a line in
    meta.jsonl (body type, shape parameters, camera azimuth / elevation / distance / fov). manifest.json
    describes the folder and sheet.png shows the first 64 images. The same seed gives the same files;
    running the command again on the folder skips finished items, so an interrupted run resumes.

    \b
    Example (64 cars at 128 x 128, then extend the same dataset to 1000):
      ganverse3d world render --n 64 --resolution 128 --seed 0 --out world64
      ganverse3d world render --n 1000 --resolution 128 --seed 0 --out world64
    """
    from .world.dataset import write_world_dataset

    manifest = write_world_dataset(out_dir, count, resolution, seed)
    click.echo(f"Wrote {manifest['counts']['items']} items at {resolution}x{resolution} to {out_dir} "
               f"(contact sheet: {Path(out_dir) / 'sheet.png'}).")


@cli.group()
def gan():
    """StyleGAN2: convert official weights, train, sample."""


@gan.command("convert")
@click.argument("src", metavar="SRC")
@click.option("-o", "--out", "out_path", required=True, help="Output generator, .safetensors.")
@click.option("--content", default=None, metavar="WxH",
              help="Size of the image content inside the square canvas, e.g. 512x384 for the official car "
                   "model, whose images fill rows 64:448 (default: the whole canvas, or what SRC records).")
def gan_convert(src, out_path, content):
    """Convert StyleGAN2 weights SRC into a ganverse3d .safetensors generator.

    SRC may be the official StyleGAN2 TensorFlow pickle (stylegan2-car-config-f.pkl, ...), a
    stylegan2-ada-pytorch pickle, rosinality's .pt or a ganverse3d .safetensors; the format is read from
    the file's content. Pickles are read without running anything they contain: a file that asks to
    run code is refused.

    \b
    Example (the official LSUN car model: 512x384 images inside a 512x512 canvas):
      ganverse3d gan convert stylegan2-car-config-f.pkl --content 512x384 -o car.safetensors
    """
    from .stylegan2.load import load_generator_with_format, save_generator

    out_path = Path(out_path)
    if out_path.suffix.lower() != ".safetensors":
        raise InputError(f"The output {out_path} must be a .safetensors file.")
    content_shape = None
    if content is not None:
        match = re.fullmatch(r"\s*(\d+)\s*[xX]\s*(\d+)\s*", content)
        if not match:
            raise InputError(f"--content must be WIDTHxHEIGHT in pixels, such as 512x384, not {content!r}.")
        content_shape = (int(match.group(2)), int(match.group(1)))
    generator, source_format = load_generator_with_format(src, "cpu", img_content_shape=content_shape)
    save_generator(generator, out_path, provenance={"stage": "convert", "source": Path(src).name,
                                                    "source_format": source_format})
    top, bottom, left, right = generator.img_crop
    side = generator.img_resolution
    click.echo(f"Wrote {out_path}: {side}x{side} generator from a {source_format} file, {generator.num_ws} ws, "
               f"content rows {top}:{bottom}, columns {left}:{right}.")


@gan.command("views")
@click.option("--generator", "generator_path", required=True, help="Generator weights (any format `gan convert` reads).")
@click.option("-o", "--out", "out_path", required=True, help="Output sheet, .png.")
@click.option("--views", "num_views", type=click.IntRange(1, 64), default=8, show_default=True, help="Columns: view codes.")
@click.option("--contents", "num_contents", type=click.IntRange(1, 64), default=6, show_default=True,
              help="Rows: content codes.")
@click.option("--view-layers", type=int, default=None,
              help="Leading W* entries that hold the view [default: the paper's 4 of 16, scaled to the model].")
@click.option("--truncation", type=float, default=0.7, show_default=True, help="Truncation psi.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the view and content codes.")
@click.option("--device", default="auto", show_default=True, help="'auto' (CUDA when available), 'cpu' or 'cuda'.")
def gan_views(generator_path, out_path, num_views, num_contents, view_layers, truncation, seed, device):
    """The paper's Fig. 2: fix the view part of W* per column, sample the rest per row.

    Columns should each show one viewpoint, rows one car.

    \b
    Example:
      ganverse3d gan views --generator backend/ganverse3d/assets/stylegan2_world64.safetensors -o views.png
    """
    from .devices import resolve_device
    from .files import image_grid, save_png
    from .stylegan2 import load_generator
    from .stylegan2.views import default_view_layers, view_content_sheet

    _check_png_outputs([Path(out_path)])
    G = load_generator(generator_path, device=resolve_device(device))
    view_layers = default_view_layers(G.num_ws) if view_layers is None else view_layers
    if not 1 <= view_layers < G.num_ws:
        raise InputError(f"--view-layers must be from 1 to {G.num_ws - 1} for this generator, not {view_layers}.")
    sheet = view_content_sheet(G, num_views, num_contents, view_layers, seed=seed, truncation_psi=truncation)
    save_png(out_path, image_grid(G.crop_to_content(sheet), columns=num_views))
    click.echo(f"Wrote {out_path} ({num_contents} cars x {num_views} views, view = first {view_layers} of "
               f"{G.num_ws} W* entries).")


@gan.command("layers")
@click.option("--generator", "generator_path", required=True, help="Generator weights (any format `gan convert` reads).")
@click.option("-o", "--out", "out_path", required=True, help="Output sheet, .png.")
@click.option("--samples", type=click.IntRange(1, 32), default=4, show_default=True, help="Rows: samples.")
@click.option("--truncation", type=float, default=0.7, show_default=True, help="Truncation psi.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the samples.")
@click.option("--device", default="auto", show_default=True, help="'auto' (CUDA when available), 'cpu' or 'cuda'.")
def gan_layers(generator_path, out_path, samples, truncation, seed, device):
    """The paper's Appendix B: each block's features through its learned toRGB, coarse to fine, then the image.

    \b
    Example:
      ganverse3d gan layers --generator backend/ganverse3d/assets/stylegan2_world64.safetensors -o layers.png
    """
    from .devices import resolve_device
    from .files import image_grid, save_png
    from .stylegan2 import load_generator
    from .stylegan2.views import layer_sheet

    _check_png_outputs([Path(out_path)])
    G = load_generator(generator_path, device=resolve_device(device))
    sheet = layer_sheet(G, samples, seed=seed, truncation_psi=truncation)
    save_png(out_path, image_grid(G.crop_to_content(sheet), columns=len(G.synthesis.block_resolutions) + 1))
    click.echo(f"Wrote {out_path} (blocks {', '.join(map(str, G.synthesis.block_resolutions))} px, then the image).")


@gan.command("train")
@click.option("--data", default=None, help="Dataset folder with images/*.png (e.g. from `ganverse3d world render`).")
@click.option("--resolution", type=int, default=64, show_default=True, help="Training resolution (power of two).")
@click.option("--kimg", type=float, default=None,
              help="Training length in thousands of images [default: 200, or the resumed run's].")
@click.option("--batch", type=int, default=32, show_default=True, help="Minibatch size.")
@click.option("--channel-base", type=int, default=2048, show_default=True, help="channels(res) = min(base // res, max).")
@click.option("--channel-max", type=int, default=64, show_default=True, help="Most channels of any layer.")
@click.option("--r1-gamma", type=float, default=0.0256, show_default=True, help="R1 regularisation weight.")
@click.option("--pl-weight", type=float, default=0.0, show_default=True, help="Path-length regularisation (0 = off).")
@click.option("--mirror/--no-mirror", default=False, show_default=True, help="Random horizontal flips.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed for initialisation, latents and batches.")
@click.option("--sample-every", type=int, default=200, show_default=True, help="Steps between sample grids.")
@click.option("--checkpoint-every", type=int, default=200, show_default=True, help="Steps between checkpoints.")
@click.option("--metric-every", type=int, default=0, show_default=True,
              help="Steps between FID measurements in metrics.jsonl (0 = off).")
@click.option("--feature-net", default=None,
              help="FID features: a world feature net (.safetensors) or torchvision's Inception-v3 .pth "
                   "[default: the embedded world feature net].")
@click.option("--runs", "runs_root", default="runs", show_default=True, help="Folder for run folders (gan/NNNNN-name).")
@click.option("--precision", type=click.Choice(["float32", "bfloat16"]), default=None,
              help="bfloat16: G's synthesis and D under autocast, about 1.8x faster on CPUs with AVX-512 BF16 "
                   "[default: float32, or the resumed run's].")
@click.option("--view-mixing", type=float, default=None,
              help="Weight of the view-mixing loss: images mixed at --view-layers keep the first code's viewpoint "
                   "and the second's body type as the world feature net reads them (asks the first entries to "
                   "hold the view and not the car; not in StyleGAN2) [default: 0 = off, or the resumed run's].")
@click.option("--view-layers", type=int, default=None,
              help="W entries that hold the view, for --view-mixing [default: 3, or the resumed run's].")
@click.option("--resume", "resume_dir", default=None,
              help="Continue this run folder (its config.json wins; --kimg, --precision, --view-mixing and "
                   "--view-layers may change it).")
@click.option("--device", default="auto", show_default=True, help="'auto' (CUDA when available), 'cpu' or 'cuda'.")
def gan_train(data, resolution, kimg, batch, channel_base, channel_max, r1_gamma, pl_weight, mirror, seed,
              sample_every, checkpoint_every, metric_every, feature_net, precision, view_mixing, view_layers,
              runs_root, resume_dir, device):
    """Train a StyleGAN2 (non-saturating loss, lazy R1, style mixing, EMA).

    Writes runs/gan/NNNNN-NAME/ with config.json, metrics.jsonl, samples/*.png and
    checkpoints/G_ema.safetensors; kill it at any time and --resume the run folder.

    \b
    Examples:
      ganverse3d world render --n 20000 --resolution 64 --seed 1 --out world-64
      ganverse3d gan train --data world-64 --resolution 64 --kimg 200
      ganverse3d gan train --resume runs/gan/00000-world-64-r64 --kimg 400
      ganverse3d gan train --resume runs/gan/00000-world-64-r64 --kimg 600 --view-mixing 1
    """
    from .stylegan2.train import TrainConfig, train

    if data is None and resume_dir is None:
        raise InputError("Give --data (a dataset folder) or --resume (a run folder).")
    if (kimg is not None and kimg <= 0) or batch < 1:
        raise InputError("--kimg must be positive and --batch at least 1.")
    if metric_every < 0:
        raise InputError("--metric-every must be 0 (off) or more.")
    if resume_dir:
        weights = train(runs_root=runs_root, resume=resume_dir, device=device, kimg=kimg, precision=precision,
                        view_mixing=view_mixing, view_layers=view_layers)
    else:
        config = TrainConfig(data=data, resolution=resolution, kimg=200.0 if kimg is None else kimg, batch=batch,
                             channel_base=channel_base, channel_max=channel_max, r1_gamma=r1_gamma,
                             pl_weight=pl_weight, mirror=mirror, seed=seed, sample_every=sample_every,
                             checkpoint_every=checkpoint_every, metric_every=metric_every, feature_net=feature_net,
                             precision=precision or "float32", view_mixing=view_mixing or 0.0,
                             view_layers=TrainConfig.view_layers if view_layers is None else view_layers)
        weights = train(config, runs_root=runs_root, device=device)
    click.echo(f"Wrote {weights}.")


@gan.command("feature-net")
@click.option("--data", required=True, help="World dataset folder (`ganverse3d world render`), not used to train GANs.")
@click.option("--out", "out_path", required=True, help="Output bundle, .safetensors.")
@click.option("--resolution", type=int, default=64, show_default=True, help="Input size of the net.")
@click.option("--epochs", type=int, default=15, show_default=True, help="Passes over the training split.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed for initialisation, split and batches.")
@click.option("--device", default="auto", show_default=True, help="'auto' (CUDA when available), 'cpu' or 'cuda'.")
def gan_feature_net(data, out_path, resolution, epochs, seed, device):
    """Train the small world feature net whose features give FID offline ("fid-world").

    It learns body type, azimuth (12 bins) and elevation from world renders; 10 % of the images are
    held out, and its accuracy on them is printed and stored in the bundle.

    \b
    Example:
      ganverse3d world render --n 4000 --resolution 64 --seed 123 --out world-features
      ganverse3d gan feature-net --data world-features --out world_feature_net.safetensors
    """
    from .stylegan2.metrics import FeatureNetConfig, train_feature_net

    if not out_path.endswith(".safetensors"):
        raise InputError(f"--out must be a .safetensors file, not {out_path}.")
    evaluation = train_feature_net(FeatureNetConfig(data=data, resolution=resolution, epochs=epochs, seed=seed),
                                   out_path, device=device)
    click.echo(f"Wrote {out_path}. Held out ({evaluation['count']} images): body type accuracy "
               f"{evaluation['body_type_accuracy']:.1%}, azimuth bin accuracy {evaluation['azimuth_bin_accuracy']:.1%}, "
               f"median azimuth error {evaluation['azimuth_error_deg_median']:.1f} deg, mean elevation error "
               f"{evaluation['elevation_error_deg_mean']:.1f} deg.")


@gan.command("fid")
@click.argument("generator_path", metavar="GENERATOR")
@click.option("--data", required=True, help="Folder of real images (images/*.png or *.png).")
@click.option("--num-fakes", type=int, default=10000, show_default=True, help="Generated images to compare.")
@click.option("--num-reals", type=int, default=None, help="Use only the first N real images [default: all].")
@click.option("--feature-net", default=None,
              help="A world feature net (.safetensors) or torchvision's Inception-v3 .pth "
                   "[default: the embedded world feature net].")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed for the latents and noise.")
@click.option("--device", default="auto", show_default=True, help="'auto' (CUDA when available), 'cpu' or 'cuda'.")
def gan_fid(generator_path, data, num_fakes, num_reals, feature_net, seed, device):
    """Measure the FID of GENERATOR (any format `gan convert` reads) against real images.

    The number is printed with its feature extractor ("fid-world" or "fid-inception") and the sample
    sizes: FID values are comparable only for the same extractor and sizes.

    \b
    Example:
      ganverse3d gan fid runs/gan/00000-world-64-r64/checkpoints/G_ema.safetensors --data world-64
    """
    from .stylegan2 import load_generator
    from .stylegan2.metrics import compute_fid, load_feature_extractor

    if num_fakes < 2 or (num_reals is not None and num_reals < 2):
        raise InputError("--num-fakes and --num-reals must be at least 2.")
    extractor = load_feature_extractor(feature_net, device)
    generator = load_generator(generator_path, device=device)
    result = compute_fid(generator, data, num_fakes, extractor, num_reals=num_reals, seed=seed)
    click.echo(f"{result.key} {result.value:.3f} ({result.num_real} real, {result.num_fake} generated images)")


@cli.group()
def dataset():
    """Multi-view datasets: view codes and their annotation, synthesis from a GAN, the world oracle."""


@dataset.command("views")
@click.option("--generator", "generator_path", required=True, help="Generator weights (any format `gan convert` reads).")
@click.option("--candidates", "count", type=click.IntRange(1, 1000), default=64, show_default=True,
              help="Candidate view codes to sample (columns of the sheet; their ids are 0 .. N-1).")
@click.option("--out", "out_dir", required=True, help="Folder for candidates.safetensors, sheet.png and views.toml.")
@click.option("--contents", type=click.IntRange(1, 16), default=4, show_default=True, help="Rows: content samples.")
@click.option("--view-layers", type=int, default=None,
              help="Leading W* entries that hold the view [default: the paper's 4 of 16, scaled to the model].")
@click.option("--truncation", type=float, default=0.7, show_default=True, help="Truncation psi of the codes.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the candidate and content codes.")
@click.option("--pose-net", default="auto", show_default=True,
              help="World feature net suggesting each view's bin: a .safetensors, 'auto' (the embedded one when "
                   "present) or 'none'.")
@click.option("--pose-contents", type=click.IntRange(1, 256), default=32, show_default=True,
              help="Cars the pose net reads each candidate over (the sheet's rows, then more); a view whose few "
                   "rows agree may still show other cars from other sides.")
@click.option("--preselect-per-bin", type=click.IntRange(0, 1000), default=0, show_default=True,
              help="Uncomment up to N views per bin that the pose net sees alike in all those cars (check by eye).")
@click.option("--min-agreement", type=click.FloatRange(0, 1), default=None,
              help="Least agreement of the pose net's readings over the cars for a view to be preselected [default: "
                   "0.9, the summary's 'alike': the cars within about a bin]. Lower it for a generator whose views "
                   "never reach that in some bins.")
@click.option("--device", default="auto", show_default=True, help="'auto' (CUDA when available), 'cpu' or 'cuda'.")
def dataset_views(generator_path, count, out_dir, contents, view_layers, truncation, seed, pose_net,
                  pose_contents, preselect_per_bin, min_agreement, device):
    """Sample candidate view codes and write the sheet and annotation template to annotate them.

    Look at sheet.png (one candidate view per column, headed by its id), then in views.toml uncomment the
    views to keep and give each its azimuth bin (bin b = b * 30 degrees; 0 = front, 3 = side with the front
    pointing left, 6 = rear, 9 = side with the front pointing right). That is the paper's one-minute
    annotation; `dataset synth` reads it.

    \b
    Example:
      ganverse3d dataset views --generator G.safetensors --candidates 64 --out views
      (edit views/views.toml; --preselect-per-bin 3 uncomments the pose net's best views to start from)
      ganverse3d dataset synth --generator G.safetensors --views views/views.toml --contents 1000 --out data
    """
    from .bundle import load_module
    from .devices import resolve_device
    from .dataset.views import CONSISTENT_AGREEMENT, consistency_summary, write_view_candidates
    from .stylegan2 import load_generator
    from .stylegan2.metrics import DEFAULT_FEATURE_NET, WorldFeatureNet

    if not 0 < truncation <= 1:
        raise InputError(f"--truncation must lie in (0, 1], not {truncation:g}.")
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise InputError(f"The output {out} is a file; give a folder.")
    device = resolve_device(device)
    G = load_generator(generator_path, device=device)
    pose_net_path = {"auto": DEFAULT_FEATURE_NET if DEFAULT_FEATURE_NET.is_file() else None, "none": None}.get(
        pose_net, pose_net)
    if preselect_per_bin and not pose_net_path:
        raise InputError("--preselect-per-bin needs a pose net to guess the bins; give --pose-net.")
    pose = load_module(pose_net_path, expected_class=WorldFeatureNet, device=device) if pose_net_path else None
    _, guesses = write_view_candidates(G, generator_path, out, count, contents=contents, seed=seed,
                                       truncation=truncation, view_layers=view_layers, pose_net=pose,
                                       pose_contents=pose_contents, preselect_per_bin=preselect_per_bin,
                                       min_agreement=CONSISTENT_AGREEMENT if min_agreement is None else min_agreement)
    suggestion = "with suggested bins" if guesses else "without suggestions (no pose net)"
    click.echo(f"Wrote {out / 'sheet.png'} ({count} candidate views x {contents} cars), "
               f"{out / 'candidates.safetensors'} and {out / 'views.toml'} {suggestion}; annotate views.toml next.")
    if guesses:
        click.echo(consistency_summary(guesses))


@dataset.command("synth")
@click.option("--generator", "generator_path", required=True, help="Generator weights (any format `gan convert` reads).")
@click.option("--views", "annotation", required=True, help="The annotated views.toml.")
@click.option("--candidates", default=None,
              help="The candidates file [default: the one views.toml names, else candidates.safetensors beside it].")
@click.option("--contents", type=int, required=True, help="Content codes (cars), each rendered in every chosen view.")
@click.option("--out", "out_dir", required=True, help="Dataset folder: new, empty, or one to resume or extend.")
@click.option("--segmenter", default="world", show_default=True,
              help="world (embedded), world:PATH, maskrcnn:PATH (torchvision COCO weights) or detectron2:PATH.")
@click.option("--truncation", type=float, default=0.7, show_default=True, help="Truncation psi of the content codes.")
@click.option("--min-mask-area", type=float, default=0.1, show_default=True,
              help="Keep an image only if its one car covers at least this fraction of it.")
@click.option("--seed", type=int, default=0, show_default=True, help="Content c draws its code from (seed, c).")
@click.option("--batch", type=int, default=32, show_default=True, help="Images per generator/segmenter batch.")
@click.option("--device", default="auto", show_default=True, help="'auto' (CUDA when available), 'cpu' or 'cuda'.")
def dataset_synth(generator_path, annotation, candidates, contents, out_dir, segmenter, truncation, min_mask_area,
                  seed, batch, device):
    """Render every content code in every annotated view, segment, filter, and write a multi-view dataset.

    An image is kept only if the segmenter finds exactly one car covering at least --min-mask-area of it.
    The folder holds images/, masks/, latents/, meta.jsonl (with each view's initial camera from its bin),
    filtered.jsonl, view_codes.safetensors, sheet.png and manifest.json with the kept and filtered counts.
    The same seed gives the same files; rerun to resume, or with a larger --contents to extend.

    \b
    Example:
      ganverse3d dataset synth --generator G.safetensors --views views/views.toml --contents 1000 --out data
    """
    from .dataset.synth import synthesize

    manifest = synthesize(out_dir, generator_path, annotation, contents, candidates=candidates, segmenter=segmenter,
                          truncation=truncation, seed=seed, min_mask_area=min_mask_area, batch=batch, device=device)
    counts = manifest["counts"]
    click.echo(f"Wrote {out_dir}: kept {counts['kept']} of {counts['candidates']} images ({contents} cars x "
               f"{len(manifest['views'])} views); filtered {counts['filtered']['instances']} for not showing one car "
               f"and {counts['filtered']['mask_area']} for a mask under {min_mask_area:g} of the image.")


@dataset.command("world")
@click.option("--cars", type=int, required=True, help="Number of world cars (contents).")
@click.option("--views", type=int, default=12, show_default=True, help="Cameras per car, spread over 360 degrees.")
@click.option("--resolution", type=int, default=64, show_default=True, help="Image width and height, 16 to 2048.")
@click.option("--seed", type=int, default=0, show_default=True, help="Car c is item c of `world render --seed S`.")
@click.option("--out", "out_dir", required=True, help="Dataset folder: new, empty, or one to resume or extend.")
def dataset_world(cars, views, resolution, seed, out_dir):
    """The oracle multi-view dataset: each world car from K exact cameras, with its ground-truth mesh.

    Same format as `dataset synth` (meta.jsonl cameras are the exact ones), plus meshes/ID.glb.

    \b
    Example:
      ganverse3d dataset world --cars 500 --views 12 --resolution 64 --seed 11 --out world-mv
    """
    from .dataset.world_multiview import write_world_multiview

    manifest = write_world_multiview(out_dir, cars, views, resolution, seed)
    click.echo(f"Wrote {out_dir}: {manifest['counts']['kept']} images ({cars} cars x {views} views) at "
               f"{resolution}x{resolution} with exact cameras, masks and meshes.")


@cli.group()
def segmenter():
    """Car segmenters: train the embedded world segmenter, score any segmenter."""


@segmenter.command("train")
@click.option("--data", required=True, help="Folder with images/NAME.png and masks/NAME.png (`world render`).")
@click.option("--out", "out_path", required=True, help="Output bundle, .safetensors.")
@click.option("--resolution", type=int, default=64, show_default=True, help="Training size (multiple of 8).")
@click.option("--width", type=int, default=16, show_default=True, help="Channels of the U-Net's first level.")
@click.option("--epochs", type=int, default=12, show_default=True, help="Passes over the training split.")
@click.option("--batch", type=int, default=32, show_default=True, help="Minibatch size.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed for initialisation, split and batches.")
@click.option("--device", default="auto", show_default=True, help="'auto' (CUDA when available), 'cpu' or 'cuda'.")
def segmenter_train(data, out_path, resolution, width, epochs, batch, seed, device):
    """Train the small world segmenter (a U-Net) on world renders and masks; 10 % are held out and scored.

    \b
    Example:
      ganverse3d world render --n 3000 --resolution 64 --seed 7 --out world-seg
      ganverse3d segmenter train --data world-seg --out world_segmenter.safetensors
    """
    from .dataset.train_segmenter import SegmenterTrainConfig, train_world_segmenter

    if not out_path.endswith(".safetensors"):
        raise InputError(f"--out must be a .safetensors file, not {out_path}.")
    if width < 1:
        raise InputError(f"--width must be at least 1, not {width}.")
    config = SegmenterTrainConfig(data=data, resolution=resolution, width=width, epochs=epochs, batch=batch, seed=seed)
    evaluation = train_world_segmenter(config, out_path, device=device)
    click.echo(f"Wrote {out_path}. Held out ({evaluation['count']} images): mean IoU {evaluation['iou_mean']:.4f}, "
               f"exactly one car found in {evaluation['single_instance_rate']:.1%}.")


@segmenter.command("eval")
@click.option("--data", required=True, help="Folder with images/NAME.png and masks/NAME.png, one car each.")
@click.option("--segmenter", "spec", default="world", show_default=True,
              help="world (embedded), world:PATH, maskrcnn:PATH or detectron2:PATH.")
@click.option("--device", default="auto", show_default=True, help="'auto' (CUDA when available), 'cpu' or 'cuda'.")
def segmenter_eval(data, spec, device):
    """Score a segmenter against ground-truth masks: mean IoU and how often it finds exactly one car.

    \b
    Example:
      ganverse3d world render --n 500 --resolution 64 --seed 8 --out world-seg-test
      ganverse3d segmenter eval --data world-seg-test
    """
    from .dataset.segment import load_segmenter
    from .dataset.train_segmenter import evaluate_segmenter, load_masked_images

    model = load_segmenter(spec, device=device)
    images, masks = load_masked_images(data)
    evaluation = evaluate_segmenter(model, images, masks)
    click.echo(f"{spec} on {data} ({evaluation['count']} images): mean IoU {evaluation['iou_mean']:.4f}, exactly one "
               f"car found in {evaluation['single_instance_rate']:.1%}.")


# Guards against an extra digit typed by mistake; no preview needs more pixels than this.
_MAX_RENDER_RESOLUTION = 4096


@cli.command("render")
@click.argument("mesh_path", metavar="MESH")
@click.option("-o", "--out", "out_path", required=True, help="Output image, .png.")
@click.option("--azimuth", type=float, default=30.0, show_default=True,
              help="Camera azimuth in degrees: 0 sees the front (+Z), 90 the +X side.")
@click.option("--elevation", type=float, default=15.0, show_default=True,
              help="Camera elevation in degrees, from -90 to 90.")
@click.option("--distance", type=float, default=2.5, show_default=True,
              help="Camera distance from the origin, > 0 (a car fits the unit sphere).")
@click.option("--fov", type=float, default=40.0, show_default=True,
              help="Vertical field of view in degrees, between 0 and 180.")
@click.option("--resolution", type=int, default=256, show_default=True,
              help=f"Image width and height in pixels, 1 to {_MAX_RENDER_RESOLUTION}.")
@click.option("--background", default="#ffffff", show_default=True,
              help="Background colour: #RRGGBB, or R,G,B with values in [0, 1].")
@click.option("--lighting/--no-lighting", default=True, show_default=True,
              help="Shade with a directional light plus ambient, or show the bare texture.")
@click.option("--fit", is_flag=True, help="Centre the mesh and scale it into the unit sphere first.")
@click.option("--mask-out", "mask_path", default=None, help="Also write the silhouette (white = mesh), .png.")
@click.option("--device", default="auto", show_default=True, help="'auto' (CUDA when available), 'cpu' or 'cuda'.")
def render(mesh_path, out_path, azimuth, elevation, distance, fov, resolution, background, lighting, fit,
           mask_path, device):
    """Render a .glb, .gltf or .obj mesh with the project's DIB-R renderer.

    The mesh is read in its own object space (+Y up, front toward +Z), as exported by the project; use
    --fit for meshes made in other units. Faces are drawn from both sides, like Blender does.

    \b
    Example (a 512-pixel front three-quarter view and its mask on a dark background):
      ganverse3d render car.glb --azimuth 30 --elevation 15 --distance 2.5 --fov 40 \\
          --resolution 512 --background "#202020" --mask-out car_mask.png -o car.png
    """
    # Imported here so that `ganverse3d --help` and the other commands do not pay for torch.
    import torch
    from PIL import Image

    from .devices import resolve_device
    from .export import load_mesh
    from .files import atomic_path, to_uint8
    from .geometry import Camera
    from .render import Lighting, render_mesh

    _check_render_camera(azimuth, elevation, distance, fov, resolution)
    background_rgb = _parse_colour(background)
    outputs = [Path(out_path)] + ([Path(mask_path)] if mask_path else [])
    _check_png_outputs(outputs)
    device = resolve_device(device)
    mesh = load_mesh(mesh_path)

    verts = mesh.verts
    if fit:
        centre = (verts.min(dim=0).values + verts.max(dim=0).values) / 2
        radius = (verts - centre).norm(dim=1).max().clamp_min(1e-12)
        verts = (verts - centre) / radius
    # Opening the outputs before rendering reports an unwritable path at once, and either both files
    # appear or neither does.
    with contextlib.ExitStack() as stack:
        temporary_paths = [stack.enter_context(atomic_path(path, suffix=".png")) for path in outputs]
        with torch.no_grad():
            result = render_mesh(
                verts[None].to(device), mesh.faces.to(device), mesh.face_uvs.to(device), mesh.texture[None].to(device),
                Camera.create(azimuth, elevation, distance, fov, device=device), resolution,
                background=torch.tensor(background_rgb, device=device), lighting=Lighting() if lighting else None,
                soft=False, cull_backfaces=False)  # foreign files do not always wind their faces consistently
        for temporary, image in zip(temporary_paths, (result.image[0], result.mask[0])):
            Image.fromarray(to_uint8(image)).save(temporary, format="PNG")
    click.echo(f"Wrote {', '.join(str(path) for path in outputs)}.")


def _check_render_camera(azimuth: float, elevation: float, distance: float, fov: float, resolution: int) -> None:
    if not all(math.isfinite(value) for value in (azimuth, elevation, distance, fov)):
        raise InputError("--azimuth, --elevation, --distance and --fov must be finite numbers.")
    if not 1 <= resolution <= _MAX_RENDER_RESOLUTION:
        raise InputError(f"--resolution must be from 1 to {_MAX_RENDER_RESOLUTION} pixels, not {resolution}.")
    if distance <= 0:
        raise InputError(f"--distance must be greater than 0, not {distance:g}.")
    if not 0 < fov < 180:
        raise InputError(f"--fov must lie between 0 and 180 degrees, not {fov:g}.")
    if not -90 <= elevation <= 90:
        raise InputError(f"--elevation must lie between -90 and 90 degrees, not {elevation:g}.")


def _parse_colour(text: str) -> tuple[float, float, float]:
    """'#RRGGBB' (or 'RRGGBB') or 'R,G,B' with components in [0, 1] -> an RGB triple in [0, 1]."""
    text = text.strip()
    if re.fullmatch(r"#?[0-9a-fA-F]{6}", text):
        digits = text.lstrip("#")
        return tuple(int(digits[i:i + 2], 16) / 255 for i in (0, 2, 4))
    with contextlib.suppress(ValueError):
        components = tuple(float(part) for part in text.split(","))
        if len(components) == 3 and all(0 <= c <= 1 for c in components):
            return components
    raise InputError(f"--background must be #RRGGBB or R,G,B with values in [0, 1], not {text!r}.")


def _check_png_outputs(paths: list[Path]) -> None:
    from .files import check_output_file

    for path in paths:  # all checked up front, so a bad second output leaves no new folder for the first
        check_output_file(path, (".png",))
    if len(paths) == 2 and paths[0].resolve() == paths[1].resolve():
        raise InputError("--mask-out must differ from the output image.")


@cli.group()
def inverse():
    """The inverse-graphics network (paper Sec. 3.2): train it on a multi-view dataset, evaluate it."""


@inverse.command("train")
@click.option("--data", default=None, help="Multi-view dataset folder (`ganverse3d dataset synth` or `dataset world`).")
@click.option("--config", "config_path", default=None, help="TOML file setting any training field (see below).")
@click.option("--iterations", type=int, default=None, help="Training steps [default: 200000, or the config's].")
@click.option("--batch", type=int, default=None, help="Images per step [default: 16].")
@click.option("--resolution", type=int, default=None, help="Input and render size, a power of two [default: 64].")
@click.option("--camera-mode", type=click.Choice(["learn", "fixed"]), default=None,
              help="learn: one camera per view, from its bin (the paper); fixed: the dataset's cameras [default: learn].")
@click.option("--multiview/--no-multiview", default=None, help="Eq. 2's second view [default: on].")
@click.option("--image-cameras/--view-cameras", default=None,
              help="Render each image in the camera head's estimate for it, pulled toward its view's camera (ours), "
                   "or in its view's camera (the paper) [default: view cameras].")
@click.option("--vgg-weights", default=None, help="torchvision VGG-16 state dict for LPIPS [default: perceptual loss off].")
@click.option("--seed", type=int, default=None, help="Seed for initialisation and batches [default: 0].")
@click.option("--runs", "runs_root", default="runs", show_default=True, help="Folder for run folders (inverse/NNNNN-name).")
@click.option("--resume", "resume_dir", default=None, help="Continue this run folder (its config.json wins; "
                                                           "--iterations may extend it).")
@click.option("--device", default="auto", show_default=True, help="'auto' (CUDA when available), 'cpu' or 'cuda'.")
def inverse_train(data, config_path, iterations, batch, resolution, camera_mode, multiview, image_cameras, vgg_weights,
                  seed, runs_root, resume_dir, device):
    """Train the inverse-graphics network f: image -> mesh, UV texture, camera.

    Writes runs/inverse/NNNNN-NAME/ with config.json, metrics.jsonl (losses, IoU, camera movement in
    degrees, held-out IoU), samples/*.png (input | render in its view | 3 other views), cameras.json and
    checkpoints/inverse.safetensors; kill it at any time and --resume the run folder. A --config TOML file
    may set any field of ganverse3d.inverse.train.TrainConfig (lr, camera_lr, loss weights such as
    iou_weight, holdout_fraction, sigmainv, ...); command-line options override it.

    \b
    Examples:
      ganverse3d inverse train --data gan-views-data
      ganverse3d inverse train --data world-multiview --camera-mode fixed --iterations 20000
      ganverse3d inverse train --data gan-views-data --image-cameras
      ganverse3d inverse train --resume runs/inverse/00000-gan-views-data-r64-learn
    """
    from .inverse.train import TrainConfig, read_config_file, train

    if resume_dir is not None:
        click.echo(f"Wrote {train(runs_root=runs_root, resume=resume_dir, device=device, iterations=iterations)}.")
        return
    settings = read_config_file(config_path) if config_path else {}
    overrides = dict(data=data, iterations=iterations, batch=batch, resolution=resolution, camera_mode=camera_mode,
                     multiview=multiview, image_cameras=image_cameras, vgg_weights=vgg_weights, seed=seed)
    settings.update({name: value for name, value in overrides.items() if value is not None})
    if "data" not in settings:
        raise InputError("Give --data (a multi-view dataset folder) or --resume (a run folder).")
    try:
        config = TrainConfig(**settings)
    except TypeError as error:
        raise InputError(f"Bad training configuration: {error}.") from None
    click.echo(f"Wrote {train(config, runs_root=runs_root, device=device)}.")


@inverse.command("eval")
@click.option("--model", "model_path", required=True,
              help="Model bundle (runs/inverse/.../checkpoints/inverse.safetensors), or 'oracle' or 'gan' (embedded).")
@click.option("--data", required=True, help="Multi-view dataset folder; world sets with meshes/ add 3D metrics.")
@click.option("--out", "out_dir", default=None, help="Folder for metrics.json and turntables.png.")
@click.option("--turntables", type=click.IntRange(0, 256), default=8, show_default=True,
              help="Items on the turntable sheet (input + 6 azimuths, true mesh below when known).")
@click.option("--contents", "max_contents", type=click.IntRange(min=1), default=None,
              help="Evaluate only the first N contents (by id) [default: all].")
@click.option("--device", default="auto", show_default=True, help="'auto' (CUDA when available), 'cpu' or 'cuda'.")
def inverse_eval(model_path, data, out_dir, turntables, max_contents, device):
    """Evaluate an inverse-graphics model on a multi-view dataset.

    On the model's own training dataset only its held-out contents count, with the cameras it learned
    (the paper's re-projected 2D IoU); on another dataset every image counts with the dataset's cameras.
    World datasets with ground-truth meshes add novel-view silhouette IoU over 6 azimuths and Chamfer
    distance (both after scale normalisation); the camera estimate's azimuth error is reported always, and
    with several views per car how much the predicted shape changes across one car's views relative to
    across cars in one view (near 0.5 for the embedded model on world cars; 1 or more: the shape follows the
    view more than the car).

    \b
    Examples:
      ganverse3d inverse eval --model runs/inverse/00000-x/checkpoints/inverse.safetensors \\
          --data world-test --out eval-world-test
      ganverse3d inverse eval --model oracle --data gan-mv-64 --contents 30
    """
    from .inverse.evaluate import evaluate, format_metrics

    metrics = evaluate(model_path, data, out=out_dir, device=device, turntables=turntables, max_contents=max_contents)
    click.echo(format_metrics(metrics))
    if out_dir:
        click.echo(f"Wrote {Path(out_dir) / 'metrics.json'}" + (f" and {Path(out_dir) / 'turntables.png'}."
                                                                  if turntables else "."))


@cli.command("reconstruct")
@click.argument("photo", metavar="PHOTO")
@click.option("-o", "--out", "out_path", required=True, help="Output mesh, .glb or .obj (with .mtl and texture).")
@click.option("--mask", "mask_path", default=None,
              help="The car's mask, same size as PHOTO (white = car) [default: PHOTO's alpha, else the segmenter].")
@click.option("--model", "model_path", default=None,
              help="Inverse-graphics bundle, or an embedded model: 'oracle' (trained on world renders with exact "
                   "cameras) or 'gan' (trained the paper's way, on the generator's images) [default: oracle].")
@click.option("--segmenter", default="world", show_default=True,
              help="Segmenter for photos without mask: world, world:PATH, maskrcnn:PATH or detectron2:PATH.")
@click.option("--device", default="auto", show_default=True, help="'auto' (CUDA when available), 'cpu' or 'cuda'.")
def reconstruct(photo, out_path, mask_path, model_path, segmenter, device):
    """Reconstruct a textured 3D mesh of the one car in PHOTO.

    Reads any common image (EXIF orientation honoured; an alpha channel marks the car), frames the car
    the way the training data does, predicts mesh, UV texture and camera, writes the mesh and
    NAME_turntable.png beside it (the framed photo and 6 views), and prints the camera.

    \b
    Examples:
      ganverse3d reconstruct photo.jpg -o car.glb
      ganverse3d reconstruct photo.jpg --mask photo_mask.png --model gan -o car.obj
    """
    from .api import check_mesh_output, describe_camera, reconstruct as reconstruct_photo, write_reconstruction

    check_mesh_output(out_path)
    result = reconstruct_photo(photo, mask=mask_path, model=model_path, segmenter=segmenter, device=device)
    written = write_reconstruction(result, out_path)
    click.echo(f"Camera: {describe_camera(result.camera)}.")
    click.echo(f"Wrote {', '.join(str(path) for path in written)}.")


def main(argv=None) -> int:
    """Console-script entry point: runs the CLI and maps :class:`InputError` to exit code 2."""
    try:
        cli.main(args=argv, prog_name="ganverse3d", standalone_mode=False)
    except InputError as error:
        click.echo(f"Error: {error}", err=True)
        return 2
    except click.exceptions.Abort:
        click.echo("Aborted.", err=True)
        return 1
    except click.ClickException as error:
        error.show()
        return 2 if isinstance(error, click.UsageError) or error.exit_code == 2 else error.exit_code
    except click.exceptions.Exit as done:
        return done.exit_code
    return 0


if __name__ == "__main__":
    sys.exit(main())
