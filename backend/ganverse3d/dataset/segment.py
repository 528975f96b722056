"""Car segmenters behind one interface: images -> per-image car instances (masks and scores).

The multi-view synthesis keeps a GAN image only when its segmenter finds exactly one car covering enough
of the image (paper Sec. 3.1), so every segmenter answers the same question: which pixels belong to
which car. Three implementations:

* :class:`WorldSegmenter` (spec ``"world"`` or ``"world:PATH"``), the embedded default: a tiny U-Net
  (:class:`WorldSegmenterNet`, ~210k parameters, < 1 MB) trained on world renders and masks by
  :func:`ganverse3d.dataset.train_segmenter.train_world_segmenter`. It predicts one foreground mask;
  instances are its 8-connected components of at least ``min_instance_area`` of the image, so two cars
  that touch count as one (a limit the instance segmenters below do not have).
* :class:`MaskRCNNSegmenter` (spec ``"maskrcnn:PATH"``): torchvision's COCO Mask R-CNN ResNet-50-FPN (v1 or
  v2) built without any download and filled from a local state-dict file, e.g. torchvision's
  ``maskrcnn_resnet50_fpn_coco-bf2d0c1e.pth``; cars are COCO label 3.
* :class:`Detectron2Segmenter` (spec ``"detectron2:PATH"``): detectron2's COCO Mask R-CNN R50-FPN 3x when
  detectron2 is importable. It is a thin adapter that the project cannot test (detectron2 does not
  install here); its spec fails with a clear sentence when detectron2 is missing.

Masks are at the input images' resolution; scores are in [0, 1], instances sorted by descending score.

The one car of a user's photo (:func:`segment_photo`: candidates found in a scaled-down copy, each outlined
in a crop of the full photo, kept when the segmenter is confident of it) or of a mask (:func:`single_car`) is
found here too, for ``ganverse3d.api.reconstruct``.
"""

from __future__ import annotations

import abc
import hashlib
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from PIL import Image

from .. import assets
from ..bundle import load_module
from ..devices import resolve_device
from ..errors import InputError, setting
from ..files import is_file, shown_path

# Torchvision's COCO category index of "car" (its 91-entry list keeps COCO's original ids).
COCO_CAR = 3
# Detectron2 renumbers COCO's 80 used categories contiguously from 0, which puts "car" at 2.
DETECTRON2_COCO_CAR = 2
DETECTRON2_CONFIG = "COCO-InstanceSegmentation/mask_rcnn_R_50_FPN_3x.yaml"


@dataclass
class Instances:
    """The cars found in one image.

    Attributes:
        masks: [N, H, W] bool, one mask per car, at the image's resolution (N may be 0).
        scores: [N] float32 confidence in [0, 1], descending.
    """

    masks: torch.Tensor
    scores: torch.Tensor

    def __len__(self) -> int:
        return self.masks.shape[0]


class Segmenter(abc.ABC):
    """Finds car instances in images.

    ``confident_score``: instances scoring below it are the segmenter's guesses rather than cars it is sure of
    (:func:`segment_photo` refuses them; dataset filters keep their own rules).
    """

    confident_score: float

    @abc.abstractmethod
    def segment(self, images: torch.Tensor) -> list[Instances]:
        """images [B, 3, H, W] float32 RGB in [0, 1] -> one :class:`Instances` per image, on the CPU."""

    @abc.abstractmethod
    def description(self) -> dict:
        """JSON-able identity (kind, weights file and its sha256, thresholds) recorded in dataset manifests."""


