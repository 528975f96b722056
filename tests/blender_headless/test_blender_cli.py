"""Smoke tests of ``scripts/ganverse3d_blender_cli.py`` in a real ``blender`` binary (Debian's package).

Blender runs the stage with its own Python and finds the backend through ``GANVERSE3D_SITE``, pointed at the
site-packages folder of the Python running these tests (the project's virtual environment). A missing
``blender`` fails these tests rather than skipping them: CI installs it (``.ci/run``), and locally
``apt-get install -y --no-install-recommends blender`` does (see the README).
"""

import filecmp
import os
import shutil
import subprocess
import sysconfig
from pathlib import Path

import pytest

from ganverse3d.cli import main as ganverse3d_main

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "scripts" / "ganverse3d_blender_cli.py"
SITE_PACKAGES = sysconfig.get_paths()["purelib"]
TIMEOUT_S = 300  # a run takes about 5 s; Blender's start can be slow on a busy machine


def run_in_blender(*arguments: str, site: str | None = SITE_PACKAGES) -> subprocess.CompletedProcess:
    """``GANVERSE3D_SITE=SITE blender --background --python scripts/ganverse3d_blender_cli.py -- ARGUMENTS``, as
    the README says."""
    blender = shutil.which("blender")
    if blender is None:
        pytest.fail("No `blender` on PATH; install Debian's: apt-get install -y --no-install-recommends blender")
    # A user's shell, without this virtual environment: Blender configures its Python from the first
    # `python3.11` on PATH, so an activated venv would hand Blender its site-packages without GANVERSE3D_SITE.
    venv_bin = sysconfig.get_path("scripts")
    path = os.pathsep.join(entry for entry in os.environ.get("PATH", "").split(os.pathsep) if entry != venv_bin)
    environment = {**os.environ, "OMP_NUM_THREADS": "1", "PATH": path}
    for variable in ("GANVERSE3D_SITE", "VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME"):
        environment.pop(variable, None)
    if site is not None:
        environment["GANVERSE3D_SITE"] = site
    return subprocess.run([blender, "--background", "--python", str(SCRIPT), "--", *arguments],
                          capture_output=True, text=True, timeout=TIMEOUT_S, env=environment)


def same_tree(left: Path, right: Path) -> bool:
    """True when two folders hold the same file names with the same bytes, recursively."""
    comparison = filecmp.dircmp(left, right)
    if comparison.left_only or comparison.right_only or comparison.funny_files:
        return False
    _, mismatch, errors = filecmp.cmpfiles(left, right, comparison.common_files, shallow=False)
    return not mismatch and not errors and all(same_tree(left / name, right / name) for name in comparison.common_dirs)


def test_a_stage_runs_in_blenders_python_and_writes_what_the_cli_writes(tmp_path):
    out = tmp_path / "in_blender"
    done = run_in_blender("world", "render", "--n", "2", "--resolution", "32", "--seed", "5", "--out", str(out))
    assert done.returncode == 0, done.stderr[-2000:]
    assert f"Wrote 2 items at 32x32 to {out}" in done.stdout
    assert "Traceback" not in done.stderr
    assert sorted(path.name for path in (out / "images").iterdir()) == ["000000.png", "000001.png"]
    assert (out / "meta.jsonl").read_text().count("\n") == 2
    # Same seed, same bytes: the files match the same stage run by this (the virtual environment's) Python.
    reference = tmp_path / "here"
    assert ganverse3d_main(["world", "render", "--n", "2", "--resolution", "32", "--seed", "5",
                            "--out", str(reference)]) == 0
    assert same_tree(out, reference)


def test_bad_input_exits_2_with_one_sentence_and_writes_nothing(tmp_path):
    photo = tmp_path / "photo.png"
    photo.write_text("not a picture")
    done = run_in_blender("reconstruct", str(photo), "-o", str(tmp_path / "out" / "car.glb"))
    assert done.returncode == 2
    assert done.stderr == f"Error: The photo {photo} is not an image file this program can read.\n"
    assert sorted(tmp_path.iterdir()) == [photo]


@pytest.mark.parametrize("site", ["empty_folder", "not_a_folder"])
def test_a_backend_blender_cannot_import_exits_2_with_one_sentence(tmp_path, site):
    folder = tmp_path / "site-packages"
    if site == "empty_folder":
        folder.mkdir()
    done = run_in_blender("--version", site=str(folder))
    assert done.returncode == 2
    expected = "cannot import the ganverse3d backend" if site == "empty_folder" else "is not a folder"
    assert expected in done.stderr and "GANVERSE3D_SITE" in done.stderr
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr
