"""Evaluating the inverse-graphics network (the paper's Table 1 metric, and more where ground truth exists).

On any multi-view dataset (a held-out GAN split, or a world set):

* input-view IoU with the dataset's camera (the paper's re-projected 2D IoU; for the training dataset the
  cameras learned during training), with the network's own camera estimate, and with that estimate after
  the azimuth search of :mod:`.camera_search` (what ``reconstruct`` returns);
* azimuth and elevation error of the camera estimate, degrees (azimuth also after that search).

On a world set whose meta.jsonl names ground-truth meshes (``"mesh"``), also:

* novel-view silhouette IoU against the true mesh over :data:`TURNTABLE_AZIMUTHS`;
* Chamfer distance between surface samples.

Every metric is also broken down by the azimuth bin (30 degrees, bin 0 = the front) of the camera each
input was seen from, which shows where a model fails: near-frontal and near-rear inputs, say.

On any set with several views per content and several contents per view, also how much the predicted shape
depends on the view rather than the car (:func:`view_consistency`): near 0.5 for the oracle on world cars, at
or above 1 where the shapes say more about the view than about the car.

Both compare *shapes*: each mesh is first normalised (bounding-box centre to the origin, farthest vertex at
radius 1), because a single image fixes size only relative to the camera distance, and the GAN data's
annotated distance is arbitrary. Novel views then use one fixed camera ring around the normalised meshes.

Turntable sheets show, per item, the input beside the prediction from the six azimuths (the paper's user-study
view), and the true mesh below when there is one.
"""

from __future__ import annotations

import itertools
import random
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from tqdm import tqdm

from .. import assets
from ..bundle import load_module, read_metadata
from ..dataset import MultiViewDataset, cameras_from_batch
from ..devices import resolve_device
from ..errors import InputError
from ..export import load_mesh
from ..files import image_grid, save_png, write_json
from ..geometry import AZIMUTH_BIN_DEG, Camera, azimuth_bins
from ..render import render_mesh
from ..render.turntable import TURNTABLE_AZIMUTHS, normalise_verts, render_turntable, turntable_rows
from .camera_search import search_camera
from .cameras import concat_cameras, wrap_degrees
from .losses import mask_iou
from .model import InverseGraphicsNet

CHAMFER_POINTS = 2048
# Fewer points and a sample of the pairs keep view_consistency to seconds on 26k images.
CONSISTENCY_POINTS = 512
CONSISTENCY_PAIRS = 2000


def measure_reprojection(model: InverseGraphicsNet, images: torch.Tensor, masks: torch.Tensor,
                         cameras: Camera) -> dict[str, torch.Tensor]:
    """Per-image input-view metrics of a batch.

    images: [B, 3, R, R], masks: [B, 1, R, R] in [0, 1] at the model's resolution R; cameras: the true (or
    training's) cameras of the images. Returns [B] tensors ``iou`` (rendered with ``cameras``),
    ``iou_predicted_camera``, ``iou_searched_camera``, ``azimuth_error_deg``, ``azimuth_error_searched_deg``,
    ``elevation_error_deg``, and the ``prediction``.
    """
    prediction = model(images, masks)
    cameras = cameras.to(device=images.device, dtype=images.dtype)
    size = images.shape[-1]
    both = render_mesh(prediction.verts.repeat(2, 1, 1), model.faces, model.face_uvs,
                       prediction.texture.repeat(2, 1, 1, 1), concat_cameras([cameras, prediction.camera]), size,
                       soft=False)
    batch = images.shape[0]
    searched, searched_iou = search_camera(prediction, model.faces, model.face_uvs, masks)
    return {"iou": mask_iou(both.mask[:batch], masks), "iou_predicted_camera": mask_iou(both.mask[batch:], masks),
            "iou_searched_camera": searched_iou,
            "azimuth_error_deg": wrap_degrees(prediction.camera.azimuth - cameras.azimuth),
            "azimuth_error_searched_deg": wrap_degrees(searched.azimuth - cameras.azimuth),
            "elevation_error_deg": (prediction.camera.elevation - cameras.elevation).abs(),
            "prediction": prediction}


