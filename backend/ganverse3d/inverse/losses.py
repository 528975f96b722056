"""The inverse-graphics losses of the paper's Eq. 1 and the multi-view sum of Eq. 2.

    L(I, S, T, V) = l_col L_col + l_percept L_percept + l_IoU L_IoU + l_sm L_sm + l_lap L_lap + l_mov L_mov

Image terms compare a render of the prediction (black where nothing is drawn, as DIB-R renders) with the
target image masked by its object mask; the IoU term compares the DIB-R soft silhouette with the mask. Shape
terms regularise the predicted mesh. Every function returns a scalar averaged over the batch, so the
weights do not depend on the batch size.

Beyond the paper, the camera head that estimates the view for users is trained with :func:`camera_loss`
against the camera the image was rendered with (the learned camera of its view, or the exact one).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn as nn

from ..errors import InputError

_EPS = 1e-6


@dataclass(frozen=True)
class LossWeights:
    """Weights of Eq. 1 (the paper's, Sec. 4.1) and of the camera head's loss (ours)."""

    iou: float = 3.0
    colour: float = 20.0
    percept: float = 0.5          # added from ``percept_start`` on (the paper trains colour-only for 3k steps)
    laplacian: float = 5.0
    flatten: float = 5.0
    move: float = 2.5
    camera: float = 1.0
    percept_start: int = 3000


def iou_loss(predicted_mask: torch.Tensor, target_mask: torch.Tensor) -> torch.Tensor:
    """kaolin's 1 - mean_b [ sum(M * Mh) / (sum(M + Mh - M * Mh) + eps) ] over masks [B, 1, H, W] in [0, 1]."""
    assert predicted_mask.shape == target_mask.shape and predicted_mask.dim() == 4, (predicted_mask.shape,
                                                                                     target_mask.shape)
    dims = (1, 2, 3)
    intersection = (predicted_mask * target_mask).sum(dims)
    union = (predicted_mask + target_mask - predicted_mask * target_mask).sum(dims)
    return 1 - (intersection / (union + _EPS)).mean()


def mask_iou(predicted_mask: torch.Tensor, target_mask: torch.Tensor, threshold: float = 0.5) -> torch.Tensor:
    """Per-image IoU [B] of binarised masks [B, 1, H, W] (the evaluation metric; 1 when both are empty)."""
    predicted, target = predicted_mask > threshold, target_mask > threshold
    intersection = (predicted & target).sum((1, 2, 3)).float()
    union = (predicted | target).sum((1, 2, 3)).float()
    return torch.where(union > 0, intersection / union.clamp_min(1), torch.ones_like(union))


def colour_loss(rendered: torch.Tensor, target: torch.Tensor, target_mask: torch.Tensor) -> torch.Tensor:
    """Masked L1 in RGB: mean |rendered - target * mask| over pixels and channels.

    rendered: [B, 3, H, W] render with a black background; target: [B, 3, H, W] in [0, 1]; target_mask:
    [B, 1, H, W]. Pixels where either silhouette is empty compare against black, so the colour term also
    pulls the rendered silhouette toward the object (through DIB-R's interpolation gradients).
    """
    assert rendered.shape == target.shape and target_mask.shape[1] == 1, (rendered.shape, target.shape)
    return (rendered - target * target_mask).abs().mean()


def laplacian_loss(offsets: torch.Tensor, laplacian: torch.Tensor) -> torch.Tensor:
    """Uniform-Laplacian smoothness of the deformation: mean over batch and vertices of ||L offsets||^2.

    offsets: [B, V, 3] displacements of the template's vertices; laplacian: [V, V] dense or sparse uniform
    Laplacian (L_ii = -1, L_ij = 1/deg i). Zero for the template itself and for any translation of it.
    """
    batch, num_verts, _ = offsets.shape
    flat = offsets.permute(1, 0, 2).reshape(num_verts, batch * 3)
    smoothed = (laplacian @ flat).reshape(num_verts, batch, 3)
    return smoothed.square().sum(-1).mean()


def flatten_loss(verts: torch.Tensor, faces: torch.Tensor, edges: torch.Tensor, edge_faces: torch.Tensor) -> torch.Tensor:
    """SoftRas's flatten loss: mean over edges of (cos theta + 1)^2, theta the angle between the two faces'
    "wings" (each face's component perpendicular to the shared edge): 0 across a flat edge, 1 across a
    right-angle fold, 4 where the faces fold onto each other.

    verts: [B, V, 3]; faces: [F, 3] int64; edges: [E, 2] int64; edge_faces: [E, 2] int64, the two faces of each
    edge (see :func:`ganverse3d.geometry.mesh_edges`).
    """
    # The vertex of each adjacent face that is not on the edge: a face's index sum minus the edge's two.
    opposite = faces[edge_faces].sum(-1) - edges.sum(-1, keepdim=True)  # [E, 2]
    v0, v1 = verts[:, edges[:, 0]], verts[:, edges[:, 1]]
    edge = v1 - v0
    edge_sq = edge.square().sum(-1, keepdim=True).clamp_min(_EPS * _EPS)

    def wing(apex: torch.Tensor) -> torch.Tensor:
        to_apex = apex - v0
        return to_apex - (to_apex * edge).sum(-1, keepdim=True) / edge_sq * edge

    wing_a, wing_b = wing(verts[:, opposite[:, 0]]), wing(verts[:, opposite[:, 1]])
    cosine = (wing_a * wing_b).sum(-1) / (wing_a.norm(dim=-1) * wing_b.norm(dim=-1)).clamp_min(_EPS)
    return (cosine + 1).square().mean()


def move_loss(offsets: torch.Tensor) -> torch.Tensor:
    """Keeps deformations small and uniform: mean ||d||^2 plus the variance of ||d|| over the vertices.

    offsets: [B, V, 3]. The first term pulls every vertex toward the template; the second spreads the
    deformation evenly instead of letting a few vertices travel far (the paper gives no formula).
    """
    lengths = offsets.norm(dim=-1)
    return offsets.square().sum(-1).mean() + lengths.var(dim=1, unbiased=False).mean()


def camera_loss(predicted_vector: torch.Tensor, target_vector: torch.Tensor) -> torch.Tensor:
    """Mean squared error between camera vectors [B, 4] (see :func:`ganverse3d.inverse.model.camera_to_vector`)."""
    assert predicted_vector.shape == target_vector.shape, (predicted_vector.shape, target_vector.shape)
    return (predicted_vector - target_vector).square().sum(-1).mean()


class PerceptualLoss(nn.Module):
    """LPIPS with the VGG-16 trunk, from local files only (nothing is downloaded).

    The ``lpips`` package ships its calibrated linear layers; the VGG-16 trunk comes from a torchvision
    ``vgg16`` state dict (``vgg16-397923af.pth``, or just its ``features.*`` entries) at ``vgg_weights``.
    Frozen; inputs are images [B, 3, H, W] in [0, 1].
    """

    def __init__(self, vgg_weights):
        super().__init__()
        import lpips

        path = Path(vgg_weights)
        if not path.is_file():
            raise InputError(f"The VGG-16 weights file {path} does not exist.")
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception:  # torch.load raises many types for files that are not state dicts
            raise InputError(f"{path} is not a PyTorch state dict of torchvision's VGG-16.") from None
        if not isinstance(state, dict):
            raise InputError(f"{path} is not a PyTorch state dict of torchvision's VGG-16.")
        with warnings.catch_warnings():
            # lpips builds its trunk with torchvision's deprecated `pretrained=` argument; harmless here.
            warnings.simplefilter("ignore", UserWarning)
            self.lpips = lpips.LPIPS(net="vgg", pretrained=True, pnet_rand=True, verbose=False)
        trunk = {}
        for slice_name, block in self.lpips.net.named_children():
            for layer_name, layer in block.named_children():
                for tensor_name in dict(layer.named_parameters()):
                    key = f"features.{layer_name}.{tensor_name}"
                    if key not in state:
                        raise InputError(f"{path} lacks {key}; give torchvision's VGG-16 state dict.")
                    trunk[f"{slice_name}.{layer_name}.{tensor_name}"] = state[key]
        try:
            self.lpips.net.load_state_dict(trunk)
        except RuntimeError:
            raise InputError(f"{path} does not hold VGG-16 weights of the right shapes.") from None
        self.lpips.eval().requires_grad_(False)

    def forward(self, rendered: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Mean LPIPS distance between image batches [B, 3, H, W] in [0, 1] (float32, also under autocast)."""
        return self.lpips(rendered * 2 - 1, target * 2 - 1).float().mean()


@dataclass
class ViewTerms:
    """The image terms of Eq. 1 for one rendered view (scalars)."""

    iou: torch.Tensor
    colour: torch.Tensor
    percept: torch.Tensor | None


def view_terms(rendered_image: torch.Tensor, soft_mask: torch.Tensor, target_image: torch.Tensor,
               target_mask: torch.Tensor, perceptual: PerceptualLoss | None) -> ViewTerms:
    """IoU, masked colour and (optionally) perceptual terms of one view; shapes as the functions above."""
    percept = perceptual(rendered_image, target_image * target_mask) if perceptual is not None else None
    return ViewTerms(iou=iou_loss(soft_mask, target_mask), colour=colour_loss(rendered_image, target_image, target_mask),
                     percept=percept)


def total_loss(views: list[ViewTerms], shape_terms: dict[str, torch.Tensor], camera_term: torch.Tensor,
               weights: LossWeights) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Eq. 2: the sum over the rendered views (the input view i and the other view j) of Eq. 1, each with
    the shape regularisers of the one predicted shape, plus the camera head's term.

    shape_terms: {"laplacian", "flatten", "move"} scalars. A view's perceptual term counts when it was
    computed (the caller passes no perceptual loss before ``weights.percept_start``). Returns
    (loss, {name: detached scalar tensor} for logging, read when a line is written rather than every step).
    """
    loss = weights.camera * camera_term
    stats = {"camera": camera_term.detach()}
    for name, value in shape_terms.items():
        loss = loss + len(views) * getattr(weights, name) * value
        stats[name] = value.detach()
    for index, terms in enumerate(views):
        loss = loss + weights.iou * terms.iou + weights.colour * terms.colour
        stats[f"iou_loss_view{index}"] = terms.iou.detach()
        stats[f"colour_view{index}"] = terms.colour.detach()
        if terms.percept is not None:
            loss = loss + weights.percept * terms.percept
            stats[f"percept_view{index}"] = terms.percept.detach()
    stats["loss"] = loss.detach()
    return loss, stats
