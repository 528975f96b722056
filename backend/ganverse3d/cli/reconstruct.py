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
@click.option("--fit-steps", "fit_steps", type=int, default=0, show_default=True,
              help="Steps of fitting mesh, proportions, camera and texture to the photo through the differentiable "
                   "renderer (0 to 2000; 0 = the network's prediction; 100 take about a second on a CPU). It "
                   "matches the photo better but, on held-out world cars, the shape worse (README).")
@device_option
def reconstruct(photo, out_path, mask, model, segmenter, fit_steps, device):
    """Reconstruct a textured 3D mesh of the one car in PHOTO.

    Reads any common image (EXIF orientation honoured; an alpha channel marks the car), frames the car
    the way the training data does, predicts mesh, UV texture and camera, writes the mesh and
    NAME_turntable.png beside it (the framed photo and 6 views), and prints the camera.

    \b
    Examples:
      ganverse3d reconstruct photo.jpg -o car.glb
      ganverse3d reconstruct photo.jpg --mask photo_mask.png --model gan -o car.obj
      ganverse3d reconstruct photo.jpg --fit-steps 100 -o car.glb
    """
    from ..api import check_mesh_output, describe_camera, reconstruct as reconstruct_photo, write_reconstruction

    check_mesh_output(out_path, inputs={"photo": photo, "mask": mask})
    result = reconstruct_photo(photo, mask=mask, model=model, segmenter=segmenter, device=device,
                               fit_steps=fit_steps)
    written = write_reconstruction(result, out_path)
    click.echo(f"Camera: {describe_camera(result.camera)}.")
    click.echo(f"Wrote {', '.join(str(path) for path in written)}.")
