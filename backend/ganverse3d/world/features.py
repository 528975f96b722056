"""The world feature net: a small CNN that reads a world car's body type and camera from its image.

It is the project's pose reader (``dataset views`` suggests each view's azimuth bin with it, the GAN's
view-mixing loss compares viewpoints and body types with it) and the feature extractor of ``fid-world``
(:mod:`ganverse3d.stylegan2.metrics`), since it needs no downloaded weights. ``ganverse3d gan feature-net``
trains it on a world dataset (:func:`train_feature_net`: a run of the run kit, :mod:`ganverse3d.runs`, in
``runs/feature_net/<NNNNN-name>/`` with ``config.json``, ``metrics.jsonl`` holding the losses and, at each
checkpoint, the held-out measurements, and ``checkpoints/``; ``--resume`` continues it); the shipped one is the
asset registry's ``feature_net`` ``world``.
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from .. import runs
from ..bundle import save_module
from ..devices import to_device
from ..errors import InputError
from ..files import check_dataset_complete, read_image

# The elevation head predicts tens of degrees, so that its targets (0-3 for the world's 0-30 degrees) sit on
# the same scale as the classification logits.
_ELEVATION_UNIT_DEG = 10.0


class WorldFeatureNet(nn.Module):
    """A small CNN trained on world renders; its pooled last-layer features are the FID features.

    Heads (all linear on the features): body type (classes ``body_types``), azimuth as ``azimuth_bins``
    equal bins starting at 0 degrees (bins rather than one angle because a car seen from the front and
    from the back can look alike, and a regression would average the two), and elevation in degrees.
    Input images are resized to ``resolution``; at 64 px with the defaults the net has about 300k
    parameters. As a feature extractor (``stylegan2.metrics.FeatureExtractor``) it is named ``name`` and
    gives ``feature_dim`` features.
    """

    name = "world"

    def __init__(self, body_types: list[str], resolution: int = 64, width: int = 32, feature_dim: int = 128,
                 azimuth_bins: int = 12):
        super().__init__()
        self.init_kwargs = dict(body_types=list(body_types), resolution=resolution, width=width,
                                feature_dim=feature_dim, azimuth_bins=azimuth_bins)
        self.body_types = list(body_types)
        self.resolution = resolution
        self.feature_dim = feature_dim
        self.azimuth_bins = azimuth_bins
        # Four stride-2 stages (64 px -> 4 x 4), each but the last refined by a stride-1 convolution.
        channels = [3, width, 2 * width, 3 * width]
        layers = []
        for c_in, c_out in zip(channels[:-1], channels[1:]):
            layers += [*_conv_bn_relu(c_in, c_out, stride=2), *_conv_bn_relu(c_out, c_out, stride=1)]
        layers += _conv_bn_relu(channels[-1], feature_dim, stride=2)
        self.trunk = nn.Sequential(*layers)
        self.heads = nn.Linear(feature_dim, len(body_types) + azimuth_bins + 1)

    def features(self, images: torch.Tensor) -> torch.Tensor:
        """images [B, 3, H, W] float in [0, 1], any H and W -> features [B, feature_dim]."""
        if images.shape[-2:] != (self.resolution, self.resolution):
            images = F.interpolate(images, size=(self.resolution, self.resolution), mode="bilinear",
                                   align_corners=False, antialias=True)
        return self.trunk(images * 2 - 1).mean(dim=(2, 3))

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """images [B, 3, H, W] in [0, 1] -> (body logits [B, T], azimuth-bin logits [B, A], elevation deg [B])."""
        out = self.heads(self.features(images))
        body, azimuth = out[:, :len(self.body_types)], out[:, len(self.body_types):-1]
        return body, azimuth, out[:, -1] * _ELEVATION_UNIT_DEG

    def azimuth_deg(self, azimuth_logits: torch.Tensor) -> torch.Tensor:
        """Azimuth-bin logits [B, A] -> azimuth in [0, 360) degrees [B]: the circular mean of the bin centres
        weighted by their probabilities, which resolves angles finer than one bin."""
        centres = torch.deg2rad((torch.arange(self.azimuth_bins, device=azimuth_logits.device) + 0.5)
                                * (360.0 / self.azimuth_bins))
        probabilities = azimuth_logits.softmax(dim=1)
        angle = torch.atan2(probabilities @ centres.sin(), probabilities @ centres.cos())
        return torch.rad2deg(angle) % 360.0


def _conv_bn_relu(c_in: int, c_out: int, stride: int) -> list[nn.Module]:
    return [nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True)]


# ---------------------------------------------------------------------------------------------------
# Training


@dataclass
class FeatureNetConfig:
    """Everything that defines a :class:`WorldFeatureNet` training run (saved in the bundle's config)."""

    data: str                  # World dataset folder (`ganverse3d world render`): images/, meta.jsonl, manifest.json.
    resolution: int = 64       # Input size of the net; images are resized to it.
    epochs: int = 15           # Passes over the training split.
    batch: int = 64            # Minibatch size.
    lr: float = 3e-3           # Peak AdamW learning rate (cosine decay to zero).
    weight_decay: float = 1e-4
    holdout: float = 0.1       # Fraction of the items held out to measure the net (never trained on).
    width: int = 32            # Channels of the first stage (see WorldFeatureNet).
    feature_dim: int = 128     # Length of the FID feature vector.
    azimuth_bins: int = 12     # Azimuth classes (30 degrees each by default).
    seed: int = 0              # Seeds initialisation, the split, minibatch order and flips.
    log_every: int = 10        # Steps between metrics.jsonl lines.
    checkpoint_every: int = 100  # Steps between checkpoints, each with the held-out measurements.

    def check(self) -> None:
        """InputError with one sentence for a setting that cannot work."""
        runs.check_fields(self)
        runs.check_at_least(self, 16, "resolution")
        runs.check_at_least(self, 1, "epochs", "width", "feature_dim", "azimuth_bins", "log_every", "checkpoint_every")
        runs.check_at_least(self, 2, "batch")  # batch norm needs two images
        runs.check_at_least(self, 0, "weight_decay", "seed")
        runs.check_positive(self, "lr")
        runs.check_within(self, "holdout", 0, 1, include_low=False, include_high=False)


@dataclass
class WorldLabels:
    """Images and ground truth of a world dataset.

    Attributes:
        images: uint8 [N, 3, R, R].
        body_types: the class names, in the order of the net's body head.
        body: int64 [N] index into ``body_types``.
        azimuth: float32 [N] degrees in [0, 360).
        elevation: float32 [N] degrees.
    """

    images: torch.Tensor
    body_types: list[str]
    body: torch.Tensor
    azimuth: torch.Tensor
    elevation: torch.Tensor


def load_world_labels(folder, resolution: int) -> WorldLabels:
    """Read a world dataset's images (resized to ``resolution``) and their body type and camera from meta.jsonl."""
    folder = Path(folder)
    check_dataset_complete(folder)
    try:
        body_types = list(json.loads((folder / "manifest.json").read_text())["body_types"])
        records = [json.loads(line) for line in (folder / "meta.jsonl").read_text().splitlines() if line.strip()]
        targets = [(body_types.index(r["body_type"]), r["camera"]["azimuth"], r["camera"]["elevation"], r["image"])
                   for r in records]
    except (OSError, ValueError, KeyError, TypeError):
        raise InputError(f"{folder} is not a complete world dataset (manifest.json with body_types, meta.jsonl with "
                         "body_type and camera per image); make one with `ganverse3d world render`.") from None
    if not targets:
        raise InputError(f"{folder}/meta.jsonl lists no images.")
    with runs.loading_bar([image for *_, image in targets], "loading images") as images:
        images = [read_image(folder / image, size=(resolution, resolution)) for image in images]
    body, azimuth, elevation, _ = zip(*targets)
    return WorldLabels(images=torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).contiguous(),
                       body_types=body_types, body=torch.tensor(body),
                       azimuth=torch.tensor(azimuth, dtype=torch.float32) % 360.0,
                       elevation=torch.tensor(elevation, dtype=torch.float32))