def sample_surface(verts: torch.Tensor, faces: torch.Tensor, count: int, seed: int = 0) -> torch.Tensor:
    """``count`` points [count, 3] drawn uniformly by area on the mesh surface (verts [V, 3], faces [F, 3])."""
    rng = torch.Generator().manual_seed(seed)
    tri = verts[faces].cpu().double()
    area = torch.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0], dim=-1).norm(dim=-1)
    face = torch.multinomial(area / area.sum(), count, replacement=True, generator=rng)
    u, v = torch.rand(count, generator=rng, dtype=torch.float64), torch.rand(count, generator=rng,
                                                                                   dtype=torch.float64)
    flip = u + v > 1
    u, v = torch.where(flip, 1 - u, u), torch.where(flip, 1 - v, v)
    chosen = tri[face]
    points = chosen[:, 0] + u[:, None] * (chosen[:, 1] - chosen[:, 0]) + v[:, None] * (chosen[:, 2] - chosen[:, 0])
    return points.float()


def chamfer_distance(first: torch.Tensor, second: torch.Tensor) -> float:
    """Symmetric Chamfer distance between point sets [N, 3] and [M, 3]: mean squared distance to the nearest
    point of the other set, summed over both directions (kaolin's form)."""
    distance = torch.cdist(first, second, compute_mode="donot_use_mm_for_euclid_dist").square()
    return float(distance.min(1).values.mean() + distance.min(0).values.mean())


