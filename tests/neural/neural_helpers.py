"""A tiny StyleGAN-R for tests: a 16-px generator behind a mapping network that reads the shipped inverse
network's reconstructions (642 vertices, a 32 x 64 texture). Untrained: tests pin plumbing, not quality."""

from pathlib import Path

import torch

from ganverse3d.bundle import save_module
from ganverse3d.neural import StyleGANR

TINY_GENERATOR = dict(z_dim=8, w_dim=8, img_resolution=16, img_channels=3, channel_base=64, channel_max=8,
                      num_mapping_layers=2)


def tiny_stylegan_r(num_verts: int = 642, texture_height: int = 32, seed: int = 0, view_dims: int = 8) -> StyleGANR:
    torch.manual_seed(seed)
    return StyleGANR(generator=TINY_GENERATOR,
                     mapping=dict(num_ws=6, w_dim=8, view_layers=2, view_dims=view_dims, num_verts=num_verts,
                                  texture_height=texture_height, resolution=16, hidden=16),
                     reference_distance=3.8, fov_y=30.0).eval()


def save_tiny_stylegan_r(path, inverse: str = "oracle", **kwargs) -> Path:
    """Write a tiny StyleGAN-R bundle to ``path`` whose training config names ``inverse`` as its teacher."""
    path = Path(path)
    save_module(path, tiny_stylegan_r(**kwargs), config={"inverse": inverse})
    return path
