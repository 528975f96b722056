"""``ganverse3d dataset``: view annotation, multi-view synthesis from a GAN, the world oracle."""

from __future__ import annotations

from pathlib import Path

import click

from .. import assets
from .options import config_option, device_option, generator_option, given_options, seed_option, segmenter_option

_SYNTH = "ganverse3d.dataset.synth:synthesize"
_VIEWS = "ganverse3d.dataset.views:write_view_candidates"


@click.group()
def dataset():
    """Multi-view datasets: view codes and their annotation, synthesis from a GAN, the world oracle."""


@dataset.command("views")
@generator_option
@click.option("--candidates", "count", type=click.IntRange(1, 1000), default=64, show_default=True,
              help="Candidate view codes to sample (columns of the sheet; their ids are 0 .. N-1).")
@click.option("--out", "out_dir", required=True, help="Folder for candidates.safetensors, sheet.png and views.toml.")
@config_option(_VIEWS, "--contents", type=click.IntRange(1, 16), help="Rows: content samples.")
@config_option(_VIEWS, "--view-layers", type=int,
               help="Leading W* entries that hold the view [default: the paper's 4 of 16, scaled to the model].")
@config_option(_VIEWS, "--truncation", type=float, help="Truncation psi of the codes.")
@config_option(_VIEWS, "--seed", type=int, help="Seed of the candidate and content codes.")
@click.option("--pose-net", default="auto", show_default=True,
              help=f"World feature net suggesting each view's bin: a .safetensors, a shipped one "
                   f"({assets.describe('feature_net')}), 'auto' (the default one when present) or 'none'.")
@config_option(_VIEWS, "--pose-contents", type=click.IntRange(1, 256),
              help="Cars the pose net reads each candidate over (the sheet's rows, then more); a view whose few "
                   "rows agree may still show other cars from other sides.")
@config_option(_VIEWS, "--preselect-per-bin", type=click.IntRange(0, 1000),
              help="Uncomment up to N views per bin that the pose net sees alike in all those cars (check by eye).")
@config_option(_VIEWS, "--min-agreement", type=click.FloatRange(0, 1),
              help="Least agreement of the pose net's readings over the cars for a view to be preselected (the "
                   "summary's 'alike': the cars within about a bin). Lower it for a generator whose views never reach "
                   "that in some bins.")
@device_option
def dataset_views(generator, count, out_dir, contents, view_layers, truncation, seed, pose_net,
                  pose_contents, preselect_per_bin, min_agreement, device):
    """Sample candidate view codes and write the sheet and annotation template to annotate them.

    Look at sheet.png (one candidate view per column, headed by its id), then in views.toml uncomment the
    views to keep and give each its azimuth bin (bin b = b * 30 degrees; 0 = front, 3 = side with the front
    pointing left, 6 = rear, 9 = side with the front pointing right). That is the paper's one-minute
    annotation; `dataset synth` reads it.

    \b
    Example:
      ganverse3d dataset views --generator G.safetensors --candidates 64 --out views
      (edit views/views.toml; --preselect-per-bin 3 uncomments the pose net's best views to start from)
      ganverse3d dataset synth --generator G.safetensors --views views/views.toml --contents 1000 --out data
    """
    from ..dataset.views import consistency_summary, load_pose_net, write_view_candidates
    from ..devices import resolve_device
    from ..stylegan2 import load_generator

    out = Path(out_dir)
    device = resolve_device(device)
    generator = assets.resolve("generator", generator)  # the outputs record a file, not a name
    G = load_generator(generator, device=device)
    pose = load_pose_net(pose_net, device)
    _, guesses = write_view_candidates(G, generator, out, count, contents=contents, seed=seed,
                                       truncation=truncation, view_layers=view_layers, pose_net=pose,
                                       pose_contents=pose_contents, preselect_per_bin=preselect_per_bin,
                                       min_agreement=min_agreement)
    suggestion = "with suggested bins" if guesses else "without suggestions (no pose net)"
    click.echo(f"Wrote {out / 'sheet.png'} ({count} candidate views x {contents} cars), "
               f"{out / 'candidates.safetensors'} and {out / 'views.toml'} {suggestion}; annotate views.toml next.")
    if guesses:
        click.echo(consistency_summary(guesses))


