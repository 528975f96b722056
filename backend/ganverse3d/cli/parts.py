"""``ganverse3d parts``: DatasetGAN part labels (annotate a few generated images, train the interpreter, synthesise)."""

from __future__ import annotations

import click

from .options import (EPOCHS_STAY, config_option, device_option, echo_once, generator_option, given_options,
                      new_run_or_resume, resume_option, runs_option)

_ANNOTATE = "ganverse3d.parts.annotations:write_annotation_templates"
_TRAIN = "ganverse3d.parts.train:InterpreterTrainConfig"
_SYNTH = "ganverse3d.parts.synth:synthesize_parts"


@click.group()
def parts():
    """Part labels the DatasetGAN way: annotate a few generated images, train a style interpreter, label thousands."""


@parts.command("annotate")
@generator_option
@config_option(_ANNOTATE, "--n", "count", type=int, help="Images to annotate.")
@click.option("--out", "out", required=True, help="New folder for the images, label templates and legend.")
@config_option(_ANNOTATE, "--seed", type=int, help="Image i draws its code from (seed, i).")
@config_option(_ANNOTATE, "--truncation", type=float, help="Truncation psi of the codes.")
@device_option
@click.pass_context
def parts_annotate(ctx, generator, out, device, **_settings):
    """Write N generated images and blank label templates to paint in any image editor.

    labels/NAME.png are indexed PNGs with the class palette (legend.png: background, body, window, wheel,
    headlight, taillight, plate); paint each image's parts with those colours and save (indexed, RGB or grey =
    class index). Delete a label file to leave its image out. latents.safetensors keeps the images' codes.

    \b
    Example:
      ganverse3d parts annotate --generator world64 --n 16 --out annotations
      (paint annotations/labels/*.png)
      ganverse3d parts train --annotations annotations --generator world64 --out interpreter.safetensors
    """
    from ..parts.annotations import write_annotation_templates

    manifest = write_annotation_templates(out, generator, device=device, **given_options(ctx))
    click.echo(f"Wrote {manifest['count']} images and label templates to {out}; paint {out}/labels/*.png "
               f"(colours in {out}/legend.png).")


@parts.command("train")
@click.option("--annotations", default=None, help="Annotation folder (`parts annotate`, labels painted).")
@click.option("--generator", "generator", default=None,
              help="The generator the annotations were made with (a shipped name or weights) [default: world64].")
@click.option("--out", "out_path", required=True, help="Output interpreter bundle, .safetensors.")
@config_option(_TRAIN, "--members", type=int, help="Pixel classifiers in the ensemble.")
@config_option(_TRAIN, "--steps", type=int, help="The most steps (batches) any member trains.")
@config_option(_TRAIN, "--batch", type=int, help="Pixels per step and member.")
@config_option(_TRAIN, "--learning-rate", type=float, help="Adam learning rate.")
@config_option(_TRAIN, "--min-epochs", type=int, help="Epochs over the pixels before a member may stop early.")
@config_option(_TRAIN, "--patience", type=int, help="Steps without a lower loss that stop a member.")
@config_option(_TRAIN, "--balance", type=float,
               help="Class c's pixels weigh freq_c ** -balance in the cross-entropy (0: unweighted, DatasetGAN's).")
