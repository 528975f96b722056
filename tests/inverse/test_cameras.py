"""Learnable view cameras: they start at the annotation, receive gradients through the renderer and move
toward the true cameras; the common azimuth and distance modes are pinned."""

import pytest
import torch

from ganverse3d.geometry import Camera, template_sphere
from ganverse3d.inverse.cameras import ViewCameras, within_reach, wrap_degrees
from ganverse3d.inverse.losses import iou_loss
from ganverse3d.render import render_mesh


def views(azimuths, distance=3.0):
    return [{"view_id": 10 + k, "azimuth": a, "elevation": 10.0, "distance": distance, "fov_y": 30.0}
            for k, a in enumerate(azimuths)]


def test_cameras_start_at_the_annotation_and_index_by_view_id():
    cameras = ViewCameras(views([30.0, 150.0, 270.0]))
    picked = cameras(torch.tensor([12, 10, 10]))
    assert picked.azimuth.tolist() == [270.0, 30.0, 30.0]
    assert picked.distance.tolist() == [3.0, 3.0, 3.0]
    assert cameras.moved_degrees().tolist() == pytest.approx([0.0, 0.0, 0.0], abs=1e-4)


def test_common_azimuth_and_distance_shifts_are_removed():
    cameras = ViewCameras(views([30.0, 150.0]))
    with torch.no_grad():
        cameras.azimuth_delta.fill_(0.3)
        cameras.log_distance_delta.fill_(0.2)
        cameras.elevation_delta.fill_(0.1)
    current = cameras.all()
    assert torch.allclose(current.azimuth, torch.tensor([30.0, 150.0]))
    assert torch.allclose(current.distance, torch.tensor([3.0, 3.0]))
    assert torch.allclose(current.elevation, torch.tensor([10.0, 10.0]) + torch.rad2deg(torch.tensor(0.1)))


def test_cameras_receive_gradients_and_move_toward_the_true_views():
    # An elongated ellipsoid seen from 40 and 140 degrees; the annotation says 30 and 150 (errors +-10).
    mesh = template_sphere(2)
    verts = (mesh.verts * torch.tensor([0.4, 0.3, 0.9]))[None].expand(2, -1, -1)
    texture = torch.ones(2, 3, 4, 8)
    true = Camera.create([40.0, 140.0], 10.0, 3.0, 30.0)
    target = render_mesh(verts, mesh.faces, mesh.face_uvs, texture, true, 32, soft=False).mask

    cameras = ViewCameras(views([30.0, 150.0]))
    optimizer = torch.optim.Adam(cameras.parameters(), lr=0.01)
    start_error = wrap_degrees(cameras.all().azimuth - true.azimuth).mean().item()
    for step in range(40):
        out = render_mesh(verts, mesh.faces, mesh.face_uvs, texture, cameras(torch.tensor([10, 11])), 32)
        loss = iou_loss(out.soft_mask, target)
        optimizer.zero_grad()
        loss.backward()
        if step == 0:
            assert cameras.azimuth_delta.grad.abs().min() > 0
        optimizer.step()
    end_error = wrap_degrees(cameras.all().azimuth - true.azimuth).mean().item()
    assert start_error == 10.0
    assert end_error < 5.0
    assert cameras.moved_degrees().min() > 3.0
    assert {entry["view_id"] for entry in cameras.to_json()} == {10, 11}


def test_fixed_cameras_do_not_learn():
    cameras = ViewCameras(views([30.0, 150.0]), learnable=False)
    assert not any(parameter.requires_grad for parameter in cameras.parameters())
    assert not cameras.all().azimuth.requires_grad


def test_within_reach_keeps_estimates_near_the_prior_the_short_way_round_and_falls_back_to_it_elsewhere():
    prior = Camera.create([350.0, 90.0, 90.0, 0.0], [0.0, 0.0, 0.0, 20.0], 3.0, 30.0)
    azimuth = torch.tensor([10.0, 100.0, 270.0, 25.0], requires_grad=True)
    elevation = torch.tensor([25.0, 5.0, 5.0, -20.0], requires_grad=True)
    distance = torch.tensor([2.0, 3.5, 4.0, 5.0], requires_grad=True)
    reached, kept = within_reach(Camera(azimuth, elevation, distance, torch.full((4,), 30.0)), prior, 30.0)
    assert kept.tolist() == [True, True, False, False]
    # 10 lies 20 deg past 350: kept; 270 is 90's flip: the prior; the last is 40 deg too low: the prior.
    assert reached.azimuth.tolist() == [10.0, 100.0, 90.0, 0.0]
    assert reached.elevation.tolist() == [25.0, 5.0, 0.0, 20.0]
    assert reached.distance.tolist() == [2.0, 3.5, 3.0, 3.0]
    (reached.azimuth.sum() + reached.elevation.sum() + reached.distance.sum()).backward()
    for gradient in (azimuth.grad, elevation.grad, distance.grad):
        assert gradient.tolist() == [1.0, 1.0, 0.0, 0.0]
