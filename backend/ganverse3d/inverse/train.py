"""Training the inverse-graphics network on a multi-view dataset (the paper's Sec. 3.2 and 4.1).

Each step draws a batch of images I_i with masks, and for each another view j of the same content; f
predicts shape and texture from I_i, DIB-R renders them in the cameras of views i and j, and Eq. 2 sums
Eq. 1 over both (``multiview = false`` renders view i only, the Fig. 6 ablation). Cameras are one per
annotated view, learned jointly with f from their bins (``camera_mode = "learn"``), or the dataset's own
per-image cameras held fixed (``"fixed"``: exact cameras for world data, the bins for the ablation without
camera optimisation). Beyond the paper, ``image_cameras`` renders each image in the camera head's estimate
for that image instead, from ``image_cameras_start`` on and when it lies within ``image_cameras_reach``
degrees of its view's camera (a car's pose scatters around its view's, but not to a front/rear flip: such
an image is rendered in its view's camera); the camera loss then ties every estimate to its view's camera
and moves the view's camera to the centre of its images' estimates.

A run lives in ``runs/inverse/<NNNNN-name>/``: ``config.json``; ``metrics.jsonl`` (losses, training IoU,
how far the cameras moved, held-out IoU); ``samples/*.png`` (per row: input | render in the input view |
renders 90, 180 and 270 degrees around); ``cameras.json`` (the learned cameras); ``checkpoints/state.safetensors``
(everything needed to resume) and ``checkpoints/inverse.safetensors`` (the model bundle; its config records
the training config, the learned cameras, the held-out contents and how the data frames the object, which
``reconstruct`` uses to crop photos the same way). Killing a run loses at most one checkpoint interval;
``train(resume=run_dir)`` continues it to the same weights as an uninterrupted run.
"""

from __future__ import annotations

import dataclasses
import math
import random
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from tqdm import tqdm

from .. import runs
from ..bundle import save_module
from ..dataset import MultiViewDataset, cameras_from_batch
from ..devices import PRECISIONS, autocast, to_device
from ..errors import InputError
from ..files import image_grid, save_png, write_json
from ..geometry import AZIMUTH_BIN_DEG, azimuth_bins, template_sphere
from ..render import render_mesh
from ..render.turntable import render_around
from ..runs import Periodic, RunTrainer, seeded_rng
from .cameras import ViewCameras, concat_cameras, within_reach
from .evaluate import measure_reprojection
from .losses import (LossWeights, PerceptualLoss, camera_loss, flatten_loss, laplacian_loss, mask_iou, move_loss,
                     total_loss, view_terms)
from .model import TEMPLATES, InverseGraphicsNet, camera_to_vector

CAMERA_MODES = ("learn", "fixed")
# Images in the sample grids and in the periodic held-out measurement.
_SAMPLE_ITEMS = 8
_MONITOR_ITEMS = 64
_AZIMUTH_BINS = round(360 / AZIMUTH_BIN_DEG)


