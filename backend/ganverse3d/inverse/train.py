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
import json
import math
import random
import time
import tomllib
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from tqdm import tqdm

from ..bundle import flatten_optimizer, load_state, restore_optimizer, save_module, save_state
from ..dataset import MultiViewDataset, cameras_from_batch, read_manifest
from ..devices import resolve_device
from ..errors import InputError
from ..files import image_grid, new_run_dir, save_png, write_json, write_text
from ..geometry import AZIMUTH_BIN_DEG, azimuth_bins, template_sphere
from ..render import render_mesh
from ..render.turntable import render_around
from .cameras import ViewCameras, concat_cameras, within_reach
from .evaluate import measure_reprojection
from .losses import (LossWeights, PerceptualLoss, camera_loss, flatten_loss, laplacian_loss, mask_iou, move_loss,
                     total_loss, view_terms)
from .model import InverseGraphicsNet, camera_to_vector

CAMERA_MODES = ("learn", "fixed")
# Images in the sample grids and in the periodic held-out measurement.
_SAMPLE_ITEMS = 8
_MONITOR_ITEMS = 64
_AZIMUTH_BINS = round(360 / AZIMUTH_BIN_DEG)


@dataclass
class TrainConfig:
    """Everything that defines a run (saved to ``config.json``; ``--config cfg.toml`` sets any field)."""

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
        if self.resolution < 16 or self.resolution & (self.resolution - 1):
            raise InputError(f"resolution must be a power of two of at least 16, not {self.resolution}.")
        if self.texture_height < 4 or self.texture_height & (self.texture_height - 1):
            raise InputError(f"texture_height must be a power of two of at least 4, not {self.texture_height}.")
        if self.camera_mode not in CAMERA_MODES:
            raise InputError(f"camera_mode must be one of {', '.join(CAMERA_MODES)}, not {self.camera_mode!r}.")
        if self.iterations < 1 or self.batch < 1:
            raise InputError("iterations and batch must be at least 1.")
        if not 0 <= self.holdout_fraction < 1:
            raise InputError(f"holdout_fraction must lie in [0, 1), not {self.holdout_fraction}.")
        if self.image_cameras_start < 0:
            raise InputError(f"image_cameras_start must be at least 0, not {self.image_cameras_start}.")
        if not 0 < self.image_cameras_reach <= 180:
            raise InputError(f"image_cameras_reach must lie in (0, 180] degrees, not {self.image_cameras_reach}.")
        if min(self.log_every, self.sample_every, self.eval_every, self.checkpoint_every) < 1:
            raise InputError("log_every, sample_every, eval_every and checkpoint_every must be at least 1.")


def read_config_file(path) -> dict:
    """The fields of a TOML training config (any :class:`TrainConfig` field names, top level)."""
    path = Path(path)
    try:
        values = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise InputError(f"The config file {path} does not exist.") from None
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as error:
        raise InputError(f"Cannot read {path} as TOML: {error}.") from None
    types = {field.name: field.type for field in dataclasses.fields(TrainConfig)}
    unknown = sorted(set(values) - set(types))
    if unknown:
        raise InputError(f"{path} has unknown settings {', '.join(unknown)}; see `ganverse3d inverse train --help`.")
    for name, value in values.items():
        if not _has_type(value, types[name]):
            raise InputError(f"{path} sets {name} to {value!r}, but it must be of type {types[name]}.")
    return values


def _has_type(value, annotation: str) -> bool:
    """Whether a TOML value fits a TrainConfig field annotation ("int", "float", "bool", "str", "str | None")."""
    if annotation == "bool":
        return isinstance(value, bool)
    if annotation == "int":
        return isinstance(value, int) and not isinstance(value, bool)
    if annotation == "float":
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    return isinstance(value, str)


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
        return (self.images[indices].to(device, torch.float32) / 255, self.masks[indices].to(device, torch.float32) / 255)


def load_images(dataset: MultiViewDataset, resolution: int, progress: bool = True) -> LoadedImages:
    """Decode every image of ``dataset`` once, resized (area-averaged) to ``resolution``."""
    images, masks, view_ids, cameras, contents = [], [], [], [], []
    for index in tqdm(range(len(dataset)), desc="loading images", unit="img", leave=False, disable=not progress):
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


