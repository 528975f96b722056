"""The run kit: the one scaffold every training run stands on.

A run is a folder ``<runs_root>/<stage>/<NNNNN-name>/`` (numbered by :func:`~ganverse3d.files.new_run_dir`;
an existing run is never reused or overwritten) holding

* ``config.json``: the trainer's config dataclass as JSON, written when the run starts;
* ``metrics.jsonl``: one JSON object per line, ``step`` first, then the trainer's progress fields (GAN:
  ``kimg``): losses every ``log_every`` steps, measurements, and the settings a resume changed;
* ``checkpoints/state.safetensors``: everything a resume needs (modules, optimisers, RNG states, step),
  written every ``checkpoint_every`` steps and after the last one, atomically, followed by the trainer's own
  outputs (model bundles);
* whatever else the trainer writes (sample grids in ``samples/``).

A trainer subclasses :class:`RunTrainer`: it declares its config class, stage, length field and resumable
fields, builds its networks and data in ``__init__``, and implements one training step, the parts of its
checkpoint and its periodic actions (:class:`Periodic`); :meth:`RunTrainer.train` starts or resumes a run.

Starting validates the config (its ``check()``) and builds the trainer, which reads every input, before the
run folder is made: a start that fails leaves no folder behind.

**What a resume may change.** A resumed run keeps its ``config.json``. A resume may change only the fields
its trainer lists in ``resumable`` (settings that the saved state does not depend on) and the run's length
(``length_field``), unless the trainer keeps its length fixed (``fixed_length``). The new values are written
to ``config.json``, and every change but the length is recorded in ``metrics.jsonl`` as one line
``{"step": S, <progress fields>, "<field>": <new value>, ...}`` at the step the run continues from (a new
length shows in ``config.json`` and in how far the steps go). Giving any other field a new value is refused,
and so is a length that ends the run before the checkpoint's step (a resume never shortens a run).

The GAN (``kimg``) and the inverse network (``iterations``) train at a constant learning rate, so a resume may
extend a finished run. The segmenter and feature-net runs (:class:`EpochTrainer`) keep their ``epochs``: their
learning-rate schedule spans all the epochs, so a resume only continues an interrupted run.

**metrics.jsonl on resume.** Lines after the checkpoint's step are dropped (they describe steps that will
be trained again), so a resumed run's file reads as an uninterrupted run's. A torn last line (the process
died while appending it) is dropped with a warning; a damaged line elsewhere was not written by an
interruption, and is refused.

Resuming deletes the temporaries that interrupted atomic writes left in the run folder (hidden files, see
:func:`~ganverse3d.files.remove_temp_files`).

**Several processes.** Under ``torchrun --nproc_per_node=N`` a run trains data-parallel (the conventions are in
:mod:`ganverse3d.distributed`): ``batch`` stays the global batch, each rank trains on its rows of it
(:meth:`RunTrainer.shard`) and a trainer's step runs its networks through :meth:`RunTrainer.parallel`
(``DistributedDataParallel``). Every rank builds the trainer and reads the inputs; only rank 0 makes the run
folder (the others learn it from rank 0) and writes ``config.json``, ``metrics.jsonl``, samples, checkpoints and
bundles, and runs the periodic actions; the losses in ``metrics.jsonl`` are rank 0's share of the batch. A
checkpoint holds, beside rank 0's RNG states as ever, every rank's torch RNG state (``rng_torch_*_ranks``): a
resume with as many processes continues bit for bit, a resume with another number of processes seeds each
rank's torch RNG from (seed, rank, step) and continues from the same weights, optimiser states and shared
generators. With one process nothing of this happens: checkpoints and weights are those of a plain run.

**Checkpoints of the trainers before the run kit.** Up to commit 62517ea every trainer wrote its own
checkpoint layout: torch's global RNG as ``rng.torch``, its own RNGs under other names, and the optimisers'
and ``random.Random`` states at the top of the metadata instead of under ``optimizers`` and ``random``.
Committed runs in ``training/`` hold such checkpoints (``training/gan-world64``, which
``scripts/make_default_generator.sh`` resumes), so loading translates that layout (metadata without
``optimizers``) to the current one, renaming entries by the trainer's :attr:`RunTrainer.old_checkpoint_names`;
the run resumes to the weights the old trainer would have reached.
"""

from __future__ import annotations

import abc
import dataclasses
import json
import math
import random
import sys
import time
import tomllib
import typing
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, ClassVar

import torch
import torch.nn.functional as F
from tqdm import tqdm

