"""Test-time fitting (issue 18, section 1): what it buys and costs on held-out world cars with ground truth.

    python benchmarks/bm_fitting.py [--steps 0,50,100,200] [--cars 16] [--views 4] [--model PATH]

Makes ``ganverse3d dataset world --cars N --views K --resolution 256 --seed 999`` in a temporary folder (seed
999: no training set uses it), reconstructs every image with ``api.reconstruct(photo, mask, fit_steps=n)``
for each n, and reports per n (means over all images):

* input IoU (crop): the reconstruction's hard silhouette, from its own camera, against the car's mask in the
  framed 256-px crop: what the user sees the mesh cover in the photo, and what fitting optimises;
* input IoU (norm.) and cross-view IoU (norm.): the predicted and the true mesh, each normalised (bounding-box
  centre at the origin, farthest vertex at 1, as ``inverse/evaluate.py`` does), rendered from the input
  view's true camera, and from each *other* view's true camera of the same car (azimuth and elevation; the
  world's distance and field of view), 128 px; no alignment is needed because both meshes are in object space
  with the front toward +Z. This measures shape, and the network's orientation of it, not placement;
* seconds: the median warm ``reconstruct`` call (mask given, CPU).

Beside them, the constant car: one fixed world sports car (item 0 of ``sample_car`` with seed 0, not in the
test set) given for every input. In the crop it is placed as the unfitted prediction is (normalised, then
moved and scaled to the prediction's bounding-box centre and radius, seen from the prediction's camera).
Prints a table and writes benchmarks/results/bm_fitting.json.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from common import machine, write_results

NORMALISED_SIZE = 128


def _silhouette(verts: torch.Tensor, faces: torch.Tensor, camera, size: int) -> torch.Tensor:
    """Hard mask [1, 1, S, S] of a mesh (verts [V, 3], faces [F, 3]) seen from ``camera`` (batch 1)."""
    from ganverse3d.render import render_mesh

    blank_uvs = torch.zeros(len(faces), 3, 2)
    return render_mesh(verts[None], faces, blank_uvs, verts.new_zeros(1, 3, 1, 1), camera, size, soft=False).mask


def _normalised_iou(predicted, true_mesh, camera) -> float:
    """IoU of the normalised predicted and true meshes' silhouettes from ``camera`` (world distance and fov)."""
    from ganverse3d.inverse.losses import mask_iou
    from ganverse3d.render.turntable import normalise_verts

    predicted_mask = _silhouette(normalise_verts(predicted.verts), predicted.faces, camera, NORMALISED_SIZE)
    true_mask = _silhouette(normalise_verts(true_mesh.verts), true_mesh.faces, camera, NORMALISED_SIZE)
    return float(mask_iou(predicted_mask, true_mask)[0])


