"""Slow, dense reference twins of the rasteriser and the soft silhouette, for tests.

They evaluate every face at every pixel (a [B, H*W, F] tensor), straight from DIB-R's definitions, with
none of the binning, packing and chunking of the fast ops. Use them only on tiny inputs.
"""

from __future__ import annotations

import torch

from .rasterize import NEAR_PLANE, front_facing, pixel_centres_ndc
from .soft_mask import point_triangle_boundary_distance_sq


def _pixel_grid(image_size, dtype, device) -> torch.Tensor:
    height, width = image_size
    rows, columns = torch.meshgrid(torch.arange(height, device=device), torch.arange(width, device=device), indexing="ij")
    return pixel_centres_ndc(columns.reshape(-1), rows.reshape(-1), image_size, dtype)  # [P, 2]


def _dense_barycentrics(tri_ndc: torch.Tensor, points: torch.Tensor) -> torch.Tensor:
    """[B, P, F, 3] screen-space barycentrics of every pixel in every face (DIB-R's formula)."""
    p = points[None, :, None, :]                       # [1, P, 1, 2]
    v0, v1, v2 = (tri_ndc[:, None, :, k, :] for k in range(3))  # [B, 1, F, 2]
    m, p_ = (v1 - v0).unbind(-1)  # DIB-R's names: (m, p) and (n, q) are the two edges' (x, y)
    n, q = (v2 - v0).unbind(-1)
    s, t = (p - v0).unbind(-1)
    k3 = m * q - n * p_
    w1 = (s * q - n * t) / k3
    w2 = (m * t - s * p_) / k3
    return torch.stack((1 - w1 - w2, w1, w2), dim=-1)


def rasterize_ref(tri_ndc: torch.Tensor, tri_depth: torch.Tensor, image_size, cull_backfaces: bool = True):
    """Dense twin of :func:`ganverse3d.render.rasterize`: (face_index [B, H, W], screen bary [B, H, W, 3])."""
    height, width = image_size
    batch, num_faces = tri_ndc.shape[:2]
    weights = _dense_barycentrics(tri_ndc, _pixel_grid(image_size, tri_ndc.dtype, tri_ndc.device))
    usable = (tri_depth > NEAR_PLANE).all(-1)
    if cull_backfaces:
        usable &= front_facing(tri_ndc, tri_depth)
    inside = (weights >= 0).all(-1) & usable[:, None, :]
    inverse_depth = (weights / tri_depth[:, None]).sum(-1)
    depth = torch.where(inside, 1 / inverse_depth, torch.full_like(inverse_depth, float("inf")))
    # float32 depth order first, then the lower face index, as the fast rasteriser decides.
    depth32 = depth.float()
    nearest = depth32.min(-1, keepdim=True).values
    candidates = torch.where(depth32 == nearest, torch.arange(num_faces, device=tri_ndc.device), num_faces)
    face = candidates.min(-1).values
    covered = torch.isfinite(nearest[..., 0])
    face_index = torch.where(covered, face, -1)
    bary = torch.gather(weights, 2, face.clamp(max=num_faces - 1)[..., None, None].expand(-1, -1, 1, 3))[:, :, 0]
    bary = torch.where(covered[..., None], bary, 0)
    return face_index.reshape(batch, height, width), bary.reshape(batch, height, width, 3)


def soft_silhouette_ref(tri_ndc: torch.Tensor, tri_depth: torch.Tensor, image_size, sigmainv: float = 7000.0,
                        boxlen: float = 0.02) -> torch.Tensor:
    """Dense twin of :func:`ganverse3d.render.soft_silhouette` without the ``knum`` cap: [B, 1, H, W]."""
    height, width = image_size
    batch, num_faces = tri_ndc.shape[:2]
    points = _pixel_grid(image_size, tri_ndc.dtype, tri_ndc.device)
    face_index, _ = rasterize_ref(tri_ndc, tri_depth, image_size)
    covered = face_index.reshape(batch, -1) >= 0
    front = front_facing(tri_ndc, tri_depth)
    lo, hi = tri_ndc.amin(2) - boxlen, tri_ndc.amax(2) + boxlen  # [B, F, 2]
    in_box = ((points[None, :, None] >= lo[:, None]) & (points[None, :, None] <= hi[:, None])).all(-1)
    near = in_box & front[:, None]
    pixel_count = points.shape[0]
    tri = tri_ndc[:, None].expand(-1, pixel_count, -1, -1, -1).reshape(-1, 3, 2)
    distance_sq = point_triangle_boundary_distance_sq(
        points[None, :, None].expand(batch, -1, num_faces, -1).reshape(-1, 2), tri).reshape(batch, pixel_count, num_faces)
    probability = torch.where(near, torch.exp(-sigmainv * distance_sq), torch.zeros_like(distance_sq))
    soft = 1 - torch.prod(1 - probability, dim=-1)
    soft = torch.where(covered, torch.ones_like(soft), soft)
    return soft.reshape(batch, 1, height, width)