class Trainer:
    """The network, cameras, optimiser, data and run folder of one training run."""

    def __init__(self, config: TrainConfig, run_dir: Path, device: torch.device, progress: bool = True):
        self.config, self.run_dir, self.device, self.progress = config, run_dir, device, progress
        torch.manual_seed(config.seed)
        self.generator = torch.Generator().manual_seed(config.seed)   # batch indices
        self.rng = random.Random(config.seed)                          # the other view of each item
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
        self.step = 0
        monitor = self.heldout_indices if len(self.heldout_indices) else self.train_indices
        self.monitor_name = "heldout" if len(self.heldout_indices) else "train_subset"
        spread = spread_over_contents(monitor, self.data.content_ids)
        self.monitor_indices = spread[:_MONITOR_ITEMS]
        self.sample_indices = spread[:_SAMPLE_ITEMS]

    # -- cameras --------------------------------------------------------------------------------------------
    def cameras_of(self, indices: torch.Tensor):
        """The cameras the images at dataset ``indices`` [B] were taken with, as training believes them."""
        if self.config.camera_mode == "fixed":
            return cameras_from_batch(self.data.cameras[indices].to(self.device))
        return self.cameras(self.data.view_ids[indices].to(self.device))

    # -- checkpoints ----------------------------------------------------------------------------------------
    @property
    def state_path(self) -> Path:
        return self.run_dir / "checkpoints" / "state.safetensors"

    @property
    def model_path(self) -> Path:
        return self.run_dir / "checkpoints" / "inverse.safetensors"

    def save_checkpoint(self) -> None:
        tensors = {f"model.{k}": v for k, v in self.model.state_dict().items()}
        tensors.update({f"cameras.{k}": v for k, v in self.cameras.state_dict().items()})
        optimizer_tensors, optimizer_rest = flatten_optimizer("optimizer", self.optimizer)
        tensors.update(optimizer_tensors)
        tensors["rng.torch"] = torch.get_rng_state()
        tensors["rng.batches"] = self.generator.get_state()
        save_state(self.state_path, tensors, {"step": self.step, "optimizer": optimizer_rest,
                                              "rng_views": _random_state_to_json(self.rng.getstate())})
        cameras = self.cameras.to_json()
        write_json(self.run_dir / "cameras.json", {"step": self.step, "camera_mode": self.config.camera_mode,
                                                   "views": cameras})
        save_module(self.model_path, self.model,
                    config={"train": dataclasses.asdict(self.config), "framing": self.framing,
                            "view_cameras": cameras, "heldout_contents": self.heldout_contents,
                            "data": str(Path(self.config.data).resolve())},
                    provenance={"stage": "inverse train", "data": str(self.config.data), "step": self.step})

    def load_checkpoint(self) -> None:
        tensors, meta = load_state(self.state_path, device=self.device)
        self.model.load_state_dict({k[len("model."):]: v for k, v in tensors.items() if k.startswith("model.")})
        self.cameras.load_state_dict({k[len("cameras."):]: v for k, v in tensors.items() if k.startswith("cameras.")})
        restore_optimizer("optimizer", self.optimizer, tensors, meta["optimizer"])
        torch.set_rng_state(tensors["rng.torch"].cpu())
        self.generator.set_state(tensors["rng.batches"].cpu())
        self.rng.setstate(_random_state_from_json(meta["rng_views"]))
        self.step = int(meta["step"])
        # Lines logged after the checkpoint describe steps that will be trained again.
        metrics_path = self.run_dir / "metrics.jsonl"
        if metrics_path.is_file():
            lines = metrics_path.read_text().splitlines()
            write_text(metrics_path, "".join(line + "\n" for line in lines if json.loads(line)["step"] <= self.step))

    # -- training -------------------------------------------------------------------------------------------
    def train_step(self) -> dict:
        config, model = self.config, self.model
        picks = torch.randint(len(self.train_indices), (config.batch,), generator=self.generator)
        first = self.train_indices[picks]
        indices = [first]
        if config.multiview:
            indices.append(torch.tensor([self.dataset.other_view(int(i), self.rng) for i in first]))
        targets = [self.data.batch(view_indices, self.device) for view_indices in indices]
        images, masks = targets[0]
        model.train()
        view_cameras = concat_cameras([self.cameras_of(i) for i in indices])
        views, batch = len(indices), config.batch
        prediction = model(images, masks)
        image_cameras = self.image_cameras_active()
        if image_cameras:
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
        for view, (target_images, target_masks) in enumerate(targets):
            rows = slice(view * batch, (view + 1) * batch)
            terms.append(view_terms(rendered.image[rows], rendered.soft_mask[rows], target_images, target_masks,
                                    perceptual))
        shape_terms = {"laplacian": laplacian_loss(prediction.offsets, self.laplacian),
                       "flatten": flatten_loss(prediction.verts, model.faces, self.edges, self.edge_faces),
                       "move": move_loss(prediction.offsets)}
        loss, stats = total_loss(terms, shape_terms, camera_term, self.weights)

        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        self.step += 1
        stats["train_iou"] = float(mask_iou(rendered.mask[:batch], masks).mean())
        if image_cameras:
            stats["image_cameras_kept"] = float(kept.float().mean())
        return stats

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

    def run(self) -> Path:
        config = self.config
        metrics_path = self.run_dir / "metrics.jsonl"
        if self.step == 0:
            if self.perceptual is None:
                tqdm.write("Perceptual loss off: no vgg_weights (a torchvision VGG-16 state dict) was given.")
            self.write_samples()
        started, steps_timed = time.perf_counter(), 0
        with tqdm(total=config.iterations, initial=self.step, desc="inverse train", unit="step",
                  disable=not self.progress) as progress:
            while self.step < config.iterations:
                stats = self.train_step()
                steps_timed += 1
                progress.update(1)
                progress.set_postfix(loss=f"{stats['loss']:.3f}", iou=f"{stats['train_iou']:.3f}")
                last = self.step == config.iterations
                line = {}
                if self.step % config.log_every == 0 or last:
                    line.update(sec_per_step=round((time.perf_counter() - started) / steps_timed, 4),
                                **{k: round(v, 6) for k, v in stats.items()}, **self.camera_stats())
                if self.step % config.eval_every == 0 or last:
                    line.update(self.monitor())
                if line:
                    with open(metrics_path, "a") as handle:
                        handle.write(json.dumps({"step": self.step, **line}) + "\n")
                if self.step % config.sample_every == 0 or last:
                    self.write_samples()
                if self.step % config.checkpoint_every == 0 or last:
                    self.save_checkpoint()
        return self.model_path


