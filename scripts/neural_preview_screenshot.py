"""Screenshot the Neural Preview in Blender's own window: docs/neural_preview_blender.png.

    xvfb-run -a -s "-screen 0 1600x1000x24" blender --factory-startup --enable-event-simulate \\
        --python scripts/neural_preview_screenshot.py -- [--neural-model PATH] [--backend-python PY] [-o PATH]

This needs Blender's UI (the preview's viewport overlay is drawn by a ``gpu`` draw handler, and screenshots read
the window), so it runs in a real ``blender`` on a display, a virtual one (``xvfb-run``) on a server; it quits
by itself. It drives the add-on the way a user does, from the window's event loop: the add-on is enabled from
this working tree, the photo is imported with the Import button's operator (a modal run, the backend worker
started from ``--backend-python``: default the project's .venv, else this interpreter), the Neural Preview is
turned on with its button's operator (``--neural-model``: default the backend's shipped StyleGAN-R), and the
scene camera (the one the import made) is moved round the car to each of ``--azimuths`` (degrees round
Blender's Z from the car's front, at the distance and elevation the import gave it). For each camera a
``bpy.app.timers`` step waits, never blocking, until the preview shows the StyleGAN-R image rendered from that
camera, then screenshots the window.

The sheet shows, for each camera, the 3D viewport (the car, its camera highlighted, the preview in the
viewport's corner, the sidebar's GANverse3D tab with the Neural Preview panel) and, on its right, an Image
Editor with the image "<car> Neural Preview", under a caption with the azimuth and elevation the add-on's
status line reports. ``--enable-event-simulate`` lets the script click the sidebar's GANverse3D tab (Blender
3.4 has no API for it; Blender then takes no input but the script's); without it the sidebar stays on its
first tab. Blender's own Python suffices (no numpy). A failure prints one sentence and exits with status 1.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import tempfile
import time
from array import array
from pathlib import Path

import addon_utils  # Blender's own module: importable once bpy is
import bpy
from mathutils import Euler, Matrix, Vector

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))
from blender_png import save_png  # noqa: E402  (beside this script)
ADDON = "ganverse3d_blender"
SHIPPED_NEURAL_MODEL = ROOT / "backend" / "ganverse3d" / "assets" / "stylegan_r.safetensors"
VENV_PYTHON = ROOT / ".venv" / "bin" / "python"
AZIMUTHS_DEG = (30.0, 120.0, 250.0)
TIMEOUT_S = 900  # the import and the first preview on a busy CPU
TICK_S = 0.1
# The viewport's view: from the car's front left, looking down, far enough to see the camera's whole orbit.
VIEW_AZIMUTH_DEG, VIEW_ELEVATION_DEG, VIEW_DISTANCE = -35.0, 55.0, 1.65  # distance in camera orbit radii
VIEW_LENS = 35.0
IMAGE_EDITOR_WIDTH = 0.25  # share of the 3D viewport's area split off for the Image Editor
SHOWN_AREAS = ("VIEW_3D", "IMAGE_EDITOR")  # the sheet's part of each screenshot
TAB_STEP_PX = 20  # between clicks down the sidebar's tabs (each tab is taller)
PANEL_SCALE = 0.55  # screenshots are scaled by this in the sheet
CAPTION_HEIGHT, CAPTION_SIZE, PADDING = 30, 18, 6


def parse_arguments() -> argparse.Namespace:
    # Under `blender --python`, the script's own arguments follow "--".
    argv = sys.argv[sys.argv.index("--") + 1:] if "--" in sys.argv else []
    parser = argparse.ArgumentParser(prog="blender --python neural_preview_screenshot.py --",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--backend-python", default=str(VENV_PYTHON) if VENV_PYTHON.exists() else sys.executable,
                        help="Python with the ganverse3d package [default: the project's .venv, else this one]")
    parser.add_argument("--photo", type=Path, default=ROOT / "docs" / "example_car.png")
    parser.add_argument("--neural-model", type=Path,
                        default=SHIPPED_NEURAL_MODEL if SHIPPED_NEURAL_MODEL.exists() else None,
                        help="StyleGAN-R bundle (.safetensors) [default: the backend's shipped one]")
    parser.add_argument("--azimuths", type=float, nargs="+", default=AZIMUTHS_DEG,
                        help="camera azimuths in degrees from the car's front, round Blender's Z")
    parser.add_argument("-o", "--out", type=Path, default=ROOT / "docs" / "neural_preview_blender.png")
    return parser.parse_args(argv)


def fail(sentence: str) -> None:
    print(f"neural_preview_screenshot: {sentence}", file=sys.stderr, flush=True)
    os._exit(1)  # from a timer, SystemExit would only be printed; the worker ends when its pipe closes


# --- the window ----------------------------------------------------------------------------------------------

def window():
    return bpy.context.window_manager.windows[0]


def area_context(area_type: str) -> dict:
    area = next(area for area in window().screen.areas if area.type == area_type)
    return {"window": window(), "area": area, "region": next(r for r in area.regions if r.type == "WINDOW")}


def set_up_window() -> None:
    """An empty scene; the 3D viewport with its sidebar and textured solid shading, and an Image Editor split off
    on its right (the add-on shows its image in an Image Editor that shows nothing else)."""
    for obj in list(bpy.data.objects):
        bpy.data.objects.remove(obj)
    preferences = bpy.context.preferences
    preferences.view.show_splash = False
    preferences.system.use_region_overlap = False  # the sidebar beside the view, not over it
    with bpy.context.temp_override(**area_context("VIEW_3D")):
        bpy.ops.screen.area_split(direction="VERTICAL", factor=1.0 - IMAGE_EDITOR_WIDTH)
    viewports = sorted((area for area in window().screen.areas if area.type == "VIEW_3D"), key=lambda a: a.x)
    viewports[-1].type = "IMAGE_EDITOR"
    space = viewports[0].spaces.active
    space.show_region_ui = True
    space.shading.type = "SOLID"
    space.shading.color_type = "TEXTURE"
    space.lens = VIEW_LENS


def frame_viewport(center: Vector, radius: float) -> None:
    """A fixed perspective view of the car and the whole orbit of its camera."""
    space = area_context("VIEW_3D")["area"].spaces.active
    view = space.region_3d
    view.view_perspective = "PERSP"
    view.view_location = center
    view.view_rotation = Euler((math.radians(90.0 - VIEW_ELEVATION_DEG), 0.0,
                                math.radians(VIEW_AZIMUTH_DEG)), "XYZ").to_quaternion()
    view.view_distance = VIEW_DISTANCE * radius
    space.clip_end = max(space.clip_end, 20.0 * radius)


def fit_image_editor() -> None:
    context = area_context("IMAGE_EDITOR")
    with bpy.context.temp_override(**context):
        bpy.ops.image.view_all(fit_view=True)


def redraw_now() -> None:
    with bpy.context.temp_override(window=window()):
        bpy.ops.wm.redraw_timer(type="DRAW_WIN_SWAP", iterations=1)


def screenshot(path: Path) -> tuple[array, int, int]:
    """The whole window: (float RGBA pixels, width, height), Blender's layout (the bottom row first)."""
    redraw_now()
    with bpy.context.temp_override(window=window()):
        bpy.ops.screen.screenshot(filepath=str(path), check_existing=False)
    image = bpy.data.images.load(str(path), check_existing=False)
    try:
        width, height = image.size
        pixels = array("f", bytes(4 * width * height * 4))
        image.pixels.foreach_get(pixels)
    finally:
        bpy.data.images.remove(image)
    return pixels, width, height