from . import distributed
from .bundle import flatten_optimizer, load_state, read_metadata, restore_optimizer, save_state
from .devices import resolve_device
from .errors import InputError, setting
from .files import (check_output_file, is_file, new_run_dir, remove_temp_files, shown_path, write_bytes, write_json,
                    write_text)

# Checkpoint entries of torch's global RNG state (CPU, and the run's CUDA device when it has one).
_GLOBAL_RNG = "rng_torch_global"
_CUDA_RNG = "rng_torch_cuda"
# Every rank's global (and CUDA) RNG state, [ranks, state bytes], in checkpoints of runs on several processes.
_RANK_RNGS = {_GLOBAL_RNG: "rng_torch_global_ranks", _CUDA_RNG: "rng_torch_cuda_ranks"}
# The global RNG's entry in checkpoints of the trainers before the run kit (module docstring).
_OLD_GLOBAL_RNG = "rng.torch"
# How much of a bad value a message repeats.
_ECHO_CHARS = 60


# ---------------------------------------------------------------------------------------------------
# Configs


def check_fields(config) -> None:
    """InputError unless every field of the dataclass ``config`` holds a value of its annotated type
    (``int``, ``float``, ``bool``, ``str``, optionally ``| None``) and every float is finite."""
    for name, annotation in typing.get_type_hints(type(config)).items():
        value = getattr(config, name)
        if not _has_type(value, annotation):
            raise InputError(f"{setting(name)} must be of type {_type_name(annotation)}, not {_echo(value)}.")
        if isinstance(value, float) and not math.isfinite(value):
            raise InputError(f"{setting(name)} must be a finite number, not {value}.")


def check_at_least(config, minimum: int, *names: str) -> None:
    """InputError unless each field ``names`` of ``config`` is at least ``minimum``."""
    for name in names:
        value = getattr(config, name)
        if not value >= minimum:
            raise InputError(f"{setting(name)} must be at least {minimum}, not {value:g}.")


def check_positive(config, *names: str) -> None:
    """InputError unless each field ``names`` of ``config`` is above zero."""
    for name in names:
        value = getattr(config, name)
        if not value > 0:
            raise InputError(f"{setting(name)} must be positive, not {value:g}.")


def check_within(config, name: str, low: float, high: float, include_low: bool = True,
                 include_high: bool = True) -> None:
    """InputError unless the field ``name`` of ``config`` lies between ``low`` and ``high`` (ends as given)."""
    value = getattr(config, name)
    above = value >= low if include_low else value > low
    below = value <= high if include_high else value < high
    if not (above and below):
        interval = f"{'[' if include_low else '('}{low:g}, {high:g}{']' if include_high else ')'}"
        raise InputError(f"{setting(name)} must lie in {interval}, not {value:g}.")


def check_power_of_two(config, name: str, minimum: int) -> None:
    """InputError unless the field ``name`` of ``config`` is a power of two of at least ``minimum``."""
    value = getattr(config, name)
    if value < minimum or value & (value - 1):
        raise InputError(f"{setting(name)} must be a power of two of at least {minimum}, not {value}.")


def check_choice(config, name: str, choices: tuple[str, ...]) -> None:
    """InputError unless the field ``name`` of ``config`` is one of ``choices``."""
    value = getattr(config, name)
    if value not in choices:
        raise InputError(f"{setting(name)} must be one of {', '.join(choices)}, not {_echo(value)}.")


def check_values(config_class: type, values: dict, source) -> dict:
    """``values`` read from the file ``source`` for fields of the dataclass ``config_class``: InputError naming
    the file for an unknown field or a value of the wrong type. Returns them with whole numbers given to float
    fields as floats."""
    hints = typing.get_type_hints(config_class)
    unknown = sorted(set(values) - set(hints))
    if unknown:
        names = ", ".join(_clip(name) for name in unknown)
        raise InputError(f"{source} has {'an unknown setting' if len(unknown) == 1 else 'unknown settings'} {names}.")
    for name, value in values.items():
        if not _has_type(value, hints[name]):
            raise InputError(f"{source} sets {name} to {_echo(value)}, but it must be of type "
                             f"{_type_name(hints[name])}.")
    return {name: float(value) if hints[name] is float else value for name, value in values.items()}


