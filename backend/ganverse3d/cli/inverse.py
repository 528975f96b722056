"""``ganverse3d inverse``: train and evaluate the inverse-graphics network."""

from __future__ import annotations

from pathlib import Path

import click

from .options import (config_file_option, config_option, device_option, echo_once, model_option, new_run_or_resume,
                      resume_option, runs_option)

_TRAIN = "ganverse3d.inverse.train:TrainConfig"


@click.group()
def inverse():
    """The inverse-graphics network: train it on a multi-view dataset, evaluate it (paper Sec. 3.2)."""


@inverse.command("train")
@config_option(_TRAIN, "--data",
               help="Multi-view dataset folder (`ganverse3d dataset synth` or `dataset world`).")
@config_file_option
@config_option(_TRAIN, "--iterations", type=int, help="Training steps.")
@config_option(_TRAIN, "--batch", type=int, help="Images per step.")
@config_option(_TRAIN, "--resolution", type=int, help="Input and render size, a power of two.")
@config_option(_TRAIN, "--camera-mode", type=click.Choice(["learn", "fixed"]),
               help="learn: one camera per view, from its bin (the paper); fixed: the dataset's cameras.")
@config_option(_TRAIN, "--multiview/--no-multiview", help="Eq. 2's second view.")
@config_option(_TRAIN, "--image-cameras/--view-cameras",
               help="Render each image in the camera head's estimate for it, pulled toward its view's camera (ours), "
                    "or in its view's camera (the paper).")
@config_option(_TRAIN, "--template", type=click.Choice(["sphere", "car"]),
               help="The mesh shapes start from: DIB-R's sphere (the paper) or the sphere moved onto the mean world "
                    "car.")
@config_option(_TRAIN, "--vgg-weights",
               help="torchvision VGG-16 state dict for LPIPS [default: perceptual loss off].")
@config_option(_TRAIN, "--precision", type=click.Choice(["float32", "bfloat16"]),
               help="bfloat16: the network and the perceptual term's VGG under autocast (the renderer stays float32).")
@config_option(_TRAIN, "--seed", type=int, help="Seed for initialisation and batches.")
@runs_option("inverse")
@resume_option("--iterations may extend it; --precision may change.")
@device_option
@click.pass_context
def inverse_train(ctx, config_path, runs_root, resume_dir, device, **_config_fields):
    """Train the inverse-graphics network f: image -> mesh, UV texture, camera.

    Writes runs/inverse/NNNNN-NAME/ with config.json, metrics.jsonl (losses, IoU, camera movement in
    degrees, held-out IoU), samples/*.png (input | render in its view | 3 other views), cameras.json and
    checkpoints/inverse.safetensors; kill it at any time and --resume the run folder. A --config TOML file
    may set any field of ganverse3d.inverse.train.TrainConfig (lr, camera_lr, loss weights such as
    iou_weight, holdout_fraction, sigmainv, ...); command-line options override it.

    \b
    Examples:
      ganverse3d inverse train --data gan-views-data
      ganverse3d inverse train --data world-multiview --camera-mode fixed --iterations 20000
      ganverse3d inverse train --data gan-views-data --image-cameras
      ganverse3d inverse train --resume runs/inverse/00000-gan-views-data-r64-learn
    """
    from ..inverse.train import TrainConfig, train

    config, changes = new_run_or_resume(ctx, TrainConfig, resume_dir, "a multi-view dataset folder", config_path)
    echo_once(f"Wrote {train(config, runs_root=runs_root, resume=resume_dir, device=device, **changes)}.")


@inverse.command("eval")
@model_option(required=True)
@click.option("--data", required=True, help="Multi-view dataset folder; world sets with meshes/ add 3D metrics.")
@click.option("--out", "out_dir", default=None, help="Folder for metrics.json and turntables.png.")
@click.option("--turntables", type=click.IntRange(0, 256), default=8, show_default=True,
              help="Items on the turntable sheet (input + 6 azimuths, true mesh below when known).")
@click.option("--contents", "max_contents", type=click.IntRange(min=1), default=None,
              help="Evaluate only the first N contents (by id) [default: all].")