def view_consistency(points: list[torch.Tensor], content_ids: list[int], view_ids: list[int],
                     max_pairs: int = CONSISTENCY_PAIRS, seed: int = 0) -> dict[str, float | None] | None:
    """How much predicted shapes depend on the view they were predicted from rather than on the car.

    points: per image, surface samples [P, 3] of its normalised predicted mesh; content_ids, view_ids: per
    image (a multi-view dataset holds each content at most once per view). Returns the mean Chamfer distance
    between shapes from two views of one content (``view_consistency_within_content``) and from one view of
    two contents (``view_consistency_between_contents``), each over all such pairs or, where there are more
    than ``max_pairs``, over ``max_pairs`` of them drawn uniformly (seeded, with replacement), and their
    ratio (``view_consistency_ratio``; None when the between-contents distance is 0). None when no content
    has two views or no view two contents.
    """
    rng = random.Random(seed)

    def mean_over_pairs(group_of: list[int]) -> float | None:
        groups: dict[int, list[int]] = {}
        for index, group in enumerate(group_of):
            groups.setdefault(group, []).append(index)
        members = [indices for indices in groups.values() if len(indices) > 1]
        if not members:
            return None
        weights = [len(indices) * (len(indices) - 1) // 2 for indices in members]
        if sum(weights) <= max_pairs:
            pairs = [pair for indices in members for pair in itertools.combinations(indices, 2)]
        else:
            pairs = [rng.sample(indices, 2) for indices in rng.choices(members, weights=weights, k=max_pairs)]
        return sum(chamfer_distance(points[first], points[second]) for first, second in pairs) / len(pairs)

    within, between = mean_over_pairs(content_ids), mean_over_pairs(view_ids)
    if within is None or between is None:
        return None
    return {"view_consistency_within_content": round(within, 6), "view_consistency_between_contents": round(between, 6),
            "view_consistency_ratio": round(within / between, 4) if between > 0 else None}


@dataclass
class ReferenceShape:
    """A ground-truth mesh with what the shape metrics compare against, computed once per content.

    verts [V, 3], faces [F, 3], face_uvs [F, 3, 2], texture [3, Ht, Wt]: the mesh (object space);
    turntable_masks [6, 1, S, S]: its normalised silhouettes from the turntable cameras;
    samples [CHAMFER_POINTS, 3]: surface points of the normalised mesh.
    """

    verts: torch.Tensor
    faces: torch.Tensor
    face_uvs: torch.Tensor
    texture: torch.Tensor
    turntable_masks: torch.Tensor
    samples: torch.Tensor

    @classmethod
    def from_mesh(cls, verts, faces, face_uvs, texture) -> "ReferenceShape":
        return cls(verts, faces, face_uvs, texture, _silhouettes(verts, faces),
                   sample_surface(normalise_verts(verts), faces, CHAMFER_POINTS))


def _silhouettes(verts: torch.Tensor, faces: torch.Tensor) -> torch.Tensor:
    blank_uvs = torch.zeros(len(faces), 3, 2, device=verts.device)
    return render_turntable(verts, faces, blank_uvs, verts.new_zeros(3, 1, 1), lit=False)[1]


def shape_metrics(predicted_verts: torch.Tensor, predicted_faces: torch.Tensor,
                  reference: ReferenceShape) -> dict[str, float]:
    """Novel-view silhouette IoU (mean over the turntable views) and Chamfer distance between a predicted mesh
    (verts [V, 3], faces [F, 3]) and the reference, both normalised."""
    predicted_masks = _silhouettes(predicted_verts, predicted_faces)
    chamfer = chamfer_distance(sample_surface(normalise_verts(predicted_verts), predicted_faces, CHAMFER_POINTS),
                               reference.samples)
    return {"iou_novel_views": float(mask_iou(predicted_masks, reference.turntable_masks).mean()), "chamfer": chamfer}


def _load_model(model, device) -> tuple[InverseGraphicsNet, dict]:
    if isinstance(model, InverseGraphicsNet):
        return model.to(device).eval(), {}
    path = assets.resolve("inverse", model)
    return load_module(path, InverseGraphicsNet, device=device), read_metadata(path)["config"]


@torch.no_grad()
def evaluate(model, data, out=None, device="auto", batch: int = 32, turntables: int = 8, max_contents: int | None = None,
             progress: bool = True) -> dict:
    """Evaluate a model on a multi-view dataset; optionally write ``out/metrics.json`` and ``out/turntables.png``.

    Args:
        model: an :class:`InverseGraphicsNet`, the path of its bundle or an embedded model's name ("oracle",
            "gan"). A bundle trained on ``data`` is evaluated on its held-out contents with the cameras it
            learned; otherwise every image counts and the dataset's cameras are the truth.
        data: the dataset folder.
        out: folder for the results, or None.
        batch: images per forward pass.
        turntables: how many items the turntable sheet shows (0 = none).
        max_contents: evaluate only the first this many of those contents (by id); None = all.

    Returns a dict of JSON-able numbers (means over images, see the module docstring) and counts.
    """
    device = resolve_device(device)
    model, bundle_config = _load_model(model, device)
    same_data = bundle_config.get("data") == str(Path(data).resolve())
    contents = bundle_config.get("heldout_contents") if same_data else None
    if same_data and not contents:
        raise InputError(f"{data} is the model's training data and it held nothing out; evaluate on another dataset.")
    dataset = MultiViewDataset(data, contents=contents, cache=False)
    if max_contents is not None:
        dataset = MultiViewDataset(data, contents=sorted(dataset.content_ids)[:max_contents], cache=False)
    learned = {view["view_id"]: view for view in bundle_config.get("view_cameras", [])} if same_data else {}
    learned_cameras = same_data and bundle_config.get("train", {}).get("camera_mode") == "learn"
    resolution = model.resolution

    values_by_metric: dict[str, list[float]] = {}
    input_bins: list[int] = []
    sheet_tiles, sheet_rows = [], 0
    references: dict[int, ReferenceShape | None] = {}
    shape_samples, content_ids, view_ids = [], [], []
    for start in tqdm(range(0, len(dataset), batch), desc="inverse eval", unit="batch", disable=not progress):
        items = [dataset[index] for index in range(start, min(start + batch, len(dataset)))]
        images = F.interpolate(torch.stack([item["image"] for item in items]).to(device), size=(resolution,) * 2,
                               mode="area")
        masks = F.interpolate(torch.stack([item["mask"] for item in items]).to(device), size=(resolution,) * 2,
                              mode="area")
        camera_rows = []
        for item in items:
            view = learned.get(item["view_id"]) if learned_cameras else None
            camera_rows.append(torch.tensor([view["azimuth"], view["elevation"], view["distance"], view["fov_y"]])
                               if view else item["camera"])
        cameras = cameras_from_batch(torch.stack(camera_rows).to(device))
        input_bins.extend(azimuth_bins(cameras.azimuth).tolist())
        result = measure_reprojection(model, images, masks, cameras)
        prediction = result.pop("prediction")
        for name, values in result.items():
            values_by_metric.setdefault(name, []).extend(values.tolist())
        for row, item in enumerate(items):
            shape_samples.append(sample_surface(normalise_verts(prediction.verts[row]), model.faces, CONSISTENCY_POINTS))
            content_ids.append(item["content_id"])
            view_ids.append(item["view_id"])
            reference = _reference_shape(dataset, item, references, device)
            if reference is not None:
                for name, value in shape_metrics(prediction.verts[row], model.faces, reference).items():
                    values_by_metric.setdefault(name, []).append(value)
            if sheet_rows < turntables:
                predicted_images, _ = render_turntable(prediction.verts[row], model.faces, model.face_uvs,
                                                       prediction.texture[row])
                true_images = (render_turntable(reference.verts, reference.faces, reference.face_uvs, reference.texture)[0]
                               if reference is not None else None)
                sheet_tiles.append(turntable_rows(item["image"].to(device), predicted_images, true_images).cpu())
                sheet_rows += 1

    metrics = {"images": len(dataset), "contents": len(dataset.content_ids),
               "split": "heldout" if same_data else "all",
               "camera_source": "learned view cameras" if learned_cameras else "dataset cameras"}
    for name, values in values_by_metric.items():
        values_tensor = torch.tensor(values, dtype=torch.float64)
        metrics[name] = round(float(values_tensor.mean()), 6)
        if name.startswith("azimuth_error"):
            metrics[f"{name}_median"] = round(float(values_tensor.median()), 6)
    metrics["by_azimuth_bin"] = _by_azimuth_bin(values_by_metric, input_bins)
    metrics.update(view_consistency(shape_samples, content_ids, view_ids) or {})
    if out is not None:
        out = Path(out)
        write_json(out / "metrics.json", metrics)
        if sheet_tiles:
            save_png(out / "turntables.png", image_grid(torch.cat(sheet_tiles), columns=1 + len(TURNTABLE_AZIMUTHS)))
    return metrics


def _by_azimuth_bin(values_by_metric: dict[str, list[float]], input_bins: list[int]) -> dict[str, dict]:
    """Per input azimuth bin (keys "0".."11", bins without images left out): its image count and the mean of
    every per-image metric (each list in ``values_by_metric`` holds one value per image, in input order)."""
    bins = torch.tensor(input_bins)
    columns = {name: torch.tensor(values, dtype=torch.float64) for name, values in values_by_metric.items()}
    table = {}
    for azimuth_bin in sorted(set(input_bins)):
        chosen = bins == azimuth_bin
        table[str(azimuth_bin)] = {"images": int(chosen.sum()),
                                   **{name: round(float(column[chosen].mean()), 6) for name, column in columns.items()}}
    return table


def _reference_shape(dataset: MultiViewDataset, item: dict, cache: dict, device) -> ReferenceShape | None:
    """The item's ground-truth :class:`ReferenceShape` on ``device`` (cached per content), or None without one."""
    content = item["content_id"]
    if content not in cache:
        relative = dataset.meta[item["index"]].get("mesh")
        if relative is None:
            cache[content] = None
        else:
            mesh = load_mesh(dataset.folder / relative)
            cache[content] = ReferenceShape.from_mesh(*(t.to(device) for t in (mesh.verts, mesh.faces, mesh.face_uvs,
                                                                                mesh.texture)))
    return cache[content]


def format_metrics(metrics: dict) -> str:
    """A short human-readable table of :func:`evaluate`'s result."""
    rows = [f"{metrics['images']} images of {metrics['contents']} contents ({metrics['split']}, "
            f"{metrics['camera_source']})"]
    labels = {"iou": "input-view IoU", "iou_predicted_camera": "input-view IoU, predicted camera",
              "iou_searched_camera": "input-view IoU, searched camera",
              "iou_novel_views": "novel-view IoU (6 views)", "chamfer": "Chamfer distance (normalised)",
              "azimuth_error_deg": "azimuth error, mean (deg)", "azimuth_error_deg_median": "azimuth error, median (deg)",
              "azimuth_error_searched_deg": "azimuth error, searched, mean (deg)",
              "azimuth_error_searched_deg_median": "azimuth error, searched, median",
              "elevation_error_deg": "elevation error, mean (deg)",
              "view_consistency_ratio": "shape change across views / cars"}
    for key, label in labels.items():
        if metrics.get(key) is not None:
            rows.append(f"  {label:<36} {metrics[key]:.4f}")
    by_bin = metrics.get("by_azimuth_bin")
    if by_bin:
        shown = [key for key in ("iou", "iou_predicted_camera", "iou_searched_camera", "iou_novel_views",
                                 "azimuth_error_deg", "azimuth_error_searched_deg")
                 if key in next(iter(by_bin.values()))]
        rows.append("  by the input's azimuth bin:")
        widths = [max(len(key), 6) for key in shown]
        rows.append("    bin  azimuth  images  " + "  ".join(f"{key:>{width}}" for key, width in zip(shown, widths)))
        for azimuth_bin, row in sorted(by_bin.items(), key=lambda item: int(item[0])):  # JSON keys sort as text
            values = "  ".join(f"{row[key]:>{width}.3f}" for key, width in zip(shown, widths))
            rows.append(f"    {azimuth_bin:>3}  {int(azimuth_bin) * AZIMUTH_BIN_DEG:>7.0f}  {row['images']:>6}  {values}")
    return "\n".join(rows)

