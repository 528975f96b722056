"""One loader for StyleGAN2 generators in every format the project meets; nothing in a weights file runs.

Formats, told apart by the file's content (never its name):

* ``tf-pickle``: the official StyleGAN2 (TensorFlow) ``.pkl``, a tuple (G, D, Gs) of
  ``dnnlib.tflib.network.Network`` whose pickled state holds the variables as numpy arrays (and the
  network's Python source, which is ignored). Gs, the moving-average generator, is loaded.
* ``ada-pickle``: a stylegan2-ada-pytorch ``.pkl``, a dict whose ``G_ema`` was pickled through
  ``torch_utils.persistence`` together with its class's source code (ignored); only its tensors and
  ``init_kwargs`` are read.
* ``rosinality``: rosinality's ``.pt`` checkpoint ``{"g_ema": state_dict, "latent_avg": [w_dim], ...}``, read
  with ``torch.load(weights_only=True)``.
* ``ganverse3d``: our ``.safetensors`` bundle (see ``ganverse3d.bundle``).

Pickles are read by a restricted unpickler that builds only the classes and functions in
``_ALLOWED_GLOBALS`` (numpy arrays, torch tensors from their raw bytes, plain containers and inert
stand-ins for the dnnlib / persistence objects); anything else, such as ``os.system``, stops the load
with an :class:`InputError` before it is called.
"""

from __future__ import annotations

import argparse
import collections
import io
import pickle
import re
import warnings
import zipfile
from pathlib import Path

import numpy as np
import torch

from .. import assets, bundle
from ..devices import resolve_device
from ..errors import InputError
from .networks import DEFAULT_RESAMPLE_FILTER, Generator, setup_filter

# Defaults that files may leave unrecorded. The mapping learning-rate multiplier and the w_avg decay are
# the same in the official TF code, stylegan2-ada-pytorch and rosinality (whose files never record them).
_DEFAULT_MAPPING_LR_MULTIPLIER = 0.01
_DEFAULT_W_AVG_BETA = 0.995
_ADA_DEFAULT_CHANNEL_BASE = 32768
_ADA_DEFAULT_CHANNEL_MAX = 512
# Samples used to estimate w_avg when a rosinality checkpoint has no "latent_avg" (its generate.py uses 4096).
_W_AVG_SAMPLES = 4096

_LEGACY_TORCH_MAGIC = b"\x80\x02\x8a\x0a\x6c\xfc\x9c\x46\xf9\x20\x6a\xa8\x50\x19"


# ----------------------------------------------------------------------------------------------------
# The restricted unpickler


class TFNetworkState:
    """Inert stand-in for ``dnnlib.tflib.network.Network``: keeps the pickled state dict, runs nothing.

    The state is {version, name, static_kwargs, components, build_module_src, build_func_name,
    variables: [(name, ndarray)]}; ``components`` maps names ("mapping", "synthesis") to further networks.
    """

    def __setstate__(self, state):
        self.state = state


class PersistentObject:
    """Inert stand-in for an object saved by stylegan2-ada-pytorch's ``torch_utils.persistence``.

    ``meta`` is {type, version, module_src, class_name, state}; for a torch module ``state`` is its
    ``__dict__`` (``_parameters``, ``_buffers``, ``_modules``, ``_init_kwargs``, ...). ``module_src`` is never run.
    """

    def __init__(self, meta):
        self.meta = meta


class _EasyDict(dict):
    """Stand-in for ``dnnlib.EasyDict`` (a dict with attribute access; only the dict part matters here)."""


class ArchiveBomb(pickle.UnpicklingError):
    """A torch archive whose headers promise far more bytes than the archive holds."""


# torch.save stores zip members uncompressed, and weights hardly deflate, so a torch archive whose members claim
# to unpack to more than this many times its own size is a decompression bomb, not weights. The slack covers
# the small records (data.pkl, version, byteorder) of tiny archives.
_MAX_INFLATION = 4
_INFLATION_SLACK = 1 << 20


