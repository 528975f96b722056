"""The ``ganverse3d`` command line: one sub-command group per stage, one module per stage.

Commands only parse, call the library and print. Problems the user can fix raise
:class:`ganverse3d.errors.InputError`; :func:`main` prints them as one sentence, with each setting the
library names worded as this command line's flag, and exits with code 2, without a traceback and without
partial output.
"""

from __future__ import annotations


import sys
from typing import Callable

import click

from .. import __version__
from ..errors import InputError
from .dataset import dataset
from .gan import gan
from .inverse import inverse
from .neural import neural
from .parts import parts
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


for command in (world, gan, dataset, segmenter, parts, inverse, neural, render, reconstruct):
    cli.add_command(command)

def flag_namer(argv: list[str]) -> Callable[[str], str]:
    """How the command that ``argv`` runs names a library setting: the option (or argument) of the same name,
    ``count`` -> ``--candidates`` in ``dataset views``; else ``--`` and the name with dashes."""
    command = cli
    for token in argv:
        if not isinstance(command, click.Group) or token not in command.commands:
            break
        command = command.commands[token]
    names = {param.name: max(param.opts, key=len) if isinstance(param, click.Option) else param.human_readable_name
             for param in command.params}
    return lambda name: names.get(name, "--" + name.replace("_", "-"))


def main(argv=None) -> int:
    """Console-script entry point: runs the CLI and maps :class:`InputError` to exit code 2."""
    argv = sys.argv[1:] if argv is None else list(argv)
    try:
        cli.main(args=argv, prog_name="ganverse3d", standalone_mode=False)
    except InputError as error:
        click.echo(f"Error: {error.worded(flag_namer(argv))}", err=True)
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
