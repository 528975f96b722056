"""Helpers of the parts tests: a tiny generator, and labels that are a known function of an image."""

import torch

from ganverse3d.stylegan2.networks import Generator


def tiny_generator(seed: int = 0) -> Generator:
    """16-px canvas with a 12 x 16 content box; conv layers of 16, 16, 16, 8, 8 channels (64 features)."""
    torch.manual_seed(seed)
    return Generator(z_dim=8, w_dim=8, img_resolution=16, img_channels=3, channel_base=128, channel_max=16,
                     num_mapping_layers=2, img_content_shape=(12, 16)).eval()


def known_labels(images: torch.Tensor) -> torch.Tensor:
    """images [N, 3, H, W] in [0, 1] -> [N, H, W]: class 1 + the brightest channel where the pixel is brighter
    than 0.5, else background (0): a labelling the final layers' features determine."""
    brightness = images.mean(1)
    labels = 1 + images.argmax(1)
    return torch.where(brightness > 0.5, labels, torch.zeros_like(labels))


def paint_known_labels(folder) -> None:
    """Paint every label template of an annotation folder of :func:`tiny_generator` with :func:`known_labels` of
    the generator's remake of its image."""
    from ganverse3d.bundle import load_state
    from ganverse3d.parts.annotations import label_png_bytes
    from ganverse3d.parts.interpreter import pixel_features

    G = tiny_generator()
    ws = load_state(folder / "latents.safetensors")[0]["ws"]
    _, images = pixel_features(G, ws, return_image=True)
    for index, labels in enumerate(known_labels(images)):
        (folder / "labels" / f"{index:06d}.png").write_bytes(label_png_bytes(labels.numpy()))


def write_tiny_inverse(world_views, path) -> None:
    """A tiny untrained inverse network (seed 0) for the 32-px multi-view dataset ``world_views``, framed for its
    masks and cameras, saved at ``path``."""
    from ganverse3d.bundle import save_module
    from ganverse3d.dataset.format import MultiViewDataset
    from ganverse3d.inverse.model import InverseGraphicsNet
    from ganverse3d.inverse.train import load_images, measure_framing

    torch.manual_seed(0)
    net = InverseGraphicsNet(resolution=32, base_channels=8, max_channels=16, feature_dim=32, texture_height=8,
                             texture_channels=16, subdivisions=3, template="car")
    data = load_images(MultiViewDataset(world_views), 32, progress=False)
    save_module(path, net, config={"framing": measure_framing(data.masks, data.cameras[:, 0])})
