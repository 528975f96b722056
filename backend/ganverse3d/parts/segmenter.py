"""Part segmenters: the world segmenter's U-Net with one logit per part class, trained on any labelled folder.

``ganverse3d parts train-segmenter`` fits :class:`~ganverse3d.dataset.segment.WorldSegmenterNet` with
``classes`` = len(:data:`~ganverse3d.parts.interpreter.CLASSES`) by cross-entropy on a folder of
``images/NAME.png`` and part labels, holding out a seeded random share of it (or none, ``holdout`` 0, for a
handful of labels: then the scores are those of the training images). The labels are read from

* ``parts/NAME.png`` - a world dataset (``ganverse3d world render``: 8-bit grey, label + 1, 0 = background) or
  a ``parts synth`` dataset (an indexed PNG with the class palette, value = class index): the same values, or
* ``labels/NAME.png`` - an annotation folder (``parts annotate``, painted: indexed, RGB or grey),

through :func:`~ganverse3d.parts.annotations.read_label_file`. The run is the world segmenter's
(:class:`~ganverse3d.dataset.train_segmenter.SegmenterTrainer`: run folder ``runs/parts-segmenter/NNNNN-name/``,
resume, the same augmentation, the labels warped as one-hot maps and taken back by argmax) with its own loss
(cross-entropy), scores (:func:`part_scores`) and sample grids (held-out image | truth | prediction).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from .. import runs
from ..bundle import load_module, save_module
from ..devices import resolve_device, to_device
from ..errors import InputError
from ..files import check_dataset_complete, image_grid, is_dir, is_file, png_files, read_image, save_png, shown_path
from ..dataset.segment import WorldSegmenterNet, logits_at
from ..dataset.train_segmenter import SegmenterTrainConfig, SegmenterTrainer, augment
from .annotations import read_label_file
from .interpreter import CLASSES, class_weights, colourise, confusion_matrix, iou_scores

# Held-out images in each checkpoint's sample grid.
_SAMPLE_ITEMS = 8
# The label folders a labelled folder may have, in the order they are looked for.
LABEL_FOLDERS = ("parts", "labels")


@dataclass(frozen=True)
class PartSegmenterTrainConfig(SegmenterTrainConfig):
    """Settings of ``ganverse3d parts train-segmenter`` (all recorded in the bundle): those of the world
    segmenter, holdout may be 0, and ``balance``: class c's pixels weigh freq_c ** -balance in the cross-entropy
    (freq_c: its share of the training split's pixels; 0 = plain cross-entropy). At 64 px a light covers about
    4 of 4,096 pixels: unweighted, the net learns never to predict one."""

    balance: float = 0.5
    holdout_may_be_zero: ClassVar[bool] = True

    def check(self) -> None:
        super().check()
        runs.check_within(self, "balance", 0, 1)


def label_folder(folder) -> Path:
    """The folder holding ``folder``'s label files (:data:`LABEL_FOLDERS`); InputError when it has none."""
    folder = Path(folder)
    for name in LABEL_FOLDERS:
        if is_dir(folder / name):
            return folder / name
    raise InputError(f"{shown_path(folder)} has no parts/ or labels/ folder of part labels beside its images/.")


def load_part_images(folder, resolution: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """All (image, part labels) pairs of ``folder`` (module docstring), sorted by name.

    Returns images [N, 3, H, W] uint8 and labels [N, H, W] int64 class indices, resized to ``resolution``²
    when given (area averaging for images, nearest for labels).
    """
    folder = Path(folder)
    if not is_dir(folder / "images"):
        raise InputError(f"{shown_path(folder)} has no images/ folder; give a folder of images/ and part labels.")
    check_dataset_complete(folder)
    labels_in = label_folder(folder)
    names = [path.name for path in png_files(folder / "images") if is_file(labels_in / path.name)]
    if not names:
        raise InputError(f"{shown_path(folder)} holds no images/NAME.png with a matching {labels_in.name}/NAME.png.")
    size = None if resolution is None else (resolution, resolution)
    images, labels = [], []
    for name in names:
        image = read_image(folder / "images" / name, "RGB")
        label = read_label_file(labels_in / name, image.shape[:2])
        if size is not None and image.shape[:2] != size:
            image = read_image(folder / "images" / name, "RGB", size, Image.Resampling.BOX)
            label = np.asarray(Image.fromarray(label.astype(np.uint8)).resize(size[::-1], Image.Resampling.NEAREST))
        images.append(image)
        labels.append(label.astype(np.int64))
    if len({image.shape for image in images}) > 1:
        raise InputError(f"The images of {shown_path(folder)} differ in size; pass a resolution to resize them.")
    return (torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).contiguous(),
            torch.from_numpy(np.stack(labels)))


def load_part_segmenter(path, device="cpu") -> WorldSegmenterNet:
    """A part segmenter bundle (``parts train-segmenter``), InputError for anything else."""
    if not is_file(path):
        raise InputError(f"The part segmenter {shown_path(path)} does not exist; train one with `ganverse3d parts "
                         f"train-segmenter`.")
    net = load_module(path, expected_class=WorldSegmenterNet, device=resolve_device(device)).eval()
    if net.classes != len(CLASSES):
        kind = "a car segmenter" if net.classes == 1 else f"a segmenter of {net.classes} classes"
        raise InputError(f"{shown_path(path)} is {kind}, not a part segmenter of the {len(CLASSES)} part classes; "
                         f"give a bundle of `ganverse3d parts train-segmenter`.")
    return net


@torch.no_grad()
def segment_parts(net: WorldSegmenterNet, images: torch.Tensor, batch_size: int = 128) -> torch.Tensor:
    """images [N, 3, H, W] (uint8, or float in [0, 1]) -> part labels [N, H, W] int64 (argmax), on the CPU."""
    net.eval()
    labels = []
    for start in range(0, len(images), batch_size):
        chunk = images[start:start + batch_size]
        chunk = chunk.float() / 255 if chunk.dtype == torch.uint8 else chunk.float()
        labels.append(logits_at(net, chunk).argmax(1).cpu())
    return torch.cat(labels)


def part_scores(predicted: torch.Tensor, truth: torch.Tensor) -> dict:
    """Scores of part labels [N, H, W] against the truth [N, H, W] (int64 class indices), pooled over all pixels
    of all images: ``per_class`` {class: IoU, None for a class in neither}, ``miou`` (the mean over the classes
    present in either, background included) and ``miou_parts`` (the same without background), ``accuracy``
    (pixel accuracy), ``count`` (images)."""
    return {"count": len(truth), "accuracy": float((predicted == truth).float().mean()),
            **iou_scores(confusion_matrix(predicted, truth, len(CLASSES)))}


class PartSegmenterTrainer(SegmenterTrainer):
    """The part segmenter's run (module docstring)."""

    config_class = PartSegmenterTrainConfig
    stage = "parts-segmenter"

    def __init__(self, config: PartSegmenterTrainConfig, run_dir: Path | None, device, progress: bool = True):
        super().__init__(config, run_dir, device, progress)
        self.class_weights = class_weights(self.targets[self.train_index], config.balance).to(self.device)

    def load_data(self) -> tuple[torch.Tensor, torch.Tensor]:
        return load_part_images(self.config.data, self.config.resolution)

    def make_net(self) -> WorldSegmenterNet:
        return WorldSegmenterNet(self.config.resolution, self.config.width, classes=len(CLASSES))

    @property
    def output_path(self) -> Path:
        return self.run_dir / "checkpoints" / "part_segmenter.safetensors"

    @property
    def scored_index(self) -> torch.Tensor:
        """The held-out items, or the training items when none are held out."""
        return self.test_index if len(self.test_index) else self.train_index

    def train_batch(self, items: torch.Tensor) -> dict:
        batch = self.train_index[items]
        one_hot = F.one_hot(self.targets[batch], len(CLASSES)).permute(0, 3, 1, 2).float()
        images, warped = augment(self.images[batch].float() / 255, one_hot, self.rng, self.shard, self.ranks)
        labels = warped.argmax(1)  # outside the image every class is 0: background (index 0) wins
        self.net.train()
        loss = F.cross_entropy(self.train_net(to_device(images, self.device)), to_device(labels, self.device),
                               weight=self.class_weights)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        return {"loss": loss.detach()}

    def measure(self) -> dict:
        index = self.scored_index
        scores = part_scores(segment_parts(self.net, self.images[index]), self.targets[index])
        return {**scores, "scored": "holdout" if len(self.test_index) else "training"}

    def write_outputs(self) -> None:
        save_module(self.output_path, self.net, config=dataclasses.asdict(self.config),
                    provenance={"stage": self.stage, "data": str(self.config.data), "steps": self.step,
                                "train_images": len(self.train_index), "holdout": self.evaluate()})
        shown = self.scored_index[:_SAMPLE_ITEMS]
        images = self.images[shown].float() / 255
        columns = torch.stack((images, colourise(self.targets[shown]), colourise(segment_parts(self.net, images))),
                              dim=1).flatten(0, 1)
        save_png(self.run_dir / "samples" / f"step{self.step:07d}.png", image_grid(columns, columns=3))


def train_part_segmenter(config: PartSegmenterTrainConfig | None, out, device="auto", progress: bool = True,
                         runs_root="runs", resume=None, **changes) -> dict:
    """Train a part segmenter on ``config.data`` in ``<runs_root>/parts-segmenter/NNNNN-name/`` (or resume the run
    folder ``resume``) and copy its bundle to ``out``. Returns its scores (:func:`part_scores`, with ``scored``:
    "holdout", or "training" when nothing is held out), also in the bundle's provenance."""
    return PartSegmenterTrainer.train_into(out, config, runs_root, resume, device, progress, **changes)["holdout"]


def evaluate_part_segmenter(path, data, device="cpu") -> dict:
    """:func:`part_scores` of the part segmenter bundle ``path`` on the labelled folder ``data``."""
    net = load_part_segmenter(path, device)
    images, labels = load_part_images(data)
    return part_scores(segment_parts(net, images), labels)
