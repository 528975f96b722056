"""Render the Neural Preview along the scene camera's animation, headless, into PNG frames and a contact sheet.

    blender -b scene.blend --python scripts/neural_turntable.py -- --frames 1-48 -o frames/ \\
        [--car NAME] [--backend-python PATH] [--neural-model PATH] [--background PHOTO]

``scene.blend`` holds a car imported by the GANverse3D add-on (it remembers the photo and the import's
settings) and an animated scene camera. The backend runs as the add-on runs it: a worker process started with
the Backend Python (``--backend-python``; default: the add-on's preference when the add-on is enabled, else
Blender's own Python), so Blender's Python never needs torch. The worker is new, so it first reconstructs the
car again from its photo with the import's settings (the same car: reconstruction is deterministic); then, for
each frame, the camera and the car's world matrix at that frame are sent as the add-on's preview sends them
(``ganverse3d_blender.preview.camera_request``). Writes ``frame_0001.png`` ... and ``contact_sheet.png`` into
the output folder, each file atomically. Blender exits with 0, or 2 after one sentence on stderr.
"""

import argparse
import json
import math
import os
import shutil
import sys
import tempfile
from pathlib import Path

import bpy

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "blender_addon"))

from ganverse3d_blender.preview import camera_request  # noqa: E402
from ganverse3d_blender.scene_build import RECONSTRUCTION_PROPERTY, REQUEST_PROPERTY  # noqa: E402
from ganverse3d_blender.worker_client import WorkerClient, WorkerConfig  # noqa: E402

EXIT_USER_ERROR = 2
SHEET_COLUMNS = 8


class UserError(Exception):
    """A problem the user can fix; the message is one sentence."""


def parse_frames(text: str) -> range:
    first, _, last = text.partition("-")
    try:
        frames = range(int(first), int(last or first) + 1)
    except ValueError:
        raise UserError(f"--frames must be FIRST-LAST or one frame, not {text!r}.") from None
    if not frames:
        raise UserError(f"--frames {text} holds no frame; give FIRST-LAST with FIRST <= LAST.")
    return frames


