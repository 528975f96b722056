"""The shipped weights match assets/manifest.json (size and sha256) and each is a loadable bundle."""

import hashlib
import json
from pathlib import Path

import ganverse3d
from ganverse3d.bundle import read_metadata

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
