"""How well reconstructions follow the photo, on cars with ground truth, each number beside what a trivial answer
gets (issue 18, section 3).

    python benchmarks/bm_generalisation.py [--cars 8] [--views 4] [--models oracle,gan]
        [--held-out-model data/inverse-without-pickup.safetensors] [--sets world,pickup,beyond]
        [--figure ../docs/before_after.png]

Test sets (world cars rendered at 256 px from K cameras around each, as ``dataset world`` does; seed 999, which no
training set uses):

* ``world``: cars of every body type, as the models were trained on;
* ``pickup``: pickups only. With ``--held-out-model`` (``scripts/make_inverse_oracle_held_out.sh``: the oracle
  trained on a world without pickups) this is a design the model never saw; the embedded models saw pickups;
* ``beyond``: cars whose length, width and height all lie outside every body type's range (3.2-3.6 or
  5.9-6.4 m long, 1.5-1.6 or 2.05-2.15 m wide, 1.0-1.1 or 2.0-2.2 m high): proportions the world never makes.

Configurations (rows): the network alone (its own camera), + the azimuth search (``--quality fast``, the
default), + 50 fitting steps, and the presets ``balanced`` and ``best`` (50 and 200 fitting steps, and the
photo baked into the texture). Metrics, means over every image (K - 1 other views each for the cross-view ones):

* input IoU: the reconstruction's silhouette from its own camera against the car's mask in the framed crop;
* cross-view IoU: the prediction placed like the true mesh (normalised, then moved and scaled to the true
  mesh's bounding-box centre and radius: the scale of a car in one photo is unknowable, its shape and
  orientation are what is measured), rendered from another view's true camera, against that view's mask;
* cross-view |RGB|: the same render (unlit texture) against that view's photo over the pixels both cover, mean
  absolute error of 255;
* Chamfer: the normalised predicted and true meshes (2,000 surface points each), as ``inverse evaluate``;
* seconds: median warm ``reconstruct`` call, CPU.

Baselines: **constant car**, the one of five fixed world cars (one per body type, seed 0, none in a test set)
whose cross-view IoU on the set is best, given for every photo (placed like the first row's prediction in the
input view); **flat colour**, the fast row's mesh painted the input's mean colour inside its mask. Prints a
table per set and model and writes benchmarks/results/bm_generalisation.json.

``--figure`` also draws, for ``docs/example_car.png``, the first car of each test set and the second pickup (the
held-out model's reconstruction on pickups), rows of: the input | before (``--quality fast``) | after (``--quality best``), each
from the input's camera turned by 0, 90, 180 and 270 degrees | the true car's photos from those cameras (for
the test sets; the reconstructions are placed like the true car there, as the cross-view metrics do).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import time
from contextlib import contextmanager, nullcontext
from pathlib import Path

import numpy as np
import torch

from common import machine, write_results

RESOLUTION = 256
SEED = 999
SURFACE_POINTS = 2000
# Proportions outside every body type's range (metres): (below all, above all) per parameter.
BEYOND = {"length": ((3.2, 3.6), (5.9, 6.4)), "width": ((1.5, 1.6), (2.05, 2.15)), "height": ((1.0, 1.1), (2.0, 2.2))}
CONFIGURATIONS = {
    "network": {"quality": "fast"},  # with the azimuth search switched off, see _no_search
    "+ azimuth search (fast)": {"quality": "fast"},
    "+ fitting 50": {"fit_steps": 50},
    "balanced (fit 50, texture 1024)": {"quality": "balanced"},
    "best (fit 200, texture 2048)": {"quality": "best"},
}


@dataclasses.dataclass
class View:
    """One rendered view of a test car: the photo and mask (numpy, 256 px), the camera and the true mesh."""

    car: int
    image: np.ndarray
    mask: np.ndarray
    camera: dict
    verts: torch.Tensor
    faces: torch.Tensor


def _beyond_spec(rng: np.random.Generator):
    from ganverse3d.world import BODY_TYPES, sample_car_spec

    body_type = BODY_TYPES[int(rng.integers(len(BODY_TYPES)))]
    fixed = {name: float(rng.uniform(*ranges[int(rng.integers(2))])) for name, ranges in BEYOND.items()}
    return sample_car_spec(rng, body_type, fixed=fixed)


def make_set(kind: str, cars: int, views: int) -> list[View]:
    """The ``views`` views of ``cars`` test cars of set ``kind`` (see the module docstring)."""
    from ganverse3d.dataset.world_multiview import view_cameras
    from ganverse3d.world import build_car
    from ganverse3d.world.scene import item_rng, render_world, sample_item, sample_scene_spec

    chosen, index = [], 0
    while len(chosen) < cars:
        spec, scene = sample_item(SEED, index)
        if kind == "beyond":
            rng = item_rng(SEED, index)
            spec, scene = _beyond_spec(rng), sample_scene_spec(rng)
        if kind != "pickup" or spec.body_type == "pickup":
            chosen.append((index, build_car(spec), scene))
        index += 1
    result = []
    for index, car, scene in chosen:
        cameras = view_cameras(SEED, index, views)
        scenes = [dataclasses.replace(scene, **camera) for camera in cameras]
        render = render_world([car] * views, scenes, RESOLUTION)
        for image, mask, camera in zip(render.images, render.masks, cameras):
            result.append(View(index, (image.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8),
                               (mask[0] > 0.5).numpy(), camera, torch.as_tensor(car.verts, dtype=torch.float32),
                               torch.as_tensor(car.faces, dtype=torch.int64)))
    return result


@contextmanager
def _no_search():
    """``reconstruct`` with the network's own camera: the azimuth search returns the estimate unchanged."""
    import ganverse3d.inverse.camera_search as camera_search

    real = camera_search.search_camera
    camera_search.search_camera = lambda prediction, *args, **kwargs: (prediction.camera, None)
    try:
        yield
    finally:
        camera_search.search_camera = real


