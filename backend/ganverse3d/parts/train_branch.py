"""Training the inverse network's part branch (``ganverse3d inverse train-parts``).

The data is a multi-view dataset (:mod:`ganverse3d.dataset.format`) whose images carry part labels: a
``parts/`` folder beside ``images/`` (value = part id + 1, 0 = no car: a world dataset's encoding and
``parts synth``'s), or, for a world-made dataset (``ganverse3d dataset world``), the ground-truth meshes its
``meta.jsonl`` names, rendered from each image's exact camera. The frozen inverse network reads every image
once (image code and mesh); a step then draws ``batch`` images, each with a random view of the same car (itself
included), renders the image's predicted mesh with its :class:`~ganverse3d.parts.branch.PartBranch` part texture
from that view's camera, and takes the cross-entropy against that view's labels wherever both the mesh and the
car are (each part weighted by frequency^-``balance``, so that a headlight's pixels count). Parts the
input view does not show are learnt from the other views, as DIB-R's multi-view training learns the far side.

This needs the predicted mesh to live in the cameras' object space, as it does for an inverse network trained
with the dataset's cameras (the oracle on world data; the paper's network on its GAN views).

A run lives in ``runs/part_branch/<NNNNN-name>/`` (the run kit, :mod:`ganverse3d.runs`): ``config.json``,
``metrics.jsonl`` (loss; at each checkpoint the held-out cars' part mIoU in their other views),
``samples/*.png`` (held-out input | truth in another view | prediction there), ``checkpoints/state.safetensors``
and ``checkpoints/part_branch.safetensors`` (the bundle, copied to ``--out`` when the run ends).

**Several processes** (``torchrun``, :mod:`ganverse3d.distributed`): ``batch`` is the global batch; every rank
draws its images and their other views alike and renders its rows of them, the branch's gradients averaged over
the ranks. A rank's loss is its pixels' weighted cross-entropy summed, over the ranks' mean sum of pixel weights,
so that the ranks' average is the global batch's weighted mean: the branch (which has no BatchNorm) trains on two
processes what it trains on one, up to the order of float sums.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import torch

from .. import assets, runs
from ..bundle import load_module, save_module
from ..dataset.format import MultiViewDataset, cameras_from_batch
from ..dataset.segment import file_sha256
from ..errors import InputError, setting
from ..export import load_mesh
from ..files import image_grid, is_file, save_png, shown_path
from ..inverse.model import InverseGraphicsNet
from .branch import (PART_NAMES, PartBranch, face_part_labels, render_face_labels, render_part_labels,
                     render_part_logits, split_for_parts)
from .annotations import read_label_file
from .interpreter import class_weights, colourise, confusion_matrix, iou_scores

_SAMPLE_ITEMS = 8
_BATCH = 64  # images per batch when reading the dataset through the frozen network


@dataclass(frozen=True)
class BranchTrainConfig:
    """Settings of ``ganverse3d inverse train-parts`` (all recorded in the bundle)."""

    data: str                     # multi-view dataset with part labels (module docstring)
    inverse: str = "oracle"       # the frozen inverse network: a shipped name or a bundle path
    channels: int = 64            # the decoder's channels at its 4 x 8 start
    steps: int = 3000
    batch: int = 32               # images per step
    learning_rate: float = 1e-3   # Adam
    balance: float = 0.5          # cross-entropy weight of a part = its pixel frequency ^ -balance
    holdout: float = 0.1          # share of the cars held out for the checkpoints' scores
    seed: int = 0
    log_every: int = 50
    checkpoint_every: int = 500

    def check(self) -> None:
        runs.check_fields(self)
        runs.check_at_least(self, 16, "channels")
        runs.check_at_least(self, 1, "steps", "batch", "log_every", "checkpoint_every")
        runs.check_at_least(self, 0, "seed")
        runs.check_within(self, "balance", 0, 1)
        runs.check_positive(self, "learning_rate")
        runs.check_within(self, "holdout", 0, 1, include_high=False)


def load_inverse(spec: str, device) -> tuple[InverseGraphicsNet, Path]:
    """The frozen inverse network a user named (shipped name or path) and its file."""
    path = assets.resolve("inverse", spec, setting_name="inverse")
    return load_module(path, InverseGraphicsNet, device=device).requires_grad_(False).eval(), path


def view_part_labels(dataset: MultiViewDataset) -> torch.Tensor:
    """Part ids [N, H, W] int8 of every image of ``dataset`` (-1 = no car), from its ``parts/`` folder or its
    ground-truth meshes (module docstring)."""
    folder = dataset.folder
    height, width = dataset.manifest["resolution"]
    labels = torch.full((len(dataset), height, width), -1, dtype=torch.int8)
    if (folder / "parts").is_dir():
        for index, line in enumerate(dataset.meta):
            path = folder / "parts" / Path(line["image"]).name
            if not is_file(path):
                raise InputError(f"{shown_path(folder)}/parts lacks {path.name}: every image needs its part labels.")
            labels[index] = torch.from_numpy(read_label_file(path, (height, width)) - 1).to(torch.int8)
        return labels
    if not all("mesh" in line for line in dataset.meta):
        raise InputError(f"{shown_path(folder)} has no part labels: it needs a parts/ folder (`ganverse3d parts "
                         f"label` ...) or ground-truth meshes (`ganverse3d dataset world`); set {setting('data')} "
                         f"to one that has.")
    for content, indices in dataset.by_content.items():
        mesh = load_mesh(folder / dataset.meta[indices[0]]["mesh"])
        if mesh.part_labels is None:
            raise InputError(f"The mesh of car {content} in {shown_path(folder)} carries no part labels.")
        cameras = cameras_from_batch(torch.stack([dataset[index]["camera"] for index in indices]))
        verts = mesh.verts[None].expand(len(indices), -1, -1)
        rendered = render_face_labels(verts, mesh.faces, mesh.part_labels, cameras, height)
        labels[indices] = rendered.to(torch.int8)
    return labels


@dataclass
class PartData:
    """A labelled multi-view dataset as the frozen inverse network reads it (tensors on the CPU)."""

    images: torch.Tensor    # [N, 3, R, R] in [0, 1]
    codes: torch.Tensor     # [N, D] the network's image codes
    textures: torch.Tensor  # [N, 3, Ht, 2 Ht] its predicted colour textures
    verts: torch.Tensor     # [N, V, 3] its predicted meshes, object space
    cameras: torch.Tensor   # [N, 4] (azimuth, elevation, distance, fov_y) of each image
    labels: torch.Tensor    # [N, R, R] int8 part ids, -1 = no car
    contents: torch.Tensor  # [N] content id of each image


@torch.no_grad()
def read_part_data(dataset: MultiViewDataset, inverse: InverseGraphicsNet, progress: bool = True) -> PartData:
    """Run the frozen ``inverse`` over every image of ``dataset`` and gather what the branch trains on."""
    height, width = dataset.manifest["resolution"]
    if (height, width) != (inverse.resolution, inverse.resolution):
        raise InputError(f"The {setting('data')} {shown_path(dataset.folder)} has {height}x{width} images and the "
                         f"{setting('inverse')} network reads {inverse.resolution}x{inverse.resolution}.")
    device = inverse.template_verts.device
    items = [dataset[index] for index in runs.loading_bar(range(len(dataset)), "parts data", enabled=progress)]
    images = torch.stack([item["image"] for item in items])
    masks = torch.stack([item["mask"] for item in items])
    codes, textures, verts = [], [], []
    for start in range(0, len(items), _BATCH):
        image, mask = images[start:start + _BATCH].to(device), masks[start:start + _BATCH].to(device)
        prediction = inverse(image, mask)
        codes.append(inverse.image_code(image, mask).cpu())
        textures.append(prediction.texture.cpu())
        verts.append(prediction.verts.cpu())
    return PartData(images=images, codes=torch.cat(codes), textures=torch.cat(textures), verts=torch.cat(verts),
                    cameras=torch.stack([item["camera"] for item in items]), labels=view_part_labels(dataset),
                    contents=torch.tensor([item["content_id"] for item in items]))


@torch.no_grad()
def novel_view_scores(data: PartData, inverse: InverseGraphicsNet, logits_of, contents=None,
                      per_face: bool = False) -> dict:
    """How well part textures label the cars in views they were not made from.

    For every car (of ``contents``, default all), its first image is the input: ``logits_of(indices)`` gives the
    part textures [n, P, Ht, 2 Ht] of those images (the branch on their codes and textures, or a baseline's);
    the input's predicted mesh with that texture is rendered from each *other* view's camera and compared with
    the view's labels, background included (class 0 = no car, then the parts). Returns the scores of
    ``parts.interpreter.iou_scores`` (``per_class``, ``miou``, ``miou_parts``) and ``views`` (how many were
    scored). With ``per_face`` the textures are first read back as one part per face of the split mesh
    (:func:`split_for_parts`, :func:`face_part_labels`: the reconstruction's ``part_mesh``, what an exported car
    and Blender's material slots get).
    """
    device = inverse.template_verts.device
    wanted = set(int(c) for c in (data.contents.unique() if contents is None else contents))
    firsts, others = [], []
    for content in sorted(wanted):
        indices = (data.contents == content).nonzero().flatten().tolist()
        firsts += [indices[0]] * (len(indices) - 1)
        others += indices[1:]
    classes = len(PART_NAMES) + 1
    confusion = torch.zeros(classes, classes, dtype=torch.int64)
    for start in range(0, len(firsts), _BATCH):
        first, other = torch.tensor(firsts[start:start + _BATCH]), torch.tensor(others[start:start + _BATCH])
        logits, verts = logits_of(first).to(device), data.verts[first].to(device)
        cameras = cameras_from_batch(data.cameras[other].to(device))
        if per_face:
            split_verts, split, split_uvs = split_for_parts(verts, inverse.faces, inverse.face_uvs)
            predicted = render_face_labels(split_verts, split, face_part_labels(logits, split_uvs), cameras,
                                           inverse.resolution)
        else:
            predicted = render_part_labels(verts, inverse.faces, inverse.face_uvs, logits, cameras, inverse.resolution)
        confusion += confusion_matrix(predicted.cpu() + 1, data.labels[other].long() + 1, classes)
    return {**iou_scores(confusion), "views": len(others)}


class BranchTrainer(runs.RunTrainer):
    """The part branch, its optimiser and its data (the loop and checkpoints: :mod:`ganverse3d.runs`)."""

    config_class = BranchTrainConfig
    stage = "part_branch"
    length_field = "steps"

    def __init__(self, config: BranchTrainConfig, run_dir: Path | None, device, progress: bool = True):
        super().__init__(config, run_dir, device, progress)
        self.inverse, self.inverse_path = load_inverse(config.inverse, self.device)
        self.data = read_part_data(MultiViewDataset(config.data), self.inverse, progress)
        self.rng = runs.seeded_rng(config.seed)
        contents = self.data.contents.unique()
        held = contents[torch.randperm(len(contents), generator=torch.Generator().manual_seed(config.seed))]
        self.held_out = held[:round(config.holdout * len(contents))]
        self.train_items = (~torch.isin(self.data.contents, self.held_out)).nonzero().flatten()
        if len(self.train_items) == 0:
            raise InputError(f"The {setting('holdout')} {config.holdout} leaves no car of {shown_path(config.data)} "
                             f"to train on.")
        car_pixels = self.data.labels[self.train_items].long()
        self.class_weights = class_weights(car_pixels[car_pixels >= 0], config.balance, len(PART_NAMES))
        self.branch = PartBranch(feature_dim=self.data.codes.shape[1], texture_height=self.inverse.texture_height,
                                 channels=config.channels).to(self.device)
        self.optimizer = torch.optim.Adam(self.branch.parameters(), lr=config.learning_rate)
        self.loss_pass = self.parallel(self.branch, self.loss)  # gradients averaged over the ranks

    @classmethod
    def run_name(cls, config: BranchTrainConfig) -> str:
        return f"{Path(config.data).name}-{Path(config.inverse).stem}"

    @property
    def total_steps(self) -> int:
        return self.config.steps

    @property
    def output_path(self) -> Path:
        return self.run_dir / "checkpoints" / "part_branch.safetensors"

    def checkpointed(self) -> dict:
        return {"branch": self.branch, "optimizer": self.optimizer, "rng": self.rng}

    def periodic(self) -> list[runs.Periodic]:
        return [runs.Periodic(self.config.checkpoint_every, self.measure, line="held_out")]

    def postfix(self, stats: dict) -> dict:
        return {"loss": f"{stats['loss']:.3f}"}

    def other_views(self, items: torch.Tensor) -> torch.Tensor:
        """For each image index, a random image of the same car (itself included)."""
        contents = self.data.contents
        choices = []
        for item in items.tolist():
            siblings = (contents == contents[item]).nonzero().flatten()
            choices.append(siblings[torch.randint(len(siblings), (1,), generator=self.rng)])
        return torch.cat(choices)

    def train_step(self) -> dict:
        # The global batch's images and other views from the shared generator; this rank renders its rows.
        items = self.train_items[torch.randint(len(self.train_items), (self.config.batch,), generator=self.rng)]
        views = self.other_views(items)
        self.branch.train()
        loss = self.loss_pass(self.shard(items), self.shard(views))
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        self.step += 1
        return {"loss": self.average(loss.detach())}  # the global batch's loss (this rank's share is not)

    def loss(self, items: torch.Tensor, views: torch.Tensor) -> torch.Tensor:
        """The class-weighted cross-entropy of the part textures of the images ``items`` [B] (dataset indices) on
        their meshes rendered from the cameras of ``views`` [B] (other images of the same cars) against those views'
        labels, where both the mesh and the car are: the weighted mean over the global batch's pixels
        (:meth:`RunTrainer.cross_entropy`)."""
        data, device = self.data, self.device
        logits = self.branch(data.codes[items].to(device), data.textures[items].to(device))
        image, covered = render_part_logits(data.verts[items].to(device), self.inverse.faces, self.inverse.face_uvs,
                                            logits, cameras_from_batch(data.cameras[views].to(device)),
                                            self.inverse.resolution)
        truth = data.labels[views].long().to(device)
        scored = covered & (truth >= 0)
        pixel_logits = image.permute(0, 2, 3, 1)[scored]
        return self.cross_entropy(pixel_logits, truth[scored], self.class_weights.to(device))

    @torch.no_grad()
    def branch_logits(self, indices: torch.Tensor) -> torch.Tensor:
        self.branch.eval()
        return self.branch(self.data.codes[indices].to(self.device), self.data.textures[indices].to(self.device))

    def measure(self) -> dict:
        """The held-out cars' part scores in their other views (:func:`novel_view_scores`)."""
        if len(self.held_out) == 0:
            return {}
        scores = novel_view_scores(self.data, self.inverse, self.branch_logits, self.held_out)
        return {"miou": round(scores["miou"], 4), "miou_parts": round(scores["miou_parts"], 4)}

    def write_outputs(self) -> None:
        save_module(self.output_path, self.branch, config=dataclasses.asdict(self.config),
                    provenance={"stage": "inverse train-parts", "steps": self.step, "inverse": self.inverse_path.name,
                                "inverse_sha256": file_sha256(self.inverse_path), "held_out": self.measure()})
        self.write_samples()

    @torch.no_grad()
    def write_samples(self) -> None:
        """Held-out (else training) inputs | the truth in another view | the branch's labels there."""
        pool = self.held_out if len(self.held_out) else self.data.contents.unique()
        firsts, others = [], []
        for content in pool[:_SAMPLE_ITEMS].tolist():
            indices = (self.data.contents == content).nonzero().flatten()
            firsts.append(int(indices[0]))
            others.append(int(indices[len(indices) // 2]))
        first, other = torch.tensor(firsts), torch.tensor(others)
        predicted = render_part_labels(self.data.verts[first].to(self.device), self.inverse.faces,
                                       self.inverse.face_uvs, self.branch_logits(first),
                                       cameras_from_batch(self.data.cameras[other].to(self.device)),
                                       self.inverse.resolution).cpu()
        columns = torch.stack((self.data.images[first], colourise(self.data.labels[other].long() + 1),
                               colourise(predicted + 1)), dim=1).flatten(0, 1)
        save_png(self.run_dir / "samples" / f"step{self.step:07d}.png", image_grid(columns, columns=3))


def train_part_branch(config: BranchTrainConfig | None, out, device="auto", progress: bool = True,
                      runs_root="runs", resume=None, **changes) -> dict:
    """Train a :class:`PartBranch` in ``<runs_root>/part_branch/NNNNN-name/`` (or resume ``resume``) and copy its
    bundle to ``out``. Returns the bundle's provenance (``held_out``: the held-out cars' scores)."""
    return BranchTrainer.train_into(out, config, runs_root, resume, device, progress, **changes)
