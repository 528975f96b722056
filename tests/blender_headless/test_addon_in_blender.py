"""The add-on inside a real ``blender`` binary (Debian's 3.4, loaded as a legacy add-on): the import operator
runs synchronously under ``--background``, talks to the backend worker in this test run's Python, and builds
the car and its camera. The bpy-wheel tests in tests/blender_addon check the details; this one checks that the
same code works in a Blender process of its own, an older version included."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def test_import_operator_in_blender_background_builds_the_car():
    blender = shutil.which("blender")
    if blender is None:
        pytest.fail("No `blender` on PATH; install Debian's: apt-get install -y --no-install-recommends blender")
    done = subprocess.run([blender, "--background", "--factory-startup", "--python",
                           str(REPO / "tests" / "blender_headless" / "import_in_blender.py"), "--",
                           sys.executable, str(REPO / "docs" / "example_car.png")],
                          capture_output=True, text=True, timeout=300)
    lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    assert done.returncode == 0 and lines, done.stdout[-2000:] + done.stderr[-2000:]
    report = json.loads(lines[0][len("RESULT "):])
    assert report["error"] is None
    kinds = sorted(obj["type"] for obj in report["objects"])
    assert kinds == ["CAMERA", "MESH"]
    car = next(obj for obj in report["objects"] if obj["type"] == "MESH")
    camera = next(obj for obj in report["objects"] if obj["type"] == "CAMERA")
    assert car["name"] == "car_example_car" and camera["name"] == "camera_example_car"
    if report["wheels"]:  # a part branch: the template's faces split into 16, a part each, and four wheels
        assert report["wheels"] == sorted(f"car_example_car wheel_{end}_{side}" for end in ("front", "rear")
                                          for side in ("left", "right"))
        assert car["vertices"] == 10242 and car["faces"] == 16 * 1280  # split twice: 642 + 1920, + 7680 edges
        assert car["materials"] == [f"car_example_car_{part}" for part in (
            "body", "window", "tyre", "headlight", "taillight", "plate")]
    else:
        assert car["vertices"] == 642 and car["faces"] == 1280 and car["materials"] == ["car_example_car"]
    assert car["uv_layers"] == 1 and car["smooth"]
    assert abs(car["min_z"]) < 1e-5 and abs(car["length_y"] - 4.0) < 1e-4
    assert car["packed_textures"] == 1 and car["textures"] == ["car_example_car_texture"]
    assert car["texture_sizes"] == [[1024, 512]], "Texture Size 512 reached the backend: the photo baked 512 high"
    assert report["collections"] == {"example_car": sorted(["camera_example_car", "car_example_car",
                                                            *report["wheels"]])}
    assert report["render"] == [1920, 1920], "the factory 1920 x 1080 render becomes the square camera's"
    assert camera["scene_camera"] and camera["backgrounds"] == 1
