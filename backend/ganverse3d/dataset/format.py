"""The multi-view dataset format: what synthesis writes and what the inverse-graphics trainer reads.

A dataset is a folder:

* ``manifest.json``::

      {"format": "ganverse3d-multiview", "format_version": 1,
       "source": {...},            # what made it: {"kind": "stylegan2", "generator": path, "sha256": ...,
                                   #   "view_layers": k, "truncation": psi} or {"kind": "world", "seed": s}
       "resolution": [H, W],
       "views": [{"view_id": 0, "azimuth": 30.0, "elevation": 0.0, "distance": 2.5, "fov_y": 30.0,
                  "bin": 1}, ...],  # the initial camera of each view (bin = 30-degree azimuth bin or null)
       "counts": {"contents": N, "candidates": N * V, "kept": K,
                  "filtered": {"instances": a, "mask_area": b}},
       "filters": {"instances": 1, "min_mask_area": 0.1},
       "seed": s, "complete": true}

* ``images/{content:06d}_{view:02d}.png`` 8-bit RGB; ``masks/{content:06d}_{view:02d}.png`` 8-bit grey,
  255 = object.
* ``meta.jsonl``, one line per kept image, ordered by (content_id, view_id)::

      {"image": "images/000012_03.png", "mask": "masks/000012_03.png", "content_id": 12, "view_id": 3,
       "camera": {"azimuth": 90.0, "elevation": 0.0, "distance": 2.5, "fov_y": 30.0},
       "mask_area": 0.31, "latent": "latents/000012.safetensors"}

  ``camera`` is the *initial* camera of the view (the annotated bin for GAN data, the exact camera for world
  data); ``latent`` (optional) holds the content's codes; world-made datasets add ``"mesh"``
  (``meshes/{content:06d}.glb``, the ground truth, object space) and ``"body_type"``.

Cameras follow docs/ARCHITECTURE.md (degrees, object space +Y up, front +Z).

What the writers (:mod:`.synth` for GAN data, :mod:`.world_multiview` for the world oracle) add:

* ``manifest.json`` also holds ``"settings"`` (the settings that decide the files' bytes: a rerun must
  match them to resume or extend the dataset), ``"chunk_contents"`` (contents per resumable chunk, see
  :mod:`.writing`) and, for GAN data, ``"batch"`` (images per generator batch); a resumed run keeps both.
  ``counts`` are null until ``complete``. GAN data's ``source`` adds ``"candidates"`` (the view candidates
  file) and ``"segmenter"`` (its kind, weights, sha256 and thresholds); world data's ``source`` is
  ``{"kind": "world", "seed", "views_per_car", "cameras"}``, its ``views`` are the nominal cameras of view
  ids 0..K-1 (each image's exact camera is in meta.jsonl) and its ``filters`` are ``{}`` (nothing is
  filtered).
* ``latents/{content:06d}.safetensors`` (GAN data): tensor ``ws`` [num_ws, w_dim] float32, the content's W
  code after truncation; with ``view_codes.safetensors`` (tensors ``ws`` [V, num_ws, w_dim], the chosen
  views' candidate codes, and ``view_ids`` [V] int64) an image is regenerated exactly: W* takes its first
  ``source.view_layers`` entries from the view's code and the rest from the content's.
* ``filtered.jsonl``: one line per image the filter dropped, ordered by (content_id, view_id):
  ``{"content_id", "view_id", "reason": "instances" | "mask_area", "instances": n, "mask_area": a}``.
* ``sheet.png``: the first 8 contents (rows) in every view (columns); filtered images are grey tiles.
* ``.chunks/``: per-chunk records that make writing resumable; readers ignore them.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from pathlib import Path

import torch

from ..errors import InputError
from ..files import check_dataset_complete, read_image, shown_path
from ..geometry import Camera

FORMAT = "ganverse3d-multiview"
FORMAT_VERSION = 1


def item_stem(content_id: int, view_id: int) -> str:
    return f"{content_id:06d}_{view_id:02d}"


@dataclass(frozen=True)
class ViewSpec:
    """One annotated view: its id, initial camera (degrees / object units) and azimuth bin (or None)."""

    view_id: int
    azimuth: float
    elevation: float
    distance: float
    fov_y: float
    bin: int | None = None

    def to_json(self) -> dict:
        return {"view_id": self.view_id, "azimuth": self.azimuth, "elevation": self.elevation,
                "distance": self.distance, "fov_y": self.fov_y, "bin": self.bin}


def read_manifest(folder) -> dict:
    """The dataset's manifest, checked; InputError with one sentence if the folder is not a dataset."""
    path = Path(folder) / "manifest.json"
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (FileNotFoundError, NotADirectoryError):
        raise InputError(f"{shown_path(folder)} is not a multi-view dataset (no manifest.json).") from None
    except OSError as error:  # not damage: a name too long, a folder it may not read
        raise InputError(f"Cannot read {shown_path(path)}: {error.strerror or type(error).__name__}.") from None
    except (ValueError, RecursionError):  # not JSON, not UTF-8
        raise InputError(f"{shown_path(path)} is damaged: it is not readable JSON.") from None
    if not isinstance(manifest, dict):
        raise InputError(f"{shown_path(path)} is damaged: it holds a JSON {type(manifest).__name__}, not a manifest.")
    if manifest.get("format") != FORMAT:
        raise InputError(f"{shown_path(folder)} is not a multi-view dataset (manifest format "
                         f"{manifest.get('format')!r}).")
    if manifest.get("format_version") != FORMAT_VERSION:
        raise InputError(f"{shown_path(folder)} has dataset format version {manifest.get('format_version')}; "
                         f"this ganverse3d reads version {FORMAT_VERSION}.")
    return manifest


