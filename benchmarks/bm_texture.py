"""Texture from the photo (issue 18, section 2): colour error of the network's texture, the photo baked into a
texture (``reconstruct(texture_size=N)``) and a flat colour, on held-out world cars with ground truth.

    python benchmarks/bm_texture.py [--cars 12] [--views 4] [--texture-size 1024] [--fit-steps 0] [--data DIR]

Makes ``ganverse3d dataset world --cars N --views K --resolution 256 --seed 999`` (seed 999: no training set
uses it; or reads ``--data``), reconstructs every image with its mask, and reports, per texture (means over
images):

* input PSNR: the reconstruction rendered (unlit) from its own camera in the framed 256-px crop, against the
  framed photo, over the pixels both the render and the car's mask cover;
* input |RGB|: the same pixels' mean absolute error, of 255;
* cross-view |RGB|: the predicted mesh placed like the true one (both normalised, the prediction moved and
  scaled to the true mesh's bounding-box centre and radius: the network's orientation, not its placement, is
  measured) and rendered from each *other* view's true camera, against that view's photo, over the pixels both
  cover; mean absolute error of 255;

for the network's texture, the baked texture, and the flat colour (the input's mean colour inside its mask,
everywhere); the cross-view error also over only the images whose predicted azimuth is within 30 degrees of the
truth (a texture painted onto a car turned the wrong way lands on the wrong sides). Also the median extra
seconds the baking costs (warm, CPU). Prints a table and writes
benchmarks/results/bm_texture.json.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from common import machine, write_results


def _read(path: Path) -> torch.Tensor:
    from PIL import Image

    with Image.open(path) as image:
        array = np.asarray(image.convert("RGB"), dtype=np.float32) / 255
    return torch.from_numpy(array).permute(2, 0, 1)


def _read_mask(path: Path) -> torch.Tensor:
    from PIL import Image

    with Image.open(path) as image:
        return torch.from_numpy(np.asarray(image.convert("L")) > 127)[None]


def _render(verts, faces, face_uvs, texture, camera, size):
    from ganverse3d.render import render_mesh

    out = render_mesh(verts[None], faces, face_uvs, texture[None], camera, size, soft=False)
    return out.image[0], out.mask[0] > 0.5


def measure(data: Path, texture_size: int, fit_steps: int, model) -> dict:
    from ganverse3d.api import FRAMED_SIZE, reconstruct
    from ganverse3d.export import load_mesh
    from ganverse3d.geometry import Camera
    from ganverse3d.render.turntable import normalise_verts

    items = [json.loads(line) for line in (data / "meta.jsonl").read_text().splitlines()]
    views_of: dict[int, list[dict]] = {}
    for item in items:
        views_of.setdefault(item["content_id"], []).append(item)
    true_meshes = {item["content_id"]: load_mesh(data / item["mesh"]) for item in items}

    def camera_of(item) -> Camera:
        c = item["camera"]
        return Camera.create(c["azimuth"], c["elevation"], c["distance"], c["fov_y"])

    reconstruct(data / items[0]["image"], mask=data / items[0]["mask"], model=model, device="cpu",
                texture_size=texture_size)  # warm-up (the UV layout's texels are remembered)
    names = ("network", "photo", "flat")
    scores = {name: {"input_psnr": [], "input_rgb": [], "cross_view_rgb": [], "cross_view_rgb_pose_ok": []}
              for name in names}
    seconds = []
    with torch.no_grad():
        for item in items:
            photo, mask = data / item["image"], data / item["mask"]
            start = time.perf_counter()
            plain = reconstruct(photo, mask=mask, model=model, device="cpu", fit_steps=fit_steps)
            middle = time.perf_counter()
            baked = reconstruct(photo, mask=mask, model=model, device="cpu", fit_steps=fit_steps,
                                texture_size=texture_size)
            seconds.append((time.perf_counter() - middle) - (middle - start))
            assert torch.equal(plain.mesh.verts, baked.mesh.verts)
            mesh = plain.mesh
            flat = (plain.image * plain.mask).sum((1, 2)) / plain.mask.sum()
            # Each texture with its UVs: the baked one lies in the mesh's atlas, the others on the template's.
            textures = {"network": (mesh.face_uvs, mesh.texture), "photo": (baked.mesh.face_uvs, baked.mesh.texture),
                        "flat": (mesh.face_uvs, flat[:, None, None].expand(3, 1, 1).contiguous())}

            for name, (face_uvs, texture) in textures.items():
                image, covered = _render(mesh.verts, mesh.faces, face_uvs, texture, plain.camera, FRAMED_SIZE)
                inside = (covered & (plain.mask > 0.5)).expand(3, -1, -1)
                error = (image - plain.image)[inside]
                scores[name]["input_psnr"].append(-10 * math.log10(float((error ** 2).mean())))
                scores[name]["input_rgb"].append(float(error.abs().mean()) * 255)

            true_verts = true_meshes[item["content_id"]].verts
            centre = (true_verts.min(0).values + true_verts.max(0).values) / 2
            placed = normalise_verts(mesh.verts) * (true_verts - centre).norm(dim=1).max() + centre
            others = [other for other in views_of[item["content_id"]] if other is not item]
            for name, (face_uvs, texture) in textures.items():
                errors = []
                for other in others:
                    target, target_mask = _read(data / other["image"]), _read_mask(data / other["mask"])
                    image, covered = _render(placed, mesh.faces, face_uvs, texture, camera_of(other), target.shape[-1])
                    inside = (covered & target_mask).expand(3, -1, -1)
                    errors.append(float((image - target)[inside].abs().mean()) * 255)
                scores[name]["cross_view_rgb"].append(statistics.mean(errors))
                azimuth_error = abs((float(plain.camera.azimuth[0]) - item["camera"]["azimuth"] + 180) % 360 - 180)
                if azimuth_error <= 30:
                    scores[name]["cross_view_rgb_pose_ok"].append(statistics.mean(errors))
    rows = {name: {metric: statistics.mean(values) for metric, values in row.items()} for name, row in scores.items()}
    return {"images": len(items), "pose_ok_images": len(scores["flat"]["cross_view_rgb_pose_ok"]), "rows": rows, "bake_seconds_median": statistics.median(seconds)}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cars", type=int, default=12)
    parser.add_argument("--views", type=int, default=4)
    parser.add_argument("--texture-size", type=int, default=1024)
    parser.add_argument("--fit-steps", type=int, default=0)
    parser.add_argument("--data", default=None, help="A world dataset to use instead of making one.")
    parser.add_argument("--model", default=None, help="Inverse-graphics bundle [default: the embedded one].")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        data = Path(args.data) if args.data else Path(folder) / "world"
        if not args.data:
            subprocess.run([sys.executable, "-m", "ganverse3d.cli", "dataset", "world", "--cars", str(args.cars),
                            "--views", str(args.views), "--resolution", "256", "--seed", "999", "--out", str(data)],
                           check=True, capture_output=True)
        results = measure(data, args.texture_size, args.fit_steps, args.model)
    description = machine()
    print(f"bm_texture — {results['images']} held-out world images (seed 999), texture {args.texture_size} x "
          f"{2 * args.texture_size}, fit_steps {args.fit_steps}; baking costs {results['bake_seconds_median']:.2f} s "
          f"(median), cpu ({description})")
    pose_ok = f"cross-view, pose ok ({results['pose_ok_images']})"
    print(f"{'texture':<10} {'input PSNR dB':>14} {'input |RGB|':>12} {'cross-view |RGB|':>17} {pose_ok:>28}")
    for name, row in results["rows"].items():
        print(f"{name:<10} {row['input_psnr']:>14.2f} {row['input_rgb']:>12.1f} {row['cross_view_rgb']:>17.1f} "
              f"{row['cross_view_rgb_pose_ok']:>28.1f}")
    write_results("bm_texture", {"machine": description, "model": args.model or "embedded",
                                 "texture_size": args.texture_size, "fit_steps": args.fit_steps,
                                 "data": args.data or f"world --cars {args.cars} --views {args.views} --seed 999",
                                 **results})


if __name__ == "__main__":
    main()
