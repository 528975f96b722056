"""A labelled dataset from the generator and a style interpreter (``ganverse3d parts synth``).

Layout of a dataset folder (ids zero-padded to six digits):

* ``images/000000.png`` - the generated image, 8-bit RGB (the generator's content size).
* ``parts/000000.png`` - its part labels by the ensemble's majority vote: an indexed PNG with the class palette,
  value = class index (0 = background, then the world's part labels: the encoding of a world dataset's
  ``parts/``, so the same readers serve both).
* ``meta.jsonl`` - one line per generated item, ordered by id: ``id``, ``uncertainty`` (the mean JS divergence
  of its 10 % most uncertain pixels), ``kept``.
* ``manifest.json`` - ``format`` ("ganverse3d-parts-dataset"), ``format_version``, ``generator``,
  ``interpreter`` (as given), ``seed``, ``truncation``, ``drop`` (the share of the most uncertain images
  dropped), ``classes``, ``palette``, ``counts`` (``generated``, ``kept``, ``filtered``), ``complete``.
* ``sheet.png`` - image | labels of the first kept items.

Item ``i`` comes from its own latent code (``dataset.synth.content_codes``: z seeded by ``(seed, i)``), so the
same settings give the same items. Each item's image, labels and record (``.meta/000000.json``) are written
together, all or none; a rerun skips the items that are complete, so an interrupted run resumes, and a larger
``count`` extends a dataset. When every item is made, the ``drop`` share with the highest uncertainty (ties:
the later id) is dropped - their files deleted, their lines in ``meta.jsonl`` kept with ``kept: false`` -
and ``complete`` turns true; a dropped item that an extension keeps is made again.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import torch

from .. import __version__, assets
from ..bundle import load_module
from ..errors import InputError, setting
from ..files import (check_output_folder_writable, is_dir, is_file, png_bytes, remove_temp_files, shown_path,
                     write_files, write_json, write_text)
from ..runs import progress_bar
from .annotations import check_sampling, label_png_bytes, sheet_png_bytes
from .interpreter import CLASSES, PALETTE, StyleInterpreter, pixel_features

FORMAT = "ganverse3d-parts-dataset"
FORMAT_VERSION = 1
DEFAULT_DROP = 0.1
SHEET_ITEMS = 16


def item_name(index: int) -> str:
    return f"{index:06d}"


def load_interpreter(path, device="cpu") -> StyleInterpreter:
    """A :class:`StyleInterpreter` bundle (``parts train``) or a shipped one by name (``world64``: the default
    generator's), InputError for anything else."""
    return load_module(assets.resolve("interpreter", path), expected_class=StyleInterpreter, device=device)


def synthesize_parts(out, generator, interpreter, count: int, seed: int = 0, truncation: float = 0.7,
                     drop: float = DEFAULT_DROP, batch: int = 16, device="auto", progress: bool = True) -> dict:
    """Write (or resume, or extend) the labelled dataset ``out`` (module docstring) from ``generator`` (a name or
    a file, as ``stylegan2.load.load_generator`` reads) and the interpreter bundle ``interpreter``; returns its
    manifest."""
    from ..dataset.synth import content_codes
    from ..stylegan2.load import load_generator

    out = Path(out)
    check_sampling(count, seed, truncation)
    if not 0 <= drop < 1:
        raise InputError(f"{setting('drop')} must be from 0 to below 1, not {drop}.")
    if batch < 1:
        raise InputError(f"{setting('batch')} must be at least 1, not {batch}.")
    settings = {"generator": str(generator), "interpreter": str(interpreter), "seed": seed,
                "truncation": truncation, "drop": drop}
    _check_output(out, settings, count)
    G = load_generator(generator, device=device)
    interpreter = load_interpreter(interpreter, device=next(G.parameters()).device)
    interpreter.check_generator(G)
    out.mkdir(parents=True, exist_ok=True)
    remove_temp_files(out, None)
    for folder in ("images", "parts", ".meta"):
        (out / folder).mkdir(exist_ok=True)
        remove_temp_files(out / folder)
    records = _read_records(out)
    write_json(out / "manifest.json", _manifest(settings, count, records, complete=False))
    device = next(G.parameters()).device

    def make(indices: list[int], bar) -> None:
        for start in range(0, len(indices), batch):
            chunk = indices[start:start + batch]
            ws = content_codes(G, seed, chunk, truncation).to(device)
            features, images = pixel_features(G, ws, return_image=True)
            labels, uncertainty = interpreter.label(features)
            for row, index in enumerate(chunk):
                name = item_name(index)
                record = {"id": index, "uncertainty": round(float(uncertainty[row]), 8)}
                write_files({out / ".meta" / f"{name}.json": (json.dumps(record) + "\n").encode(),
                             out / "images" / f"{name}.png": png_bytes(images[row].cpu()),
                             out / "parts" / f"{name}.png": label_png_bytes(labels[row].cpu().numpy())})
                records[index] = record
                bar.update(1)

    # Items with a record are made (those an earlier run dropped lack their files, unless this count keeps them).
    todo = [index for index in range(count) if index not in records]
    with progress_bar(count, "parts synth", count - len(todo), progress) as bar:
        make(todo, bar)
        kept = _kept(records, count, drop)
        missing = [index for index in sorted(kept) if not _has_files(out, index)]
        if missing:  # dropped before, kept now that the dataset is larger
            bar.reset(total=len(missing))
            make(missing, bar)
    for index in range(count):
        if index not in kept:
            for folder in ("images", "parts"):
                (out / folder / f"{item_name(index)}.png").unlink(missing_ok=True)
    lines = [json.dumps({**records[index], "kept": index in kept}) for index in range(count)]
    write_text(out / "meta.jsonl", "".join(line + "\n" for line in lines))
    shutil.rmtree(out / ".meta")
    shown = sorted(kept)[:SHEET_ITEMS]
    if shown:
        from ..files import read_image

        images = torch.stack([torch.from_numpy(read_image(out / "images" / f"{item_name(i)}.png")).permute(2, 0, 1)
                              for i in shown]).float() / 255
        labels = torch.stack([torch.from_numpy(np.asarray(_open_labels(out / "parts" / f"{item_name(i)}.png")))
                              for i in shown]).long()
        write_files({out / "sheet.png": sheet_png_bytes(images, labels)})
    manifest = _manifest(settings, count, records, complete=True, kept=len(kept))
    write_json(out / "manifest.json", manifest)
    return manifest


def _open_labels(path) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as image:
        return np.array(image)


def _kept(records: dict, count: int, drop: float) -> set[int]:
    """The items of ``range(count)`` that stay: all but the ``drop`` share with the highest uncertainty."""
    dropped = int(round(drop * count))
    order = sorted(range(count), key=lambda index: (records[index]["uncertainty"], index))
    return set(order[:count - dropped])


def _has_files(out: Path, index: int) -> bool:
    name = item_name(index)
    return is_file(out / "images" / f"{name}.png") and is_file(out / "parts" / f"{name}.png")


def _read_records(out: Path) -> dict[int, dict]:
    """The records of the items made so far: ``meta.jsonl`` of a finished run, then ``.meta/``."""
    records = {}
    if is_file(out / "meta.jsonl"):
        for line in (out / "meta.jsonl").read_text().splitlines():
            record = json.loads(line)
            records[int(record["id"])] = {"id": int(record["id"]), "uncertainty": float(record["uncertainty"])}
    for path in sorted((out / ".meta").glob("[0-9]*.json")):
        record = json.loads(path.read_text())
        records[int(record["id"])] = record
    return records


def _manifest(settings: dict, count: int, records: dict, complete: bool, kept: int | None = None) -> dict:
    counts = {"generated": count, "kept": kept, "filtered": None if kept is None else count - kept}
    return {"format": FORMAT, "format_version": FORMAT_VERSION, "ganverse3d_version": __version__, **settings,
            "classes": list(CLASSES), "palette": [list(colour) for colour in PALETTE], "counts": counts,
            "complete": complete}


def _check_output(out: Path, settings: dict, count: int) -> None:
    check_output_folder_writable(out)
    if not is_dir(out):
        return
    manifest_path = out / "manifest.json"
    if not is_file(manifest_path):
        if any(out.iterdir()):
            raise InputError(f"The output folder {shown_path(out)} is not empty and holds no parts dataset; give a "
                             f"new folder.")
        return
    try:
        previous = json.loads(manifest_path.read_text())
        if previous["format"] != FORMAT:
            raise KeyError("format")
        previous_count = previous["counts"]["generated"]
    except (OSError, ValueError, KeyError, TypeError):
        raise InputError(f"{shown_path(out)} holds something other than a parts dataset; give a new folder.") \
            from None
    changed = [name for name, value in settings.items() if previous.get(name) != value]
    if changed:
        raise InputError(f"{shown_path(out)} holds a parts dataset made with another {changed[0]} "
                         f"({previous.get(changed[0])}); resume it with the same settings or give a new folder.")
    if previous_count > count:
        raise InputError(f"{shown_path(out)} already holds {previous_count} items; set {setting('count')} to "
                         f"{previous_count} or more to resume it.")
