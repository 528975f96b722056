"""Rewrite backend/ganverse3d/assets/manifest.json: for every shipped weights file, its size, sha256, the
script that reproduces it, and the kind and name under which ganverse3d.assets.resolve finds it. Run after
replacing an asset; tests/test_assets.py checks the manifest is current.

    python scripts/update_assets_manifest.py
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

ASSETS = Path(__file__).resolve().parent.parent / "backend" / "ganverse3d" / "assets"

# Each asset: the kind and name under which a user picks it (see ganverse3d.assets), whether it is its kind's
# default, the script that reproduces it, and what it is.
SOURCES = {
    "inverse.safetensors": dict(
        kind="inverse", name="oracle", default=True, script="scripts/make_inverse_oracle.sh",
        description="default inverse-graphics net (`--model oracle`): trained on world renders with exact cameras "
                    "(Table 1 (b)) from the car-shaped template, until one trained on GAN data comes within 5 % of "
                    "it"),
    "inverse_gan.safetensors": dict(
        kind="inverse", name="gan", default=False, script="scripts/make_inverse_gan.sh",
        description="inverse-graphics net trained the paper's way (`--model gan`): on the default generator's "
                    "images in the views of training/views-world64-L2, per-image cameras (Table 1 (j); "
                    "VIEWS=training/views-world64-L2 SHIP=1 scripts/make_inverse_gan.sh image-cameras)"),
    "stylegan2_world64.safetensors": dict(
        kind="generator", name="world64", default=True, script="scripts/make_default_generator.sh",
        description="default StyleGAN2, 64 px, world renders"),
    "world_segmenter.safetensors": dict(
        kind="segmenter", name="world", default=True, script="scripts/make_segmenter.sh",
        description="embedded car segmenter"),
    "world_feature_net.safetensors": dict(
        kind="feature_net", name="world", default=True, script="scripts/make_feature_net.sh",
        description="feature net behind fid-world"),
    "stylegan_r.safetensors": dict(
        kind="neural", name="world64", default=True, script="scripts/make_stylegan_r.sh",
        description="default StyleGAN-R (`--neural-model world64`): the default generator with its mapping network, "
                    "1,000 warm-up and 1,500 fine-tuning steps through the `gan` inverse network (README, "
                    "\"StyleGAN-R\")"),
    "part_branch_oracle.safetensors": dict(
        kind="part_branch", name="oracle", default=True, script="scripts/make_part_branch.sh",
        description="part branch of the `oracle` inverse net: a part texture (body, window, wheel, headlight, "
                    "taillight, plate) from its image code, trained through the renderer on world cars' true parts "
                    "in 8 views (README, \"Parts\")"),
    "interpreter_world64.safetensors": dict(
        kind="interpreter", name="world64", default=True, script="scripts/make_parts.sh",
        description="DatasetGAN style interpreter of the default generator (`--interpreter world64`): 10 pixel "
                    "classifiers on world64's features, trained on the 16 annotations of training/parts-world64 "
                    "(SHIP=1 scripts/make_parts.sh)"),
}


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def manifest() -> dict:
    files = sorted(p for p in ASSETS.glob("*.safetensors"))
    unknown = [p.name for p in files if p.name not in SOURCES]
    if unknown:
        raise SystemExit(f"Add {', '.join(unknown)} to SOURCES in {__file__} first.")
    return {"format_version": 1, "assets": {
        p.name: {"bytes": p.stat().st_size, "sha256": sha256(p), **SOURCES[p.name]} for p in files}}


if __name__ == "__main__":
    (ASSETS / "manifest.json").write_text(json.dumps(manifest(), indent=2, sort_keys=True) + "\n")
    print(f"Wrote {ASSETS / 'manifest.json'}")
