"""Training the style interpreter on an annotation folder (``ganverse3d parts train``).

The pixel features of the annotated images (:func:`~ganverse3d.parts.interpreter.pixel_features`) are computed
once and kept with their labels as one table of pixels. Every member of the ensemble trains from scratch at the
same time, each on its own order of the pixels (drawn at each epoch from the run's generator): a step is one
batch of ``batch`` pixels for every member still training, cross-entropy, Adam. **Early stop** (DatasetGAN's
rule): after ``min_epochs`` epochs a member stops once its batch loss has not gone below its best for
``patience`` steps; when every member has stopped, the run ends (its step jumps to ``steps``, the most any
member trains).

A run lives in ``runs/parts/<NNNNN-name>/`` (the run kit, :mod:`ganverse3d.runs`): ``config.json``,
``metrics.jsonl`` (losses, members still training; at each checkpoint the ensemble's pixel accuracy and mIoU on
the annotations), ``samples/*.png`` (image | labels | the ensemble's labels), ``checkpoints/state.safetensors``
and ``checkpoints/interpreter.safetensors`` (the bundle, copied to ``--out`` when the run ends). A killed run
resumes to the weights of an uninterrupted one; a resume may raise ``steps``.

**Several processes** (``torchrun``, :mod:`ganverse3d.distributed`): ``batch`` is the global batch of each member;
every rank draws the members' pixel orders alike and trains on its rows of each member's batch, its gradients
averaged over the ranks (each member through :meth:`~ganverse3d.runs.RunTrainer.parallel`). An epoch's short last
batch is filled up from the epoch's start so that it splits evenly, and it waits when a rank would get fewer than
two pixels (BatchNorm needs two). The early stop decides on each member's loss averaged over the ranks, so every
rank stops the same members at the same step. BatchNorm's batch statistics are each rank's own pixels' (no
SyncBatchNorm: gloo has none), and its running statistics rank 0's (``DistributedDataParallel`` broadcasts them
before each forward pass): two processes train close to, not exactly, what one does.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from pathlib import Path

import torch

from .. import runs
from ..bundle import save_module
from ..devices import to_device
from ..errors import InputError, setting
from ..files import image_grid, save_png
from ..stylegan2.load import load_generator
from .annotations import read_annotations
from .interpreter import (CLASSES, StyleInterpreter, class_weights, colourise, feature_dims, majority_vote,
                          mean_iou, pixel_features)

_SAMPLE_ITEMS = 8


@dataclass(frozen=True)
class InterpreterTrainConfig:
    """Settings of ``ganverse3d parts train`` (all recorded in the bundle)."""

    annotations: str
    generator: str = "world64"
    members: int = 10             # classifiers in the ensemble (DatasetGAN: 10)
    batch: int = 64               # pixels per step and member
    learning_rate: float = 1e-3   # Adam
    steps: int = 20000            # the most steps any member trains
    min_epochs: int = 3           # epochs over the pixels before early stopping may stop a member
    patience: int = 50            # steps without a lower batch loss that stop a member
    balance: float = 0.0          # class c's pixels weigh freq_c ** -balance (0: plain cross-entropy, DatasetGAN's)
    seed: int = 0
    log_every: int = 50
    checkpoint_every: int = 1000

    def check(self) -> None:
        runs.check_fields(self)
        runs.check_at_least(self, 1, "members", "steps", "log_every", "checkpoint_every", "patience")
        runs.check_at_least(self, 2, "batch")  # BatchNorm needs two pixels
        runs.check_at_least(self, 0, "seed", "min_epochs")
        runs.check_positive(self, "learning_rate")
        runs.check_within(self, "balance", 0, 1)


class InterpreterTrainer(runs.RunTrainer):
    """The style interpreter's run (module docstring)."""

    config_class = InterpreterTrainConfig
    stage = "parts"
    length_field = "steps"
    resumable = ("log_every", "checkpoint_every")

    def __init__(self, config: InterpreterTrainConfig, run_dir: Path | None, device, progress: bool = True):
        super().__init__(config, run_dir, device, progress)
        if config.batch < 2 * self.ranks:
            raise InputError(f"{setting('batch')} {config.batch} is the global batch, split among the {self.ranks} "
                             f"processes, and BatchNorm needs two pixels on each: give at least {2 * self.ranks}.")
        G = load_generator(config.generator, device=self.device)
        ws, self.images, self.labels, self.names = read_annotations(config.annotations, G)
        features = []
        for start in range(0, len(ws), 4):
            chunk = pixel_features(G, ws[start:start + 4].to(self.device)).cpu()
            features.append(chunk.permute(0, 2, 3, 1).reshape(-1, chunk.shape[1]))
        self.pixels = torch.cat(features)                 # [P, D]
        self.pixel_labels = self.labels.reshape(-1)        # [P]
        self.feature_dims = feature_dims(G)
        # None for plain cross-entropy, so that balance 0 trains exactly as before the setting existed.
        self.class_weights = (class_weights(self.labels, config.balance).to(self.device) if config.balance
                              else None)
        del G
        self.rng = runs.seeded_rng(config.seed)
        torch.manual_seed(config.seed)
        self.interpreter = StyleInterpreter(self.feature_dims, list(CLASSES), config.members).to(self.device)
        self.optimizers = [torch.optim.Adam(member.parameters(), lr=config.learning_rate)
                           for member in self.interpreter.members]
        # Each member's forward pass, its gradients averaged over the ranks.
        self.member_passes = [self.parallel(member) for member in self.interpreter.members]
        members = config.members
        self.orders = torch.zeros(members, len(self.pixels), dtype=torch.int64)
        self.best = torch.full((members,), math.inf)
        self.since_best = torch.zeros(members, dtype=torch.int64)
        self.stopped = torch.zeros(members, dtype=torch.bool)
        self.steps_per_epoch = math.ceil(len(self.pixels) / config.batch)

    @classmethod
    def run_name(cls, config) -> str:
        return f"{Path(config.annotations).name}-m{config.members}"

    @property
    def total_steps(self) -> int:
        return self.config.steps

    @property
    def output_path(self) -> Path:
        return self.run_dir / "checkpoints" / "interpreter.safetensors"

    def checkpointed(self) -> dict:
        parts = {"interpreter": self.interpreter, "rng": self.rng, "orders": self.orders, "best": self.best,
                 "since_best": self.since_best, "stopped": self.stopped}
        parts.update({f"optimizer{index}": optimizer for index, optimizer in enumerate(self.optimizers)})
        return parts

    def periodic(self) -> list[runs.Periodic]:
        return [runs.Periodic(self.config.checkpoint_every, self.measure, line="fit")]

    def progress_fields(self) -> dict:
        return {"epoch": round(self.step / self.steps_per_epoch, 3)}

    def log_values(self, stats: dict) -> dict:
        return {"loss": round(_mean(stats["losses"]), 6), "training": int(stats["training"])}

    def postfix(self, stats: dict) -> dict:
        return {"loss": f"{_mean(stats['losses']):.3f}", "training": int(stats["training"])}

    def train_step(self) -> dict:
        config = self.config
        in_epoch = self.step % self.steps_per_epoch
        if in_epoch == 0:
            for order in self.orders:
                order.copy_(torch.randperm(len(self.pixels), generator=self.rng))
        may_stop = self.step >= config.min_epochs * self.steps_per_epoch
        trained, losses = [], []
        for index, (member, optimizer) in enumerate(zip(self.interpreter.members, self.optimizers)):
            order = self.orders[index]
            items = order[in_epoch * config.batch:(in_epoch + 1) * config.batch]
            # An epoch's short last batch is filled up from the epoch's start to split evenly among the ranks; if a
            # rank would get a lone pixel, the batch waits (BatchNorm needs two).
            items = torch.cat((items, order[:(-len(items)) % self.ranks]))
            if self.stopped[index] or len(items) < 2 * self.ranks:
                continue
            items = self.shard(items)
            member.train()
            loss = self.cross_entropy(self.member_passes[index](to_device(self.pixels[items], self.device)),
                                      to_device(self.pixel_labels[items], self.device), self.class_weights)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            trained.append(index)
            losses.append(loss.detach())
        # The members' losses [members training] on the global batch: the mean of the ranks' (each rank trains the
        # same members), what the metrics show and the early stop decides on, so that every rank stops alike.
        losses = self.average(torch.stack(losses)) if trained else torch.zeros(0)
        if may_stop:  # the early stop decides on the host: only then are the losses read every step
            for index, value in zip(trained, losses.tolist()):
                if value < self.best[index]:
                    self.best[index], self.since_best[index] = value, 0
                else:
                    self.since_best[index] += 1
                    self.stopped[index] = bool(self.since_best[index] >= config.patience)
        self.step += 1
        if bool(self.stopped.all()):  # every member has stopped early: the run is done
            self.step = self.total_steps
        return {"losses": losses, "training": int((~self.stopped).sum())}  # read when logged (runs.read_stats)

    @torch.no_grad()
    def predicted(self) -> torch.Tensor:
        """The ensemble's labels [N, H, W] of the annotated images."""
        self.interpreter.eval()
        votes = []
        for start in range(0, len(self.pixels), 65536):
            chunk = self.pixels[start:start + 65536].to(self.device)
            votes.append(torch.stack([member(chunk).argmax(-1) for member in self.interpreter.members]).cpu())
        return majority_vote(torch.cat(votes, 1), len(CLASSES)).reshape(self.labels.shape)

    def measure(self) -> dict:
        """Pixel accuracy and mean IoU (over the classes present in the labels or the prediction) on the
        annotations."""
        predicted = self.predicted()
        return {"accuracy": round(float((predicted == self.labels).float().mean()), 6),
                "miou": round(mean_iou(predicted, self.labels, len(CLASSES))["miou"], 6)}

    def write_outputs(self) -> None:
        fit = self.measure()
        save_module(self.output_path, self.interpreter, config=dataclasses.asdict(self.config),
                    provenance={"stage": "parts", "generator": self.config.generator,
                                "annotations": str(self.config.annotations), "images": len(self.images),
                                "steps": self.step, "stopped_early": int(self.stopped.sum()), "fit": fit})
        shown = slice(0, _SAMPLE_ITEMS)
        columns = torch.stack((self.images[shown], colourise(self.labels[shown]), colourise(self.predicted()[shown])),
                              dim=1).flatten(0, 1)
        save_png(self.run_dir / "samples" / f"step{self.step:07d}.png", image_grid(columns, columns=3))


def _mean(losses: list[float]) -> float:
    """The mean of the members' losses of a step (0 when every member has stopped)."""
    return sum(losses) / max(len(losses), 1)


def train_interpreter(config: InterpreterTrainConfig | None, out, device="auto", progress: bool = True,
                      runs_root="runs", resume=None, **changes) -> dict:
    """Train a :class:`StyleInterpreter` in ``<runs_root>/parts/NNNNN-name/`` (or resume ``resume``) and copy its
    bundle to ``out``. Returns the bundle's provenance (``fit``: accuracy and mIoU on the annotations)."""
    return InterpreterTrainer.train_into(out, config, runs_root, resume, device, progress, **changes)