def arguments(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="neural_turntable.py", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", required=True, help="FIRST-LAST, e.g. 1-48.")
    parser.add_argument("-o", "--out", required=True, help="Folder for the frames and the contact sheet.")
    parser.add_argument("--car", default=None, help="The car object [default: the first imported car].")
    parser.add_argument("--backend-python", default=None, help="Python with the ganverse3d package.")
    parser.add_argument("--neural-model", default=None, help="StyleGAN-R bundle [default: the shipped one].")
    parser.add_argument("--background", default=None, help="A photo behind the car [default: the car's own].")
    return parser.parse_args(argv[argv.index("--") + 1:] if "--" in argv else [])


def backend_python(option: str | None) -> str:
    if option:
        return option
    addon = bpy.context.preferences.addons.get("ganverse3d_blender") or bpy.context.preferences.addons.get("ganverse3d")
    if addon is not None and addon.preferences.python:
        return bpy.path.abspath(addon.preferences.python)
    return sys.executable


def find_car(name: str | None):
    if name is not None:
        car = bpy.data.objects.get(name)
        if car is None or REQUEST_PROPERTY not in car:
            raise UserError(f"--car {name} is not a car imported by the GANverse3D add-on in this file.")
        return car
    cars = sorted((obj for obj in bpy.data.objects if REQUEST_PROPERTY in obj), key=lambda obj: obj.name)
    if not cars:
        raise UserError("This file holds no car imported by the GANverse3D add-on; import one and save the file.")
    return cars[0]


def ask(client: WorkerClient, op: str, **request_arguments) -> dict:
    request = client.request(op, **request_arguments)
    if not request.wait():
        raise UserError(request.error if request.error.endswith(".") else request.error + ".")
    return request.result


def write_sheet(frames: list[Path], out: Path) -> None:
    """A grid of the frames, SHEET_COLUMNS wide, row by row from the top, written through Blender's image API."""
    tiles = []
    for frame in frames:
        image = bpy.data.images.load(str(frame), check_existing=False)
        width, height = image.size
        tiles.append((width, height, list(image.pixels)))
        bpy.data.images.remove(image)
    side = max(max(width, height) for width, height, _ in tiles)
    columns = min(SHEET_COLUMNS, len(tiles))
    rows = math.ceil(len(tiles) / columns)
    sheet_width, sheet_height = columns * side, rows * side
    pixels = [0.0, 0.0, 0.0, 1.0] * (sheet_width * sheet_height)
    for index, (width, height, tile) in enumerate(tiles):
        left, top = (index % columns) * side, (index // columns) * side
        for y in range(height):  # Blender's rows run bottom-up
            row = sheet_height - top - height + y
            start = 4 * (row * sheet_width + left)
            pixels[start:start + 4 * width] = tile[4 * y * width:4 * (y + 1) * width]
    sheet = bpy.data.images.new("neural turntable sheet", sheet_width, sheet_height)
    sheet.pixels.foreach_set(pixels)
    handle, temporary = tempfile.mkstemp(dir=out.parent, prefix=f".{out.name}.", suffix=".png")
    os.close(handle)
    try:
        sheet.filepath_raw, sheet.file_format = temporary, "PNG"
        sheet.save()
        os.replace(temporary, out)
    finally:
        bpy.data.images.remove(sheet)
        if os.path.exists(temporary):
            os.remove(temporary)


def render(options: argparse.Namespace) -> list[Path]:
    frames = parse_frames(options.frames)
    scene = bpy.context.scene
    if scene.camera is None or scene.camera.type != "CAMERA":
        raise UserError("The scene has no camera; set one in the Scene properties and save the file.")
    car = find_car(options.car)
    out = Path(bpy.path.abspath(options.out)).absolute()
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise UserError(f"The output folder {out} cannot be made: {error.strerror or error}.") from None
    background = bpy.path.abspath(options.background) if options.background else None
    client = WorkerClient(WorkerConfig(python=backend_python(options.backend_python), device="cpu"))
    work = tempfile.mkdtemp(prefix="ganverse3d_turntable_")
    written = []
    try:
        made = ask(client, "reconstruct", out_dir=os.path.join(work, "car"), **json.loads(car[REQUEST_PROPERTY]))
        car[RECONSTRUCTION_PROPERTY] = made["reconstruction"]
        for frame in frames:
            scene.frame_set(frame)
            reply = ask(client, "neural_render", reconstruction=made["reconstruction"],
                        camera=camera_request(scene, scene.camera, car), background=background,
                        neural_model=options.neural_model, out_dir=work)
            path = out / f"frame_{frame:04d}.png"
            handle, temporary = tempfile.mkstemp(dir=out, prefix=f".{path.name}.", suffix=".png")
            os.close(handle)
            shutil.copyfile(reply["image"], temporary)
            os.replace(temporary, path)
            written.append(path)
            print(f"frame {frame}: azimuth {reply['camera']['azimuth']:.1f}, elevation "
                  f"{reply['camera']['elevation']:.1f} degrees -> {path}")
        write_sheet(written, out / "contact_sheet.png")
    finally:
        client.close()
        shutil.rmtree(work, ignore_errors=True)
    return written


def main() -> int:
    try:
        written = render(arguments(sys.argv))
    except UserError as error:
        print(f"Error: {error}", file=sys.stderr)
        return EXIT_USER_ERROR
    print(f"Wrote {len(written)} frames and contact_sheet.png to {written[0].parent}.")
    return 0


if __name__ == "__main__":
    exit_code = main()
    sys.stdout.flush()
    sys.stderr.flush()
    sys.exit(exit_code)  # Blender exits with a --python script's SystemExit code
