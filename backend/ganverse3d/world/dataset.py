"""World datasets on disk: ``ganverse3d world render`` writes one, resumably and reproducibly.

Layout of a dataset folder (ids are zero-padded to six digits):

* ``images/000000.png`` - the render, 8-bit RGB, ``resolution`` x ``resolution``.
* ``masks/000000.png`` - the car's silhouette, 8-bit grey, 255 = car, 0 = background.
* ``parts/000000.png`` - the part label map, 8-bit grey, value = label + 1 with labels indexing
  ``manifest["part_labels"]`` (body, window, wheel, headlight, taillight, plate), 0 = background.
* ``meshes/000000.glb`` - the ground-truth textured car in object space (+Y up, front +Z, in the unit
  sphere), with per-face part labels (see :mod:`ganverse3d.export`).
* ``meta.jsonl`` - one JSON object per item, ordered by id: ``id`` (int), ``image`` (its path),
  ``body_type``, ``params`` (metric shape parameters and ``scale``), ``ground_y``, ``camera``
  (``azimuth``, ``elevation``, ``distance``, ``fov_y``; degrees and object units), ``car`` and ``scene``
  (the full specs that rebuild the item).
* ``manifest.json`` - ``format_version``, ``generator`` ("world"), ``counts``, ``resolution``, ``seed``,
  ``part_labels``, ``body_types``, ``camera`` (the sampling distribution), ``complete``.
* ``sheet.png`` - a contact sheet of the first ``SHEET_ITEMS`` images, ``SHEET_COLUMNS`` per row.

Item ``i`` is drawn from its own generator seeded by ``(seed, i)`` and rendered independently of its batch,
so the same seed gives the same bytes, and rerunning the command skips the items that are complete and
renders only the rest. Every file is written atomically; the metadata of finished batches waits in
``.meta/`` until ``meta.jsonl`` is assembled at the end. A rerun first deletes the temporaries that an
interrupted write left (hidden files such as ``images/.000045.png.k2j3h4g5.png``).
"""

from __future__ import annotations

import json
import shutil
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from tqdm import tqdm

from .. import __version__
from ..errors import InputError, setting
from ..files import check_output_folder_writable, image_grid, remove_temp_files, save_png, write_json, write_text
from .cars import BODY_TYPES, PART_LABELS
from .scene import CAMERA_DISTANCE, CAMERA_FOV_Y, render_items

FORMAT_VERSION = 2  # 2: the lights split into headlight and taillight
MIN_RESOLUTION, MAX_RESOLUTION = 16, 2048
SHEET_ITEMS, SHEET_COLUMNS = 64, 8
# Pixels rendered per batch: bounds memory at large resolutions, amortises overhead at small ones.
_PIXELS_PER_BATCH = 2**20
_MAX_BATCH = 64
_ITEM_FOLDERS = {"images": ".png", "masks": ".png", "parts": ".png", "meshes": ".glb"}
_PENDING_META = ".meta"


def item_name(index: int) -> str:
    """File stem of item ``index``: six digits, zero-padded."""
    return f"{index:06d}"


