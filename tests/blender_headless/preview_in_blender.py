"""Run by ``blender --background --python`` from test_neural_preview_in_blender.py: import a photo through the
add-on, turn the Neural Preview on with the given StyleGAN-R, step its timer (background mode runs no event
loop) until the image appears, turn the camera around the car, step until the image changes, and print one
JSON line (the test asserts on it).

    blender -b --python tests/blender_headless/preview_in_blender.py -- BACKEND_PYTHON PHOTO NEURAL_MODEL
"""

import json
import math
import sys
import time
from pathlib import Path

import addon_utils
import bpy
from mathutils import Matrix

ROOT = Path(__file__).resolve().parents[2]


def step_until(preview, condition, timeout=120.0) -> bool:
    deadline = time.monotonic() + timeout
    while not condition() and time.monotonic() < deadline and preview._preview is not None:
        if preview._preview.tick(bpy.context) is None:
            break
        time.sleep(0.01)
    return condition()


def main() -> None:
    backend_python, photo, neural_model = sys.argv[sys.argv.index("--") + 1:]
    bpy.ops.wm.read_factory_settings(use_empty=True)
    sys.path.insert(0, str(ROOT / "blender_addon"))
    addon_utils.enable("ganverse3d_blender", default_set=True, handle_error=None)
    preferences = bpy.context.preferences.addons["ganverse3d_blender"].preferences
    preferences.python, preferences.neural_model = backend_python, neural_model
    bpy.ops.ganverse3d.import_photo(filepath=photo)
    preview = sys.modules["ganverse3d_blender"].preview
    bpy.ops.ganverse3d.neural_preview()
    name = "car_example_car Neural Preview"
    shown = step_until(preview, lambda: name in bpy.data.images)
    first = list(bpy.data.images[name].pixels) if shown else []
    camera = bpy.context.scene.camera
    camera.matrix_world = Matrix.Rotation(math.radians(120), 4, "Z") @ camera.matrix_world
    changed = step_until(preview, lambda: list(bpy.data.images[name].pixels) != first) if shown else False
    status = bpy.context.window_manager.ganverse3d.preview_status
    bpy.ops.ganverse3d.neural_preview()
    step_until(preview, lambda: preview._preview.request is None)
    timer_left = bpy.app.timers.is_registered(preview._tick)
    addon_utils.disable("ganverse3d_blender", default_set=True, handle_error=None)
    report = {"blender": bpy.app.version_string, "shown": shown, "changed": changed,
              "size": list(bpy.data.images[name].size) if shown else None, "status": status,
              "running_after_toggle": preview.running(), "timer_left": timer_left}
    print("RESULT " + json.dumps(report))
    sys.stdout.flush()
    sys.exit(0)


main()
