"""StyleGAN2 training: non-saturating logistic loss, lazy R1, style mixing, EMA generator, optional path length.

A run lives in ``runs/gan/<NNNNN-name>/``: ``config.json``, ``metrics.jsonl``, ``samples/*.png`` (grids of the
EMA generator on fixed latents), ``checkpoints/state.safetensors`` (everything needed to resume: G, D,
G_ema, both optimizers, RNG states, step) and ``checkpoints/G_ema.safetensors`` (a loadable bundle).
Killing a run loses at most one checkpoint interval; ``train(..., resume=run_dir)`` continues it.

Regularisers are "lazy" as in StyleGAN2, but folded into the main step of their network (R1 every
``r1_interval`` D steps, path length every ``pl_interval`` G steps, each scaled by its interval), so
Adam sees one step per iteration and needs no lr/beta correction.
"""

from __future__ import annotations

import copy
import dataclasses
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from .. import runs
from ..bundle import save_module
from ..devices import PRECISIONS, autocast, to_device
from ..errors import InputError, setting
from ..files import image_grid, image_paths, read_image, save_png
from ..runs import Periodic, RunTrainer, seeded_rng
from ..world.features import WorldFeatureNet
from .metrics import GeneratorFID, load_feature_extractor
from .networks import Discriminator, Generator, num_ws_at
from .views import view_mixing_loss


@dataclass
class TrainConfig:
    """Everything that defines a run (saved to ``config.json``; a resumed run keeps its own)."""

    data: str                        # Dataset folder with images/*.png (e.g. from `ganverse3d world render`).
    resolution: int = 64             # Training resolution; images are resized to it (power of two).
    kimg: float = 200.0              # Length of training in thousands of real images shown to D.
    batch: int = 32                  # Minibatch size.
    z_dim: int = 128                 # Latent size.
    w_dim: int = 128                 # Intermediate latent size.
    mapping_layers: int = 8          # Dense layers of the mapping network.
    channel_base: int = 2048         # channels(res) = min(channel_base // res, channel_max).
    channel_max: int = 64            # Most channels of any layer.
    g_lr: float = 0.0025             # Adam learning rates (StyleGAN2's).
    d_lr: float = 0.0025
    r1_gamma: float = 0.0256         # R1 weight; StyleGAN2-ADA's heuristic 0.0002 * res^2 / batch at 64 px, batch 32.
    r1_interval: int = 16            # Lazy R1 every this many D steps.
    pl_weight: float = 0.0           # Path-length regularisation weight (StyleGAN2 config-f uses 2); 0 = off.
    pl_interval: int = 4             # Lazy path length every this many G steps.
    style_mixing: float = 0.9        # Probability of mixing two latents at a random layer (it is what makes
                                     # coarse layers own the viewpoint).
    ema_kimg: float = 10.0           # Half-life of the EMA generator, in kimg.
    ema_rampup: float = 0.05         # EMA half-life ramps up as this fraction of the images seen so far.
    mirror: bool = False             # Random horizontal flips (flips the azimuth too; off for world data).
    seed: int = 0                    # Seeds initialisation, latents and minibatch order.
    sample_every: int = 200          # Steps between sample grids.
    checkpoint_every: int = 200      # Steps between checkpoints (what a crash can lose at most).
    log_every: int = 20              # Steps between metrics.jsonl lines.
    metric_every: int = 0            # Steps between FID lines in metrics.jsonl, keyed "fid-world" or
                                     # "fid-inception" by the extractor (see metrics.py); 0 = off.
    feature_net: str | None = None   # FID features (a WorldFeatureNet bundle or torchvision's Inception-v3
                                     # .pth) and the view-mixing loss's reader (a WorldFeatureNet only);
                                     # None = the embedded world feature net.
    metric_fakes: int = 2000         # Generated images per FID (the reals are all training images).
    precision: str = "float32"       # "bfloat16" runs G's synthesis network and D under autocast (1.8x faster
                                     # on a 2-core AVX-512 BF16 CPU); the mapping network, path length, weights,
                                     # optimizer states, losses and the EMA stay float32.
    view_mixing: float = 0.0         # Weight of the view-mixing loss (views.view_mixing_loss; 0 = off): images
                                     # mixed at `view_layers` must keep the viewpoint of their first code and
                                     # the body type of the second, as the world feature net `feature_net`
                                     # reads them. Not in StyleGAN2 or the paper: it asks the view code to hold
                                     # the viewpoint and not the car (docs/experiments.md: it does only the first).
    view_layers: int = 3             # W entries that hold the view, for the view-mixing loss (the split that
                                     # `dataset views` uses; 3 of 10 at 64 px).

    def check(self) -> None:
        """InputError with one sentence for a setting that cannot work."""
        runs.check_fields(self)
        runs.check_power_of_two(self, "resolution", 8)
        runs.check_positive(self, "kimg", "g_lr", "d_lr", "ema_kimg")
        runs.check_at_least(self, 1, "batch", "z_dim", "w_dim", "mapping_layers", "channel_base", "channel_max",
                            "r1_interval", "pl_interval", "sample_every", "checkpoint_every", "log_every")
        runs.check_at_least(self, 0, "r1_gamma", "pl_weight", "ema_rampup", "seed", "metric_every", "view_mixing")
        runs.check_at_least(self, 2, "metric_fakes")  # FID needs two images on each side
        runs.check_within(self, "style_mixing", 0, 1)
        runs.check_choice(self, "precision", PRECISIONS)
        num_ws = num_ws_at(self.resolution)
        if self.view_mixing > 0 and not 1 <= self.view_layers < num_ws:
            raise InputError(f"{setting('view_layers')} must be from 1 to {num_ws - 1} at {self.resolution} px, "
                             f"not {self.view_layers}.")


