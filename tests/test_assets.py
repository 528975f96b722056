"""The shipped weights match assets/manifest.json (size and sha256), each is a bundle that loads, and the
registry (ganverse3d.assets) resolves every name and path the options take."""

import hashlib
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import ganverse3d
from ganverse3d import assets
from ganverse3d.bundle import load_module, read_metadata
from ganverse3d.errors import InputError

ASSETS = Path(ganverse3d.__file__).parent / "assets"
REPO = ASSETS.parents[2]


def test_every_asset_is_listed_with_its_hash_and_reproducing_script():
    manifest = json.loads((ASSETS / "manifest.json").read_text())["assets"]
    on_disk = {p.name for p in ASSETS.glob("*.safetensors")}
    assert set(manifest) == on_disk and on_disk
    for name, entry in manifest.items():
        data = (ASSETS / name).read_bytes()
        assert len(data) == entry["bytes"] and hashlib.sha256(data).hexdigest() == entry["sha256"], name
        assert (REPO / entry["script"]).is_file(), entry["script"]
        assert read_metadata(ASSETS / name)["class"].startswith("ganverse3d."), name


def test_the_manifest_is_what_the_update_script_writes():
    written = subprocess.run([sys.executable, "-c", "import json, update_assets_manifest as m; "
                              "print(json.dumps(m.manifest(), indent=2, sort_keys=True))"],
                             cwd=REPO / "scripts", capture_output=True, text=True, check=True).stdout
    assert written == (ASSETS / "manifest.json").read_text()


@pytest.mark.parametrize("asset", assets.shipped(), ids=lambda asset: f"{asset.kind}-{asset.name}")
def test_every_shipped_model_loads_as_the_class_its_kind_needs(asset):
    from ganverse3d.dataset.segment import WorldSegmenterNet
    from ganverse3d.inverse import InverseGraphicsNet
    from ganverse3d.neural import StyleGANR
    from ganverse3d.parts.branch import PartBranch
    from ganverse3d.parts.interpreter import StyleInterpreter
    from ganverse3d.stylegan2 import Generator
    from ganverse3d.world.features import WorldFeatureNet

    expected = {"inverse": InverseGraphicsNet, "generator": Generator, "segmenter": WorldSegmenterNet,
                "feature_net": WorldFeatureNet, "neural": StyleGANR, "part_branch": PartBranch,
                "interpreter": StyleInterpreter}[asset.kind]
    assert isinstance(load_module(asset.path), expected)


def test_each_kind_has_exactly_one_default_and_distinct_names():
    for kind in assets.KIND_SETTINGS:
        models = assets.shipped(kind)
        assert [model.default for model in models].count(True) == 1, kind
        assert len({model.name for model in models}) == len(models), kind


@pytest.mark.parametrize("kind, name, file_name", [
    ("inverse", None, "inverse.safetensors"), ("inverse", "default", "inverse.safetensors"),
    ("inverse", "oracle", "inverse.safetensors"), ("inverse", "gan", "inverse_gan.safetensors"),
    ("generator", None, "stylegan2_world64.safetensors"), ("generator", "world64", "stylegan2_world64.safetensors"),
    ("segmenter", "world", "world_segmenter.safetensors"), ("feature_net", "world", "world_feature_net.safetensors"),
])
def test_names_resolve_to_the_shipped_files(kind, name, file_name):
    assert assets.resolve(kind, name) == ASSETS / file_name


def test_a_name_is_only_a_name_of_its_own_kind_and_paths_pass_through(tmp_path):
    weights = tmp_path / "mine.safetensors"
    weights.write_bytes(b"any file")
    assert assets.resolve("inverse", weights) == weights
    assert assets.resolve("inverse", str(weights)) == weights
    with pytest.raises(InputError, match="does not exist"):
        assets.resolve("inverse", "world64")  # the generator's name


def test_a_name_wins_over_a_file_of_that_name_in_the_working_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "gan").write_bytes(b"not the shipped model")
    assert assets.resolve("inverse", "gan") == ASSETS / "inverse_gan.safetensors"


@pytest.mark.parametrize("kind, setting, names", [
    ("inverse", "model", "oracle (the default) or gan"), ("generator", "generator", "world64"),
    ("segmenter", "segmenter", "world"), ("feature_net", "feature_net", "world"),
])
def test_an_unknown_name_is_one_sentence_naming_the_setting_and_the_choices(kind, setting, names):
    with pytest.raises(InputError) as error:
        assets.resolve(kind, "nonesuch")
    assert error.value.settings == [setting]
    assert error.value.worded(lambda name: "--" + name.replace("_", "-")) == (
        f"The --{setting.replace('_', '-')} nonesuch does not exist; give a weights file or the name of a shipped "
        f"{assets._KIND_WORDS[kind]}: {names}.")


def test_a_shipped_file_that_is_missing_names_its_script(tmp_path, monkeypatch):
    shutil.copy(ASSETS / "manifest.json", tmp_path / "manifest.json")
    monkeypatch.setattr(assets, "FOLDER", tmp_path)
    expected = r"'gan' .* is missing; reproduce it with scripts/make_inverse_gan\.sh"
    with pytest.raises(InputError, match=expected) as error:
        assets.resolve("inverse", "gan")
    assert error.value.settings == ["model"]


def test_is_shipped_tells_the_shipped_files_from_copies(tmp_path):
    copy = tmp_path / "inverse.safetensors"
    shutil.copy(ASSETS / "inverse.safetensors", copy)
    assert assets.is_shipped(ASSETS / "inverse.safetensors") and not assets.is_shipped(copy)
