"""Training StyleGAN-R (paper Sec. 3.3): the mapping network's warm-up, then joint fine-tuning with StyleGAN.

Every step draws its training examples from the original generator G0 (frozen): a view code among the
annotated views (``--views``) and a content code from a fresh z (truncated as the multi-view dataset is) give
W* and an image; the segmenter finds the car, and the frozen inverse-graphics network reads its shape S
(vertices), texture T and camera; the background B is the image with the car's pixels set to 0. The inverse
network sees what its training data showed it (:meth:`Trainer.teacher_view`): the image's content box (the
512 x 384 of the car model's 512-px canvas), area-resized to its input size; the default's 64 px pass as they are.
:meth:`StyleGANR.to_canvas` is the way back, from the inverse network's framing to the generator's.

* **Warm-up** (``warmup_steps``, StyleGAN frozen): the mapping network learns to give back W* from
  (camera, S, T, B): ||w~ - w*||^2 (mean over the code) + ``entropy_weight`` x the entropy of the mixing
  weights s.
* **Fine-tuning** (``finetune_steps``): StyleGAN (a trainable copy) and the mapping network learn together from
  Eq. 6's cycle through the frozen inverse network. Each example is rendered twice on its own background: with
  its own S, T (image I1) and with the previous example's in the batch (I2). The inverse network must read back
  S and T from both; the background code of I1 must match that of B, and those of I1 and I2 must match each
  other (in the code space of g_b as the warm-up left it, frozen: an image-space loss blurs, the paper says, and
  a g_b that kept training could satisfy it by mapping everything to one code). Each code masks out its own
  image's car, so two cars of different silhouettes never give exactly equal codes: the pair term has a floor.
  Beyond Eq. 6 (ours): the camera read back from both must be the one asked for (the preview lives on view
  control), and a discriminator, started
  from the GAN run's own where given, tells StyleGAN-R's images from G0's (non-saturating loss,
  ``adversarial_weight``), so that the cycle cannot buy its losses with unrealistic images.

Under torchrun with N processes (:mod:`ganverse3d.distributed`), each rank reads its share of the global
batch's examples and the mapping network, StyleGAN and the discriminator train with their gradients averaged
over the ranks. Each example's partner (the shape and texture of I2) is the previous example in its own rank's
share, so several processes pair other examples than one does: the warm-up matches one process to float-sum
order, the fine-tuning in distribution (tests/neural/test_neural_distributed.py).

A run folder (``runs/neural/NNNNN-NAME/``, the shared run kit): ``config.json``, ``metrics.jsonl`` (every loss
term, and every ``metric_every`` steps ``fid-world-g0``: the world-feature FID between StyleGAN-R's renders and
G0's images of the same examples, how far realism drifted), ``view_dims.json`` (the sweep behind the
``view_dims`` choice), ``samples/*.png`` (rows: G0's image | DIB-R render of the inverse network's prediction |
StyleGAN-R's render | StyleGAN-R at 6 azimuths), ``checkpoints/stylegan_r.safetensors``.
"""

from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from .. import assets, runs
from ..bundle import load_module, load_state, save_module
from ..dataset.segment import Segmenter, load_segmenter
from ..dataset.views import load_candidates, load_pose_net, read_annotation
from ..devices import PRECISIONS, autocast
from ..errors import InputError, setting
from ..files import image_grid, is_file, save_png, shown_path, write_json
from ..inverse.model import InverseGraphicsNet
from ..render.renderer import render_mesh
from ..runs import Periodic, RunTrainer, seeded_rng
from ..stylegan2.metrics import FeatureStatistics, extract_features, frechet_distance
from ..stylegan2.networks import Discriminator, Generator
from .networks import StyleGANR
from .view_dims import top_view_dims, view_correlation, view_dims_sweep

# Counts of W*_V dimensions that view_dims.json measures (the run's own count is added).
SWEEP_COUNTS = (0, 16, 32, 64, 96, 128, 192)
# Azimuths (degrees) of the view sweep in the sample grids.
SAMPLE_AZIMUTHS = (0, 60, 120, 180, 240, 300)