def load_image_folder(folder, resolution: int) -> torch.Tensor:
    """All images of a dataset folder (see :func:`~ganverse3d.files.image_paths`) as uint8 [N, 3, R, R],
    resized to ``resolution``."""
    with runs.loading_bar(image_paths(folder), "loading images") as paths:
        images = [read_image(path, size=(resolution, resolution)) for path in paths]
    return torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).contiguous()


class Trainer(RunTrainer):
    """The networks, optimizers and data of one StyleGAN2 run (the loop and checkpoints: :mod:`ganverse3d.runs`)."""

    config_class = TrainConfig
    stage = "gan"
    length_field = "kimg"
    # kimg trains to a new length (nothing else depends on it: the learning rates are constant); the others
    # train on with another precision or view-mixing loss from the current step.
    resumable = ("precision", "view_mixing", "view_layers")
    old_checkpoint_names = {"rng.train": "rng"}

    def __init__(self, config: TrainConfig, run_dir: Path | None, device, progress: bool = True):
        super().__init__(config, run_dir, device, progress)
        device = self.device
        self.rng = seeded_rng(config.seed)  # latents, mixing, minibatches, flips
        self.reals = load_image_folder(config.data, config.resolution)
        self.G = Generator(z_dim=config.z_dim, w_dim=config.w_dim, img_resolution=config.resolution, img_channels=3,
                           channel_base=config.channel_base, channel_max=config.channel_max,
                           num_mapping_layers=config.mapping_layers).to(device)
        self.D = Discriminator(img_resolution=config.resolution, img_channels=3, channel_base=config.channel_base,
                               channel_max=config.channel_max).to(device)
        self.G_ema = copy.deepcopy(self.G).eval().requires_grad_(False)
        self.opt_G = torch.optim.Adam(self.G.parameters(), lr=config.g_lr, betas=(0.0, 0.99), eps=1e-8)
        self.opt_D = torch.optim.Adam(self.D.parameters(), lr=config.d_lr, betas=(0.0, 0.99), eps=1e-8)
        self.pl_mean = torch.zeros([], device=device)  # updated in place, so that a checkpoint restores it
        self.sample_z = torch.randn(64, config.z_dim, generator=torch.Generator().manual_seed(config.seed + 1))
        # Loaded now, so that a bad feature net fails the start; the reals' statistics wait for the first FID.
        self.fid_extractor = load_feature_extractor(config.feature_net, device) if config.metric_every > 0 else None
        self.fid = None
        self.view_reader = (_load_view_reader(config.feature_net, device).requires_grad_(False)
                            if config.view_mixing > 0 else None)
        # G's and D's passes of a step, with their gradients averaged over the ranks (runs.RunTrainer.parallel).
        self.generator_pass = self.parallel(self.G, self.generator_loss)
        self.discriminator_pass = self.parallel(self.D, self.discriminator_loss)

    @classmethod
    def run_name(cls, config: TrainConfig) -> str:
        return f"{Path(config.data).name}-r{config.resolution}"

    def autocast(self):
        """The context G and D run in: bfloat16 autocast or plain float32 (``config.precision``)."""
        return autocast(self.device, self.config.precision)

    # -- the run kit's parts ---------------------------------------------------------------------------------
    @property
    def kimg(self) -> float:
        return self.step * self.config.batch / 1000

    @property
    def total_steps(self) -> int:
        return math.ceil(self.config.kimg * 1000 / self.config.batch)

    @property
    def output_path(self) -> Path:
        return self.run_dir / "checkpoints" / "G_ema.safetensors"

    def checkpointed(self) -> dict:
        return {"G": self.G, "D": self.D, "G_ema": self.G_ema, "opt_G": self.opt_G, "opt_D": self.opt_D,
                "rng": self.rng, "pl_mean": self.pl_mean}

    def write_outputs(self) -> None:
        save_module(self.output_path, self.G_ema, config=dataclasses.asdict(self.config),
                    provenance={"stage": "gan train", "data": str(self.config.data), "step": self.step,
                                "kimg": self.kimg})

    def periodic(self) -> list[Periodic]:
        return [Periodic(self.config.sample_every, self.write_samples),
                Periodic(self.config.metric_every, self.measure_fid, line="fid")]

    def on_start(self) -> None:
        save_png(self.run_dir / "samples" / "reals.png", image_grid(self.reals[:64].float() / 255, columns=8))
        self.write_samples()

    def progress_fields(self) -> dict:
        return {"kimg": round(self.kimg, 3)}

    def postfix(self, stats: dict) -> dict:
        return {"G": f"{stats['loss_G']:.3f}", "D": f"{stats['loss_D']:.3f}", "kimg": f"{self.kimg:.1f}"}

    # -- training ----------------------------------------------------------------------------------------
    # Every draw is made for the global batch from the shared ``rng`` and sharded: this rank's rows of it.
    def real_batch(self) -> torch.Tensor:
        """This rank's share of a global batch of training images, [B / ranks, 3, R, R] in [-1, 1]."""
        index = self.shard(torch.randint(len(self.reals), (self.config.batch,), generator=self.rng))
        images = to_device(self.reals[index], self.device, torch.float32) / 127.5 - 1
        if self.config.mirror:
            flip = to_device(self.shard(torch.rand(self.config.batch, generator=self.rng)), self.device) < 0.5
            images = torch.where(flip[:, None, None, None], images.flip(-1), images)
        return images

    def latents(self, count: int) -> torch.Tensor:
        """This rank's rows of ``count`` latents [count, z_dim] drawn for all ranks."""
        return to_device(self.shard(torch.randn(count, self.config.z_dim, generator=self.rng)), self.device)

    def mapping(self, count: int) -> torch.Tensor:
        """ws [count / ranks, num_ws, w_dim] of new latents, mixed with a second set's from a random layer on
        (with probability ``style_mixing``, one cutoff for the whole batch)."""
        G = self.G
        ws = G.mapping(self.latents(count), update_w_avg=True)
        if self.config.style_mixing > 0 and torch.rand([], generator=self.rng).item() < self.config.style_mixing:
            cutoff = int(torch.randint(1, G.num_ws, [], generator=self.rng))
            ws = torch.cat((ws[:, :cutoff], G.mapping(self.latents(count), update_w_avg=False)[:, cutoff:]), dim=1)
        return ws

    def generator_loss(self) -> tuple[torch.Tensor, dict]:
        """G's loss on this rank's share of a batch: non-saturating logistic, plus lazy path length and the
        view-mixing loss when on; and its statistics."""
        config, G, D = self.config, self.G, self.D
        stats = {}
        # Halves of the batch, never less than a row per rank.
        half = max(config.batch // 2, self.ranks)
        ws = self.mapping(config.batch)
        with self.autocast():
            logits = D(G.synthesis(ws, noise_mode="random")).float()
        loss_G = F.softplus(-logits).mean()
        stats["loss_G"] = loss_G.detach()
        if config.pl_weight > 0 and self.step % config.pl_interval == 0:
            pl_ws = self.mapping(half)
            # Always float32: in bfloat16 this second-order term came out 7 % off (the losses 0.1-0.4 %).
            images = G.synthesis(pl_ws, noise_mode="random")
            noise = to_device(self.shard(torch.randn((half, *images.shape[1:]), generator=self.rng)), self.device) / math.sqrt(
                images.shape[2] * images.shape[3])
            (grad,) = torch.autograd.grad((images * noise).sum(), pl_ws, create_graph=True)
            lengths = grad.square().sum(2).mean(1).sqrt()
            self.pl_mean.copy_(self.pl_mean.lerp(lengths.mean().detach(), 0.01))
            penalty = (lengths - self.pl_mean).square().mean()
            loss_G = loss_G + penalty * config.pl_weight * config.pl_interval
            stats["pl_penalty"] = penalty.detach()
        if self.view_reader is not None:
            ws_view, ws_content = (G.mapping(self.latents(half), update_w_avg=False) for _ in range(2))
            with self.autocast():
                mixing, mixing_stats = view_mixing_loss(G, self.view_reader, ws_view, ws_content, config.view_layers)
            loss_G = loss_G + mixing * config.view_mixing
            stats.update(view_mixing=mixing.detach(), **mixing_stats)
        return loss_G, stats

    def discriminator_loss(self, fakes: torch.Tensor, reals: torch.Tensor, do_r1: bool) -> tuple[torch.Tensor, dict]:
        """D's logistic loss on this rank's ``fakes`` and ``reals`` [B / ranks, 3, R, R], plus lazy R1 on the reals
        (``do_r1``: reals require a gradient), and its statistics."""
        config, D = self.config, self.D
        stats = {}
        with self.autocast():
            fake_logits, real_logits = D(fakes).float(), D(reals).float()
        loss_D = F.softplus(fake_logits).mean() + F.softplus(-real_logits).mean()
        stats.update(loss_D=loss_D.detach(), D_real=real_logits.detach().mean(), D_fake=fake_logits.detach().mean())
        if do_r1:
            (grad,) = torch.autograd.grad(real_logits.sum(), reals, create_graph=True)
            penalty = grad.square().sum((1, 2, 3)).mean()
            loss_D = loss_D + penalty * (config.r1_gamma / 2) * config.r1_interval
            stats["r1_penalty"] = penalty.detach()
        return loss_D, stats

    def train_step(self) -> dict:
        config, G, D = self.config, self.G, self.D

        G.requires_grad_(True)
        D.requires_grad_(False)
        loss_G, stats = self.generator_pass()
        self.opt_G.zero_grad(set_to_none=True)
        loss_G.backward()
        self.opt_G.step()

        G.requires_grad_(False)
        D.requires_grad_(True)
        with torch.no_grad():
            ws = self.mapping(config.batch)
            with self.autocast():
                fakes = G.synthesis(ws, noise_mode="random").float()
        do_r1 = config.r1_gamma > 0 and self.step % config.r1_interval == 0
        reals = self.real_batch().requires_grad_(do_r1)
        loss_D, stats_D = self.discriminator_pass(fakes, reals, do_r1)
        stats.update(stats_D)
        self.opt_D.zero_grad(set_to_none=True)
        loss_D.backward()
        self.opt_D.step()

        # EMA of the generator, with the half-life ramping up early in training.
        self.step += 1
        ema_nimg = min(config.ema_kimg * 1000, self.step * config.batch * config.ema_rampup)
        beta = 0.5 ** (config.batch / max(ema_nimg, 1e-8))
        with torch.no_grad():
            for p_ema, p in zip(self.G_ema.parameters(), G.parameters()):
                p_ema.copy_(p.detach().lerp(p_ema, beta))
            for b_ema, b in zip(self.G_ema.buffers(), G.buffers()):
                b_ema.copy_(b)
        return stats

    # -- samples and FID ---------------------------------------------------------------------------------
    def write_samples(self) -> None:
        with torch.no_grad():
            images = self.G_ema(self.sample_z.to(self.device), noise_mode="const")
        save_png(self.run_dir / "samples" / f"fakes{self.step:07d}.png",
                 image_grid((images.cpu() + 1) / 2, columns=8))

    def measure_fid(self) -> dict:
        """FID of the EMA generator against the training images, keyed by the extractor (metrics.py)."""
        if self.fid is None:
            self.fid = GeneratorFID.from_images(self.fid_extractor, self.reals)
        result = self.fid.measure(self.G_ema, self.config.metric_fakes, seed=self.config.seed)
        return {result.key: round(result.value, 4)}


def _load_view_reader(path, device) -> WorldFeatureNet:
    reader = load_feature_extractor(path, device)
    if not isinstance(reader, WorldFeatureNet):
        raise InputError(f"The view-mixing loss reads views with a world feature net; {path} is not one.")
    return reader.eval()


# train(config) starts a run, train(resume=run_folder, **changes) resumes one: see RunTrainer.train.
train = Trainer.train
