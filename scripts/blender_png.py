"""What the scripts that draw figures in Blender share: importing a car through the add-on, writing a Blender image
to a PNG file atomically."""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def save_png(image, path: Path) -> None:
    """Write the Blender image datablock ``image`` to ``path`` as PNG, through a temporary file beside it that is
    renamed when complete, so that an interrupted run never leaves half a figure."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".png")
    os.close(handle)
    try:
        image.filepath_raw = temporary
        image.file_format = "PNG"
        image.save()
        os.chmod(temporary, 0o644)
        os.replace(temporary, path)
    finally:
        if os.path.exists(temporary):
            os.unlink(temporary)


def enable_addon(backend_python: str) -> None:
    """Factory settings with an empty scene, then the add-on from this repository enabled, its backend
    ``backend_python``."""
    import addon_utils  # Blender's own modules: importable inside Blender only
    import bpy

    bpy.ops.wm.read_factory_settings(use_empty=True)  # resets the preferences too, so enable the add-on after
    sys.path.insert(0, str(ROOT / "blender_addon"))
    addon_utils.enable("ganverse3d_blender", default_set=True, handle_error=None)
    bpy.context.preferences.addons["ganverse3d_blender"].preferences.python = backend_python


def import_photo(photo: Path, backend_python: str, **options) -> None:
    """The add-on's import of ``photo`` (operator ``options`` as given); the operator's one-sentence report ends the
    script, e.g. for a backend Python without ganverse3d."""
    import bpy

    try:
        bpy.ops.ganverse3d.import_photo(filepath=str(photo), **options)
    except RuntimeError as error:
        sys.exit(f"{str(error).strip()} (backend: {backend_python})")
