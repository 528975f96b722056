"""bundle.py: weights round-trip through safetensors with metadata; every kind of bad file is one clear sentence,
given before anything is built; bundles of classes that moved still load."""

import importlib
import json
import os

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from ganverse3d import bundle
from ganverse3d.bundle import load_module, read_metadata, save_module
from ganverse3d.errors import InputError
from ganverse3d.stylegan2.networks import Discriminator, Generator


def tiny_discriminator():
    torch.manual_seed(0)
    return Discriminator(img_resolution=8, img_channels=3, channel_base=64, channel_max=8)


def test_round_trip_rebuilds_the_same_module(tmp_path):
    module = tiny_discriminator()
    save_module(tmp_path / "d.safetensors", module, config={"lr": 0.1}, provenance={"stage": "test"})
    loaded = load_module(tmp_path / "d.safetensors", Discriminator)
    image = torch.randn(2, 3, 8, 8)
    assert torch.equal(loaded(image), module.eval()(image))
    metadata = read_metadata(tmp_path / "d.safetensors")
    assert metadata["class"] == "ganverse3d.stylegan2.networks.Discriminator"
    assert metadata["init_kwargs"]["channel_max"] == 8
    assert metadata["config"] == {"lr": 0.1} and metadata["provenance"]["stage"] == "test"
    assert "git_revision" in metadata["provenance"]
    assert [p.name for p in tmp_path.iterdir()] == ["d.safetensors"]  # no temporary file left behind


def test_wrong_class_missing_file_and_foreign_files_are_clear_errors(tmp_path):
    save_module(tmp_path / "d.safetensors", tiny_discriminator())
    with pytest.raises(InputError, match="not the Generator"):
        load_module(tmp_path / "d.safetensors", Generator)
    with pytest.raises(InputError, match="does not exist"):
        load_module(tmp_path / "missing.safetensors")
    (tmp_path / "text.safetensors").write_text("hello")
    with pytest.raises(InputError, match="not a safetensors file"):
        load_module(tmp_path / "text.safetensors")
    save_file({"x": torch.zeros(1)}, str(tmp_path / "plain.safetensors"))
    with pytest.raises(InputError, match="not a ganverse3d bundle"):
        load_module(tmp_path / "plain.safetensors")


def test_classes_outside_the_project_and_mismatched_weights_are_refused(tmp_path):
    module = tiny_discriminator()
    save_module(tmp_path / "d.safetensors", module)
    header_tensors = {k: v.contiguous() for k, v in module.state_dict().items()}
    metadata = {"format": "ganverse3d-bundle", "version": "1", "class": "os.system",
                "init_kwargs": "{}", "config": "{}", "provenance": "{}"}
    save_file(header_tensors, str(tmp_path / "evil.safetensors"), metadata=metadata)
    with pytest.raises(InputError, match="not a ganverse3d class"):
        load_module(tmp_path / "evil.safetensors")
    metadata.update({"class": "ganverse3d.stylegan2.networks.Discriminator",
                     "init_kwargs": json.dumps({**module.init_kwargs, "channel_max": 16})})
    save_file(header_tensors, str(tmp_path / "mismatch.safetensors"), metadata=metadata)
    with pytest.raises(InputError, match="does not match"):
        load_module(tmp_path / "mismatch.safetensors")


def test_saving_the_same_weights_twice_gives_the_same_bytes(tmp_path):
    module = tiny_discriminator()
    for name in ("a", "b", "c"):
        save_module(tmp_path / f"{name}.safetensors", module, config={"z": 1, "a": 2}, provenance={"stage": "test"})
    first = (tmp_path / "a.safetensors").read_bytes()
    assert first == (tmp_path / "b.safetensors").read_bytes() == (tmp_path / "c.safetensors").read_bytes()
    assert torch.equal(load_module(tmp_path / "a.safetensors", Discriminator).b4.fc.weight, module.b4.fc.weight)


def test_saved_files_get_the_usual_permissions_not_mkstemps_0600(tmp_path):
    umask = os.umask(0)
    os.umask(umask)
    save_module(tmp_path / "d.safetensors", tiny_discriminator())
    assert (tmp_path / "d.safetensors").stat().st_mode & 0o777 == 0o666 & ~umask


# ---------------------------------------------------------------------------------------------------
# Damaged bundles: each is refused with one sentence before anything is built


def tiny_inverse_net():
    from ganverse3d.inverse import InverseGraphicsNet

    torch.manual_seed(0)
    return InverseGraphicsNet(resolution=16, base_channels=4, max_channels=8, feature_dim=8, texture_height=4,
                              texture_channels=16, subdivisions=1)