@dataclass
class TrainConfig:
    """Everything that defines a run (saved to ``config.json``; a TOML file, :func:`ganverse3d.runs.read_config_file`,
    may set any field)."""

    data: str                          # Multi-view dataset folder (manifest.json, meta.jsonl, images/, masks/).
    iterations: int = 200_000          # Training steps (the paper: 200k at batch 16).
    batch: int = 16                    # Images per step (each rendered in its own and one other view).
    resolution: int = 64               # Network input and render size (power of two); images are resized.
    texture_height: int = 32           # UV texture size: texture_height x 2 * texture_height.
    lr: float = 1e-4                   # Adam learning rate of the network (the paper's).
    camera_lr: float = 1e-3            # Adam learning rate of the camera deltas (radians; ~0.06 deg a step at most).
    camera_mode: str = "learn"         # "learn": one camera per view from its bin; "fixed": the dataset's cameras.
    multiview: bool = True             # Eq. 2: also render and compare in another view of the same content.
    image_cameras: bool = False        # Render each image in the camera head's estimate for it, which the camera
                                       # loss pulls toward its view's camera (ours, not the paper's: one camera
                                       # per view cannot follow each car's own pose around it).
    image_cameras_start: int = 1000    # ... from this step on (the view's camera before, while the head learns it),
    image_cameras_reach: float = 30.0  # ... when within this many degrees (azimuth, elevation) of the view's camera.
    symmetric_shape: bool = True       # Mirror-symmetric shapes (see model.py).
    template: str = "sphere"           # The mesh shapes start from: "sphere" (DIB-R's) or "car" (model.py).
    holdout_fraction: float = 0.1      # Contents held out for evaluation (the last ones by id).
    iou_weight: float = 3.0            # Loss weights: the paper's (Sec. 4.1) ...
    colour_weight: float = 20.0
    laplacian_weight: float = 5.0
    flatten_weight: float = 5.0
    move_weight: float = 2.5
    percept_weight: float = 0.5
    percept_start: int = 3000          # ... perceptual loss from this step on (colour-only before) ...
    camera_weight: float = 1.0         # ... and ours, for the camera head.
    vgg_weights: str | None = None     # torchvision VGG-16 state dict for LPIPS; None = perceptual loss off.
    sigmainv: float = 7000.0           # DIB-R soft-silhouette sharpness (see render/soft_mask.py).
    boxlen: float = 0.02               # DIB-R soft-silhouette reach past a face's bounding box (NDC).
    precision: str = "float32"         # "bfloat16": the network's convolutions and the perceptual term's VGG under
                                       # autocast (the renderer and the losses stay float32).
    seed: int = 0                      # Seeds initialisation and the batch order.
    log_every: int = 20                # Steps between metrics.jsonl lines.
    sample_every: int = 500            # Steps between sample grids.
    eval_every: int = 500              # Steps between held-out IoU measurements.
    checkpoint_every: int = 500        # Steps between checkpoints (what a crash can lose at most).

    def loss_weights(self) -> LossWeights:
        return LossWeights(iou=self.iou_weight, colour=self.colour_weight, percept=self.percept_weight,
                           laplacian=self.laplacian_weight, flatten=self.flatten_weight, move=self.move_weight,
                           camera=self.camera_weight, percept_start=self.percept_start)

    def check(self) -> None:
        """InputError with one sentence for a setting that cannot work."""
        runs.check_fields(self)
        runs.check_power_of_two(self, "resolution", 16)
        runs.check_power_of_two(self, "texture_height", 4)
        runs.check_choice(self, "camera_mode", CAMERA_MODES)
        runs.check_choice(self, "template", TEMPLATES)
        runs.check_at_least(self, 1, "iterations", "batch", "log_every", "sample_every", "eval_every",
                            "checkpoint_every")
        runs.check_at_least(self, 0, "image_cameras_start", "percept_start", "seed", "iou_weight", "colour_weight",
                            "laplacian_weight", "flatten_weight", "move_weight", "percept_weight", "camera_weight",
                            "boxlen")
        runs.check_positive(self, "lr", "camera_lr", "sigmainv")
        runs.check_within(self, "holdout_fraction", 0, 1, include_high=False)
        runs.check_within(self, "image_cameras_reach", 0, 180, include_low=False)
        runs.check_choice(self, "precision", PRECISIONS)


def split_contents(content_ids, holdout_fraction: float) -> tuple[list[int], list[int]]:
    """(training, held-out) content ids: the last ``ceil(fraction * N)`` ids by value are held out, keeping
    at least one for training. Independent of the seed, so evaluation finds the same split."""
    ids = sorted(int(c) for c in content_ids)
    held = min(math.ceil(holdout_fraction * len(ids)), len(ids) - 1) if holdout_fraction > 0 else 0
    return ids[:len(ids) - held], ids[len(ids) - held:]


@dataclass
class LoadedImages:
    """A dataset's images in memory at the training resolution.

    images: [N, 3, R, R] uint8; masks: [N, 1, R, R] uint8 (255 = object); view_ids: [N] int64;
    cameras: [N, 4] float32 (azimuth, elevation, distance, fov_y) from meta.jsonl; content_ids: [N] int64.
    """

    images: torch.Tensor
    masks: torch.Tensor
    view_ids: torch.Tensor
    cameras: torch.Tensor
    content_ids: torch.Tensor

    def batch(self, indices: torch.Tensor, device) -> tuple[torch.Tensor, torch.Tensor]:
        """Float images [B, 3, R, R] and masks [B, 1, R, R] in [0, 1] of dataset indices [B]."""
        return (to_device(self.images[indices], device, torch.float32) / 255,
                to_device(self.masks[indices], device, torch.float32) / 255)