@config_option(_TRAIN, "--seed", type=int, help="Seed of the initialisation and pixel orders.")
@config_option(_TRAIN, "--checkpoint-every", type=int, help="Steps between checkpoints.")
@runs_option("parts")
@resume_option("it may raise --steps.")
@device_option
@click.pass_context
def parts_train(ctx, annotations, generator, out_path, runs_root, resume_dir, device, **_config_fields):
    """Train the style interpreter (an ensemble of pixel classifiers on the generator's features) on painted labels.

    Writes runs/parts/NNNNN-NAME/ (config.json, metrics.jsonl, samples/*.png, checkpoints/; kill it at any time
    and --resume the run folder), then copies the interpreter to --out.

    \b
    Example:
      ganverse3d parts train --annotations annotations --generator world64 --out interpreter.safetensors
    """
    from ..errors import InputError
    from ..parts.train import InterpreterTrainConfig, train_interpreter

    settings = given_options(ctx)
    config = None
    if resume_dir is None:
        if annotations is None:
            raise InputError("Give --annotations (a folder from `parts annotate`) or --resume (a run folder).")
        config = InterpreterTrainConfig(annotations=annotations, **({"generator": generator} if generator else {}),
                                        **settings)
        settings = {}
    provenance = train_interpreter(config, out_path, device=device, runs_root=runs_root, resume=resume_dir,
                                   **settings)
    fit = provenance["fit"]
    echo_once(f"Wrote {out_path}: {provenance['images']} annotated images, {provenance['steps']} steps "
              f"({provenance['stopped_early']} members stopped early); on the annotations: pixel accuracy "
              f"{fit['accuracy']:.4f}, mIoU {fit['miou']:.4f}.")


@parts.command("synth")
@generator_option
@click.option("--interpreter", required=True,
              help="Style interpreter: a shipped name (world64) or a bundle (`parts train`).")
@click.option("--n", "count", type=int, required=True, help="Images to generate (the most uncertain are dropped).")
@click.option("--out", "out", required=True, help="Dataset folder: new, empty, or one to resume or extend.")
@config_option(_SYNTH, "--seed", type=int, help="Image i draws its code from (seed, i).")
@config_option(_SYNTH, "--truncation", type=float, help="Truncation psi of the codes.")
@config_option(_SYNTH, "--drop", type=float, help="Share of the most uncertain images dropped.")
@config_option(_SYNTH, "--batch", type=int, help="Images per generator batch.")
@device_option
@click.pass_context
def parts_synth(ctx, generator, interpreter, count, out, device, **_settings):
    """Generate N images, label them by the interpreter's majority vote, drop the most uncertain.

    The folder holds images/, parts/ (indexed PNGs, value = class index), meta.jsonl (each image's uncertainty,
    kept or not), manifest.json (with the filtered count) and sheet.png. The same seed gives the same files;
    rerun to resume, or with a larger --n to extend.

    \b
    Example:
      ganverse3d parts synth --generator world64 --interpreter interpreter.safetensors --n 10000 --out parts-data
    """
    from ..parts.synth import synthesize_parts

    manifest = synthesize_parts(out, generator, interpreter, count, device=device, **given_options(ctx))
    counts = manifest["counts"]
    click.echo(f"Wrote {out}: kept {counts['kept']} of {counts['generated']} images; dropped the {counts['filtered']} "
               f"most uncertain.")


@parts.command("label")
@click.option("--data", required=True, help="GAN multi-view dataset (`ganverse3d dataset synth`) to label.")
@generator_option
@click.option("--interpreter", default="world64", show_default=True,
              help="Style interpreter: a shipped name or a bundle (`parts train`).")
@device_option
def parts_label(data, generator, interpreter, device):
    """Label the parts of every image of a GAN multi-view dataset, from its own codes, into DATA/parts/.

    The generator remakes each image's pixel features from the W* the dataset kept; the interpreter's majority
    vote labels them within the image's car mask (parts/NAME.png: 8-bit grey, part id + 1). Rerun to resume.
    `inverse train-parts --data DATA` then trains the inverse network's part branch on them.

    \b
    Example:
      ganverse3d parts label --data gan-mv-64 --generator world64 --interpreter world64
      ganverse3d inverse train-parts --data gan-mv-64 --inverse gan --out part_branch_gan.safetensors
    """
    from ..parts.label import label_multiview

    labelled = label_multiview(data, generator, interpreter, device=device)
    click.echo(f"Wrote the part labels of {labelled} images to {data}/parts.")


_SEGMENTER = "ganverse3d.parts.segmenter:PartSegmenterTrainConfig"