@dataclass
class TrainConfig:
    """Everything that defines a run (saved to ``config.json``)."""

    views: str                         # View annotation (views.toml of `dataset views`) naming its candidates file.
    generator: str = "default"         # StyleGAN2 to turn into StyleGAN-R: a shipped name or a bundle path.
    inverse: str = "gan"               # The frozen inverse-graphics network (teacher): a shipped name or a path;
                                       # `gan` (the paper's) reads the generator's cameras steadily, the oracle not
                                       # (README, "StyleGAN-R").
    segmenter: str = "world"           # Finds the car in generated images (load_segmenter spec).
    discriminator: str | None = None   # A `gan train` run's checkpoints/state.safetensors: the realism term's D
                                       # starts from its D (None: from scratch).
    view_dims: int = 128               # W*_V dimensions the camera drives (view_dims.json: 128 of 256 keeps the
                                       # pose net's reading within 9 degrees of the full code's on the default).
    hidden: int = 256                  # Hidden width of the mapping network.
    standardise_shapes: bool = False   # Feed g_s the shapes standardised by the examples' mean and spread: shape
                                       # swaps then move the silhouette, but leak colour and cost view control
                                       # (docs/experiments.md, "StyleGAN-R"); off in the shipped model.
    warmup_steps: int = 1000           # Mapping network alone (the paper: 700).
    finetune_steps: int = 1500         # Mapping network and StyleGAN together (the paper: 2,500).
    batch: int = 16                    # Examples per step (the paper: 16); fine-tuning renders each twice.
    lr: float = 1e-3                   # Adam learning rate of the warm-up.
    finetune_lr: float = 1e-4          # Adam learning rate of StyleGAN and the mapping network in fine-tuning (the
                                       # paper: 1e-5 over 2,500 steps; ours trains fewer on a 64-px generator).
    d_lr: float = 1e-4                 # Adam learning rate of the discriminator.
    truncation: float = 0.7            # Truncation of the content codes (as `dataset synth`).
    entropy_weight: float = 0.1        # Loss weights: the mixing weights' entropy (warm-up) ...
    shape_weight: float = 100.0        # ... and fine-tuning's: vertices read back (MSE, object units) ...
    texture_weight: float = 10.0       # ... texture read back (MSE) ...
    background_weight: float = 10.0    # ... background code of I1 vs B ...
    pair_weight: float = 10.0          # ... background codes of I1 vs I2 ...
    camera_weight: float = 1.0         # ... camera vector read back (ours) ...
    adversarial_weight: float = 0.05   # ... realism (ours; 0 = off).
    precision: str = "float32"         # "bfloat16": the trained StyleGAN's synthesis and D under autocast (G0's
                                       # images, the data, stay float32).
    seed: int = 0                      # Seeds initialisation and every draw.
    log_every: int = 20                # Steps between metrics lines.
    sample_every: int = 200            # Steps between sample grids.
    metric_every: int = 200            # Steps between fid-world-g0 measurements (0 = never).
    metric_samples: int = 256          # Images on each side of fid-world-g0.
    checkpoint_every: int = 200        # Steps between checkpoints.

    def check(self) -> None:
        runs.check_fields(self)
        runs.check_at_least(self, 1, "view_dims", "hidden", "warmup_steps", "log_every", "sample_every",
                            "checkpoint_every")
        runs.check_at_least(self, 2, "batch", "metric_samples")
        runs.check_at_least(self, 0, "finetune_steps", "metric_every", "seed", "entropy_weight", "shape_weight",
                            "texture_weight", "background_weight", "pair_weight", "camera_weight",
                            "adversarial_weight")
        runs.check_positive(self, "lr", "finetune_lr", "d_lr")
        runs.check_within(self, "truncation", 0, 1, include_low=False)
        runs.check_choice(self, "precision", PRECISIONS)


@dataclass
class Examples:
    """A batch drawn from G0 and read by the inverse network (module docstring); images and backgrounds in [0, 1]."""

    ws: torch.Tensor             # [B, num_ws, w_dim]
    images: torch.Tensor         # [B, 3, R, R]
    masks: torch.Tensor          # [B, 1, R, R] 0 / 1
    verts: torch.Tensor          # [B, V, 3]
    texture: torch.Tensor        # [B, 3, Ht, 2 Ht]
    camera_vector: torch.Tensor  # [B, 4]

    @property
    def background(self) -> torch.Tensor:
        return self.images * (1 - self.masks)


