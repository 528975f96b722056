"""What the scripts that draw figures in Blender share: writing a Blender image to a PNG file atomically."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


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
