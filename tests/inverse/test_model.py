"""The inverse-graphics network: shapes and ranges at its boundary, symmetry, camera encoding, bundles."""

import pytest
import torch

from ganverse3d.bundle import load_module, save_module
from ganverse3d.geometry import Camera, template_sphere
from ganverse3d.inverse.model import InverseGraphicsNet, camera_from_vector, camera_to_vector, mirror_permutation


def tiny_net(**overrides):
    settings = dict(resolution=16, texture_height=8, feature_dim=32, base_channels=8, max_channels=16,
                    texture_channels=16)
    settings.update(overrides)
    return InverseGraphicsNet(**settings)


def inputs(batch=2, resolution=16, seed=0):
    generator = torch.Generator().manual_seed(seed)
    return (torch.rand(batch, 3, resolution, resolution, generator=generator),
            (torch.rand(batch, 1, resolution, resolution, generator=generator) > 0.5).float())


def test_prediction_shapes_and_ranges():
    torch.manual_seed(0)
    net = tiny_net()
    prediction = net(*inputs(3))
    assert prediction.verts.shape == (3, 642, 3)
    assert prediction.offsets.shape == (3, 642, 3)
    assert prediction.texture.shape == (3, 3, 8, 16)
    assert 0 <= prediction.texture.min().item() and prediction.texture.max().item() <= 1
    assert len(prediction.camera) == 3
    assert bool(((prediction.camera.azimuth >= 0) & (prediction.camera.azimuth < 360)).all())
    assert bool((prediction.camera.elevation.abs() <= 60).all())
    assert bool((prediction.camera.fov_y == net.fov_y).all())
    # verts = (template + offsets) * scale + translation, exactly.
    expected = (net.template_verts + prediction.offsets) * prediction.scale[:, None] + prediction.translation[:, None]
    assert torch.allclose(prediction.verts, expected)


def test_estimate_camera_gives_the_forward_pass_camera():
    torch.manual_seed(0)
    net = tiny_net()
    image, mask = inputs(3)
    prediction = net(image, mask)
    camera, vector = net.estimate_camera(image, mask)
    assert torch.equal(vector, prediction.camera_vector)
    for name in ("azimuth", "elevation", "distance", "fov_y"):
        assert torch.equal(getattr(camera, name), getattr(prediction.camera, name)), name


def test_it_starts_as_a_scaled_sphere():
    torch.manual_seed(0)
    net = tiny_net(initial_scale=0.6)
    prediction = net(*inputs(2))
    assert prediction.offsets.abs().max() < 0.05
    assert torch.allclose(prediction.scale, torch.full_like(prediction.scale, 0.6), atol=0.02)


def test_symmetric_shapes_are_mirror_images_of_themselves_in_x():
    torch.manual_seed(0)
    with torch.no_grad():
        net = tiny_net()
        net.shape_head[-1].weight.normal_()  # large, random deformations
        verts = net(*inputs(2)).verts
    mirrored = verts[:, net.mirror] * torch.tensor([-1.0, 1.0, 1.0])
    assert torch.allclose(mirrored, verts, atol=1e-6)
    asymmetric = tiny_net(symmetric_shape=False)
    with torch.no_grad():
        asymmetric.shape_head[-1].weight.normal_()
        free = asymmetric(*inputs(2)).verts
    assert not torch.allclose(free[:, asymmetric.mirror] * torch.tensor([-1.0, 1.0, 1.0]), free, atol=1e-3)


def test_mirror_permutation_pairs_vertices_across_x():
    verts = template_sphere().verts
    mirror = mirror_permutation(verts)
    assert torch.equal(mirror[mirror], torch.arange(len(verts)))
    assert torch.allclose(verts[mirror], verts * torch.tensor([-1.0, 1.0, 1.0]), atol=1e-6)
    with pytest.raises(ValueError):
        mirror_permutation(verts + torch.tensor([0.1, 0.0, 0.0]))


def test_camera_vector_round_trip():
    camera = Camera.create([0.0, 95.0, 271.5], [0.0, 12.0, 29.0], [3.8, 3.5, 4.2], 30.0)
    back = camera_from_vector(camera_to_vector(camera, 3.8), 3.8, 30.0)
    for name in ("azimuth", "elevation", "distance", "fov_y"):
        assert torch.allclose(getattr(back, name), getattr(camera, name), atol=1e-4), name


def test_mask_input_is_required_when_configured():
    net = tiny_net()
    image, _ = inputs(1)
    with pytest.raises(AssertionError):
        net(image)
    assert tiny_net(mask_input=False)(image).verts.shape == (1, 642, 3)


def test_bundle_round_trip_rebuilds_the_same_network(tmp_path):
    torch.manual_seed(0)
    net = tiny_net(reference_distance=3.0, fov_y=35.0)
    save_module(tmp_path / "net.safetensors", net)
    loaded = load_module(tmp_path / "net.safetensors", InverseGraphicsNet)
    assert loaded.init_kwargs == net.init_kwargs
    with torch.no_grad():
        a, b = net.eval()(*inputs(2)), loaded(*inputs(2))
    assert torch.equal(a.verts, b.verts) and torch.equal(a.texture, b.texture)
    assert torch.equal(a.camera.distance, b.camera.distance)


def test_input_sizes_other_than_configured_are_refused():
    with pytest.raises(ValueError):
        InverseGraphicsNet(resolution=48)
    with pytest.raises(AssertionError):
        tiny_net()(*inputs(1, resolution=32))


def test_the_car_template_starts_as_the_mean_car_on_the_spheres_topology():
    sphere, car = InverseGraphicsNet(), InverseGraphicsNet(template="car")
    assert torch.equal(car.faces, sphere.faces) and torch.equal(car.face_uvs, sphere.face_uvs)
    assert torch.equal(car.mirror, sphere.mirror)
    verts = car.template_verts
    assert torch.allclose(verts[car.mirror] * torch.tensor([-1.0, 1.0, 1.0]), verts, atol=1e-5)
    # Each vertex keeps its sphere direction; the car is long in z, low in y, and its farthest vertex is at 1.
    directions = torch.nn.functional.normalize(verts, dim=1)
    assert torch.allclose(directions, sphere.template_verts, atol=1e-4)
    extent = verts.max(0).values - verts.min(0).values
    assert float(verts.norm(dim=1).max()) == pytest.approx(1.0, abs=1e-5)
    assert float(extent[2]) > 2.5 * float(extent[1]) and float(extent[2]) > 2 * float(extent[0])
    with pytest.raises(ValueError, match="template must be one of sphere, car"):
        InverseGraphicsNet(template="car", subdivisions=2)


def test_the_committed_car_template_is_what_its_script_writes():
    import importlib.util
    import json
    from pathlib import Path

    from ganverse3d.inverse.model import CAR_TEMPLATE_PATH

    script = Path(__file__).resolve().parents[2] / "scripts" / "make_car_template.py"
    spec = importlib.util.spec_from_file_location("make_car_template", script)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert json.loads(CAR_TEMPLATE_PATH.read_text())["verts"] == module.car_template()