def crop_to_areas(shot: tuple[array, int, int], area_types: tuple[str, ...]) -> tuple[array, int, int]:
    """The part of a window screenshot covered by the areas of ``area_types`` (their bounding box); window
    coordinates, like Blender's pixels, count from the bottom left."""
    pixels, width, _ = shot
    areas = [area for area in window().screen.areas if area.type in area_types]
    left, right = min(a.x for a in areas), max(a.x + a.width for a in areas)
    bottom, top = min(a.y for a in areas), max(a.y + a.height for a in areas)
    out = array("f")
    for row in range(bottom, top):
        out.extend(pixels[4 * (row * width + left):4 * (row * width + right)])
    return out, right - left, top - bottom


# --- the scene camera ----------------------------------------------------------------------------------------

def car_center(car) -> Vector:
    corners = [car.matrix_world @ Vector(corner) for corner in car.bound_box]
    return sum(corners, Vector()) / len(corners)


def orbit(camera, center: Vector, azimuth_deg: float) -> None:
    """Move ``camera`` to ``azimuth_deg`` round ``center`` (0 = the car's front, seen from -Y), keeping its
    distance and elevation, and aim it at ``center`` with no roll."""
    offset = camera.matrix_world.translation - center
    distance = offset.length
    elevation = math.asin(max(-1.0, min(1.0, offset.z / distance)))
    azimuth = math.radians(azimuth_deg)
    direction = Vector((math.sin(azimuth) * math.cos(elevation), -math.cos(azimuth) * math.cos(elevation),
                        math.sin(elevation)))
    rotation = (-direction).to_track_quat("-Z", "Y").to_matrix().to_4x4()
    camera.matrix_world = Matrix.Translation(center + distance * direction) @ rotation


# --- the sheet -----------------------------------------------------------------------------------------------

