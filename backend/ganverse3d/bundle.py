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
import inspect
import json
import math
import subprocess
import types
import typing
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file
from safetensors.torch import save as serialize

from .errors import InputError
from .files import write_bytes

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


def save_tensors(path, tensors: dict[str, torch.Tensor], metadata: dict[str, str] | None = None) -> None:
    """Write ``tensors`` (contiguous, on the CPU) and ``metadata`` to the safetensors file ``path``, atomically.

    The bytes are made here and written by :func:`~ganverse3d.files.write_bytes`, whose temporaries resuming
    writers know how to clear: safetensors' own ``save_file`` writes through a temporary of its own naming,
    which a kill leaves behind. The JSON header is rewritten with sorted keys, because the library writes
    metadata in hash order and the same weights would otherwise give different bytes from one save to the next.
    """
    data = bytearray(serialize(tensors, metadata=metadata))
    size = int.from_bytes(data[:8], "little")
    header = json.loads(data[8:8 + size])
    canonical = json.dumps(header, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    if len(canonical) <= size:  # same content, so never longer; padding with spaces is what the format does
        data[8:8 + size] = canonical.ljust(size, b" ")
    write_bytes(path, bytes(data))


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
    save_tensors(path, state, metadata)


# Classes that moved after bundles naming them shipped: the class path a bundle records -> where the class
# lives now. Add a line whenever a class with saved bundles moves; never remove one (old files stay readable).
CLASS_ALIASES = {
    "ganverse3d.stylegan2.metrics.WorldFeatureNet": "ganverse3d.world.features.WorldFeatureNet",
}

# How deeply the JSON metadata may nest (the training config's framing is three levels deep).
_MAX_METADATA_DEPTH = 16
# The size in bytes of one element of each safetensors dtype.
_DTYPE_BYTES = {"BOOL": 1, "U8": 1, "I8": 1, "F8_E5M2": 1, "F8_E4M3": 1, "I16": 2, "U16": 2, "F16": 2, "BF16": 2,
                "I32": 4, "U32": 4, "F32": 4, "I64": 8, "U64": 8, "F64": 8}


def _nesting_depth(value) -> int:
    """How many containers deep a decoded JSON value is (iteratively: the value may be deeper than the stack)."""
    depth, level = 0, [value]
    while level:
        level = [child for item in level if isinstance(item, (dict, list))
                 for child in (item.values() if isinstance(item, dict) else item)]
        depth += 1
    return depth - 1


def _read_header(path: Path) -> tuple[dict, dict[str, list[int]]]:
    """(string metadata, {tensor name: shape}) from a safetensors header, after checking that every tensor the
    header declares lies inside the file: a header that promises more bytes than the file holds is damaged."""
    if not path.is_file():
        raise InputError(f"Weights file {path} does not exist.")
    file_size = path.stat().st_size
    try:
        with open(path, "rb") as handle:
            header_size = int.from_bytes(handle.read(8), "little")
            if not 0 < header_size <= min(file_size - 8, 100_000_000):
                raise ValueError
            header = json.loads(handle.read(header_size))
        if not isinstance(header, dict):
            raise ValueError
        metadata = header.pop("__metadata__", None) or {}
    except (ValueError, OSError, RecursionError):
        raise InputError(f"{path} is not a safetensors file.") from None
    data_size = file_size - 8 - header_size
    shapes = {}
    for name, entry in header.items():
        try:
            begin, end = entry["data_offsets"]
            shape = entry["shape"]
            valid = (all(isinstance(n, int) and n >= 0 for n in (begin, end, *shape))
                     and begin <= end <= data_size and end - begin == math.prod(shape) * _DTYPE_BYTES[entry["dtype"]])
        except (TypeError, ValueError, KeyError):
            valid = False
        if not valid:
            raise InputError(f"{path} is damaged: its header declares tensor {name[:100]!r} beyond or unlike the "
                             f"{data_size} bytes of data the file holds.")
        shapes[name] = shape
    return metadata, shapes


def _decode_metadata(path: Path, metadata) -> dict:
    """The bundle metadata with its JSON fields decoded, each checked to be a JSON object of modest depth."""
    if not isinstance(metadata, dict) or metadata.get("format") != BUNDLE_FORMAT:
        raise InputError(f"{path} is a safetensors file but not a ganverse3d bundle (no '{BUNDLE_FORMAT}' metadata).")
    if metadata.get("version") != str(BUNDLE_VERSION):
        raise InputError(f"{path} is bundle version {metadata.get('version')}; this ganverse3d reads version "
                         f"{BUNDLE_VERSION}.")
    decoded = {}
    for key in ("init_kwargs", "config", "provenance"):
        try:
            value = json.loads(metadata[key])
        except (KeyError, TypeError, ValueError, RecursionError):
            raise InputError(f"{path} has damaged bundle metadata: {key} is missing or not JSON.") from None
        if not isinstance(value, dict):
            raise InputError(f"{path} has damaged bundle metadata: {key} is a JSON {type(value).__name__}, not an "
                             f"object.")
        if _nesting_depth(value) > _MAX_METADATA_DEPTH:
            raise InputError(f"{path} has damaged bundle metadata: {key} nests deeper than {_MAX_METADATA_DEPTH} "
                             f"levels.")
        decoded[key] = value
    return {"class": str(metadata.get("class", "")), **decoded}


def read_metadata(path) -> dict:
    """The bundle's metadata with the JSON fields decoded; InputError if it is not a ganverse3d bundle."""
    path = Path(path)
    return _decode_metadata(path, _read_header(path)[0])


def _bundle_class(path: Path, class_path: str) -> type:
    """The class a bundle names, following :data:`CLASS_ALIASES` for classes that moved."""
    class_path = CLASS_ALIASES.get(class_path, class_path)
    if not class_path.startswith("ganverse3d."):
        raise InputError(f"{path} names class {class_path!r}, which is not a ganverse3d class.")
    module_name, _, class_name = class_path.rpartition(".")
    try:
        return getattr(importlib.import_module(module_name), class_name)
    except (ImportError, AttributeError):
        raise InputError(f"{path} holds weights of {class_path}, which this version of ganverse3d does not have.") from None


def _fits(value, hint) -> bool:
    """Whether the decoded JSON ``value`` can stand for an argument annotated ``hint`` (tuples are JSON lists;
    floats must be finite). Hints this check does not know are left to the constructor."""
    origin, arguments = typing.get_origin(hint), typing.get_args(hint)
    if hint is type(None):
        return value is None
    if origin in (typing.Union, types.UnionType):
        return any(_fits(value, argument) for argument in arguments)
    if hint is bool:
        return isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if hint is str:
        return isinstance(value, str)
    if hint in (list, tuple) or origin in (list, tuple):
        if not isinstance(value, list):
            return False
        if origin is tuple and arguments and arguments[-1] is not Ellipsis:
            return len(value) == len(arguments) and all(map(_fits, value, arguments))
        return not arguments or all(_fits(item, arguments[0]) for item in value)
    if hint is dict or origin is dict:
        return isinstance(value, dict)
    return True


def _check_init_kwargs(path: Path, cls: type, init_kwargs: dict) -> None:
    """InputError unless ``init_kwargs`` names only arguments of ``cls.__init__``, gives all it requires, and
    each value fits the argument's annotation."""
    parameters = {name: parameter for name, parameter in inspect.signature(cls.__init__).parameters.items()
                  if name != "self" and parameter.kind in (parameter.POSITIONAL_OR_KEYWORD, parameter.KEYWORD_ONLY)}
    hints = typing.get_type_hints(cls.__init__)
    damaged = f"{path} has damaged bundle metadata: init_kwargs"
    unknown = sorted(set(init_kwargs) - set(parameters))
    if unknown:
        raise InputError(f"{damaged} has {unknown[0][:100]!r}, which a {cls.__name__} does not take (it takes "
                         f"{', '.join(parameters)}).")
    missing = [name for name, parameter in parameters.items()
               if parameter.default is parameter.empty and name not in init_kwargs]
    if missing:
        raise InputError(f"{damaged} lacks {missing[0]!r}, which a {cls.__name__} needs.")
    for name, value in init_kwargs.items():
        if name in hints and not _fits(value, hints[name]):
            expected = hints[name].__name__ if isinstance(hints[name], type) else str(hints[name])
            raise InputError(f"{damaged} gives {name} as {json.dumps(value)[:60]}, not {expected}.")


def _check_shapes(path: Path, cls: type, init_kwargs: dict, file_shapes: dict[str, list[int]]) -> None:
    """InputError unless the module that ``init_kwargs`` describe has exactly the tensors of the file's header.

    This is how a bundle that would allocate absurd memory (``feature_dim: 200000``) is refused before
    anything is allocated: the module is built on PyTorch's meta device, which gives every parameter and
    buffer its shape without memory, and must match the file's tensors name for name and shape for shape.
    After that the real build allocates what the file holds, and :func:`_read_header` has checked that the
    file holds what its header declares. Estimating parameter counts per class would repeat each network's
    architecture; the meta build is exact for every class at no cost. What a constructor computes on real
    data is beyond the meta device; such classes bound the arguments that drive it themselves
    (``InverseGraphicsNet`` refuses more than ``MAX_SUBDIVISIONS`` template subdivisions).
    """
    try:
        with torch.device("meta"):
            skeleton = cls(**init_kwargs)
    except (ValueError, TypeError, RuntimeError, OverflowError) as error:  # bad values: the class says which
        reason = (str(error).strip().splitlines() or [type(error).__name__])[0][:200].rstrip(".")
        raise InputError(f"{path} has damaged bundle metadata: its init_kwargs do not build a {cls.__name__} "
                         f"({reason}).") from None
    expected = {name: list(tensor.shape) for name, tensor in skeleton.state_dict().items()}
    missing, unexpected = sorted(set(expected) - set(file_shapes)), sorted(set(file_shapes) - set(expected))
    wrong_shape = sorted(name for name in set(expected) & set(file_shapes) if expected[name] != file_shapes[name])
    if missing or unexpected or wrong_shape:
        problems = [f"{label} {[name[:100] for name in names[:3]]}" for label, names in
                    (("missing", missing), ("unexpected", unexpected), ("with other shapes", wrong_shape)) if names]
        raise InputError(f"{path} does not match its {cls.__name__}: its init_kwargs describe other tensors than "
                         f"the file holds ({'; '.join(problems)}).")


def load_module(path, expected_class: type | None = None, device="cpu") -> torch.nn.Module:
    """Rebuild the module saved by :func:`save_module` and load its weights (strictly).

    Everything the file says is checked before anything is built or allocated, and any problem is one
    InputError sentence: the header against the file's size, the metadata's JSON, the class (found through
    :data:`CLASS_ALIASES` if it moved), ``init_kwargs`` against the class's signature and annotations, the
    training config (by the class's ``check_bundle_config``, where it has one) and the tensors the class
    would allocate against those the file holds (:func:`_check_shapes`). Weights that are NaN or infinite
    are refused after reading.

    Args:
        path: the ``.safetensors`` bundle.
        expected_class: if given, the bundle must hold exactly this class.
        device: where to put the weights.
    """
    path = Path(path)
    metadata, file_shapes = _read_header(path)
    metadata = _decode_metadata(path, metadata)
    cls = _bundle_class(path, metadata["class"])
    if expected_class is not None and cls is not expected_class:
        raise InputError(f"{path} holds weights of {cls.__name__}, not the {expected_class.__name__} that was "
                         f"asked for.")
    init_kwargs = metadata["init_kwargs"]
    _check_init_kwargs(path, cls, init_kwargs)
    if hasattr(cls, "check_bundle_config"):
        try:
            cls.check_bundle_config(metadata["config"])
        except ValueError as error:
            raise InputError(f"{path} has a damaged training config: {error}.") from None
    _check_shapes(path, cls, init_kwargs, file_shapes)
    try:
        state = load_file(str(path), device="cpu")
    except (SafetensorError, OSError) as error:
        raise InputError(f"{path} is damaged: {error}.") from None
    not_finite = sorted(name for name, tensor in state.items()
                        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()))
    if not_finite:
        raise InputError(f"{path} holds NaN or infinite weights (in {', '.join(not_finite[:3])}); the training that "
                         f"wrote it diverged or the file is damaged.")
    module = cls(**init_kwargs)
    module.load_state_dict(state)
    return module.to(device).eval()


CHECKPOINT_FORMAT = "ganverse3d-checkpoint"


def save_state(path, tensors: dict[str, torch.Tensor], meta: dict) -> None:
    """Write a training checkpoint: named tensors plus a JSON-serialisable ``meta`` dict (atomically)."""
    state = {name: tensor.detach().contiguous().cpu() for name, tensor in tensors.items()}
    metadata = {"format": CHECKPOINT_FORMAT, "version": str(BUNDLE_VERSION), "meta": json.dumps(meta, sort_keys=True)}
    save_tensors(path, state, metadata)


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
