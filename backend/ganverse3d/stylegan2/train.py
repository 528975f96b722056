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
import json
import math
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from tqdm import tqdm

from ..bundle import flatten_optimizer, load_state, restore_optimizer, save_module, save_state
from ..devices import resolve_device
from ..errors import InputError
from ..files import image_grid, new_run_dir, save_png, write_json
from .metrics import GeneratorFID, WorldFeatureNet, load_feature_extractor
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


def image_paths(folder) -> list[Path]:
    """The PNGs of a dataset folder (``folder/images/*.png``, or ``folder/*.png``), sorted."""
    folder = Path(folder)
    image_dir = folder / "images" if (folder / "images").is_dir() else folder
    paths = sorted(image_dir.glob("*.png"))
    if not paths:
        raise InputError(f"No PNG images found in {image_dir}; point --data at a dataset folder with images/.")
    return paths


def load_image_folder(folder, resolution: int) -> torch.Tensor:
    """All images of a dataset folder (see :func:`image_paths`) as uint8 [N, 3, R, R], resized to ``resolution``."""
    images = []
    for path in tqdm(image_paths(folder), desc="loading images", unit="img", leave=False):
        with Image.open(path) as image:
            image = image.convert("RGB")
            if image.size != (resolution, resolution):
                image = image.resize((resolution, resolution), Image.LANCZOS)
            images.append(np.asarray(image))
    return torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).contiguous()


def _mapping_with_mixing(G: Generator, z: torch.Tensor, probability: float, generator: torch.Generator):
    ws = G.mapping(z, update_w_avg=True)
    if probability > 0 and torch.rand([], generator=generator).item() < probability:
        cutoff = int(torch.randint(1, G.num_ws, [], generator=generator))
        z_other = torch.randn(z.shape, generator=generator).to(z.device)
        ws = torch.cat((ws[:, :cutoff], G.mapping(z_other, update_w_avg=False)[:, cutoff:]), dim=1)
    return ws


