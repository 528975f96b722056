"""The oracle multi-view dataset (the paper's Table 1 (b) on our world): each world car seen from K exact cameras.

Car ``c`` of a dataset with seed ``s`` is item ``c`` of ``ganverse3d world render --seed s`` (the same car
and scene: sky, ground, sun), photographed from K cameras instead of one. View ``k`` has the *nominal*
camera ``azimuth = k * 360 / K``, elevation 15 degrees (the middle of the world's 0-30), the world's
distance and field of view; each car's actual camera for view ``k`` is drawn around it from its own
generator seeded by ``(s, c, 1)``: azimuth within a quarter of the view spacing of the nominal one (so the
views of one car keep their order around it), elevation uniform in [0, 30], distance times [0.95, 1.05].

The folder is a multi-view dataset (:mod:`ganverse3d.dataset.format`) with:

* ``manifest.json`` ``views``: the nominal cameras (``bin``: the nearest 30-degree bin of the nominal
  azimuth); ``source``: ``{"kind": "world", "seed": s, "views_per_car": K, "cameras": description}``;
  ``filters``: ``{}`` (nothing is filtered, so ``kept`` = ``candidates`` = N * K), or with held-out body
  types ``{"hold_out": [...]}``: their cars are filtered (reason ``body_type``), so that a model trained on
  the rest can be tested on designs it never saw (car ``c`` stays item ``c`` of ``world render``).
* ``meta.jsonl``: ``camera`` is the exact camera of the image (not the nominal one), plus ``mesh``
  (``meshes/{content:06d}.glb``, the ground-truth textured car in object space, as ``world render`` writes
  it) and ``body_type``; no ``latent``.
* ``images/``, ``masks/`` (the exact silhouettes), ``meshes/``, ``sheet.png``.

Rendering the mesh with :func:`ganverse3d.render.render_mesh` from an image's ``camera`` reproduces its mask.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
from tqdm import tqdm

from ..errors import InputError, setting
from ..export import TexturedMesh, save_mesh
from ..files import save_png
from ..world.cars import BODY_TYPES, build_car
from ..world.dataset import MAX_RESOLUTION, MIN_RESOLUTION, batch_size_for
from ..world.scene import CAMERA_DISTANCE, CAMERA_FOV_Y, render_world, sample_item
from . import writing
from .format import FORMAT, FORMAT_VERSION, ViewSpec, item_stem

NOMINAL_ELEVATION = 15.0
ELEVATION_RANGE = (0.0, 30.0)
DISTANCE_JITTER = (0.95, 1.05)
# Azimuth jitter as a fraction of the spacing between views, each way.
AZIMUTH_JITTER = 0.25
MAX_VIEWS = 100
# Separates the camera draws from the item's own generator (item_rng uses (seed, index)).
_CAMERA_STREAM = 1


def nominal_views(views: int) -> list[ViewSpec]:
    return [ViewSpec(view_id=k, azimuth=k * 360.0 / views, elevation=NOMINAL_ELEVATION, distance=CAMERA_DISTANCE,
                     fov_y=CAMERA_FOV_Y, bin=round(k * 12 / views) % 12) for k in range(views)]


def view_cameras(seed: int, car_index: int, views: int) -> list[dict]:
    """The exact cameras (azimuth, elevation, distance, fov_y; degrees) of car ``car_index``'s views."""
    rng = np.random.default_rng(np.random.SeedSequence((seed, car_index, _CAMERA_STREAM)))
    spacing = 360.0 / views
    cameras = []
    for view in nominal_views(views):
        cameras.append({
            "azimuth": float((view.azimuth + rng.uniform(-AZIMUTH_JITTER, AZIMUTH_JITTER) * spacing) % 360.0),
            "elevation": float(rng.uniform(*ELEVATION_RANGE)),
            "distance": float(CAMERA_DISTANCE * rng.uniform(*DISTANCE_JITTER)),
            "fov_y": float(CAMERA_FOV_Y),
        })
    return cameras