def file_sha256(path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


# ---------------------------------------------------------------------------------------------------
# Connected components


def connected_components(mask: torch.Tensor) -> torch.Tensor:
    """8-connected components of a boolean mask [H, W]: labels [H, W] int64, -1 off the mask, and on it the
    flat (row-major) index of the component's first pixel, so labels are canonical and deterministic.

    A parallel union-find (hooking plus pointer jumping, as in Shiloach-Vishkin): ``parent`` starts as each
    pixel's own index; every round each pixel hooks its root onto the smallest parent in its 3x3
    neighbourhood, then all pointers jump to their roots. Parents only decrease and always point into the
    same component, and a round without change means every component has one root: a handful of rounds
    even for ragged masks, where plain min-label propagation needs one round per pixel of path length.
    """
    height, width = mask.shape
    size = height * width
    on = mask.reshape(-1).nonzero()[:, 0]
    parent = torch.arange(size, device=mask.device)
    off_value = torch.full((height, width), size, device=mask.device)
    while True:
        # Off-mask pixels hold `size`, larger than every index, so the minimum never crosses the background.
        grid = torch.where(mask, parent.reshape(height, width), off_value)
        neighbourhood_min = -F.max_pool2d(-grid[None, None].double(), 3, stride=1, padding=1)[0, 0].long()
        previous = parent.clone()
        parent.scatter_reduce_(0, parent[on], neighbourhood_min.reshape(-1)[on], reduce="amin")
        while not torch.equal(jumped := parent[parent], parent):
            parent = jumped
        if torch.equal(parent, previous):
            return torch.where(mask, parent.reshape(height, width), torch.full_like(off_value, -1))


def instances_from_probabilities(probability: torch.Tensor, threshold: float = 0.5,
                                 min_instance_area: float = 0.01) -> list[Instances]:
    """Foreground probability maps [B, H, W] -> per image, its components above ``threshold`` that cover at
    least ``min_instance_area`` of the image, each scored by its mean probability.

    The batch is labelled in one call: the maps are stacked vertically with a background row between them,
    which keeps components of different images apart.
    """
    batch, height, width = probability.shape
    foreground = probability > threshold
    stacked = F.pad(foreground, (0, 0, 0, 1)).reshape(batch * (height + 1), width)
    labels = connected_components(stacked).reshape(batch, height + 1, width)[:, :height]
    results = []
    for image_labels, image_foreground, image_probability in zip(labels, foreground, probability):
        ids, areas = torch.unique(image_labels[image_foreground], return_counts=True)
        ids = ids[areas >= min_instance_area * height * width]
        masks = image_labels[None] == ids[:, None, None]
        scores = (masks * image_probability).sum(dim=(1, 2)) / masks.sum(dim=(1, 2)).clamp_min(1)
        order = torch.argsort(scores, descending=True, stable=True)
        results.append(Instances(masks[order].cpu(), scores[order].float().cpu()))
    return results


def instances_from_probability(probability: torch.Tensor, threshold: float = 0.5,
                               min_instance_area: float = 0.01) -> Instances:
    """:func:`instances_from_probabilities` of one map [H, W]."""
    return instances_from_probabilities(probability[None], threshold, min_instance_area)[0]


# ---------------------------------------------------------------------------------------------------
# The embedded world segmenter


def _double_conv(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True),
                         nn.Conv2d(c_out, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True))


class WorldSegmenterNet(nn.Module):
    """A tiny U-Net: images [B, 3, H, W] in [0, 1] (H, W multiples of 8) -> logits [B, classes, H, W].

    Three 2x poolings (widths w, 2w, 4w, bottleneck 4w) and a mirrored decoder with skip connections; with
    the default ``width`` 16 it has about 210k parameters (0.85 MB in float32). ``resolution`` is the image
    size it was trained at: :func:`logits_at` resizes inputs so that their longer side matches it.
    ``classes`` 1 (the car segmenter, bundles written before the argument existed) gives one foreground logit;
    more give one logit per class (the part segmenter of :mod:`ganverse3d.parts.segmenter`).
    """

    def __init__(self, resolution: int = 64, width: int = 16, classes: int = 1):
        super().__init__()
        self.init_kwargs = dict(resolution=resolution, width=width, classes=classes)
        self.resolution = resolution
        self.classes = classes
        self.enc1 = _double_conv(3, width)
        self.enc2 = _double_conv(width, 2 * width)
        self.enc3 = _double_conv(2 * width, 4 * width)
        self.bottleneck = _double_conv(4 * width, 4 * width)
        self.dec3 = _double_conv(8 * width, 2 * width)
        self.dec2 = _double_conv(4 * width, width)
        self.dec1 = _double_conv(2 * width, width)
        self.head = nn.Conv2d(width, classes, 1)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        skip1 = self.enc1(images * 2 - 1)
        skip2 = self.enc2(F.max_pool2d(skip1, 2))
        skip3 = self.enc3(F.max_pool2d(skip2, 2))
        x = self.bottleneck(F.max_pool2d(skip3, 2))
        for decoder, skip in ((self.dec3, skip3), (self.dec2, skip2), (self.dec1, skip1)):
            x = F.interpolate(x, size=skip.shape[-2:], mode="bilinear", align_corners=False)
            x = decoder(torch.cat((x, skip), dim=1))
        return self.head(x)


