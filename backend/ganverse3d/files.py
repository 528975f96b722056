"""Atomic file output, auto-numbered run folders, and reading the images of a dataset folder.

Every file the project writes goes through here, so that an interrupted command never leaves a
half-written file behind: data is written to a hidden temporary file in the target folder, then renamed.
A process killed mid-write leaves that temporary behind; :func:`remove_temp_files` clears them when the
folder's writer resumes, and readers never take a hidden file for data.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

from .errors import InputError, setting

_UMASK = os.umask(0)
os.umask(_UMASK)

# The names atomic_path gives its temporaries: "." + the target's name + "." + mkstemp's 8 random
# characters (lower-case letters, digits, "_") + the suffix.
_TEMPORARY = re.compile(r"\..+\.[a-z0-9_]{8}(\.[^.]+)?")


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, suffix: str | None = None):
    """Yield a temporary path next to ``path``; on success rename it onto ``path``, on error delete it."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=suffix or path.suffix)
    except OSError as error:
        raise InputError(f"Cannot write to {path.parent}: {error.strerror or error}.") from None
    os.close(handle)
    try:
        yield Path(tmp)
        # mkstemp makes 0600 files, and some writers (safetensors) replace the file with another 0600 one:
        # outputs get the usual permissions once written.
        os.chmod(tmp, 0o666 & ~_UMASK)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def remove_temp_files(folder) -> list[Path]:
    """Delete the temporaries of interrupted :func:`atomic_path` writes anywhere under ``folder``; returns them.

    Only the folder's own writer may call this (when it starts or resumes): a temporary of a write under way
    looks the same as an orphan.
    """
    removed = []
    for path in sorted(Path(folder).rglob(".*")):
        if _TEMPORARY.fullmatch(path.name) and path.is_file():
            path.unlink(missing_ok=True)
            removed.append(path)
    return removed


