"""Test-time fitting: the photo has the last word over the network's prediction (issue 18, section 1).

The network snaps every car to a shape its training data makes often. Starting from its prediction (and the
azimuth search of :mod:`.camera_search`), :func:`fit_to_photo` optimises, with Adam, through the project's
DIB-R renderer:

* the vertex offsets of the template sphere, kept exactly mirror-symmetric in x (the model's
  :func:`~.model.mirror_permutation`): cars are symmetric, and symmetry is what keeps the side the photo does
  not show honest while the seen side is fitted;
* a per-axis scale factor on the predicted scale (length : width : height proportions);
* the camera: azimuth, elevation and distance deltas (field of view fixed);
* the UV texture,

so that the soft silhouette matches the photo's mask (IoU loss) and the unlit render matches the photo inside
the mask (masked colour loss), while the Laplacian, flatten and move terms of :mod:`.losses` keep the mesh
smooth. The Laplacian and move terms act on the *change* from the network's offsets: they keep the fitted
deformation smooth and small without pulling the start back toward the template sphere, which is what they
pull toward in training. The flatten term acts on the fitted surface itself.

Tensors in, tensors out: nothing here reads or writes files.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..geometry import Camera
from ..geometry.mesh import mesh_edges, uniform_laplacian
from ..render import render_mesh
from .losses import colour_loss, flatten_loss, iou_loss, laplacian_loss, move_loss

# Keeps the texture logits finite where the network's texture is exactly 0 or 1.
_TEXTURE_EPS = 1e-4


@dataclass(frozen=True)
class FitSettings:
    """How :func:`fit_to_photo` fits (learning rates are Adam's, in the unit of each parameter).

    The learning rates of shape and proportions are small on purpose. One photo does not fix a shape: on
    held-out world cars (benchmarks/bm_generalisation.py), every freedom given to the mesh raised the input view's IoU
    and lowered the IoU of the normalised shape against the truth. At 100 steps, offsets at 2e-3 and scale at
    1e-2 took the input IoU from 0.70 to 0.94 and the shape's from 0.89 to 0.76; the camera and texture alone
    reached 0.81 with the shape untouched; these defaults reach 0.84 for a shape IoU of 0.885.

    Attributes:
        steps: Adam steps (0 returns the start unchanged).
        offset_lr: vertex offsets, object units of the unit template (before the per-axis scale).
        log_scale_lr: natural log of the per-axis scale factor (0.01 = about 1 % per step).
        azimuth_lr, elevation_lr: camera angles, degrees.
        log_distance_lr: natural log of the camera distance factor.
        texture_lr: texture logits (the texture is their sigmoid).
        iou_weight: the soft-silhouette IoU loss (1 - IoU).
        colour_weight: the masked mean |RGB| error, colours in [0, 1].
        laplacian_weight: smoothness of the change of the offsets (mean squared uniform Laplacian).
        flatten_weight: SoftRas flatten loss of the fitted surface (folds between faces).
        move_weight: size and evenness of the change of the offsets.
    """

    steps: int = 100
    offset_lr: float = 5e-4
    log_scale_lr: float = 2e-4
    azimuth_lr: float = 0.5
    elevation_lr: float = 0.5
    log_distance_lr: float = 5e-3
    texture_lr: float = 5e-2
    iou_weight: float = 3.0
    colour_weight: float = 5.0
    laplacian_weight: float = 5.0
    flatten_weight: float = 0.05
    move_weight: float = 2.5


@dataclass
class FitResult:
    """The fitted car, batch of B.

    Attributes:
        verts: [B, V, 3] object-space vertices, ``(template + offsets) * scale + translation``.
        offsets: [B, V, 3] fitted mirror-symmetric offsets of the template.
        scale: [B, 3] fitted per-axis scale.
        texture: [B, 3, Ht, Wt] fitted UV texture in [0, 1].
        camera: fitted :class:`Camera` batch (degrees, object units; azimuth in [0, 360)).
    """

    verts: torch.Tensor
    offsets: torch.Tensor
    scale: torch.Tensor
    texture: torch.Tensor
    camera: Camera


def symmetrise(offsets: torch.Tensor, mirror: torch.Tensor) -> torch.Tensor:
    """Offsets [B, V, 3] made exactly mirror-symmetric in x: the mean of each vertex's offset and its mirror
    vertex's offset with x negated (``mirror`` [V], see :func:`~.model.mirror_permutation`), as the network does."""
    mirrored = offsets[:, mirror] * offsets.new_tensor([-1.0, 1.0, 1.0])
    return (offsets + mirrored) / 2


def fit_to_photo(template_verts: torch.Tensor, faces: torch.Tensor, face_uvs: torch.Tensor, mirror: torch.Tensor,
                 offsets: torch.Tensor, scale: torch.Tensor, translation: torch.Tensor, texture: torch.Tensor,
                 camera: Camera, image: torch.Tensor, mask: torch.Tensor,
                 settings: FitSettings = FitSettings()) -> FitResult:
    """Fit the network's prediction of B cars to their framed photos (see the module docstring).

    Args:
        template_verts: [V, 3] the template sphere; faces [F, 3] int64; face_uvs [F, 3, 2]; mirror [V] the mirror
            vertex of each vertex (the model's ``template_verts``, ``faces``, ``face_uvs``, ``mirror``).
        offsets: [B, V, 3], scale: [B, 3], translation: [B, 3], texture: [B, 3, Ht, Wt] the prediction (its
            mesh is ``(template_verts + offsets) * scale + translation``); translation stays as predicted.
        camera: :class:`Camera` batch of B, the camera that sees the car as the framed photo shows it.
        image: [B, 3, R, R] framed photos in [0, 1]; mask: [B, 1, R, R] the car in them, in [0, 1].
        settings: steps, learning rates and weights.

    Returns:
        :class:`FitResult`, detached, on the inputs' device.
    """
    device, dtype = offsets.device, offsets.dtype
    camera = camera.to(device=device, dtype=dtype)
    start_offsets = symmetrise(offsets.detach(), mirror)
    edges, edge_faces = mesh_edges(faces)
    laplacian = uniform_laplacian(template_verts.shape[0], edges).to_dense().to(device=device, dtype=dtype)
    target = image.detach()
    target_mask = mask.detach()

    with torch.enable_grad():  # the facade calls this under no_grad
        offset_change = torch.zeros_like(start_offsets, requires_grad=True)
        log_scale = torch.zeros_like(scale, requires_grad=True)
        azimuth_delta = torch.zeros_like(camera.azimuth, requires_grad=True)
        elevation_delta = torch.zeros_like(camera.elevation, requires_grad=True)
        log_distance = torch.zeros_like(camera.distance, requires_grad=True)
        texture_logits = torch.logit(texture.detach().clamp(_TEXTURE_EPS, 1 - _TEXTURE_EPS)).requires_grad_(True)
        optimiser = torch.optim.Adam([
            {"params": [offset_change], "lr": settings.offset_lr},
            {"params": [log_scale], "lr": settings.log_scale_lr},
            {"params": [azimuth_delta], "lr": settings.azimuth_lr},
            {"params": [elevation_delta], "lr": settings.elevation_lr},
            {"params": [log_distance], "lr": settings.log_distance_lr},
            {"params": [texture_logits], "lr": settings.texture_lr},
        ])

        def current():
            change = symmetrise(offset_change, mirror)
            fitted_scale = scale.detach() * torch.exp(log_scale)
            verts = (template_verts + start_offsets + change) * fitted_scale[:, None] + translation.detach()[:, None]
            fitted_camera = Camera(camera.azimuth + azimuth_delta, camera.elevation + elevation_delta,
                                   camera.distance * torch.exp(log_distance), camera.fov_y)
            return change, fitted_scale, verts, fitted_camera, torch.sigmoid(texture_logits)

        for _ in range(settings.steps):
            change, _, verts, fitted_camera, fitted_texture = current()
            rendered = render_mesh(verts, faces, face_uvs, fitted_texture, fitted_camera, target.shape[-2:])
            loss = (settings.iou_weight * iou_loss(rendered.soft_mask, target_mask)
                    + settings.colour_weight * colour_loss(rendered.image, target, target_mask)
                    + settings.laplacian_weight * laplacian_loss(change, laplacian)
                    + settings.flatten_weight * flatten_loss(verts, faces, edges, edge_faces)
                    + settings.move_weight * move_loss(change))
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()

        with torch.no_grad():
            change, fitted_scale, verts, fitted_camera, fitted_texture = current()
    fitted_camera = Camera(torch.remainder(fitted_camera.azimuth, 360.0), fitted_camera.elevation,
                           fitted_camera.distance, fitted_camera.fov_y)
    return FitResult(verts=verts, offsets=start_offsets + change, scale=fitted_scale, texture=fitted_texture,
                     camera=fitted_camera)
