"""The one place weights are saved and loaded: ``.safetensors`` with JSON metadata.

A bundle file holds a module's ``state_dict`` (parameters and buffers) and, in the safetensors header's
string metadata:

    format        "ganverse3d-bundle"
    version       BUNDLE_VERSION
    class         "ganverse3d.stylegan2.networks.Generator" (only classes under ``ganverse3d.`` load)
    init_kwargs   JSON: the constructor arguments that rebuild the module
    config        JSON: the training configuration (free-form)
    provenance    JSON: stage, data, iterations, git revision, ...

Loading checks all of it and says in one sentence what is wrong; no pickle is ever involved.
"""

from __future__ import annotations

import importlib
import json
import subprocess
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from .errors import InputError
from .files import atomic_path

BUNDLE_FORMAT = "ganverse3d-bundle"
BUNDLE_VERSION = 1


def git_revision() -> str:
    """The source tree's git commit (with '+dirty' for uncommitted changes), or 'unknown'."""
    root = Path(__file__).resolve().parent
    try:
        revision = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True,
                                  timeout=5).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                               capture_output=True, text=True, timeout=5).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return (revision + ("+dirty" if dirty else "")) if revision else "unknown"


def _save_deterministic(path: Path, tensors: dict[str, torch.Tensor], metadata: dict[str, str]) -> None:
    """safetensors' ``save_file``, then its JSON header rewritten with sorted keys: the library writes metadata
    in hash order, so the same weights would otherwise give different bytes from one save to the next."""
    save_file(tensors, str(path), metadata=metadata)
    with open(path, "r+b") as handle:
        size = int.from_bytes(handle.read(8), "little")
        header = json.loads(handle.read(size))
        canonical = json.dumps(header, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
        if len(canonical) <= size:  # same content, so never longer; padding with spaces is what the format does
            handle.seek(8)
            handle.write(canonical.ljust(size, b" "))


def _class_path(module: torch.nn.Module) -> str:
    cls = type(module)
    return f"{cls.__module__}.{cls.__qualname__}"


def save_module(path, module: torch.nn.Module, init_kwargs: dict | None = None, config: dict | None = None,
                provenance: dict | None = None) -> None:
    """Write ``module``'s weights and the metadata that rebuilds it to ``path`` (atomically).

    ``init_kwargs`` defaults to the module's own ``init_kwargs`` attribute (set by the project's networks).
    """
    if init_kwargs is None:
        init_kwargs = module.init_kwargs
    state = {name: tensor.detach().contiguous().cpu() for name, tensor in module.state_dict().items()}
    metadata = {
        "format": BUNDLE_FORMAT,
        "version": str(BUNDLE_VERSION),
        "class": _class_path(module),
        "init_kwargs": json.dumps(init_kwargs, sort_keys=True),
        "config": json.dumps(config or {}, sort_keys=True),
        "provenance": json.dumps({"git_revision": git_revision(), **(provenance or {})}, sort_keys=True),
    }
    with atomic_path(path, suffix=".safetensors") as tmp:
        _save_deterministic(tmp, state, metadata)


def read_metadata(path) -> dict:
    """The bundle's metadata with the JSON fields decoded; InputError if it is not a ganverse3d bundle."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"Weights file {path} does not exist.")
    try:
        with open(path, "rb") as handle:
            header_size = int.from_bytes(handle.read(8), "little")
            if not 0 < header_size < 100_000_000:
                raise ValueError
            header = json.loads(handle.read(header_size))
        metadata = header.get("__metadata__") or {}
    except (ValueError, OSError):
        raise InputError(f"{path} is not a safetensors file.") from None
    if metadata.get("format") != BUNDLE_FORMAT:
        raise InputError(f"{path} is a safetensors file but not a ganverse3d bundle (no '{BUNDLE_FORMAT}' metadata).")
    if metadata.get("version") != str(BUNDLE_VERSION):
        raise InputError(f"{path} is bundle version {metadata.get('version')}; this ganverse3d reads version "
                         f"{BUNDLE_VERSION}.")
    try:
        decoded = {key: json.loads(metadata[key]) for key in ("init_kwargs", "config", "provenance")}
    except (KeyError, json.JSONDecodeError):
        raise InputError(f"{path} has damaged bundle metadata.") from None
    return {"class": metadata.get("class", ""), **decoded}


def load_module(path, expected_class: type | None = None, device="cpu") -> torch.nn.Module:
    """Rebuild the module saved by :func:`save_module` and load its weights (strictly).

    Args:
        path: the ``.safetensors`` bundle.
        expected_class: if given, the bundle must hold exactly this class.
        device: where to put the weights.
    """
    metadata = read_metadata(path)
    class_path = metadata["class"]
    if not class_path.startswith("ganverse3d."):
        raise InputError(f"{path} names class {class_path!r}, which is not a ganverse3d class.")
    module_name, _, class_name = class_path.rpartition(".")
    try:
        cls = getattr(importlib.import_module(module_name), class_name)
    except (ImportError, AttributeError):
        raise InputError(f"{path} holds weights of {class_path}, which this version of ganverse3d does not have.") from None
    if expected_class is not None and cls is not expected_class:
        raise InputError(f"{path} holds weights of {class_name}, not the {expected_class.__name__} that was asked for.")
    try:
        state = load_file(str(path), device=str(device))
    except (SafetensorError, OSError) as error:
        raise InputError(f"{path} is damaged: {error}.") from None
    module = cls(**metadata["init_kwargs"])
    try:
        missing, unexpected = module.load_state_dict(state, strict=False)
    except RuntimeError:  # shape mismatches
        raise InputError(f"{path} does not match its {class_name}: tensor shapes differ from its init_kwargs.") from None
    if missing or unexpected:
        raise InputError(f"{path} does not match its {class_name}: missing {sorted(missing)[:3]}, "
                         f"unexpected {sorted(unexpected)[:3]}.")
    return module.to(device).eval()


CHECKPOINT_FORMAT = "ganverse3d-checkpoint"


def save_state(path, tensors: dict[str, torch.Tensor], meta: dict) -> None:
    """Write a training checkpoint: named tensors plus a JSON-serialisable ``meta`` dict (atomically)."""
    state = {name: tensor.detach().contiguous().cpu() for name, tensor in tensors.items()}
    metadata = {"format": CHECKPOINT_FORMAT, "version": str(BUNDLE_VERSION), "meta": json.dumps(meta, sort_keys=True)}
    with atomic_path(path, suffix=".safetensors") as tmp:
        _save_deterministic(tmp, state, metadata)


def load_state(path, device="cpu") -> tuple[dict[str, torch.Tensor], dict]:
    """Read a checkpoint written by :func:`save_state`: (tensors, meta)."""
    path = Path(path)
    try:
        with open(path, "rb") as handle:
            header = json.loads(handle.read(int.from_bytes(handle.read(8), "little")))
        metadata = header.get("__metadata__") or {}
        if metadata.get("format") != CHECKPOINT_FORMAT:
            raise InputError(f"{path} is not a ganverse3d training checkpoint.")
        return load_file(str(path), device=str(device)), json.loads(metadata["meta"])
    except (OSError, ValueError, KeyError, SafetensorError):
        raise InputError(f"Cannot read the training checkpoint {path}; it is missing or damaged.") from None


def flatten_optimizer(prefix: str, optimizer: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict]:
    """An optimizer's state as (named tensors, JSON-able rest) for :func:`save_state`."""
    state_dict = optimizer.state_dict()
    tensors, scalars = {}, {}
    for index, values in state_dict["state"].items():
        for key, value in values.items():
            if isinstance(value, torch.Tensor):
                tensors[f"{prefix}.{index}.{key}"] = value
            else:
                scalars[f"{index}.{key}"] = value
    return tensors, {"param_groups": state_dict["param_groups"], "scalars": scalars}


def restore_optimizer(prefix: str, optimizer: torch.optim.Optimizer, tensors: dict[str, torch.Tensor], rest: dict) -> None:
    """Inverse of :func:`flatten_optimizer`."""
    state: dict[int, dict] = {}
    for name, value in tensors.items():
        if name.startswith(prefix + "."):
            index, key = name[len(prefix) + 1:].split(".", 1)
            state.setdefault(int(index), {})[key] = value
    for name, value in rest["scalars"].items():
        index, key = name.split(".", 1)
        state.setdefault(int(index), {})[key] = value
    optimizer.load_state_dict({"state": state, "param_groups": rest["param_groups"]})
