"""Image-quality metrics that work offline: FID with either of two feature extractors.

FID (Heusel et al. 2017) is the Fréchet distance between Gaussians fitted to the features of real and
generated images. Its value depends entirely on the feature extractor, so every number this module
reports carries the extractor's name, as the key ``"fid-<name>"``:

* ``fid-inception``: torchvision's Inception-v3 ImageNet weights (pool features, 2048-d), read from a
  local file the user downloaded (:class:`InceptionFeatures`). This is the usual FID, but note that the
  published StyleGAN2 numbers use the TensorFlow Inception graph, whose weights differ from torchvision's,
  so ``fid-inception`` is close to, not equal to, those numbers.
* ``fid-world``: the project's :class:`~ganverse3d.world.features.WorldFeatureNet`, a small CNN trained on
  world renders to predict body type, azimuth and elevation (``ganverse3d gan feature-net``), whose pooled
  features (128-d) are what FID compares. The embedded default lives in
  ``assets/world_feature_net.safetensors``. Its numbers are meaningful only for world-like images and
  comparable only with each other, for the same net file.

FID is biased upward for small samples, so compare values only at equal numbers of real and generated
images (``num_real`` and ``num_fake`` travel with every :class:`FIDResult`).
"""

from __future__ import annotations

import abc
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from tqdm import tqdm

from .. import assets
from ..bundle import load_module
from ..devices import resolve_device
from ..errors import InputError
from ..files import image_paths, read_image
from ..world.features import WorldFeatureNet

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


# The world feature net is the project's pose reader too, so it lives with the world; it is an extractor all
# the same.
FeatureExtractor.register(WorldFeatureNet)


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
        paths = image_paths(folder)[:num_real]
        size = (size_hw[1], size_hw[0])
        features = []
        for start in tqdm(range(0, len(paths), batch_size), desc=f"{extractor.name} features of reals",
                          unit="batch", leave=False):
            batch = torch.from_numpy(np.stack([read_image(path, size=size) for path in paths[start:start + batch_size]]))
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
