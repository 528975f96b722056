"""Helpers shared by the dataset tests (a module of its own: test modules cannot import conftest reliably)."""

import torch

from ganverse3d.stylegan2.networks import Generator

NUM_CANDIDATES = 6


def tiny_generator(seed: int = 0) -> Generator:
    """16-px canvas with a 12 x 16 content box, 6 W* entries (view = the first 2)."""
    torch.manual_seed(seed)
    return Generator(z_dim=8, w_dim=8, img_resolution=16, img_channels=3, channel_base=128, channel_max=16,
                     num_mapping_layers=2, img_content_shape=(12, 16)).eval()


def write_annotation(folder, bins: dict[int, int], extra: str = "") -> str:
    """A views.toml in ``folder`` choosing ``bins`` {view id: bin}; returns its path."""
    lines = ['candidates = "candidates.safetensors"', extra, "[views]"]
    lines += [f"{view_id} = {{ bin = {azimuth_bin} }}" for view_id, azimuth_bin in bins.items()]
    path = folder / "views.toml"
    path.write_text("\n".join(lines) + "\n")
    return str(path)
