"""Training and evaluating segmenters on folders of images with ground-truth masks (world renders).

``ganverse3d segmenter train`` fits the embedded :class:`~ganverse3d.dataset.segment.WorldSegmenterNet` on a
world dataset (``ganverse3d world render``), holding out a seeded random tenth of it, and stores the
held-out scores in the bundle's provenance. A run lives in ``runs/segmenter/<NNNNN-name>/`` (the run kit,
:mod:`ganverse3d.runs`): ``config.json``, ``metrics.jsonl`` (losses; the held-out scores at each checkpoint),
``samples/*.png`` (held-out images | true masks | predicted probability), ``checkpoints/state.safetensors``
and ``checkpoints/world_segmenter.safetensors`` (the bundle, copied to ``--out`` when the run ends); a killed
run resumes to the weights of an uninterrupted one. ``ganverse3d segmenter eval`` scores any segmenter on any
such folder. A folder qualifies when every ``images/NAME.png`` has a ``masks/NAME.png`` (255 = car), which
holds for world datasets and multi-view datasets alike.

Augmentations (flips, zoom and shift, colour, blur, noise) widen the world's look towards GAN images,
which are softer and framed less exactly than renders.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from .. import runs
from ..bundle import save_module
from ..devices import to_device
from ..errors import InputError, setting
from ..files import check_dataset_complete, image_grid, png_files, read_image, save_png
from .segment import Segmenter, WorldSegmenter, WorldSegmenterNet

# Held-out images in each checkpoint's sample grid.
_SAMPLE_ITEMS = 8


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
    log_every: int = 10          # steps between metrics.jsonl lines
    checkpoint_every: int = 100  # steps between checkpoints, each with the held-out scores and a sample grid
    # Whether holdout 0 (train on every image, score the training split) is allowed: for a handful of labels.
    holdout_may_be_zero: ClassVar[bool] = False

    def check(self) -> None:
        """InputError with one sentence for a setting that cannot work."""
        runs.check_fields(self)
        runs.check_at_least(self, 8, "resolution")
        if self.resolution % 8:  # the U-Net halves the image three times
            raise InputError(f"{setting('resolution')} must be a multiple of 8, not {self.resolution}.")
        runs.check_at_least(self, 1, "width", "epochs", "batch", "log_every", "checkpoint_every")
        runs.check_at_least(self, 0, "seed")
        runs.check_positive(self, "learning_rate")
        runs.check_within(self, "holdout", 0, 1, include_low=self.holdout_may_be_zero, include_high=False)


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


def augment(images: torch.Tensor, targets: torch.Tensor, rng: torch.Generator,
            shard: Callable[[torch.Tensor], torch.Tensor] = lambda rows: rows,
            ranks: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    """A random look for a batch: images [B, 3, H, W] float in [0, 1]; targets [B, C, H, W] float (a mask, or
    one-hot class maps) warped as the images, bilinearly, 0 outside the image (the caller thresholds them or
    takes their argmax). The mirror is horizontal: a car's left and right parts carry the same labels.

    On ``ranks`` processes the batch is one rank's share of a global batch of ``ranks`` x B: every random choice
    is drawn for the global batch from ``rng`` (alike on every rank) and ``shard`` (``RunTrainer.shard``) keeps
    this rank's rows, so that N processes augment the global batch as one process does."""
    total = images.shape[0] * ranks

    def draw(sample, *shape):
        return shard(sample(total, *shape, generator=rng))

    def uniform(low, high, *shape):
        return low + (high - low) * draw(torch.rand, *shape)

    # Zoom 0.8-1.25x, shift up to a tenth of the image, mirror half of the batch: one affine warp. The
    # image edge is replicated (background, as cars rarely touch it), the targets are empty outside.
    scale = uniform(0.8, 1.25)
    mirror = torch.where(draw(torch.rand) < 0.5, -1.0, 1.0)
    theta = torch.zeros(images.shape[0], 2, 3)
    theta[:, 0, 0], theta[:, 1, 1] = mirror / scale, 1 / scale
    theta[:, :, 2] = uniform(-0.1, 0.1, 2)
    grid = F.affine_grid(theta, list(images.shape), align_corners=False)
    images = F.grid_sample(images, grid, mode="bilinear", padding_mode="border", align_corners=False)
    targets = F.grid_sample(targets, grid, mode="bilinear", padding_mode="zeros", align_corners=False)

    grey = images.mean(dim=1, keepdim=True)
    images = grey + (images - grey) * uniform(0.6, 1.4, 1, 1, 1)                         # saturation
    mean = images.mean(dim=(1, 2, 3), keepdim=True)
    images = mean + (images - mean) * uniform(0.7, 1.3, 1, 1, 1)                          # contrast
    images = images * uniform(0.7, 1.3, 1, 1, 1) + uniform(-0.05, 0.05, 3, 1, 1)          # brightness, tint
    # GAN images are softer than renders: blur a third of the batch with a 3x3 binomial kernel.
    kernel = torch.tensor([1.0, 2.0, 1.0])
    kernel = (torch.outer(kernel, kernel) / 16).expand(3, 1, 3, 3)
    blurred = F.conv2d(F.pad(images, (1, 1, 1, 1), mode="replicate"), kernel, groups=3)
    images = torch.where(draw(torch.rand, 1, 1, 1) < 1 / 3, blurred, images)
    images = images + 0.02 * draw(torch.randn, *images.shape[1:])
    return images.clamp(0, 1), targets


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


