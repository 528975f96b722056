"""Which dimensions of W*_V the camera drives (paper Sec. 3.3: 144 of 2,048, "the highest correlation with the
annotated viewpoints").

A camera is three numbers and the annotation has a few dozen views, so mapping it onto all of W*_V asks a small
MLP to invent most of a code; the paper maps it onto the dimensions that follow the viewpoint and holds the
rest at a constant. :func:`view_correlation` scores each flattened W*_V dimension by how much of its variation
over the annotated views the azimuth explains (R^2 of a least-squares fit a sin(az) + b cos(az) + c);
:func:`view_dims_sweep` measures, for a few counts, how much of the viewpoint survives when only the top
dimensions keep their values and the rest are the views' mean: the world pose net reads each such image's
azimuth, compared with its reading of the image of the full view code.
"""

from __future__ import annotations

import torch

from ..stylegan2.networks import Generator
from ..stylegan2.views import mix_view_and_content
from ..world.features import WorldFeatureNet


def view_correlation(view_codes: torch.Tensor, azimuth_deg: torch.Tensor) -> torch.Tensor:
    """R^2 [D] of each column of ``view_codes`` [N, D] (N annotated views' flattened W*_V) explained by
    a sin(azimuth) + b cos(azimuth) + c (``azimuth_deg`` [N], degrees): 1 = follows the azimuth exactly,
    0 = unrelated; constant columns score 0."""
    assert view_codes.ndim == 2 and azimuth_deg.shape == (view_codes.shape[0],), (view_codes.shape, azimuth_deg.shape)
    radians = torch.deg2rad(azimuth_deg.double())
    design = torch.stack((radians.sin(), radians.cos(), torch.ones_like(radians)), dim=1)
    values = view_codes.double()
    solution = torch.linalg.lstsq(design, values).solution
    residual = (values - design @ solution).square().sum(dim=0)
    total = (values - values.mean(dim=0)).square().sum(dim=0)
    return torch.where(total > 1e-12, 1 - residual / total.clamp_min(1e-12), torch.zeros_like(total)).float()


def top_view_dims(scores: torch.Tensor, count: int) -> torch.Tensor:
    """The ``count`` highest-scoring dimensions, ascending (ties broken by index, so the choice is stable)."""
    order = sorted(range(len(scores)), key=lambda index: (-float(scores[index]), index))
    return torch.tensor(sorted(order[:count]), dtype=torch.long)


def _circular_error(a_deg: torch.Tensor, b_deg: torch.Tensor) -> torch.Tensor:
    return ((a_deg - b_deg + 180) % 360 - 180).abs()


@torch.no_grad()
def view_dims_sweep(G: Generator, view_ws: torch.Tensor, azimuth_deg: torch.Tensor, content_ws: torch.Tensor,
                    view_layers: int, pose_net: WorldFeatureNet, counts: list[int]) -> list[dict]:
    """For each count K: images of every content in every view with only the top-K W*_V dimensions of the view
    and the views' mean elsewhere; returns one row per K (0 = the mean view alone) with ``count``,
    ``azimuth_error`` (median degrees between the pose net's reading of those images and of the full codes'),
    ``within_30`` (the fraction within 30 degrees).

    Args:
        view_ws: [V, num_ws, w_dim] the annotated views' codes; azimuth_deg: [V] their annotated azimuths.
        content_ws: [C, num_ws, w_dim] content codes.
    """
    device = next(G.parameters()).device
    flat_views = view_ws[:, :view_layers].flatten(1)
    scores = view_correlation(flat_views.cpu(), azimuth_deg.cpu())
    mean = flat_views.mean(dim=0)
    pairs = [(v, c) for v in range(len(view_ws)) for c in range(len(content_ws))]
    views, contents = view_ws[[v for v, _ in pairs]], content_ws[[c for _, c in pairs]]

    def read_azimuths(flat_view_codes: torch.Tensor) -> torch.Tensor:
        ws_view = views.clone()
        ws_view[:, :view_layers] = flat_view_codes[[v for v, _ in pairs]].reshape(len(pairs), view_layers, -1)
        readings = []
        for start in range(0, len(pairs), 64):
            part = slice(start, start + 64)
            styles = mix_view_and_content(G, ws_view[part].to(device), contents[part].to(device), view_layers)
            images = ((G.synthesis.from_styles(styles) + 1) / 2).clamp(0, 1)
            _, azimuth_logits, _ = pose_net(images)
            readings.append(pose_net.azimuth_deg(azimuth_logits).cpu())
        return torch.cat(readings)

    reference = read_azimuths(flat_views)
    rows = []
    for count in counts:
        kept = top_view_dims(scores, count)
        codes = mean.expand_as(flat_views).clone()
        codes[:, kept] = flat_views[:, kept]
        error = _circular_error(read_azimuths(codes), reference)
        rows.append({"count": count, "azimuth_error": round(float(error.median()), 2),
                     "within_30": round(float((error <= 30).float().mean()), 4)})
    return rows
