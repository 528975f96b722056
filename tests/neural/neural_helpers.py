"""A tiny StyleGAN-R for tests: a 16-px generator behind a mapping network that reads the shipped inverse
network's reconstructions (642 vertices, a 32 x 64 texture), and the files `neural train` starts from
(:func:`write_training_kit`). Untrained: tests pin plumbing, not quality."""

from pathlib import Path

import torch

from ganverse3d.bundle import save_module
from ganverse3d.dataset.segment import WorldSegmenterNet
from ganverse3d.dataset.views import write_view_candidates
from ganverse3d.inverse.model import InverseGraphicsNet
from ganverse3d.neural import StyleGANR
from ganverse3d.stylegan2.networks import Generator

from dataset.dataset_helpers import write_annotation

TINY_GENERATOR = dict(z_dim=8, w_dim=8, img_resolution=16, img_channels=3, channel_base=64, channel_max=8,
                      num_mapping_layers=2)


def tiny_stylegan_r(num_verts: int = 642, texture_height: int = 32, seed: int = 0, view_dims: int = 8,
                    content_shape: tuple[int, int] | None = None) -> StyleGANR:
    """``content_shape``: the generator's content box (height, width) in its 16-px canvas (None: all of it)."""
    torch.manual_seed(seed)
    generator = TINY_GENERATOR if content_shape is None else dict(TINY_GENERATOR, img_content_shape=list(content_shape))
    return StyleGANR(generator=generator,
                     mapping=dict(num_ws=6, w_dim=8, view_layers=2, view_dims=view_dims, num_verts=num_verts,
                                  texture_height=texture_height, resolution=16, hidden=16),
                     reference_distance=3.8, fov_y=30.0).eval()


def save_tiny_stylegan_r(path, inverse: str = "oracle", **kwargs) -> Path:
    """Write a tiny StyleGAN-R bundle to ``path`` whose training config names ``inverse`` as its teacher."""
    path = Path(path)
    save_module(path, tiny_stylegan_r(**kwargs), config={"inverse": inverse})
    return path


def write_training_kit(folder: Path, generator: Generator, inverse_resolution: int = 16) -> dict[str, str]:
    """The files of a `neural train` run in ``folder``, as TrainConfig fields: ``generator`` saved, its annotated
    view candidates (views 0, 2, 5 in bins 0, 3, 9), an untrained inverse network at ``inverse_resolution`` and an
    untrained world segmenter that finds "car" in about half of each image (so masks, backgrounds and their codes
    all vary)."""
    save_module(folder / "G.safetensors", generator)
    write_view_candidates(generator, folder / "G.safetensors", folder / "views", 6, contents=2, seed=3)
    (folder / "views" / "views.toml").unlink()
    views = write_annotation(folder / "views", {0: 0, 2: 3, 5: 9})
    torch.manual_seed(0)
    save_module(folder / "inverse.safetensors",
                InverseGraphicsNet(resolution=inverse_resolution, texture_height=8, feature_dim=16, base_channels=8,
                                   max_channels=8, texture_channels=8))
    segmenter = WorldSegmenterNet(resolution=16, width=4).eval()
    with torch.no_grad():
        segmenter.head.bias -= segmenter(torch.rand(4, 3, 16, 16)).median()
    save_module(folder / "segmenter.safetensors", segmenter)
    return dict(views=views, generator=str(folder / "G.safetensors"), inverse=str(folder / "inverse.safetensors"),
                segmenter=str(folder / "segmenter.safetensors"))
