"""Shaders: bilinear UV texture sampling (wrapping in u) and Lambertian lighting with an ambient term."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F


def sample_texture(texture: torch.Tensor, uv: torch.Tensor, batch_index: torch.Tensor) -> torch.Tensor:
    """Bilinearly sample textures at packed UVs.

    Args:
        texture: [B, C, Ht, Wt] texture images (row 0 is the top, i.e. v = 0).
        uv: [N, 2] UV coordinates: u in [0, 1) across the width, repeating (u and u + 1 sample the same
            texel, so faces across the seam may carry u slightly above 1); v in [0, 1] down the height,
            clamped at the border.
        batch_index: [N] int64, which texture each sample reads.

    Returns:
        [N, C] colours, differentiable w.r.t. ``texture`` and ``uv``.
    """
    assert texture.dim() == 4 and uv.dim() == 2 and uv.shape[1] == 2, (texture.shape, uv.shape)
    batch, channels, tex_h, tex_w = texture.shape
    # Wrap in u by padding one column from the opposite side, then sampling in the padded image.
    padded = torch.cat((texture[..., -1:], texture, texture[..., :1]), dim=-1)
    column = (uv[:, 0] - torch.floor(uv[:, 0])) * tex_w + 0.5   # texel centres at k + 1 in padded columns
    row = (uv[:, 1] * tex_h - 0.5).clamp(0, tex_h - 1)
    grid_x = 2 * column / (tex_w + 1) - 1
    grid_y = 2 * row / max(tex_h - 1, 1) - 1
    grid = torch.stack((grid_x, grid_y), -1)
    # grid_sample wants one grid per image: lay every image's samples in a row, padded to the longest.
    counts = torch.bincount(batch_index, minlength=batch)
    longest = int(counts.max()) if len(batch_index) else 0
    order = torch.argsort(batch_index, stable=True)
    slot = torch.arange(len(order), device=uv.device) - (torch.cumsum(counts, 0) - counts)[batch_index[order]]
    grids = torch.zeros(batch, 1, max(longest, 1), 2, dtype=uv.dtype, device=uv.device)
    grids = grids.index_put((batch_index[order], torch.zeros_like(slot), slot), grid[order])
    sampled = F.grid_sample(padded.to(uv.dtype), grids, mode="bilinear", padding_mode="border", align_corners=True)
    colours = torch.empty(len(order), channels, dtype=sampled.dtype, device=uv.device)
    return colours.index_put((order,), sampled[batch_index[order], :, 0, slot])


@dataclass(frozen=True)
class Lighting:
    """One directional light plus ambient: colour = albedo * (ambient + diffuse * max(0, n . l)).

    Attributes:
        direction: (x, y, z) object-space direction from the surface toward the light (normalised here).
        ambient: ambient intensity, typically 0.3-0.6.
        diffuse: directional intensity, typically 0.4-0.8; ambient + diffuse = 1 keeps lit albedo exact.
    """

    direction: tuple[float, float, float] = (0.3, 1.0, 0.6)
    ambient: float = 0.45
    diffuse: float = 0.55

    def shade(self, albedo: torch.Tensor, normals: torch.Tensor) -> torch.Tensor:
        """albedo [N, C], object-space normals [N, 3] (any length) -> lit colour [N, C]."""
        light = F.normalize(torch.tensor(self.direction, dtype=normals.dtype, device=normals.device), dim=0)
        lambert = (F.normalize(normals, dim=-1) @ light).clamp_min(0)
        return albedo * (self.ambient + self.diffuse * lambert).unsqueeze(-1)
