"""``ganverse3d neural``: StyleGAN-R, the neural renderer driven by camera, shape, texture and background."""

from __future__ import annotations

import click

from ..errors import InputError, setting
from ..files import is_file, shown_path
from .options import (config_file_option, config_option, device_option, echo_once, neural_model_option,
                      new_run_or_resume, resume_option, runs_option, segmenter_option)

_TRAIN = "ganverse3d.neural.train:TrainConfig"
# Largest tile of the sheets, which hold several: a 4096-px tile is a preview no screen shows.
MAX_TILE = 1024
MAX_AZIMUTHS = 36


@click.group()
def neural():
    """StyleGAN-R (paper Sec. 3.3): train it, and render, turn and swap reconstructed cars with it."""


@neural.command("train")
@config_option(_TRAIN, "--views", help="View annotation (views.toml of `dataset views`) naming its candidates file.")
@config_file_option
@config_option(_TRAIN, "--generator", help="StyleGAN2 to turn into StyleGAN-R: a shipped name or a bundle.")
@config_option(_TRAIN, "--inverse", help="The frozen inverse-graphics network: 'oracle', 'gan' or a bundle.")
@config_option(_TRAIN, "--discriminator",
               help="A `gan train` run's checkpoints/state.safetensors: the realism term's discriminator starts "
                    "from its D [default: from scratch].")
@config_option(_TRAIN, "--view-dims", type=int, help="Dimensions of the view code that the camera drives.")
@config_option(_TRAIN, "--standardise-shapes/--raw-shapes",
               help="Feed the shape network standardised shapes (shape swaps move the silhouette but leak colour) "
                    "or the vertices as they are (the shipped model).")
@config_option(_TRAIN, "--warmup-steps", type=int, help="Steps of the mapping network alone (StyleGAN frozen).")
@config_option(_TRAIN, "--finetune-steps", type=int, help="Steps of StyleGAN and the mapping network together.")
@config_option(_TRAIN, "--batch", type=int, help="Examples per step.")
@config_option(_TRAIN, "--finetune-lr", type=float, help="Adam learning rate of the fine-tuning.")
@config_option(_TRAIN, "--adversarial-weight", type=float, help="Weight of the realism term (0 = off).")
@config_option(_TRAIN, "--precision", type=click.Choice(["float32", "bfloat16"]),
               help="bfloat16: the trained StyleGAN's synthesis and discriminator under autocast.")
@config_option(_TRAIN, "--seed", type=int, help="Seed for initialisation and every draw.")
@runs_option("neural")
@resume_option("--finetune-steps may extend it; --precision may change.")
@device_option
@click.pass_context
def neural_train(ctx, config_path, runs_root, resume_dir, device, **_config_fields):
    """Train StyleGAN-R: the mapping network's warm-up, then fine-tuning with StyleGAN through the inverse network.

    Writes runs/neural/NNNNN-NAME/ with config.json, metrics.jsonl (every loss term; fid-world-g0, how far
    StyleGAN-R's renders drift from the generator's own images), view_dims.json (how much of the viewpoint
    the chosen view dimensions keep), samples/*.png (G0's image | DIB-R render of the inverse network's
    reading | StyleGAN-R's render | 6 azimuths) and checkpoints/stylegan_r.safetensors; kill it at any time
    and --resume the run folder.

    \b
    Examples:
      ganverse3d neural train --views training/views-world64-L2/views.toml
      ganverse3d neural train --views training/views-world64-L2/views.toml --inverse gan --finetune-steps 600
      ganverse3d neural train --resume runs/neural/00000-default-gan-v128 --finetune-steps 1200
      torchrun --standalone --nproc_per_node=4 -m ganverse3d.cli neural train --config configs/paper/neural.toml
    """
    from ..neural.train import TrainConfig, train

    config, changes = new_run_or_resume(ctx, TrainConfig, resume_dir, "a view annotation", config_path, "views")
    echo_once(f"Wrote {train(config, runs_root=runs_root, resume=resume_dir, device=device, **changes)}.")


