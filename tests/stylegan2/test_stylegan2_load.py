"""Loading StyleGAN2 weights: the tests build each foreign format themselves and check the numbers.

One set of generator variables is drawn in the official TF layout (names and shapes of
``stylegan2-*-config-f.pkl``'s Gs). From it the tests write

* a TF pickle: a tuple (G, D, Gs) of stand-in ``dnnlib.tflib.network.Network`` objects pickled under that
  module name, each with the real state layout (variables as numpy arrays, components, build source);
* a stylegan2-ada-pytorch pickle: a dict with ``G_ema`` pickled through a stand-in
  ``torch_utils.persistence`` (class source + module ``__dict__`` with ``_init_kwargs``), converted from the TF
  variables by the rules of stylegan2-ada-pytorch's ``legacy.py``;
* a rosinality checkpoint: ``{"g_ema": state_dict, "latent_avg": ...}`` converted by the rules of
  rosinality's ``convert_weight.py``.

The loaded generators are compared with a naive float64 numpy implementation of the official TF
generator (``reference_*`` below), written from the TF code's definitions, not from ours.
"""

import collections
import contextlib
import os
import pickle
import sys
import types
import zipfile

import numpy as np
import pytest
import torch

from ganverse3d import bundle
from ganverse3d.cli import main
from ganverse3d.errors import InputError
from ganverse3d.stylegan2 import Generator, load_generator, save_generator
from ganverse3d.stylegan2.load import load_generator_with_format

RESOLUTION = 16
RESOLUTIONS = (4, 8, 16)
CHANNELS = {4: 16, 8: 16, 16: 8}  # channel_base 128, channel_max 16
MAPPING_LAYERS = 3
IMG_CHANNELS = 3
NUM_WS = 6
LR_MULTIPLIER = 0.01
FIR = np.array([1.0, 3.0, 3.0, 1.0]) / 8.0


# ----------------------------------------------------------------------------------------------------
# Variables in the official TF layout


