"""Multi-view dataset synthesis from a StyleGAN2 (paper Sec. 3.1): every content code in every chosen view.

For content ``c`` and chosen view ``v``, W* takes its first k entries (the view part) from candidate ``v``'s
code and the rest from content ``c``'s code; the image is cropped to the generator's content box and
segmented. The image is kept only if the segmenter finds exactly one car whose mask covers at least
``min_mask_area`` of the image (the paper's filter: StyleGAN sometimes draws several cars or a broken one).

Content ``c``'s code is ``G.mapping`` (with truncation) of a normal z drawn from its own generator seeded by
``(seed, c)``, so it does not depend on how many contents are made or in which batch. The folder follows
:mod:`ganverse3d.dataset.format`; writing, resuming and extending follow :mod:`ganverse3d.dataset.writing`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from .. import assets
from ..bundle import save_tensors
from ..devices import resolve_device
from ..errors import InputError, setting
from ..files import save_png
from ..stylegan2.load import load_generator
from ..stylegan2.networks import Generator
from . import writing
from .format import FORMAT, FORMAT_VERSION, item_stem
from .segment import Instances, Segmenter, file_sha256, load_segmenter
from .views import check_candidates_fit, load_candidates, read_annotation, render_view_content

DEFAULT_MIN_MASK_AREA = 0.1
DEFAULT_TRUNCATION = 0.7
DEFAULT_BATCH = 32


def content_codes(G: Generator, seed: int, content_ids, truncation: float) -> torch.Tensor:
    """The W codes [n, num_ws, w_dim] (CPU) of ``content_ids``: each from a z drawn by its own generator."""
    z = np.stack([np.random.default_rng(np.random.SeedSequence((seed, int(c)))).standard_normal(G.z_dim)
                  for c in content_ids]).astype(np.float32)
    device = next(G.parameters()).device
    with torch.no_grad():
        return G.mapping(torch.from_numpy(z).to(device), truncation_psi=truncation).cpu()


def apply_filter(instances: Instances, min_mask_area: float) -> tuple[str | None, float]:
    """The paper's rule for one image: (None, area) to keep its single car, else (reason, area) with reason
    "instances" (not exactly one car) or "mask_area" (the car covers less than ``min_mask_area``). ``area`` is
    the fraction of the image covered by the union of the instances."""
    area = float(instances.masks.any(dim=0).float().mean()) if len(instances) else 0.0
    if len(instances) != 1:
        return "instances", area
    return (None if area >= min_mask_area else "mask_area"), area


def synthesize(out, generator, annotation, contents: int, candidates=None, segmenter: str | Segmenter = "world",
               truncation: float = DEFAULT_TRUNCATION, seed: int = 0, min_mask_area: float = DEFAULT_MIN_MASK_AREA,
               batch: int = DEFAULT_BATCH, device="auto", progress: bool = True) -> dict:
    """Write (or resume, or extend) the multi-view dataset ``out``; returns its manifest.

    Args:
        out: the dataset folder: new, empty, or made by an earlier call with the same settings.
        generator: the StyleGAN2 weights file (any format ``load_generator`` reads) or a shipped generator's name.
        annotation: the ``views.toml`` naming the chosen views (see :mod:`ganverse3d.dataset.views`).
        contents: how many content codes (cars); every one is rendered in every chosen view.
        candidates: the candidates file; default: the one the annotation names, else
            ``candidates.safetensors`` next to it.
        segmenter: a spec for :func:`load_segmenter` or a :class:`Segmenter`.
        truncation: truncation psi of the content codes (the view codes keep the candidates' own).
        seed: content ``c`` draws its z from ``(seed, c)``.
        min_mask_area: the smallest kept mask, as a fraction of the image.
        batch: images per generator and segmenter batch (a resumed dataset keeps its first batching).
        device: where the generator and a segmenter given by spec run.

    Raises:
        InputError: before anything is written, for bad numbers, unreadable inputs, a candidates file of
            another generator, a bad annotation or an output folder that holds something else.
    """
    if contents < 1 or batch < 1 or seed < 0:
        raise InputError(f"{setting('contents')} and {setting('batch')} must be at least 1 and {setting('seed')} 0 or more.")
    if not 0 < truncation <= 1:
        raise InputError(f"{setting('truncation')} must lie in (0, 1], not {truncation:g}.")
    if not 0 <= min_mask_area < 1:
        raise InputError(f"{setting('min_mask_area')} must lie in [0, 1), not {min_mask_area:g}.")
    out = Path(out)
    previous = writing.check_output_folder(out)
    device = resolve_device(device)
    generator = assets.resolve("generator", generator)  # the manifest records a file and its hash, not a name
    G = load_generator(generator, device=device)
    if candidates is None:
        candidates = _default_candidates(annotation)
    view_codes = load_candidates(candidates)
    check_candidates_fit(view_codes, G, candidates)
    if view_codes.ws.shape[1:] != (G.num_ws, G.w_dim):
        raise InputError(f"{candidates} holds codes of shape {list(view_codes.ws.shape[1:])}, not this generator's "
                         f"[{G.num_ws}, {G.w_dim}].")
    views = read_annotation(annotation, len(view_codes.ws)).views
    if isinstance(segmenter, str):
        segmenter = load_segmenter(segmenter, device=device)

    segmenter_identity = segmenter.description()
    height, width = G.img_content_shape
    settings = {
        "generator_fingerprint": view_codes.generator_fingerprint, "view_layers": view_codes.view_layers,
        "candidates_sha256": file_sha256(candidates), "truncation": truncation, "seed": seed,
        "views": [view.to_json() for view in views], "min_mask_area": min_mask_area,
        # The weights file may move; its content (sha256) and thresholds decide the masks.
        "segmenter": {key: value for key, value in segmenter_identity.items() if key != "weights"},
    }
    writing.check_resumable(out, previous, settings, contents)
    # A resumed or extended dataset keeps its first run's batching, so that every image is computed in the
    # same batch as in one uninterrupted run (batch composition can change the last bit of a float).
    batch = previous["batch"] if previous else batch
    chunk_contents = previous["chunk_contents"] if previous else max(1, batch // len(views))
    manifest = {
        "format": FORMAT, "format_version": FORMAT_VERSION,
        "source": {"kind": "stylegan2", "generator": str(generator), "sha256": file_sha256(generator),
                   "view_layers": view_codes.view_layers, "truncation": truncation, "candidates": str(candidates),
                   "segmenter": segmenter_identity},
        "resolution": [height, width], "views": settings["views"],
        "counts": {"contents": contents, "candidates": contents * len(views), "kept": None, "filtered": None},
        "filters": {"instances": 1, "min_mask_area": min_mask_area}, "seed": seed, "complete": False,
        "settings": settings, "chunk_contents": chunk_contents, "batch": batch,
    }
    writing.begin(out, manifest)
    view_ids = [view.view_id for view in views]
    ws_views = view_codes.ws[view_ids]
    save_tensors(out / "view_codes.safetensors", {"ws": ws_views.contiguous(), "view_ids": torch.tensor(view_ids)})

    ranges = writing.chunk_ranges(contents, chunk_contents)
    todo = [(first, end) for first, end in ranges if writing.read_chunk(out, first, end) is None]
    done_images = sum(end - first for first, end in ranges if (first, end) not in todo) * len(views)
    cameras = {view.view_id: {"azimuth": view.azimuth, "elevation": view.elevation, "distance": view.distance,
                              "fov_y": view.fov_y} for view in views}
    with tqdm(total=contents * len(views), initial=done_images, unit="img", desc="dataset synth",
              disable=not progress) as bar:
        for first, end in todo:
            writing.remove_items(out, range(first, end))
            kept, filtered = _synthesize_chunk(out, G, segmenter, ws_views, view_ids, cameras, range(first, end),
                                               view_codes.view_layers, truncation, seed, min_mask_area, batch, bar)
            writing.write_chunk(out, first, end, kept, filtered)
    return writing.finish(out, manifest, ranges, (height, width))


def _default_candidates(annotation) -> Path:
    named = read_annotation(annotation, num_candidates=None).candidates
    return named if named is not None else Path(annotation).parent / "candidates.safetensors"


def _synthesize_chunk(out: Path, G: Generator, segmenter: Segmenter, ws_views: torch.Tensor, view_ids: list[int],
                      cameras: dict, content_ids: range, view_layers: int, truncation: float, seed: int,
                      min_mask_area: float, batch: int, bar) -> tuple[list[dict], list[dict]]:
    """Render, segment, filter and write the images of ``content_ids`` in every view; returns the chunk's
    (kept meta lines, filtered records)."""
    ws_contents = content_codes(G, seed, content_ids, truncation)
    pairs = [(index, view_index) for index in range(len(content_ids)) for view_index in range(len(view_ids))]
    kept, filtered, contents_with_images = [], [], set()
    for start in range(0, len(pairs), batch):
        part = pairs[start:start + batch]
        images = render_view_content(G, ws_views[[v for _, v in part]], ws_contents[[c for c, _ in part]], view_layers)
        for (index, view_index), image, instances in zip(part, images, segmenter.segment(images)):
            content_id, view_id = content_ids[index], view_ids[view_index]
            reason, area = apply_filter(instances, min_mask_area)
            if reason is not None:
                filtered.append({"content_id": content_id, "view_id": view_id, "reason": reason,
                                 "instances": len(instances), "mask_area": area})
                continue
            stem = item_stem(content_id, view_id)
            save_png(out / "images" / f"{stem}.png", image)
            save_png(out / "masks" / f"{stem}.png", instances.masks[0].numpy().astype(np.uint8) * 255)
            contents_with_images.add(index)
            kept.append({"image": f"images/{stem}.png", "mask": f"masks/{stem}.png", "content_id": content_id,
                         "view_id": view_id, "camera": cameras[view_id], "mask_area": area,
                         "latent": f"latents/{content_id:06d}.safetensors"})
        bar.update(len(part))
    for index in sorted(contents_with_images):
        _save_latent(out / "latents" / f"{content_ids[index]:06d}.safetensors", ws_contents[index])
    return kept, filtered


def _save_latent(path: Path, ws: torch.Tensor) -> None:
    save_tensors(path, {"ws": ws.contiguous()})