def _random_state_to_json(state) -> list:
    version, internal, gauss = state
    return [version, list(internal), gauss]


def _random_state_from_json(state) -> tuple:
    version, internal, gauss = state
    return (version, tuple(internal), gauss)


def train(config: TrainConfig | None = None, runs_root="runs", resume=None, device="auto",
          iterations: int | None = None, progress: bool = True) -> Path:
    """Train (or resume) the inverse-graphics network; returns the path of the model bundle.

    Args:
        config: a new run's configuration (ignored when resuming: a run keeps its own config.json).
        runs_root: folder holding ``inverse/<NNNNN-name>/`` run folders.
        resume: an existing run folder to continue.
        device: "auto", "cpu" or "cuda".
        iterations: when resuming, train to this many steps instead of the configured number.
        progress: show progress bars.
    """
    device = resolve_device(device)
    if resume is not None:
        run_dir = Path(resume)
        if not (run_dir / "config.json").is_file():
            raise InputError(f"{run_dir} is not an inverse training run folder (no config.json).")
        config = TrainConfig(**json.loads((run_dir / "config.json").read_text()))
        if iterations is not None:
            config.iterations = iterations
            config.check()
            write_json(run_dir / "config.json", dataclasses.asdict(config))
        trainer = Trainer(config, run_dir, device, progress)
        if trainer.state_path.is_file():
            trainer.load_checkpoint()
        return trainer.run()
    if config is None:
        raise InputError("Give a training configuration or a run folder to resume.")
    config.check()
    read_manifest(config.data)  # fail on a bad dataset before creating the run folder
    if config.vgg_weights:
        PerceptualLoss(config.vgg_weights)  # and on bad VGG weights
    run_dir = new_run_dir(runs_root, "inverse", f"{Path(config.data).name}-r{config.resolution}-{config.camera_mode}"
                                                      + ("-image-cameras" if config.image_cameras else ""))
    write_json(run_dir / "config.json", dataclasses.asdict(config))
    return Trainer(config, run_dir, device, progress).run()
