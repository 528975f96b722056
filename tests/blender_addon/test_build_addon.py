"""scripts/build_addon.py: the zip holds the add-on and its licence in one top-level folder, the manifest
declares licence, copyright, website and permissions, Blender's own extension tools (shipped with bpy) validate
it strictly and install it, and the same sources give the same bytes."""

import ast
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import bpy

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "blender_addon" / "ganverse3d_blender"
LICENSE = ROOT / "LICENSE"
VERSION = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
# Blender's extension command-line tool, the code behind "Install from Disk" and `blender --command extension`.
SCRIPTS = Path(bpy.utils.system_resource("SCRIPTS"))
BLENDER_EXT = SCRIPTS / "addons_core" / "bl_pkg" / "cli" / "blender_ext.py"
# The tags Blender accepts, which `blender --command extension validate` checks the manifest against.
VALID_TAGS = SCRIPTS / "modules" / "_bpy_internal" / "extensions" / "tags.py"


def build(out_dir: Path) -> Path:
    done = subprocess.run([sys.executable, str(ROOT / "scripts" / "build_addon.py"), "--out", str(out_dir)],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    path = out_dir / f"ganverse3d_blender-{VERSION}.zip"
    assert done.stdout.strip() == f"Wrote {path}"
    return path


def test_the_zip_holds_the_package_folder_with_its_manifest_and_licence(tmp_path):
    path = build(tmp_path)
    with zipfile.ZipFile(path) as archive:
        names = sorted(archive.namelist())
        manifest = tomllib.loads(archive.read("ganverse3d_blender/blender_manifest.toml").decode())
        init = archive.read("ganverse3d_blender/__init__.py").decode()
        licence = archive.read("ganverse3d_blender/LICENSE").decode()
    sources = sorted(p.name for p in PACKAGE.iterdir() if p.suffix == ".py") + ["blender_manifest.toml", "LICENSE"]
    assert names == sorted(f"ganverse3d_blender/{name}" for name in sources)
    assert {"worker_client.py", "scene_build.py", "operators.py"} <= set(sources)
    assert (manifest["id"], manifest["version"], manifest["type"]) == ("ganverse3d", VERSION, "add-on")
    assert manifest["blender_version_min"] == "4.2.0"
    bl_info = next(ast.literal_eval(node.value) for node in ast.parse(init).body
                   if isinstance(node, ast.Assign) and node.targets[0].id == "bl_info")
    assert bl_info["version"] == tuple(int(part) for part in VERSION.split(".")) and bl_info["blender"] == (4, 2, 0)
    assert not list(tmp_path.glob(".*")), "no temporary file may be left beside the zip"

    # The licence: MIT as pyproject.toml says, its text shipped, and the manifest's copyright is its holder.
    assert licence == LICENSE.read_text() and licence.startswith("MIT License\n")
    assert tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["license"] == {"text": "MIT"}
    assert manifest["license"] == ["SPDX:MIT"]
    [copyright_line] = manifest["copyright"]
    year, holder = copyright_line.split(" ", 1)
    assert holder == "GANverse3D for Blender contributors" == manifest["maintainer"]
    assert f"Copyright (c) {year} {holder}\n" in licence
    assert manifest["website"].startswith("https://")
    # Permissions: the backend is a local process started by the add-on, reached through pipes, not the network.
    assert set(manifest["permissions"]) == {"files"}
    assert "local backend process" in manifest["permissions"]["files"]


def test_the_same_sources_give_the_same_bytes(tmp_path):
    first = build(tmp_path / "a").read_bytes()
    assert build(tmp_path / "b").read_bytes() == first


def test_blenders_extension_tools_validate_and_install_the_zip(tmp_path):
    path = build(tmp_path)
    validate = subprocess.run([sys.executable, str(BLENDER_EXT), "validate", "--valid-tags", str(VALID_TAGS),
                               str(path)], capture_output=True, text=True, timeout=60)
    assert validate.returncode == 0 and "Success" in validate.stdout, validate.stdout + validate.stderr
    repository = tmp_path / "user_default"
    repository.mkdir()
    install = subprocess.run([sys.executable, str(BLENDER_EXT), "install-files", "--local-dir", str(repository),
                              "--blender-version", "4.2.0", str(path)], capture_output=True, text=True, timeout=60)
    assert install.returncode == 0, install.stdout + install.stderr
    installed = repository / "ganverse3d"  # extensions install under their manifest id
    assert sorted(p.name for p in installed.iterdir() if p.is_file()) == sorted(
        [p.name for p in PACKAGE.iterdir() if p.suffix == ".py" or p.name == "blender_manifest.toml"] + ["LICENSE"])
