"""Fixtures of the add-on tests: fake backend interpreters (see fake_worker.py)."""

import sys
from pathlib import Path

import pytest

import fake_worker


@pytest.fixture
def fake_python(tmp_path):
    """fake_python(behaviour) -> (path of an executable that stands in for the backend Python, starts file).

    The executable runs fake_worker.py with ``behaviour``; each start adds one line to the starts file.
    """
    return lambda behaviour: fake_worker.write_launcher(tmp_path, behaviour)


# The add-on package (blender_addon/ganverse3d_blender) is imported as `ganverse3d_blender`, as a legacy add-on.
ADDON_ROOT = Path(__file__).resolve().parents[2] / "blender_addon"
if str(ADDON_ROOT) not in sys.path:
    sys.path.insert(0, str(ADDON_ROOT))