def batch_size_for(resolution: int) -> int:
    """Items rendered together at ``resolution``² (64 at 128², 1 from 1024² up)."""
    return max(1, min(_MAX_BATCH, _PIXELS_PER_BATCH // (resolution * resolution)))


def write_world_dataset(out, count: int, resolution: int, seed: int, progress: bool = True) -> dict:
    """Render items ``0 .. count - 1`` of the world with ``seed`` into the folder ``out`` (layout in the
    module docstring), skipping items already complete there. Returns the manifest.

    Raises :class:`InputError`, before anything is created, for a count below 1, a resolution outside
    [MIN_RESOLUTION, MAX_RESOLUTION], a negative seed, an ``out`` that is a file or an unwritable place,
    or a folder that holds something other than this dataset (another seed or resolution, more items, damaged
    metadata).
    """
    out = Path(out)
    _check_arguments(out, count, resolution, seed)
    meta = _read_meta(out)
    if out.exists():
        remove_temp_files(out)
    manifest = _manifest(count, resolution, seed, complete=False)
    write_json(out / "manifest.json", manifest)

    todo = [index for index in range(count) if not (index in meta and _item_files_exist(out, index))]
    batch_size = batch_size_for(resolution)
    # One writer thread stores batch k (PNG and .glb encoding, mostly outside the GIL) while batch k + 1
    # renders; leaving the block waits for the last batch, so an interruption loses no finished files.
    with ThreadPoolExecutor(max_workers=1) as writer, \
            tqdm(total=count, initial=count - len(todo), unit="img", desc="world render", disable=not progress) as bar:
        writing = None
        for start in range(0, len(todo), batch_size):
            indices = todo[start:start + batch_size]
            rendered = render_items(seed, indices, resolution)
            if writing is not None:
                _collect(writing, meta, bar)
            writing = writer.submit(_write_batch, out, indices, *rendered)
        if writing is not None:
            _collect(writing, meta, bar)

    write_text(out / "meta.jsonl", "".join(json.dumps(meta[index], sort_keys=True) + "\n" for index in range(count)))
    shutil.rmtree(out / _PENDING_META, ignore_errors=True)
    _write_sheet(out, count)
    manifest = _manifest(count, resolution, seed, complete=True)
    write_json(out / "manifest.json", manifest)
    return manifest


def _check_arguments(out: Path, count: int, resolution: int, seed: int) -> None:
    if count < 1:
        raise InputError(f"{setting('count')} must be at least 1, not {count}.")
    if not MIN_RESOLUTION <= resolution <= MAX_RESOLUTION:
        raise InputError(f"{setting('resolution')} must be from {MIN_RESOLUTION} to {MAX_RESOLUTION} pixels, not "
                         f"{resolution}.")
    if seed < 0:
        raise InputError(f"{setting('seed')} must be 0 or more, not {seed}.")
    check_output_folder_writable(out)
    if not out.exists():
        return
    manifest_path = out / "manifest.json"
    if not manifest_path.is_file():
        if any(out.iterdir()):
            raise InputError(f"The output folder {out} is not empty and holds no world dataset; give a new folder.")
        return
    try:
        previous = json.loads(manifest_path.read_text())
        fields = (previous["generator"], previous["seed"], previous["resolution"], previous["counts"]["items"])
    except (OSError, ValueError, KeyError, TypeError):
        raise InputError(f"{manifest_path} is not a readable world manifest; give a new output folder.") from None
    generator, previous_seed, previous_resolution, previous_count = fields
    if generator == "world" and previous.get("part_labels") != list(PART_LABELS):
        raise InputError(f"{out} holds a dataset with the part labels of an older version "
                         f"({', '.join(map(str, previous.get('part_labels') or []))}); give a new output folder.")
    if generator != "world" or previous_seed != seed or previous_resolution != resolution:
        raise InputError(f"{out} holds a dataset made with other settings (generator {generator}, seed "
                         f"{previous_seed}, resolution {previous_resolution}); resume it with those or give a new folder.")
    if previous_count > count:
        raise InputError(f"{out} already holds {previous_count} items; set {setting('count')} to {previous_count} or "
                         f"more to resume it.")


def _manifest(count: int, resolution: int, seed: int, complete: bool) -> dict:
    return {
        "format_version": FORMAT_VERSION, "generator": "world", "ganverse3d_version": __version__,
        "counts": {"items": count}, "resolution": resolution, "seed": seed,
        "part_labels": list(PART_LABELS), "part_map_encoding": "label + 1, 0 = background",
        "body_types": list(BODY_TYPES),
        "camera": {"azimuth_deg": [0.0, 360.0], "elevation_deg": [0.0, 30.0],
                   "distance": [0.95 * CAMERA_DISTANCE, 1.05 * CAMERA_DISTANCE], "fov_y_deg": CAMERA_FOV_Y,
                   "sampling": "uniform and independent per item; the camera looks at the origin with +Y up"},
        "complete": complete,
    }


def _item_files_exist(out: Path, index: int) -> bool:
    return all((out / folder / f"{item_name(index)}{suffix}").is_file() for folder, suffix in _ITEM_FOLDERS.items())


def _read_meta(out: Path) -> dict[int, dict]:
    """Metadata of the items finished by earlier runs: meta.jsonl, then the batches pending in .meta/.
    InputError, before anything is written, when one of them is damaged."""
    meta = {}
    sources = [out / "meta.jsonl"] + sorted((out / _PENDING_META).glob("[!.]*.jsonl"))
    for source in sources:
        if not source.is_file():
            continue
        try:
            lines = source.read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError):
            raise InputError(f"Cannot read {source}; delete it and run again to render its items anew.") from None
        for number, line in enumerate(lines, start=1):
            try:
                record = json.loads(line)
                meta[int(record["id"])] = record
            except (ValueError, KeyError, TypeError, RecursionError):
                # Both files are written whole (atomically), so a bad line is damage, not an interruption;
                # without the file, the items it lists are rendered again.
                raise InputError(f"{source} is damaged at line {number}; delete it and run again to render its "
                                 f"items anew.") from None
    return meta


def _collect(writing: Future, meta: dict, bar: tqdm) -> None:
    """Wait for a batch's files; take its metadata and advance the progress bar."""
    written = writing.result()
    meta.update(written)
    bar.update(len(written))


def _write_batch(out: Path, indices: list[int], cars, scenes, render) -> dict[int, dict]:
    """Write the files of rendered items ``indices``, then their metadata to ``.meta/``; return it by index."""
    from ..export import TexturedMesh, save_mesh

    images = render.images.numpy()
    masks = (render.masks[:, 0] > 0.5).numpy().astype(np.uint8) * 255
    parts = (render.part_maps + 1).numpy().astype(np.uint8)
    records = {}
    for position, (index, car, scene) in enumerate(zip(indices, cars, scenes)):
        name = item_name(index)
        save_png(out / "images" / f"{name}.png", images[position])
        save_png(out / "masks" / f"{name}.png", masks[position])
        save_png(out / "parts" / f"{name}.png", parts[position])
        save_mesh(out / "meshes" / f"{name}.glb",
                  TexturedMesh(car.verts, car.faces, car.face_uvs, car.texture, car.part_labels))
        records[index] = {
            "id": index, "image": f"images/{name}.png", "body_type": car.body_type, "params": car.params,
            "ground_y": car.ground_y,
            "camera": {"azimuth": scene.azimuth, "elevation": scene.elevation, "distance": scene.distance,
                       "fov_y": scene.fov_y},
            "car": car.spec.to_json(), "scene": scene.to_json(),
        }
    write_text(out / _PENDING_META / f"{item_name(indices[0])}.jsonl",
               "".join(json.dumps(records[index], sort_keys=True) + "\n" for index in indices))
    return records


def _write_sheet(out: Path, count: int) -> None:
    images = [torch.from_numpy(np.array(Image.open(out / "images" / f"{item_name(index)}.png").convert("RGB")))
              for index in range(min(count, SHEET_ITEMS))]
    batch = torch.stack(images).permute(0, 3, 1, 2).float() / 255
    save_png(out / "sheet.png", image_grid(batch, SHEET_COLUMNS))