def read_meta(folder) -> list[dict]:
    path = Path(folder) / "meta.jsonl"
    try:
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    except FileNotFoundError:
        raise InputError(f"{folder} has no meta.jsonl; is the dataset complete?") from None
    except json.JSONDecodeError:
        raise InputError(f"{path} is damaged.") from None


def _load_rgb(path: Path) -> torch.Tensor:
    return torch.from_numpy(read_image(path, "RGB")).permute(2, 0, 1).float() / 255


def _load_mask(path: Path) -> torch.Tensor:
    return torch.from_numpy(read_image(path, "L")).float()[None] / 255


class MultiViewDataset(torch.utils.data.Dataset):
    """Images of a multi-view dataset folder, with views of the same content grouped.

    ``dataset[i]`` is a dict: ``image`` [3, H, W] float in [0, 1], ``mask`` [1, H, W] in [0, 1],
    ``content_id`` int, ``view_id`` int, ``camera`` [4] float (azimuth, elevation, distance, fov_y; the
    view's initial camera), ``index`` int.

    Args:
        folder: the dataset folder.
        contents: keep only these content ids (e.g. a train / held-out split); None keeps all.
        cache: keep decoded images in memory after the first read (small datasets, repeated epochs).
    """

    def __init__(self, folder, contents=None, cache: bool = True):
        self.folder = Path(folder)
        self.manifest = read_manifest(self.folder)
        check_dataset_complete(self.folder)  # an incomplete dataset's meta.jsonl is missing or stale
        meta = read_meta(self.folder)
        if contents is not None:
            keep = set(int(c) for c in contents)
            meta = [line for line in meta if line["content_id"] in keep]
        if not meta:
            raise InputError(f"{folder} holds no images" + (" for the requested contents." if contents else "."))
        self.meta = meta
        self.views = [ViewSpec(**view) for view in self.manifest["views"]]
        self.by_content: dict[int, list[int]] = {}
        for index, line in enumerate(meta):
            self.by_content.setdefault(line["content_id"], []).append(index)
        self._cache: dict[int, tuple[torch.Tensor, torch.Tensor]] | None = {} if cache else None

    def __len__(self) -> int:
        return len(self.meta)

    @property
    def content_ids(self) -> list[int]:
        return sorted(self.by_content)

    def _pixels(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        if self._cache is not None and index in self._cache:
            return self._cache[index]
        line = self.meta[index]
        pixels = (_load_rgb(self.folder / line["image"]), _load_mask(self.folder / line["mask"]))
        if self._cache is not None:
            self._cache[index] = pixels
        return pixels

    def __getitem__(self, index: int) -> dict:
        line = self.meta[index]
        image, mask = self._pixels(index)
        camera = line["camera"]
        return {"image": image, "mask": mask, "content_id": line["content_id"], "view_id": line["view_id"],
                "camera": torch.tensor([camera["azimuth"], camera["elevation"], camera["distance"], camera["fov_y"]]),
                "index": index}

    def other_view(self, index: int, rng: random.Random) -> int:
        """The index of a random *other* view of the same content (itself when the content has one view)."""
        siblings = self.by_content[self.meta[index]["content_id"]]
        if len(siblings) == 1:
            return index
        choice = rng.randrange(len(siblings) - 1)
        own = siblings.index(index)
        return siblings[choice + (choice >= own)]


def cameras_from_batch(camera: torch.Tensor) -> Camera:
    """A collated ``camera`` batch [B, 4] (azimuth, elevation, distance, fov_y) -> :class:`Camera`."""
    return Camera(*camera.unbind(-1))
