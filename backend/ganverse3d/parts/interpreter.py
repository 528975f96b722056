"""The style interpreter of DatasetGAN: generator features per pixel -> part labels, with an uncertainty.

* **Pixel features** (:func:`pixel_features`): the output of every modulated 3x3 conv layer of the synthesis
  network (``SynthesisNetwork.features``: both convolutions of every block, the AdaIN-modulated maps the
  official interpreter reads), each upsampled **bilinearly** to the canvas and concatenated, then cut to the
  image content: [B, D, H, W] with D = the sum of the layers' channels (512 for the embedded world64).
* **The ensemble** (:class:`StyleInterpreter`): ``members`` :class:`PixelClassifier`\\ s, each
  Linear(D, 128) -> ReLU -> BatchNorm -> Linear(128, 32) -> ReLU -> BatchNorm -> Linear(32, C), weights
  N(0, 0.02), trained from scratch on their own pixel order (``parts/train.py``).
* **A new image's labels** (:meth:`StyleInterpreter.label`): the per-pixel majority vote of the members (a tie
  goes to the lowest class index); its **uncertainty** (:func:`image_uncertainty`): per pixel the
  Jensen-Shannon divergence of the members' softmax outputs, JS = H(mean_i p_i) - mean_i H(p_i) (natural log,
  on probabilities, as the fixed official release), averaged over the image's 10 % most uncertain pixels.
  ``ganverse3d parts synth`` drops the 10 % most uncertain images.

The classes (:data:`CLASSES`) are background and the world's part labels in order, so a world dataset's
``parts/NAME.png`` (label + 1, 0 = background) is a label map of these classes as it stands.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import InputError
from ..stylegan2.networks import Generator
from ..world.cars import PART_LABELS

CLASSES = ("background", *PART_LABELS)  # background, body, window, wheel, headlight, taillight, plate
# One colour per class, for label files and sheets (index = class).
PALETTE = ((0, 0, 0), (70, 130, 220), (120, 230, 240), (90, 90, 90), (255, 240, 80), (230, 30, 40),
           (250, 150, 30))
# The share of an image's pixels whose uncertainty makes the image's score (DatasetGAN: the top 10 %).
TOP_PIXELS = 0.1


def feature_dims(G: Generator) -> list[int]:
    """Channels of each layer that :func:`pixel_features` concatenates, in order."""
    synthesis = G.synthesis
    return [synthesis.channels[int(name.split(".")[0][1:])] for name in synthesis.conv_layer_names]


@torch.no_grad()
def pixel_features(G: Generator, ws: torch.Tensor, return_image: bool = False):
    """Features [B, D, H, W] of the images of ``ws`` [B, num_ws, w_dim] (module docstring), on ``ws``'s device.

    With ``return_image=True`` also the images [B, 3, H, W] in [0, 1]; H, W are the content's size.
    """
    maps, image = G.synthesis.features(ws, return_image=True)
    size = (G.img_resolution, G.img_resolution)
    features = torch.cat([F.interpolate(m.float(), size=size, mode="bilinear", align_corners=False) for m in maps], 1)
    features = G.crop_to_content(features)
    if not return_image:
        return features
    return features, G.crop_to_content((image.float() + 1) / 2).clamp(0, 1)


class PixelClassifier(nn.Sequential):
    """One member of the ensemble: features [N, D] -> logits [N, C] (DatasetGAN's classifier for < 32 classes)."""

    def __init__(self, in_dim: int, num_classes: int):
        super().__init__(nn.Linear(in_dim, 128), nn.ReLU(), nn.BatchNorm1d(128),
                         nn.Linear(128, 32), nn.ReLU(), nn.BatchNorm1d(32),
                         nn.Linear(32, num_classes))
        for layer in self:
            if isinstance(layer, nn.Linear):
                nn.init.normal_(layer.weight, 0.0, 0.02)
                nn.init.zeros_(layer.bias)


class StyleInterpreter(nn.Module):
    """The ensemble of pixel classifiers over the features of one generator architecture.

    Args:
        feature_dims: channels of each concatenated feature layer (:func:`feature_dims` of the generator).
        class_names: the classes, background first.
        members: how many classifiers vote.
    """

    def __init__(self, feature_dims: list[int], class_names: list[str], members: int = 10):
        super().__init__()
        if not feature_dims or min(feature_dims) < 1 or len(class_names) < 2 or members < 1:
            raise ValueError("a StyleInterpreter needs feature layers, two classes or more and one member or more")
        self.feature_dims = [int(d) for d in feature_dims]
        self.class_names = [str(name) for name in class_names]
        self.members = nn.ModuleList(PixelClassifier(sum(self.feature_dims), len(self.class_names))
                                     for _ in range(members))

    @property
    def init_kwargs(self) -> dict:
        return {"feature_dims": self.feature_dims, "class_names": self.class_names, "members": len(self.members)}

    def check_generator(self, G: Generator, what: str = "The interpreter") -> None:
        """InputError unless ``G``'s features are those this interpreter was trained on."""
        if feature_dims(G) != self.feature_dims:
            raise InputError(f"{what} reads features of {len(self.feature_dims)} layers with {sum(self.feature_dims)} "
                             f"channels, but the generator gives {sum(feature_dims(G))} channels; give the generator "
                             f"it was trained with.")

    @torch.no_grad()
    def probabilities(self, features: torch.Tensor, chunk: int = 65536) -> torch.Tensor:
        """features [B, D, H, W] -> every member's softmax [M, B, C, H, W] (eval mode)."""
        batch, dim, height, width = features.shape
        pixels = features.permute(0, 2, 3, 1).reshape(-1, dim)
        out = torch.cat([torch.stack([member(pixels[start:start + chunk]).softmax(-1) for member in self.members])
                         for start in range(0, len(pixels), chunk)], dim=1)
        return out.reshape(len(self.members), batch, height, width, -1).permute(0, 1, 4, 2, 3)

    @torch.no_grad()
    def label(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """features [B, D, H, W] -> (labels [B, H, W] int64 by majority vote, uncertainty [B] float)."""
        probabilities = self.probabilities(features)
        return majority_vote(probabilities.argmax(2), len(self.class_names)), image_uncertainty(probabilities)


def majority_vote(votes: torch.Tensor, num_classes: int) -> torch.Tensor:
    """votes [M, ...] int64 class per member -> [...] the most voted class (a tie goes to the lowest index)."""
    counts = F.one_hot(votes, num_classes).sum(0)
    return counts.argmax(-1)


def js_divergence(probabilities: torch.Tensor) -> torch.Tensor:
    """probabilities [M, B, C, ...] of M members -> [B, ...] JS = H(mean_i p_i) - mean_i H(p_i), natural log."""
    mean = probabilities.mean(0)
    members = -(probabilities * probabilities.clamp_min(1e-12).log()).sum(2).mean(0)
    return (-(mean * mean.clamp_min(1e-12).log()).sum(1) - members).clamp_min(0)


def image_uncertainty(probabilities: torch.Tensor, top: float = TOP_PIXELS) -> torch.Tensor:
    """probabilities [M, B, C, H, W] -> [B]: the mean JS divergence of each image's ``top`` most uncertain
    pixels (at least one pixel)."""
    js = js_divergence(probabilities).flatten(1)
    count = max(1, math.ceil(top * js.shape[1]))
    return js.topk(count, dim=1).values.mean(1)


def class_weights(labels: torch.Tensor, balance: float, num_classes: int = len(CLASSES)) -> torch.Tensor:
    """labels [...] class indices in [0, num_classes) -> [num_classes] float32 weights freq_c ** -balance (freq_c:
    the class's share of the pixels, a class without pixels counted as one pixel), scaled so that the mean weight
    of a pixel is 1."""
    counts = torch.bincount(labels.flatten(), minlength=num_classes).double().clamp_min(1)
    frequency = counts / counts.sum()
    weights = frequency ** -balance
    return (weights / (weights * frequency).sum()).float()


def colourise(labels: torch.Tensor) -> torch.Tensor:
    """labels [B, H, W] int64 class indices -> [B, 3, H, W] float palette colours in [0, 1]."""
    palette = torch.tensor(PALETTE, dtype=torch.float32) / 255
    return palette[labels.clamp(0, len(PALETTE) - 1)].permute(0, 3, 1, 2)


def confusion_matrix(predicted: torch.Tensor, truth: torch.Tensor, num_classes: int) -> torch.Tensor:
    """[C, C] int64 counts of (truth, predicted) pairs over two label tensors of one shape, ids in [0, C)."""
    index = truth.reshape(-1).long() * num_classes + predicted.reshape(-1).long()
    return torch.bincount(index, minlength=num_classes * num_classes).reshape(num_classes, num_classes).cpu()


def iou_scores(confusion: torch.Tensor, class_names=CLASSES) -> dict:
    """Scores of a confusion matrix (:func:`confusion_matrix`) over ``class_names`` (background first):
    ``per_class`` {class: IoU, None for a class in neither truth nor prediction}, ``miou`` (the mean over the
    classes present in either) and ``miou_parts`` (the same without background); a mean over no class is 1.0."""
    true_positive = confusion.diag().double()
    union = confusion.sum(dim=0).double() + confusion.sum(dim=1).double() - true_positive
    per_class = [None if float(u) == 0 else float(t / u) for t, u in zip(true_positive, union)]
    present, parts = ([value for value in values if value is not None] for values in (per_class, per_class[1:]))
    return {"per_class": dict(zip(class_names, per_class)), "miou": sum(present) / len(present) if present else 1.0,
            "miou_parts": sum(parts) / len(parts) if parts else 1.0}


def mean_iou(predicted: torch.Tensor, truth: torch.Tensor, num_classes: int) -> dict:
    """Per-class IoU (a list, None for a class in neither) and their mean over the classes present in either."""
    scores = iou_scores(confusion_matrix(predicted, truth, num_classes), range(num_classes))
    return {"per_class": list(scores["per_class"].values()), "miou": scores["miou"]}
