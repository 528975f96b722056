"""The part-aware import inside a real ``blender`` binary (Debian's 3.4, whose Principled BSDF has the 3.x input
names and whose actions keep their F-curves the old way): every check of tests/blender_addon/part_car_checks.py,
run by part_car_in_blender.py against the fake worker's part car."""

import ast
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests" / "blender_addon"))
import fake_worker  # noqa: E402

# The checks' names, read from the file (importing it would import bpy, which is Blender's own here).
CHECKS = [node.name for node in ast.parse((REPO / "tests" / "blender_addon" / "part_car_checks.py").read_text()).body
          if isinstance(node, ast.FunctionDef) and node.name.startswith("check_")]


@pytest.fixture(scope="module")
def report(tmp_path_factory) -> dict:
    blender = shutil.which("blender")
    if blender is None:
        pytest.fail("No `blender` on PATH; install Debian's: apt-get install -y --no-install-recommends blender")
    folder = tmp_path_factory.mktemp("part_car")
    photo = folder / "photo.png"
    Image.new("RGB", (64, 64), (180, 40, 30)).save(photo)
    pythons = [fake_worker.write_launcher(folder, behaviour)[0] for behaviour in ("part_car", "car", "bad_wheel",
                                                                                  "world_car")]
    done = subprocess.run([blender, "--background", "--factory-startup", "--python",
                           str(REPO / "tests" / "blender_headless" / "part_car_in_blender.py"), "--",
                           *pythons, str(photo)], capture_output=True, text=True, timeout=300)
    lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    assert done.returncode == 0 and lines, done.stdout[-2000:] + done.stderr[-2000:]
    return json.loads(lines[0][len("RESULT "):])


def test_it_ran_in_blender_3(report):
    assert report["blender"].startswith("3.") and sorted(report["checks"]) == sorted(CHECKS)


@pytest.mark.parametrize("name", sorted(CHECKS))
def test_part_car_in_blender(report, name):
    assert report["checks"][name] is None, report["checks"][name]