def working_size(height: int, width: int, resolution: int) -> tuple[int, int]:
    """The size (multiples of 8) at which the net sees an H x W image: longer side ``resolution``."""
    scale = resolution / max(height, width)
    return tuple(max(8, 8 * round(side * scale / 8)) for side in (height, width))


@torch.no_grad()
def logits_at(net: WorldSegmenterNet, images: torch.Tensor) -> torch.Tensor:
    """images [B, 3, H, W] in [0, 1] -> the net's logits [B, classes, H, W] at the input resolution (the net sees
    the images resized to :func:`working_size`; its logits are resized back bilinearly), on the net's device."""
    device = next(net.parameters()).device
    height, width = images.shape[-2:]
    size = working_size(height, width, net.resolution)
    small = F.interpolate(images.to(device).float(), size=size, mode="bilinear", align_corners=False,
                          antialias=True)
    return F.interpolate(net(small), size=(height, width), mode="bilinear", align_corners=False)


class WorldSegmenter(Segmenter):
    """The embedded default: :class:`WorldSegmenterNet` plus connected components (module docstring).

    An instance's score is its mean car probability. The net learned from renders that always hold one car, so
    it calls a blob "car" even in an all-blue image or noise, and one blob spans two cars side by side: such
    blobs score lower. ``confident_score`` 0.97 was chosen with :func:`segment_photo`, which outlines
    each candidate in a crop framed around it: it accepts 324 of 331 unseen world renders (colour, grey, JPEG,
    stretched; the car covering 2-40 % of the frame), each with a mask IoU above 0.9, and refuses all 20 photos
    of two cars side by side and all 36 plain, noise and smooth-noise images; of 20 photos of two cars one
    above the other it counts 17 as two cars, refuses 1 and takes 2 for one car.

    Args:
        net: the trained net.
        weights: the file it came from (recorded in manifests), or None.
        threshold: foreground probability above which a pixel is car.
        min_instance_area: components smaller than this fraction of the image are specks, not cars.
        confident_score: see :class:`Segmenter`.
    """

    def __init__(self, net: WorldSegmenterNet, weights=None, threshold: float = 0.5, min_instance_area: float = 0.01,
                 confident_score: float = 0.97):
        self.net = net.eval()
        self.weights = None if weights is None else Path(weights)
        self.threshold = threshold
        self.min_instance_area = min_instance_area
        self.confident_score = confident_score

    @classmethod
    def from_file(cls, path=None, device="cpu") -> WorldSegmenter:
        """Load a bundle written by ``ganverse3d segmenter train``, or a shipped one by name (None: the default)."""
        path = assets.resolve("segmenter", path)
        net = load_module(path, expected_class=WorldSegmenterNet, device=resolve_device(device))
        if net.classes != 1:
            raise InputError(f"{shown_path(path)} is a part segmenter ({net.classes} classes), not a car segmenter; "
                             f"use it with `ganverse3d parts eval-segmenter`.")
        return cls(net, weights=path)

    @torch.no_grad()
    def probability(self, images: torch.Tensor) -> torch.Tensor:
        """images [B, 3, H, W] in [0, 1] -> car probability [B, H, W] (at the input resolution)."""
        return logits_at(self.net, images)[:, 0].sigmoid()

    def segment(self, images: torch.Tensor) -> list[Instances]:
        return instances_from_probabilities(self.probability(images), self.threshold, self.min_instance_area)

    def description(self) -> dict:
        return {"kind": "world", "weights": str(self.weights) if self.weights else None,
                "sha256": file_sha256(self.weights) if self.weights else None, "threshold": self.threshold,
                "min_instance_area": self.min_instance_area}


# ---------------------------------------------------------------------------------------------------
# torchvision Mask R-CNN


