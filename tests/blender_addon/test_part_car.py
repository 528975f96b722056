"""The part-aware import with the bpy wheel: each check of part_car_checks.py (materials per part, the face ->
slot assignment, the Lights driver, the wheels' pivots, spin and steering, Bake Wheel Rotation (Distance and
Steer) on a moving car, the old import, a bad wheel entry, undo) against the fake worker's part car
(fake_worker.py)."""

import pytest
from PIL import Image

import part_car_checks  # first: it imports bpy, which makes Blender's own modules (addon_utils) importable
import addon_utils  # noqa: E402


@pytest.fixture(scope="module")
def addon():
    addon_utils.enable(part_car_checks.ADDON, default_set=True, handle_error=None)
    yield
    addon_utils.disable(part_car_checks.ADDON, default_set=True, handle_error=None)


@pytest.fixture
def pythons(fake_python):
    return {behaviour: fake_python(behaviour)[0] for behaviour in ("part_car", "car", "bad_wheel", "world_car")}


@pytest.fixture
def photo(tmp_path):
    path = tmp_path / "photo.png"
    Image.new("RGB", (64, 64), (180, 40, 30)).save(path)
    return str(path)


@pytest.mark.parametrize("name", sorted(part_car_checks.CHECKS))
def test_part_car(addon, pythons, photo, name):
    part_car_checks.CHECKS[name](pythons, photo)