def check_torch_archive(source, size: int) -> None:
    """ArchiveBomb unless the torch file ``source`` (a path or a binary file object of ``size`` bytes) unpacks
    to at most ``_MAX_INFLATION`` times its size, judged from its zip central directory (the members' declared
    uncompressed sizes) before anything is inflated. torch itself refuses a storage whose byte count in the
    pickle differs from its member's size before allocating it, so bounding the members bounds the storages.
    Legacy (non-zip) torch files store their bytes raw, bounded by the file itself."""
    if not zipfile.is_zipfile(source):
        return
    with zipfile.ZipFile(source) as archive:
        declared = sum(member.file_size for member in archive.infolist())
    if declared > _MAX_INFLATION * size + _INFLATION_SLACK:
        raise ArchiveBomb(f"its {size:,} bytes claim to unpack to {declared:,}, which no weights file does "
                          f"(a decompression bomb)")


def _load_storage_from_bytes(data: bytes):
    # torch pickles each tensor storage as a nested torch.save blob; read it with torch's own safe loader, once
    # its headers show it unpacks to what its bytes can hold.
    check_torch_archive(io.BytesIO(data), len(data))
    try:
        return torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        forbidden = _torch_forbidden_global(error)
        raise (ForbiddenGlobal(*forbidden.rsplit(".", 1)) if forbidden
               else pickle.UnpicklingError(_torch_refusal_reason(error))) from None


# torch.load(weights_only=True) refuses a file with a message that advises retrying with weights_only=False, which
# would run whatever code the file carries. These read the message so that no refusal of ours passes that on.

def _torch_forbidden_global(error: Exception) -> str | None:
    """The global (``posix.system``) a torch file asked for, if that is why torch refused it."""
    match = re.search(r"GLOBAL ([\w.]+\.[\w]+)", str(error))
    return match.group(1) if match else None


def _torch_refusal_reason(error: Exception) -> str:
    """The first line of torch's refusal that gives a reason rather than advice."""
    reasons = [line.strip() for line in str(error).splitlines()
               if line.strip() and "weights_only" not in line and not line.startswith("Check the documentation")]
    return reasons[0][:200].rstrip(".") if reasons else type(error).__name__


def _rebuild_parameter(data, requires_grad, backward_hooks):
    # A plain tensor is all the loader needs; dropping the hooks keeps pickled objects out of torch.
    return data


def _numpy_multiarray():
    try:
        from numpy._core import multiarray  # numpy >= 2
    except ImportError:
        from numpy.core import multiarray
    return multiarray


_ALLOWED_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"): _numpy_multiarray()._reconstruct,
    ("numpy._core.multiarray", "_reconstruct"): _numpy_multiarray()._reconstruct,
    ("numpy.core.multiarray", "scalar"): _numpy_multiarray().scalar,
    ("numpy._core.multiarray", "scalar"): _numpy_multiarray().scalar,
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("builtins", "set"): set,
    ("builtins", "frozenset"): frozenset,
    ("dnnlib.tflib.network", "Network"): TFNetworkState,
    ("dnnlib", "EasyDict"): _EasyDict,
    ("dnnlib.util", "EasyDict"): _EasyDict,
    ("torch_utils.persistence", "_reconstruct_persistent_obj"): PersistentObject,
    ("torch._utils", "_rebuild_tensor_v2"): torch._utils._rebuild_tensor_v2,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    ("torch.storage", "_load_from_bytes"): _load_storage_from_bytes,
}


class ForbiddenGlobal(pickle.UnpicklingError):
    """A pickle asked for a class or function outside the allow-list."""

    def __init__(self, module: str, name: str):
        super().__init__(f"{module}.{name}")
        self.qualified_name = f"{module}.{name}"


