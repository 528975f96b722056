"""The paper's Fig. 2 and Appendix B on any generator: view codes x content codes, and per-block images.

GANverse3D splits W* (``G.synthesis.styles``) into W*_V, the first ``view_layers`` entries, which fix the
viewpoint, and W*_STB, the rest, which fix the car (shape, texture, background). Fixing W*_V per column and
sampling W*_STB per row gives a multi-view sheet: each column one viewpoint, each row one car.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from ..devices import resolve_device
from ..errors import InputError, setting
from ..files import check_output_file, image_grid, save_png
from ..world.features import WorldFeatureNet
from .load import load_generator
from .networks import Generator

# The paper's official 512-px car model has 16 W* entries of which the first 4 hold the view.
PAPER_VIEW_LAYERS, PAPER_NUM_WS = 4, 16


def default_view_layers(num_ws: int) -> int:
    """The paper's 4-of-16 scaled to a model with ``num_ws`` W* entries, halves rounded up (at least 1).

    Rounding up matters at 64 px: 10 entries give 2.5, and on the default generator (397 kimg) the first 3
    entries fix the view of 36 of 96 candidates in every row (11 of 12 bins), the first 2 only of 20 (7 bins).
    """
    return max(1, math.floor(PAPER_VIEW_LAYERS * num_ws / PAPER_NUM_WS + 0.5))


def mix_view_and_content(G: Generator, ws_view: torch.Tensor, ws_content: torch.Tensor,
                         view_layers: int) -> list[torch.Tensor]:
    """W* taking its first ``view_layers`` entries from ``ws_view`` and the rest from ``ws_content``.

    Args:
        ws_view, ws_content: [B, num_ws, w_dim] (same B).
        view_layers: how many leading W* entries are the view, 1 .. num_ws - 1.
    Returns:
        ``num_ws`` style tensors, as ``G.synthesis.styles`` returns; feed to ``G.synthesis.from_styles``.
    """
    if not 1 <= view_layers < G.num_ws:
        raise ValueError(f"view_layers must be from 1 to {G.num_ws - 1}, not {view_layers}.")
    view = G.synthesis.styles(ws_view)[:view_layers]
    content = G.synthesis.styles(ws_content)[view_layers:]
    return view + content


def view_mixing_loss(G: Generator, reader: WorldFeatureNet, ws_view: torch.Tensor, ws_content: torch.Tensor,
                     view_layers: int) -> tuple[torch.Tensor, dict[str, float]]:
    """How far a view/content mix is from showing the view of one code and the car of the other.

    The image whose first ``view_layers`` W entries come from ``ws_view`` and the rest from ``ws_content``
    should have the azimuth and elevation that ``reader`` sees in ``ws_view``'s own image and the body type
    it sees in ``ws_content``'s: it asks a generator to keep the viewpoint in its first entries and the car
    out of them, which GANverse3D's multi-view data needs and plain style mixing does not ask for (on the
    default generator it fixed the first, not the second: docs/experiments.md, "View mixing"). All images use constant
    noise, so identical codes give a loss of exactly zero.

    Args:
        G: the generator; gradients flow into it through the mixed image only.
        reader: a world feature net (frozen; the targets are its readings of the unmixed images).
        ws_view, ws_content: [B, num_ws, w_dim] W codes.
        view_layers: the view's share of W, 1 .. num_ws - 1.
    Returns:
        The loss (scalar: azimuth-bin KL + body-type KL + elevation error in tens of degrees) and its parts
        as detached scalar tensors (``view_mixing_azimuth_kl``, ``view_mixing_body_kl``,
        ``view_mixing_elevation_deg``), read only when logged.
    """
    if not 1 <= view_layers < G.num_ws:
        raise ValueError(f"view_layers must be from 1 to {G.num_ws - 1}, not {view_layers}.")
    assert ws_view.shape == ws_content.shape and ws_view.shape[1:] == (G.num_ws, G.w_dim), (ws_view.shape,
                                                                                            ws_content.shape)
    with torch.no_grad():
        _, view_azimuth, view_elevation = reader(_to_unit(G.synthesis(ws_view, noise_mode="const")))
        content_body, _, _ = reader(_to_unit(G.synthesis(ws_content, noise_mode="const")))
    mixed = torch.cat((ws_view[:, :view_layers], ws_content[:, view_layers:]), dim=1)
    body, azimuth, elevation = reader(_to_unit(G.synthesis(mixed, noise_mode="const")))
    azimuth_kl = _kl(azimuth, view_azimuth)
    body_kl = _kl(body, content_body)
    elevation_deg = (elevation.float() - view_elevation.float()).abs().mean()
    loss = azimuth_kl + body_kl + elevation_deg / 10.0
    return loss, {"view_mixing_azimuth_kl": azimuth_kl.detach(), "view_mixing_body_kl": body_kl.detach(),
                  "view_mixing_elevation_deg": elevation_deg.detach()}


def _to_unit(images: torch.Tensor) -> torch.Tensor:
    return ((images.float() + 1) / 2).clamp(0, 1)


def _kl(logits: torch.Tensor, target_logits: torch.Tensor) -> torch.Tensor:
    """KL(target || prediction) of two batches of categorical logits [B, K], averaged over the batch."""
    return F.kl_div(logits.float().log_softmax(dim=1), target_logits.float().log_softmax(dim=1),
                    log_target=True, reduction="batchmean")


@torch.no_grad()
def view_content_sheet(G: Generator, num_views: int, num_contents: int, view_layers: int | None = None,
                       seed: int = 0, truncation_psi: float = 0.7) -> torch.Tensor:
    """Images [num_contents * num_views, C, H, W] in [0, 1], row-major: row = content code, column = view code.

    Each view and content code is ``G.mapping`` of its own normal z drawn from ``seed``; truncation keeps the
    samples typical, as the paper's data generation did.
    """
    view_layers = default_view_layers(G.num_ws) if view_layers is None else view_layers
    device = next(G.parameters()).device
    rng = torch.Generator().manual_seed(seed)
    z_views = torch.randn(num_views, G.z_dim, generator=rng).to(device)
    z_contents = torch.randn(num_contents, G.z_dim, generator=rng).to(device)
    ws_views = G.mapping(z_views, truncation_psi=truncation_psi)
    ws_contents = G.mapping(z_contents, truncation_psi=truncation_psi)
    rows = []
    for content in range(num_contents):
        styles = mix_view_and_content(G, ws_views, ws_contents[content:content + 1].expand_as(ws_views), view_layers)
        rows.append(G.synthesis.from_styles(styles, noise_mode="const"))
    return ((torch.cat(rows) + 1) / 2).clamp(0, 1)


@torch.no_grad()
def layer_sheet(G: Generator, num_samples: int, seed: int = 0, truncation_psi: float = 0.7) -> torch.Tensor:
    """Appendix B: per sample one row of each block's own toRGB output (min-max normalised per tile, nearest-
    upsampled to full size) followed by the final image. Returns [num_samples * (blocks + 1), C, R, R] in [0, 1]."""
    device = next(G.parameters()).device
    z = torch.randn(num_samples, G.z_dim, generator=torch.Generator().manual_seed(seed)).to(device)
    ws = G.mapping(z, truncation_psi=truncation_psi)
    blocks = G.synthesis.block_images(ws)
    final = ((G.synthesis(ws) + 1) / 2).clamp(0, 1)
    size = G.img_resolution
    tiles = []
    for block in blocks:
        low = block.amin(dim=(1, 2, 3), keepdim=True)
        high = block.amax(dim=(1, 2, 3), keepdim=True)
        normalised = (block - low) / (high - low).clamp_min(1e-8)
        tiles.append(torch.nn.functional.interpolate(normalised, size=(size, size), mode="nearest"))
    tiles.append(final)
    return torch.stack(tiles, dim=1).reshape(-1, *final.shape[1:])


def write_view_content_sheet(generator, out, num_views: int, num_contents: int, view_layers: int | None = None,
                             seed: int = 0, truncation: float = 0.7, device="auto") -> int:
    """Write :func:`view_content_sheet` of the generator at ``generator`` (any format :func:`load_generator`
    reads) to the PNG ``out``, cropped to the image content; returns the view split used."""
    G = _load_for_sheet(generator, out, device)
    view_layers = default_view_layers(G.num_ws) if view_layers is None else view_layers
    if not 1 <= view_layers < G.num_ws:
        raise InputError(f"{setting('view_layers')} must be from 1 to {G.num_ws - 1} for this generator, "
                         f"not {view_layers}.")
    sheet = view_content_sheet(G, num_views, num_contents, view_layers, seed=seed, truncation_psi=truncation)
    save_png(out, image_grid(G.crop_to_content(sheet), columns=num_views))
    return view_layers


def write_layer_sheet(generator, out, num_samples: int, seed: int = 0, truncation: float = 0.7,
                      device="auto") -> list[int]:
    """Write :func:`layer_sheet` of the generator at ``generator`` to the PNG ``out``; returns the block
    resolutions, in the order of the sheet's columns."""
    G = _load_for_sheet(generator, out, device)
    sheet = layer_sheet(G, num_samples, seed=seed, truncation_psi=truncation)
    save_png(out, image_grid(G.crop_to_content(sheet), columns=len(G.synthesis.block_resolutions) + 1))
    return list(G.synthesis.block_resolutions)


def _load_for_sheet(generator, out, device) -> Generator:
    check_output_file(out, (".png",))  # before the load: a bad output path costs nothing
    return load_generator(generator, device=resolve_device(device))