class Trainer:
    """Holds the networks, optimizers and run folder of one training run."""

    def __init__(self, config: TrainConfig, run_dir: Path, device: torch.device):
        self.config, self.run_dir, self.device = config, run_dir, device
        torch.manual_seed(config.seed)
        self.generator = torch.Generator().manual_seed(config.seed)  # latents, mixing, minibatches
        self.reals = load_image_folder(config.data, config.resolution)
        self.G = Generator(z_dim=config.z_dim, w_dim=config.w_dim, img_resolution=config.resolution, img_channels=3,
                           channel_base=config.channel_base, channel_max=config.channel_max,
                           num_mapping_layers=config.mapping_layers).to(device)
        self.D = Discriminator(img_resolution=config.resolution, img_channels=3, channel_base=config.channel_base,
                               channel_max=config.channel_max).to(device)
        self.G_ema = copy.deepcopy(self.G).eval().requires_grad_(False)
        self.opt_G = torch.optim.Adam(self.G.parameters(), lr=config.g_lr, betas=(0.0, 0.99), eps=1e-8)
        self.opt_D = torch.optim.Adam(self.D.parameters(), lr=config.d_lr, betas=(0.0, 0.99), eps=1e-8)
        self.step = 0
        self.pl_mean = torch.zeros([], device=device)
        self.sample_z = torch.randn(64, config.z_dim, generator=torch.Generator().manual_seed(config.seed + 1))
        self.fid = None  # a metrics.GeneratorFID, made at the first measurement
        self.view_reader = (_load_view_reader(config.feature_net, device).requires_grad_(False)
                            if config.view_mixing > 0 else None)

    def autocast(self):
        """The context G and D run in: bfloat16 autocast or plain float32 (``config.precision``)."""
        return torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.config.precision == "bfloat16")

    # -- checkpoints -------------------------------------------------------------------------------
    @property
    def state_path(self) -> Path:
        return self.run_dir / "checkpoints" / "state.safetensors"

    def save_checkpoint(self) -> None:
        tensors = {}
        for name in ("G", "D", "G_ema"):
            tensors.update({f"{name}.{k}": v for k, v in getattr(self, name).state_dict().items()})
        opt_G_tensors, opt_G_rest = flatten_optimizer("opt_G", self.opt_G)
        opt_D_tensors, opt_D_rest = flatten_optimizer("opt_D", self.opt_D)
        tensors.update(opt_G_tensors)
        tensors.update(opt_D_tensors)
        tensors["rng.torch"] = torch.get_rng_state()
        tensors["rng.train"] = self.generator.get_state()
        tensors["pl_mean"] = self.pl_mean
        save_state(self.state_path, tensors, {"step": self.step, "opt_G": opt_G_rest, "opt_D": opt_D_rest})
        save_module(self.run_dir / "checkpoints" / "G_ema.safetensors", self.G_ema,
                    config=dataclasses.asdict(self.config),
                    provenance={"stage": "gan train", "data": str(self.config.data), "step": self.step,
                                "kimg": self.kimg})

    def load_checkpoint(self) -> None:
        tensors, meta = load_state(self.state_path, device=self.device)
        for name in ("G", "D", "G_ema"):
            prefix = name + "."
            getattr(self, name).load_state_dict({k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)})
        restore_optimizer("opt_G", self.opt_G, tensors, meta["opt_G"])
        restore_optimizer("opt_D", self.opt_D, tensors, meta["opt_D"])
        torch.set_rng_state(tensors["rng.torch"].cpu())
        self.generator.set_state(tensors["rng.train"].cpu())
        self.pl_mean = tensors["pl_mean"]
        self.step = int(meta["step"])

    # -- training ----------------------------------------------------------------------------------
    @property
    def kimg(self) -> float:
        return self.step * self.config.batch / 1000

    @property
    def total_steps(self) -> int:
        return math.ceil(self.config.kimg * 1000 / self.config.batch)

    def real_batch(self) -> torch.Tensor:
        index = torch.randint(len(self.reals), (self.config.batch,), generator=self.generator)
        images = self.reals[index].to(self.device, torch.float32) / 127.5 - 1
        if self.config.mirror:
            flip = torch.rand(self.config.batch, generator=self.generator).to(self.device) < 0.5
            images = torch.where(flip[:, None, None, None], images.flip(-1), images)
        return images

    def latents(self, count: int) -> torch.Tensor:
        return torch.randn(count, self.config.z_dim, generator=self.generator).to(self.device)

    def train_step(self) -> dict:
        config, G, D = self.config, self.G, self.D
        stats = {}

        # Generator: non-saturating logistic loss, plus lazy path-length regularisation.
        G.requires_grad_(True)
        D.requires_grad_(False)
        ws = _mapping_with_mixing(G, self.latents(config.batch), config.style_mixing, self.generator)
        with self.autocast():
            logits = D(G.synthesis(ws, noise_mode="random")).float()
        loss_G = F.softplus(-logits).mean()
        stats["loss_G"] = loss_G.item()
        if config.pl_weight > 0 and self.step % config.pl_interval == 0:
            pl_ws = _mapping_with_mixing(G, self.latents(max(config.batch // 2, 1)), config.style_mixing,
                                         self.generator)
            # Always float32: in bfloat16 this second-order term came out 7 % off (the losses 0.1-0.4 %).
            images = G.synthesis(pl_ws, noise_mode="random")
            noise = torch.randn(images.shape, generator=self.generator).to(self.device) / math.sqrt(
                images.shape[2] * images.shape[3])
            (grad,) = torch.autograd.grad((images * noise).sum(), pl_ws, create_graph=True)
            lengths = grad.square().sum(2).mean(1).sqrt()
            self.pl_mean = self.pl_mean.lerp(lengths.mean().detach(), 0.01)
            penalty = (lengths - self.pl_mean).square().mean()
            loss_G = loss_G + penalty * config.pl_weight * config.pl_interval
            stats["pl_penalty"] = penalty.item()
        if self.view_reader is not None:
            half = max(config.batch // 2, 1)
            ws_view, ws_content = (G.mapping(self.latents(half), update_w_avg=False) for _ in range(2))
            with self.autocast():
                mixing, mixing_stats = view_mixing_loss(G, self.view_reader, ws_view, ws_content, config.view_layers)
            loss_G = loss_G + mixing * config.view_mixing
            stats.update(view_mixing=mixing.item(), **mixing_stats)
        self.opt_G.zero_grad(set_to_none=True)
        loss_G.backward()
        self.opt_G.step()

        # Discriminator: logistic loss on fakes and reals, plus lazy R1 on reals.
        G.requires_grad_(False)
        D.requires_grad_(True)
        with torch.no_grad():
            ws = _mapping_with_mixing(G, self.latents(config.batch), config.style_mixing, self.generator)
            with self.autocast():
                fakes = G.synthesis(ws, noise_mode="random").float()
        do_r1 = config.r1_gamma > 0 and self.step % config.r1_interval == 0
        reals = self.real_batch().requires_grad_(do_r1)
        with self.autocast():
            fake_logits, real_logits = D(fakes).float(), D(reals).float()
        loss_D = F.softplus(fake_logits).mean() + F.softplus(-real_logits).mean()
        stats.update(loss_D=loss_D.item(), D_real=real_logits.mean().item(), D_fake=fake_logits.mean().item())
        if do_r1:
            (grad,) = torch.autograd.grad(real_logits.sum(), reals, create_graph=True)
            penalty = grad.square().sum((1, 2, 3)).mean()
            loss_D = loss_D + penalty * (config.r1_gamma / 2) * config.r1_interval
            stats["r1_penalty"] = penalty.item()
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

    def write_samples(self) -> None:
        with torch.no_grad():
            images = self.G_ema(self.sample_z.to(self.device), noise_mode="const")
        save_png(self.run_dir / "samples" / f"fakes{self.step:07d}.png",
                 image_grid((images.cpu() + 1) / 2, columns=8))

    def write_fid(self, metrics_path: Path) -> None:
        if self.fid is None:
            extractor = load_feature_extractor(self.config.feature_net, self.device)
            self.fid = GeneratorFID.from_images(extractor, self.reals)
        result = self.fid.measure(self.G_ema, self.config.metric_fakes, seed=self.config.seed)
        with open(metrics_path, "a") as handle:
            handle.write(json.dumps({"step": self.step, "kimg": round(self.kimg, 3), result.key: round(result.value, 4)})
                         + "\n")

    def run(self) -> Path:
        config = self.config
        if self.step == 0:
            save_png(self.run_dir / "samples" / "reals.png",
                     image_grid(self.reals[:64].float() / 255, columns=8))
            self.write_samples()
        metrics_path = self.run_dir / "metrics.jsonl"
        started, steps_timed = time.perf_counter(), 0
        with tqdm(total=self.total_steps, initial=self.step, desc="gan train", unit="step") as progress:
            while self.step < self.total_steps:
                stats = self.train_step()
                steps_timed += 1
                progress.update(1)
                progress.set_postfix(G=f"{stats['loss_G']:.3f}", D=f"{stats['loss_D']:.3f}", kimg=f"{self.kimg:.1f}")
                if self.step % config.log_every == 0:
                    seconds = (time.perf_counter() - started) / steps_timed
                    with open(metrics_path, "a") as handle:
                        handle.write(json.dumps({"step": self.step, "kimg": round(self.kimg, 3),
                                                 "sec_per_step": round(seconds, 4), **stats}) + "\n")
                if self.step % config.sample_every == 0 or self.step == self.total_steps:
                    self.write_samples()
                if config.metric_every > 0 and (self.step % config.metric_every == 0 or self.step == self.total_steps):
                    self.write_fid(metrics_path)
                if self.step % config.checkpoint_every == 0 or self.step == self.total_steps:
                    self.save_checkpoint()
        return self.run_dir / "checkpoints" / "G_ema.safetensors"


PRECISIONS = ("float32", "bfloat16")


def _check_precision(precision: str) -> None:
    if precision not in PRECISIONS:
        raise InputError(f"--precision must be one of {', '.join(PRECISIONS)}, not {precision!r}.")


def _check_view_mixing(config: TrainConfig) -> None:
    if config.view_mixing < 0:
        raise InputError(f"--view-mixing must be 0 (off) or more, not {config.view_mixing:g}.")
    if config.view_mixing > 0:
        num_ws = num_ws_at(config.resolution)
        if not 1 <= config.view_layers < num_ws:
            raise InputError(f"--view-layers must be from 1 to {num_ws - 1} at {config.resolution} px, "
                             f"not {config.view_layers}.")
        _load_view_reader(config.feature_net, "cpu")


def _load_view_reader(path, device) -> WorldFeatureNet:
    reader = load_feature_extractor(path, device)
    if not isinstance(reader, WorldFeatureNet):
        raise InputError(f"The view-mixing loss reads views with a world feature net; {path} is not one.")
    return reader.eval()


# What a resumed run may change (each change is saved to config.json and recorded in metrics.jsonl).
RESUME_CHANGES = ("kimg", "precision", "view_mixing", "view_layers")


def train(config: TrainConfig | None = None, runs_root="runs", resume=None, device="auto", **changes) -> Path:
    """Train (or resume) a StyleGAN2; returns the path of the final EMA generator bundle.

    Args:
        config: a new run's configuration (ignored when resuming: a run keeps its own config.json).
        runs_root: folder holding ``gan/<NNNNN-name>/`` run folders.
        resume: an existing run folder to continue.
        device: "auto", "cpu" or "cuda".
        changes: when resuming, new values of the fields in :data:`RESUME_CHANGES` (None = keep): ``kimg``
            trains to a new length (nothing else depends on it: the learning rates are constant), the others
            train on with another precision or view-mixing loss from the current step. They are saved to the
            run's config.json, and metrics.jsonl records the step of every change but the length.
    """
    device = resolve_device(device)
    changes = {name: value for name, value in changes.items() if value is not None}
    unknown = set(changes) - set(RESUME_CHANGES)
    if unknown:
        raise TypeError(f"train() cannot change {', '.join(sorted(unknown))} of a resumed run.")
    if resume is not None:
        run_dir = Path(resume)
        if not (run_dir / "config.json").is_file():
            raise InputError(f"{run_dir} is not a gan training run folder (no config.json).")
        config = TrainConfig(**json.loads((run_dir / "config.json").read_text()))
        if changes.get("kimg", 1) <= 0:
            raise InputError(f"--kimg must be positive, not {changes['kimg']:g}.")
        recorded = {name: value for name, value in changes.items()
                    if name != "kimg" and value != getattr(config, name)}
        config = dataclasses.replace(config, **changes)
        _check_precision(config.precision)
        _check_view_mixing(config)
        if changes:
            write_json(run_dir / "config.json", dataclasses.asdict(config))
        trainer = Trainer(config, run_dir, device)
        if trainer.state_path.is_file():
            trainer.load_checkpoint()
        if recorded:
            with open(run_dir / "metrics.jsonl", "a") as handle:
                handle.write(json.dumps({"step": trainer.step, "kimg": round(trainer.kimg, 3), **recorded}) + "\n")
        return trainer.run()
    if config is None:
        raise InputError("Give a training configuration or a run folder to resume.")
    _check_precision(config.precision)
    if config.resolution < 8 or config.resolution & (config.resolution - 1):
        raise InputError(f"--resolution must be a power of two >= 8, not {config.resolution}.")
    _check_view_mixing(config)
    image_paths(config.data)  # fail on a bad dataset or feature net before creating the run folder
    if config.metric_every > 0:
        load_feature_extractor(config.feature_net)
    run_dir = new_run_dir(runs_root, "gan", f"{Path(config.data).name}-r{config.resolution}")
    write_json(run_dir / "config.json", dataclasses.asdict(config))
    return Trainer(config, run_dir, device).run()
