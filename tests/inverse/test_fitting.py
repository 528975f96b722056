"""Test-time fitting (``ganverse3d.inverse.fitting``) and its wiring into ``api.reconstruct``."""

import pytest
import torch

from ganverse3d import api
from ganverse3d.geometry import Camera, template_sphere
from ganverse3d.inverse import fitting
from ganverse3d.inverse.fitting import FitSettings, fit_to_photo
from ganverse3d.inverse.losses import mask_iou
from ganverse3d.inverse.model import mirror_permutation
from ganverse3d.render import render_mesh
from ganverse3d.world import render_items

# Item 6 of the world with seed 998 (no training set uses it), whose embedded-model reconstruction covers the
# car's mask with an IoU of 0.824 (measured with the car-template oracle; item 1, used before, is now predicted
# facing backwards, which no local fitting undoes: 0.706 -> 0.720).
WORLD_SEED, WORLD_ITEM = 998, 6
FIT_STEPS = 30
FITTED_IOU_FLOOR = 0.91  # measured 0.933 after 30 steps
MIN_IOU_GAIN = 0.08      # measured +0.109


def crop_iou(reconstruction: api.Reconstruction) -> float:
    """IoU of the reconstruction's silhouette, seen from its own camera, and the car's mask in the framed crop."""
    mesh = reconstruction.mesh
    rendered = render_mesh(mesh.verts[None], mesh.faces, mesh.face_uvs, mesh.texture[None], reconstruction.camera,
                           api.FRAMED_SIZE, soft=False)
    return float(mask_iou(rendered.mask, reconstruction.mask[None])[0])


@pytest.fixture(scope="module")
def world_photo():
    """(image [3, 256, 256], mask [1, 256, 256]) of the world car."""
    _, _, render = render_items(WORLD_SEED, [WORLD_ITEM], 256)
    return render.images[0], render.masks[0]


@pytest.fixture(scope="module")
def unfitted(world_photo):
    image, mask = world_photo
    return api.reconstruct(image, mask=mask, device="cpu")


def test_fitting_raises_the_input_view_iou_of_an_imperfect_prediction(world_photo, unfitted):
    image, mask = world_photo
    fitted = api.reconstruct(image, mask=mask, device="cpu", fit_steps=FIT_STEPS)
    before, after = crop_iou(unfitted), crop_iou(fitted)
    assert before < FITTED_IOU_FLOOR - MIN_IOU_GAIN, f"the prediction is no longer imperfect ({before:.3f}): pick another car"
    assert after >= FITTED_IOU_FLOOR and after >= before + MIN_IOU_GAIN, (before, after)


def test_a_fitted_reconstruction_stays_mirror_symmetric(world_photo, unfitted):
    image, mask = world_photo
    fitted = api.reconstruct(image, mask=mask, device="cpu", fit_steps=FIT_STEPS)
    verts = fitted.mesh.verts
    mirror = mirror_permutation(template_sphere().verts)
    # The photo sees the car from one side, yet the far side moved with it: mirrored vertices match up to the
    # template's own asymmetry (under 1e-5 of the unit sphere), far below how far fitting moved them.
    moved = (verts - unfitted.mesh.verts).norm(dim=1).max()
    assert moved > 1e-2
    torch.testing.assert_close(verts[mirror] * torch.tensor([-1.0, 1.0, 1.0]), verts, rtol=0, atol=2e-5)


def test_fit_to_photo_keeps_offsets_exactly_symmetric_for_a_lopsided_target():
    template = template_sphere()
    mirror = mirror_permutation(template.verts)
    camera = Camera.create(60.0, 15.0, 3.0, 30.0)
    # The target is the sphere squashed and moved toward +x: nothing symmetric fits it exactly.
    target_verts = template.verts * torch.tensor([0.5, 0.4, 0.9]) + torch.tensor([0.2, 0.0, 0.0])
    target = render_mesh(target_verts[None], template.faces, template.face_uvs, torch.rand(1, 3, 8, 16,
                         generator=torch.Generator().manual_seed(0)), camera, 32, soft=False)
    start_offsets = torch.zeros(1, template.num_verts, 3)
    result = fit_to_photo(template.verts, template.faces, template.face_uvs, mirror, start_offsets,
                          torch.full((1, 3), 0.6), torch.zeros(1, 3), torch.full((1, 3, 8, 16), 0.5), camera,
                          target.image, target.mask, FitSettings(steps=10))
    offsets = result.offsets
    assert offsets.abs().max() > 1e-3  # it did move
    assert torch.equal(offsets[:, mirror] * torch.tensor([-1.0, 1.0, 1.0]), offsets)


def test_fit_steps_0_leaves_reconstruct_as_it_was(world_photo, unfitted, monkeypatch):
    def no_fitting(*args, **kwargs):
        raise AssertionError("fit_steps=0 must not fit")

    monkeypatch.setattr(fitting, "fit_to_photo", no_fitting)
    image, mask = world_photo
    again = api.reconstruct(image, mask=mask, device="cpu", fit_steps=0)
    for name in ("verts", "faces", "face_uvs", "texture"):
        assert torch.equal(getattr(again.mesh, name), getattr(unfitted.mesh, name)), name
    for name in ("azimuth", "elevation", "distance", "fov_y"):
        assert torch.equal(getattr(again.camera, name), getattr(unfitted.camera, name)), name


@pytest.mark.parametrize("fit_steps", [-1, 2001, 1.5, True, "10"])
def test_fit_steps_out_of_range_is_one_sentence_naming_the_setting(fit_steps, world_photo):
    image, mask = world_photo
    with pytest.raises(api.InputError) as raised:
        api.reconstruct(image, mask=mask, device="cpu", fit_steps=fit_steps)
    assert raised.value.settings == ["fit_steps"] and "from 0 to 2000" in str(raised.value)
