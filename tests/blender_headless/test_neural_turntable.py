"""scripts/neural_turntable.py in a real ``blender -b`` (Debian's 3.4): a scene saved with a car imported by the
add-on and an animated camera is rendered by the Neural Preview's backend frame by frame into PNGs and a
contact sheet; the backend runs in this test run's Python with a tiny StyleGAN-R."""

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests" / "neural"))
from neural_helpers import save_tiny_stylegan_r  # noqa: E402


def blender(*arguments, timeout=300) -> subprocess.CompletedProcess:
    executable = shutil.which("blender")
    if executable is None:
        pytest.fail("No `blender` on PATH; install Debian's: apt-get install -y --no-install-recommends blender")
    return subprocess.run([executable, "--background", *arguments], capture_output=True, text=True, timeout=timeout)


def test_the_turntable_renders_each_frame_and_a_contact_sheet(tmp_path):
    scene = tmp_path / "scene.blend"
    made = blender("--factory-startup", "--python", str(REPO / "tests" / "blender_headless" / "make_turntable_scene.py"),
                   "--", sys.executable, str(REPO / "docs" / "example_car.png"), str(scene))
    assert made.returncode == 0 and scene.is_file(), made.stdout[-2000:] + made.stderr[-2000:]
    model = save_tiny_stylegan_r(tmp_path / "tiny.safetensors")
    out = tmp_path / "frames"
    done = blender(str(scene), "--python", str(REPO / "scripts" / "neural_turntable.py"), "--", "--frames", "1-4",
                   "-o", str(out), "--backend-python", sys.executable, "--neural-model", str(model))
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    names = sorted(path.name for path in out.iterdir())
    assert names == ["contact_sheet.png", "frame_0001.png", "frame_0002.png", "frame_0003.png", "frame_0004.png"]
    frames = [np.asarray(Image.open(out / name).convert("RGB")) for name in names[1:]]
    assert all(frame.shape == (16, 16, 3) for frame in frames)
    assert not np.array_equal(frames[0], frames[3]), "the camera turned a quarter: another image"
    azimuths = [float(line.split("azimuth ")[1].split(",")[0]) for line in done.stdout.splitlines()
                if line.startswith("frame ")]
    turned = (azimuths[3] - azimuths[0]) % 360
    assert turned == pytest.approx(90.0, abs=0.01), "the moved, scaled car carries the camera's orbit with it"
    sheet = np.asarray(Image.open(out / "contact_sheet.png").convert("RGB"))
    assert sheet.shape == (16, 64, 3)
    for index, frame in enumerate(frames):  # 8-bit round trips through Blender's float pixels
        assert np.abs(sheet[:, 16 * index:16 * (index + 1)].astype(int) - frame).max() <= 1


def test_a_file_without_an_imported_car_is_one_sentence_and_exit_code_2(tmp_path):
    done = blender("--factory-startup", "--python", str(REPO / "scripts" / "neural_turntable.py"), "--",
                   "--frames", "1-2", "-o", str(tmp_path / "frames"), "--backend-python", sys.executable)
    assert done.returncode == 2
    assert "Error: This file holds no car imported by the GANverse3D add-on; import one and save the file." in \
        done.stderr