def _render(verts, faces, face_uvs, texture, camera, size):
    from ganverse3d.render import render_mesh

    out = render_mesh(verts[None], faces, face_uvs, texture[None], camera, size, soft=False)
    return out.image[0], out.mask[0, 0] > 0.5


def _camera(camera: dict):
    from ganverse3d.geometry import Camera

    return Camera.create(camera["azimuth"], camera["elevation"], camera["distance"], camera["fov_y"])


def _placed_like(verts: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """``verts`` normalised, then moved and scaled to the bounding-box centre and radius of ``reference``."""
    from ganverse3d.render.turntable import normalise_verts

    centre = (reference.min(0).values + reference.max(0).values) / 2
    return normalise_verts(verts) * (reference - centre).norm(dim=1).max() + centre


def _iou(first: torch.Tensor, second: torch.Tensor) -> float:
    return float((first & second).sum()) / max(1, int((first | second).sum()))


def score(verts, faces, face_uvs, texture, view: View, others: list[View], input_camera, input_mask) -> dict:
    """The metrics of one reconstruction (a mesh in object space) of ``view``; ``input_camera`` and
    ``input_mask`` (framed crop) give the input IoU."""
    from ganverse3d.inverse.evaluate import chamfer_distance, sample_surface
    from ganverse3d.render.turntable import normalise_verts

    _, covered = _render(verts, faces, face_uvs, texture, input_camera, input_mask.shape[-1])
    placed = _placed_like(verts, view.verts)
    cross_iou, cross_rgb = [], []
    for other in others:
        image, covered_other = _render(placed, faces, face_uvs, texture, _camera(other.camera), RESOLUTION)
        target_mask = torch.from_numpy(other.mask)
        cross_iou.append(_iou(covered_other, target_mask))
        both = covered_other & target_mask
        target = torch.from_numpy(other.image).permute(2, 0, 1).float() / 255
        cross_rgb.append(float((image - target)[:, both].abs().mean()) * 255 if both.any() else 255.0)
    chamfer = chamfer_distance(sample_surface(normalise_verts(verts), faces, SURFACE_POINTS),
                               sample_surface(normalise_verts(view.verts), view.faces, SURFACE_POINTS))
    return {"input_iou": _iou(covered, input_mask[0] > 0.5), "cross_view_iou": statistics.mean(cross_iou),
            "cross_view_rgb": statistics.mean(cross_rgb), "chamfer": chamfer}


def _constant_cars():
    from ganverse3d.world import BODY_TYPES, build_car, sample_car_spec

    cars = {}
    for body_type in BODY_TYPES:
        car = build_car(sample_car_spec(np.random.default_rng(0), body_type))
        cars[body_type] = (torch.as_tensor(car.verts, dtype=torch.float32), torch.as_tensor(car.faces))
    return cars


def measure(views: list[View], model: str | None) -> dict:
    from ganverse3d.api import reconstruct

    others_of = {id(view): [other for other in views if other.car == view.car and other is not view]
                 for view in views}
    reconstruct(views[0].image, mask=views[0].mask, model=model, device="cpu", quality="best")  # warm-up
    rows = {}
    first_results = []
    for name, settings in CONFIGURATIONS.items():
        scores, seconds = [], []
        for view in views:
            with _no_search() if name == "network" else nullcontext():
                start = time.perf_counter()
                result = reconstruct(view.image, mask=view.mask, model=model, device="cpu", **settings)
                seconds.append(time.perf_counter() - start)
            mesh = result.mesh
            scores.append(score(mesh.verts, mesh.faces, mesh.face_uvs, mesh.texture, view, others_of[id(view)],
                                result.camera, result.mask))
            if name == "+ azimuth search (fast)":
                first_results.append(result)
        rows[name] = _mean(scores) | {"seconds": statistics.median(seconds)}

    flat_scores = []
    for view, result in zip(views, first_results):
        mesh = result.mesh
        flat = ((result.image * result.mask).sum((1, 2)) / result.mask.sum())[:, None, None]
        flat_scores.append(score(mesh.verts, mesh.faces, mesh.face_uvs, flat, view, others_of[id(view)],
                                 result.camera, result.mask))
    rows["flat colour (baseline)"] = _mean(flat_scores) | {"seconds": None}

    best = None
    for body_type, (verts, faces) in _constant_cars().items():
        uvs, texture = torch.zeros(len(faces), 3, 2), torch.full((3, 1, 1), 0.5)
        scores = [score(_placed_like(verts, result.mesh.verts), faces, uvs, texture, view, others_of[id(view)],
                        result.camera, result.mask) for view, result in zip(views, first_results)]
        row = _mean(scores) | {"seconds": None, "car": body_type, "cross_view_rgb": None}
        if best is None or row["cross_view_iou"] > best["cross_view_iou"]:
            best = row
    rows["constant car (baseline)"] = best
    return rows


def _mean(scores: list[dict]) -> dict:
    return {metric: statistics.mean(score[metric] for score in scores) for metric in scores[0]}


def _print(title: str, rows: dict) -> None:
    print(f"\n{title}")
    print(f"{'':<34} {'input IoU':>9} {'cross IoU':>9} {'cross |RGB|':>11} {'Chamfer':>8} {'median s':>9}")
    for name, row in rows.items():
        rgb = "" if row["cross_view_rgb"] is None else f"{row['cross_view_rgb']:.1f}"
        seconds = "" if row["seconds"] is None else f"{row['seconds']:.2f}"
        label = name + (f" ({row['car']})" if "car" in row else "")
        print(f"{label:<34} {row['input_iou']:>9.3f} {row['cross_view_iou']:>9.3f} {rgb:>11} "
              f"{row['chamfer']:>8.4f} {seconds:>9}")


FIGURE_TILE = 128


def _tile(image: torch.Tensor) -> torch.Tensor:
    import torch.nn.functional as F

    return F.interpolate(image[None], size=(FIGURE_TILE, FIGURE_TILE), mode="area")[0]


def _views_around(result, view: View | None, cars: list[View]) -> list[torch.Tensor]:
    """The reconstruction (unlit texture on grey) from the 4 cameras of the figure's row."""
    from ganverse3d.geometry import Camera
    from ganverse3d.render.turntable import BACKGROUND_GREY

    mesh, grey = result.mesh, torch.full((3,), BACKGROUND_GREY)
    if view is None:  # no truth: the reconstruction's own camera, turned
        camera = result.camera
        cameras = [Camera(camera.azimuth + turn, camera.elevation, camera.distance, camera.fov_y)
                   for turn in (0.0, 90.0, 180.0, 270.0)]
        verts = mesh.verts
    else:
        cameras, verts = [_camera(car.camera) for car in cars], _placed_like(mesh.verts, view.verts)
    from ganverse3d.render import render_mesh

    return [_tile(render_mesh(verts[None], mesh.faces, mesh.face_uvs, mesh.texture[None], camera, RESOLUTION,
                              background=grey, soft=False).image[0]) for camera in cameras]


def write_figure(path: str, rows: list[tuple[View | None, list[View], object, str | None]]) -> None:
    """``rows``: (the input view or None for the example photo, the views of its car, the photo, the model)."""
    from PIL import Image

    from ganverse3d.api import reconstruct
    from ganverse3d.files import image_grid, save_png

    tiles = []
    for view, cars, photo, model in rows:
        mask = None if view is None else view.mask
        before = reconstruct(photo, mask=mask, model=model, device="cpu", quality="fast")
        after = reconstruct(photo, mask=mask, model=model, device="cpu", quality="best")
        truth = ([torch.full((3, FIGURE_TILE, FIGURE_TILE), 1.0)] * 4 if view is None else
                 [_tile(torch.from_numpy(car.image).permute(2, 0, 1).float() / 255) for car in cars])
        tiles += [_tile(before.image), *_views_around(before, view, cars), *_views_around(after, view, cars), *truth]
    save_png(path, image_grid(torch.stack(tiles), columns=13))
    Image.open(path).verify()


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cars", type=int, default=8, help="Cars per test set.")
    parser.add_argument("--views", type=int, default=4, help="Views per car (each the input once).")
    parser.add_argument("--models", default="oracle,gan", help="Embedded model names or bundle paths.")
    parser.add_argument("--held-out-model", default=None,
                        help="The oracle trained without pickups, also measured on the pickup set.")
    parser.add_argument("--sets", default="world,pickup,beyond")
    parser.add_argument("--figure", default=None, help="Also write the before/after figure to this PNG.")
    parser.add_argument("--figure-only", action="store_true", help="Write the figure, measure nothing.")
    args = parser.parse_args()
    description = machine()
    results = {"machine": description, "cars": args.cars, "views": args.views, "seed": SEED, "sets": {}}
    previous = Path(__file__).parent / "results" / "bm_generalisation.json"
    if previous.is_file():  # one run per set or model adds to the others measured with the same settings
        earlier = json.loads(previous.read_text())
        if (earlier["cars"], earlier["views"], earlier["seed"]) == (args.cars, args.views, SEED):
            results["sets"] = earlier["sets"]
    sets = {kind: make_set(kind, args.cars, args.views) for kind in args.sets.split(",")}
    if args.figure:
        example = Path(__file__).resolve().parent.parent / "docs" / "example_car.png"
        rows = [(None, [], example, None)]
        for kind, views in sets.items():
            model = args.held_out_model if kind == "pickup" and args.held_out_model else None
            for car in sorted({view.car for view in views})[:2 if kind == "pickup" else 1]:
                car_views = [view for view in views if view.car == car]
                rows.append((car_views[1], car_views, car_views[1].image, model))
        write_figure(args.figure, rows)
        if args.figure_only:
            return
    for kind, views in sets.items():
        models = args.models.split(",") + ([args.held_out_model] if kind == "pickup" and args.held_out_model else [])
        results["sets"].setdefault(kind, {})
        for model in models:
            label = "oracle without pickups" if model == args.held_out_model else model
            rows = measure(views, model)
            results["sets"][kind][label] = rows
            _print(f"{kind} set ({len(views)} images), model {label}", rows)
            write_results("bm_generalisation", results)  # after each block: a long run keeps what it measured
    print(f"\n{description}")


if __name__ == "__main__":
    main()
