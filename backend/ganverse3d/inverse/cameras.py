"""One learnable camera per annotated view, optimised jointly with the network (the paper's Sec. 3.2).

Every image generated from the same view code shares one camera. It starts at the view's annotation (an
azimuth bin, elevation 0, a fixed distance, for GAN data) and moves by learned deltas:

    azimuth   = initial azimuth   + degrees(azimuth_delta)          (deltas stored in radians, so that Adam's
    elevation = initial elevation + degrees(elevation_delta)         step size means the same for both angles)
    distance  = initial distance  * exp(log_distance_delta)

Gauge: turning every camera by the same azimuth, or scaling every distance by the same factor (with the
shapes), explains the images equally well, so those two common modes are unidentifiable. With more than
one view the azimuth and log-distance deltas are centred over the views, which keeps the object frame
where the annotation put it on average (the bins' errors are assumed to average out). The field of view is
not learned.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from ..geometry import Camera


def concat_cameras(cameras: list[Camera]) -> Camera:
    """Join camera batches into one, in order."""
    return Camera(*(torch.cat([getattr(c, name) for c in cameras]) for name in ("azimuth", "elevation", "distance", "fov_y")))


def viewing_angle_deg(first: Camera, second: Camera) -> torch.Tensor:
    """Angle [B] in degrees between the directions from the origin to two camera batches' centres."""
    a = torch.nn.functional.normalize(first.position(), dim=-1)
    b = torch.nn.functional.normalize(second.position(), dim=-1)
    # atan2 of |a x b| and a . b stays exact for tiny angles, where acos of a float32 cosine is off by ~0.02 deg.
    return torch.rad2deg(torch.atan2(torch.cross(a, b, dim=-1).norm(dim=-1), (a * b).sum(-1)))


class ViewCameras(nn.Module):
    """K cameras indexed by view id.

    Args:
        views: the dataset manifest's views: dicts (or :class:`~ganverse3d.dataset.ViewSpec`) with
            ``view_id``, ``azimuth``, ``elevation`` (degrees), ``distance``, ``fov_y`` (degrees).
        learnable: False keeps every camera at its initial value (the ablation without camera optimisation).
    """

    def __init__(self, views, learnable: bool = True):
        super().__init__()
        views = [view if isinstance(view, dict) else view.to_json() for view in views]
        if not views:
            raise ValueError("ViewCameras needs at least one view.")
        ids = torch.tensor([int(view["view_id"]) for view in views])
        lookup = torch.full((int(ids.max()) + 1,), -1, dtype=torch.int64)
        lookup[ids] = torch.arange(len(views))
        self.register_buffer("view_ids", ids)
        self.register_buffer("lookup", lookup)
        for name in ("azimuth", "elevation", "distance", "fov_y"):
            self.register_buffer(f"initial_{name}", torch.tensor([float(view[name]) for view in views]))
        self.azimuth_delta = nn.Parameter(torch.zeros(len(views)), requires_grad=learnable)
        self.elevation_delta = nn.Parameter(torch.zeros(len(views)), requires_grad=learnable)
        self.log_distance_delta = nn.Parameter(torch.zeros(len(views)), requires_grad=learnable)

    def __len__(self) -> int:
        return len(self.view_ids)

    def _deltas(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        azimuth, log_distance = self.azimuth_delta, self.log_distance_delta
        if len(self) > 1:
            azimuth, log_distance = azimuth - azimuth.mean(), log_distance - log_distance.mean()
        return azimuth, self.elevation_delta, log_distance

    def all(self) -> Camera:
        """The current cameras of all K views, in ``view_ids`` order (differentiable w.r.t. the deltas)."""
        azimuth, elevation, log_distance = self._deltas()
        return Camera(self.initial_azimuth + torch.rad2deg(azimuth), self.initial_elevation + torch.rad2deg(elevation),
                      self.initial_distance * torch.exp(log_distance), self.initial_fov_y.clone())

    def initial(self) -> Camera:
        return Camera(self.initial_azimuth.clone(), self.initial_elevation.clone(), self.initial_distance.clone(),
                      self.initial_fov_y.clone())

    def forward(self, view_ids: torch.Tensor) -> Camera:
        """Cameras of a batch of view ids [B] int64."""
        rows = self.lookup[view_ids]
        if bool((rows < 0).any()):
            raise KeyError(f"Unknown view ids {sorted(set(view_ids[rows < 0].tolist()))}.")
        return self.all()[rows]

    @torch.no_grad()
    def moved_degrees(self) -> torch.Tensor:
        """[K] how far each camera has turned from its initial camera, in degrees (angle between directions)."""
        return viewing_angle_deg(self.initial(), self.all())

    @torch.no_grad()
    def to_json(self) -> list[dict]:
        """The current cameras with their initial values and movement, one dict per view."""
        current, moved = self.all(), self.moved_degrees()
        return [{"view_id": int(view_id), "azimuth": round(float(current.azimuth[k]) % 360, 4),
                 "elevation": round(float(current.elevation[k]), 4), "distance": round(float(current.distance[k]), 5),
                 "fov_y": float(current.fov_y[k]), "initial_azimuth": float(self.initial_azimuth[k]),
                 "initial_elevation": float(self.initial_elevation[k]),
                 "initial_distance": float(self.initial_distance[k]), "moved_deg": round(float(moved[k]), 4)}
                for k, view_id in enumerate(self.view_ids.tolist())]


def within_reach(estimate: Camera, prior: Camera, reach_deg: float) -> tuple[Camera, torch.Tensor]:
    """``estimate`` where its azimuth (the short way round) and elevation both lie within ``reach_deg``
    degrees of ``prior``'s, else ``prior`` (so a front/rear flip is rendered in its view's camera, not
    rewarded for fitting its image), and which were kept ([B] bool). Differentiable w.r.t. the estimates
    kept, never w.r.t. the prior."""
    azimuth_offset = torch.remainder(estimate.azimuth - prior.azimuth + 180.0, 360.0) - 180.0
    kept = (azimuth_offset.abs() <= reach_deg) & ((estimate.elevation - prior.elevation).abs() <= reach_deg)
    return Camera(*(torch.where(kept, getattr(estimate, name), getattr(prior, name).detach())
                    for name in ("azimuth", "elevation", "distance", "fov_y"))), kept


def wrap_degrees(angle: torch.Tensor) -> torch.Tensor:
    """Angles in degrees -> their absolute value modulo 360, folded into [0, 180]."""
    wrapped = torch.remainder(angle, 360.0)
    return torch.minimum(wrapped, 360.0 - wrapped)

