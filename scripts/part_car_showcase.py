"""Render a part-aware car imported by the add-on: a Cycles night still with its lights on, and a driving sheet.

    blender -b --factory-startup --python scripts/part_car_showcase.py -- [--photo docs/example_car.png] \\
        [--backend-python PY] [--out-dir docs] [--night-samples 128] [--drive-samples 16]

The photo goes through the add-on's own operator (``bpy.ops.ganverse3d.import_photo``, Part Materials and
Separate Wheels on, as a user's import does), with the backend worker started from ``--backend-python``
(default: this interpreter). Debian's Blender has no numpy, so nothing here uses it. The backend must label the car's
parts (mesh.json's "part_labels" and "wheels"), else this stops with one sentence. Writes, each atomically:

* ``part_car_night.png``: 640 x 360, Cycles, a dark world with a little moonlight, the car's Lights on (its
  head- and taillight materials glow; two spot lights at its headlights light the road), its front wheels
  steered by Steer; denoised where this Blender's Cycles has OpenImageDenoise (Debian's 3.4 has not).
* ``part_car_drive.png``: 8 frames (256 px tiles in a row, scripts/neural_turntable.py's sheet) of the car
  driving DRIVE_METRES forward past a side camera in daylight, its Distance baked from its motion by Bake Wheel
  Rotation, so its wheels roll.

About a minute on 2 CPU cores with the defaults (the fake part car of tests/blender_addon/fake_worker.py:
50 s); the night still's noise is clamped, as Debian's Cycles has no denoiser.
"""

from __future__ import annotations

import argparse
import math
import os
import shutil
import sys
import tempfile
from pathlib import Path

import bpy
from mathutils import Vector

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))
from blender_png import enable_addon, import_photo  # noqa: E402
from neural_turntable import write_sheet  # noqa: E402

NIGHT_SIZE = (640, 360)
DRIVE_FRAMES = 8
DRIVE_METRES = 3.0
TILE = 256
HEADLAMP_WATTS = 800.0  # each spot light, at Lights = 1
STEER_DEG = 15.0


def parse_arguments() -> argparse.Namespace:
    argv = sys.argv[sys.argv.index("--") + 1:] if "--" in sys.argv else sys.argv[1:]
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--photo", type=Path, default=ROOT / "docs" / "example_car.png")
    parser.add_argument("--backend-python", default=sys.executable,
                        help="Python with the ganverse3d package [default: this interpreter]")
    parser.add_argument("--out-dir", type=Path, default=ROOT / "docs")
    parser.add_argument("--night-samples", type=int, default=128)
    parser.add_argument("--drive-samples", type=int, default=16)
    return parser.parse_args(argv)


def import_car(photo: Path, backend_python: str):
    """A fresh empty scene with the car imported through the add-on's operator -> (scene, car)."""
    enable_addon(backend_python)
    import_photo(photo, backend_python, part_materials=True, separate_wheels=True)
    return bpy.context.scene, bpy.data.objects[f"car_{photo.stem}"]


def stage(scene):
    """Cycles on the CPU, a daylight world (returned), a sun named "sun" and a dark asphalt ground."""
    scene.render.engine = "CYCLES"
    scene.cycles.device = "CPU"
    scene.cycles.seed = 0
    world = bpy.data.worlds.new("day")
    if world.node_tree is None:  # Blender < 5 creates worlds without nodes
        world.use_nodes = True
    world.node_tree.nodes["Background"].inputs["Color"].default_value = (0.75, 0.8, 0.88, 1.0)
    world.node_tree.nodes["Background"].inputs["Strength"].default_value = 0.8
    scene.world = world
    sun = bpy.data.objects.new("sun", bpy.data.lights.new("sun", "SUN"))
    sun.rotation_euler = (math.radians(40), 0.0, math.radians(30))
    scene.collection.objects.link(sun)
    mesh = bpy.data.meshes.new("ground")
    mesh.from_pydata([(-30, -30, 0), (30, -30, 0), (30, 30, 0), (-30, 30, 0)], [], [(0, 1, 2, 3)])
    ground = bpy.data.objects.new("ground", mesh)
    material = bpy.data.materials.new("asphalt")
    if material.node_tree is None:
        material.use_nodes = True
    shader = next(node for node in material.node_tree.nodes if node.type == "BSDF_PRINCIPLED")
    shader.inputs["Base Color"].default_value = (0.06, 0.06, 0.065, 1.0)
    shader.inputs["Roughness"].default_value = 0.55
    mesh.materials.append(material)
    scene.collection.objects.link(ground)
    return world