@device_option
def inverse_eval(model, data, out_dir, turntables, max_contents, device):
    """Evaluate an inverse-graphics model on a multi-view dataset.

    On the model's own training dataset only its held-out contents count, with the cameras it learned
    (the paper's re-projected 2D IoU); on another dataset every image counts with the dataset's cameras.
    World datasets with ground-truth meshes add novel-view silhouette IoU over 6 azimuths and Chamfer
    distance (both after scale normalisation); the camera estimate's azimuth error is reported always, and
    with several views per car how much the predicted shape changes across one car's views relative to
    across cars in one view (near 0.5 for the embedded model on world cars; 1 or more: the shape follows the
    view more than the car).

    \b
    Examples:
      ganverse3d inverse eval --model runs/inverse/00000-x/checkpoints/inverse.safetensors \\
          --data world-test --out eval-world-test
      ganverse3d inverse eval --model oracle --data gan-mv-64 --contents 30
    """
    from ..inverse.evaluate import evaluate, format_metrics

    metrics = evaluate(model, data, out=out_dir, device=device, turntables=turntables, max_contents=max_contents)
    click.echo(format_metrics(metrics))
    if out_dir:
        click.echo(f"Wrote {Path(out_dir) / 'metrics.json'}" + (f" and {Path(out_dir) / 'turntables.png'}."
                                                                  if turntables else "."))


_PARTS = "ganverse3d.parts.train_branch:BranchTrainConfig"


@inverse.command("train-parts")
@config_option(_PARTS, "--data",
               help="Multi-view dataset with part labels: `dataset world` (its meshes' parts) or one with a parts/ "
                    "folder.")
@config_option(_PARTS, "--inverse",
               help="The frozen inverse-graphics model the branch reads: a shipped name or a bundle.")
@click.option("--out", "out_path", required=True, help="Output part branch bundle, .safetensors.")
@config_option(_PARTS, "--steps", type=int, help="Training steps.")
@config_option(_PARTS, "--batch", type=int, help="Images per step.")
@config_option(_PARTS, "--learning-rate", type=float, help="Adam learning rate.")
@config_option(_PARTS, "--balance", type=float,
               help="A part's cross-entropy weight is its pixel frequency to the minus this, 0 to 1 (0: unweighted).")
@config_option(_PARTS, "--holdout", type=float, help="Share of the cars held out and scored at each checkpoint.")
@config_option(_PARTS, "--seed", type=int, help="Seed of the initialisation, split and batches.")
@config_option(_PARTS, "--checkpoint-every", type=int, help="Steps between checkpoints (held-out scores, samples).")
@runs_option("part_branch")
@resume_option("--steps may extend it.")
@device_option
@click.pass_context
def inverse_train_parts(ctx, out_path, runs_root, resume_dir, device, **_config_fields):
    """Train the inverse network's part branch: a part texture (body, window, wheel, headlight, taillight, plate)
    on its template UVs, through the renderer against the part labels of other views of each car.

    Writes runs/part_branch/NNNNN-NAME/ (config.json, metrics.jsonl with the held-out cars' part mIoU in their
    other views, samples/*.png: input | truth in another view | the branch there, checkpoints/); kill it at any
    time and --resume the run folder. Then copies the branch to --out; `reconstruct --part-branch` uses it.

    \b
    Example:
      ganverse3d dataset world --cars 300 --views 8 --resolution 64 --seed 21 --out world-mv
      ganverse3d inverse train-parts --data world-mv --inverse oracle --out part_branch.safetensors
    """
    from ..parts.train_branch import BranchTrainConfig, train_part_branch

    config, changes = new_run_or_resume(ctx, BranchTrainConfig, resume_dir, "a multi-view dataset with part labels")
    provenance = train_part_branch(config, out_path, device=device, runs_root=runs_root, resume=resume_dir, **changes)
    held_out = provenance["held_out"]
    scores = (f"; held-out cars in their other views: mIoU {held_out['miou']:.3f}, parts {held_out['miou_parts']:.3f}"
              if held_out else "")
    echo_once(f"Wrote {out_path}: {provenance['steps']} steps{scores}.")
