"""A saved .blend carries the imported car's texture and framed photo: they are packed into it, so the file
opens with them after the backend's output folder is gone (the operator deletes it once the car is built)."""

from pathlib import Path

import bpy
import addon_utils  # Blender's own module: importable once bpy is
import numpy as np
import pytest

import fake_worker

ADDON = "ganverse3d_blender"
PHOTO = Path(__file__).resolve().parents[2] / "docs" / "example_car.png"


@pytest.fixture
def addon_with_fake_backend(fake_python):
    """The add-on enabled with the fake worker's ``car`` behaviour (a tetrahedron textured with the photo), in an
    empty file (other test files leave their cars behind)."""
    bpy.ops.wm.read_homefile(use_empty=True)
    addon_utils.enable(ADDON, default_set=True, handle_error=None)
    python, starts = fake_python("car")
    bpy.context.preferences.addons[ADDON].preferences.python = python
    yield starts
    addon_utils.disable(ADDON, default_set=True, handle_error=None)  # also shuts the worker down
    bpy.ops.wm.read_homefile(use_empty=True)  # the next test file finds an empty scene, not the reopened file


def pixels(image) -> np.ndarray:
    values = np.zeros(4 * image.size[0] * image.size[1], dtype=np.float32)
    image.pixels.foreach_get(values)
    return values


def test_the_saved_blend_shows_the_texture_after_the_backends_files_are_gone(addon_with_fake_backend, tmp_path):
    assert bpy.ops.ganverse3d.import_photo(filepath=str(PHOTO)) == {"FINISHED"}
    [request] = [r for r in fake_worker.received(addon_with_fake_backend) if r["op"] == "reconstruct"]
    assert not Path(request["out_dir"]).exists(), "the backend's output folder is deleted after the import"
    texture = bpy.data.images["car_example_car_texture"]
    assert texture.packed_file is not None and texture.filepath.startswith(request["out_dir"])
    expected = pixels(texture)
    assert expected.size == 4 * 256 * 256 and expected.std() > 0.05, "the photo's pixels, not a blank image"

    blend = tmp_path / "car.blend"
    assert bpy.ops.wm.save_as_mainfile(filepath=str(blend)) == {"FINISHED"}
    bpy.ops.wm.read_homefile(use_empty=True)
    assert "car_example_car_texture" not in bpy.data.images
    assert bpy.ops.wm.open_mainfile(filepath=str(blend)) == {"FINISHED"}

    car = bpy.data.objects["car_example_car"]
    [texture] = [node.image for node in car.active_material.node_tree.nodes if node.type == "TEX_IMAGE"]
    assert texture.name == "car_example_car_texture" and texture.packed_file is not None
    assert tuple(texture.size) == (256, 256)
    np.testing.assert_allclose(pixels(texture), expected, atol=1e-6)
    background = bpy.data.objects["camera_example_car"].data.background_images[0].image
    assert background.packed_file is not None and tuple(background.size) == (256, 256)