def car_masks(segmenter: Segmenter, images: torch.Tensor) -> torch.Tensor:
    """[B, 1, H, W] float 0 / 1: every car pixel the segmenter finds in images [B, 3, H, W] in [0, 1]."""
    masks = [instances.masks.any(dim=0) if len(instances) else torch.zeros(images.shape[-2:], dtype=torch.bool)
             for instances in segmenter.segment(images.detach().clamp(0, 1))]
    return torch.stack(masks)[:, None].float().to(images.device)


def load_teacher(spec: str, device) -> InverseGraphicsNet:
    return load_module(assets.resolve("inverse", spec, setting_name="inverse"), InverseGraphicsNet,
                       device=device).requires_grad_(False)


class Trainer(RunTrainer):
    """StyleGAN-R's networks, optimisers and example source (the loop and checkpoints: :mod:`ganverse3d.runs`)."""

    config_class = TrainConfig
    stage = "neural"
    length_field = "finetune_steps"
    resumable = ("precision",)

    def __init__(self, config: TrainConfig, run_dir: Path | None, device, progress: bool = True):
        super().__init__(config, run_dir, device, progress)
        if self.ranks > 1 and config.batch < 2 * self.ranks:
            raise InputError(f"{setting('batch')} {config.batch} gives each of the {self.ranks} processes fewer than "
                             f"2 examples, and fine-tuning pairs each example with another of its process's; give "
                             f"at least {2 * self.ranks}.")
        device = self.device
        self.G0 = load_module(assets.resolve("generator", config.generator, setting_name="generator"), Generator,
                              device=device).requires_grad_(False)
        self.inverse = load_teacher(config.inverse, device)
        annotation = read_annotation(config.views, None)
        if annotation.candidates is None:
            raise InputError(f"The view annotation {shown_path(config.views)} names no candidates file.")
        candidates = load_candidates(annotation.candidates)
        if candidates.ws.shape[1:] != (self.G0.num_ws, self.G0.w_dim):
            raise InputError(f"The view candidates of {shown_path(config.views)} were made for another generator "
                             f"than the {setting('generator')} {config.generator}.")
        self.view_layers = candidates.view_layers
        self.view_ws = candidates.ws[[view.view_id for view in annotation.views]].to(device)
        self.view_azimuths = torch.tensor([view.azimuth for view in annotation.views])
        if not config.view_dims <= self.view_layers * self.G0.w_dim:
            raise InputError(f"{setting('view_dims')} {config.view_dims} is more than the "
                             f"{self.view_layers * self.G0.w_dim} dimensions of the view code.")
        self.segmenter = load_segmenter(config.segmenter, device=device)
        self.pose_net = load_pose_net("auto", device)

        self.rng = seeded_rng(config.seed)
        torch.manual_seed(config.seed)
        self.model = StyleGANR(
            generator=self.G0.init_kwargs,
            mapping=dict(num_ws=self.G0.num_ws, w_dim=self.G0.w_dim, view_layers=self.view_layers,
                         view_dims=config.view_dims, num_verts=self.inverse.num_verts,
                         texture_height=self.inverse.texture_height, resolution=self.G0.img_resolution,
                         hidden=config.hidden),
            reference_distance=self.inverse.reference_distance, fov_y=self.inverse.fov_y).to(device)
        self.model.generator.load_state_dict(self.G0.state_dict())
        self.scores = view_correlation(self.view_ws[:, :self.view_layers].flatten(1).cpu(), self.view_azimuths)
        with torch.no_grad():
            z = torch.randn(256, self.G0.z_dim, generator=seeded_rng(config.seed + 1))
            contents = self.G0.mapping(z.to(device), truncation_psi=config.truncation)
        shapes = self.examples(64, seeded_rng(config.seed + 5)).verts if config.standardise_shapes else None
        self.model.mapping.start_from(top_view_dims(self.scores, config.view_dims).to(device),
                                      self.view_ws[:, :self.view_layers].mean(dim=0),
                                      contents[:, self.view_layers:].mean(dim=0), shapes)
        # g_b as the warm-up leaves it: the code space of fine-tuning's background losses (copied at the switch).
        self.background_reference = copy.deepcopy(self.model.mapping).requires_grad_(False)
        self.D = Discriminator(img_resolution=self.G0.img_resolution, img_channels=3,
                               channel_base=self.G0._architecture_kwargs["channel_base"],
                               channel_max=self.G0._architecture_kwargs["channel_max"]).to(device)
        if config.discriminator is not None:
            self._load_discriminator(config.discriminator)
        self.opt_warmup = torch.optim.Adam(self.model.mapping.parameters(), lr=config.lr)
        self.opt_finetune = torch.optim.Adam(self.model.parameters(), lr=config.finetune_lr, betas=(0.0, 0.99))
        self.opt_D = torch.optim.Adam(self.D.parameters(), lr=config.d_lr, betas=(0.0, 0.99))
        # The passes whose gradients several processes average: what each phase trains (G0's z -> w mapping, in
        # the model but unused on W* codes, stays out), and the discriminator.
        self.warmup_pass = self.parallel(self.model.mapping, self.warmup_losses)
        self.finetune_pass = self.parallel(torch.nn.ModuleList([self.model.generator.synthesis, self.model.mapping]),
                                           self.finetune_losses)
        self.discriminator_pass = self.parallel(self.D, self.discriminator_loss)
        self.sample_examples = self.examples(8, seeded_rng(config.seed + 2))

    def _load_discriminator(self, path) -> None:
        if not is_file(path):
            raise InputError(f"The {setting('discriminator')} {shown_path(path)} does not exist; give a `gan train` "
                             f"run's checkpoints/state.safetensors.")
        tensors, _ = load_state(path)
        state = {name[2:]: tensor for name, tensor in tensors.items() if name.startswith("D.")}
        if set(state) != set(self.D.state_dict()) or any(
                tensor.shape != self.D.state_dict()[name].shape for name, tensor in state.items()):
            raise InputError(f"The {setting('discriminator')} {shown_path(path)} holds no discriminator of the "
                             f"generator's shape.")
        self.D.load_state_dict(state)

    # -- the run kit's parts ---------------------------------------------------------------------------------
    @classmethod
    def run_name(cls, config: TrainConfig) -> str:
        return f"{Path(config.generator).stem}-{Path(config.inverse).stem}-v{config.view_dims}"

    @property
    def total_steps(self) -> int:
        return self.config.warmup_steps + self.config.finetune_steps

    @property
    def fine_tuning(self) -> bool:
        return self.step >= self.config.warmup_steps

    @property
    def output_path(self) -> Path:
        return self.run_dir / "checkpoints" / "stylegan_r.safetensors"

    def checkpointed(self) -> dict:
        return {"model": self.model, "background_reference": self.background_reference, "D": self.D,
                "opt_warmup": self.opt_warmup, "opt_finetune": self.opt_finetune, "opt_D": self.opt_D, "rng": self.rng}

    def write_outputs(self) -> None:
        config = self.config
        save_module(self.output_path, self.model, config=dataclasses.asdict(config),
                    provenance={"stage": "neural train", "step": self.step, "fine_tuned_steps":
                                max(0, self.step - config.warmup_steps),
                                "inverse": str(assets.resolve("inverse", config.inverse, setting_name="inverse").name),
                                "generator": str(config.generator), "views": str(config.views)})

    def periodic(self) -> list[Periodic]:
        return [Periodic(self.config.sample_every, self.write_samples),
                Periodic(self.config.metric_every, self.measure_fid, line="fid")]

    def on_start(self) -> None:
        total = self.view_layers * self.G0.w_dim
        counts = sorted({count for count in SWEEP_COUNTS if count < total} | {self.config.view_dims, total})
        with torch.no_grad():
            contents = self.G0.mapping(torch.randn(8, self.G0.z_dim, generator=seeded_rng(self.config.seed + 3)).to(
                self.device), truncation_psi=self.config.truncation)
        sweep = (view_dims_sweep(self.G0, self.view_ws, self.view_azimuths, contents, self.view_layers,
                                 self.pose_net, counts) if self.pose_net is not None else [])
        write_json(self.run_dir / "view_dims.json", {
            "view_dims": self.config.view_dims, "of": self.view_layers * self.G0.w_dim, "sweep": sweep,
            "correlation": [round(float(score), 4) for score in self.scores]})
        self.write_samples()

    def postfix(self, stats: dict) -> dict:
        return {"phase": "fine-tune" if self.fine_tuning else "warm-up", "loss": f"{stats['loss']:.4f}"}

    # -- examples --------------------------------------------------------------------------------------------
    @torch.no_grad()
    def examples(self, count: int, rng: torch.Generator, shard: bool = False) -> Examples:
        """``count`` examples drawn from G0 with ``rng`` and read by the inverse network (module docstring); with
        ``shard``, ``count`` is a global batch and this rank's rows of it are made."""
        G0, layers = self.G0, self.view_layers
        view_index = torch.randint(len(self.view_ws), (count,), generator=rng)
        z = torch.randn(count, G0.z_dim, generator=rng)
        if shard:
            view_index, z = self.shard(view_index), self.shard(z)
        content = G0.mapping(z.to(self.device), truncation_psi=self.config.truncation)
        ws = torch.cat((self.view_ws[view_index.to(self.device)][:, :layers], content[:, layers:]), dim=1)
        images = ((G0.synthesis(ws) + 1) / 2).clamp(0, 1)
        masks = car_masks(self.segmenter, images)
        prediction = self.inverse(*self.teacher_view(images, masks))
        return Examples(ws=ws, images=images, masks=masks, verts=prediction.verts, texture=prediction.texture,
                        camera_vector=prediction.camera_vector)

    def teacher_view(self, images: torch.Tensor, masks: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """What the inverse network reads of G0-sized images [B, 3, R, R] and masks [B, 1, R, R]: the content box
        area-resized to its input size (as `inverse train` resizes the multi-view dataset's images)."""
        images, masks = self.G0.crop_to_content(images), self.G0.crop_to_content(masks)
        size = (self.inverse.resolution, self.inverse.resolution)
        if images.shape[-2:] == size:
            return images, masks
        return F.interpolate(images, size=size, mode="area"), F.interpolate(masks, size=size, mode="area")

    # -- training --------------------------------------------------------------------------------------------
    def train_step(self) -> dict:
        if self.step == self.config.warmup_steps:
            self.background_reference.load_state_dict(self.model.mapping.state_dict())
        examples = self.examples(self.config.batch, self.rng, shard=True)
        stats = self.finetune_step(examples) if self.fine_tuning else self.warmup_step(examples)
        self.step += 1
        return stats

    def warmup_losses(self, examples: Examples) -> dict:
        """The warm-up's loss terms (the mapping network against G0's codes), with the total as ``loss``."""
        mapping = self.model.mapping
        ws = mapping(examples.camera_vector, examples.verts, examples.texture, examples.background, examples.masks)
        loss_w = (ws - examples.ws).square().mean()
        entropy = mapping.mixing_entropy()
        return {"loss": loss_w + self.config.entropy_weight * entropy, "loss_w": loss_w, "entropy": entropy}

    def warmup_step(self, examples: Examples) -> dict:
        losses = self.warmup_pass(examples)
        self.opt_warmup.zero_grad(set_to_none=True)
        losses["loss"].backward()
        self.opt_warmup.step()
        return {name: value.detach() for name, value in losses.items()}

    def finetune_losses(self, examples: Examples) -> tuple[dict, torch.Tensor]:
        """Fine-tuning's loss terms (Eq. 6, the camera and the realism term; module docstring), with the total as
        ``loss``, and StyleGAN-R's images [2B, 3, R, R] (I1 then I2) for the discriminator."""
        config, model, mapping = self.config, self.model, self.model.mapping
        batch = len(examples.ws)
        partner = torch.roll(torch.arange(batch, device=self.device), 1)
        z_shape, z_txt, z_bck = mapping.property_codes(examples.verts, examples.texture, examples.background,
                                                       examples.masks)
        views = mapping.view_codes(examples.camera_vector)
        ws = torch.cat((torch.cat((views, mapping.mix(z_shape, z_txt, z_bck)), dim=1),
                        torch.cat((views, mapping.mix(z_shape[partner], z_txt[partner], z_bck)), dim=1)))
        with autocast(self.device, config.precision):
            images = model.synthesize(ws, noise_mode="const").float()
        masks = car_masks(self.segmenter, images)
        read = self.inverse(*self.teacher_view(images.clamp(0, 1), masks))
        terms = {
            "loss_shape": (read.verts - torch.cat((examples.verts, examples.verts[partner]))).square().mean(),
            "loss_texture": (read.texture - torch.cat((examples.texture, examples.texture[partner]))).square().mean(),
        }
        reference = self.background_reference
        codes = reference.background_code(images.clamp(0, 1) * (1 - masks), masks)
        with torch.no_grad():
            target = reference.background_code(examples.background, examples.masks)
        first, second = codes.chunk(2)
        terms["loss_background"] = (first - target).square().mean()
        terms["loss_pair"] = (first - second).square().mean()
        terms["loss_camera"] = (read.camera_vector - examples.camera_vector.repeat(2, 1)).square().mean()
        loss = (config.shape_weight * terms["loss_shape"] + config.texture_weight * terms["loss_texture"]
                + config.background_weight * terms["loss_background"] + config.pair_weight * terms["loss_pair"]
                + config.camera_weight * terms["loss_camera"])
        if config.adversarial_weight > 0:
            with autocast(self.device, config.precision):
                terms["loss_adversarial"] = F.softplus(-self.D(images * 2 - 1).float()).mean()
            loss = loss + config.adversarial_weight * terms["loss_adversarial"]
        return {"loss": loss, **terms}, images

    def discriminator_loss(self, fakes: torch.Tensor, reals: torch.Tensor) -> torch.Tensor:
        """The discriminator's non-saturating loss on StyleGAN-R's images and G0's, both [B, 3, R, R] in [0, 1]."""
        with autocast(self.device, self.config.precision):
            fake_logits, real_logits = self.D(fakes * 2 - 1).float(), self.D(reals * 2 - 1).float()
        return F.softplus(fake_logits).mean() + F.softplus(-real_logits).mean()

    def finetune_step(self, examples: Examples) -> dict:
        adversarial = self.config.adversarial_weight > 0
        if adversarial:
            self.D.requires_grad_(False)
        losses, images = self.finetune_pass(examples)
        self.opt_finetune.zero_grad(set_to_none=True)
        losses["loss"].backward()
        self.opt_finetune.step()
        stats = {name: value.detach() for name, value in losses.items()}
        if adversarial:
            self.D.requires_grad_(True)
            loss_D = self.discriminator_pass(images.detach(), examples.images)
            self.opt_D.zero_grad(set_to_none=True)
            loss_D.backward()
            self.opt_D.step()
            stats["loss_D"] = loss_D.detach()
        return stats

    # -- samples and realism -----------------------------------------------------------------------------------
    @torch.no_grad()
    def render(self, examples: Examples, camera_vector: torch.Tensor | None = None) -> torch.Tensor:
        """StyleGAN-R's images [B, 3, R, R] in [0, 1] of the examples' properties (in their own cameras or these)."""
        camera = examples.camera_vector if camera_vector is None else camera_vector
        return self.model(camera, examples.verts, examples.texture, examples.background, examples.masks)

    @torch.no_grad()
    def write_samples(self) -> None:
        examples, inverse = self.sample_examples, self.inverse
        prediction_camera = self.inverse.estimate_camera(*self.teacher_view(examples.images, examples.masks))[0]
        dibr = render_mesh(examples.verts, inverse.faces, inverse.face_uvs, examples.texture, prediction_camera,
                           max(self.G0.img_content_shape), soft=False).image
        columns = [examples.images, self.model.to_canvas(dibr.clamp(0, 1)), self.render(examples)]
        for azimuth in SAMPLE_AZIMUTHS:
            camera = examples.camera_vector.clone()
            camera[:, 0], camera[:, 1] = torch.tensor(azimuth).deg2rad().sin(), torch.tensor(azimuth).deg2rad().cos()
            columns.append(self.render(examples, camera))
        tiles = torch.stack(columns, dim=1).flatten(0, 1).cpu()
        save_png(self.run_dir / "samples" / f"samples{self.step:07d}.png", image_grid(tiles, columns=len(columns)))

    @torch.no_grad()
    def measure_fid(self) -> dict:
        """World-feature FID between StyleGAN-R's renders of examples and G0's images of the same examples."""
        if self.pose_net is None:
            return {}
        rng = seeded_rng(self.config.seed + 4)
        ours, originals = [], []
        for start in range(0, self.config.metric_samples, 32):
            examples = self.examples(min(32, self.config.metric_samples - start), rng)
            ours.append(self.render(examples).cpu())
            originals.append(examples.images.cpu())
        statistics = [FeatureStatistics.of(extract_features(self.pose_net, torch.cat(images)))
                      for images in (originals, ours)]
        return {"fid-world-g0": round(frechet_distance(*statistics), 4)}


# train(config) starts a run, train(resume=run_folder, finetune_steps=N) resumes or extends one: RunTrainer.train.
train = Trainer.train
