"""The silhouette check of the camera estimate: it turns a slightly wrong azimuth onto the true one, keeps a
right one, and never changes elevation, distance or field of view."""

import torch

from ganverse3d.geometry import Camera, template_sphere
from ganverse3d.inverse.camera_search import search_camera
from ganverse3d.inverse.model import Prediction
from ganverse3d.render import render_mesh

SIZE = 64


def car_like_prediction(estimated_azimuths):
    """A long, low, front-heavy blob (so its silhouette changes with azimuth) and estimated cameras."""
    mesh = template_sphere()
    verts = mesh.verts * torch.tensor([0.45, 0.35, 0.9])
    verts = verts + torch.tensor([0.0, 0.0, 0.15]) * (verts[:, 2:] > 0)   # a longer front half
    batch = len(estimated_azimuths)
    verts = verts[None].repeat(batch, 1, 1)
    camera = Camera.create(torch.tensor(estimated_azimuths), 15.0, 3.0, 30.0)
    zeros = torch.zeros(batch, 3)
    return mesh, Prediction(verts=verts, texture=torch.full((batch, 3, 8, 16), 0.5), camera=camera,
                            offsets=torch.zeros_like(verts), scale=zeros + 1, translation=zeros,
                            camera_vector=torch.zeros(batch, 4))


def silhouettes(mesh, verts, azimuths):
    camera = Camera.create(torch.tensor(azimuths), 15.0, 3.0, 30.0)
    return render_mesh(verts, mesh.faces, mesh.face_uvs, torch.zeros(len(azimuths), 3, 1, 1), camera, SIZE,
                       soft=False).mask


def test_search_turns_a_wrong_azimuth_onto_the_true_one_and_keeps_a_right_one():
    true_azimuths = [40.0, 40.0, 250.0, 355.0]
    mesh, prediction = car_like_prediction([35.0, 40.0, 260.0, 5.0])   # off by -5, 0, +10, +10 (across 0)
    masks = silhouettes(mesh, prediction.verts, true_azimuths)
    cameras, iou = search_camera(prediction, mesh.faces, mesh.face_uvs, masks)
    assert torch.allclose(cameras.azimuth, torch.tensor(true_azimuths), atol=1e-4)
    assert torch.allclose(iou, torch.ones(4))
    assert torch.equal(cameras.elevation, prediction.camera.elevation)
    assert torch.equal(cameras.distance, prediction.camera.distance)
    assert torch.equal(cameras.fov_y, prediction.camera.fov_y)


def test_search_stays_within_its_offsets():
    mesh, prediction = car_like_prediction([90.0])
    masks = silhouettes(mesh, prediction.verts, [130.0])               # 40 degrees away: out of reach
    cameras, _ = search_camera(prediction, mesh.faces, mesh.face_uvs, masks)
    assert float(cameras.azimuth[0]) == 100.0                          # the nearest it may go