def write_world_multiview(out, cars: int, views: int, resolution: int, seed: int = 0, progress: bool = True,
                          hold_out: tuple[str, ...] = ()) -> dict:
    """Write (or resume, or extend to more cars) the world multi-view dataset ``out``; returns its manifest.

    ``hold_out``: body types (of :data:`~ganverse3d.world.BODY_TYPES`) whose cars are left out.

    Raises :class:`InputError`, before anything is written, for a count below 1, views outside 1..MAX_VIEWS, a
    resolution outside the world's range, a negative seed, an unknown or every body type held out, or an
    output folder holding something else.
    """
    if cars < 1 or not 1 <= views <= MAX_VIEWS or seed < 0:
        raise InputError(f"{setting('cars')} must be at least 1, {setting('views')} from 1 to {MAX_VIEWS} and "
                         f"{setting('seed')} 0 or more.")
    if not MIN_RESOLUTION <= resolution <= MAX_RESOLUTION:
        raise InputError(f"{setting('resolution')} must be from {MIN_RESOLUTION} to {MAX_RESOLUTION} pixels, not "
                         f"{resolution}.")
    hold_out = tuple(sorted(set(hold_out)))
    if not set(hold_out) < set(BODY_TYPES):
        raise InputError(f"{setting('hold_out')} takes body types of {', '.join(BODY_TYPES)}, and not all of them.")
    out = Path(out)
    previous = writing.check_output_folder(out)
    settings = {"kind": "world", "seed": seed, "views_per_car": views, "resolution": resolution}
    if hold_out:  # only then: datasets written before the setting existed resume with their settings
        settings["hold_out"] = list(hold_out)
    writing.check_resumable(out, previous, settings, cars)
    # Whole cars per chunk, about one renderer batch of images (at least one car).
    chunk_contents = previous["chunk_contents"] if previous else max(1, batch_size_for(resolution) // views)
    manifest = {
        "format": FORMAT, "format_version": FORMAT_VERSION,
        "source": {"kind": "world", "seed": seed, "views_per_car": views,
                   "cameras": f"view k: azimuth k*360/{views} +- {AZIMUTH_JITTER} of the spacing, elevation uniform "
                              f"in {list(ELEVATION_RANGE)}, distance {CAMERA_DISTANCE} x {list(DISTANCE_JITTER)}, "
                              f"fov_y {CAMERA_FOV_Y}; per car from (seed, car, {_CAMERA_STREAM})"},
        "resolution": [resolution, resolution], "views": [view.to_json() for view in nominal_views(views)],
        "counts": {"contents": cars, "candidates": cars * views, "kept": None, "filtered": None},
        "filters": {"hold_out": list(hold_out)} if hold_out else {}, "seed": seed, "complete": False, "settings": settings, "chunk_contents": chunk_contents,
    }
    writing.begin(out, manifest)
    ranges = writing.chunk_ranges(cars, chunk_contents)
    todo = [(first, end) for first, end in ranges if writing.read_chunk(out, first, end) is None]
    done = sum(end - first for first, end in ranges if (first, end) not in todo)
    with tqdm(total=cars * views, initial=done * views, unit="img", desc="dataset world", disable=not progress) as bar:
        for first, end in todo:
            writing.remove_items(out, range(first, end))
            kept, filtered = _render_cars(out, seed, range(first, end), views, resolution, hold_out, bar)
            writing.write_chunk(out, first, end, kept, filtered)
    return writing.finish(out, manifest, ranges, (resolution, resolution))


def _render_cars(out: Path, seed: int, car_indices: range, views: int, resolution: int, hold_out: tuple[str, ...],
                 bar) -> tuple[list[dict], list[dict]]:
    """Render and write every view of ``car_indices`` and their meshes but those of held-out body types;
    returns their meta lines and the filtered records."""
    items, filtered = [], []  # items: (car index, view id, car, scene with the view's camera)
    for car_index in car_indices:
        car_spec, scene = sample_item(seed, car_index)
        if car_spec.body_type in hold_out:
            filtered += [{"content_id": car_index, "view_id": view_id, "reason": "body_type",
                          "body_type": car_spec.body_type} for view_id in range(views)]
            bar.update(views)
            continue
        car = build_car(car_spec)
        save_mesh(out / "meshes" / f"{car_index:06d}.glb",
                  TexturedMesh(car.verts, car.faces, car.face_uvs, car.texture, car.part_labels))
        for view_id, camera in enumerate(view_cameras(seed, car_index, views)):
            items.append((car_index, view_id, car, dataclasses.replace(
                scene, azimuth=camera["azimuth"], elevation=camera["elevation"], distance=camera["distance"],
                fov_y=camera["fov_y"])))
    kept = []
    batch = batch_size_for(resolution)
    for start in range(0, len(items), batch):
        part = items[start:start + batch]
        render = render_world([car for _, _, car, _ in part], [scene for _, _, _, scene in part], resolution)
        for (car_index, view_id, car, scene), image, mask in zip(part, render.images, render.masks):
            stem = item_stem(car_index, view_id)
            save_png(out / "images" / f"{stem}.png", image)
            save_png(out / "masks" / f"{stem}.png", (mask[0] > 0.5).numpy().astype(np.uint8) * 255)
            kept.append({"image": f"images/{stem}.png", "mask": f"masks/{stem}.png", "content_id": car_index,
                         "view_id": view_id, "mask_area": float((mask > 0.5).float().mean()),
                         "camera": {"azimuth": scene.azimuth, "elevation": scene.elevation,
                                    "distance": scene.distance, "fov_y": scene.fov_y},
                         "mesh": f"meshes/{car_index:06d}.glb", "body_type": car.body_type})
        bar.update(len(part))
    return kept, filtered