def _placed_like(verts: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """``verts`` normalised, then moved and scaled to the bounding-box centre and radius of ``reference``."""
    from ganverse3d.render.turntable import normalise_verts

    centre = (reference.min(0).values + reference.max(0).values) / 2
    radius = (reference - centre).norm(dim=1).max()
    return normalise_verts(verts) * radius + centre


def _crop_iou(verts: torch.Tensor, faces: torch.Tensor, reconstruction) -> float:
    from ganverse3d.api import FRAMED_SIZE
    from ganverse3d.inverse.losses import mask_iou

    mask = _silhouette(verts, faces, reconstruction.camera, FRAMED_SIZE)
    return float(mask_iou(mask, reconstruction.mask[None])[0])


def measure(data: Path, steps: list[int], model: str | None) -> dict:
    from ganverse3d.api import reconstruct
    from ganverse3d.export import TexturedMesh, load_mesh
    from ganverse3d.geometry import Camera
    from ganverse3d.world import build_car, sample_car_spec
    from ganverse3d.world.scene import CAMERA_DISTANCE, CAMERA_FOV_Y

    items = [json.loads(line) for line in (data / "meta.jsonl").read_text().splitlines()]
    true_meshes = {item["content_id"]: load_mesh(data / item["mesh"]) for item in items}
    views_of: dict[int, list[dict]] = {}
    for item in items:
        views_of.setdefault(item["content_id"], []).append(item)
    constant = build_car(sample_car_spec(np.random.default_rng(0), body_type="sports"))
    constant_verts = torch.as_tensor(constant.verts, dtype=torch.float32)
    constant_faces = torch.as_tensor(constant.faces, dtype=torch.int64)
    constant_mesh = TexturedMesh(constant_verts, constant_faces, torch.zeros(len(constant_faces), 3, 2),
                                 torch.zeros(3, 1, 1))

    def true_camera(item) -> Camera:
        return Camera.create(item["camera"]["azimuth"], item["camera"]["elevation"], CAMERA_DISTANCE, CAMERA_FOV_Y)

    reconstruct(data / items[0]["image"], mask=data / items[0]["mask"], model=model, device="cpu")  # warm-up
    rows = {}
    constant_scores = {"input_iou_crop": [], "input_iou_normalised": [], "cross_view_iou_normalised": []}
    for count in steps:
        scores = {"input_iou_crop": [], "input_iou_normalised": [], "cross_view_iou_normalised": [], "seconds": []}
        for item in items:
            start = time.perf_counter()
            result = reconstruct(data / item["image"], mask=data / item["mask"], model=model, device="cpu",
                                 fit_steps=count)
            scores["seconds"].append(time.perf_counter() - start)
            true_mesh = true_meshes[item["content_id"]]
            scores["input_iou_crop"].append(_crop_iou(result.mesh.verts, result.mesh.faces, result))
            scores["input_iou_normalised"].append(_normalised_iou(result.mesh, true_mesh, true_camera(item)))
            others = [other for other in views_of[item["content_id"]] if other is not item]
            scores["cross_view_iou_normalised"].append(statistics.mean(
                _normalised_iou(result.mesh, true_mesh, true_camera(other)) for other in others))
            if count == steps[0]:  # the constant car is placed as the first (unfitted) reconstruction
                placed = _placed_like(constant_verts, result.mesh.verts)
                constant_scores["input_iou_crop"].append(_crop_iou(placed, constant_faces, result))
                constant_scores["input_iou_normalised"].append(
                    _normalised_iou(constant_mesh, true_mesh, true_camera(item)))
                constant_scores["cross_view_iou_normalised"].append(statistics.mean(
                    _normalised_iou(constant_mesh, true_mesh, true_camera(other)) for other in others))
        rows[f"fit_steps {count}"] = {name: statistics.mean(values) for name, values in scores.items()
                                      if name != "seconds"} | {"seconds": statistics.median(scores["seconds"])}
    rows["constant car"] = {name: statistics.mean(values) for name, values in constant_scores.items()}
    rows["constant car"]["seconds"] = None
    return {"images": len(items), "rows": rows}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", default="0,50,100,200",
                        help="Comma-separated fit_steps values; the first should be 0 (it places the constant car).")
    parser.add_argument("--cars", type=int, default=16)
    parser.add_argument("--views", type=int, default=4)
    parser.add_argument("--model", default=None, help="Inverse-graphics bundle [default: the embedded one].")
    args = parser.parse_args()
    steps = [int(value) for value in args.steps.split(",")]
    with tempfile.TemporaryDirectory() as folder:
        data = Path(folder) / "world"
        subprocess.run([sys.executable, "-m", "ganverse3d.cli", "dataset", "world", "--cars", str(args.cars),
                        "--views", str(args.views), "--resolution", "256", "--seed", "999", "--out", str(data)],
                       check=True, capture_output=True)
        results = measure(data, steps, args.model)
    description = machine()
    print(f"bm_fitting — {results['images']} held-out world images ({args.cars} cars x {args.views} views, "
          f"seed 999), cpu ({description})")
    print(f"{'':<16} {'input IoU crop':>15} {'input IoU norm.':>16} {'cross-view IoU norm.':>21} {'median s':>9}")
    for name, row in results["rows"].items():
        seconds = "" if row["seconds"] is None else f"{row['seconds']:.2f}"
        print(f"{name:<16} {row['input_iou_crop']:>15.3f} {row['input_iou_normalised']:>16.3f} "
              f"{row['cross_view_iou_normalised']:>21.3f} {seconds:>9}")
    write_results("bm_fitting", {"machine": description, "model": args.model or "embedded", "cars": args.cars,
                                 "views": args.views, "seed": 999, **results})


if __name__ == "__main__":
    main()
