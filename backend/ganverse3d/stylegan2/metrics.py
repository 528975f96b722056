"""Image-quality metrics that work offline: FID with either of two feature extractors.

FID (Heusel et al. 2017) is the Fréchet distance between Gaussians fitted to the features of real and
generated images. Its value depends entirely on the feature extractor, so every number this module
reports carries the extractor's name, as the key ``"fid-<name>"``:

* ``fid-inception``: torchvision's Inception-v3 ImageNet weights (pool features, 2048-d), read from a
  local file the user downloaded (:class:`InceptionFeatures`). This is the usual FID, but note that the
  published StyleGAN2 numbers use the TensorFlow Inception graph, whose weights differ from torchvision's,
  so ``fid-inception`` is close to, not equal to, those numbers.
* ``fid-world``: the project's :class:`WorldFeatureNet`, a small CNN trained on world renders to predict
  body type, azimuth and elevation (``ganverse3d gan feature-net``), whose pooled features (128-d) are
  what FID compares. The embedded default lives in ``assets/world_feature_net.safetensors``. Its numbers
  are meaningful only for world-like images and comparable only with each other, for the same net file.

FID is biased upward for small samples, so compare values only at equal numbers of real and generated
images (``num_real`` and ``num_fake`` travel with every :class:`FIDResult`).
"""

from __future__ import annotations

import abc
import dataclasses
import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from PIL import Image
from tqdm import tqdm

from .. import assets
from ..bundle import load_module, save_module
from ..devices import resolve_device
from ..errors import InputError

INCEPTION_WEIGHTS_FILE = "inception_v3_google-0cc3c7bd.pth"
INCEPTION_WEIGHTS_URL = f"https://download.pytorch.org/models/{INCEPTION_WEIGHTS_FILE}"
_IMAGENET_MEAN = (0.485, 0.456, 0.406)
_IMAGENET_STD = (0.229, 0.224, 0.225)


# ---------------------------------------------------------------------------------------------------
# Feature extractors


class FeatureExtractor(nn.Module, abc.ABC):
    """Maps images to feature vectors for FID.

    Attributes:
        name: short identifier used in metric keys (``"fid-" + name``).
        feature_dim: D, the length of a feature vector.
    """

    name: str
    feature_dim: int

    @abc.abstractmethod
    def features(self, images: torch.Tensor) -> torch.Tensor:
        """images [B, 3, H, W] float32 in [0, 1], any H and W -> features [B, D]."""


