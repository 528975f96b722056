"""Views of a textured mesh for people to look at: turntables and turned cameras.

A turntable shows one mesh from :data:`TURNTABLE_AZIMUTHS` at a fixed elevation, distance and field of view,
after normalising it (bounding-box centre at the origin, farthest vertex at radius 1), so that every mesh fills
the same part of the frame whatever its size: the paper's user-study view, and the camera ring on which
evaluation compares silhouettes. :func:`render_around` instead turns given cameras about the mesh, as training
samples show predictions. Everything here takes plain tensors; it knows nothing of networks.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..geometry import Camera
from .renderer import render_mesh
from .shading import Lighting

TURNTABLE_AZIMUTHS = (0.0, 60.0, 120.0, 180.0, 240.0, 300.0)
TURNTABLE_ELEVATION = 15.0
# A normalised mesh (radius 1) fills about 70 % of the image height from here with this field of view.
TURNTABLE_DISTANCE = 4.0
TURNTABLE_FOV_Y = 40.0
TURNTABLE_SIZE = 128
BACKGROUND_GREY = 0.5


def normalise_verts(verts: torch.Tensor) -> torch.Tensor:
    """Vertices [V, 3] moved so their bounding-box centre is the origin and scaled so the farthest is at 1."""
    centre = (verts.min(0).values + verts.max(0).values) / 2
    centred = verts - centre
    return centred / centred.norm(dim=1).max().clamp_min(1e-12)


def turntable_cameras(device=None) -> Camera:
    """The turntable's :class:`Camera` batch, one per azimuth of :data:`TURNTABLE_AZIMUTHS`."""
    return Camera.create(TURNTABLE_AZIMUTHS, TURNTABLE_ELEVATION, TURNTABLE_DISTANCE, TURNTABLE_FOV_Y, device=device)


def render_turntable(verts: torch.Tensor, faces: torch.Tensor, face_uvs: torch.Tensor, texture: torch.Tensor,
                     size: int = TURNTABLE_SIZE, lit: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """One mesh (verts [V, 3], faces [F, 3], face_uvs [F, 3, 2], texture [3, Ht, Wt]), normalised, from the
    turntable cameras, both sides of every face: (images [6, 3, size, size] on grey, masks [6, 1, size, size])."""
    views = len(TURNTABLE_AZIMUTHS)
    out = render_mesh(normalise_verts(verts)[None].expand(views, -1, -1), faces, face_uvs,
                      texture[None].expand(views, -1, -1, -1), turntable_cameras(verts.device), size,
                      background=verts.new_full((3,), BACKGROUND_GREY), lighting=Lighting() if lit else None,
                      soft=False, cull_backfaces=False)
    return out.image, out.mask


def render_around(verts: torch.Tensor, faces: torch.Tensor, face_uvs: torch.Tensor, texture: torch.Tensor,
                  cameras: Camera, size: int, azimuth_offsets=(0.0, 90.0, 180.0, 270.0)) -> list[torch.Tensor]:
    """A batch of meshes (verts [B, V, 3], faces [F, 3], face_uvs [F, 3, 2], texture [B, 3, Ht, Wt]) from
    ``cameras`` (batch B) turned by each of ``azimuth_offsets`` (degrees): one [B, 3, size, size] image per
    offset, the unlit texture on grey."""
    cameras = cameras.to(device=verts.device)
    return [render_mesh(verts, faces, face_uvs, texture,
                        Camera(cameras.azimuth + offset, cameras.elevation, cameras.distance, cameras.fov_y), size,
                        background=verts.new_full((3,), BACKGROUND_GREY), soft=False).image
            for offset in azimuth_offsets]


def turntable_rows(image: torch.Tensor, views: torch.Tensor, true_views: torch.Tensor | None = None) -> torch.Tensor:
    """The tiles [N, 3, S, S] of one item's turntable sheet: the ``image`` [3, H, W] scaled to S then its
    ``views`` [6, 3, S, S]; with ``true_views`` [6, 3, S, S] (the ground truth), a blank tile then those below."""
    size = views.shape[-1]
    first = F.interpolate(image[None], size=(size, size), mode="area")[0]
    tiles = [first, *views]
    if true_views is not None:
        tiles += [torch.ones_like(first), *true_views]
    return torch.stack(tiles)
