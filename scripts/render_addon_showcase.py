"""Render docs/blender_import.png: docs/example_car.png imported by the add-on, rendered with Cycles.

    python scripts/render_addon_showcase.py [--backend-python PY] [--out PATH]              (the bpy module)
    blender -b --python scripts/render_addon_showcase.py -- --backend-python ~/ganverse3d-env/bin/python

The photo goes through the add-on's own operator (``bpy.ops.ganverse3d.import_photo``), exactly as a user's
import does, with the backend worker started from ``--backend-python`` (default: this interpreter, which has
the backend when this runs in the project's virtual environment). The sheet shows, in two rows of three:
the photo; the car rendered from the camera the add-on created, over the framed photo; and the car on a
ground plane from four azimuths. 256 px tiles, 16 Cycles samples, no denoising: about a minute on a CPU.
"""

from __future__ import annotations

import argparse
import math
import shutil
import sys
import tempfile
from pathlib import Path

import bpy
import numpy as np  # bundled with Blender and with the bpy module
from mathutils import Vector

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))
from blender_png import enable_addon, import_photo, save_png  # noqa: E402  (beside this script)
TILE = 256
SAMPLES = 16
ORBIT_AZIMUTHS_DEG = (30, 120, 210, 300)  # around Blender's Z; 0 looks at the car's front (from -Y)
ORBIT_ELEVATION_DEG = 20
PADDING = 4


def parse_arguments() -> argparse.Namespace:
    # Under `blender --python`, the script's own arguments follow "--".
    argv = sys.argv[sys.argv.index("--") + 1:] if "--" in sys.argv else sys.argv[1:]
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backend-python", default=sys.executable,
                        help="Python with the ganverse3d package [default: this interpreter]")
    parser.add_argument("--photo", type=Path, default=ROOT / "docs" / "example_car.png")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "blender_import.png")
    return parser.parse_args(argv)


def import_car(photo: Path, backend_python: str):
    """A fresh empty scene with the car and its camera, imported through the add-on's operator."""
    enable_addon(backend_python)
    scene = bpy.context.scene
    scene.render.resolution_x = scene.render.resolution_y = TILE
    scene.render.resolution_percentage = 100
    import_photo(photo, backend_python)
    stem = photo.stem
    return scene, bpy.data.objects[f"car_{stem}"], bpy.data.objects[f"camera_{stem}"]


def stage(scene) -> bpy.types.Object:
    """Cycles settings, a sky-grey world, a sun, and a ground plane (returned, so it can be hidden)."""
    scene.render.engine = "CYCLES"
    scene.cycles.device = "CPU"
    scene.cycles.samples = SAMPLES
    scene.cycles.use_denoising = False
    scene.cycles.seed = 0
    scene.view_settings.view_transform = "Standard"  # keeps the texture's and the photo's colours as they are
    world = bpy.data.worlds.new("showcase")
    world.color = (0.8, 0.85, 0.9)
    if world.node_tree is None:  # Blender < 5 creates worlds without nodes
        world.use_nodes = True
    world.node_tree.nodes["Background"].inputs["Color"].default_value = (0.75, 0.8, 0.88, 1.0)
    world.node_tree.nodes["Background"].inputs["Strength"].default_value = 0.8
    scene.world = world
    sun = bpy.data.objects.new("sun", bpy.data.lights.new("sun", "SUN"))
    sun.data.energy = 3.0
    sun.rotation_euler = (math.radians(40), 0.0, math.radians(30))
    scene.collection.objects.link(sun)
    bpy.ops.mesh.primitive_plane_add(size=40.0, location=(0.0, 0.0, 0.0))
    ground = bpy.context.object
    material = bpy.data.materials.new("ground")
    if material.node_tree is None:
        material.use_nodes = True
    shader = next(node for node in material.node_tree.nodes if node.type == "BSDF_PRINCIPLED")
    shader.inputs["Base Color"].default_value = (0.25, 0.25, 0.25, 1.0)
    ground.data.materials.append(material)
    return ground


def render(scene, camera, path: Path, transparent: bool) -> np.ndarray:
    """Render from ``camera`` to a PNG; returns float RGBA [H, W, 4] in [0, 1], row 0 at the top."""
    scene.camera = camera
    scene.render.film_transparent = transparent
    scene.render.image_settings.file_format = "PNG"
    scene.render.image_settings.color_mode = "RGBA"
    scene.render.filepath = str(path)
    bpy.ops.render.render(write_still=True)
    return read_image(bpy.data.images.load(str(path)))


