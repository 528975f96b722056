"""``ganverse3d gan``: StyleGAN2 weights, sheets, training and FID."""

from __future__ import annotations

import re
from pathlib import Path

import click

from ..errors import InputError
from .options import EPOCHS_STAY, FEATURE_NET_HELP, config_file_option, config_option, device_option, echo_once, \
    feature_net_option, generator_option, new_run_or_resume, resume_option, runs_option, seed_option

_TRAIN = "ganverse3d.stylegan2.train:TrainConfig"
_FEATURE_NET = "ganverse3d.world.features:FeatureNetConfig"


@click.group()
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
    from ..files import check_not_an_input, check_output_file
    from ..stylegan2.load import load_generator_with_format, save_generator

    out_path = check_output_file(out_path, (".safetensors",))
    check_not_an_input(out_path, {"weights": src}, "out_path")
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


_VIEW_SHEET = "ganverse3d.stylegan2.views:write_view_content_sheet"
_LAYER_SHEET = "ganverse3d.stylegan2.views:write_layer_sheet"


@gan.command("views")
@generator_option
@click.option("-o", "--out", "out_path", required=True, help="Output sheet, .png.")
@click.option("--views", "num_views", type=click.IntRange(1, 64), default=8, show_default=True, help="Columns: view codes.")
@click.option("--contents", "num_contents", type=click.IntRange(1, 64), default=6, show_default=True,
              help="Rows: content codes.")
@config_option(_VIEW_SHEET, "--view-layers", type=int,
               help="Leading W* entries that hold the view [default: the paper's 4 of 16, scaled to the model].")
@config_option(_VIEW_SHEET, "--truncation", type=float, help="Truncation psi.")
@config_option(_VIEW_SHEET, "--seed", type=int, help="Seed of the view and content codes.")
@device_option
def gan_views(generator, out_path, num_views, num_contents, view_layers, truncation, seed, device):
    """The paper's Fig. 2: fix the view part of W* per column, sample the rest per row.

    Columns should each show one viewpoint, rows one car.

    \b
    Example:
      ganverse3d gan views --generator world64 -o views.png
    """
    from ..stylegan2.views import write_view_content_sheet

    view_layers = write_view_content_sheet(generator, out_path, num_views, num_contents, view_layers, seed=seed,
                                           truncation=truncation, device=device)
    click.echo(f"Wrote {out_path} ({num_contents} cars x {num_views} views, view = the first {view_layers} "
               f"W* entries).")


@gan.command("layers")
@generator_option
@click.option("-o", "--out", "out_path", required=True, help="Output sheet, .png.")
@click.option("--samples", type=click.IntRange(1, 32), default=4, show_default=True, help="Rows: samples.")
@config_option(_LAYER_SHEET, "--truncation", type=float, help="Truncation psi.")
@config_option(_LAYER_SHEET, "--seed", type=int, help="Seed of the samples.")
@device_option
def gan_layers(generator, out_path, samples, truncation, seed, device):
    """The paper's Appendix B: each block's features through its learned toRGB, coarse to fine, then the image.

    \b
    Example:
      ganverse3d gan layers --generator world64 -o layers.png
    """
    from ..stylegan2.views import write_layer_sheet

    resolutions = write_layer_sheet(generator, out_path, samples, seed=seed, truncation=truncation,
                                    device=device)
    click.echo(f"Wrote {out_path} (blocks {', '.join(map(str, resolutions))} px, then the image).")


@gan.command("train")
@config_option(_TRAIN, "--data",
               help="Dataset folder with images/*.png (e.g. from `ganverse3d world render`).")
@config_file_option
@config_option(_TRAIN, "--resolution", type=int, help="Training resolution (power of two).")
@config_option(_TRAIN, "--kimg", type=float, help="Training length in thousands of images.")
@config_option(_TRAIN, "--batch", type=int, help="Minibatch size.")
@config_option(_TRAIN, "--channel-base", type=int, help="channels(res) = min(base // res, max).")
@config_option(_TRAIN, "--channel-max", type=int, help="Most channels of any layer.")
@config_option(_TRAIN, "--r1-gamma", type=float, help="R1 regularisation weight.")
@config_option(_TRAIN, "--pl-weight", type=float, help="Path-length regularisation (0 = off).")
@config_option(_TRAIN, "--mirror/--no-mirror", help="Random horizontal flips.")
@config_option(_TRAIN, "--seed", type=int, help="Seed for initialisation, latents and batches.")
@config_option(_TRAIN, "--sample-every", type=int, help="Steps between sample grids.")
@config_option(_TRAIN, "--checkpoint-every", type=int, help="Steps between checkpoints.")
@config_option(_TRAIN, "--metric-every", type=int, help="Steps between FID measurements in metrics.jsonl (0 = off).")
@config_option(_TRAIN, "--feature-net",
               help=f"FID features: {FEATURE_NET_HELP} [default: the shipped world feature net].")
@config_option(_TRAIN, "--precision", type=click.Choice(["float32", "bfloat16"]),
               help="bfloat16: G's synthesis and D under autocast, about 1.8x faster on CPUs with AVX-512 BF16.")
@config_option(_TRAIN, "--view-mixing", type=float,
               help="Weight of the view-mixing loss: images mixed at --view-layers keep the first code's viewpoint "
                    "and the second's body type as the world feature net reads them (asks the first entries to "
                    "hold the view and not the car; not in StyleGAN2); 0 = off.")