def _azimuth_bin(azimuth_deg: torch.Tensor, bins: int) -> torch.Tensor:
    return (azimuth_deg / (360.0 / bins)).long().clamp(0, bins - 1)


def _mirror(images: torch.Tensor, azimuth_deg: torch.Tensor, flip: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Flip the images where ``flip`` [B] is set. World cars are symmetric in x, so the mirror image of a view
    from azimuth a is the view from azimuth -a: a free, label-exact doubling of the data."""
    images = torch.where(flip[:, None, None, None], images.flip(-1), images)
    return images, torch.where(flip, (360.0 - azimuth_deg) % 360.0, azimuth_deg)


@torch.no_grad()
def evaluate_feature_net(net: WorldFeatureNet, labels: WorldLabels, batch_size: int = 256) -> dict:
    """The net's accuracy on ``labels``: body-type and azimuth-bin accuracy, azimuth and elevation errors (degrees)."""
    net.eval()
    device = next(net.parameters()).device
    body_hits, bin_hits, azimuth_errors, elevation_errors = 0, 0, [], []
    for start in range(0, len(labels.images), batch_size):
        part = slice(start, start + batch_size)
        body, azimuth_logits, elevation = (t.cpu() for t in net(labels.images[part].to(device).float() / 255))
        body_hits += int((body.argmax(1) == labels.body[part]).sum())
        bin_hits += int((azimuth_logits.argmax(1) == _azimuth_bin(labels.azimuth[part], net.azimuth_bins)).sum())
        difference = (net.azimuth_deg(azimuth_logits) - labels.azimuth[part]).abs() % 360.0
        azimuth_errors.append(torch.minimum(difference, 360.0 - difference))
        elevation_errors.append((elevation - labels.elevation[part]).abs())
    azimuth_errors, elevation_errors = torch.cat(azimuth_errors), torch.cat(elevation_errors)
    count = len(labels.images)
    return {"count": count, "body_type_accuracy": round(body_hits / count, 4),
            "azimuth_bin_accuracy": round(bin_hits / count, 4),
            "azimuth_error_deg_median": round(float(azimuth_errors.median()), 2),
            "azimuth_error_deg_mean": round(float(azimuth_errors.mean()), 2),
            "elevation_error_deg_mean": round(float(elevation_errors.mean()), 2)}


class FeatureNetTrainer(runs.EpochTrainer):
    """The world feature net's run (the loop, epochs and checkpoints: :mod:`ganverse3d.runs`)."""

    config_class = FeatureNetConfig
    stage = "feature_net"

    def __init__(self, config: FeatureNetConfig, run_dir: Path | None, device, progress: bool = True):
        super().__init__(config, run_dir, device, progress)
        labels = load_world_labels(config.data, config.resolution)
        count = len(labels.images)
        num_heldout = max(1, round(count * config.holdout))
        if count - num_heldout < config.batch:
            raise InputError(f"{config.data} has {count} images; training needs at least {config.batch} beyond the "
                             f"{num_heldout} held out.")
        self.rng = runs.seeded_rng(config.seed)  # the split, minibatch order and flips
        order = torch.randperm(count, generator=self.rng)
        self.heldout, self.training = _subset(labels, order[:num_heldout]), _subset(labels, order[num_heldout:])
        self.net = WorldFeatureNet(labels.body_types, resolution=config.resolution, width=config.width,
                                   feature_dim=config.feature_dim, azimuth_bins=config.azimuth_bins).to(self.device)
        self.optimizer = torch.optim.AdamW(self.net.parameters(), lr=config.lr, weight_decay=config.weight_decay)
        self.steps_per_epoch = len(self.training.images) // config.batch  # an epoch's remainder is left out
        total_steps = self.total_steps
        self.schedule = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, lambda step: 0.5 * (1 + math.cos(math.pi * step / total_steps)))
        self.epoch_order = torch.zeros(len(self.training.images), dtype=torch.int64)
        self.train_net = self.parallel(self.net)  # the net, its gradients averaged over the ranks

    @property
    def output_path(self) -> Path:
        return self.run_dir / "checkpoints" / "world_feature_net.safetensors"

    def checkpointed(self) -> dict:
        return {"net": self.net, "optimizer": self.optimizer, "rng": self.rng, "epoch_order": self.epoch_order}

    def log_values(self, stats: dict) -> dict:
        return {name: value if name == "lr" else round(value, 6) for name, value in stats.items()}

    def postfix(self, stats: dict) -> dict:
        return {name: f"{stats[name]:.3f}" for name in ("body", "azimuth", "elevation")}

    def train_batch(self, items: torch.Tensor) -> dict:
        training, device = self.training, self.device
        flip = torch.rand(len(items), generator=self.rng) < 0.5
        images, azimuth = _mirror(training.images[items].float() / 255, training.azimuth[items], flip)
        self.net.train()
        body_logits, azimuth_logits, elevation = self.train_net(to_device(images, device))
        loss_body = F.cross_entropy(body_logits, to_device(training.body[items], device))
        loss_azimuth = F.cross_entropy(azimuth_logits, to_device(_azimuth_bin(azimuth, self.net.azimuth_bins), device))
        loss_elevation = F.mse_loss(elevation / _ELEVATION_UNIT_DEG,
                                    to_device(training.elevation[items], device) / _ELEVATION_UNIT_DEG)
        self.optimizer.zero_grad(set_to_none=True)
        (loss_body + loss_azimuth + loss_elevation).backward()
        self.optimizer.step()
        return {"body": loss_body.detach(), "azimuth": loss_azimuth.detach(), "elevation": loss_elevation.detach()}

    def measure(self) -> dict:
        return evaluate_feature_net(self.net, self.heldout)

    def write_outputs(self) -> None:
        save_module(self.output_path, self.net, config=dataclasses.asdict(self.config),
                    provenance={"stage": "gan feature-net", "data": str(self.config.data),
                                "num_train": len(self.training.images), "steps": self.step,
                                "heldout": self.evaluate()})


def train_feature_net(config: FeatureNetConfig | None, out, device="auto", progress: bool = True, runs_root="runs",
                      resume=None, **changes) -> dict:
    """Train a :class:`WorldFeatureNet` on a world dataset in a run folder ``<runs_root>/feature_net/NNNNN-name/``
    (or resume the run folder ``resume``, with ``changes`` as :meth:`~ganverse3d.runs.RunTrainer.train` allows),
    copy its bundle to ``out`` and return its held-out evaluation (see :func:`evaluate_feature_net`), which the
    bundle's provenance also records. A killed and resumed run reaches the weights of an uninterrupted one.
    """
    return FeatureNetTrainer.train_into(out, config, runs_root, resume, device, progress, **changes)["heldout"]


def _subset(labels: WorldLabels, index: torch.Tensor) -> WorldLabels:
    return WorldLabels(images=labels.images[index], body_types=labels.body_types, body=labels.body[index],
                       azimuth=labels.azimuth[index], elevation=labels.elevation[index])
