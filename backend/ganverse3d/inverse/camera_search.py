"""Checking the network's camera estimate against the object's silhouette.

The camera head regresses the view from a 4 x 4 feature map, so its azimuth is off by a few degrees even
when the shape is right. :func:`search_camera` renders the predicted mesh (predicted in object space, so
independent of the estimate) from the estimate turned by a few small azimuth offsets and keeps the turn
whose hard silhouette best matches the object's mask (IoU); elevation, distance and field of view stay as
predicted. On 300 unseen world images (seed 998, the embedded model) it raised the input-view IoU with
the estimated camera from 0.893 to 0.918 and cut the median azimuth error from 3.7 to 2.1 degrees.

Two wider searches measured worse there: also trying the front/rear and left/right twins of the estimate
(azimuth -a, 180 - a, 180 + a) flipped correct rear views to the front, because at 64 px those silhouettes
differ by less than the network's shape error (mean azimuth error 9.7 -> 17 degrees); also turning the
elevation fitted silhouettes better but the angles worse.
"""

from __future__ import annotations

import torch

from ..geometry import Camera
from ..render import render_mesh
from .losses import mask_iou
from .model import Prediction

# Azimuth turns (degrees) tried around the estimate; the estimate itself comes first, so it wins every tie.
SEARCH_OFFSETS_DEG = (0.0, -5.0, 5.0, -10.0, 10.0)


@torch.no_grad()
def search_camera(prediction: Prediction, faces: torch.Tensor, face_uvs: torch.Tensor, masks: torch.Tensor,
                  offsets=SEARCH_OFFSETS_DEG) -> tuple[Camera, torch.Tensor]:
    """The estimate turned by the one of ``offsets`` under which the predicted mesh's silhouette best
    matches ``masks``.

    Args:
        prediction: the network's output for B images (its ``verts`` [B, V, 3], ``texture`` and ``camera``).
        faces: [F, 3] int64 and face_uvs: [F, 3, 2], the model's template topology.
        masks: [B, 1, R, R] object masks in [0, 1] of the images (the network's input resolution R).
        offsets: azimuth turns in degrees, the first one 0 (the estimate).

    Returns:
        (cameras, iou): the chosen :class:`Camera` batch of B (azimuth in [0, 360)) and its silhouette IoU [B].
    """
    batch, size = masks.shape[0], masks.shape[-1]
    estimate = prediction.camera.to(device=masks.device, dtype=masks.dtype)
    count = len(offsets)
    azimuths = torch.remainder(torch.stack([estimate.azimuth + offset for offset in offsets]), 360.0)  # [K, B]
    candidates = Camera(azimuths.reshape(-1), estimate.elevation.repeat(count), estimate.distance.repeat(count),
                        estimate.fov_y.repeat(count))
    rendered = render_mesh(prediction.verts.repeat(count, 1, 1), faces, face_uvs,
                           prediction.texture.repeat(count, 1, 1, 1), candidates, size, soft=False)
    iou = mask_iou(rendered.mask, masks.repeat(count, 1, 1, 1)).reshape(count, batch)
    best_iou, best = iou.max(dim=0)  # the first maximum: the estimate on a tie
    chosen = azimuths.gather(0, best[None])[0]
    return Camera(chosen, estimate.elevation, estimate.distance, estimate.fov_y), best_iou
