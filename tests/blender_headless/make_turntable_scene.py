"""Run by ``blender --background --python`` from test_neural_turntable.py: import a photo through the add-on with
the given backend Python, move the car, animate the scene camera a quarter turn around it over frames 1-4, and
save the scene (the turntable script's input).

    blender -b --python tests/blender_headless/make_turntable_scene.py -- BACKEND_PYTHON PHOTO OUT.blend
"""

import math
import sys
from pathlib import Path

import addon_utils
import bpy
from mathutils import Matrix

ROOT = Path(__file__).resolve().parents[2]


def main() -> None:
    backend_python, photo, out = sys.argv[sys.argv.index("--") + 1:]
    bpy.ops.wm.read_factory_settings(use_empty=True)
    sys.path.insert(0, str(ROOT / "blender_addon"))
    addon_utils.enable("ganverse3d_blender", default_set=True, handle_error=None)
    bpy.context.preferences.addons["ganverse3d_blender"].preferences.python = backend_python
    bpy.ops.ganverse3d.import_photo(filepath=photo, length=4.0)
    car, camera = bpy.data.objects["car_example_car"], bpy.context.scene.camera
    car.matrix_world = Matrix.Translation((2.0, 1.0, 0.0)) @ Matrix.Rotation(0.4, 4, "Z") @ Matrix.Scale(1.5, 4)
    photo_view = camera.matrix_world.copy()
    for frame, degrees in ((1, 0.0), (4, 90.0)):
        camera.matrix_world = car.matrix_world @ Matrix.Rotation(math.radians(degrees), 4, "Z") @ photo_view
        camera.keyframe_insert("location", frame=frame)
        camera.keyframe_insert("rotation_euler", frame=frame)
    addon_utils.disable("ganverse3d_blender", default_set=True, handle_error=None)
    bpy.ops.wm.save_as_mainfile(filepath=out)
    sys.exit(0)


main()
