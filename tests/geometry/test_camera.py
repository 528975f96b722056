"""Camera conventions of docs/ARCHITECTURE.md: positions, orientation, projection."""

import math

import torch

from ganverse3d.geometry import Camera, azimuth_bins


def test_position_follows_the_design_formula():
    cameras = Camera.create([0.0, 90.0, 180.0, 30.0], [0.0, 0.0, 0.0, 20.0], [2.0, 2.0, 2.0, 3.0], 40.0,
                            dtype=torch.float64)
    az, el = math.radians(30), math.radians(20)
    expected = torch.tensor([[0, 0, 2], [2, 0, 0], [0, 0, -2],
                             [3 * math.cos(el) * math.sin(az), 3 * math.sin(el), 3 * math.cos(el) * math.cos(az)]],
                            dtype=torch.float64)
    assert torch.allclose(cameras.position(), expected, atol=1e-12)


def test_azimuth_zero_sees_the_front_and_ninety_the_plus_x_side():
    front, side = torch.tensor([[0.0, 0.0, 1.0]]), torch.tensor([[1.0, 0.0, 0.0]])
    cameras = Camera.create([0.0, 90.0], 0.0, 3.0, 40.0)
    _, depth_front = cameras.transform(front)
    _, depth_side = cameras.transform(side)
    # az 0 looks at the front (+Z) face on, az 90 at the +X side: that point is 1 nearer than the centre.
    assert torch.allclose(depth_front[:, 0], torch.tensor([2.0, 3.0]), atol=1e-6)
    assert torch.allclose(depth_side[:, 0], torch.tensor([3.0, 2.0]), atol=1e-6)


def test_projection_is_upright_and_not_mirrored():
    camera = Camera.create(0.0, 0.0, 3.0, 40.0)
    ndc, _ = camera.transform(torch.tensor([[0.5, 0.0, 0.0], [0.0, 0.5, 0.0], [0.0, 0.0, 0.0]]))
    # Seen from the front (az 0, camera on +Z), object +X is on the image's right and +Y at the top.
    assert ndc[0, 0, 0] > 0 and abs(ndc[0, 0, 1]) < 1e-6
    assert ndc[0, 1, 1] > 0 and abs(ndc[0, 1, 0]) < 1e-6
    assert torch.allclose(ndc[0, 2], torch.zeros(2), atol=1e-6)
    pixels = camera.project_to_pixels(torch.tensor([[0.0, 0.5, 0.0]]), (100, 200))
    assert pixels[0, 0, 0] == 100 and pixels[0, 0, 1] < 50  # centre column, upper half


def test_field_of_view_maps_to_the_image_edge():
    camera = Camera.create(0.0, 0.0, 2.0, 60.0, dtype=torch.float64)
    # A point at height 2 * tan(30 deg) on the plane through the origin sits on the top edge.
    ndc, depth = camera.transform(torch.tensor([[0.0, 2 * math.tan(math.radians(30)), 0.0]], dtype=torch.float64))
    assert torch.allclose(ndc[0, 0], torch.tensor([0.0, 1.0], dtype=torch.float64))
    assert torch.allclose(depth, torch.tensor([[2.0]], dtype=torch.float64))
    # Non-square: x is scaled by the aspect so pixels stay square.
    ndc_wide, _ = camera.transform(torch.tensor([[2 * math.tan(math.radians(30)), 0.0, 0.0]], dtype=torch.float64),
                                   aspect=2.0)
    assert math.isclose(ndc_wide[0, 0, 0].item(), 0.5, rel_tol=1e-12)


def test_view_matrix_agrees_with_transform_and_is_rigid():
    cameras = Camera.create([10.0, 200.0], [5.0, 35.0], [2.5, 4.0], 45.0, dtype=torch.float64)
    points = torch.randn(2, 7, 3, dtype=torch.float64)
    view = cameras.view_matrix()
    camera_space = points @ view[:, :3, :3].transpose(1, 2) + view[:, None, :3, 3]
    _, depth = cameras.transform(points)
    assert torch.allclose(-camera_space[..., 2], depth)
    rotation = view[:, :3, :3]
    assert torch.allclose(rotation @ rotation.transpose(1, 2), torch.eye(3, dtype=torch.float64).expand(2, 3, 3))
    assert torch.allclose(torch.linalg.det(rotation), torch.ones(2, dtype=torch.float64))
    assert torch.allclose((view @ torch.cat((cameras.position(), torch.ones(2, 1, dtype=torch.float64)), 1)[..., None])[:, :3, 0],
                          torch.zeros(2, 3, dtype=torch.float64), atol=1e-12)


def test_indexing_and_broadcasting():
    cameras = Camera.create([0.0, 45.0, 90.0], 10.0, 3.0, 40.0)
    assert len(cameras) == 3 and cameras.elevation.tolist() == [10.0] * 3
    assert cameras[1].azimuth.tolist() == [45.0]


def test_azimuth_bins_are_centred_on_multiples_of_30_degrees():
    azimuths = torch.tensor([0.0, 14.99, 15.0, 44.99, 45.0, 180.0, 344.99, 345.0, 359.9, -10.0, 370.0, 720.0])
    assert azimuth_bins(azimuths).tolist() == [0, 0, 1, 1, 2, 6, 11, 0, 0, 0, 0, 0]
    assert int(azimuth_bins(100.0)) == 3 and azimuth_bins(100.0).dtype == torch.int64  # a float too