@parts.command("train-segmenter")
@config_option(_SEGMENTER, "--data",
               help="Folder with images/NAME.png and part labels in parts/NAME.png (`world render`, `parts synth`) "
                    "or labels/NAME.png (`parts annotate`).")
@click.option("--out", "out_path", required=True, help="Output part segmenter bundle, .safetensors.")
@config_option(_SEGMENTER, "--resolution", type=int, help="Training size (multiple of 8).")
@config_option(_SEGMENTER, "--width", type=int, help="Channels of the U-Net's first level.")
@config_option(_SEGMENTER, "--epochs", type=int, help="Passes over the training split.")
@config_option(_SEGMENTER, "--batch", type=int, help="Minibatch size.")
@config_option(_SEGMENTER, "--learning-rate", type=float, help="Peak learning rate (one-cycle schedule, Adam).")
@config_option(_SEGMENTER, "--balance", type=float,
               help="Class c's pixels weigh freq_c ** -balance in the cross-entropy (0: unweighted).")
@config_option(_SEGMENTER, "--holdout", type=float,
               help="Share of the images held out and scored (0: train on all, score the training images).")
@config_option(_SEGMENTER, "--seed", type=int, help="Seed for initialisation, split, batches and augmentation.")
@config_option(_SEGMENTER, "--checkpoint-every", type=int,
               help="Steps between checkpoints (each scores the held-out images).")
@runs_option("parts-segmenter")
@resume_option(EPOCHS_STAY)
@device_option
@click.pass_context
def parts_train_segmenter(ctx, out_path, runs_root, resume_dir, device, **_config_fields):
    """Train a part segmenter (a small U-Net, cross-entropy over background and the six parts) on labelled images.

    Writes runs/parts-segmenter/NNNNN-NAME/ (config.json, metrics.jsonl, samples/*.png: image | truth |
    prediction; kill it at any time and --resume the run folder), then copies the bundle to --out.

    \b
    Example:
      ganverse3d parts synth --generator world64 --interpreter interpreter.safetensors --n 3000 --out parts-data
      ganverse3d parts train-segmenter --data parts-data --out part_segmenter.safetensors
    """
    from ..parts.segmenter import PartSegmenterTrainConfig, train_part_segmenter

    config, changes = new_run_or_resume(ctx, PartSegmenterTrainConfig, resume_dir, "a folder of images and part labels")
    scores = train_part_segmenter(config, out_path, device=device, runs_root=runs_root, resume=resume_dir, **changes)
    echo_once(f"Wrote {out_path}. {_scores_line(scores)} ({scores['scored']} images: {scores['count']}).")


@parts.command("eval-segmenter")
@click.option("--data", required=True, help="Folder with images/ and true part labels (parts/ or labels/).")
@click.option("--segmenter", "segmenter_path", required=True, help="Part segmenter bundle (`parts train-segmenter`).")
@device_option
def parts_eval_segmenter(data, segmenter_path, device):
    """Score a part segmenter against true part labels: IoU per class, mIoU with and without background.

    \b
    Example:
      ganverse3d world render --n 500 --resolution 64 --seed 42 --out world-test
      ganverse3d parts eval-segmenter --data world-test --segmenter part_segmenter.safetensors
    """
    from ..parts.segmenter import evaluate_part_segmenter

    scores = evaluate_part_segmenter(segmenter_path, data, device=device)
    click.echo(f"{segmenter_path} on {data} ({scores['count']} images): {_scores_line(scores)}")


def _scores_line(scores: dict) -> str:
    from ..parts.interpreter import CLASSES

    def percent(value):
        return "-" if value is None else f"{100 * value:.1f}"

    per_class = ", ".join(f"{name} {percent(scores['per_class'][name])}" for name in CLASSES)
    return (f"mIoU {percent(scores['miou'])} (parts only {percent(scores['miou_parts'])}), pixel accuracy "
            f"{percent(scores['accuracy'])} %; IoU {per_class}.")