def load_images(dataset: MultiViewDataset, resolution: int, progress: bool = True) -> LoadedImages:
    """Decode every image of ``dataset`` once, resized (area-averaged) to ``resolution``."""
    images, masks, view_ids, cameras, contents = [], [], [], [], []
    with runs.loading_bar(range(len(dataset)), "loading images", enabled=progress) as indices:
        for index in indices:
            item = dataset[index]
            image, mask = item["image"][None], item["mask"][None]
            if image.shape[-1] != resolution or image.shape[-2] != resolution:
                image = F.interpolate(image, size=(resolution, resolution), mode="area")
                mask = F.interpolate(mask, size=(resolution, resolution), mode="area")
            images.append((image[0] * 255).round().to(torch.uint8))
            masks.append((mask[0] * 255).round().to(torch.uint8))
            view_ids.append(item["view_id"])
            cameras.append(item["camera"])
            contents.append(item["content_id"])
    return LoadedImages(torch.stack(images), torch.stack(masks), torch.tensor(view_ids), torch.stack(cameras).float(),
                        torch.tensor(contents))


def measure_framing(masks: torch.Tensor, azimuths: torch.Tensor) -> dict:
    """How the data frames its objects, for cropping photos alike (see ``ganverse3d.api``).

    masks: [N, 1, R, R] uint8; azimuths: [N] degrees of each image's camera. Returns JSON-able medians of the
    mask's bounding box: ``fill`` (longer side / image side), ``centre`` ((x, y) of the box centre minus the
    image centre, in image sides, y down), overall and per 30-degree azimuth bin (``bin_fill``,
    ``bin_centre``; null for bins without images).
    """
    resolution = masks.shape[-1]
    present = masks[:, 0] > 127
    rows, columns = present.any(2), present.any(1)
    keep = rows.any(1)
    if not bool(keep.any()):
        raise InputError("Every mask of the dataset is empty.")
    positions = torch.arange(resolution)

    def extent(occupied):
        first = torch.where(occupied, positions, resolution).min(1).values
        last = torch.where(occupied, positions, -1).max(1).values + 1
        return first.float(), last.float()

    top, bottom = extent(rows[keep])
    left, right = extent(columns[keep])
    fill = torch.maximum(bottom - top, right - left) / resolution
    centre = torch.stack(((left + right) / 2 / resolution - 0.5, (top + bottom) / 2 / resolution - 0.5), 1)
    bins = azimuth_bins(azimuths[keep])
    bin_fill, bin_centre = [], []
    for index in range(_AZIMUTH_BINS):
        chosen = bins == index
        bin_fill.append(round(float(fill[chosen].median()), 5) if bool(chosen.any()) else None)
        bin_centre.append([round(float(v), 5) for v in centre[chosen].median(0).values] if bool(chosen.any()) else None)
    return {"fill": round(float(fill.median()), 5), "centre": [round(float(v), 5) for v in centre.median(0).values],
            "bin_fill": bin_fill, "bin_centre": bin_centre}


def spread_over_contents(indices: torch.Tensor, content_ids: torch.Tensor) -> torch.Tensor:
    """Dataset ``indices`` [N] reordered so that contents alternate: every content's first image, then every
    content's second, ... (so the first few show different objects). ``content_ids``: [dataset size]."""
    contents = content_ids[indices]
    rank = torch.zeros_like(indices)
    for content in contents.unique():
        chosen = (contents == content).nonzero()[:, 0]
        rank[chosen] = torch.arange(len(chosen))
    order = sorted(range(len(indices)), key=lambda k: (int(rank[k]), int(contents[k])))
    return indices[order]


