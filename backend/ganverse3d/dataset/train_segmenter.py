"""Training and evaluating segmenters on folders of images with ground-truth masks (world renders).

``ganverse3d segmenter train`` fits the embedded :class:`~ganverse3d.dataset.segment.WorldSegmenterNet` on a
world dataset (``ganverse3d world render``), holding out a seeded random tenth of it, and stores the
held-out scores in the bundle's provenance. ``ganverse3d segmenter eval`` scores any segmenter on any such
folder. A folder qualifies when every ``images/NAME.png`` has a ``masks/NAME.png`` (255 = car), which
holds for world datasets and multi-view datasets alike.

Augmentations (flips, zoom and shift, colour, blur, noise) widen the world's look towards GAN images,
which are softer and framed less exactly than renders.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from .. import runs
from ..bundle import save_module
from ..devices import resolve_device
from ..errors import InputError, setting
from ..files import check_dataset_complete, check_output_file, png_files, read_image
from .segment import Segmenter, WorldSegmenter, WorldSegmenterNet


@dataclass(frozen=True)
class SegmenterTrainConfig:
    """Settings of ``ganverse3d segmenter train`` (all recorded in the bundle)."""

    data: str
    resolution: int = 64
    width: int = 16
    epochs: int = 12
    batch: int = 32
    learning_rate: float = 3e-3
    holdout: float = 0.1
    seed: int = 0

    def check(self) -> None:
        """InputError with one sentence for a setting that cannot work."""
        runs.check_fields(self)
        runs.check_at_least(self, 8, "resolution")
        if self.resolution % 8:  # the U-Net halves the image three times
            raise InputError(f"{setting('resolution')} must be a multiple of 8, not {self.resolution}.")
        runs.check_at_least(self, 1, "width", "epochs", "batch")
        runs.check_at_least(self, 0, "seed")
        runs.check_positive(self, "learning_rate")
        runs.check_within(self, "holdout", 0, 1, include_low=False, include_high=False)


def load_masked_images(folder, resolution: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """All (image, mask) pairs of ``folder`` (module docstring), sorted by name.

    Returns images [N, 3, H, W] uint8 and masks [N, H, W] bool, resized to ``resolution``² when given
    (area averaging for images, majority for masks).
    """
    folder = Path(folder)
    check_dataset_complete(folder)
    names = [path.name for path in png_files(folder / "images") if (folder / "masks" / path.name).is_file()]
    if not names:
        raise InputError(f"{folder} holds no images/NAME.png with a matching masks/NAME.png.")
    size = None if resolution is None else (resolution, resolution)
    images, masks = [], []
    for name in names:
        images.append(read_image(folder / "images" / name, "RGB", size, Image.Resampling.BOX))
        masks.append(read_image(folder / "masks" / name, "L", size, Image.Resampling.BOX) >= 128)
    if len({image.shape for image in images}) > 1:
        raise InputError(f"The images of {folder} differ in size; pass a resolution to resize them.")
    return torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).contiguous(), torch.from_numpy(np.stack(masks))


def _augment(images: torch.Tensor, masks: torch.Tensor, rng: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """A random look for a batch: images [B, 3, H, W] float in [0, 1], masks [B, 1, H, W] float."""
    batch = images.shape[0]

    def uniform(low, high, *shape):
        return low + (high - low) * torch.rand(batch, *shape, generator=rng)

    # Zoom 0.8-1.25x, shift up to a tenth of the image, mirror half of the batch: one affine warp. The
    # image edge is replicated (background, as cars rarely touch it), the mask is empty outside.
    scale = uniform(0.8, 1.25)
    mirror = torch.where(torch.rand(batch, generator=rng) < 0.5, -1.0, 1.0)
    theta = torch.zeros(batch, 2, 3)
    theta[:, 0, 0], theta[:, 1, 1] = mirror / scale, 1 / scale
    theta[:, :, 2] = uniform(-0.1, 0.1, 2)
    grid = F.affine_grid(theta, list(images.shape), align_corners=False)
    images = F.grid_sample(images, grid, mode="bilinear", padding_mode="border", align_corners=False)
    masks = (F.grid_sample(masks, grid, mode="bilinear", padding_mode="zeros", align_corners=False) > 0.5).float()

    grey = images.mean(dim=1, keepdim=True)
    images = grey + (images - grey) * uniform(0.6, 1.4, 1, 1, 1)                         # saturation
    mean = images.mean(dim=(1, 2, 3), keepdim=True)
    images = mean + (images - mean) * uniform(0.7, 1.3, 1, 1, 1)                          # contrast
    images = images * uniform(0.7, 1.3, 1, 1, 1) + uniform(-0.05, 0.05, 3, 1, 1)          # brightness, tint
    # GAN images are softer than renders: blur a third of the batch with a 3x3 binomial kernel.
    kernel = torch.tensor([1.0, 2.0, 1.0])
    kernel = (torch.outer(kernel, kernel) / 16).expand(3, 1, 3, 3)
    blurred = F.conv2d(F.pad(images, (1, 1, 1, 1), mode="replicate"), kernel, groups=3)
    images = torch.where(torch.rand(batch, 1, 1, 1, generator=rng) < 1 / 3, blurred, images)
    images = images + 0.02 * torch.randn(images.shape, generator=rng)
    return images.clamp(0, 1), masks


def _loss(logits: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    """Binary cross-entropy plus soft Dice (Dice keeps thin parts such as pillars and wheels from vanishing)."""
    probability = logits.sigmoid()
    dice = 1 - (2 * (probability * masks).sum(dim=(1, 2, 3)) + 1) / (probability.sum(dim=(1, 2, 3))
                                                                      + masks.sum(dim=(1, 2, 3)) + 1)
    return F.binary_cross_entropy_with_logits(logits, masks) + dice.mean()


@torch.no_grad()
def evaluate_segmenter(segmenter: Segmenter, images: torch.Tensor, masks: torch.Tensor, batch_size: int = 64) -> dict:
    """Score a segmenter against ground truth.

    Args:
        images: [N, 3, H, W] uint8; masks: [N, H, W] bool (one car per image).
    Returns:
        ``count``; ``iou_mean``, the mean over images of the IoU between the union of the found instances and
        the true mask; ``single_instance_rate``, the share of images in which exactly one car was found (what
        the multi-view synthesis filter relies on).
    """
    ious, single = [], 0
    for start in range(0, len(images), batch_size):
        found = segmenter.segment(images[start:start + batch_size].float() / 255)
        for instances, truth in zip(found, masks[start:start + batch_size]):
            predicted = instances.masks.any(dim=0) if len(instances) else torch.zeros_like(truth)
            union = (predicted | truth).sum().item()
            ious.append((predicted & truth).sum().item() / union if union else 1.0)
            single += len(instances) == 1
    return {"count": len(ious), "iou_mean": float(np.mean(ious)), "single_instance_rate": single / len(ious)}


def train_world_segmenter(config: SegmenterTrainConfig, out, device="auto", progress: bool = True) -> dict:
    """Train :class:`WorldSegmenterNet` on ``config.data`` and write it to ``out`` (a bundle).

    Returns the held-out evaluation (see :func:`evaluate_segmenter`), also stored in the bundle's provenance.
    Same config and seed on the same device -> the same weights. A short epoch loop that writes one bundle, not
    a run folder: there is nothing to resume.
    """
    config.check()
    check_output_file(out, (".safetensors",))
    device = resolve_device(device)
    images, masks = load_masked_images(config.data, config.resolution)
    rng = runs.seeded_rng(config.seed)  # the split, batch order and augmentation
    order = torch.randperm(len(images), generator=rng)
    held_out = max(1, round(config.holdout * len(images)))
    if len(images) - held_out < 1:
        raise InputError(f"{config.data} holds {len(images)} images, too few to hold some out for evaluation.")
    test_index, train_index = order[:held_out], order[held_out:]

    net = WorldSegmenterNet(config.resolution, config.width).to(device)
    steps_per_epoch = math.ceil(len(train_index) / config.batch)
    total_steps = config.epochs * steps_per_epoch
    optimizer = torch.optim.Adam(net.parameters(), lr=config.learning_rate)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=config.learning_rate, total_steps=total_steps)
    with runs.progress_bar(total_steps, "segmenter train", enabled=progress) as bar:
        for _ in range(config.epochs):
            net.train()
            shuffled = train_index[torch.randperm(len(train_index), generator=rng)]
            for start in range(0, len(shuffled), config.batch):
                batch = shuffled[start:start + config.batch]
                batch_images, batch_masks = _augment(images[batch].float() / 255, masks[batch, None].float(), rng)
                loss = _loss(net(batch_images.to(device)), batch_masks.to(device))
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                schedule.step()
                bar.set_postfix(loss=f"{loss.item():.3f}")
                bar.update()
    net.eval()
    evaluation = evaluate_segmenter(WorldSegmenter(net), images[test_index], masks[test_index])
    save_module(out, net, config=dataclasses.asdict(config),
                provenance={"stage": "segmenter", "data": str(config.data), "steps": total_steps,
                            "train_images": len(train_index), "holdout": evaluation})
    return evaluation
