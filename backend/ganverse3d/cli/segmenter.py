"""``ganverse3d segmenter``: train and score car segmenters."""

from __future__ import annotations

import click

from .options import EPOCHS_STAY, config_option, device_option, echo_once, new_run_or_resume, resume_option, \
    runs_option, segmenter_option

_TRAIN = "ganverse3d.dataset.train_segmenter:SegmenterTrainConfig"


@click.group()
def segmenter():
    """Car segmenters: train the embedded world segmenter, score any segmenter."""


@segmenter.command("train")
@config_option(_TRAIN, "--data",
               help="Folder with images/NAME.png and masks/NAME.png (`world render`).")
@click.option("--out", "out_path", required=True, help="Output bundle, .safetensors.")
@config_option(_TRAIN, "--resolution", type=int, help="Training size (multiple of 8).")
@config_option(_TRAIN, "--width", type=int, help="Channels of the U-Net's first level.")
@config_option(_TRAIN, "--epochs", type=int, help="Passes over the training split.")
@config_option(_TRAIN, "--batch", type=int, help="Minibatch size.")
@config_option(_TRAIN, "--seed", type=int, help="Seed for initialisation, split and batches.")
@config_option(_TRAIN, "--checkpoint-every", type=int,
               help="Steps between checkpoints (each scores the held-out images).")
@runs_option("segmenter")
@resume_option(EPOCHS_STAY)
@device_option
@click.pass_context
def segmenter_train(ctx, out_path, runs_root, resume_dir, device, **_config_fields):
    """Train the small world segmenter (a U-Net) on world renders and masks; 10 % are held out and scored.

    Writes runs/segmenter/NNNNN-NAME/ (config.json, metrics.jsonl, samples/*.png, checkpoints/; kill it at any
    time and --resume the run folder), then copies the trained bundle to --out.

    \b
    Example:
      ganverse3d world render --n 3000 --resolution 64 --seed 7 --out world-seg
      ganverse3d segmenter train --data world-seg --out world_segmenter.safetensors
    """
    from ..dataset.train_segmenter import SegmenterTrainConfig, train_world_segmenter

    config, changes = new_run_or_resume(ctx, SegmenterTrainConfig, resume_dir, "a folder of images and masks")
    evaluation = train_world_segmenter(config, out_path, device=device, runs_root=runs_root, resume=resume_dir,
                                       **changes)
    echo_once(f"Wrote {out_path}. Held out ({evaluation['count']} images): mean IoU {evaluation['iou_mean']:.4f}, "
              f"exactly one car found in {evaluation['single_instance_rate']:.1%}.")


@segmenter.command("eval")
@click.option("--data", required=True, help="Folder with images/NAME.png and masks/NAME.png, one car each.")
@segmenter_option
@device_option
def segmenter_eval(data, segmenter, device):
    """Score a segmenter against ground-truth masks: mean IoU and how often it finds exactly one car.

    \b
    Example:
      ganverse3d world render --n 500 --resolution 64 --seed 8 --out world-seg-test
      ganverse3d segmenter eval --data world-seg-test
    """
    from ..dataset.segment import load_segmenter
    from ..dataset.train_segmenter import evaluate_segmenter, load_masked_images

    model = load_segmenter(segmenter, device=device)
    images, masks = load_masked_images(data)
    evaluation = evaluate_segmenter(model, images, masks)
    click.echo(f"{segmenter} on {data} ({evaluation['count']} images): mean IoU {evaluation['iou_mean']:.4f}, exactly one "
               f"car found in {evaluation['single_instance_rate']:.1%}.")
