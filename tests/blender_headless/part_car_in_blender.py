"""Run by ``blender --background --python`` from test_part_car_in_blender.py: enable the add-on from the repository
as a legacy add-on and run every check of tests/blender_addon/part_car_checks.py with the given fake backends;
print one JSON line: Blender's version and, per check, None or what failed (the test asserts on it).

    blender -b --factory-startup --python tests/blender_headless/part_car_in_blender.py -- \\
        PART_CAR_PYTHON CAR_PYTHON BAD_WHEEL_PYTHON WORLD_CAR_PYTHON PHOTO
"""

import json
import sys
import traceback
from pathlib import Path

import addon_utils
import bpy

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT / "blender_addon"), str(ROOT / "tests" / "blender_addon")]


def main() -> None:
    part_car, car, bad_wheel, world_car, photo = sys.argv[sys.argv.index("--") + 1:]
    bpy.ops.wm.read_factory_settings(use_empty=True)
    addon_utils.enable("ganverse3d_blender", default_set=True, handle_error=None)
    import part_car_checks  # after the add-on is enabled: it imports the add-on's modules

    pythons = {"part_car": part_car, "car": car, "bad_wheel": bad_wheel, "world_car": world_car}
    results = {}
    for name, check in part_car_checks.CHECKS.items():
        try:
            check(pythons, photo)
            results[name] = None
        except Exception:  # noqa: BLE001  (every failure is reported to the test, with its traceback)
            results[name] = traceback.format_exc(limit=3)
    print("RESULT " + json.dumps({"blender": bpy.app.version_string, "checks": results}))
    sys.stdout.flush()
    sys.exit(0)


main()
