"""``ganverse3d reconstruct``: one photo of a car to a textured mesh (the main job)."""

from __future__ import annotations

import click

from .options import device_option, model_option, segmenter_option


@click.command("reconstruct")
@click.argument("photo", metavar="PHOTO")
@click.option("-o", "--out", "out_path", required=True, help="Output mesh, .glb or .obj (with .mtl and texture).")
@click.option("--mask", default=None,
              help="The car's mask, same size as PHOTO (white = car) [default: PHOTO's alpha, else the segmenter].")
@model_option(required=False)
@segmenter_option
@click.option("--quality", default="fast", show_default=True,
              help="fast, balanced or best: presets of --fit-steps and --texture-size (fast: 0 and 0, balanced: 50 "
                   "and 1024, best: 200 and 2048; README, 'How good is it').")
@click.option("--fit-steps", "fit_steps", type=int, default=None,
              help="Steps of fitting mesh, proportions, camera and texture to the photo through the differentiable "
                   "renderer (0 to 2000; 0 = the network's prediction; 100 take about a second on a CPU) "
                   "[default: --quality's].")
@click.option("--texture-size", "texture_size", type=int, default=None,
              help="Bake the photo itself into a texture this many pixels high and twice as wide (512 to 4096; 0 = "
                   "the network's 64 x 32 texture): the faces the photo sees take its pixels, the hidden side the "
                   "mirrored side's, the rest the network's texture [default: --quality's].")
@click.option("--part-branch", "part_branch", default=None,
              help="The part branch that cuts the car into its parts (glass, lights, plate, wheels): a bundle trained "
                   "on --model (`inverse train-parts`), or 'none' for a plain mesh [default: the shipped model's own, "
                   "if it has one].")
@device_option
def reconstruct(photo, out_path, mask, model, segmenter, quality, fit_steps, texture_size, part_branch, device):
    """Reconstruct a textured 3D mesh of the one car in PHOTO.

    Reads any common image (EXIF orientation honoured; an alpha channel marks the car), frames the car
    the way the training data does, predicts mesh, UV texture and camera, writes the mesh and
    NAME_turntable.png beside it (the framed photo and 6 views, and the parts below them), and prints the camera.
    With a part branch (the default model has one) the mesh is a part-aware car: a material per part and four
    separate wheels.

    \b
    Examples:
      ganverse3d reconstruct photo.jpg -o car.glb
      ganverse3d reconstruct photo.jpg --mask photo_mask.png --model gan -o car.obj
      ganverse3d reconstruct photo.jpg --quality best -o car.glb
      ganverse3d reconstruct photo.jpg --fit-steps 100 --texture-size 1024 -o car.glb
      ganverse3d reconstruct photo.jpg --part-branch none -o plain.glb
    """
    from ..api import (check_fit_steps, check_mesh_output, check_quality, check_texture_size, describe_camera,
                       reconstruct as reconstruct_photo, write_reconstruction)

    check_quality(quality)
    if fit_steps is not None:
        check_fit_steps(fit_steps)
    check_texture_size(texture_size)
    check_mesh_output(out_path, inputs={"photo": photo, "mask": mask})
    result = reconstruct_photo(photo, mask=mask, model=model, segmenter=segmenter, device=device,
                               quality=quality, fit_steps=fit_steps, texture_size=texture_size,
                               part_branch=part_branch)
    written = write_reconstruction(result, out_path)
    click.echo(f"Camera: {describe_camera(result.camera)}.")
    click.echo(f"Wrote {', '.join(str(path) for path in written)}.")