def tf_variables(seed, z_dim=10, w_dim=10):
    """{"mapping/Dense0/weight": ..., "synthesis/4x4/Conv/weight": ..., "synthesis/noise0": ..., "dlatent_avg": ...}."""
    rng = np.random.default_rng(seed)

    def normal(*shape, scale=1.0):
        return (rng.standard_normal(shape) * scale).astype(np.float32)

    v = {"dlatent_avg": normal(w_dim)}
    for i in range(MAPPING_LAYERS):
        v[f"mapping/Dense{i}/weight"] = normal(z_dim if i == 0 else w_dim, w_dim, scale=1 / LR_MULTIPLIER)
        v[f"mapping/Dense{i}/bias"] = normal(w_dim, scale=10.0)
    v["synthesis/4x4/Const/const"] = normal(1, CHANNELS[4], 4, 4)

    def modulated(scope, in_channels, out_channels, kernel):
        v[f"{scope}/weight"] = normal(kernel, kernel, in_channels, out_channels)
        v[f"{scope}/bias"] = normal(out_channels, scale=0.2)
        v[f"{scope}/mod_weight"] = normal(w_dim, in_channels)
        v[f"{scope}/mod_bias"] = normal(in_channels, scale=0.2)

    def layer(scope, in_channels, out_channels, noise_index, res):
        modulated(scope, in_channels, out_channels, 3)
        v[f"{scope}/noise_strength"] = np.float32(rng.standard_normal() * 0.5)  # TF returns a numpy scalar
        v[f"synthesis/noise{noise_index}"] = normal(1, 1, res, res)

    layer("synthesis/4x4/Conv", CHANNELS[4], CHANNELS[4], 0, 4)
    modulated("synthesis/4x4/ToRGB", CHANNELS[4], IMG_CHANNELS, 1)
    for res in RESOLUTIONS[1:]:
        log2 = int(np.log2(res))
        layer(f"synthesis/{res}x{res}/Conv0_up", CHANNELS[res // 2], CHANNELS[res], 2 * log2 - 5, res)
        layer(f"synthesis/{res}x{res}/Conv1", CHANNELS[res], CHANNELS[res], 2 * log2 - 4, res)
        modulated(f"synthesis/{res}x{res}/ToRGB", CHANNELS[res], IMG_CHANNELS, 1)
    return v


# ----------------------------------------------------------------------------------------------------
# Naive float64 reference of the official TF generator (networks_stylegan2.py, config F, 'skip')


def lrelu(x):
    return np.where(x >= 0, x, 0.2 * x) * np.sqrt(2.0)


def reference_mapping(v, z):
    x = z / np.sqrt((z ** 2).mean(axis=1, keepdims=True) + 1e-8)
    for i in range(MAPPING_LAYERS):
        weight = v[f"mapping/Dense{i}/weight"].astype(np.float64)
        x = lrelu(x @ weight * (LR_MULTIPLIER / np.sqrt(weight.shape[0])) + v[f"mapping/Dense{i}/bias"] * LR_MULTIPLIER)
    return x


def correlate(padded, per_sample_weight):
    """padded [B, I, H + k - 1, W + k - 1], per_sample_weight [B, k, k, I, O] -> [B, O, H, W]."""
    k = per_sample_weight.shape[1]
    height, width = padded.shape[2] - k + 1, padded.shape[3] - k + 1
    out = 0.0
    for dy in range(k):
        for dx in range(k):
            out = out + np.einsum("bihw,bio->bohw", padded[:, :, dy:dy + height, dx:dx + width], per_sample_weight[:, dy, dx])
    return out


def fir(x, pad0, pad1, gain):
    """TF upfirdn_2d with up = down = 1: pad (pad0 before, pad1 after), convolve with outer(FIR, FIR) * gain."""
    padded = np.pad(x, ((0, 0), (0, 0), (pad0, pad1), (pad0, pad1)))
    kernel = np.outer(FIR, FIR)[::-1, ::-1] * gain  # a true convolution
    channels = x.shape[1]
    weight = np.zeros((x.shape[0], 4, 4, channels, channels))
    for c in range(channels):
        weight[:, :, :, c, c] = kernel
    return correlate(padded, weight)


def zero_insert(x):
    """[B, C, H, W] -> [B, C, 2H, 2W] with x at even positions and zeros after each sample."""
    out = np.zeros(x.shape[:2] + (2 * x.shape[2], 2 * x.shape[3]))
    out[:, :, ::2, ::2] = x
    return out


def styles_of(v, scope, w):
    mod_weight = v[f"{scope}/mod_weight"].astype(np.float64)
    return w @ mod_weight / np.sqrt(mod_weight.shape[0]) + v[f"{scope}/mod_bias"] + 1.0


def reference_layer(v, scope, x, w, noise, up):
    weight = v[f"{scope}/weight"].astype(np.float64)
    k, _, in_channels, _ = weight.shape
    per_sample = weight[None] / np.sqrt(k * k * in_channels) * styles_of(v, scope, w)[:, None, None, :, None]
    per_sample = per_sample / np.sqrt((per_sample ** 2).sum(axis=(1, 2, 3), keepdims=True) + 1e-8)
    if up:
        # TF's upsample_conv_2d: conv2d_transpose with the spatially flipped, transposed weight, i.e. a
        # correlation of the zero-inserted input with the stored weight, then the FIR filter (pad 1, 1).
        inserted = zero_insert(x)[:, :, :-1, :-1]
        x = correlate(np.pad(inserted, ((0, 0), (0, 0), (k - 1, k - 1), (k - 1, k - 1))), per_sample)
        x = fir(x, 1, 1, gain=4.0)
    else:
        x = correlate(np.pad(x, ((0, 0), (0, 0), (k // 2, k // 2), (k // 2, k // 2))), per_sample)
    x = x + noise * v[f"{scope}/noise_strength"]
    return lrelu(x + v[f"{scope}/bias"][None, :, None, None])


def reference_torgb(v, scope, x, w):
    weight = v[f"{scope}/weight"][0, 0].astype(np.float64)  # [I, C]
    scaled = weight / np.sqrt(weight.shape[0])
    return np.einsum("bihw,bi,ic->bchw", x, styles_of(v, scope, w), scaled) + v[f"{scope}/bias"][None, :, None, None]


def reference_synthesis(v, ws):
    """ws [B, NUM_WS, w_dim] with TF's wiring: conv layer_idx reads ws[:, layer_idx], ToRGB of 2^r reads ws[:, 2r - 3]."""
    batch = ws.shape[0]
    x = np.repeat(v["synthesis/4x4/Const/const"].astype(np.float64), batch, axis=0)
    x = reference_layer(v, "synthesis/4x4/Conv", x, ws[:, 0], v["synthesis/noise0"], up=False)
    features = [x]
    image = reference_torgb(v, "synthesis/4x4/ToRGB", x, ws[:, 1])
    for res in RESOLUTIONS[1:]:
        log2 = int(np.log2(res))
        for scope, index, up in ((f"synthesis/{res}x{res}/Conv0_up", 2 * log2 - 5, True),
                                 (f"synthesis/{res}x{res}/Conv1", 2 * log2 - 4, False)):
            x = reference_layer(v, scope, x, ws[:, index], v[f"synthesis/noise{index}"], up)
            features.append(x)
        skip = fir(zero_insert(image), 2, 1, gain=4.0)  # TF upsample_2d: pad0 = 2, pad1 = 1
        image = skip + reference_torgb(v, f"synthesis/{res}x{res}/ToRGB", x, ws[:, 2 * log2 - 3])
    return features, image


# ----------------------------------------------------------------------------------------------------
# Writing the three foreign formats


@contextlib.contextmanager
def stand_in_modules(*names):
    """Temporarily register empty modules (and their parents) so that pickle can name classes in them."""
    added = []
    for name in names:
        parts = name.split(".")
        for depth in range(1, len(parts) + 1):
            module_name = ".".join(parts[:depth])
            if module_name not in sys.modules:
                sys.modules[module_name] = types.ModuleType(module_name)
                added.append(module_name)
    try:
        yield [sys.modules[name] for name in names]
    finally:
        for module_name in added:
            del sys.modules[module_name]


def hostile_source(marker):
    return f"open({str(marker)!r}, 'w').write('the loader ran pickled source code')\n"


def write_tf_pickle(path, v, marker, static_kwargs=None, g_variables=None):
    """Pickle (G, D, Gs) like dnnlib.tflib.network.Network.__getstate__ does (state version 4)."""
    with stand_in_modules("dnnlib.tflib.network") as (network_module,):
        class Network:
            def __init__(self, state):
                self._state = state

            def __getstate__(self):
                return self._state

        Network.__module__, Network.__qualname__ = "dnnlib.tflib.network", "Network"
        network_module.Network = Network

        def network(name, variables, components=None, kwargs=None):
            return Network({"version": 4, "name": name, "static_kwargs": dict(kwargs or {}),
                            "components": dict(components or {}), "build_module_src": hostile_source(marker),
                            "build_func_name": name, "variables": list(variables.items())})

        def generator(name, variables):
            kwargs = {"num_channels": IMG_CHANNELS, "resolution": RESOLUTION, "label_size": 0, "fmap_base": 64,
                      "fmap_max": 16, "mapping_layers": MAPPING_LAYERS, **(static_kwargs or {})}
            split = {prefix: {k[len(prefix) + 1:]: a for k, a in variables.items() if k.startswith(prefix + "/")}
                     for prefix in ("mapping", "synthesis")}
            return network(name, {"dlatent_avg": variables["dlatent_avg"]},
                           {"mapping": network("G_mapping", split["mapping"], kwargs=kwargs),
                            "synthesis": network("G_synthesis", split["synthesis"], kwargs=kwargs)}, kwargs)

        discriminator = network("D", {"4x4/Dense0/weight": np.ones((4, 4), np.float32)})
        contents = (generator("G", g_variables or tf_variables(99)), discriminator, generator("Gs", v))
        with open(path, "wb") as handle:
            pickle.dump(contents, handle, protocol=4)


def ada_state_from_tf(v):
    """stylegan2-ada-pytorch names and layouts, by the rules of its legacy.py (convert_tf_generator)."""
    fir_2d = torch.tensor(np.outer(FIR, FIR), dtype=torch.float32)
    t = lambda a: torch.tensor(np.array(a))  # noqa: E731  (np.array keeps 0-d arrays 0-d)
    state = collections.OrderedDict()
    for i in range(MAPPING_LAYERS):
        state[f"mapping.fc{i}.weight"] = t(v[f"mapping/Dense{i}/weight"].T)
        state[f"mapping.fc{i}.bias"] = t(v[f"mapping/Dense{i}/bias"])
    state["mapping.w_avg"] = t(v["dlatent_avg"])

    def layer(ours, scope, noise_index=None, flip=False):
        weight = v[f"{scope}/weight"]
        state[f"{ours}.weight"] = t((weight[::-1, ::-1] if flip else weight).transpose(3, 2, 0, 1))
        state[f"{ours}.bias"] = t(v[f"{scope}/bias"])
        if noise_index is not None:
            state[f"{ours}.noise_const"] = t(v[f"synthesis/noise{noise_index}"][0, 0])
            state[f"{ours}.noise_strength"] = t(v[f"{scope}/noise_strength"])
            state[f"{ours}.resample_filter"] = fir_2d.clone()
        state[f"{ours}.affine.weight"] = t(v[f"{scope}/mod_weight"].T)
        state[f"{ours}.affine.bias"] = t(v[f"{scope}/mod_bias"] + 1)

    state["synthesis.b4.const"] = t(v["synthesis/4x4/Const/const"][0])
    state["synthesis.b4.resample_filter"] = fir_2d.clone()
    layer("synthesis.b4.conv1", "synthesis/4x4/Conv", 0)
    layer("synthesis.b4.torgb", "synthesis/4x4/ToRGB")
    for res in RESOLUTIONS[1:]:
        log2 = int(np.log2(res))
        state[f"synthesis.b{res}.resample_filter"] = fir_2d.clone()
        layer(f"synthesis.b{res}.conv0", f"synthesis/{res}x{res}/Conv0_up", 2 * log2 - 5, flip=True)
        layer(f"synthesis.b{res}.conv1", f"synthesis/{res}x{res}/Conv1", 2 * log2 - 4)
        layer(f"synthesis.b{res}.torgb", f"synthesis/{res}x{res}/ToRGB")
    return state


ADA_CLASS_NAMES = {"mapping": "MappingNetwork", "synthesis": "SynthesisNetwork", "fc": "FullyConnectedLayer",
                   "affine": "FullyConnectedLayer", "b": "SynthesisBlock", "conv": "SynthesisLayer", "torgb": "ToRGBLayer"}
ADA_D_CLASS_NAMES = {"b": "DiscriminatorEpilogue", "out": "FullyConnectedLayer"}


def write_ada_pickle(path, v, marker, init_kwargs_override=None):
    """Pickle a snapshot dict the way stylegan2-ada-pytorch's training loop does (protocol 3)."""
    with stand_in_modules("torch_utils.persistence", "dnnlib.util") as (persistence, dnnlib_util):
        def _reconstruct_persistent_obj(meta):
            raise AssertionError("only used as a pickled name")

        _reconstruct_persistent_obj.__module__ = "torch_utils.persistence"
        _reconstruct_persistent_obj.__qualname__ = "_reconstruct_persistent_obj"
        persistence._reconstruct_persistent_obj = _reconstruct_persistent_obj

        class EasyDict(dict):
            pass

        EasyDict.__module__, EasyDict.__qualname__ = "dnnlib.util", "EasyDict"
        dnnlib_util.EasyDict = EasyDict

        class Persistent:
            """What persistence's Decorator.__reduce__ emits: _reconstruct_persistent_obj(meta)."""

            def __init__(self, meta):
                self.meta = meta

            def __reduce__(self):
                return _reconstruct_persistent_obj, (self.meta,)

        def as_persistent(module, kind, init_kwargs, class_names=ADA_CLASS_NAMES):
            state = dict(module.__dict__)  # what Module.__reduce__ pickles: parameters, buffers, hooks, flags
            state["_modules"] = collections.OrderedDict(
                (name, as_persistent(child, class_names[name.rstrip("0123456789")], EasyDict(), class_names))
                for name, child in module._modules.items())
            state["_init_args"], state["_init_kwargs"] = (), init_kwargs
            return Persistent(dict(type="class", version=6, module_src=hostile_source(marker), class_name=kind, state=state))

        def module_tree(state):
            root = torch.nn.Module()
            for name, tensor in state.items():
                *parents, leaf = name.split(".")
                node = root
                for part in parents:
                    if part not in node._modules:
                        node.add_module(part, torch.nn.Module())
                    node = node._modules[part]
                if leaf in ("noise_const", "resample_filter", "w_avg"):
                    node.register_buffer(leaf, tensor)
                else:
                    node.register_parameter(leaf, torch.nn.Parameter(tensor, requires_grad=False))
            return root.eval()

        init_kwargs = EasyDict(z_dim=10, w_dim=10, c_dim=0, img_resolution=RESOLUTION, img_channels=IMG_CHANNELS,
                               mapping_kwargs=EasyDict(num_layers=MAPPING_LAYERS),
                               synthesis_kwargs=EasyDict(channel_base=128, channel_max=16, num_fp16_res=4, conv_clamp=256))
        init_kwargs.update(init_kwargs_override or {})
        snapshot = dict(training_set_kwargs=EasyDict(path="cars.zip", resolution=RESOLUTION),
                        G=as_persistent(module_tree(ada_state_from_tf(tf_variables(99))), "Generator", init_kwargs),
                        D=as_persistent(module_tree({"b4.out.weight": torch.ones(1, 4)}), "Discriminator", EasyDict(),
                                          ADA_D_CLASS_NAMES),
                        G_ema=as_persistent(module_tree(ada_state_from_tf(v)), "Generator", init_kwargs),
                        augment_pipe=None)
        with open(path, "wb") as handle:
            pickle.dump(snapshot, handle, protocol=3)


def rosinality_state_from_tf(v):
    """rosinality's names and layouts, by the rules of its convert_weight.py."""
    t = lambda a: torch.tensor(np.array(a))  # noqa: E731  (np.array keeps 0-d arrays 0-d)
    blur = torch.tensor(np.outer(FIR, FIR) * 4, dtype=torch.float32)  # make_kernel(k) * factor ** 2
    state = collections.OrderedDict()
    for i in range(MAPPING_LAYERS):
        state[f"style.{i + 1}.weight"] = t(v[f"mapping/Dense{i}/weight"].T)
        state[f"style.{i + 1}.bias"] = t(v[f"mapping/Dense{i}/bias"])
    state["input.input"] = t(v["synthesis/4x4/Const/const"])

    def modconv(target, scope, flip=False):
        weight = t(v[f"{scope}/weight"].transpose(3, 2, 0, 1))[None]
        state[f"{target}.conv.weight"] = torch.flip(weight, [3, 4]) if flip else weight
        state[f"{target}.conv.modulation.weight"] = t(v[f"{scope}/mod_weight"].T)
        state[f"{target}.conv.modulation.bias"] = t(v[f"{scope}/mod_bias"] + 1)

    def styled(target, scope, flip=False):
        modconv(target, scope, flip)
        state[f"{target}.noise.weight"] = t(v[f"{scope}/noise_strength"].reshape(1))
        state[f"{target}.activate.bias"] = t(v[f"{scope}/bias"])

    def to_rgb(target, scope):
        modconv(target, scope)
        state[f"{target}.bias"] = t(v[f"{scope}/bias"].reshape(1, -1, 1, 1))

    styled("conv1", "synthesis/4x4/Conv")
    to_rgb("to_rgb1", "synthesis/4x4/ToRGB")
    for k, res in enumerate(RESOLUTIONS[1:]):
        styled(f"convs.{2 * k}", f"synthesis/{res}x{res}/Conv0_up", flip=True)
        state[f"convs.{2 * k}.conv.blur.kernel"] = blur.clone()
        styled(f"convs.{2 * k + 1}", f"synthesis/{res}x{res}/Conv1")
        to_rgb(f"to_rgbs.{k}", f"synthesis/{res}x{res}/ToRGB")
        state[f"to_rgbs.{k}.upsample.kernel"] = blur.clone()
    for index in range(2 * len(RESOLUTIONS) - 1):
        state[f"noises.noise_{index}"] = t(v[f"synthesis/noise{index}"])
    return state


def write_rosinality(path, v, with_latent_avg=True):
    checkpoint = {"g_ema": rosinality_state_from_tf(v)}
    if with_latent_avg:
        checkpoint["latent_avg"] = torch.tensor(v["dlatent_avg"])
    torch.save(checkpoint, path)


WRITERS = {
    "tf-pickle": lambda path, v, marker: write_tf_pickle(path, v, marker),
    "ada-pickle": lambda path, v, marker: write_ada_pickle(path, v, marker),
    "rosinality": lambda path, v, marker: write_rosinality(path, v),
}


@pytest.fixture(scope="module")
def variables():
    return tf_variables(seed=1)


@pytest.fixture(scope="module")
def files(tmp_path_factory, variables):
    folder = tmp_path_factory.mktemp("formats")
    marker = folder / "code-ran.txt"
    paths = {}
    for name, write in WRITERS.items():
        paths[name] = folder / f"weights-{name}.bin"  # names say nothing: the format comes from the content
        write(paths[name], variables, marker)
    return paths, marker


# ----------------------------------------------------------------------------------------------------
# Numbers


@pytest.mark.parametrize("source_format", list(WRITERS))
def test_each_format_reproduces_the_official_generator(files, variables, source_format):
    paths, marker = files
    generator, detected = load_generator_with_format(paths[source_format])
    assert detected == source_format
    assert not marker.exists()
    assert generator.num_ws == NUM_WS and generator.img_resolution == RESOLUTION
    assert generator.synthesis.channels == CHANNELS
    np.testing.assert_array_equal(generator.mapping.w_avg.numpy(), variables["dlatent_avg"])

    rng = np.random.default_rng(2)
    z = rng.standard_normal((2, 10))
    with torch.no_grad():
        w = generator.mapping(torch.tensor(z, dtype=torch.float32))
    np.testing.assert_allclose(w[:, 0].numpy(), reference_mapping(variables, z), rtol=1e-4, atol=1e-4)

    ws = rng.standard_normal((2, NUM_WS, 10))  # a different w per layer checks the w-to-layer wiring
    reference_features, reference_image = reference_synthesis(variables, ws)
    with torch.no_grad():
        features, image = generator.synthesis.features(torch.tensor(ws, dtype=torch.float32), return_image=True)
    assert len(features) == len(reference_features)
    for ours, theirs in zip(features, reference_features):
        np.testing.assert_allclose(ours.numpy(), theirs, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(image.numpy(), reference_image, rtol=1e-4, atol=1e-4)


def test_tf_pickle_with_distinct_z_and_w_sizes(tmp_path):
    variables = tf_variables(seed=3, z_dim=7, w_dim=5)
    path = tmp_path / "gs.pkl"
    write_tf_pickle(path, variables, tmp_path / "marker", g_variables=tf_variables(4, z_dim=7, w_dim=5))
    generator = load_generator(path)
    assert (generator.z_dim, generator.w_dim) == (7, 5)
    z = np.random.default_rng(5).standard_normal((3, 7))
    with torch.no_grad():
        ws = generator.mapping(torch.tensor(z, dtype=torch.float32))
        image = generator.synthesis(ws)
    np.testing.assert_allclose(ws[:, 0].numpy(), reference_mapping(variables, z), rtol=1e-4, atol=1e-4)
    _, reference_image = reference_synthesis(variables, ws.double().numpy())
    np.testing.assert_allclose(image.numpy(), reference_image, rtol=1e-4, atol=1e-4)


def test_formats_hold_identical_weights_and_outputs(files):
    paths, _ = files
    generators = {name: load_generator(path) for name, path in paths.items()}
    reference_state = generators["tf-pickle"].state_dict()
    z = torch.randn(3, 10, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        reference_image = generators["tf-pickle"](z)
        for name, generator in generators.items():
            state = generator.state_dict()
            assert state.keys() == reference_state.keys()
            for key in state:
                assert torch.equal(state[key], reference_state[key]), (name, key)
            assert torch.equal(generator(z), reference_image), name
            assert torch.equal(generator(z), generator(z))  # deterministic with constant noise
    assert generators["ada-pickle"].init_kwargs["conv_clamp"] == 256


@pytest.mark.parametrize("source_format", list(WRITERS))
def test_round_trip_through_our_safetensors(files, tmp_path, source_format):
    paths, _ = files
    original = load_generator(paths[source_format], img_content_shape=(12, 16))
    out = tmp_path / "generator.safetensors"
    save_generator(original, out, provenance={"stage": "test"})
    metadata = bundle.read_metadata(out)
    assert metadata["class"] == "ganverse3d.stylegan2.networks.Generator"
    assert metadata["init_kwargs"] == original.init_kwargs
    reloaded, detected = load_generator_with_format(out)
    assert detected == "ganverse3d"
    assert reloaded.img_crop == original.img_crop == (2, 14, 0, 16)
    for key, tensor in original.state_dict().items():
        assert torch.equal(reloaded.state_dict()[key], tensor), key
    z = torch.randn(2, 10)
    with torch.no_grad():
        assert torch.equal(reloaded(z), original(z))


def test_rosinality_training_checkpoint_without_latent_avg(tmp_path, variables):
    path = tmp_path / "000100.pt"
    write_rosinality(path, variables, with_latent_avg=False)
    generator = load_generator(path)
    with torch.no_grad():
        w = generator.mapping(torch.randn(8192, 10, generator=torch.Generator().manual_seed(123)))[:, 0]
    # Estimated from 4096 other samples: agrees with this independent estimate to a few standard errors.
    tolerance = 6 * w.std(dim=0) / np.sqrt(4096)
    assert torch.all((generator.mapping.w_avg - w.mean(dim=0)).abs() < tolerance)


def test_rosinality_checkpoint_with_training_options_loads(tmp_path, variables):
    import argparse

    path = tmp_path / "train.pt"
    torch.save({"g_ema": rosinality_state_from_tf(variables), "latent_avg": torch.tensor(variables["dlatent_avg"]),
                "args": argparse.Namespace(size=RESOLUTION, n_mlp=MAPPING_LAYERS)}, path)
    assert load_generator(path).img_resolution == RESOLUTION


# ----------------------------------------------------------------------------------------------------
# The command


def test_cli_convert(files, tmp_path, capsys):
    paths, marker = files
    out = tmp_path / "car.safetensors"
    assert main(["gan", "convert", str(paths["tf-pickle"]), "--content", "16x12", "-o", str(out)]) == 0
    assert "rows 2:14" in capsys.readouterr().out
    converted = load_generator(out)
    assert converted.img_content_shape == (12, 16)
    assert bundle.read_metadata(out)["provenance"]["source_format"] == "tf-pickle"
    z = torch.randn(2, 10)
    with torch.no_grad():
        assert torch.equal(converted(z), load_generator(paths["tf-pickle"])(z))
    assert not marker.exists()


@pytest.mark.parametrize("arguments, message", [
    (["--content", "16x20"], "must fit"),
    (["--content", "wide"], "WIDTHxHEIGHT"),
    (["-o", "{tmp}/g.pt"], ".safetensors"),
])
def test_cli_convert_bad_input(files, tmp_path, capsys, arguments, message):
    paths, _ = files
    arguments = [a.replace("{tmp}", str(tmp_path)) for a in arguments]
    if "-o" not in arguments:
        arguments += ["-o", str(tmp_path / "g.safetensors")]
    assert main(["gan", "convert", str(paths["rosinality"]), *arguments]) == 2
    assert message in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_cli_convert_missing_source(tmp_path, capsys):
    assert main(["gan", "convert", str(tmp_path / "nope.pkl"), "-o", str(tmp_path / "g.safetensors")]) == 2
    assert "does not exist" in capsys.readouterr().err


# ----------------------------------------------------------------------------------------------------
# Hostile, broken and unsupported files


class RunsShellCommand:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def test_pickle_that_runs_code_is_refused(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pkl"
    path.write_bytes(pickle.dumps({"G_ema": RunsShellCommand(marker)}))
    with pytest.raises(InputError, match=r"system") as error:
        load_generator(path)
    assert "\n" not in str(error.value)
    assert not marker.exists()


# torch's safe loader names the global a protocol-2 blob asks for, and does not read newer protocols at all.
@pytest.mark.parametrize("protocol, expected", [(2, r"asks to run posix\.system"),
                                                (pickle.DEFAULT_PROTOCOL, "not a readable pickle")])
def test_code_hidden_in_a_tensor_storage_is_refused(tmp_path, protocol, expected):
    marker = tmp_path / "pwned"

    class HiddenInStorage:
        def __reduce__(self):
            return torch.storage._load_from_bytes, (pickle.dumps(RunsShellCommand(marker), protocol=protocol),)

    path = tmp_path / "evil.pkl"
    path.write_bytes(pickle.dumps({"G_ema": HiddenInStorage()}))
    with pytest.raises(InputError, match=expected) as refusal:
        load_generator(path)
    assert "weights_only" not in str(refusal.value)  # PyTorch's advice to retry unsafely is not passed on
    assert not marker.exists()


def test_torch_checkpoint_that_runs_code_is_refused(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pt"
    torch.save({"g_ema": RunsShellCommand(marker)}, path)
    with pytest.raises(InputError, match=r"Refusing to load .*asks to run posix\.system") as refusal:
        load_generator(path)
    assert "weights_only" not in str(refusal.value)  # PyTorch's advice to retry unsafely is not passed on
    assert not marker.exists()


def test_truncated_and_foreign_files(files, tmp_path):
    paths, _ = files
    truncated = tmp_path / "truncated.pkl"
    truncated.write_bytes(paths["tf-pickle"].read_bytes()[:5000])
    with pytest.raises(InputError, match="not a readable pickle"):
        load_generator(truncated)
    text = tmp_path / "notes.pkl"
    text.write_text("not weights at all")
    with pytest.raises(InputError, match="not a StyleGAN2 weights file"):
        load_generator(text)
    other_pickle = tmp_path / "list.pkl"
    other_pickle.write_bytes(pickle.dumps([1, 2, 3]))
    with pytest.raises(InputError, match="neither"):
        load_generator(other_pickle)
    other_checkpoint = tmp_path / "classifier.pt"
    torch.save({"model": {"fc.weight": torch.ones(2, 2)}}, other_checkpoint)
    with pytest.raises(InputError, match="g_ema"):
        load_generator(other_checkpoint)


def test_unsupported_configurations_are_named(tmp_path, variables):
    conditional = tmp_path / "conditional.pkl"
    write_tf_pickle(conditional, variables, tmp_path / "marker", static_kwargs={"label_size": 10})
    with pytest.raises(InputError, match="label_size"):
        load_generator(conditional)
    resnet = tmp_path / "resnet.pkl"
    write_ada_pickle(resnet, variables, tmp_path / "marker",
                     init_kwargs_override={"synthesis_kwargs": {"architecture": "resnet"}})
    with pytest.raises(InputError, match="architecture"):
        load_generator(resnet)
    incomplete = dict(variables)
    del incomplete["synthesis/8x8/Conv1/noise_strength"]
    missing = tmp_path / "missing.pkl"
    write_tf_pickle(missing, incomplete, tmp_path / "marker")
    with pytest.raises(InputError, match="8x8/Conv1/noise_strength"):
        load_generator(missing)


def test_generator_class_is_what_loads(files):
    paths, _ = files
    assert all(isinstance(load_generator(path), Generator) for path in paths.values())


@pytest.mark.parametrize("channel_base, channel_max, resolution", [(128, 16, 32), (32768, 512, 512), (1000, 64, 64)])
def test_channel_config_is_recovered_from_per_resolution_channels(channel_base, channel_max, resolution):
    from ganverse3d.stylegan2.load import _infer_channel_config

    resolutions = [2 ** i for i in range(2, resolution.bit_length())]
    channels = {res: min(channel_base // res, channel_max) for res in resolutions}
    base, maximum = _infer_channel_config("file", channels)
    assert {res: min(base // res, maximum) for res in resolutions} == channels
    with pytest.raises(InputError, match="no channel_base"):
        _infer_channel_config("file", {4: 8, 8: 16})


# ----------------------------------------------------------------------------------------------------
# Files that would take gigabytes are refused from their headers


def write_zip_bomb(path, inflated_bytes: int) -> None:
    """A torch checkpoint shaped like rosinality's whose one tensor, ``inflated_bytes`` of zeros, is deflated
    to about a quarter of a percent of that (torch.save never compresses; torch.load inflates all the same)."""
    numel = inflated_bytes // 4

    class Storage:
        pass

    class Tensor:
        def __reduce__(self):
            return torch._utils._rebuild_tensor_v2, (Storage(), 0, (numel,), (1,), False, collections.OrderedDict())

    class Pickler(pickle.Pickler):
        def persistent_id(self, obj):
            return ("storage", torch.FloatStorage, "0", "cpu", numel) if isinstance(obj, Storage) else None

    zeros = bytes(1 << 20)
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=1) as archive:
        with archive.open("bomb/data.pkl", "w") as handle:
            Pickler(handle, protocol=2).dump({"g_ema": {"input.input": Tensor()}})
        archive.writestr("bomb/byteorder", "little")
        archive.writestr("bomb/version", "3\n")
        with archive.open("bomb/data/0", "w", force_zip64=True) as handle:
            for _ in range(inflated_bytes >> 20):
                handle.write(zeros)


@pytest.fixture(scope="module")
def bombs(tmp_path_factory, variables):
    """Files that would take about half a gigabyte each if read as they say: a torch zip bomb, the same bomb as
    a tensor storage inside a stylegan2-ada-pytorch pickle, and a pickle whose init kwargs describe a
    generator of 2048 channels per layer while it holds a tiny one."""
    folder = tmp_path_factory.mktemp("bombs")
    write_zip_bomb(folder / "bomb.pt", 512 << 20)

    class StorageBomb:
        def __reduce__(self):
            return torch.storage._load_from_bytes, ((folder / "bomb.pt").read_bytes(),)

    (folder / "storage_bomb.pkl").write_bytes(pickle.dumps({"G_ema": StorageBomb()}, protocol=3))
    write_ada_pickle(folder / "wide.pkl", variables, folder / "marker",
                     init_kwargs_override={"synthesis_kwargs": {"channel_base": 2**20, "channel_max": 2048}})
    return folder


def test_a_torch_zip_bomb_is_refused_from_its_central_directory(bombs):
    with pytest.raises(InputError, match=r"Refusing to load .*bomb\.pt: its [\d,]+ bytes claim to unpack to 536,8"):
        load_generator(bombs / "bomb.pt")


def test_a_bomb_in_a_tensor_storage_of_a_pickle_is_refused(bombs):
    with pytest.raises(InputError, match=r"Refusing to load .*storage_bomb\.pkl: a tensor storage in it .* claim to "
                                         r"unpack to 536,8"):
        load_generator(bombs / "storage_bomb.pkl")


def test_a_pickle_describing_a_generator_bigger_than_its_file_is_refused(bombs):
    with pytest.raises(InputError, match=r"describes a stylegan2-ada-pytorch generator of [\d,]+ bytes of weights even "
                                         r"at half precision, more than its [\d,]+-byte file can hold"):
        load_generator(bombs / "wide.pkl")


def test_those_refusals_take_no_memory_worth_the_name(bombs):
    from peak_memory import refusals_and_peak_growth

    refusals = {"bomb.pt": "claim to unpack", "storage_bomb.pkl": "claim to unpack", "wide.pkl": "file can hold"}
    messages, growth = refusals_and_peak_growth([("generator", bombs / name) for name in refusals])
    assert all(part in (message or "") for part, message in zip(refusals.values(), messages)), messages
    assert growth < 150 * 2**20


def test_generators_load_by_their_shipped_name():
    assert isinstance(load_generator("world64"), Generator)
    with pytest.raises(InputError, match="give a weights file or the name of a shipped generator: world64"):
        load_generator("world65")