@dataset.command("synth")
@generator_option
@click.option("--views", "annotation", required=True, help="The annotated views.toml.")
@click.option("--candidates", default=None,
              help="The candidates file [default: the one views.toml names, else candidates.safetensors beside it].")
@click.option("--contents", type=int, required=True, help="Content codes (cars), each rendered in every chosen view.")
@click.option("--out", "out_dir", required=True, help="Dataset folder: new, empty, or one to resume or extend.")
@segmenter_option
@config_option(_SYNTH, "--truncation", type=float, help="Truncation psi of the content codes.")
@config_option(_SYNTH, "--min-mask-area", type=float,
               help="Keep an image only if its one car covers at least this fraction of it.")
@config_option(_SYNTH, "--seed", type=int, help="Content c draws its code from (seed, c).")
@config_option(_SYNTH, "--batch", type=int, help="Images per generator/segmenter batch.")
@device_option
@click.pass_context
def dataset_synth(ctx, generator, annotation, candidates, contents, out_dir, segmenter, device, **_settings):
    """Render every content code in every annotated view, segment, filter, and write a multi-view dataset.

    An image is kept only if the segmenter finds exactly one car covering at least --min-mask-area of it.
    The folder holds images/, masks/, latents/, meta.jsonl (with each view's initial camera from its bin),
    filtered.jsonl, view_codes.safetensors, sheet.png and manifest.json with the kept and filtered counts.
    The same seed gives the same files; rerun to resume, or with a larger --contents to extend.

    \b
    Example:
      ganverse3d dataset synth --generator G.safetensors --views views/views.toml --contents 1000 --out data
    """
    from ..dataset.synth import synthesize

    manifest = synthesize(out_dir, generator, annotation, contents, candidates=candidates, segmenter=segmenter,
                          device=device, **given_options(ctx))
    counts = manifest["counts"]
    click.echo(f"Wrote {out_dir}: kept {counts['kept']} of {counts['candidates']} images ({contents} cars x "
               f"{len(manifest['views'])} views); filtered {counts['filtered']['instances']} for not showing one car "
               f"and {counts['filtered']['mask_area']} for a mask under {manifest['filters']['min_mask_area']:g} of the "
               "image.")


@dataset.command("world")
@click.option("--cars", type=int, required=True, help="Number of world cars (contents).")
@click.option("--views", type=int, default=12, show_default=True, help="Cameras per car, spread over 360 degrees.")
@click.option("--resolution", type=int, default=64, show_default=True, help="Image width and height, 16 to 2048.")
@seed_option("Car c is item c of `world render --seed S`.")
@click.option("--out", "out_dir", required=True, help="Dataset folder: new, empty, or one to resume or extend.")
@click.option("--hold-out", "hold_out", multiple=True, metavar="BODY_TYPE",
              help="Leave out the cars of this body type (repeatable): a test set of designs a model never saw.")
def dataset_world(cars, views, resolution, seed, out_dir, hold_out):
    """The oracle multi-view dataset: each world car from K exact cameras, with its ground-truth mesh.

    Same format as `dataset synth` (meta.jsonl cameras are the exact ones), plus meshes/ID.glb.

    \b
    Example:
      ganverse3d dataset world --cars 500 --views 12 --resolution 64 --seed 11 --out world-mv
      ganverse3d dataset world --cars 750 --views 8 --hold-out pickup --out world-mv-no-pickups
    """
    from ..dataset.world_multiview import write_world_multiview

    manifest = write_world_multiview(out_dir, cars, views, resolution, seed, hold_out=hold_out)
    held_out = f", {sum(manifest['counts']['filtered'].values())} of held-out cars left out" if hold_out else ""
    click.echo(f"Wrote {out_dir}: {manifest['counts']['kept']} images ({cars} cars x {views} views{held_out}) at "
               f"{resolution}x{resolution} with exact cameras, masks and meshes.")