class RestrictedUnpickler(pickle.Unpickler):
    """``pickle.Unpickler`` that resolves only ``_ALLOWED_GLOBALS``; everything else raises ForbiddenGlobal."""

    def find_class(self, module, name):
        try:
            return _ALLOWED_GLOBALS[(module, name)]
        except KeyError:
            raise ForbiddenGlobal(module, name) from None

    def persistent_load(self, pid):
        raise pickle.UnpicklingError("persistent ids are not used by StyleGAN2 pickles")


def restricted_unpickle(path: Path):
    """Unpickle ``path`` with :class:`RestrictedUnpickler`; InputError (one sentence) for hostile or broken files."""
    try:
        with open(path, "rb") as handle, warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # torch's TypedStorage deprecation notice
            return RestrictedUnpickler(handle).load()
    except ForbiddenGlobal as error:
        raise InputError(f"Refusing to load {path}: the pickle asks to run {error.qualified_name}, which no "
                         f"StyleGAN2 weights file needs, so it may be malicious.") from None
    except ArchiveBomb as error:
        raise InputError(f"Refusing to load {path}: a tensor storage in it {error}.") from None
    except Exception as error:  # a damaged pickle can fail in any of the builders it calls
        reason = (str(error).strip().splitlines() or [""])[0][:200]
        raise InputError(f"{path} is not a readable pickle ({type(error).__name__}: {reason}).") from None


# ----------------------------------------------------------------------------------------------------
# Entry points