def read_config(config_class: type, path):
    """The config saved as JSON at ``path`` (a run's config.json), checked; InputError with one sentence if the
    file is not JSON, not an object, or has unknown, missing or mistyped fields."""
    path = Path(path)
    try:
        values = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError, RecursionError):
        raise InputError(f"{path} is damaged: it is not readable JSON.") from None
    if not isinstance(values, dict):
        raise InputError(f"{path} is damaged: it holds a JSON {type(values).__name__}, not a configuration.")
    values = check_values(config_class, values, path)
    required = [field.name for field in dataclasses.fields(config_class)
                if field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING]
    missing = [name for name in required if name not in values]
    if missing:
        raise InputError(f"{path} is damaged: it lacks {', '.join(missing)}.")
    return config_class(**values)


def read_config_file(config_class: type, path) -> dict:
    """The fields of a TOML training config (``--config``: any field names of the dataclass ``config_class``,
    top level), type-checked; InputError naming the file otherwise."""
    path = Path(path)
    try:
        with path.open("rb") as file:  # TOML is UTF-8 whatever the locale
            values = tomllib.load(file)
    except FileNotFoundError:
        raise InputError(f"The config file {path} does not exist.") from None
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as error:
        raise InputError(f"Cannot read {path} as TOML: {error}.") from None
    return check_values(config_class, values, path)


def _has_type(value, annotation) -> bool:
    """Whether ``value`` fits a config field annotation: bool is not an int, an int is a float."""
    for option in typing.get_args(annotation) or (annotation,):
        if option is type(None) and value is None:
            return True
        if option is bool and isinstance(value, bool):
            return True
        if option is int and isinstance(value, int) and not isinstance(value, bool):
            return True
        if option is float and isinstance(value, (int, float)) and not isinstance(value, bool):
            return True
        if option is str and isinstance(value, str):
            return True
    return False


def _type_name(annotation) -> str:
    return " or ".join("null" if option is type(None) else option.__name__
                       for option in typing.get_args(annotation) or (annotation,))


def _echo(value) -> str:
    return _clip(repr(value))


def _clip(text: str) -> str:
    return text if len(text) <= _ECHO_CHARS else text[:_ECHO_CHARS] + "..."


# ---------------------------------------------------------------------------------------------------
# Shared pieces of every trainer, run folder or not


def is_main_process() -> bool:
    """Whether this process speaks for the run: the only process, or rank 0 of a torchrun (every rank returns
    from training, one says what it wrote)."""
    return distributed.is_main()


def seeded_rng(seed: int) -> torch.Generator:
    """Seed torch's global RNG with ``seed`` (initial weights, per-layer noise) and return a new
    ``torch.Generator`` seeded alike, for a trainer's own draws (batch order, latents, augmentation)."""
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


def progress_bar(total: int, desc: str, initial: int = 0, enabled: bool = True) -> tqdm:
    """The progress bar of a training loop, counting steps."""
    return tqdm(total=total, initial=initial, desc=desc, unit="step", disable=not enabled)


def loading_bar(items, desc: str, unit: str = "img", enabled: bool = True) -> tqdm:
    """A transient progress bar over ``items`` for a preparation step (loading a dataset): shown only on a
    terminal, where it is erased when the step ends or fails, so that an error after it stays one line.
    Use it as a context manager, so that a failure closes (erases) it."""
    return tqdm(items, desc=desc, unit=unit, leave=False, disable=None if enabled else True)


def warn(message: str) -> None:
    """Tell the user something worth knowing that does not stop the run (on stderr, between progress bars)."""
    tqdm.write(f"Warning: {message}", file=sys.stderr)


# ---------------------------------------------------------------------------------------------------
# metrics.jsonl


def append_metrics(path: Path, line: dict) -> None:
    """Append one JSON line to ``metrics.jsonl``."""
    with open(path, "a", encoding="utf-8") as handle:
        handle.write(json.dumps(line) + "\n")


def read_metrics(path: Path) -> list[dict]:
    """The lines of ``metrics.jsonl`` (none when it does not exist). A torn last line, left by a process that
    died while appending it, is dropped with a warning; any other unreadable line is an InputError."""
    if not is_file(path):
        return []
    lines = path.read_text(encoding="utf-8").splitlines()
    parsed = []
    for number, text in enumerate(lines, start=1):
        try:
            line = json.loads(text)
            if not isinstance(line, dict) or not isinstance(line.get("step"), int):
                raise ValueError
        except (ValueError, RecursionError):
            if number == len(lines):
                warn(f"dropped the torn last line of {path} (the run was stopped while writing it).")
                break
            raise InputError(f"{path} is damaged at line {number}; remove that line to resume the run.") from None
        parsed.append(line)
    return parsed