class MaskRCNNSegmenter(Segmenter):
    """torchvision's COCO Mask R-CNN ResNet-50-FPN from a local state dict; never downloads.

    Args:
        weights: a ``torch.save``'d state dict of ``maskrcnn_resnet50_fpn`` or ``maskrcnn_resnet50_fpn_v2``
            (91 COCO classes), read with ``torch.load(weights_only=True)``.
        device: where to run.
        score_threshold: detections of a car below this score are ignored.
        mask_threshold: a pixel belongs to an instance where its mask probability exceeds this.
        min_size: the shorter image side the model resizes to (torchvision's default 800).
    """

    def __init__(self, weights, device="cpu", score_threshold: float = 0.5, mask_threshold: float = 0.5,
                 min_size: int = 800):
        from torchvision.models.detection import maskrcnn_resnet50_fpn, maskrcnn_resnet50_fpn_v2

        self.weights = Path(weights)
        if not is_file(self.weights):
            raise InputError(f"Mask R-CNN weights {shown_path(self.weights)} do not exist; download torchvision's "
                             f"maskrcnn_resnet50_fpn_coco-bf2d0c1e.pth and pass maskrcnn:PATH.")
        try:
            state = torch.load(self.weights, map_location="cpu", weights_only=True)
        except Exception as error:  # torch reports damaged or pickled-code files with many exception types
            raise InputError(f"{self.weights} is not a readable torch state dict ({type(error).__name__}).") from None
        if not isinstance(state, dict) or not all(isinstance(value, torch.Tensor) for value in state.values()):
            raise InputError(f"{self.weights} is not a state dict of tensors.")
        for builder in (maskrcnn_resnet50_fpn, maskrcnn_resnet50_fpn_v2):
            model = builder(weights=None, weights_backbone=None, num_classes=91, min_size=min_size)
            try:
                model.load_state_dict(state, strict=True)
                break
            except RuntimeError:
                continue
        else:
            raise InputError(f"{self.weights} is not a state dict of torchvision's COCO maskrcnn_resnet50_fpn "
                             f"(v1 or v2).")
        self.model = model.to(resolve_device(device)).eval()
        self.score_threshold = score_threshold
        self.mask_threshold = mask_threshold
        self.confident_score = score_threshold  # its detection score; lower ones are dropped already

    @torch.no_grad()
    def segment(self, images: torch.Tensor) -> list[Instances]:
        device = next(self.model.parameters()).device
        detections = self.model(list(images.to(device).float()))
        results = []
        for detection in detections:
            keep = (detection["labels"] == COCO_CAR) & (detection["scores"] >= self.score_threshold)
            scores = detection["scores"][keep]
            order = torch.argsort(scores, descending=True, stable=True)
            masks = detection["masks"][keep][order, 0] > self.mask_threshold
            results.append(Instances(masks.cpu(), scores[order].float().cpu()))
        return results

    def description(self) -> dict:
        return {"kind": "maskrcnn", "weights": str(self.weights), "sha256": file_sha256(self.weights),
                "score_threshold": self.score_threshold, "mask_threshold": self.mask_threshold}


# ---------------------------------------------------------------------------------------------------
# detectron2 (untested here: the package does not install in this project's environments)


class Detectron2Segmenter(Segmenter):
    """detectron2's model-zoo COCO Mask R-CNN R50-FPN 3x with local weights (a ``model_final_*.pkl``).

    Args:
        weights: the checkpoint file; detectron2's own checkpointer reads it.
        device: where to run.
        score_threshold: detections of a car below this score are ignored.
    """

    def __init__(self, weights, device="cpu", score_threshold: float = 0.5):
        try:
            from detectron2 import model_zoo
            from detectron2.config import get_cfg
            from detectron2.engine import DefaultPredictor
        except ImportError:
            raise InputError("The detectron2 segmenter needs detectron2, which is not installed; use maskrcnn:PATH "
                             "(torchvision) or world instead.") from None
        self.weights = Path(weights)
        if not is_file(self.weights):
            raise InputError(f"detectron2 weights {shown_path(self.weights)} do not exist.")
        cfg = get_cfg()
        cfg.merge_from_file(model_zoo.get_config_file(DETECTRON2_CONFIG))
        cfg.MODEL.WEIGHTS = str(self.weights)
        cfg.MODEL.DEVICE = str(resolve_device(device))
        cfg.MODEL.ROI_HEADS.SCORE_THRESH_TEST = score_threshold
        self.predictor = DefaultPredictor(cfg)
        self.score_threshold = score_threshold
        self.confident_score = score_threshold  # its detection score; lower ones are dropped already

    @torch.no_grad()
    def segment(self, images: torch.Tensor) -> list[Instances]:
        results = []
        for image in images:
            # DefaultPredictor takes one HWC uint8 image in the channel order of its config ("BGR").
            pixels = (image.clamp(0, 1) * 255).round().byte().permute(1, 2, 0).cpu().numpy()
            if self.predictor.input_format == "BGR":
                pixels = pixels[:, :, ::-1]
            found = self.predictor(pixels.copy())["instances"].to("cpu")
            keep = found.pred_classes == DETECTRON2_COCO_CAR
            scores = found.scores[keep]
            order = torch.argsort(scores, descending=True, stable=True)
            results.append(Instances(found.pred_masks[keep][order].bool(), scores[order].float()))
        return results

    def description(self) -> dict:
        return {"kind": "detectron2", "weights": str(self.weights), "sha256": file_sha256(self.weights),
                "config": DETECTRON2_CONFIG, "score_threshold": self.score_threshold}