FRAMING = {"fill": 0.8, "centre": [0.0, 0.04], "bin_fill": [0.8] * 11 + [None], "bin_centre": [[0.0, 0.04]] * 12}


@pytest.fixture(scope="module")
def inverse_bundle(tmp_path_factory):
    """(tensors, string metadata) of a valid inverse-graphics bundle with a framing."""
    path = tmp_path_factory.mktemp("bundle") / "inverse.safetensors"
    save_module(path, tiny_inverse_net(), config={"framing": FRAMING})
    with safe_open(str(path), "pt") as handle:
        return {name: handle.get_tensor(name) for name in handle.keys()}, handle.metadata()


def nested(depth: int):
    value = 1
    for _ in range(depth):
        value = [value]
    return value


def with_init_kwargs(**changes):
    return lambda tensors, metadata: metadata.update(
        init_kwargs=json.dumps({**json.loads(metadata["init_kwargs"]), **changes}))


def with_framing(**changes):
    return lambda tensors, metadata: metadata.update(config=json.dumps({"framing": {**FRAMING, **changes}}))


def with_weight(value):
    return lambda tensors, metadata: tensors["to_feature.1.weight"].view(-1).__setitem__(3, value)


DAMAGED = {
    "init_kwargs with an unknown key": (with_init_kwargs(colour="red"),
                                        r"init_kwargs has 'colour', which a InverseGraphicsNet does not take"),
    "init_kwargs a list": (lambda t, m: m.update(init_kwargs="[16, 4]"), r"init_kwargs is a JSON list, not an object"),
    "init_kwargs nested deeply": (with_init_kwargs(resolution=nested(40)), r"init_kwargs nests deeper than 16 levels"),
    "init_kwargs nested beyond the parser": (lambda t, m: m.update(init_kwargs="[" * 100_000 + "]" * 100_000),
                                             r"init_kwargs is missing or not JSON"),
    "resolution a string": (with_init_kwargs(resolution="16"), r'gives resolution as "16", not int'),
    "a flag given as a number": (with_init_kwargs(mask_input=1), r"gives mask_input as 1, not bool"),
    "a scale that is not a number": (with_init_kwargs(initial_scale=float("nan")), r"gives initial_scale as NaN"),
    "config a list": (lambda t, m: m.update(config="[1, 2]"), r"config is a JSON list, not an object"),
    "provenance missing": (lambda t, m: m.pop("provenance"), r"provenance is missing or not JSON"),
    "framing fill 0": (with_framing(fill=0), r"framing fill is 0, not a fraction in \(0, 1\]"),
    "framing fill negative": (with_framing(fill=-0.5), r"framing fill is -0.5"),
    "framing fill a string": (with_framing(fill="0.8"), r"framing fill is '0.8'"),
    "framing centre off the image": (with_framing(centre=[3, 0]), r"framing centre is \[3, 0\]"),
    "framing with a bin missing": (with_framing(bin_fill=[0.8] * 11), r"framing bin_fill is not a list of 12"),
    "framing with a bad bin": (with_framing(bin_fill=[0.8] * 11 + [0]), r"framing bin_fill\[11\] is 0"),
    "NaN weights": (with_weight(float("nan")), r"holds NaN or infinite weights \(in to_feature\.1\.weight\)"),
    "infinite weights": (with_weight(float("inf")), r"holds NaN or infinite weights"),
    "weights of other shapes": (with_init_kwargs(feature_dim=16), r"does not match its InverseGraphicsNet"),
    "a template too fine to build": (with_init_kwargs(subdivisions=12),
                                     r"do not build a InverseGraphicsNet \(subdivisions must be from 0 to 4, not 12\)"),
    "a feature size that would take 160 GB": (with_init_kwargs(feature_dim=200_000),
                                               r"init_kwargs describe other tensors than the file holds"),
}


@pytest.mark.parametrize("damage, expected", DAMAGED.values(), ids=DAMAGED.keys())
def test_damaged_bundles_are_one_sentence(inverse_bundle, tmp_path, damage, expected):
    from ganverse3d.inverse import InverseGraphicsNet

    tensors = {name: tensor.clone() for name, tensor in inverse_bundle[0].items()}
    metadata = dict(inverse_bundle[1])
    damage(tensors, metadata)
    path = tmp_path / "damaged.safetensors"
    save_file(tensors, str(path), metadata=metadata)
    with pytest.raises(InputError, match=expected) as error:
        load_module(path, InverseGraphicsNet)
    message = str(error.value)
    assert message.startswith(str(path)) and message.endswith(".") and "\n" not in message