@config_option(_TRAIN, "--view-layers", type=int, help="W entries that hold the view, for --view-mixing.")
@runs_option("gan")
@resume_option("--kimg, --precision, --view-mixing and --view-layers may change.")
@device_option
@click.pass_context
def gan_train(ctx, config_path, runs_root, resume_dir, device, **_config_fields):
    """Train a StyleGAN2 (non-saturating loss, lazy R1, style mixing, EMA).

    Writes runs/gan/NNNNN-NAME/ with config.json, metrics.jsonl, samples/*.png and
    checkpoints/G_ema.safetensors; kill it at any time and --resume the run folder.

    \b
    Examples:
      ganverse3d world render --n 20000 --resolution 64 --seed 1 --out world-64
      ganverse3d gan train --data world-64 --resolution 64 --kimg 200
      ganverse3d gan train --resume runs/gan/00000-world-64-r64 --kimg 400
      ganverse3d gan train --resume runs/gan/00000-world-64-r64 --kimg 600 --view-mixing 1
      ganverse3d gan train --config configs/paper/gan.toml --data car-images
    """
    from ..stylegan2.train import TrainConfig, train

    config, changes = new_run_or_resume(ctx, TrainConfig, resume_dir, "a dataset folder", config_path)
    echo_once(f"Wrote {train(config, runs_root=runs_root, resume=resume_dir, device=device, **changes)}.")


@gan.command("feature-net")
@config_option(_FEATURE_NET, "--data",
               help="World dataset folder (`ganverse3d world render`), not used to train GANs.")
@click.option("--out", "out_path", required=True, help="Output bundle, .safetensors.")
@config_option(_FEATURE_NET, "--resolution", type=int, help="Input size of the net.")
@config_option(_FEATURE_NET, "--epochs", type=int, help="Passes over the training split.")
@config_option(_FEATURE_NET, "--seed", type=int, help="Seed for initialisation, split and batches.")
@config_option(_FEATURE_NET, "--checkpoint-every", type=int,
               help="Steps between checkpoints (each measures the held-out images).")
@runs_option("feature_net")
@resume_option(EPOCHS_STAY)
@device_option
@click.pass_context
def gan_feature_net(ctx, out_path, runs_root, resume_dir, device, **_config_fields):
    """Train the small world feature net whose features give FID offline ("fid-world").

    It learns body type, azimuth (12 bins) and elevation from world renders; 10 % of the images are
    held out, and its accuracy on them is printed and stored in the bundle. Writes
    runs/feature_net/NNNNN-NAME/ (config.json, metrics.jsonl, checkpoints/; kill it at any time and --resume
    the run folder), then copies the trained bundle to --out.

    \b
    Example:
      ganverse3d world render --n 4000 --resolution 64 --seed 123 --out world-features
      ganverse3d gan feature-net --data world-features --out world_feature_net.safetensors
    """
    from ..world.features import FeatureNetConfig, train_feature_net

    config, changes = new_run_or_resume(ctx, FeatureNetConfig, resume_dir, "a world dataset folder")
    evaluation = train_feature_net(config, out_path, device=device, runs_root=runs_root, resume=resume_dir, **changes)
    echo_once(f"Wrote {out_path}. Held out ({evaluation['count']} images): body type accuracy "
              f"{evaluation['body_type_accuracy']:.1%}, azimuth bin accuracy {evaluation['azimuth_bin_accuracy']:.1%}, "
              f"median azimuth error {evaluation['azimuth_error_deg_median']:.1f} deg, mean elevation error "
              f"{evaluation['elevation_error_deg_mean']:.1f} deg.")


@gan.command("fid")
@click.argument("generator", metavar="GENERATOR")
@click.option("--data", required=True, help="Folder of real images (images/*.png or *.png).")
@click.option("--num-fakes", type=int, default=10000, show_default=True, help="Generated images to compare.")
@click.option("--num-reals", type=int, default=None, help="Use only the first N real images [default: all].")
@feature_net_option(f"FID features: {FEATURE_NET_HELP} [default: the shipped world feature net].")
@seed_option("Seed for the latents and noise.")
@device_option
def gan_fid(generator, data, num_fakes, num_reals, feature_net, seed, device):
    """Measure the FID of GENERATOR (any format `gan convert` reads) against real images.

    The number is printed with its feature extractor ("fid-world" or "fid-inception") and the sample
    sizes: FID values are comparable only for the same extractor and sizes.

    \b
    Example:
      ganverse3d gan fid runs/gan/00000-world-64-r64/checkpoints/G_ema.safetensors --data world-64
    """
    from ..stylegan2 import load_generator
    from ..stylegan2.metrics import compute_fid, load_feature_extractor

    if num_fakes < 2 or (num_reals is not None and num_reals < 2):
        raise InputError("--num-fakes and --num-reals must be at least 2.")
    extractor = load_feature_extractor(feature_net, device)
    G = load_generator(generator, device=device)
    result = compute_fid(G, data, num_fakes, extractor, num_reals=num_reals, seed=seed)
    click.echo(f"{result.key} {result.value:.3f} ({result.num_real} real, {result.num_fake} generated images)")
