"""bundle.py: weights round-trip through safetensors with metadata; every kind of bad file is one clear sentence."""

import json
import os

import pytest
import torch
from safetensors.torch import save_file

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
