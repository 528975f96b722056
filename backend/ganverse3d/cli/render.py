"""``ganverse3d render``: a mesh file through the project's DIB-R renderer."""

from __future__ import annotations

import contextlib
import re

import click

from ..errors import InputError
from .options import device_option


@click.command("render")
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
              help="Image width and height in pixels, 1 to 4096.")
@click.option("--background", default="#ffffff", show_default=True,
              help="Background colour: #RRGGBB, or R,G,B with values in [0, 1].")
@click.option("--lighting/--no-lighting", default=True, show_default=True,
              help="Shade with a directional light plus ambient, or show the bare texture.")
@click.option("--fit", is_flag=True, help="Centre the mesh and scale it into the unit sphere first.")
@click.option("--mask-out", default=None, help="Also write the silhouette (white = mesh), .png.")
@device_option
def render(mesh_path, out_path, azimuth, elevation, distance, fov, resolution, background, lighting, fit,
           mask_out, device):
    """Render a .glb, .gltf or .obj mesh with the project's DIB-R renderer.

    The mesh is read in its own object space (+Y up, front toward +Z), as exported by the project; use
    --fit for meshes made in other units. Faces are drawn from both sides, like Blender does.

    \b
    Example (a 512-pixel front three-quarter view and its mask on a dark background):
      ganverse3d render car.glb --azimuth 30 --elevation 15 --distance 2.5 --fov 40 \\
          --resolution 512 --background "#202020" --mask-out car_mask.png -o car.png
    """
    from ..api import write_render
    from ..geometry import Camera, check_camera_values

    check_camera_values(azimuth, elevation, distance, fov)
    written = write_render(mesh_path, out_path, Camera.create(azimuth, elevation, distance, fov), resolution,
                           mask_out=mask_out, background=_parse_colour(background), lighting=lighting, fit=fit,
                           device=device)
    click.echo(f"Wrote {', '.join(str(path) for path in written)}.")


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