def aim_camera(target: Vector, distance: float, azimuth_deg: float, elevation_deg: float):
    """A 40 mm scene camera ``distance`` from ``target``, ``azimuth_deg`` round from the car's front (-Y) towards
    its left (+X), ``elevation_deg`` up."""
    azimuth, elevation = math.radians(azimuth_deg), math.radians(elevation_deg)
    offset = Vector((math.sin(azimuth) * math.cos(elevation), -math.cos(azimuth) * math.cos(elevation),
                     math.sin(elevation)))
    camera = bpy.data.objects.new(f"camera_{azimuth_deg}", bpy.data.cameras.new(f"camera_{azimuth_deg}"))
    camera.data.lens = 40.0
    camera.location = target + distance * offset
    camera.rotation_euler = (-offset).to_track_quat("-Z", "Y").to_euler()
    bpy.context.scene.collection.objects.link(camera)
    bpy.context.scene.camera = camera


def render(scene, path: Path) -> Path:
    scene.render.image_settings.file_format = "PNG"
    scene.render.filepath = str(path)
    bpy.ops.render.render(write_still=True)
    return path


def publish(rendered: Path, out: Path) -> None:
    """Copy a rendered file to ``out`` through a temporary file beside it, renamed when complete."""
    out.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=out.parent, prefix=f".{out.name}.", suffix=".png")
    os.close(handle)
    try:
        shutil.copyfile(rendered, temporary)
        os.chmod(temporary, 0o644)
        os.replace(temporary, out)
    finally:
        if os.path.exists(temporary):
            os.unlink(temporary)


def headlight_centres(car) -> list:
    """World positions of the left and right headlights: the centres of the faces in the headlight slot."""
    slot = next((index for index, material in enumerate(car.data.materials)
                 if material.name == f"{car.name}_headlight"), None)
    centres = {True: [], False: []}
    for polygon in car.data.polygons:
        if polygon.material_index == slot:
            centre = car.matrix_world @ polygon.center
            centres[centre.x > 0].append(centre)
    return [sum(points, Vector()) / len(points) for points in centres.values() if points]


def light_the_night(scene, car) -> list:
    """A dark blue world, the sun turned into a dim moon, two spot lights at the headlights -> the spot lights."""
    world = bpy.data.worlds.new("night")
    if world.node_tree is None:
        world.use_nodes = True
    background = world.node_tree.nodes["Background"]
    background.inputs["Color"].default_value = (0.004, 0.006, 0.014, 1.0)
    background.inputs["Strength"].default_value = 1.0
    scene.world = world
    moon = bpy.data.objects["sun"].data
    moon.energy, moon.color = 0.4, (0.6, 0.7, 1.0)
    spots = []
    for index, centre in enumerate(headlight_centres(car)):
        spot = bpy.data.objects.new(f"headlamp_{index}", bpy.data.lights.new(f"headlamp_{index}", "SPOT"))
        spot.data.energy = HEADLAMP_WATTS * car["Lights"]
        spot.data.color, spot.data.spot_size, spot.data.spot_blend = (1.0, 0.93, 0.8), math.radians(70), 0.6
        spot.location = centre + Vector((0.0, -0.05, 0.0))
        spot.rotation_euler = (math.radians(-78), 0.0, 0.0)  # its beam (-Z) turned forward (-Y), a little down
        spot.parent = car
        spot.matrix_parent_inverse = car.matrix_world.inverted()
        scene.collection.objects.link(spot)
        spots.append(spot)
    return spots


