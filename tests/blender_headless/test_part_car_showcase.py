"""scripts/part_car_showcase.py in a real ``blender -b`` (Debian's 3.4, which has no numpy) on the fake worker's part
car: the night still and the driving sheet are written, lit and moving; a backend without parts is one sentence."""

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests" / "blender_addon"))
import fake_worker  # noqa: E402


def showcase(tmp_path, behaviour: str) -> subprocess.CompletedProcess:
    blender = shutil.which("blender")
    if blender is None:
        pytest.fail("No `blender` on PATH; install Debian's: apt-get install -y --no-install-recommends blender")
    photo = tmp_path / "photo.png"
    Image.new("RGB", (64, 64), (180, 40, 30)).save(photo)
    python, _ = fake_worker.write_launcher(tmp_path, behaviour)
    return subprocess.run([blender, "--background", "--factory-startup", "--python",
                           str(REPO / "scripts" / "part_car_showcase.py"), "--", "--photo", str(photo),
                           "--backend-python", python, "--out-dir", str(tmp_path / "out"), "--night-samples", "4",
                           "--drive-samples", "2"], capture_output=True, text=True, timeout=300)


def test_the_night_still_and_the_driving_sheet(tmp_path):
    done = showcase(tmp_path, "part_car")
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert sorted(path.name for path in (tmp_path / "out").iterdir()) == ["part_car_drive.png", "part_car_night.png"]
    night = np.asarray(Image.open(tmp_path / "out" / "part_car_night.png").convert("RGB")) / 255
    assert night.shape == (360, 640, 3)
    assert night.mean() < 0.15, "a night scene"
    assert (night.min(axis=2) > 0.9).sum() > 50, "the headlights glow white"
    sheet = np.asarray(Image.open(tmp_path / "out" / "part_car_drive.png").convert("RGB")).astype(int)
    assert sheet.shape == (256, 8 * 256, 3)
    first, last = sheet[:, :256], sheet[:, -256:]
    assert np.abs(first - last).mean() > 5, "the car has driven on"
    assert "3.00 m" in done.stdout, "Bake Wheel Rotation measured the drive"


def test_a_backend_without_parts_is_one_sentence(tmp_path):
    done = showcase(tmp_path, "car")
    assert done.returncode != 0
    assert "did not label the car's parts and wheels; this showcase needs a model with the part branch." in done.stderr
    assert not (tmp_path / "out").exists()
