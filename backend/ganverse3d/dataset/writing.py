"""Resumable writing of multi-view dataset folders, shared by GAN synthesis and the world oracle.

Both writers work in chunks of consecutive content ids. After a chunk's images, masks and side files are
written, its records go to ``.chunks/{first_content:06d}.json`` (atomically): ``{"contents": [first, end),
"kept": [meta lines], "filtered": [records]}``. A rerun skips every chunk whose record is complete, so a
killed run loses at most one chunk, and since chunk boundaries depend only on the recorded chunk size, a
resumed run batches every content exactly as an uninterrupted one would (same bytes). ``meta.jsonl``,
``filtered.jsonl``, ``sheet.png`` and the complete manifest are assembled from the records at the end; the
records stay, so that a later run with more contents extends the dataset. A rerun first deletes the
temporaries that an interrupted write left (hidden files, see :func:`~ganverse3d.files.remove_temp_files`), and
the manifest says ``"complete": false`` from the start of a run until :func:`finish` rewrites it.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from ..errors import InputError
from ..files import check_output_folder_writable, image_grid, remove_temp_files, save_png, write_json, write_text
from .format import FORMAT, item_stem

CHUNKS = ".chunks"
SHEET_CONTENTS = 8


def check_output_folder(out: Path) -> dict | None:
    """InputError unless ``out`` can become a dataset folder: a new or empty folder (None is returned) or
    one holding a multi-view dataset manifest (returned, for the caller to compare settings with)."""
    check_output_folder_writable(out)
    manifest_path = out / "manifest.json"
    if not out.exists() or not manifest_path.exists() and not any(out.iterdir()):
        return None
    try:
        manifest = json.loads(manifest_path.read_text())
    except (OSError, ValueError):
        raise InputError(f"The output folder {out} is not empty and holds no readable dataset manifest; give a new "
                         f"folder.") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise InputError(f"The output folder {out} holds something other than a multi-view dataset; give a new folder.")
    return manifest


def check_resumable(out: Path, previous: dict | None, settings: dict, contents: int) -> None:
    """InputError unless the dataset in ``out`` (its manifest ``previous``) was made with ``settings`` (the
    fields that decide its bytes) and no more than ``contents`` contents."""
    if previous is None:
        return
    differing = sorted(key for key, value in settings.items() if previous.get("settings", {}).get(key) != value)
    if differing:
        raise InputError(f"{out} holds a dataset made with other settings ({', '.join(differing)}); resume it with "
                         f"the same ones or give a new folder.")
    if previous["counts"]["contents"] > contents:
        raise InputError(f"{out} already holds {previous['counts']['contents']} contents; pass at least that many to "
                         f"resume it.")


def begin(out: Path, manifest: dict) -> None:
    """Start (or resume) writing the dataset ``out``, once its settings are checked: delete the temporaries of
    an interrupted earlier run and write ``manifest`` (with ``"complete": false``)."""
    if out.exists():
        remove_temp_files(out)
    write_json(out / "manifest.json", manifest)


def chunk_ranges(contents: int, chunk_contents: int) -> list[tuple[int, int]]:
    """[first, end) content ranges of ``chunk_contents`` each (the last one shorter) covering 0 .. contents - 1."""
    return [(first, min(first + chunk_contents, contents)) for first in range(0, contents, chunk_contents)]


def _chunk_path(out: Path, first: int) -> Path:
    return out / CHUNKS / f"{first:06d}.json"


def read_chunk(out: Path, first: int, end: int) -> dict | None:
    """The record of chunk [first, end), or None when it is missing or covers other contents (an earlier
    run's shorter last chunk, to be redone whole)."""
    path = _chunk_path(out, first)
    if not path.is_file():
        return None
    record = json.loads(path.read_text())
    return record if record["contents"] == [first, end] else None


def write_chunk(out: Path, first: int, end: int, kept: list[dict], filtered: list[dict]) -> None:
    write_json(_chunk_path(out, first), {"contents": [first, end], "kept": kept, "filtered": filtered})


def remove_items(out: Path, content_ids) -> None:
    """Delete the images and masks of ``content_ids`` left by an earlier, partial pass over their chunk."""
    for content_id in content_ids:
        for folder in ("images", "masks"):
            for path in (out / folder).glob(f"{content_id:06d}_*.png"):
                path.unlink()


def finish(out: Path, manifest: dict, ranges: list[tuple[int, int]], tile_shape: tuple[int, int]) -> dict:
    """Assemble ``meta.jsonl``, ``filtered.jsonl``, ``sheet.png`` and the complete manifest from the chunk
    records of ``ranges``; returns the manifest with its counts filled in."""
    kept, filtered = [], []
    for first, end in ranges:
        record = read_chunk(out, first, end)
        kept += record["kept"]
        filtered += record["filtered"]
    order = lambda line: (line["content_id"], line["view_id"])  # noqa: E731
    kept.sort(key=order)
    filtered.sort(key=order)
    write_text(out / "meta.jsonl", "".join(json.dumps(line, sort_keys=True) + "\n" for line in kept))
    write_text(out / "filtered.jsonl", "".join(json.dumps(line, sort_keys=True) + "\n" for line in filtered))
    reasons = {"instances": 0, "mask_area": 0}
    for line in filtered:
        reasons[line["reason"]] = reasons.get(line["reason"], 0) + 1
    manifest["counts"].update(kept=len(kept), filtered=reasons)
    _write_sheet(out, manifest, kept, tile_shape)
    manifest["complete"] = True
    write_json(out / "manifest.json", manifest)
    return manifest


def _write_sheet(out: Path, manifest: dict, kept: list[dict], tile_shape: tuple[int, int]) -> None:
    """``sheet.png``: the first SHEET_CONTENTS contents in rows, the views in columns; a filtered image is a
    grey tile."""
    view_ids = [view["view_id"] for view in manifest["views"]]
    kept_stems = {item_stem(line["content_id"], line["view_id"]) for line in kept}
    tiles = []
    for content_id in range(min(SHEET_CONTENTS, manifest["counts"]["contents"])):
        for view_id in view_ids:
            stem = item_stem(content_id, view_id)
            if stem in kept_stems:
                with Image.open(out / "images" / f"{stem}.png") as image:
                    tiles.append(torch.from_numpy(np.array(image.convert("RGB"))).permute(2, 0, 1).float() / 255)
            else:
                tiles.append(torch.full((3, *tile_shape), 0.5))
    save_png(out / "sheet.png", image_grid(torch.stack(tiles), columns=len(view_ids)))