def caption(text: str, width: int) -> array:
    """``text`` in Blender's UI font, dark on white: float RGBA pixels, ``width`` x CAPTION_HEIGHT."""
    import blf
    import gpu

    offscreen = gpu.types.GPUOffScreen(width, CAPTION_HEIGHT)
    with offscreen.bind():
        framebuffer = gpu.state.active_framebuffer_get()
        framebuffer.clear(color=(1.0, 1.0, 1.0, 1.0))
        with gpu.matrix.push_pop(), gpu.matrix.push_pop_projection():
            gpu.matrix.load_identity()
            projection = Matrix.Identity(4)  # pixels -> normalised device coordinates
            projection[0][0], projection[1][1] = 2.0 / width, 2.0 / CAPTION_HEIGHT
            projection[0][3] = projection[1][3] = -1.0
            gpu.matrix.load_projection_matrix(projection)
            font = 0
            blf.size(font, CAPTION_SIZE)
            blf.color(font, 0.1, 0.1, 0.1, 1.0)
            text_width, _ = blf.dimensions(font, text)
            blf.position(font, max(0.0, (width - text_width) / 2), (CAPTION_HEIGHT - CAPTION_SIZE * 0.7) / 2, 0)
            blf.draw(font, text)
        buffer = framebuffer.read_color(0, 0, width, CAPTION_HEIGHT, 4, 0, "FLOAT")
    offscreen.free()
    buffer.dimensions = width * CAPTION_HEIGHT * 4
    return array("f", buffer)


def scaled(picture: tuple[array, int, int], factor: float) -> tuple[array, int, int]:
    """``picture`` scaled by ``factor`` (Blender's own image scaling, which averages when it shrinks)."""
    pixels, width, height = picture
    image = bpy.data.images.new("neural_preview_panel", width, height)
    try:
        image.pixels.foreach_set(pixels)
        width, height = max(1, round(width * factor)), max(1, round(height * factor))
        image.scale(width, height)
        pixels = array("f", bytes(4 * width * height * 4))
        image.pixels.foreach_get(pixels)
    finally:
        bpy.data.images.remove(image)
    return pixels, width, height


def paste(sheet: array, sheet_width: int, pixels, left: int, bottom: int, width: int, height: int) -> None:
    for row in range(height):
        start = 4 * ((bottom + row) * sheet_width + left)
        sheet[start:start + 4 * width] = pixels[4 * row * width:4 * (row + 1) * width]


def save_sheet(panels: list[tuple[str, tuple[array, int, int]]], path: Path) -> None:
    """Panels side by side, each under its caption, white gaps; written to a temporary file and renamed."""
    panels = [(text, scaled(picture, PANEL_SCALE)) for text, picture in panels]
    height = CAPTION_HEIGHT + max(picture[2] for _, picture in panels)
    width = sum(picture[1] for _, picture in panels) + PADDING * (len(panels) - 1)
    sheet = array("f", [1.0]) * (width * height * 4)
    left = 0
    for text, (pixels, panel_width, panel_height) in panels:
        paste(sheet, width, caption(text, panel_width), left, height - CAPTION_HEIGHT, panel_width, CAPTION_HEIGHT)
        paste(sheet, width, pixels, left, height - CAPTION_HEIGHT - panel_height, panel_width, panel_height)
        left += panel_width + PADDING
    image = bpy.data.images.new("neural_preview_sheet", width, height)
    image.pixels.foreach_set(sheet)
    save_png(image, path)


# --- the scenario --------------------------------------------------------------------------------------------

