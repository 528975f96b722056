"""Fixtures of the add-on tests: fake backend interpreters (see fake_worker.py)."""

import sys
from pathlib import Path

import pytest

FAKE_WORKER = Path(__file__).with_name("fake_worker.py")


@pytest.fixture
def fake_python(tmp_path):
    """fake_python(behaviour) -> (path of an executable that stands in for the backend Python, starts file).

    The executable ignores ``-m ganverse3d.worker`` and runs fake_worker.py with ``behaviour``; each start adds
    one line to the starts file.
    """
    def make(behaviour: str) -> tuple[str, Path]:
        starts = tmp_path / f"{behaviour}_starts.txt"
        starts.touch()
        launcher = tmp_path / f"python_{behaviour}"
        # "shift 2" drops the "-m ganverse3d.worker" that the client puts before the worker's options.
        launcher.write_text(f"#!/bin/sh\nshift 2\n"
                            f"exec '{sys.executable}' '{FAKE_WORKER}' {behaviour} '{starts}' \"$@\"\n")
        launcher.chmod(0o755)
        return str(launcher), starts
    return make


# The add-on package (blender_addon/ganverse3d_blender) is imported as `ganverse3d_blender`, as a legacy add-on.
ADDON_ROOT = Path(__file__).resolve().parents[2] / "blender_addon"
if str(ADDON_ROOT) not in sys.path:
    sys.path.insert(0, str(ADDON_ROOT))
