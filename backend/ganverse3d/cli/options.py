"""Options shared by several commands, defined once.

Training and synthesis options whose default lives in a library config read it from there
(:class:`ConfigOption`): the command passes on only the options the user gave (:func:`given_options`), so a
default is written in one place, the library's config, and a resumed run can tell a given option from a
default one.
"""

from __future__ import annotations

import dataclasses
import importlib
import inspect

import click
from click.core import ParameterSource

from .. import assets
from ..errors import InputError

DEVICE_HELP = "'auto' (CUDA when available), 'cpu' or 'cuda'."

device_option = click.option("--device", default="auto", show_default=True, help=DEVICE_HELP)


def echo_once(text: str) -> None:
    """Print a training command's closing line once, however many torchrun processes trained."""
    from ..runs import is_main_process

    if is_main_process():
        click.echo(text)


def seed_option(help: str = "Seed; the same seed gives the same files."):
    return click.option("--seed", type=int, default=0, show_default=True, help=help)


generator_option = click.option(
    "--generator", "generator", required=True,
    help=f"Generator: a shipped one ({assets.describe('generator')}) or weights in any format `gan convert` reads.")


def model_option(required: bool):
    return click.option("--model", "model", required=required, default=None,
                        help="Inverse-graphics model: 'oracle' (shipped, trained on world renders with exact "
                             "cameras; the default), 'gan' (shipped, trained the paper's way, on the generator's "
                             "images) or a bundle such as runs/inverse/.../checkpoints/inverse.safetensors.")


# "default" rather than None: while no StyleGAN-R is shipped, a missing one is then one sentence naming the option.
neural_model_option = click.option(
    "--neural-model", "neural_model", default="default",
    help=f"StyleGAN-R: a shipped one ({assets.describe('neural')}) or a bundle such as "
         f"runs/neural/.../checkpoints/stylegan_r.safetensors [default: the shipped default].")


segmenter_option = click.option(
    "--segmenter", default="world", show_default=True,
    help=f"Car segmenter: a shipped one ({assets.describe('segmenter')}), a world segmenter's weights, world:PATH, "
         f"maskrcnn:PATH (torchvision COCO weights) or detectron2:PATH.")

FEATURE_NET_HELP = (f"a shipped world feature net ({assets.describe('feature_net')}), a world feature net "
                    f"(.safetensors) or torchvision's Inception-v3 .pth")


def feature_net_option(help: str):
    return click.option("--feature-net", default=None, help=help)


def runs_option(stage: str):
    return click.option("--runs", "runs_root", default="runs", show_default=True,
                        help=f"Folder for run folders ({stage}/NNNNN-name).")


def resume_option(may_change: str):
    """``--resume RUN``; ``may_change`` says what a resume of this command may change."""
    return click.option("--resume", "resume_dir", default=None,
                        help=f"Continue this run folder with its own config.json; {may_change}")


EPOCHS_STAY = "its --epochs stay (the learning-rate schedule spans them)."


class ConfigOption(click.Option):
    """An option whose default is that of the same-named field of a library config dataclass, or of the
    same-named parameter of a library function.

    ``config`` is ``"module:name"``, imported only when the default is needed (the command's help or a call
    without the option), so ``ganverse3d --help`` stays free of torch.
    """

    def __init__(self, *args, config: str, **kwargs):
        kwargs.setdefault("show_default", True)
        super().__init__(*args, **kwargs)
        self.config = config

    def get_default(self, ctx, call: bool = True):
        module_name, _, attribute = self.config.partition(":")
        target = getattr(importlib.import_module(module_name), attribute)
        if dataclasses.is_dataclass(target):
            field = next(field for field in dataclasses.fields(target) if field.name == self.name)
            if field.default_factory is not dataclasses.MISSING:
                return field.default_factory()
            return None if field.default is dataclasses.MISSING else field.default
        default = inspect.signature(target).parameters[self.name].default
        return None if default is inspect.Parameter.empty else default


def config_option(config: str, *param_decls, **attrs):
    """``click.option`` for a field of the library config (or parameter of the library function) ``config``,
    ``"module:name"``, with its default."""
    return click.option(*param_decls, cls=ConfigOption, config=config, **attrs)


def given_options(ctx: click.Context) -> dict:
    """The :class:`ConfigOption` values that the user set on the command line, not defaults (the library
    fills in the rest)."""
    names = [param.name for param in ctx.command.params if isinstance(param, ConfigOption)]
    return {name: ctx.params[name] for name in names
            if ctx.get_parameter_source(name) not in (ParameterSource.DEFAULT, None)}


def new_run_or_resume(ctx: click.Context, config_class: type, resume_dir, data_kind: str, config_path=None,
                      required: str = "data") -> tuple[object | None, dict]:
    """What a training command with ``--resume`` (and ``--config``) starts from: (the config of a new run, no
    changes) from the TOML file ``config_path`` overridden by the options the user gave, or with ``--resume``
    (None, those options as the resume's changes). InputError when neither ``--<required>`` (``data_kind``
    says what it is, set by the file or an option) nor ``--resume`` is given, or for ``--config`` with
    ``--resume``."""
    settings = given_options(ctx)
    if resume_dir is not None:
        if config_path is not None:
            raise InputError("A resumed run keeps its own config.json; give --config only to a new run.")
        return None, settings
    from ..runs import read_config_file  # torch: imported only when a command runs

    file_settings = read_config_file(config_class, config_path) if config_path is not None else {}
    settings = {**file_settings, **settings}
    if required not in settings:
        raise InputError(f"Give --{required.replace('_', '-')} ({data_kind}) or --resume (a run folder).")
    return config_class(**settings), {}


config_file_option = click.option(
    "--config", "config_path", default=None,
    help="TOML file setting any training field (names as in config.json); the options given override it.")