def _reconstruction_options(command):
    """--model, --segmenter, --quality, --neural-model and --device: how a photo becomes what StyleGAN-R reads."""
    options = (
        click.option("--model", "model", default=None,
                     help="Inverse-graphics model that reconstructs the photo: a shipped name or a bundle "
                          "[default: the one the StyleGAN-R was trained with]."),
        segmenter_option,
        click.option("--quality", default="fast", show_default=True,
                     help="fast, balanced or best: 0, 50 or 200 steps of fitting mesh, camera and texture to "
                          "the photo (StyleGAN-R reads the network's texture: no photo is baked into it)."),
        neural_model_option,
        device_option,
    )
    for option in reversed(options):
        command = option(command)
    return command


_mask_option = click.option(
    "--mask", default=None,
    help="The car's mask, same size as PHOTO (white = car) [default: PHOTO's alpha, else the segmenter].")


def _size_option(default: int, largest: int, what: str):
    return click.option("--size", type=int, default=default, show_default=True,
                        help=f"{what} in pixels, from 1 to {largest}, StyleGAN-R's images upscaled (bicubic); 0 = "
                             f"StyleGAN-R's own resolution.")


def _check_size(size: int, largest: int) -> None:
    if not 0 <= size <= largest:
        raise InputError(f"{setting('size')} must be 0 (StyleGAN-R's own resolution) or from 1 to {largest} pixels, "
                         f"not {size}.")


def _check_png_output(out_path, inputs: dict):
    """The output PNG, checked before any work: a writable .png that is none of ``inputs``."""
    from ..files import check_output_file, check_outputs

    out = check_output_file(out_path, (".png",))
    check_outputs([out], inputs, "out_path")
    return out


def _check_background(background) -> None:
    if background is not None and not is_file(background):
        raise InputError(f"The {setting('background')} image {shown_path(background)} does not exist.")


def _reconstruct(photo, mask, model, segmenter, quality, neural_model, device, mask_setting: str = "mask"):
    """The photo reconstructed by ``model``, by default the StyleGAN-R's teacher, whose readings it was trained on;
    a message that asks for a mask names ``mask_setting``, the option of this photo's."""
    from ..api import describe_camera, neural_teacher, reconstruct

    try:
        result = reconstruct(photo, mask=mask, model=model or neural_teacher(neural_model), segmenter=segmenter,
                             device=device, quality=quality, texture_size=0)
    except InputError as error:
        raise InputError(error.message.replace(setting("mask"), setting(mask_setting))) from None
    click.echo(f"Camera of {shown_path(photo)}: {describe_camera(result.camera)}.")
    return result


def _resized(images, size: int):
    """Images [N, 3, H, W] in [0, 1] scaled to [N, 3, size, size] (bicubic, antialiased when shrinking)."""
    import torch.nn.functional as F

    if images.shape[-2:] == (size, size):
        return images
    return F.interpolate(images, size=(size, size), mode="bicubic", align_corners=False, antialias=True).clamp(0, 1)


def _write_png(out, image) -> None:
    from ..files import png_bytes, write_files

    written = write_files({out: png_bytes(image)})
    click.echo(f"Wrote {', '.join(str(path) for path in written)}.")


@neural.command("render")
@click.argument("photo", metavar="PHOTO")
@click.option("-o", "--out", "out_path", required=True, help="Output image, .png.")
@click.option("--azimuth", type=float, default=None,
              help="Camera azimuth in degrees: 0 sees the car's front, 90 its +X side [default: the photo's].")
@click.option("--elevation", type=float, default=None,
              help="Camera elevation in degrees, from -90 to 90 [default: the photo's].")
@click.option("--distance", type=float, default=None,
              help="Camera distance from the car's centre, > 0, in object units (a car fits the unit sphere) "
                   "[default: the photo's].")
@click.option("--fov", type=float, default=None,
              help="Vertical field of view in degrees, between 0 and 180; with another than the StyleGAN-R's, the car "
                   "appears as large as that camera sees it [default: the StyleGAN-R's].")