def keep_metrics_until(path: Path, step: int) -> None:
    """Rewrite ``metrics.jsonl`` without the lines after ``step`` and without a torn last line."""
    if not is_file(path):
        return
    kept = [line for line in read_metrics(path) if line["step"] <= step]
    text = "".join(json.dumps(line) + "\n" for line in kept)
    if text != path.read_text(encoding="utf-8"):
        write_text(path, text)


# ---------------------------------------------------------------------------------------------------
# The trainer scaffold


@dataclass(frozen=True)
class Periodic:
    """An action of the training loop, run every ``every`` steps (0 = never) and after the last step.

    When the action returns values, they go to ``metrics.jsonl`` in the step's line named ``line``: the
    actions of one step that name the same line share it ("log" is the line of the losses).
    """

    every: int
    action: Callable[[], dict | None]
    line: str = "log"


class RunTrainer(abc.ABC):
    """Networks, optimisers, data and run folder of one training run, and the loop that trains it.

    A subclass sets the class attributes below and implements the abstract methods. Its config is a
    dataclass with a ``check()`` method (one-sentence InputError for a bad value) and the fields ``seed``,
    ``log_every`` and ``checkpoint_every``.

    Args:
        config: the run's configuration.
        run_dir: the run folder; None while a new run is being built (its folder is made afterwards, so that
            a trainer that cannot read its inputs leaves nothing behind).
        device: where the networks train.
        progress: show a progress bar.
    """

    config_class: ClassVar[type]
    stage: ClassVar[str]                       # runs/<stage>/..., and the checkpoints' provenance
    length_field: ClassVar[str]                # the config field that sets how long the run trains
    resumable: ClassVar[tuple[str, ...]] = ()  # besides the length, the fields a resume may change
    # Why a resume may not change the length ("": it may; module docstring).
    fixed_length: ClassVar[str] = ""
    # Entries that this stage's trainer before the run kit named otherwise in its checkpoints: old name -> name
    # in checkpointed() (module docstring: committed runs hold such checkpoints).
    old_checkpoint_names: ClassVar[dict[str, str]] = {}

    def __init__(self, config, run_dir: Path | None, device, progress: bool = True):
        self.config = config
        self.run_dir = None if run_dir is None else Path(run_dir)
        self.device = torch.device(device)
        self.progress = progress
        self.step = 0
        self.ranks = distributed.size()  # processes training together (distributed.join, in train())

    # -- starting and resuming -----------------------------------------------------------------------------
    @classmethod
    def train(cls, config=None, runs_root="runs", resume=None, device="auto", progress: bool = True,
              **changes) -> Path:
        """Start a run with ``config``, or resume the run folder ``resume``; returns the path of the model bundle
        of its last checkpoint (:attr:`output_path`).

        Args:
            config: a new run's configuration (None when resuming: a run keeps its own config.json).
            runs_root: the folder holding ``<stage>/<NNNNN-name>/`` run folders.
            resume: an existing run folder to continue.
            device: "auto", "cpu" or "cuda".
            progress: show a progress bar.
            changes: when resuming, new values of config fields (None = keep): the :attr:`resumable` fields and,
                unless :attr:`fixed_length`, the length may change (module docstring).
        """
        device = distributed.join(resolve_device(device))
        changes = {name: value for name, value in changes.items() if value is not None}
        if resume is not None:
            return cls._resume(Path(resume), device, progress, changes)
        if config is None:
            raise InputError("Give a training configuration or a run folder to resume.")
        if changes:
            raise TypeError(f"Changes ({', '.join(changes)}) apply to resumed runs; a new run takes them in its "
                            f"config.")
        config.check()
        _check_batch(config)
        trainer = cls(config, None, device, progress)

        def make_run_dir() -> Path:
            run_dir = new_run_dir(runs_root, cls.stage, cls.run_name(config))
            write_json(run_dir / "config.json", dataclasses.asdict(config))
            return run_dir

        trainer.run_dir = distributed.on_main(make_run_dir)
        if trainer.ranks > 1:  # the networks are initialised alike everywhere; from here each rank draws its own
            torch.manual_seed(distributed.rank_seed(config.seed, distributed.rank(), 0))
        return trainer.run()

    @classmethod
    def train_into(cls, out, config=None, runs_root="runs", resume=None, device="auto", progress: bool = True,
                   **changes) -> dict:
        """:meth:`RunTrainer.train`, then copy the run's model bundle to ``out`` (checked before the run starts,
        written atomically); returns the bundle's provenance (rank 0 writes and reads ``out``, every rank gets it,
        so that ``out`` need not be on a file system the other nodes share)."""
        out = check_output_file(out, (".safetensors",))
        bundle = cls.train(config, runs_root, resume, device, progress, **changes)

        def copy() -> dict:
            write_bytes(out, bundle.read_bytes())
            return read_metadata(out)["provenance"]

        return distributed.on_main(copy)

    @classmethod
    def _resume(cls, run_dir: Path, device, progress: bool, changes: dict) -> Path:
        config_path = run_dir / "config.json"
        if not is_file(config_path):
            raise InputError(f"{shown_path(run_dir)} is not a {cls.stage} training run folder (no config.json).")
        config = read_config(cls.config_class, config_path)
        changed = {name: value for name, value in changes.items() if value != getattr(config, name, None)}
        may_change = (*(() if cls.fixed_length else (cls.length_field,)), *cls.resumable)
        refused = [name for name in changed if name not in may_change]
        if refused:
            why = f" ({cls.fixed_length})" if cls.length_field in refused else ""
            rest = (f"; it may change only {', '.join(map(setting, may_change))}." if may_change else
                    ": a resume only continues an interrupted run; start a new run for other values.")
            raise InputError(f"A resumed run keeps its {', '.join(map(setting, refused))}{why}{rest}")
        config = dataclasses.replace(config, **changed)
        config.check()
        _check_batch(config)
        trainer = cls(config, run_dir, device, progress)
        if is_file(trainer.state_path):
            trainer.load_checkpoint()
        elif trainer.ranks > 1:
            torch.manual_seed(distributed.rank_seed(config.seed, distributed.rank(), 0))
        if trainer.step > trainer.total_steps:
            length = cls.length_field
            reached = ", ".join(f"{name} {value}" for name, value in trainer.progress_fields().items())
            raise InputError(f"The run has trained {trainer.step} steps{f' ({reached})' if reached else ''}, and "
                             f"{setting(length)} {getattr(config, length):g} would end it at step "
                             f"{trainer.total_steps}: a resume never shortens a run, so give a larger "
                             f"{setting(length)} or leave it out.")

        def tidy_run_dir() -> None:
            remove_temp_files(run_dir)
            keep_metrics_until(trainer.metrics_path, trainer.step)
            if changed:
                write_json(config_path, dataclasses.asdict(config))
                recorded = {name: value for name, value in changed.items() if name != cls.length_field}
                if recorded:
                    trainer.log(recorded)

        distributed.on_main(tidy_run_dir)
        return trainer.run()

    # -- what a trainer defines ----------------------------------------------------------------------------
    @classmethod
    @abc.abstractmethod
    def run_name(cls, config) -> str:
        """The name part of the run folder, ``NNNNN-<name>``."""

    @property
    @abc.abstractmethod
    def total_steps(self) -> int:
        """The step at which the run ends."""

    @abc.abstractmethod
    def train_step(self) -> dict[str, float | torch.Tensor]:
        """Train one step (advancing ``self.step``); returns the step's statistics: numbers, or detached tensors
        (a loss as it is, on the device), which the loop reads as numbers (:func:`read_stats`) only for the steps
        whose metrics line or progress bar it writes: reading a CUDA tensor waits for the device."""

    @abc.abstractmethod
    def checkpointed(self) -> dict[str, object]:
        """What the checkpoint holds, by name: modules, optimisers, RNGs (``torch.Generator`` or
        ``random.Random``) and tensors (restored in place). Torch's global RNG is always saved."""

    @property
    @abc.abstractmethod
    def output_path(self) -> Path:
        """The model bundle that checkpoints write (what training the run gives)."""

    @abc.abstractmethod
    def write_outputs(self) -> None:
        """Write what a checkpoint shows of the run besides its state: the model bundle at :attr:`output_path`."""

    def periodic(self) -> list[Periodic]:
        """The trainer's every-N actions besides logging and checkpoints (samples, measurements), in order."""
        return []

    def on_start(self) -> None:
        """Called before the first step of a new run (not on resume past step 0): reference samples, notes."""

    def log_values(self, stats: dict[str, float]) -> dict:
        """A step's statistics (read as numbers) as they go to its metrics line."""
        return stats

    def progress_fields(self) -> dict:
        """Fields that follow ``step`` in every metrics line (how far the run is in the trainer's own units)."""
        return {}

    def postfix(self, stats: dict[str, float]) -> dict[str, str]:
        """What the progress bar shows after a step whose statistics (read as numbers) are logged, and the last."""
        return {}

    # -- several processes (module docstring) --------------------------------------------------------------
    @staticmethod
    def shard(tensor: torch.Tensor) -> torch.Tensor:
        """This rank's rows of a tensor [B, ...] drawn for the whole (global) batch; the tensor itself on one
        process. Draw a step's random choices for the global batch from a shared generator, then shard them."""
        return distributed.shard(tensor)

    @staticmethod
    def average(tensor: torch.Tensor) -> torch.Tensor:
        """The mean of ``tensor`` over the ranks (the tensor itself on one process): for the few numbers a step
        needs alike on every rank (an early stop's losses, a loss's normaliser), never for gradients."""
        return distributed.average(tensor)

    def cross_entropy(self, logits: torch.Tensor, labels: torch.Tensor,
                      weight: torch.Tensor | None = None) -> torch.Tensor:
        """``F.cross_entropy`` of logits [N, C] and labels [N] (int64) with optional class weights [C]: the weighted
        mean over the rows. With several ranks, this rank's weighted sum over the ranks' mean sum of weights, so
        that DDP's average over the ranks is the global batch's weighted mean however the rows fall among them (a
        rank without a row adds 0, not NaN)."""
        if self.ranks == 1:
            return F.cross_entropy(logits, labels, weight=weight)
        total = weight[labels].sum() if weight is not None else torch.tensor(float(len(labels)), device=logits.device)
        return F.cross_entropy(logits, labels, weight=weight, reduction="sum") / self.average(total)

    def parallel(self, network: torch.nn.Module, compute: Callable | None = None):
        """What a training step calls to run ``network`` so that its gradients are averaged over the ranks: on one
        process ``network`` (or ``compute``) itself, else ``network`` (or a module whose forward is ``compute``,
        a pass that calls ``network``, perhaps several times, and returns its losses) in
        ``DistributedDataParallel``. Each step must give every trainable parameter of ``network`` a gradient."""
        if self.ranks == 1:
            return network if compute is None else compute
        return distributed.wrap(network if compute is None else _Pass(network, compute), self.device)

    # -- run folder ----------------------------------------------------------------------------------------
    @property
    def metrics_path(self) -> Path:
        return self.run_dir / "metrics.jsonl"

    @property
    def state_path(self) -> Path:
        return self.run_dir / "checkpoints" / "state.safetensors"

    def log(self, values: dict) -> None:
        """Append a metrics line for the current step."""
        append_metrics(self.metrics_path, {"step": self.step, **self.progress_fields(), **values})

    # -- the loop ------------------------------------------------------------------------------------------
    def run(self) -> Path:
        """Train from the current step to the end; returns the model bundle of the last checkpoint."""
        config = self.config
        # Rank 0 alone logs, samples and measures; the others wait for it in their next step's gradient exchange.
        main = distributed.is_main()
        if self.step == 0 and main:
            self.on_start()
        started, steps_timed = time.perf_counter(), 0

        def log_line() -> dict:  # called after a step: reads that step's stats and the timing so far
            return {"sec_per_step": round((time.perf_counter() - started) / steps_timed, 4), **self.log_values(stats)}

        actions = [Periodic(config.log_every, log_line), *self.periodic()] if main else []
        with progress_bar(self.total_steps, self.stage + " train", self.step, self.progress and main) as bar:
            while self.step < self.total_steps:
                stats = self.train_step()
                steps_timed += 1
                bar.update(1)
                last = self.step == self.total_steps
                if main and (last or (config.log_every > 0 and self.step % config.log_every == 0)):
                    # Read only here: a CUDA tensor's value waits for the device, so reading every step would stall it.
                    stats = read_stats(stats)
                    bar.set_postfix(self.postfix(stats))
                lines: dict[str, dict] = {}
                for periodic in actions:
                    if periodic.every > 0 and (self.step % periodic.every == 0 or last):
                        values = periodic.action()
                        if values:
                            lines.setdefault(periodic.line, {}).update(values)
                for values in lines.values():
                    self.log(values)
                if self.step % config.checkpoint_every == 0 or last:
                    self.save_checkpoint()
        distributed.barrier()  # every rank returns once rank 0's last files are written
        return self.output_path

    # -- checkpoints ---------------------------------------------------------------------------------------
    def save_checkpoint(self) -> None:
        """Write the training state, then the trainer's outputs (rank 0; every rank takes part)."""
        rank_states = distributed.gather(self._global_rng_states())
        if not distributed.is_main():
            return
        tensors, optimizers, randoms = {}, {}, {}
        for name, part in self.checkpointed().items():
            if isinstance(part, torch.nn.Module):
                tensors.update({f"{name}.{key}": value for key, value in part.state_dict().items()})
            elif isinstance(part, torch.optim.Optimizer):
                part_tensors, optimizers[name] = flatten_optimizer(name, part)
                tensors.update(part_tensors)
            elif isinstance(part, torch.Generator):
                tensors[name] = part.get_state()
            elif isinstance(part, random.Random):
                version, internal, gauss = part.getstate()
                randoms[name] = [version, list(internal), gauss]
            elif isinstance(part, torch.Tensor):
                tensors[name] = part
            else:
                raise TypeError(f"Cannot checkpoint {name}, a {type(part).__name__}.")
        tensors.update(rank_states[0])
        if len(rank_states) > 1:
            tensors.update({_RANK_RNGS[name]: torch.stack([states[name] for states in rank_states])
                            for name in rank_states[0]})
        save_state(self.state_path, tensors, {"step": self.step, "optimizers": optimizers, "random": randoms})
        self.write_outputs()

    def load_checkpoint(self) -> None:
        """Restore the state written by :meth:`save_checkpoint`."""
        tensors, meta = load_state(self.state_path, device=self.device)
        try:
            if "optimizers" not in meta:
                tensors, meta = self._from_old_layout(tensors, meta)
            for name, part in self.checkpointed().items():
                if isinstance(part, torch.nn.Module):
                    prefix = name + "."
                    part.load_state_dict({key[len(prefix):]: value for key, value in tensors.items()
                                          if key.startswith(prefix)})
                elif isinstance(part, torch.optim.Optimizer):
                    restore_optimizer(name, part, tensors, meta["optimizers"][name])
                elif isinstance(part, torch.Generator):
                    part.set_state(tensors[name].cpu())
                elif isinstance(part, random.Random):
                    version, internal, gauss = meta["random"][name]
                    part.setstate((version, tuple(internal), gauss))
                elif isinstance(part, torch.Tensor):
                    part.copy_(tensors[name])
            self.step = int(meta["step"])
            self._set_global_rng_states(tensors)
        except (KeyError, RuntimeError, ValueError, TypeError):
            raise InputError(f"{self.state_path} does not fit this {self.stage} run: it was written by another "
                             f"version of ganverse3d or for another configuration.") from None

    def _global_rng_states(self) -> dict[str, torch.Tensor]:
        """This rank's torch RNG states: the global one, and the device's on CUDA."""
        states = {_GLOBAL_RNG: torch.get_rng_state()}
        if self.device.type == "cuda":
            states[_CUDA_RNG] = torch.cuda.get_rng_state(self.device)
        return states

    def _set_global_rng_states(self, tensors: dict) -> None:
        """Restore this rank's torch RNG states from a checkpoint's ``tensors`` (module docstring: with several
        ranks, each its own when the checkpoint has as many, else seeded from the seed, its rank and the step)."""
        if self.ranks > 1:
            saved = tensors.get(_RANK_RNGS[_GLOBAL_RNG])
            if saved is None or len(saved) != self.ranks:
                torch.manual_seed(distributed.rank_seed(self.config.seed, distributed.rank(), self.step))
                return
            # A copy: the RNG setters read a state's storage from its start, not a row's offset into it.
            tensors = {name: tensors[ranks_name][distributed.rank()].clone() for name, ranks_name in _RANK_RNGS.items()
                       if ranks_name in tensors}
        torch.set_rng_state(tensors[_GLOBAL_RNG].cpu())
        if self.device.type == "cuda" and _CUDA_RNG in tensors:
            torch.cuda.set_rng_state(tensors[_CUDA_RNG].cpu(), self.device)

    def _from_old_layout(self, tensors: dict, meta: dict) -> tuple[dict, dict]:
        """A checkpoint of a trainer before the run kit (module docstring) in the layout of :meth:`save_checkpoint`."""
        renames = {_OLD_GLOBAL_RNG: _GLOBAL_RNG, **self.old_checkpoint_names}
        tensors = {renames.get(name, name): value for name, value in tensors.items()}
        meta = {renames.get(name, name): value for name, value in meta.items()}
        parts = self.checkpointed()
        return tensors, {
            "step": meta["step"],
            "optimizers": {name: meta[name] for name, part in parts.items() if isinstance(part, torch.optim.Optimizer)},
            "random": {name: meta[name] for name, part in parts.items() if isinstance(part, random.Random)},
        }