def wait_until(condition, what: str, timeout: float = TIMEOUT_S):
    """Yield (back to Blender's event loop) until ``condition()``; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            fail(f"Timed out after {timeout:.0f} s waiting for {what}.")
        yield


def show_sidebar_tab():
    """Bring the sidebar's GANverse3D tab to the front (Blender 3.4 has no API for it) as a user does: click down
    the column of tabs on the sidebar's right edge until the Neural Preview panel draws its status line (seen by
    wrapping the add-on's ``status.draw`` meanwhile). Needs --enable-event-simulate; without it the sidebar
    stays on the tab it shows."""
    status = sys.modules[ADDON].status
    drawn = []
    original = status.draw

    def draw(layout, context, line):
        if line == sys.modules[ADDON].preview.STATUS_LINE and context.area is not None:
            drawn.append(context.area.type)
        original(layout, context, line)

    status.draw = draw
    try:
        area = area_context("VIEW_3D")["area"]
        sidebar = next(region for region in area.regions if region.type == "UI")
        scale = bpy.context.preferences.system.ui_scale
        x = sidebar.x + sidebar.width - round(10 * scale)  # the middle of the column of tabs
        for y in range(sidebar.y + sidebar.height - round(20 * scale), sidebar.y, -round(TAB_STEP_PX * scale)):
            drawn.clear()
            area.tag_redraw()
            yield
            yield
            if drawn:
                return
            try:
                window().event_simulate(type="MOUSEMOVE", value="NOTHING", x=x, y=y)
                for value in ("PRESS", "RELEASE"):
                    window().event_simulate(type="LEFTMOUSE", value=value, x=x, y=y)
            except RuntimeError:  # Blender was started without --enable-event-simulate
                print("neural_preview_screenshot: without --enable-event-simulate the sidebar keeps its tab",
                      file=sys.stderr)
                return
        print("neural_preview_screenshot: the sidebar's GANverse3D tab did not come up", file=sys.stderr)
    finally:
        status.draw = original


def scenario(options: argparse.Namespace, work: Path):
    """The steps as a generator: each ``yield`` hands control back to Blender for TICK_S seconds."""
    status = bpy.context.window_manager.ganverse3d
    with bpy.context.temp_override(**area_context("VIEW_3D")):
        bpy.ops.ganverse3d.import_photo("INVOKE_DEFAULT", True, filepath=str(options.photo.resolve()))
    car_name, camera_name = f"car_{options.photo.stem}", f"camera_{options.photo.stem}"
    yield from wait_until(lambda: car_name in bpy.data.objects or status.import_status_failed, "the import")
    if status.import_status_failed:
        fail(f"{status.import_status} (backend: {options.backend_python})")
    print(status.import_status, flush=True)
    yield  # the import's step has set the objects' transforms; let the depsgraph evaluate their world matrices
    bpy.context.view_layer.update()
    car, camera = bpy.data.objects[car_name], bpy.data.objects[camera_name]
    bpy.context.scene.camera = camera
    for obj in bpy.context.view_layer.objects:  # the camera drawn highlighted
        obj.select_set(obj == camera)
    bpy.context.view_layer.objects.active = camera
    bpy.context.scene.ganverse3d.preview.car = car  # the panel's Car field (else: the active object)
    center = car_center(car)
    radius = (camera.matrix_world.translation - center).length
    camera.data.display_size = 0.15 * radius
    frame_viewport(center, radius)

    preview = sys.modules[ADDON].preview
    panels = []
    for index, azimuth in enumerate(options.azimuths):
        orbit(camera, center, azimuth)
        if index == 0:
            with bpy.context.temp_override(**area_context("VIEW_3D")):
                bpy.ops.ganverse3d.neural_preview("INVOKE_DEFAULT", True)
            if not preview.running():
                fail(status.preview_status or "The Neural Preview did not start.")
            yield from show_sidebar_tab()

        def shown_from_this_camera() -> bool:
            if not preview.running():
                fail(status.preview_status or "The Neural Preview stopped.")
            shown = preview._preview.shown
            return shown is not None and shown[1]["camera"] == preview.camera_request(bpy.context.scene, camera, car)

        yield from wait_until(shown_from_this_camera, f"the preview from azimuth {azimuth:g}")
        print(status.preview_status, flush=True)
        if index == 0:
            fit_image_editor()
        for _ in range(3):  # let the areas the add-on tagged redraw
            yield
        shot = screenshot(work / f"window_{index}.png")
        text = status.preview_status.removeprefix(f"Previewing {car_name} from ").removesuffix(" degrees.")
        panels.append((f"Scene camera at {azimuth:g}\N{DEGREE SIGN}: preview from {text}",
                       crop_to_areas(shot, SHOWN_AREAS)))

    with bpy.context.temp_override(**area_context("VIEW_3D")):
        bpy.ops.ganverse3d.neural_preview()  # off
    save_sheet(panels, options.out)
    print(f"Wrote {options.out}", flush=True)


def main() -> None:
    options = parse_arguments()
    if bpy.app.background:
        sys.exit("neural_preview_screenshot: run this in Blender's UI (e.g. under xvfb-run), not blender -b.")
    sys.path.insert(0, str(ROOT / "blender_addon"))
    addon_utils.enable(ADDON, default_set=True, handle_error=None)
    preferences = bpy.context.preferences.addons[ADDON].preferences
    preferences.python = options.backend_python
    preferences.neural_model = str(options.neural_model.resolve()) if options.neural_model else ""
    set_up_window()
    work = Path(tempfile.mkdtemp(prefix="ganverse3d_preview_shots_"))
    steps = scenario(options, work)

    def tick():
        try:
            next(steps)
            return TICK_S
        except StopIteration:
            pass
        except Exception as error:  # noqa: BLE001 - one sentence, then out
            import traceback
            traceback.print_exc()
            fail(f"{type(error).__name__}: {error}")
        for shot in work.iterdir():
            shot.unlink()
        work.rmdir()
        with bpy.context.temp_override(window=window()):
            bpy.ops.wm.quit_blender()
        return None

    bpy.app.timers.register(tick, first_interval=0.5)


try:
    main()
except Exception as error:  # noqa: BLE001 - Blender's window would stay open with the traceback in a console
    import traceback
    traceback.print_exc()
    fail(f"{type(error).__name__}: {error}")