@click.option("--background", default=None,
              help="An image whose centred crop (of the generator's content box) becomes the background [default: the "
                   "photo's own, car removed].")
@_size_option(256, 4096, "Output width and height")
@_mask_option
@_reconstruction_options
def neural_render(photo, out_path, azimuth, elevation, distance, fov, background, size, mask, model, segmenter,
                  quality, neural_model, device):
    """Reconstruct the car in PHOTO and render it with StyleGAN-R from a camera.

    The camera is given as for `ganverse3d render` (degrees and object units, looking at the car's centre);
    the values not given are the photo's as reconstructed, printed first.

    \b
    Examples:
      ganverse3d neural render photo.jpg --azimuth 90 -o side.png
      ganverse3d neural render photo.jpg --azimuth 200 --elevation 20 --distance 4.5 --size 512 -o back.png
      ganverse3d neural render photo.jpg --azimuth 30 --background street.jpg \\
          --neural-model runs/neural/00000-default-gan-v128/checkpoints/stylegan_r.safetensors -o car.png
    """
    from ..api import check_quality, load_neural_model, neural_scene
    from ..geometry import Camera, check_camera_values

    out = _check_png_output(out_path, {"photo": photo, "mask": mask, "background": background})
    # The values given, before any work; the photo's camera fills in the others later.
    check_camera_values(*(value if value is not None else stand_in
                          for value, stand_in in zip((azimuth, elevation, distance, fov), (0.0, 0.0, 1.0, 30.0))))
    _check_size(size, 4096)
    _check_background(background)
    check_quality(quality)
    renderer = load_neural_model(neural_model, device)
    result = _reconstruct(photo, mask, model, segmenter, quality, neural_model, device)
    photo_camera = result.camera
    camera = Camera.create(float(photo_camera.azimuth[0]) if azimuth is None else azimuth,
                           float(photo_camera.elevation[0]) if elevation is None else elevation,
                           float(photo_camera.distance[0]) if distance is None else distance,
                           renderer.fov_y if fov is None else fov)
    image = neural_scene(result, background, neural_model, device).render(camera)
    _write_png(out, _resized(image[None], size or renderer.resolution)[0])


@neural.command("turntable")
@click.argument("photo", metavar="PHOTO")
@click.option("-o", "--out", "out_path", required=True, help="Output sheet, .png.")
@click.option("--azimuths", type=int, default=8, show_default=True,
              help=f"StyleGAN-R views after the first three tiles, 1 to {MAX_AZIMUTHS}: 360 / (N + 1) degrees apart "
                   f"from the photo's azimuth on, at its elevation and distance.")
@click.option("--background", default=None,
              help="An image whose centred crop (of the generator's content box) becomes StyleGAN-R's background "
                   "[default: the photo's own, car removed].")
@_size_option(128, MAX_TILE, "Side of each tile")
@_mask_option
@_reconstruction_options
def neural_turntable(photo, out_path, azimuths, background, size, mask, model, segmenter, quality, neural_model,
                     device):
    """Reconstruct the car in PHOTO and turn it with StyleGAN-R: the dual renderer of the paper's Fig. 7.

    One row of square tiles: the photo framed as the reconstruction sees it | the reconstructed mesh (the
    network's texture, unlit) rendered by DIB-R in the photo's camera over the framed photo, the car's own
    pixels grey (grey shows where the mesh misses the car) | StyleGAN-R in the photo's camera | StyleGAN-R
    from --azimuths more azimuths.

    \b
    Examples:
      ganverse3d neural turntable photo.jpg -o sheet.png
      ganverse3d neural turntable photo.jpg --azimuths 11 --size 256 --background street.jpg -o sheet.png
    """
    import torch

    from ..api import check_quality, load_neural_model, neural_scene
    from ..files import image_grid
    from ..geometry import Camera

    out = _check_png_output(out_path, {"photo": photo, "mask": mask, "background": background})
    if not 1 <= azimuths <= MAX_AZIMUTHS:
        raise InputError(f"{setting('azimuths')} must be from 1 to {MAX_AZIMUTHS}, not {azimuths}.")
    _check_size(size, MAX_TILE)
    _check_background(background)
    check_quality(quality)
    renderer = load_neural_model(neural_model, device)
    result = _reconstruct(photo, mask, model, segmenter, quality, neural_model, device)
    side = size or renderer.resolution
    scene = neural_scene(result, background, neural_model, device)
    camera = result.camera
    start, elevation, distance, fov_y = (float(value[0]) for value in
                                         (camera.azimuth, camera.elevation, camera.distance, camera.fov_y))
    views = torch.stack([scene.render(Camera.create(start + 360 * step / (azimuths + 1), elevation, distance, fov_y))
                         for step in range(azimuths + 1)])
    tiles = torch.cat((_resized(result.image[None], side), _mesh_in_photo(result, side)[None], _resized(views, side)))
    _write_png(out, image_grid(tiles, columns=len(tiles)))