def load_segmenter(spec: str = "world", device="cpu") -> Segmenter:
    """A segmenter from its spec: a shipped segmenter's name (``world``, the default; see
    :mod:`ganverse3d.assets`) or a world segmenter bundle's path, ``world:PATH``, ``maskrcnn:PATH`` or
    ``detectron2:PATH``."""
    if assets.lookup("segmenter", spec) or is_file(spec):
        return WorldSegmenter.from_file(spec, device=device)
    kind, _, path = spec.partition(":")
    if kind == "world" and path:
        return WorldSegmenter.from_file(path, device=device)
    if kind in ("maskrcnn", "detectron2") and path:
        return (MaskRCNNSegmenter if kind == "maskrcnn" else Detectron2Segmenter)(path, device=device)
    raise InputError(f"Unknown {setting('segmenter')} {shown_path(repr(spec))}; use a shipped segmenter "
                     f"({assets.describe('segmenter')}), a world segmenter's weights file, world:PATH, maskrcnn:PATH "
                     f"or detectron2:PATH.")


# ---------------------------------------------------------------------------------------------------
# Photos: the one car of a user's photo or mask (``ganverse3d.api.reconstruct``)

# Mask components smaller than this fraction of the photo are specks, not cars (the segmenters' rule).
MIN_CAR_AREA = 0.01
# Cars are looked for in a copy of the photo (or mask) whose longer side is at most this: plenty to tell cars
# apart, and cheap for phone-size photos.
SEARCH_SIZE = 512
# Each candidate car is then outlined in a crop of the full photo, OUTLINE_SIZE pixels square, in which its
# longer side is OUTLINE_FILL of the crop (as in the world segmenter's training renders: median 0.77).
OUTLINE_SIZE = 256
OUTLINE_FILL = 0.75
# At most this many candidates are outlined (the largest-scoring ones): enough to count the cars of a photo.
_MAX_CANDIDATES = 8


def _scaled_down(image: Image.Image, longest: int) -> tuple[np.ndarray, float]:
    """The image area-averaged so that its longer side is at most ``longest``, as a uint8 array, and the
    scale (copy pixels per image pixel, 1 when it was small enough already)."""
    width, height = image.size
    scale = min(1.0, longest / max(height, width))
    if scale < 1.0:
        # reducing_gap: Pillow first shrinks by an integer factor (fast), then resamples the rest exactly.
        image = image.resize((max(1, round(width * scale)), max(1, round(height * scale))), Image.BOX,
                             reducing_gap=3.0)
    return np.asarray(image), scale


def bounding_box(mask: np.ndarray) -> tuple[int, int, int, int]:
    """(left, top, right, bottom) of the True pixels of a non-empty bool mask [H, W], right and bottom exclusive."""
    rows, columns = np.nonzero(mask.any(axis=1))[0], np.nonzero(mask.any(axis=0))[0]
    return int(columns[0]), int(rows[0]), int(columns[-1]) + 1, int(rows[-1]) + 1


