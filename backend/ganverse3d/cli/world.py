"""``ganverse3d world``: the procedural car world."""

from __future__ import annotations

from pathlib import Path

import click

from .options import seed_option


@click.group()
def world():
    """The procedural car world: parametric cars, scenes and ground-truth renders."""


@world.command("render")
@click.option("--n", "count", type=int, required=True, help="Number of items (images) in the dataset, at least 1.")
@click.option("--resolution", type=int, default=128, show_default=True, help="Image width and height, 16 to 2048.")
@seed_option("Dataset seed, 0 or more; item i uses (seed, i).")
@click.option("--out", "out_dir", required=True, help="Dataset folder: new, empty, or one to resume.")
def world_render(count, resolution, seed, out_dir):
    """Render N procedural cars in random scenes into a dataset folder.

    Each item gets images/ID.png, masks/ID.png (255 = car), parts/ID.png (part label + 1: body, window,
    wheel, headlight, taillight, plate; 0 = background) and meshes/ID.glb (the ground-truth car), plus a line in
    meta.jsonl (body type, shape parameters, camera azimuth / elevation / distance / fov). manifest.json
    describes the folder and sheet.png shows the first 64 images. The same seed gives the same files;
    running the command again on the folder skips finished items, so an interrupted run resumes.

    \b
    Example (64 cars at 128 x 128, then extend the same dataset to 1000):
      ganverse3d world render --n 64 --resolution 128 --seed 0 --out world64
      ganverse3d world render --n 1000 --resolution 128 --seed 0 --out world64
    """
    from ..world.dataset import write_world_dataset

    manifest = write_world_dataset(out_dir, count, resolution, seed)
    click.echo(f"Wrote {manifest['counts']['items']} items at {resolution}x{resolution} to {out_dir} "
               f"(contact sheet: {Path(out_dir) / 'sheet.png'}).")