class InceptionFeatures(FeatureExtractor):
    """torchvision's Inception-v3: the 2048-d average-pool features (the input of its classifier).

    Images are resized to 299 x 299 and normalised with the ImageNet mean and std; ``transform_input``
    then maps them to the [-1, 1] scaling these Google-trained weights expect, as torchvision does when it
    loads them itself.
    """

    name = "inception"
    feature_dim = 2048

    def __init__(self, state_dict: dict[str, torch.Tensor]):
        from torchvision.models.inception import Inception3  # here: only Inception FID pays for importing it

        super().__init__()
        # init_weights=False skips torchvision's slow truncated-normal init; load_state_dict overwrites it all.
        inception = Inception3(aux_logits="AuxLogits.fc.weight" in state_dict, transform_input=True,
                               init_weights=False)
        inception.load_state_dict(state_dict)
        inception.fc = nn.Identity()  # the forward pass then ends at the pooled features
        inception.aux_logits, inception.AuxLogits = False, None
        self.inception = inception.eval()
        self.register_buffer("mean", torch.tensor(_IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(_IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    @classmethod
    def from_weights(cls, path, device="cpu") -> InceptionFeatures:
        """Load torchvision's ``inception_v3`` ImageNet state dict from a local ``.pth`` file (never downloads)."""
        path = Path(path)
        if not path.is_file():
            raise InputError(
                f"Inception weights {path} do not exist: FID with Inception needs torchvision's Inception-v3 "
                f"ImageNet weights, {INCEPTION_WEIGHTS_FILE}, which you can download on a machine with internet "
                f"from {INCEPTION_WEIGHTS_URL} (or find in ~/.cache/torch/hub/checkpoints/ after torchvision "
                f"used them once) and copy here.")
        try:
            state_dict = torch.load(path, map_location="cpu", weights_only=True)
        except Exception:  # torch.load raises many types for files that are not torch archives
            raise InputError(f"{path} is not a PyTorch weights file; FID with Inception needs torchvision's "
                             f"{INCEPTION_WEIGHTS_FILE}.") from None
        try:
            extractor = cls(state_dict)
        except (RuntimeError, TypeError, AttributeError):  # wrong keys or shapes, or not a dict at all
            raise InputError(f"{path} is not torchvision's inception_v3 state dict ({INCEPTION_WEIGHTS_FILE}).") from None
        return extractor.to(resolve_device(device))

    def features(self, images: torch.Tensor) -> torch.Tensor:
        images = F.interpolate(images, size=(299, 299), mode="bilinear", align_corners=False, antialias=True)
        return self.inception((images - self.mean) / self.std)


class WorldFeatureNet(FeatureExtractor):
    """A small CNN trained on world renders; its pooled last-layer features are the FID features.

    Heads (all linear on the features): body type (classes ``body_types``), azimuth as ``azimuth_bins``
    equal bins starting at 0 degrees (bins rather than one angle because a car seen from the front and
    from the back can look alike, and a regression would average the two), and elevation in degrees.
    Input images are resized to ``resolution``; at 64 px with the defaults the net has about 300k
    parameters.
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


# The elevation head predicts tens of degrees, so that its targets (0-3 for the world's 0-30 degrees) sit on
# the same scale as the classification logits.
_ELEVATION_UNIT_DEG = 10.0


def _conv_bn_relu(c_in: int, c_out: int, stride: int) -> list[nn.Module]:
    return [nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True)]


def load_feature_extractor(path=None, device="cpu") -> FeatureExtractor:
    """The extractor in ``path``: a shipped feature net's name (None: the default, see :mod:`ganverse3d.assets`),
    a :class:`WorldFeatureNet` bundle (``.safetensors``) or torchvision's Inception-v3 state dict (anything
    else, e.g. ``inception_v3_google-0cc3c7bd.pth``). The file's content decides, not its name; a missing
    file is explained by its name.

    The global RNG is left as it was (building a module draws initial weights from it), so that loading an
    extractor in the middle of a training run does not change the run.
    """
    device = resolve_device(device)
    if path is None or assets.lookup("feature_net", str(path)):
        path = assets.resolve("feature_net", path)
    path = Path(path)
    with torch.random.fork_rng(devices=[]):
        if _is_safetensors(path) or (not path.exists() and path.suffix == ".safetensors"):
            return load_module(path, expected_class=WorldFeatureNet, device=device)
        return InceptionFeatures.from_weights(path, device)


def _is_safetensors(path: Path) -> bool:
    """Whether the file starts like safetensors: an 8-byte little-endian header size, then a JSON object."""
    try:
        with open(path, "rb") as handle:
            start = handle.read(9)
    except OSError:
        return False
    return len(start) == 9 and 0 < int.from_bytes(start[:8], "little") < 100_000_000 and start[8:] == b"{"


@torch.no_grad()
def extract_features(extractor: FeatureExtractor, images: torch.Tensor, batch_size: int = 64,
                     progress: str | None = None) -> torch.Tensor:
    """images [N, 3, H, W] (float32 in [0, 1], or uint8) -> features [N, D] float64 on the CPU, in batches."""
    extractor.eval()
    device = next(extractor.parameters()).device
    batches = range(0, len(images), batch_size)
    features = []
    for start in tqdm(batches, desc=progress, unit="batch", leave=False, disable=progress is None):
        batch = images[start:start + batch_size].to(device)
        if batch.dtype == torch.uint8:
            batch = batch.float() / 255
        features.append(extractor.features(batch).double().cpu())
    return torch.cat(features)


# ---------------------------------------------------------------------------------------------------
# Fréchet distance


@dataclass
class FeatureStatistics:
    """Mean [D] and covariance [D, D] (float64) of N feature vectors: the Gaussian that FID compares."""

    mean: torch.Tensor
    cov: torch.Tensor
    count: int

    @classmethod
    def of(cls, features: torch.Tensor) -> FeatureStatistics:
        """features [N, D], N >= 2 -> their mean and (unbiased) covariance."""
        if len(features) < 2:
            raise InputError("FID needs at least 2 images on each side.")
        features = features.double()
        return cls(mean=features.mean(dim=0), cov=torch.cov(features.T), count=len(features))


def frechet_distance(a: FeatureStatistics, b: FeatureStatistics) -> float:
    """||mu_a - mu_b||^2 + tr(C_a) + tr(C_b) - 2 tr((C_a C_b)^(1/2)).

    C_a C_b is not symmetric, but it is similar to the symmetric PSD matrix S C_b S with S = C_a^(1/2), so
    tr((C_a C_b)^(1/2)) is the sum of the square roots of the eigenvalues of S C_b S; two symmetric
    eigendecompositions replace the general matrix square root (no scipy needed). Eigenvalues that
    rounding makes slightly negative count as zero (covariances are rank-deficient when N <= D).
    """
    eigenvalues, eigenvectors = torch.linalg.eigh(a.cov)
    sqrt_a = (eigenvectors * eigenvalues.clamp_min(0).sqrt()) @ eigenvectors.T
    middle = sqrt_a @ b.cov @ sqrt_a
    trace_sqrt_product = torch.linalg.eigvalsh((middle + middle.T) / 2).clamp_min(0).sqrt().sum()
    distance = (a.mean - b.mean).square().sum() + a.cov.trace() + b.cov.trace() - 2 * trace_sqrt_product
    # The exact value is never negative; rounding can leave it a hair below zero for identical sets.
    return max(float(distance), 0.0)


@dataclass
class FIDResult:
    """One FID measurement and what it depends on.

    Attributes:
        extractor: the feature extractor's name ("inception" or "world"); ``key`` is "fid-" + it.
        value: the Fréchet distance.
        num_real, num_fake: the sample sizes (FID is biased by them; compare only at equal sizes).
    """

    extractor: str
    value: float
    num_real: int
    num_fake: int

    @property
    def key(self) -> str:
        return f"fid-{self.extractor}"


def fid(feature_extractor: FeatureExtractor, real_images: torch.Tensor, fake_images: torch.Tensor,
        batch_size: int = 64) -> FIDResult:
    """FID between two image sets, each [N, 3, H, W] float32 in [0, 1] or uint8 (sizes may differ)."""
    real = FeatureStatistics.of(extract_features(feature_extractor, real_images, batch_size))
    fake = FeatureStatistics.of(extract_features(feature_extractor, fake_images, batch_size))
    return FIDResult(feature_extractor.name, frechet_distance(real, fake), real.count, fake.count)


class GeneratorFID:
    """FID of generators against one fixed set of real images, whose statistics are computed once.

    Each measurement samples the same latents and noise (seeded), so that a series of measurements during
    training follows the generator, not the sampling; the global RNG is left as it was, so that measuring
    does not change a training run.
    """

    def __init__(self, extractor: FeatureExtractor, real_statistics: FeatureStatistics, batch_size: int = 64):
        self.extractor, self.real, self.batch_size = extractor, real_statistics, batch_size

    @classmethod
    def from_images(cls, extractor: FeatureExtractor, real_images: torch.Tensor, batch_size: int = 64) -> GeneratorFID:
        """real_images [N, 3, H, W] float32 in [0, 1] or uint8."""
        features = extract_features(extractor, real_images, batch_size, progress=f"{extractor.name} features of reals")
        return cls(extractor, FeatureStatistics.of(features), batch_size)

    @classmethod
    def from_folder(cls, extractor: FeatureExtractor, folder, size_hw: tuple[int, int], num_real: int | None = None,
                    batch_size: int = 64) -> GeneratorFID:
        """The first ``num_real`` (all when None) images of a dataset folder, resized to ``size_hw`` (the
        generator's content size), streamed in batches so that memory does not grow with the folder."""
        from .train import image_paths  # here, because train imports this module

        paths = image_paths(folder)[:num_real]
        features = []
        for start in tqdm(range(0, len(paths), batch_size), desc=f"{extractor.name} features of reals",
                          unit="batch", leave=False):
            batch = torch.from_numpy(np.stack([_read_rgb(path, size_hw) for path in paths[start:start + batch_size]]))
            features.append(extract_features(extractor, batch.permute(0, 3, 1, 2), batch_size))
        return cls(extractor, FeatureStatistics.of(torch.cat(features)), batch_size)

    @torch.no_grad()
    def measure(self, generator: nn.Module, num_fake: int, seed: int = 0) -> FIDResult:
        """Sample ``num_fake`` images (truncation 1, random noise, content crop) and compare them to the reals."""
        device = next(generator.parameters()).device
        latent_rng = torch.Generator().manual_seed(seed)
        features = []
        with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
            torch.manual_seed(seed)  # the per-layer noise
            for start in tqdm(range(0, num_fake, self.batch_size), desc=f"fid-{self.extractor.name}", unit="batch",
                              leave=False):
                z = torch.randn(min(self.batch_size, num_fake - start), generator.z_dim, generator=latent_rng)
                images = generator(z.to(device), truncation_psi=1.0, noise_mode="random")
                images = (generator.crop_to_content(images) + 1) / 2
                features.append(extract_features(self.extractor, images.clamp(0, 1), self.batch_size))
        fake = FeatureStatistics.of(torch.cat(features))
        return FIDResult(self.extractor.name, frechet_distance(self.real, fake), self.real.count, fake.count)


def compute_fid(generator: nn.Module, data_folder, num_fakes: int, extractor: FeatureExtractor,
                num_reals: int | None = None, seed: int = 0, batch_size: int = 64) -> FIDResult:
    """FID of ``generator`` (truncation 1) against the images of ``data_folder`` (all, or the first ``num_reals``),
    with the reals resized to the generator's content size."""
    content_hw = tuple(generator.img_content_shape)
    reals = GeneratorFID.from_folder(extractor, data_folder, content_hw, num_reals, batch_size)
    return reals.measure(generator, num_fakes, seed)


def _read_rgb(path: Path, size_hw: tuple[int, int]) -> np.ndarray:
    """A PNG as uint8 [H, W, 3] of ``size_hw``."""
    with Image.open(path) as image:
        image = image.convert("RGB")
        if image.size != (size_hw[1], size_hw[0]):
            image = image.resize((size_hw[1], size_hw[0]), Image.LANCZOS)
        return np.asarray(image)


# ---------------------------------------------------------------------------------------------------
# Training the world feature net


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
    images = []
    for *_, image in tqdm(targets, desc="loading images", unit="img", leave=False):
        try:
            images.append(_read_rgb(folder / image, (resolution, resolution)))
        except OSError:
            raise InputError(f"Cannot read {folder / image}, listed in {folder}/meta.jsonl.") from None
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


def train_feature_net(config: FeatureNetConfig, out, device="auto") -> dict:
    """Train a :class:`WorldFeatureNet` on a world dataset, save it to ``out`` (a bundle) and return its
    held-out evaluation (see :func:`evaluate_feature_net`), which the bundle's provenance also records."""
    device = resolve_device(device)
    if not 0 < config.holdout < 1:
        raise InputError(f"The held-out fraction must lie between 0 and 1, not {config.holdout}.")
    if config.resolution < 16 or config.epochs < 1 or config.batch < 2:
        raise InputError("The feature net needs a resolution of at least 16, at least 1 epoch and a batch of at least 2.")
    labels = load_world_labels(config.data, config.resolution)
    count = len(labels.images)
    num_heldout = max(1, round(count * config.holdout))
    if count - num_heldout < config.batch:
        raise InputError(f"{config.data} has {count} images; training needs at least {config.batch} beyond the "
                         f"{num_heldout} held out.")
    torch.manual_seed(config.seed)
    rng = torch.Generator().manual_seed(config.seed)
    order = torch.randperm(count, generator=rng)
    heldout, training = _subset(labels, order[:num_heldout]), _subset(labels, order[num_heldout:])

    net = WorldFeatureNet(labels.body_types, resolution=config.resolution, width=config.width,
                          feature_dim=config.feature_dim, azimuth_bins=config.azimuth_bins).to(device)
    optimizer = torch.optim.AdamW(net.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    steps_per_epoch = len(training.images) // config.batch
    total_steps = steps_per_epoch * config.epochs
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 0.5 * (1 + math.cos(math.pi * step / total_steps)))
    with tqdm(total=total_steps, desc="feature net", unit="step") as progress:
        for _ in range(config.epochs):
            net.train()
            permutation = torch.randperm(len(training.images), generator=rng)
            for step in range(steps_per_epoch):
                index = permutation[step * config.batch:(step + 1) * config.batch]
                flip = torch.rand(len(index), generator=rng) < 0.5
                images, azimuth = _mirror(training.images[index].float() / 255, training.azimuth[index], flip)
                body_logits, azimuth_logits, elevation = net(images.to(device))
                loss_body = F.cross_entropy(body_logits, training.body[index].to(device))
                loss_azimuth = F.cross_entropy(azimuth_logits, _azimuth_bin(azimuth, net.azimuth_bins).to(device))
                loss_elevation = F.mse_loss(elevation / _ELEVATION_UNIT_DEG,
                                            training.elevation[index].to(device) / _ELEVATION_UNIT_DEG)
                loss = loss_body + loss_azimuth + loss_elevation
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                schedule.step()
                progress.update(1)
                progress.set_postfix(body=f"{loss_body.item():.3f}", azimuth=f"{loss_azimuth.item():.3f}",
                                     elevation=f"{loss_elevation.item():.3f}")
    evaluation = evaluate_feature_net(net, heldout)
    save_module(out, net.cpu(), config=dataclasses.asdict(config),
                provenance={"stage": "gan feature-net", "data": str(config.data), "num_train": len(training.images),
                            "steps": total_steps, "heldout": evaluation})
    return evaluation


def _subset(labels: WorldLabels, index: torch.Tensor) -> WorldLabels:
    return WorldLabels(images=labels.images[index], body_types=labels.body_types, body=labels.body[index],
                       azimuth=labels.azimuth[index], elevation=labels.elevation[index])
