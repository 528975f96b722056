"""Tiny multi-view datasets for the inverse-graphics tests (a module of its own: test modules cannot import
conftest reliably, another folder's conftest may hold that name), rendered from template-sphere ellipsoids.

Each content is the template sphere scaled per axis (a car-like ellipsoid, long in z) with a two-colour UV
texture (front half and back half differ, so the azimuth is visible), rendered with the project's renderer
from K exact cameras around it, on a plain background. The folder follows ``ganverse3d.dataset.format``;
``meshes/`` holds each content's true mesh (as world datasets do).
"""

import json

import numpy as np
import torch

from ganverse3d.dataset import FORMAT, FORMAT_VERSION, item_stem
from ganverse3d.export import TexturedMesh, save_mesh
from ganverse3d.files import save_png
from ganverse3d.geometry import Camera, template_sphere
from ganverse3d.render import render_mesh

DISTANCE, FOV_Y, ELEVATION = 3.0, 30.0, 10.0


def ellipsoid_content(content_id: int):
    """(verts [642, 3], texture [3, 8, 16]) of content ``content_id``: deterministic axes and colours."""
    rng = np.random.default_rng(content_id)
    axes = torch.tensor([rng.uniform(0.35, 0.5), rng.uniform(0.3, 0.4), rng.uniform(0.75, 0.95)], dtype=torch.float32)
    verts = template_sphere().verts * axes
    texture = torch.empty(3, 8, 16)
    front, back = rng.uniform(0.2, 1.0, 3), rng.uniform(0.0, 0.5, 3)
    texture[:, :, 4:12] = torch.tensor(front, dtype=torch.float32)[:, None, None]   # u in [0.25, 0.75]: the front
    texture[:, :, :4] = texture[:, :, 12:] = torch.tensor(back, dtype=torch.float32)[:, None, None]
    return verts, texture


def write_multiview_dataset(folder, contents: int = 3, views: int = 4, resolution: int = 32,
                            annotated_azimuth_error: float = 0.0, background=(0.8, 0.85, 0.9)) -> dict:
    """Write a dataset of ``contents`` ellipsoids seen from ``views`` azimuths 360 k / views.

    Images are rendered from the exact cameras; meta.jsonl carries the exact camera per image, while the
    manifest's views (the "annotation" that learnable cameras start from) are off by
    ``annotated_azimuth_error`` degrees, alternating in sign. Returns the manifest.
    """
    mesh = template_sphere()
    azimuths = [360.0 * k / views for k in range(views)]
    lines = []
    for content in range(contents):
        verts, texture = ellipsoid_content(content)
        save_mesh(folder / "meshes" / f"{content:06d}.glb", TexturedMesh(verts, mesh.faces, mesh.face_uvs, texture))
        cameras = Camera.create(azimuths, ELEVATION, DISTANCE, FOV_Y)
        out = render_mesh(verts.expand(views, -1, -1), mesh.faces, mesh.face_uvs, texture.expand(views, -1, -1, -1),
                          cameras, resolution, background=torch.tensor(background), soft=False)
        for view in range(views):
            stem = item_stem(content, view)
            save_png(folder / "images" / f"{stem}.png", out.image[view])
            save_png(folder / "masks" / f"{stem}.png", out.mask[view])
            lines.append({"image": f"images/{stem}.png", "mask": f"masks/{stem}.png", "content_id": content,
                          "view_id": view, "mask_area": float(out.mask[view].mean()),
                          "camera": {"azimuth": azimuths[view], "elevation": ELEVATION, "distance": DISTANCE,
                                     "fov_y": FOV_Y},
                          "mesh": f"meshes/{content:06d}.glb"})
    manifest = {"format": FORMAT, "format_version": FORMAT_VERSION, "source": {"kind": "test-ellipsoids"},
                "resolution": [resolution, resolution],
                "views": [{"view_id": view, "azimuth": azimuths[view] + annotated_azimuth_error * (-1) ** view,
                           "elevation": ELEVATION, "distance": DISTANCE, "fov_y": FOV_Y, "bin": None}
                          for view in range(views)],
                "counts": {"contents": contents, "candidates": contents * views, "kept": len(lines),
                           "filtered": {"instances": 0, "mask_area": 0}},
                "filters": {"instances": 1, "min_mask_area": 0.1}, "seed": 0, "complete": True}
    (folder / "meta.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))
    (folder / "manifest.json").write_text(json.dumps(manifest))
    return manifest