def crop_resize(image, box: tuple[float, float, float], out_size: int, edge: bool) -> np.ndarray:
    """Crop the square ``box`` = (left, top, size) of an image and resample it to uint8 out_size² (area average
    when shrinking, bicubic when enlarging). Outside the image the edge pixels are repeated (``edge``) or zeros
    are used.

    ``image`` is a Pillow image (L or RGB), or an array: uint8 [H, W] / [H, W, C], or a bool mask [H, W] read
    as 0 / 255. Only the output pixels that lie wholly inside the image are resampled, from the image itself;
    the rest are filled in the small output, so a crop of a 48-megapixel photo pads nothing at full resolution
    (and copies nothing of a Pillow image).
    """
    left, top, size = box
    width, height = image.size if isinstance(image, Image.Image) else (image.shape[1], image.shape[0])
    scale = out_size / size  # output pixels per image pixel
    # Output columns [x0, x1) and rows [y0, y1) inside the image (small tolerances absorb float rounding).
    x0 = min(out_size, max(0, math.ceil(-left * scale - 1e-6)))
    x1 = max(x0, min(out_size, math.floor((width - left) * scale + 1e-6)))
    y0 = min(out_size, max(0, math.ceil(-top * scale - 1e-6)))
    y1 = max(y0, min(out_size, math.floor((height - top) * scale + 1e-6)))
    if x1 == x0 or y1 == y0:
        raise InputError("The car lies outside the photo.")
    source = [min(max(left + x0 / scale, 0.0), width), min(max(top + y0 / scale, 0.0), height),
              min(max(left + x1 / scale, 0.0), width), min(max(top + y1 / scale, 0.0), height)]
    if not isinstance(image, Image.Image):  # only the window the output covers goes to Pillow
        column0, row0 = int(source[0]), int(source[1])
        window = image[row0:math.ceil(source[3]), column0:math.ceil(source[2])]
        image = Image.fromarray(np.ascontiguousarray(window.astype(np.uint8) * 255 if window.dtype == bool else window))
        source = [source[0] - column0, source[1] - row0, source[2] - column0, source[3] - row0]
    resample = Image.BOX if size >= out_size else Image.BICUBIC
    # reducing_gap: Pillow first shrinks by an integer factor (fast), then resamples the rest exactly.
    inside = np.asarray(image.resize((x1 - x0, y1 - y0), resample, box=tuple(source), reducing_gap=3.0))
    outside = [(y0, out_size - y1), (x0, out_size - x1)] + [(0, 0)] * (inside.ndim - 2)
    return np.pad(inside, outside, mode="edge" if edge else "constant")


def single_car(mask: np.ndarray, source: str) -> np.ndarray:
    """The one car of a bool mask [H, W] (specks below :data:`MIN_CAR_AREA` dropped); InputError for none or
    several. ``source`` names the mask in messages ("the mask", "the photo's alpha channel")."""
    height, width = mask.shape
    small = _scaled_down(Image.fromarray(mask).convert("L"), SEARCH_SIZE)[0] > 127
    instances = instances_from_probability(torch.from_numpy(small).float(), 0.5, MIN_CAR_AREA)
    if len(instances) == 0:
        raise InputError(f"No car found: {source} marks nothing of at least {MIN_CAR_AREA:.0%} of the photo.")
    if len(instances) > 1:
        raise InputError(f"{source[0].upper() + source[1:]} shows {len(instances)} separate cars; give a photo "
                         f"or mask with exactly one.")
    keep = np.asarray(Image.fromarray(instances.masks[0].numpy().astype(np.uint8) * 255).resize((width, height),
                                                                                              Image.NEAREST)) > 127
    return mask & keep


@dataclass
class _Outline:
    """A candidate car outlined in a square crop of the photo.

    Attributes:
        box: (left, top, size) of the crop in photo pixels (it may reach past the photo's border).
        mask: [OUTLINE_SIZE, OUTLINE_SIZE] bool, the car in the crop.
        score: the segmenter's confidence in it.
        contained: whether the mask stays off the crop's border. A car lies inside the crop framed around it
            with a margin (beyond the photo's edge the crop repeats its edge pixels); a region that runs to
            the border is background: sky, a wall, noise, a plain photo that the segmenter calls car as a whole.
    """

    box: tuple[float, float, float]
    mask: np.ndarray
    score: float
    contained: bool

    def in_photo(self, size: tuple[int, int]) -> np.ndarray:
        """The mask in the photo's pixels: bool [H, W] for a photo of ``size`` (H, W)."""
        left, top, side = self.box
        height, width = size
        x0, x1 = max(0, int(np.floor(left))), min(width, int(np.ceil(left + side)))
        y0, y1 = max(0, int(np.floor(top))), min(height, int(np.ceil(top + side)))
        # Nearest outline pixel of each photo pixel centre.
        columns = ((np.arange(x0, x1) + 0.5 - left) * OUTLINE_SIZE / side).astype(np.int64).clip(0, OUTLINE_SIZE - 1)
        rows = ((np.arange(y0, y1) + 0.5 - top) * OUTLINE_SIZE / side).astype(np.int64).clip(0, OUTLINE_SIZE - 1)
        car = np.zeros((height, width), dtype=bool)
        car[y0:y1, x0:x1] = self.mask[rows[:, None], columns[None, :]]
        return car