class SegmenterTrainer(runs.EpochTrainer):
    """The world segmenter's run (the loop, epochs and checkpoints: :mod:`ganverse3d.runs`)."""

    config_class = SegmenterTrainConfig
    stage = "segmenter"

    def __init__(self, config: SegmenterTrainConfig, run_dir: Path | None, device, progress: bool = True):
        super().__init__(config, run_dir, device, progress)
        self.images, self.targets = self.load_data()
        self.rng = runs.seeded_rng(config.seed)  # the split, batch order and augmentation
        order = torch.randperm(len(self.images), generator=self.rng)
        held_out = max(1, round(config.holdout * len(self.images))) if config.holdout else 0
        if len(self.images) - held_out < 1:
            raise InputError(f"{config.data} holds {len(self.images)} images, too few to hold some out for "
                             f"evaluation.")
        self.test_index, self.train_index = order[:held_out], order[held_out:]
        self.net = self.make_net().to(self.device)
        self.steps_per_epoch = math.ceil(len(self.train_index) / config.batch)  # the last batch may be short
        self.optimizer = torch.optim.Adam(self.net.parameters(), lr=config.learning_rate)
        self.schedule = torch.optim.lr_scheduler.OneCycleLR(self.optimizer, max_lr=config.learning_rate,
                                                            total_steps=self.total_steps)
        self.epoch_order = torch.zeros_like(self.train_index)
        self.train_net = self.parallel(self.net)  # the net, its gradients averaged over the ranks

    def load_data(self) -> tuple[torch.Tensor, torch.Tensor]:
        """images [N, 3, H, W] uint8 and their targets [N, H, W] (here car masks, bool)."""
        return load_masked_images(self.config.data, self.config.resolution)

    def make_net(self) -> WorldSegmenterNet:
        return WorldSegmenterNet(self.config.resolution, self.config.width)

    @property
    def output_path(self) -> Path:
        return self.run_dir / "checkpoints" / "world_segmenter.safetensors"

    def checkpointed(self) -> dict:
        return {"net": self.net, "optimizer": self.optimizer, "rng": self.rng, "epoch_order": self.epoch_order}

    def log_values(self, stats: dict) -> dict:
        return {"loss": round(stats["loss"], 6), "lr": stats["lr"]}

    def postfix(self, stats: dict) -> dict:
        return {"loss": f"{stats['loss']:.3f}"}

    def train_batch(self, items: torch.Tensor) -> dict:
        batch = self.train_index[items]
        images, masks = augment(self.images[batch].float() / 255, self.targets[batch, None].float(), self.rng,
                                self.shard, self.ranks)
        masks = (masks > 0.5).float()
        self.net.train()
        loss = _loss(self.train_net(to_device(images, self.device)), to_device(masks, self.device))
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        return {"loss": loss.detach()}

    def measure(self) -> dict:
        return evaluate_segmenter(WorldSegmenter(self.net), self.images[self.test_index], self.targets[self.test_index])

    def write_outputs(self) -> None:
        save_module(self.output_path, self.net, config=dataclasses.asdict(self.config),
                    provenance={"stage": "segmenter", "data": str(self.config.data), "steps": self.step,
                                "train_images": len(self.train_index), "holdout": self.evaluate()})
        # Held-out images (the first eight): image | true mask | predicted car probability.
        shown = self.test_index[:_SAMPLE_ITEMS]
        images = self.images[shown].float() / 255
        truth = self.targets[shown, None].float().expand(-1, 3, -1, -1)
        probability = WorldSegmenter(self.net).probability(images)[:, None].cpu().expand(-1, 3, -1, -1)
        columns = torch.stack((images, truth, probability), dim=1).flatten(0, 1)
        save_png(self.run_dir / "samples" / f"step{self.step:07d}.png", image_grid(columns, columns=3))


def train_world_segmenter(config: SegmenterTrainConfig | None, out, device="auto", progress: bool = True,
                          runs_root="runs", resume=None, **changes) -> dict:
    """Train :class:`WorldSegmenterNet` on ``config.data`` in a run folder ``<runs_root>/segmenter/NNNNN-name/``
    (or resume the run folder ``resume``, with ``changes`` as :meth:`~ganverse3d.runs.RunTrainer.train` allows)
    and copy its model bundle to ``out``.

    Returns the held-out evaluation (see :func:`evaluate_segmenter`), also stored in the bundle's provenance.
    Same config and seed on the same device -> the same weights, whether or not the run was killed and resumed.
    """
    return SegmenterTrainer.train_into(out, config, runs_root, resume, device, progress, **changes)["holdout"]