def write_bytes(path, data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def write_text(path, text: str) -> None:
    write_bytes(path, text.encode("utf-8"))


def write_json(path, obj) -> None:
    write_text(path, json.dumps(obj, indent=2, sort_keys=True) + "\n")


def to_uint8(image) -> np.ndarray:
    """A float image in [0, 1] shaped [3, H, W], [1, H, W] or [H, W] (tensor or array) -> uint8 [H, W(, 3)]."""
    array = image.detach().cpu().numpy() if hasattr(image, "detach") else np.asarray(image)
    if array.ndim == 3:
        array = array[0] if array.shape[0] == 1 else array.transpose(1, 2, 0)
    return (np.clip(array, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def save_png(path, image) -> None:
    """Write an image (see :func:`to_uint8` for accepted shapes, or a uint8 array) as an 8-bit PNG, atomically."""
    array = image if isinstance(image, np.ndarray) and image.dtype == np.uint8 else to_uint8(image)
    with atomic_path(path, suffix=".png") as tmp:
        Image.fromarray(array).save(tmp, format="PNG", optimize=False)


def save_pngs(paths, images) -> None:
    """Write several images (see :func:`save_png`) so that either all files appear or none does: every file
    is opened as a temporary first, which also reports an unwritable path before any work is lost."""
    with contextlib.ExitStack() as stack:
        temporaries = [stack.enter_context(atomic_path(path, suffix=".png")) for path in paths]
        for temporary, image in zip(temporaries, images):
            array = image if isinstance(image, np.ndarray) and image.dtype == np.uint8 else to_uint8(image)
            Image.fromarray(array).save(temporary, format="PNG", optimize=False)


def image_grid(images, columns: int, padding: int = 2, fill: float = 1.0):
    """Tile images [N, C, H, W] (float in [0, 1]) into one [C, rows*(H+p)-p, columns*(W+p)-p] sheet."""
    import torch

    count, channels, height, width = images.shape
    rows = -(-count // columns)
    sheet = torch.full((channels, rows * (height + padding) - padding, columns * (width + padding) - padding),
                       fill, dtype=images.dtype)
    for index in range(count):
        top, left = (index // columns) * (height + padding), (index % columns) * (width + padding)
        sheet[:, top:top + height, left:left + width] = images[index].detach().cpu()
    return sheet


def read_image(path, mode: str = "RGB", size: tuple[int, int] | None = None,
               resample=Image.Resampling.LANCZOS) -> np.ndarray:
    """The image file ``path`` as uint8 [H, W, 3] (``mode`` "RGB") or [H, W] ("L"), converted to ``mode`` and,
    when ``size`` (width, height) is given and differs, resized with ``resample``. InputError naming the file
    when it is missing or not a readable image."""
    try:
        with Image.open(path) as image:
            image = image.convert(mode)
            if size is not None and image.size != tuple(size):
                image = image.resize(tuple(size), resample)
            return np.array(image)
    except FileNotFoundError:
        raise InputError(f"The image {path} does not exist.") from None
    # PIL raises SyntaxError for some damaged PNG chunks, next to OSError for truncated or unknown files.
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError):
        raise InputError(f"Cannot read the image {path}: the file is damaged or not an image.") from None


def check_dataset_complete(folder) -> None:
    """InputError when ``folder/manifest.json`` says the dataset is incomplete (``"complete": false``, which the
    dataset writers set until their last file is written) or cannot be read; a folder without a manifest
    passes."""
    path = Path(folder) / "manifest.json"
    if not path.exists():
        return
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError, RecursionError):
        raise InputError(f"{path} is damaged: it is not readable JSON.") from None
    if isinstance(manifest, dict) and manifest.get("complete") is False:
        raise InputError(f"{folder} is an incomplete dataset (its writing was interrupted or is under way); run "
                         f"the command that wrote it again to finish it.")


def png_files(folder) -> list[Path]:
    """The PNG files directly in ``folder``, sorted; hidden files (temporaries of interrupted writes) are never
    data."""
    return sorted(path for path in Path(folder).glob("*.png") if not path.name.startswith("."))


def image_paths(folder) -> list[Path]:
    """The PNG images of a dataset folder (:func:`png_files`): ``folder/images/*.png``, or ``folder/*.png``
    when there is no ``images/``. InputError when there are none or the folder's manifest says the dataset is
    incomplete (:func:`check_dataset_complete`)."""
    folder = Path(folder)
    check_dataset_complete(folder)
    image_dir = folder / "images" if (folder / "images").is_dir() else folder
    paths = png_files(image_dir)
    if not paths:
        raise InputError(f"No PNG images found in {image_dir}; point {setting('data')} at a dataset folder with "
                         f"images/.")
    return paths


def new_run_dir(root, stage: str, name: str) -> Path:
    """Create ``root/stage/<NNNNN-name>`` with the next free number; existing runs are never touched."""
    parent = Path(root) / stage
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise InputError(f"Cannot create the run folder under {parent}: {error.strerror or error}.") from None
    numbers = [int(m.group(1)) for p in parent.iterdir() if (m := re.match(r"(\d{5})-", p.name))]
    number = max(numbers, default=-1) + 1
    while True:
        run_dir = parent / f"{number:05d}-{name}"
        try:
            run_dir.mkdir()
            return run_dir
        except FileExistsError:
            number += 1


def check_output_folder_writable(out: Path) -> None:
    """InputError unless ``out`` is, or can be created as, a folder this process can write into."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise InputError(f"The output {out} is a file; give a folder for the dataset.")
    existing = next(parent for parent in (out.absolute(), *out.absolute().parents) if parent.exists())
    if not existing.is_dir():
        raise InputError(f"Cannot create {out}: {existing} is a file.")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise InputError(f"Cannot write to {existing}: permission denied.")


def check_output_file(path, suffixes: tuple[str, ...]) -> Path:
    """InputError unless ``path`` ends in one of ``suffixes`` and lies in (or under) a writable folder.

    Checked before any work so that a bad output path costs nothing and leaves nothing behind.
    """
    path = Path(path)
    allowed = " or ".join(suffixes) if len(suffixes) < 3 else ", ".join(suffixes[:-1]) + " or " + suffixes[-1]
    if path.suffix.lower() not in suffixes:
        raise InputError(f"The output {path} must end in {allowed}.")
    if path.is_dir():
        raise InputError(f"The output {path} is a folder; give a file name ending in {allowed}.")
    existing = next(parent for parent in path.absolute().parents if parent.exists())
    if not existing.is_dir() or not os.access(existing, os.W_OK | os.X_OK):
        raise InputError(f"Cannot write {path}: {existing} is not a writable folder.")
    return path