def test_the_undamaged_base_of_those_cases_loads(inverse_bundle, tmp_path):
    from ganverse3d.inverse import InverseGraphicsNet

    path = tmp_path / "intact.safetensors"
    save_file(inverse_bundle[0], str(path), metadata=inverse_bundle[1])
    loaded = load_module(path, InverseGraphicsNet)
    assert torch.equal(loaded.to_feature[1].weight, inverse_bundle[0]["to_feature.1.weight"])


def test_a_required_argument_missing_from_init_kwargs_is_named(tmp_path):
    module = tiny_discriminator()
    kwargs = dict(module.init_kwargs)
    del kwargs["img_resolution"]
    save_module(tmp_path / "d.safetensors", module, init_kwargs=kwargs)
    with pytest.raises(InputError, match="init_kwargs lacks 'img_resolution', which a Discriminator needs"):
        load_module(tmp_path / "d.safetensors")


@pytest.mark.parametrize("cut", [1, 4096])
def test_a_header_that_promises_more_bytes_than_the_file_holds_is_damaged(tmp_path, cut):
    save_module(tmp_path / "d.safetensors", tiny_discriminator())
    data = (tmp_path / "d.safetensors").read_bytes()
    (tmp_path / "cut.safetensors").write_bytes(data[:-cut])
    with pytest.raises(InputError, match=r"is damaged: its header declares tensor .* beyond or unlike the \d+ bytes"):
        load_module(tmp_path / "cut.safetensors")


def test_a_header_size_beyond_the_file_is_not_safetensors(tmp_path):
    (tmp_path / "lying.safetensors").write_bytes((10**6).to_bytes(8, "little") + b'{"a": 1}')
    with pytest.raises(InputError, match="not a safetensors file"):
        read_metadata(tmp_path / "lying.safetensors")


# ---------------------------------------------------------------------------------------------------
# Classes that moved


def test_a_bundle_of_a_class_that_moved_loads_through_the_alias_table(tmp_path, monkeypatch):
    module = tiny_discriminator()
    save_module(tmp_path / "d.safetensors", module)
    tensors = load_file(str(tmp_path / "d.safetensors"))
    metadata = {**read_raw_metadata(tmp_path / "d.safetensors"), "class": "ganverse3d.old_home.Discriminator"}
    save_file(tensors, str(tmp_path / "old.safetensors"), metadata=metadata)
    with pytest.raises(InputError, match="ganverse3d.old_home.Discriminator, which this version .* does not have"):
        load_module(tmp_path / "old.safetensors")
    monkeypatch.setitem(bundle.CLASS_ALIASES, "ganverse3d.old_home.Discriminator",
                        "ganverse3d.stylegan2.networks.Discriminator")
    loaded = load_module(tmp_path / "old.safetensors", Discriminator)
    image = torch.randn(2, 3, 8, 8)
    assert torch.equal(loaded(image), module.eval()(image))


def test_every_alias_leads_to_a_class_and_the_moved_feature_net_loads_by_its_old_name():
    from ganverse3d import assets
    from ganverse3d.world.features import WorldFeatureNet

    for old, new in bundle.CLASS_ALIASES.items():
        module_name, _, class_name = new.rpartition(".")
        assert isinstance(getattr(importlib.import_module(module_name), class_name), type), old
    shipped = assets.resolve("feature_net")
    assert read_metadata(shipped)["class"] == "ganverse3d.stylegan2.metrics.WorldFeatureNet"
    assert isinstance(load_module(shipped, WorldFeatureNet), WorldFeatureNet)


def read_raw_metadata(path) -> dict:
    with safe_open(str(path), "pt") as handle:
        return handle.metadata()


def test_bundles_that_would_take_a_gigabyte_are_refused_before_it_is_taken(inverse_bundle, tmp_path):
    from peak_memory import refusals_and_peak_growth

    # Built as they say, these take about a gigabyte: the template's mirror search at 5 subdivisions, the
    # 12000-wide layers of the second.
    paths = []
    for name, change in (("template", {"subdivisions": 5}), ("layers", {"feature_dim": 12_000})):
        metadata = {**inverse_bundle[1], "init_kwargs": json.dumps({**json.loads(inverse_bundle[1]["init_kwargs"]),
                                                                      **change})}
        paths.append(tmp_path / f"{name}.safetensors")
        save_file(inverse_bundle[0], str(paths[-1]), metadata=metadata)
    messages, growth = refusals_and_peak_growth([("bundle", path) for path in paths])
    assert "subdivisions must be from 0 to 4, not 5" in messages[0]
    assert "init_kwargs describe other tensors than the file holds" in messages[1]
    assert growth < 150 * 2**20