def _mesh_in_photo(result, side: int):
    """[3, side, side]: the reconstructed mesh, unlit, in the photo's camera over the framed photo with its car grey."""
    import torch

    from ..render import render_mesh

    mesh = result.mesh
    backdrop = _resized((result.background + 0.5 * result.mask)[None], side)
    with torch.no_grad():
        rendered = render_mesh(mesh.verts[None], mesh.faces, mesh.face_uvs, mesh.texture[None], result.camera, side,
                               background=backdrop, soft=False)
    return rendered.image[0].clamp(0, 1)


@neural.command("swap")
@click.argument("photo_a", metavar="A")
@click.argument("photo_b", metavar="B")
@click.option("--parts", required=True,
              help="What A takes from B: some of shape, texture and background, comma-separated.")
@click.option("-o", "--out", "out_path", required=True, help="Output sheet, .png.")
@_size_option(256, MAX_TILE, "Side of each tile")
@click.option("--mask-a", default=None,
              help="The car's mask in A, same size as A (white = car) [default: A's alpha, else the segmenter].")
@click.option("--mask-b", default=None, help="The car's mask in B, likewise.")
@_reconstruction_options
def neural_swap(photo_a, photo_b, parts, out_path, size, mask_a, mask_b, model, segmenter, quality, neural_model,
                device):
    """Reconstruct the cars in photos A and B and give A some of B's parts (the paper's Fig. 10).

    Writes one row of three StyleGAN-R renders: A in A's camera | B in B's camera | A with B's --parts in A's
    camera (with "background", B's background and where its car stood).

    \b
    Examples:
      ganverse3d neural swap red.jpg blue.jpg --parts texture -o swap.png
      ganverse3d neural swap sedan.jpg suv.jpg --parts shape,background --size 512 -o swap.png
    """
    import torch

    from ..api import check_quality, load_neural_model, neural_scene, swap
    from ..files import image_grid

    chosen = _parse_parts(parts)
    out = _check_png_output(out_path, {"photo A": photo_a, "photo B": photo_b, "mask of A": mask_a,
                                       "mask of B": mask_b})
    _check_size(size, MAX_TILE)
    check_quality(quality)
    renderer = load_neural_model(neural_model, device)
    a, b = (_reconstruct(photo, mask, model, segmenter, quality, neural_model, device, mask_setting)
            for photo, mask, mask_setting in ((photo_a, mask_a, "mask_a"), (photo_b, mask_b, "mask_b")))
    views = torch.stack([neural_scene(item, None, neural_model, device).render(item.camera)
                         for item in (a, b, swap(a, b, chosen))])
    _write_png(out, image_grid(_resized(views, size or renderer.resolution), columns=3))


def _parse_parts(text: str) -> tuple[str, ...]:
    from ..api import SWAP_PARTS

    parts = tuple(part.strip() for part in text.split(","))
    if not all(part in SWAP_PARTS for part in parts):
        raise InputError(f"{setting('parts')} must be some of {', '.join(SWAP_PARTS)}, comma-separated, not "
                         f"{shown_path(text)}.")
    return parts
