"""The ``ganverse3d`` command line: one sub-command per stage.

Problems the user can fix raise :class:`ganverse3d.errors.InputError`; they are printed as one sentence
and the command exits with code 2, without a traceback and without partial output.
"""

from __future__ import annotations

import sys

import click

from . import __version__
from .errors import InputError


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="ganverse3d")
def cli():
    """GANverse3D: photos of cars to textured 3D meshes, and StyleGAN-R neural rendering.

    \b
    Examples:
      ganverse3d world render --n 64 --resolution 128 --seed 0 --out world64
      ganverse3d render car.glb --azimuth 30 --elevation 15 -o car.png
    """


@cli.group()
def world():
    """The procedural car world: parametric cars, scenes and ground-truth renders."""


@cli.group()
def gan():
    """StyleGAN2: convert official weights, train, sample."""


def main(argv=None) -> int:
    """Console-script entry point: runs the CLI and maps :class:`InputError` to exit code 2."""
    try:
        cli.main(args=argv, prog_name="ganverse3d", standalone_mode=False)
    except InputError as error:
        click.echo(f"Error: {error}", err=True)
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


if __name__ == "__main__":
    sys.exit(main())