class Trainer(RunTrainer):
    """The network, cameras, optimiser and data of one training run (the loop and checkpoints:
    :mod:`ganverse3d.runs`)."""

    config_class = TrainConfig
    stage = "inverse"
    length_field = "iterations"
    resumable = ("precision",)
    old_checkpoint_names = {"rng.batches": "rng_batches"}

    def __init__(self, config: TrainConfig, run_dir: Path | None, device, progress: bool = True):
        super().__init__(config, run_dir, device, progress)
        device = self.device
        self.rng_batches = seeded_rng(config.seed)   # batch indices
        self.rng_views = random.Random(config.seed)  # the other view of each item
        self.dataset = MultiViewDataset(config.data, cache=False)
        self.data = load_images(self.dataset, config.resolution, progress)
        train_contents, heldout_contents = split_contents(self.dataset.content_ids, config.holdout_fraction)
        self.heldout_contents = heldout_contents
        in_training = torch.isin(self.data.content_ids, torch.tensor(train_contents))
        self.train_indices = in_training.nonzero()[:, 0]
        self.heldout_indices = (~in_training).nonzero()[:, 0]

        views = self.dataset.manifest["views"]
        self.model = InverseGraphicsNet(
            resolution=config.resolution, texture_height=config.texture_height, symmetric_shape=config.symmetric_shape,
            template=config.template,
            reference_distance=float(self.data.cameras[:, 2].mean()), fov_y=float(self.data.cameras[:, 3].mean())
        ).to(device)
        self.cameras = ViewCameras(views, learnable=config.camera_mode == "learn").to(device)
        parameter_groups = [{"params": list(self.model.parameters()), "lr": config.lr}]
        if config.camera_mode == "learn":
            parameter_groups.append({"params": list(self.cameras.parameters()), "lr": config.camera_lr})
        self.optimizer = torch.optim.Adam(parameter_groups)
        template = template_sphere(device=device)
        self.edges, self.edge_faces = template.edges, template.edge_faces
        self.laplacian = template.laplacian().to_dense()
        self.weights = config.loss_weights()
        self.perceptual = PerceptualLoss(config.vgg_weights).to(device) if config.vgg_weights else None
        self.framing = measure_framing(self.data.masks[self.train_indices], self.data.cameras[self.train_indices, 0])
        monitor = self.heldout_indices if len(self.heldout_indices) else self.train_indices
        self.monitor_name = "heldout" if len(self.heldout_indices) else "train_subset"
        spread = spread_over_contents(monitor, self.data.content_ids)
        self.monitor_indices = spread[:_MONITOR_ITEMS]
        self.sample_indices = spread[:_SAMPLE_ITEMS]
        # The step's forward pass, with the network's and the cameras' gradients averaged over the ranks.
        self.loss_pass = self.parallel(torch.nn.ModuleList([self.model, self.cameras]), self.losses)

    # -- cameras --------------------------------------------------------------------------------------------
    def cameras_of(self, indices: torch.Tensor):
        """The cameras the images at dataset ``indices`` [B] were taken with, as training believes them."""
        if self.config.camera_mode == "fixed":
            return cameras_from_batch(to_device(self.data.cameras[indices], self.device))
        return self.cameras(to_device(self.data.view_ids[indices], self.device))

    # -- the run kit's parts ----------------------------------------------------------------------------------
    @classmethod
    def run_name(cls, config: TrainConfig) -> str:
        return (f"{Path(config.data).name}-r{config.resolution}-{config.camera_mode}"
                + ("-image-cameras" if config.image_cameras else ""))

    @property
    def total_steps(self) -> int:
        return self.config.iterations

    @property
    def output_path(self) -> Path:
        return self.run_dir / "checkpoints" / "inverse.safetensors"

    def checkpointed(self) -> dict:
        return {"model": self.model, "cameras": self.cameras, "optimizer": self.optimizer,
                "rng_batches": self.rng_batches, "rng_views": self.rng_views}

    def write_outputs(self) -> None:
        cameras = self.cameras.to_json()
        write_json(self.run_dir / "cameras.json", {"step": self.step, "camera_mode": self.config.camera_mode,
                                                   "views": cameras})
        save_module(self.output_path, self.model,
                    config={"train": dataclasses.asdict(self.config), "framing": self.framing,
                            "view_cameras": cameras, "heldout_contents": self.heldout_contents,
                            "data": str(Path(self.config.data).resolve())},
                    provenance={"stage": "inverse train", "data": str(self.config.data), "step": self.step})

    def periodic(self) -> list[Periodic]:
        return [Periodic(self.config.eval_every, self.monitor), Periodic(self.config.sample_every, self.write_samples)]

    def on_start(self) -> None:
        if self.perceptual is None:
            tqdm.write("Perceptual loss off: no vgg_weights (a torchvision VGG-16 state dict) was given.")
        self.write_samples()

    def log_values(self, stats: dict) -> dict:
        return {**{name: round(value, 6) for name, value in stats.items()}, **self.camera_stats()}

    def postfix(self, stats: dict) -> dict:
        return {"loss": f"{stats['loss']:.3f}", "iou": f"{stats['train_iou']:.3f}"}

    # -- training -------------------------------------------------------------------------------------------
    def train_step(self) -> dict:
        config = self.config
        # The global batch's items (and their other views) from the shared generators; this rank trains on its rows.
        picks = torch.randint(len(self.train_indices), (config.batch,), generator=self.rng_batches)
        first = self.train_indices[picks]
        indices = [first]
        if config.multiview:
            indices.append(torch.tensor([self.dataset.other_view(int(i), self.rng_views) for i in first]))
        indices = [self.shard(view_indices) for view_indices in indices]
        self.model.train()
        loss, stats = self.loss_pass(indices)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        self.step += 1
        return stats

    def losses(self, indices: list[torch.Tensor]) -> tuple[torch.Tensor, dict]:
        """Eq. 2's loss of the dataset items ``indices`` (one tensor [B] per view: the images, and their other
        views when multi-view) and its statistics."""
        config, model = self.config, self.model
        targets = [self.data.batch(view_indices, self.device) for view_indices in indices]
        images, masks = targets[0]
        view_cameras = concat_cameras([self.cameras_of(i) for i in indices])
        views, batch = len(indices), len(indices[0])
        with autocast(self.device, config.precision):
            prediction = model(images, masks)
        image_cameras = self.image_cameras_active()
        if image_cameras:
            with autocast(self.device, config.precision):
                other = [model.estimate_camera(image, mask) for image, mask in targets[1:]]
            render_cameras, kept = within_reach(concat_cameras([prediction.camera] + [camera for camera, _ in other]),
                                                view_cameras, config.image_cameras_reach)
            estimates = torch.cat([prediction.camera_vector] + [vector for _, vector in other])
            # Not detached: each view's camera becomes the centre of its images' cameras.
            camera_term = camera_loss(estimates, camera_to_vector(view_cameras, model.reference_distance))
        else:
            render_cameras = view_cameras
            camera_term = camera_loss(prediction.camera_vector,
                                      camera_to_vector(view_cameras[:batch], model.reference_distance).detach())
        rendered = render_mesh(prediction.verts.repeat(views, 1, 1), model.faces, model.face_uvs,
                               prediction.texture.repeat(views, 1, 1, 1), render_cameras, config.resolution,
                               sigmainv=config.sigmainv, boxlen=config.boxlen)
        perceptual = self.perceptual if self.step >= self.weights.percept_start else None
        terms = []
        with autocast(self.device, config.precision):  # the perceptual term's VGG; the others are float32 anyway
            for view, (target_images, target_masks) in enumerate(targets):
                rows = slice(view * batch, (view + 1) * batch)
                terms.append(view_terms(rendered.image[rows], rendered.soft_mask[rows], target_images, target_masks,
                                        perceptual))
        shape_terms = {"laplacian": laplacian_loss(prediction.offsets, self.laplacian),
                       "flatten": flatten_loss(prediction.verts, model.faces, self.edges, self.edge_faces),
                       "move": move_loss(prediction.offsets)}
        loss, stats = total_loss(terms, shape_terms, camera_term, self.weights)
        stats["train_iou"] = mask_iou(rendered.mask[:batch].detach(), masks).mean()
        if image_cameras:
            stats["image_cameras_kept"] = kept.float().mean()
        return loss, stats

    def image_cameras_active(self) -> bool:
        return self.config.image_cameras and self.step >= self.config.image_cameras_start

    def camera_stats(self) -> dict:
        moved = self.cameras.moved_degrees()
        per_view = {str(v): round(float(m), 3) for v, m in zip(self.cameras.view_ids.tolist(), moved)}
        return {"camera_moved_deg_mean": round(float(moved.mean()), 4),
                "camera_moved_deg_max": round(float(moved.max()), 4), "camera_moved_deg": per_view}

    @torch.no_grad()
    def monitor(self) -> dict:
        """Input-view IoU on the held-out images (or a training subset when nothing is held out), with the
        cameras as training believes them and with the network's own camera estimate."""
        self.model.eval()
        images, masks = self.data.batch(self.monitor_indices, self.device)
        result = measure_reprojection(self.model, images, masks, self.cameras_of(self.monitor_indices))
        name = self.monitor_name
        return {f"{name}_iou": round(float(result["iou"].mean()), 5),
                f"{name}_iou_predicted_camera": round(float(result["iou_predicted_camera"].mean()), 5),
                f"{name}_azimuth_error_deg": round(float(result["azimuth_error_deg"].mean()), 3)}

    @torch.no_grad()
    def write_samples(self) -> None:
        self.model.eval()
        images, masks = self.data.batch(self.sample_indices, self.device)
        prediction = self.model(images, masks)
        cameras = prediction.camera if self.image_cameras_active() else self.cameras_of(self.sample_indices)
        renders = render_around(prediction.verts, self.model.faces, self.model.face_uvs, prediction.texture, cameras,
                                self.config.resolution, azimuth_offsets=(0.0, 90.0, 180.0, 270.0))
        columns = [images.cpu()] + [r.cpu() for r in renders]
        grid = torch.stack(columns, dim=1).reshape(-1, 3, self.config.resolution, self.config.resolution)
        save_png(self.run_dir / "samples" / f"step{self.step:07d}.png", image_grid(grid, columns=len(columns)))


# train(config) starts a run, train(resume=run_folder, **changes) resumes one: see RunTrainer.train.
train = Trainer.train