def detect_container(path) -> str:
    """'safetensors', 'torch' (a torch.save file) or 'pickle', from the first bytes of the file."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"Weights file {path} does not exist.")
    with open(path, "rb") as handle:
        head = handle.read(16)
    if len(head) >= 9 and 0 < int.from_bytes(head[:8], "little") < 100_000_000 and head[8:9] == b"{":
        return "safetensors"
    if head.startswith(b"PK\x03\x04") or head.startswith(_LEGACY_TORCH_MAGIC):
        return "torch"
    if len(head) > 1 and head[:1] == b"\x80" and 2 <= head[1] <= 5:
        return "pickle"
    raise InputError(f"{path} is not a StyleGAN2 weights file this loader knows (the official TF .pkl, a "
                     f"stylegan2-ada-pytorch .pkl, rosinality's .pt or a ganverse3d .safetensors).")


def load_generator(path, device="cpu", img_content_shape: tuple[int, int] | None = None) -> Generator:
    """Load a StyleGAN2 generator from any supported file (see the module docstring) into :class:`Generator`.

    Args:
        path: the weights file (its format is detected from its content) or a shipped generator's name
            (``world64``, the default; see :mod:`ganverse3d.assets`).
        device: "cpu", "cuda", or "auto".
        img_content_shape: (height, width) of the image content inside the square canvas, e.g. (384, 512)
            for the official car model (the official files do not record it); None keeps the file's value
            (the whole canvas for foreign formats).

    Returns:
        The generator in eval mode on ``device``.
    """
    return load_generator_with_format(path, device, img_content_shape)[0]


def load_generator_with_format(path, device="cpu", img_content_shape: tuple[int, int] | None = None
                               ) -> tuple[Generator, str]:
    """:func:`load_generator`, also returning the source format: 'ganverse3d', 'tf-pickle', 'ada-pickle' or 'rosinality'."""
    path = assets.resolve("generator", path)
    container = detect_container(path)
    if container == "safetensors":
        generator, source_format = bundle.load_module(path, expected_class=Generator), "ganverse3d"
    elif container == "torch":
        generator, source_format = _generator_from_rosinality(path), "rosinality"
    else:
        contents = restricted_unpickle(path)
        if isinstance(contents, tuple) and len(contents) == 3 and all(isinstance(n, TFNetworkState) for n in contents):
            generator, source_format = _generator_from_tf(path, contents[2]), "tf-pickle"
        elif isinstance(contents, dict) and "G_ema" in contents:
            generator, source_format = _generator_from_ada(path, contents["G_ema"]), "ada-pickle"
        else:
            raise InputError(f"{path} is a pickle but neither an official StyleGAN2 TF pickle (G, D, Gs) nor a "
                             f"stylegan2-ada-pytorch pickle (a dict with G_ema).")
    if img_content_shape is not None:
        try:
            generator.img_content_shape = img_content_shape
        except ValueError as error:
            raise InputError(str(error)) from None
    return generator.to(resolve_device(device)).eval(), source_format


def save_generator(generator: Generator, path, provenance: dict | None = None) -> None:
    """Write ``generator`` as a ganverse3d ``.safetensors`` bundle (atomically)."""
    bundle.save_module(path, generator, provenance=provenance)


# ----------------------------------------------------------------------------------------------------
# Shared helpers


def _as_tensor(value) -> torch.Tensor:
    if isinstance(value, np.ndarray):
        return torch.from_numpy(np.array(value, dtype=np.float32))  # a contiguous copy, 0-d kept 0-d
    return value.detach().float().contiguous()


def _infer_channel_config(path, channels: dict[int, int]) -> tuple[int, int]:
    """(channel_base, channel_max) with channels[res] == min(channel_base // res, channel_max) for every res."""
    channel_max = max(channels.values())
    # Each resolution bounds channel_base: res * ch <= base < res * (ch + 1) where it is below channel_max,
    # base >= res * channel_max where it is at the cap. The smallest base in every interval reproduces all.
    lowest = max(res * ch for res, ch in channels.items())
    highest = min((res * (ch + 1) - 1 for res, ch in channels.items() if ch < channel_max), default=lowest)
    if lowest > highest:
        raise InputError(f"{path} has per-resolution channels {channels}, which no channel_base / channel_max "
                         f"of this StyleGAN2 reproduces.")
    return lowest, channel_max


def _build_generator(path, source: str, **kwargs) -> Generator:
    """The Generator that ``kwargs`` (read from the file) describe, refused before it is allocated when it would
    hold more weights than the file itself could: built first on the meta device, which allocates nothing."""
    try:
        with torch.device("meta"):
            skeleton = Generator(**kwargs)
    except ValueError as error:  # e.g. a resolution that is not a power of two
        raise InputError(f"{path} describes a {source} generator this StyleGAN2 cannot build: {error}") from None
    weight_bytes = sum(tensor.numel() * 2 for tensor in skeleton.state_dict().values())  # 2: float16, the least
    if weight_bytes > Path(path).stat().st_size:
        raise InputError(f"{path} describes a {source} generator of {weight_bytes:,} bytes of weights even at half "
                         f"precision, more than its {Path(path).stat().st_size:,}-byte file can hold; it is damaged.")
    return Generator(**kwargs)


def _load_state(path, generator: Generator, state: dict[str, torch.Tensor], source: str) -> Generator:
    """Strictly copy ``state`` into ``generator``; InputError naming what does not fit."""
    expected = generator.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    wrong_shape = sorted(name for name in set(state) & set(expected) if state[name].shape != expected[name].shape)
    if missing or unexpected or wrong_shape:
        problems = [f"{label} {names[:3]}" for label, names in
                    (("missing", missing), ("unexpected", unexpected), ("wrong shape", wrong_shape)) if names]
        raise InputError(f"{path} does not fit the StyleGAN2 architecture inferred from this {source}: "
                         f"{'; '.join(problems)}.")
    generator.load_state_dict(state, strict=True)
    return generator


def _require_default_filter(path, filt_2d: torch.Tensor, source: str) -> None:
    taps = setup_filter()
    expected = torch.outer(taps, taps)
    if filt_2d.shape != expected.shape or not torch.allclose(filt_2d / filt_2d.sum(), expected, atol=1e-6):
        raise InputError(f"{path} uses a resampling filter other than {list(DEFAULT_RESAMPLE_FILTER)} ({source}), "
                         f"which this StyleGAN2 does not implement.")


# ----------------------------------------------------------------------------------------------------
# Official TensorFlow pickles


def _tf_variables(path, network: TFNetworkState, prefix: str = "", depth: int = 0) -> dict[str, np.ndarray]:
    """Flatten a TF network and its components into {"mapping/Dense0/weight": array, "dlatent_avg": ...}."""
    state = getattr(network, "state", None)
    if not isinstance(state, dict) or not isinstance(state.get("variables"), list) or depth > 2:
        raise InputError(f"{path} holds a dnnlib network without the expected pickled state.")
    variables = {}
    for item in state["variables"]:
        # Session.run returns scalars (noise_strength) as numpy scalars, everything else as arrays.
        if not (isinstance(item, tuple) and len(item) == 2 and isinstance(item[0], str)
                and isinstance(item[1], (np.ndarray, np.generic)) and item[1].dtype.kind == "f"):
            raise InputError(f"{path} holds a TF variable that is not a (name, float array) pair.")
        variables[prefix + item[0]] = np.asarray(item[1])
    for name, component in (state.get("components") or {}).items():
        if not isinstance(component, TFNetworkState):
            raise InputError(f"{path} has a component {name!r} that is not a dnnlib network.")
        variables.update(_tf_variables(path, component, f"{prefix}{name}/", depth + 1))
    return variables


def _tf_static_kwargs(network: TFNetworkState) -> dict:
    """The network's construction kwargs merged with its components' (they share most of them)."""
    merged = {}
    for component in (network.state.get("components") or {}).values():
        merged.update(component.state.get("static_kwargs") or {})
    merged.update(network.state.get("static_kwargs") or {})
    return merged


def _generator_from_tf(path, gs: TFNetworkState) -> Generator:
    """Map the official Gs onto our Generator (TF layouts: conv [kh, kw, in, out], dense [in, out])."""
    variables = _tf_variables(path, gs)
    kwargs = _tf_static_kwargs(gs)
    supported = {"label_size": 0, "architecture": "skip", "nonlinearity": "lrelu", "mapping_nonlinearity": "lrelu",
                 "normalize_latents": True, "resample_kernel": list(DEFAULT_RESAMPLE_FILTER)}
    for key, value in supported.items():
        if key in kwargs and not np.array_equal(np.asarray(kwargs[key]), np.asarray(value)):
            raise InputError(f"{path} is a TF StyleGAN2 with {key}={kwargs[key]!r}; only {value!r} is supported.")

    def take(name: str) -> np.ndarray:
        try:
            return variables[name]
        except KeyError:
            raise InputError(f"{path} lacks the TF variable {name!r} of a StyleGAN2 generator.") from None

    num_mapping_layers = sum(1 for name in variables if re.fullmatch(r"mapping/Dense\d+/weight", name))
    block_sides = [int(m.group(1)) for name in variables if (m := re.match(r"synthesis/(\d+)x\1/", name))]
    if num_mapping_layers == 0 or not block_sides:
        raise InputError(f"{path} is a TF pickle without StyleGAN2 mapping and synthesis variables.")
    img_resolution = max(block_sides)
    resolutions = [2 ** i for i in range(2, img_resolution.bit_length())]
    channels = {4: take("synthesis/4x4/Const/const").shape[1]}
    channels.update({res: take(f"synthesis/{res}x{res}/Conv1/weight").shape[3] for res in resolutions if res > 4})
    channel_base, channel_max = _infer_channel_config(path, channels)
    generator = _build_generator(
        path, "TF",
        z_dim=take("mapping/Dense0/weight").shape[0],
        w_dim=take(f"mapping/Dense{num_mapping_layers - 1}/weight").shape[1],
        img_resolution=img_resolution, img_channels=take(f"synthesis/{img_resolution}x{img_resolution}/ToRGB/weight").shape[3],
        channel_base=channel_base, channel_max=channel_max, num_mapping_layers=num_mapping_layers,
        mapping_lr_multiplier=float(kwargs.get("mapping_lrmul", _DEFAULT_MAPPING_LR_MULTIPLIER)),
        w_avg_beta=float(kwargs.get("dlatent_avg_beta", _DEFAULT_W_AVG_BETA)))

    state = {"mapping.w_avg": take("dlatent_avg")}
    for index in range(num_mapping_layers):
        state[f"mapping.fc{index}.weight"] = take(f"mapping/Dense{index}/weight").T
        state[f"mapping.fc{index}.bias"] = take(f"mapping/Dense{index}/bias")
    state["synthesis.b4.const"] = take("synthesis/4x4/Const/const")[0]

    def modulated(ours: str, theirs: str, flip: bool = False) -> None:
        weight = take(f"{theirs}/weight")
        if flip:  # TF applies Conv0_up as a correlation after zero insertion; ours is a transposed conv.
            weight = weight[::-1, ::-1]
        state[f"{ours}.weight"] = weight.transpose(3, 2, 0, 1)
        state[f"{ours}.bias"] = take(f"{theirs}/bias")
        state[f"{ours}.affine.weight"] = take(f"{theirs}/mod_weight").T
        state[f"{ours}.affine.bias"] = take(f"{theirs}/mod_bias") + 1  # TF adds the style's initial 1 at run time

    def synthesis_layer(ours: str, theirs: str, noise_index: int, flip: bool = False) -> None:
        modulated(ours, theirs, flip)
        state[f"{ours}.noise_strength"] = take(f"{theirs}/noise_strength").reshape([])
        state[f"{ours}.noise_const"] = take(f"synthesis/noise{noise_index}")[0, 0]

    for res in resolutions:
        log2_res = int(np.log2(res))
        if res == 4:
            synthesis_layer("synthesis.b4.conv1", "synthesis/4x4/Conv", 0)
        else:
            synthesis_layer(f"synthesis.b{res}.conv0", f"synthesis/{res}x{res}/Conv0_up", 2 * log2_res - 5, flip=True)
            synthesis_layer(f"synthesis.b{res}.conv1", f"synthesis/{res}x{res}/Conv1", 2 * log2_res - 4)
        modulated(f"synthesis.b{res}.torgb", f"synthesis/{res}x{res}/ToRGB")
    return _load_state(path, generator, {k: _as_tensor(v) for k, v in state.items()}, "TF pickle")


# ----------------------------------------------------------------------------------------------------
# stylegan2-ada-pytorch pickles


def _persistent_tensors(path, obj: PersistentObject, prefix: str = "") -> dict[str, torch.Tensor]:
    """Flatten a persistent torch module's pickled ``__dict__`` into a state dict (parameters and buffers)."""
    meta = obj.meta if isinstance(obj, PersistentObject) else None
    state = meta.get("state") if isinstance(meta, dict) else None
    if not isinstance(state, dict):
        raise InputError(f"{path} holds a persistent object without the expected pickled state.")
    tensors = {}
    for group in ("_parameters", "_buffers"):
        for name, value in (state.get(group) or {}).items():
            if value is not None:
                if not isinstance(value, torch.Tensor):
                    raise InputError(f"{path} has a non-tensor {group[1:-1]} {prefix}{name}.")
                tensors[prefix + name] = value
    for name, child in (state.get("_modules") or {}).items():
        tensors.update(_persistent_tensors(path, child, f"{prefix}{name}."))
    return tensors


def _generator_from_ada(path, g_ema) -> Generator:
    """Rebuild stylegan2-ada-pytorch's G_ema from its init kwargs and tensors (its parameter names are ours)."""
    meta = g_ema.meta if isinstance(g_ema, PersistentObject) else None
    if not isinstance(meta, dict) or meta.get("class_name") != "Generator" or not isinstance(meta.get("state"), dict):
        raise InputError(f"{path} has a G_ema that is not a stylegan2-ada-pytorch Generator.")
    init_kwargs = meta["state"].get("_init_kwargs")
    if not isinstance(init_kwargs, dict) or meta["state"].get("_init_args"):
        raise InputError(f"{path} has a G_ema without the keyword arguments that built it.")
    mapping_kwargs = dict(init_kwargs.get("mapping_kwargs") or {})
    synthesis_kwargs = dict(init_kwargs.get("synthesis_kwargs") or {})
    unsupported = [(init_kwargs.get("c_dim", 0), 0, "c_dim"),
                   (synthesis_kwargs.get("architecture", "skip"), "skip", "architecture"),
                   (mapping_kwargs.get("activation", "lrelu"), "lrelu", "mapping activation"),
                   (synthesis_kwargs.get("use_noise", True), True, "use_noise")]
    for value, supported, key in unsupported:
        if value != supported:
            raise InputError(f"{path} is a stylegan2-ada-pytorch generator with {key}={value!r}; only {supported!r} "
                             f"is supported.")
    try:
        generator = _build_generator(
            path, "stylegan2-ada-pytorch",
            z_dim=int(init_kwargs["z_dim"]), w_dim=int(init_kwargs["w_dim"]),
            img_resolution=int(init_kwargs["img_resolution"]), img_channels=int(init_kwargs["img_channels"]),
            channel_base=int(synthesis_kwargs.get("channel_base", _ADA_DEFAULT_CHANNEL_BASE)),
            channel_max=int(synthesis_kwargs.get("channel_max", _ADA_DEFAULT_CHANNEL_MAX)),
            num_mapping_layers=int(mapping_kwargs.get("num_layers", 8)),
            mapping_lr_multiplier=float(mapping_kwargs.get("lr_multiplier", _DEFAULT_MAPPING_LR_MULTIPLIER)),
            w_avg_beta=float(mapping_kwargs.get("w_avg_beta", _DEFAULT_W_AVG_BETA)),
            conv_clamp=synthesis_kwargs.get("conv_clamp"))
    except (KeyError, TypeError, ValueError) as error:  # absent or non-numeric kwargs
        raise InputError(f"{path} has G_ema init kwargs this StyleGAN2 cannot build ({error}).") from None
    tensors = _persistent_tensors(path, g_ema)
    filters = {name: tensors.pop(name) for name in list(tensors) if name.endswith("resample_filter")}
    for name, filt in filters.items():
        _require_default_filter(path, filt.float(), name)
    return _load_state(path, generator, {k: _as_tensor(v) for k, v in tensors.items()}, "stylegan2-ada-pytorch pickle")


# ----------------------------------------------------------------------------------------------------
# rosinality checkpoints


def _generator_from_rosinality(path) -> Generator:
    """Map rosinality's ``g_ema`` (convs.{2k} = up-conv of block k+1, to_rgbs.{k}, noises.noise_{i}) onto ours."""
    try:
        check_torch_archive(path, Path(path).stat().st_size)
        # Training checkpoints also hold their argparse options; a Namespace is plain data.
        with torch.serialization.safe_globals([argparse.Namespace]):
            checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except ArchiveBomb as error:
        raise InputError(f"Refusing to load {path}: {error}.") from None
    except (pickle.UnpicklingError, RuntimeError, EOFError, zipfile.BadZipFile, OSError) as error:
        forbidden = _torch_forbidden_global(error)
        if forbidden:
            raise InputError(f"Refusing to load {path}: the file asks to run {forbidden}, which no StyleGAN2 "
                             f"weights file needs, so it may be malicious.") from None
        raise InputError(f"{path} is not a loadable weights-only torch checkpoint "
                         f"({_torch_refusal_reason(error)}).") from None
    if not isinstance(checkpoint, dict) or not isinstance(checkpoint.get("g_ema"), dict):
        raise InputError(f"{path} is a torch checkpoint but not rosinality's StyleGAN2 (no 'g_ema' state dict).")
    source = checkpoint["g_ema"]

    def take(name: str) -> torch.Tensor:
        value = source.get(name)
        if not isinstance(value, torch.Tensor):
            raise InputError(f"{path} lacks the tensor {name!r} of a rosinality StyleGAN2 generator.")
        return value.detach().float()

    num_mapping_layers = sum(1 for name in source if re.fullmatch(r"style\.\d+\.weight", name))
    num_up_blocks = sum(1 for name in source if re.fullmatch(r"to_rgbs\.\d+\.bias", name))
    if num_mapping_layers == 0:
        raise InputError(f"{path} has a g_ema without mapping layers (style.N.weight).")
    img_resolution = 4 * 2 ** num_up_blocks
    channels = {4: take("input.input").shape[1]}
    channels.update({8 * 2 ** k: take(f"convs.{2 * k + 1}.conv.weight").shape[1] for k in range(num_up_blocks)})
    channel_base, channel_max = _infer_channel_config(path, channels)
    w_dim = take("style.1.weight").shape[1]
    generator = _build_generator(
        path, "rosinality", z_dim=w_dim, w_dim=w_dim, img_resolution=img_resolution, img_channels=take("to_rgb1.conv.weight").shape[1],
        channel_base=channel_base, channel_max=channel_max, num_mapping_layers=num_mapping_layers,
        mapping_lr_multiplier=_DEFAULT_MAPPING_LR_MULTIPLIER)

    state = {}
    for index in range(num_mapping_layers):
        state[f"mapping.fc{index}.weight"] = take(f"style.{index + 1}.weight")  # style.0 is the latent normalisation
        state[f"mapping.fc{index}.bias"] = take(f"style.{index + 1}.bias")
    state["synthesis.b4.const"] = take("input.input")[0]

    def modulated(ours: str, theirs: str) -> None:
        state[f"{ours}.weight"] = take(f"{theirs}.conv.weight")[0]
        state[f"{ours}.affine.weight"] = take(f"{theirs}.conv.modulation.weight")
        state[f"{ours}.affine.bias"] = take(f"{theirs}.conv.modulation.bias")

    def synthesis_layer(ours: str, theirs: str, noise_index: int) -> None:
        modulated(ours, theirs)
        state[f"{ours}.bias"] = take(f"{theirs}.activate.bias")
        state[f"{ours}.noise_strength"] = take(f"{theirs}.noise.weight").reshape([])
        state[f"{ours}.noise_const"] = take(f"noises.noise_{noise_index}")[0, 0]

    def to_rgb(ours: str, theirs: str) -> None:
        modulated(ours, theirs)
        state[f"{ours}.bias"] = take(f"{theirs}.bias").reshape(-1)

    synthesis_layer("synthesis.b4.conv1", "conv1", 0)
    to_rgb("synthesis.b4.torgb", "to_rgb1")
    for k in range(num_up_blocks):
        res = 8 * 2 ** k
        synthesis_layer(f"synthesis.b{res}.conv0", f"convs.{2 * k}", 2 * k + 1)
        synthesis_layer(f"synthesis.b{res}.conv1", f"convs.{2 * k + 1}", 2 * k + 2)
        to_rgb(f"synthesis.b{res}.torgb", f"to_rgbs.{k}")
        # rosinality stores its FIR kernels as buffers, pre-multiplied by the upsampling gain of 4.
        _require_default_filter(path, take(f"convs.{2 * k}.conv.blur.kernel"), f"convs.{2 * k}.conv.blur.kernel")
        _require_default_filter(path, take(f"to_rgbs.{k}.upsample.kernel"), f"to_rgbs.{k}.upsample.kernel")

    latent_avg = checkpoint.get("latent_avg")
    state["mapping.w_avg"] = torch.zeros(w_dim) if latent_avg is None else torch.as_tensor(latent_avg).float().reshape(-1)
    generator = _load_state(path, generator, state, "rosinality checkpoint")
    if latent_avg is None:
        # Training checkpoints carry no w_avg; estimate it like rosinality's generate.py (mean of mapped z).
        with torch.no_grad():
            z = torch.randn([_W_AVG_SAMPLES, w_dim], generator=torch.Generator().manual_seed(0))
            generator.mapping.w_avg.copy_(generator.mapping(z)[:, 0].mean(dim=0))
    return generator
