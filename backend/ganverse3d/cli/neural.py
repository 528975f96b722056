"""``ganverse3d neural``: StyleGAN-R, the neural renderer driven by camera, shape, texture and background."""

from __future__ import annotations

import click

from ..errors import InputError
from .options import config_option, device_option, given_options, resume_option, runs_option

_TRAIN = "ganverse3d.neural.train:TrainConfig"


@click.group()
def neural():
    """StyleGAN-R (paper Sec. 3.3): train it, and render, turn and swap reconstructed cars with it."""


@neural.command("train")
@config_option(_TRAIN, "--views", help="View annotation (views.toml of `dataset views`) naming its candidates file.")
@config_option(_TRAIN, "--generator", help="StyleGAN2 to turn into StyleGAN-R: a shipped name or a bundle.")
@config_option(_TRAIN, "--inverse", help="The frozen inverse-graphics network: 'oracle', 'gan' or a bundle.")
@config_option(_TRAIN, "--discriminator",
               help="A `gan train` run's checkpoints/state.safetensors: the realism term's discriminator starts "
                    "from its D [default: from scratch].")
@config_option(_TRAIN, "--view-dims", type=int, help="Dimensions of the view code that the camera drives.")
@config_option(_TRAIN, "--warmup-steps", type=int, help="Steps of the mapping network alone (StyleGAN frozen).")
@config_option(_TRAIN, "--finetune-steps", type=int, help="Steps of StyleGAN and the mapping network together.")
@config_option(_TRAIN, "--batch", type=int, help="Examples per step.")
@config_option(_TRAIN, "--finetune-lr", type=float, help="Adam learning rate of the fine-tuning.")
@config_option(_TRAIN, "--adversarial-weight", type=float, help="Weight of the realism term (0 = off).")
@config_option(_TRAIN, "--seed", type=int, help="Seed for initialisation and every draw.")
@runs_option("neural")
@resume_option("--finetune-steps may extend it.")
@device_option
@click.pass_context
def neural_train(ctx, runs_root, resume_dir, device, **_config_fields):
    """Train StyleGAN-R: the mapping network's warm-up, then fine-tuning with StyleGAN through the inverse network.

    Writes runs/neural/NNNNN-NAME/ with config.json, metrics.jsonl (every loss term; fid-world-g0, how far
    StyleGAN-R's renders drift from the generator's own images), view_dims.json (how much of the viewpoint
    the chosen view dimensions keep), samples/*.png (G0's image | DIB-R render of the inverse network's
    reading | StyleGAN-R's render | 6 azimuths) and checkpoints/stylegan_r.safetensors; kill it at any time
    and --resume the run folder.

    \b
    Examples:
      ganverse3d neural train --views training/views-world64-L2/views.toml
      ganverse3d neural train --views training/views-world64-L2/views.toml --inverse gan --finetune-steps 600
      ganverse3d neural train --resume runs/neural/00000-default-default-v128 --finetune-steps 1200
    """
    from ..neural.train import TrainConfig, train

    settings = given_options(ctx)
    if resume_dir is None and "views" not in settings:
        raise InputError("Give --views (a view annotation) or --resume (a run folder).")
    config = None if resume_dir is not None else TrainConfig(**settings)
    changes = settings if resume_dir is not None else {}
    click.echo(f"Wrote {train(config, runs_root=runs_root, resume=resume_dir, device=device, **changes)}.")
