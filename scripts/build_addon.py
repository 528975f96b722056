"""Build the installable add-on zip: ``dist/ganverse3d_blender-<version>.zip``.

    python scripts/build_addon.py [--out DIR]

The zip holds one top-level folder, ``ganverse3d_blender/``, with ``blender_manifest.toml``, ``__init__.py``
and the repository's ``LICENSE`` in it (Blender's extension guidelines ask for the licence text). Blender 4.2+ installs it as an extension (Get Extensions > Install from Disk: the manifest may sit at the
zip's root or in one top-level folder) and as a legacy add-on (Add-ons > Install from Disk: a package folder
with ``bl_info``). The manifest's version must equal the backend's (pyproject.toml) and ``bl_info``'s, so that
an add-on never pairs with a backend of another protocol by accident.

Standard library only, like the add-on: building it needs no backend. Entries are sorted and dated 1980-01-01,
so the same sources give the same bytes; the zip is written to a temporary file and renamed.
"""

from __future__ import annotations

import argparse
import ast
import os
import sys
import tempfile
import tomllib
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "blender_addon" / "ganverse3d_blender"
LICENSE = ROOT / "LICENSE"
ZIP_DATE = (1980, 1, 1, 0, 0, 0)  # the earliest date a zip can hold: no build time in the bytes


class BuildError(Exception):
    """The add-on's sources are inconsistent; the message says how, in one sentence."""


def addon_version() -> str:
    """The version, after checking that the manifest, ``bl_info`` and pyproject.toml agree on it."""
    manifest = tomllib.loads((PACKAGE / "blender_manifest.toml").read_text(encoding="utf-8"))["version"]
    backend = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]["version"]
    tree = ast.parse((PACKAGE / "__init__.py").read_text(encoding="utf-8"))
    bl_info = next(ast.literal_eval(node.value) for node in tree.body
                   if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", None) == "bl_info")
    legacy = ".".join(str(part) for part in bl_info["version"])
    if not manifest == backend == legacy:
        raise BuildError(f"Versions disagree: blender_manifest.toml {manifest}, pyproject.toml {backend}, "
                         f"bl_info {legacy}; make them equal.")
    return manifest


def package_files() -> list[Path]:
    """The add-on's files, sorted by name: Python modules, the manifest (no caches) and the licence."""
    sources = [path for path in PACKAGE.iterdir()
               if path.is_file() and (path.suffix == ".py" or path.name == "blender_manifest.toml")]
    return sorted([*sources, LICENSE], key=lambda path: path.name)


def build(out_dir: Path) -> Path:
    """Write ``out_dir/ganverse3d_blender-<version>.zip`` atomically and return its path."""
    target = Path(out_dir) / f"{PACKAGE.name}-{addon_version()}.zip"
    target.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".zip")
    os.close(handle)
    try:
        with zipfile.ZipFile(temporary, "w", zipfile.ZIP_DEFLATED) as archive:
            for path in package_files():
                entry = zipfile.ZipInfo(f"{PACKAGE.name}/{path.name}", date_time=ZIP_DATE)
                entry.compress_type = zipfile.ZIP_DEFLATED
                entry.external_attr = 0o644 << 16
                archive.writestr(entry, path.read_bytes())
        os.chmod(temporary, 0o644)
        os.replace(temporary, target)
    finally:
        if os.path.exists(temporary):
            os.unlink(temporary)
    return target


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "dist", help="output folder [default: dist/]")
    options = parser.parse_args(argv)
    try:
        print(f"Wrote {build(options.out)}")
    except (BuildError, OSError) as error:
        print(f"Error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
