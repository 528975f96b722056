"""StyleGAN-R's mapping network and camera vector: shapes, the mixing weights and their entropy, which W*_V
dimensions the camera drives, the start at the mean codes, the field-of-view conversion and the bundle."""

import math

import pytest
import torch

from ganverse3d.bundle import load_module, save_module
from ganverse3d.neural import MappingNetwork, StyleGANR

from neural_helpers import tiny_stylegan_r

BATCH = 3
SMALL = dict(num_ws=6, w_dim=8, view_layers=2, view_dims=5, num_verts=10, texture_height=8, resolution=8, hidden=16)


def inputs(mapping: MappingNetwork, seed: int = 0):
    rng = torch.Generator().manual_seed(seed)
    side, height = mapping.resolution, mapping.texture_height
    return (torch.randn(BATCH, 4, generator=rng), torch.randn(BATCH, mapping.num_verts, 3, generator=rng),
            torch.rand(BATCH, 3, height, 2 * height, generator=rng), torch.rand(BATCH, 3, side, side, generator=rng),
            (torch.rand(BATCH, 1, side, side, generator=rng) > 0.5).float())


@pytest.fixture
def mapping():
    torch.manual_seed(0)
    return MappingNetwork(**SMALL)


def test_output_shapes(mapping):
    camera, verts, texture, background, mask = inputs(mapping)
    assert mapping(camera, verts, texture, background, mask).shape == (BATCH, 6, 8)
    assert mapping.view_codes(camera).shape == (BATCH, 2, 8)
    codes = mapping.property_codes(verts, texture, background, mask)
    assert [code.shape for code in codes] == [(BATCH, 4 * 8)] * 3
    assert mapping.mix(*codes).shape == (BATCH, 4, 8)


def test_mixing_weights_sum_to_one_per_dimension(mapping):
    with torch.no_grad():
        mapping.mix_logits.normal_(generator=torch.Generator().manual_seed(1))
    weights = mapping.mixing_weights()
    assert weights.shape == (3, 4 * 8) and (weights > 0).all()
    assert torch.allclose(weights.sum(dim=0), torch.ones(4 * 8), atol=1e-6)


def test_entropy_is_log_3_at_init_and_0_for_one_hot(mapping):
    assert mapping.mixing_entropy().item() == pytest.approx(math.log(3), abs=1e-6)
    with torch.no_grad():
        mapping.mix_logits.zero_()
        mapping.mix_logits[torch.arange(4 * 8) % 3, torch.arange(4 * 8)] = 100.0
    assert mapping.mixing_entropy().item() == pytest.approx(0.0, abs=1e-6)
    with torch.no_grad():  # weights (1/2, 1/4, 1/4): entropy ln 2 / 2 + 2 ln 4 / 4 = 1.5 ln 2
        mapping.mix_logits.zero_()
        mapping.mix_logits[0] = math.log(2)
    assert mapping.mixing_entropy().item() == pytest.approx(1.5 * math.log(2), abs=1e-6)


def test_view_codes_drive_only_the_view_indices(mapping):
    indices = torch.tensor([3, 0, 9, 15, 7])
    mapping.start_from(indices, torch.randn(2, 8), torch.randn(4, 8))
    with torch.no_grad():
        mapping.view_constant.normal_()
    camera = torch.randn(BATCH, 4)
    codes = mapping.view_codes(camera).flatten(1)
    others = torch.tensor([index for index in range(16) if index not in indices.tolist()])
    assert torch.equal(codes[:, others], mapping.view_constant[others].expand(BATCH, -1))
    assert torch.equal(codes[:, indices], mapping.g_v(camera))


def test_start_from_gives_the_mean_codes_when_the_last_layers_weigh_nothing(mapping):
    view_mean, content_mean = torch.randn(2, 8), torch.randn(4, 8)
    mapping.start_from(torch.tensor([1, 4, 6, 10, 12]), view_mean, content_mean)
    with torch.no_grad():
        for net in (mapping.g_v, mapping.g_s, mapping.g_t, mapping.g_b):
            net[-1].weight.zero_()
        mapping.mix_logits.normal_()  # any mixing of three equal codes is that code
    ws = mapping(*inputs(mapping))
    expected = torch.cat((view_mean, content_mean))[None].expand(BATCH, -1, -1)
    assert torch.allclose(ws, expected, atol=1e-6)


def test_camera_vector_and_the_field_of_view_conversion():
    model = tiny_stylegan_r(num_verts=10, texture_height=8)  # reference distance 3.8, fov 30 degrees
    vector = model.camera_vector(torch.tensor([90.0]), torch.tensor([45.0]), torch.tensor([3.8]))
    assert torch.allclose(vector, torch.tensor([[1.0, 0.0, 0.5, 0.0]]), atol=1e-6)
    # 60 degrees at 3.8 sees the car as 30 degrees at 3.8 tan 30 / tan 15 = 3.8 (1 + 2 / sqrt 3).
    wide = model.camera_vector(torch.tensor([90.0]), torch.tensor([45.0]), torch.tensor([3.8]), torch.tensor([60.0]))
    assert wide[0, 3].item() == pytest.approx(math.log(1 + 2 / math.sqrt(3)), abs=1e-6)
    assert torch.equal(wide[:, :3], vector[:, :3])
    same = model.camera_vector(torch.tensor([10.0]), torch.tensor([5.0]), torch.tensor([2.0]), torch.tensor([30.0]))
    assert torch.allclose(same, model.camera_vector(torch.tensor([10.0]), torch.tensor([5.0]), torch.tensor([2.0])))


def test_bundle_round_trip_renders_the_same(tmp_path):
    model = tiny_stylegan_r(num_verts=10, texture_height=8, seed=3)
    mapping = model.mapping
    camera, verts, texture, _, _ = inputs(mapping)
    background = torch.rand(BATCH, 3, 16, 16, generator=torch.Generator().manual_seed(2))
    mask = torch.zeros(BATCH, 1, 16, 16)
    path = tmp_path / "stylegan_r.safetensors"
    save_module(path, model, config={"inverse": "oracle"})
    loaded = load_module(path, StyleGANR, device="cpu")
    assert loaded.init_kwargs == model.init_kwargs and loaded.fov_y == 30.0
    with torch.no_grad():
        assert torch.equal(loaded(camera, verts, texture, background, mask), model(camera, verts, texture, background, mask))


def test_start_from_standardises_the_shapes_that_g_s_reads(mapping):
    shapes = torch.randn(6, mapping.num_verts, 3) * 0.02 + 0.5
    mapping.start_from(mapping.view_indices.clone(), torch.zeros(2, 8), torch.zeros(4, 8), shapes)
    flat = shapes.flatten(1)
    assert torch.allclose(mapping.shape_mean, flat.mean(dim=0))
    assert torch.isclose(mapping.shape_scale, (flat - flat.mean(dim=0)).std())
    verts, texture, background, mask = inputs(mapping)[1:]
    z_shape = mapping.property_codes(shapes[:1].expand(len(verts), -1, -1), texture, background, mask)[0]
    expected = mapping.g_s((flat[:1] - flat.mean(dim=0)) / (flat - flat.mean(dim=0)).std())
    assert torch.allclose(z_shape, expected.expand_as(z_shape), atol=1e-6)