def _segment_one(model: Segmenter, rgb: np.ndarray) -> Instances:
    """The segmenter's :class:`Instances` of one uint8 image [H, W, 3]."""
    return model.segment(torch.tensor(rgb).permute(2, 0, 1)[None].float() / 255)[0]


def _outline(model: Segmenter, photo: Image.Image, candidate: np.ndarray, scale: float) -> _Outline | None:
    """Outline a candidate found in the scaled-down copy (bool mask [h, w] at ``scale``) in a crop of the full
    RGB ``photo``, framed as the world segmenter's training renders frame cars; None when the segmenter finds
    nothing there that overlaps the candidate."""
    left, top, right, bottom = bounding_box(candidate)
    side = max(right - left, bottom - top) / scale / OUTLINE_FILL
    box = ((left + right) / 2 / scale - side / 2, (top + bottom) / 2 / scale - side / 2, side)
    found = _segment_one(model, crop_resize(photo, box, OUTLINE_SIZE, edge=True))
    if len(found) == 0:
        return None
    prior = crop_resize(candidate, tuple(value * scale for value in box), OUTLINE_SIZE, edge=False) > 127
    overlap = (found.masks & torch.from_numpy(prior)).sum(dim=(1, 2))
    best = int(overlap.argmax())
    if int(overlap[best]) == 0:
        return None
    mask = found.masks[best].numpy()
    contained = not (mask[0].any() or mask[-1].any() or mask[:, 0].any() or mask[:, -1].any())
    return _Outline(box, mask, float(found.scores[best]), contained)


def segment_photo(photo, segmenter: str | Segmenter = "world", device="cpu") -> np.ndarray:
    """The one car of a photo (an RGB Pillow image or uint8 array [H, W, 3]) as a bool mask [H, W], found by a
    segmenter or a segmenter spec (see :func:`load_segmenter`; loaded on ``device``).

    The segmenter looks twice, so that phone-size photos cost little and small cars get a sharp outline: it
    finds candidates in a copy of the photo scaled down to :data:`SEARCH_SIZE`, then outlines each in a crop of
    the full photo framed around it (:data:`OUTLINE_SIZE`, :data:`OUTLINE_FILL`). A candidate is a car when its
    outline lies inside the crop and scores at least the segmenter's ``confident_score``.

    Raises:
        InputError: no car, a region the segmenter is unsure of (no car, or cars that touch), several cars.
    """
    photo = photo if isinstance(photo, Image.Image) else Image.fromarray(photo)
    model = load_segmenter(segmenter, device=device) if isinstance(segmenter, str) else segmenter
    search_copy, scale = _scaled_down(photo, SEARCH_SIZE)
    outlines = [_outline(model, photo, candidate.numpy(), scale)
                for candidate in _segment_one(model, search_copy).masks[:_MAX_CANDIDATES]]
    plausible = [outline for outline in outlines if outline is not None and outline.contained]
    cars = [outline for outline in plausible if outline.score >= model.confident_score]
    if len(cars) > 1:
        raise InputError(f"The photo shows {len(cars)} cars; crop it to one car or set {setting('mask')} to the "
                         f"mask of one.")
    if cars:
        return cars[0].in_photo((photo.height, photo.width))
    if plausible:
        best = max(outline.score for outline in plausible)
        raise InputError(f"No single car found in the photo: the segmenter is not sure that what it found is one car "
                         f"(confidence {best:.3f}, {model.confident_score:.3f} needed); crop the photo to one car or "
                         f"set {setting('mask')} to its mask.")
    raise InputError(f"No car found in the photo; if it shows one, set {setting('mask')} to the car's mask.")