def read_stats(stats: dict) -> dict:
    """A step's statistics with each tensor read as a number (a 0-dim tensor) or a list of numbers."""
    return {name: value.tolist() if isinstance(value, torch.Tensor) else value for name, value in stats.items()}


class _Pass(torch.nn.Module):
    """A trainer's forward pass ``compute`` as the forward of a module that owns ``network``, so that
    ``DistributedDataParallel`` can wrap the whole pass (:meth:`RunTrainer.parallel`)."""

    def __init__(self, network: torch.nn.Module, compute: Callable):
        super().__init__()
        self.network = network
        self.compute = compute

    def forward(self, *args, **kwargs):
        return self.compute(*args, **kwargs)


def _check_batch(config) -> None:
    """InputError unless the global batch ``config.batch`` splits evenly among the processes (several of them)."""
    ranks = distributed.size()
    if ranks > 1 and config.batch % ranks:
        raise InputError(f"{setting('batch')} {config.batch} is the global batch, split evenly among the {ranks} "
                         f"processes, so it must be a multiple of {ranks}.")


class EpochTrainer(RunTrainer):
    """A :class:`RunTrainer` that passes over a training split in epochs, in an order drawn from ``rng`` when each
    epoch starts, with a learning-rate schedule over the whole run, scoring held-out data at every checkpoint
    (a metrics line, and what its bundle records). The segmenter and feature-net trainers are such runs.

    A subclass sets, in ``__init__``: ``rng`` (a ``torch.Generator``), ``steps_per_epoch``, ``epoch_order`` (an
    int64 tensor as long as the training split; the epoch's order of its items) and ``schedule`` (a torch lr
    scheduler of its optimiser, stepped after each step); it checkpoints ``rng`` and ``epoch_order`` with its
    networks, and implements :meth:`train_batch` and :meth:`measure`. Its config has ``data``, ``resolution``,
    ``epochs`` (the length), ``batch`` and ``checkpoint_every``.

    The schedule spans all the epochs, so a resume keeps them (:attr:`RunTrainer.fixed_length`): it only
    continues an interrupted run, and a longer run is a new one.
    """

    length_field = "epochs"
    fixed_length = "its learning-rate schedule spans all its epochs"

    def __init__(self, config, run_dir: Path | None, device, progress: bool = True):
        super().__init__(config, run_dir, device, progress)
        self._evaluation: tuple[int, dict] | None = None  # (step, held-out scores)

    @abc.abstractmethod
    def train_batch(self, items: torch.Tensor) -> dict[str, float]:
        """Train on the training split's items ``items`` (positions in the split); returns the step's statistics."""

    @abc.abstractmethod
    def measure(self) -> dict:
        """The held-out scores of the networks as they are now."""

    @classmethod
    def run_name(cls, config) -> str:
        return f"{Path(config.data).name}-r{config.resolution}"

    @property
    def total_steps(self) -> int:
        return self.config.epochs * self.steps_per_epoch

    def periodic(self) -> list[Periodic]:
        return [Periodic(self.config.checkpoint_every, self.evaluate, line="heldout")]

    def progress_fields(self) -> dict:
        return {"epoch": round(self.step / self.steps_per_epoch, 3)}

    def train_step(self) -> dict[str, float]:
        with warnings.catch_warnings():  # a resumed run's schedule starts at step 0: bring it to the run's step
            warnings.filterwarnings("ignore", "Detected call of", UserWarning)
            while self.schedule.last_epoch < self.step:
                self.schedule.step()
        in_epoch, batch = self.step % self.steps_per_epoch, self.config.batch
        if in_epoch == 0:
            self.epoch_order.copy_(torch.randperm(len(self.epoch_order), generator=self.rng))
        lr = self.schedule.get_last_lr()[0]
        items = self.epoch_order[in_epoch * batch:(in_epoch + 1) * batch]
        # An epoch's short last batch is filled up from the epoch's start, as torch's DistributedSampler does, so
        # that every rank trains on as many items.
        items = torch.cat((items, self.epoch_order[:(-len(items)) % self.ranks]))
        stats = self.train_batch(self.shard(items))
        self.schedule.step()
        self.step += 1
        return {**stats, "lr": lr}

    def evaluate(self) -> dict:
        """:meth:`measure` at the current step, measured once however often asked."""
        if self._evaluation is None or self._evaluation[0] != self.step:
            self._evaluation = self.step, self.measure()
        return self._evaluation[1]
