"""The ``ganverse3d`` command line: one sub-command group per stage, one module per stage.

Commands only parse, call the library and print. Problems the user can fix raise
:class:`ganverse3d.errors.InputError`; :func:`main` prints them as one sentence, with each setting the
library names worded as this command line's flag, and exits with code 2, without a traceback and without
partial output.
"""

from __future__ import annotations


import click

from .. import __version__
from ..errors import InputError
from .dataset import dataset
from .gan import gan
from .inverse import inverse
from .reconstruct import reconstruct
from .render import render
from .segmenter import segmenter
from .world import world


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="ganverse3d")
def cli():
    """GANverse3D: photos of cars to textured 3D meshes, and the stages that train them (a StyleGAN2 as a
    multi-view data generator, the DIB-R inverse-graphics network).

    \b
    Examples:
      ganverse3d reconstruct docs/example_car.png -o car.glb
      ganverse3d world render --n 64 --resolution 128 --seed 0 --out world64
      ganverse3d render car.glb --azimuth 30 --elevation 15 -o car.png
    """


for command in (world, gan, dataset, segmenter, inverse, render, reconstruct):
    cli.add_command(command)

# Library settings whose flag is not "--" plus the name with dashes.
_FLAGS = {"count": "--n", "out_dir": "--out", "out_path": "--out", "generator_path": "--generator",
          "model_path": "--model", "mask_path": "--mask", "photo": "PHOTO", "mesh_path": "MESH",
          "num_views": "--views", "num_contents": "--contents"}


def cli_flag(name: str) -> str:
    """The command-line flag of the library setting ``name`` (``"view_layers"`` -> ``"--view-layers"``)."""
    return _FLAGS.get(name, "--" + name.replace("_", "-"))


def main(argv=None) -> int:
    """Console-script entry point: runs the CLI and maps :class:`InputError` to exit code 2."""
    try:
        cli.main(args=argv, prog_name="ganverse3d", standalone_mode=False)
    except InputError as error:
        click.echo(f"Error: {error.worded(cli_flag)}", err=True)
        return 2
    except click.exceptions.Abort:
        click.echo("Aborted.", err=True)
        return 1
    except click.ClickException as error:
        error.show()
        return 2 if isinstance(error, click.UsageError) or error.exit_code == 2 else error.exit_code
    except click.exceptions.Exit as done:
        return done.exit_code
    return 0