def read_image(image) -> np.ndarray:
    """A bpy image -> float RGBA [H, W, 4], row 0 at the top (Blender stores the bottom row first)."""
    width, height = image.size
    pixels = np.empty(width * height * 4, dtype=np.float32)
    image.pixels.foreach_get(pixels)
    return pixels.reshape(height, width, 4)[::-1]


def orbit_camera(target: Vector, distance: float, azimuth_deg: float) -> bpy.types.Object:
    """A 40 mm camera at ``distance`` from ``target``, ORBIT_ELEVATION_DEG up, ``azimuth_deg`` round from the front."""
    azimuth, elevation = math.radians(azimuth_deg), math.radians(ORBIT_ELEVATION_DEG)
    offset = Vector((math.sin(azimuth) * math.cos(elevation), -math.cos(azimuth) * math.cos(elevation),
                     math.sin(elevation)))
    camera = bpy.data.objects.new(f"orbit_{azimuth_deg}", bpy.data.cameras.new(f"orbit_{azimuth_deg}"))
    camera.data.lens = 40.0
    camera.location = target + distance * offset
    camera.rotation_euler = (-offset).to_track_quat("-Z", "Y").to_euler()
    bpy.context.scene.collection.objects.link(camera)
    return camera


def photo_tile(photo_path: Path) -> np.ndarray:
    """The original photo, letterboxed into a TILE x TILE white square (RGB)."""
    image = bpy.data.images.load(str(photo_path))
    width, height = image.size
    scale = TILE / max(width, height)
    image.scale(max(1, round(width * scale)), max(1, round(height * scale)))
    rgb = read_image(image)[..., :3]
    tile = np.ones((TILE, TILE, 3), dtype=np.float32)
    top, left = (TILE - rgb.shape[0]) // 2, (TILE - rgb.shape[1]) // 2
    tile[top:top + rgb.shape[0], left:left + rgb.shape[1]] = rgb
    return tile


def save_sheet(tiles: list[np.ndarray], columns: int, path: Path) -> None:
    """Tile RGB images [TILE, TILE, 3] into one PNG (white gaps), written to a temporary file and renamed."""
    rows = -(-len(tiles) // columns)
    sheet = np.ones((rows * (TILE + PADDING) - PADDING, columns * (TILE + PADDING) - PADDING, 4), np.float32)
    for index, tile in enumerate(tiles):
        top, left = (index // columns) * (TILE + PADDING), (index % columns) * (TILE + PADDING)
        sheet[top:top + TILE, left:left + TILE, :3] = tile
    image = bpy.data.images.new("showcase_sheet", sheet.shape[1], sheet.shape[0])
    image.pixels.foreach_set(sheet[::-1].ravel())
    save_png(image, path)


def main() -> None:
    options = parse_arguments()
    scene, car, camera = import_car(options.photo, options.backend_python)
    ground = stage(scene)
    work = Path(tempfile.mkdtemp(prefix="ganverse3d_showcase_"))
    try:
        # The add-on's camera over the framed photo it shows as the camera background (the ground hidden).
        ground.hide_render = True
        car_over_photo = render(scene, camera, work / "camera.png", transparent=True)
        framed_photo = camera.data.background_images[0].image
        framed_photo.scale(TILE, TILE)
        photo_rgb = read_image(framed_photo)[..., :3]
        alpha = car_over_photo[..., 3:]
        tiles = [photo_tile(options.photo), car_over_photo[..., :3] * alpha + photo_rgb * (1 - alpha)]

        ground.hide_render = False
        corners = [car.matrix_world @ Vector(corner) for corner in car.bound_box]
        target = sum(corners, Vector()) / len(corners)
        length = max(c.y for c in corners) - min(c.y for c in corners)
        for azimuth in ORBIT_AZIMUTHS_DEG:
            view = render(scene, orbit_camera(target, 1.6 * length, azimuth), work / f"orbit_{azimuth}.png",
                          transparent=False)
            tiles.append(view[..., :3])
        save_sheet(tiles, columns=3, path=options.out)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"Wrote {options.out}")


if __name__ == "__main__":
    main()