def denoise_if_available(scene) -> bool:
    import _cycles  # Blender's Cycles module: which denoisers this build has

    available = bool(getattr(_cycles, "with_openimagedenoise", False))
    scene.cycles.use_denoising = available
    if available:
        scene.cycles.denoiser = "OPENIMAGEDENOISE"
    return available


def night_still(scene, car, samples: int, work: Path, out: Path) -> list:
    """Render the night still, the front wheels steered -> the headlamp spot lights (to switch off for the day)."""
    car["Steer"] = math.radians(STEER_DEG)
    car.update_tag()
    spots = light_the_night(scene, car)
    scene.cycles.samples = samples
    # Without a denoiser the lamps' reflections in the clear-coated paint sparkle at low samples: clamp them.
    scene.cycles.sample_clamp_indirect, scene.cycles.blur_glossy = 2.0, 1.0
    denoised = denoise_if_available(scene)
    scene.render.resolution_x, scene.render.resolution_y = NIGHT_SIZE
    corners = [car.matrix_world @ Vector(corner) for corner in car.bound_box]
    target = sum(corners, Vector()) / len(corners)
    length = max(c.y for c in corners) - min(c.y for c in corners)
    aim_camera(target, 1.4 * length, 35, 12)
    publish(render(scene, work / "night.png"), out)
    print(f"Wrote {out} ({samples} samples, {'denoised' if denoised else 'not denoised'})")
    return spots


def drive_sheet(scene, car, spots: list, day_world, samples: int, work: Path, out: Path) -> None:
    """The car drives DRIVE_METRES forward (-Y) over DRIVE_FRAMES frames past a camera on its left, in daylight."""
    scene.world = day_world
    sun = bpy.data.objects["sun"].data
    sun.energy, sun.color = 3.0, (1.0, 1.0, 1.0)
    for spot in spots:
        spot.hide_render = True
    car["Steer"] = 0.0
    scene.cycles.samples = samples
    scene.render.resolution_x = scene.render.resolution_y = TILE
    scene.frame_start, scene.frame_end = 1, DRIVE_FRAMES
    for frame, y in ((1, DRIVE_METRES / 2), (DRIVE_FRAMES, -DRIVE_METRES / 2)):
        car.location.y = y
        car.keyframe_insert("location", index=1, frame=frame)
    bpy.context.view_layer.objects.active = car
    bpy.ops.ganverse3d.bake_wheel_rotation()
    scene.frame_set(1)
    corners = [car.matrix_world @ Vector(corner) for corner in car.bound_box]
    length = max(c.y for c in corners) - min(c.y for c in corners)
    aim_camera(Vector((0.0, 0.0, 0.6)), 1.2 * (length + DRIVE_METRES), 90, 6)
    frames = []
    for frame in range(1, DRIVE_FRAMES + 1):
        scene.frame_set(frame)
        frames.append(render(scene, work / f"drive_{frame}.png"))
    out.parent.mkdir(parents=True, exist_ok=True)
    write_sheet(frames, out)
    print(f"Wrote {out} ({DRIVE_FRAMES} frames, {car['Distance']:.2f} m, wheels turned "
          f"{math.degrees(car.children[0].rotation_euler.x):.0f} degrees)")


def main() -> None:
    options = parse_arguments()
    scene, car = import_car(options.photo, options.backend_python)
    if "Distance" not in car or "Lights" not in car:
        sys.exit(f"The backend ({options.backend_python}) did not label the car's parts and wheels; this showcase "
                 "needs a model with the part branch.")
    day_world = stage(scene)
    work = Path(tempfile.mkdtemp(prefix="ganverse3d_part_car_"))
    try:
        spots = night_still(scene, car, options.night_samples, work, options.out_dir / "part_car_night.png")
        drive_sheet(scene, car, spots, day_world, options.drive_samples, work, options.out_dir / "part_car_drive.png")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
