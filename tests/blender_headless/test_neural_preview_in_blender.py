"""The Neural Preview inside a real ``blender`` binary (Debian's 3.4, a legacy add-on): the toggle, the preview's
timer step, the image datablock and the draw handler work in an older Blender too; the backend is this test
run's Python with a tiny StyleGAN-R. tests/blender_addon/test_neural_preview.py checks the details."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests" / "neural"))
from neural_helpers import save_tiny_stylegan_r  # noqa: E402


def test_the_preview_shows_the_car_and_follows_the_camera_in_blender(tmp_path):
    blender = shutil.which("blender")
    if blender is None:
        pytest.fail("No `blender` on PATH; install Debian's: apt-get install -y --no-install-recommends blender")
    model = save_tiny_stylegan_r(tmp_path / "tiny.safetensors")
    done = subprocess.run([blender, "--background", "--factory-startup", "--python",
                           str(REPO / "tests" / "blender_headless" / "preview_in_blender.py"), "--",
                           sys.executable, str(REPO / "docs" / "example_car.png"), str(model)],
                          capture_output=True, text=True, timeout=300)
    lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    assert done.returncode == 0 and lines, done.stdout[-2000:] + done.stderr[-2000:]
    report = json.loads(lines[0][len("RESULT "):])
    assert report["shown"] and report["changed"] and report["size"] == [16, 16], report
    assert report["status"].startswith("Previewing car_example_car from azimuth"), report
    assert not report["running_after_toggle"] and not report["timer_left"]
