"""Atomic file output, auto-numbered run folders, and reading the images of a dataset folder.

Every file the project writes goes through here, so that an interrupted command never leaves a
half-written file behind: data is written to a hidden temporary file in the target folder, then renamed
(:func:`write_files` writes several files all or none). A process killed mid-write leaves that temporary
behind; :func:`remove_temp_files` clears them when the folder's writer resumes, and readers never take a
hidden file for data.

Paths the user gave are looked at through :func:`is_file`, :func:`is_dir` and :func:`exists`: a name the
system refuses (too long, not searchable) is an InputError there, and messages show long paths shortened
(:func:`shown_path`).
"""

from __future__ import annotations

import contextlib
import errno
import io
import json
import os
import re
import stat
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

from .errors import InputError, setting

_UMASK = os.umask(0)
os.umask(_UMASK)

# Longest path a message shows whole: a 5000-character name is shown with its middle left out.
MAX_SHOWN_PATH = 240


def _temporaries(target: str) -> re.Pattern:
    """The names atomic_path gives the temporaries of targets whose names match the regex ``target``: "." + the
    target's name + "." + mkstemp's 8 random characters (lower-case letters, digits, "_") + the suffix."""
    return re.compile(rf"\.(?:{target})\.[a-z0-9_]{{8}}(\.[^.]+)?")


_TEMPORARY = _temporaries(".+")


def shown_path(path, limit: int = MAX_SHOWN_PATH) -> str:
    """``path`` as a message shows it: whole up to ``limit`` characters, else its start and end around "..."."""
    text = str(path)
    if len(text) <= limit:
        return text
    tail = limit // 4
    return f"{text[:limit - tail - 3]}...{text[-tail:]}"


def _stat(path) -> os.stat_result | None:
    """``os.stat(path)``, or None where nothing is (as pathlib's checks: missing, a file in the way of a folder,
    a link loop); InputError when the system refuses the name itself (too long, a folder it may not search)."""
    try:
        return os.stat(path)
    except OSError as error:
        if error.errno in (errno.ENOENT, errno.ENOTDIR, errno.EBADF, errno.ELOOP):
            return None
        raise InputError(f"Cannot use {shown_path(path)}: {error.strerror or type(error).__name__}.") from None
    except ValueError:  # a NUL character
        raise InputError(f"Cannot use {shown_path(path)}: a path cannot hold a NUL character.") from None


def exists(path) -> bool:
    """Whether something is at ``path``; InputError for a name the system refuses (see :func:`_stat`)."""
    return _stat(path) is not None


def is_file(path) -> bool:
    """Whether ``path`` is a file (or a link to one); InputError for a name the system refuses."""
    status = _stat(path)
    return status is not None and stat.S_ISREG(status.st_mode)


def is_dir(path) -> bool:
    """Whether ``path`` is a folder (or a link to one); InputError for a name the system refuses."""
    status = _stat(path)
    return status is not None and stat.S_ISDIR(status.st_mode)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, suffix: str | None = None):
    """Yield a temporary path next to ``path``; on success rename it onto ``path``, on error delete it."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=suffix or path.suffix)
    except OSError as error:
        raise InputError(f"Cannot write to {shown_path(path.parent)}: {error.strerror or error}.") from None
    os.close(handle)
    try:
        yield Path(tmp)
        # mkstemp makes 0600 files: outputs get the usual permissions once written.
        os.chmod(tmp, 0o666 & ~_UMASK)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def remove_temp_files(folder, names=None) -> list[Path]:
    """Delete the temporaries of interrupted :func:`atomic_path` writes anywhere under ``folder``, or with
    ``names`` only those of the files of these names directly in ``folder``; returns them.

    Only the writer of those files may call this (when it starts or resumes): a temporary of a write under way
    looks the same as an orphan.
    """
    folder = Path(folder)
    if names is None:
        pattern, candidates = _TEMPORARY, folder.rglob(".*")
    else:
        pattern, candidates = _temporaries("|".join(re.escape(name) for name in names)), folder.glob(".*")
    removed = []
    for path in sorted(candidates):
        if pattern.fullmatch(path.name) and path.is_file():
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


def png_bytes(image) -> bytes:
    """An image (see :func:`to_uint8` for accepted shapes, or a uint8 array) encoded as an 8-bit PNG file."""
    array = image if isinstance(image, np.ndarray) and image.dtype == np.uint8 else to_uint8(image)
    stream = io.BytesIO()
    Image.fromarray(array).save(stream, format="PNG", optimize=False)
    return stream.getvalue()


def save_png(path, image) -> None:
    """Write an image (see :func:`png_bytes`) as an 8-bit PNG, atomically."""
    write_bytes(path, png_bytes(image))


def write_files(contents: dict) -> list[Path]:
    """Write several files (path -> bytes) so that all of them appear or none does, and return their paths.

    Each is first written to a temporary beside it (:func:`atomic_path`); only when every one is written and
    no target is a folder are they renamed, the first file of ``contents`` last (a .obj never points at
    companions that are missing, a client that reads the first file finds the others). A failure removes
    every temporary and raises InputError.
    """
    path = None
    try:
        with contextlib.ExitStack() as renames:
            for path, data in contents.items():
                renames.enter_context(atomic_path(path)).write_bytes(data)
            check_outputs(contents)
    except OSError as error:  # a full disk, or a rename refused (filename2 is its target)
        raise InputError(f"Cannot write {shown_path(error.filename2 or path)}: {error.strerror or error}.") from None
    return [Path(path) for path in contents]


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
    if not exists(path):
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
    image_dir = folder / "images" if is_dir(folder / "images") else folder
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


def _existing_parent(path: Path) -> Path:
    """The nearest of ``path``'s parents that exists (the root at least)."""
    return next(parent for parent in path.absolute().parents if exists(parent))


def check_output_folder_writable(out: Path) -> None:
    """InputError unless ``out`` is, or can be created as, a folder this process can write into."""
    out = Path(out)
    if exists(out) and not is_dir(out):
        raise InputError(f"The output {shown_path(out)} is a file; give a folder for the dataset.")
    existing = out.absolute() if exists(out) else _existing_parent(out)
    if not is_dir(existing):
        raise InputError(f"Cannot create {shown_path(out)}: {shown_path(existing)} is a file.")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise InputError(f"Cannot write to {shown_path(existing)}: permission denied.")


def check_output_file(path, suffixes: tuple[str, ...]) -> Path:
    """InputError unless ``path`` ends in one of ``suffixes`` and lies in (or under) a writable folder.

    Checked before any work so that a bad output path costs nothing and leaves nothing behind.
    """
    path = Path(path)
    allowed = " or ".join(suffixes) if len(suffixes) < 3 else ", ".join(suffixes[:-1]) + " or " + suffixes[-1]
    if path.suffix.lower() not in suffixes:
        raise InputError(f"The output {shown_path(path)} must end in {allowed}.")
    if is_dir(path):
        raise InputError(f"The output {shown_path(path)} is a folder; give a file name ending in {allowed}.")
    existing = _existing_parent(path)
    if not is_dir(existing) or not os.access(existing, os.W_OK | os.X_OK):
        raise InputError(f"Cannot write {shown_path(path)}: {shown_path(existing)} is not a writable folder.")
    return path


def check_not_an_input(output, inputs: dict, output_setting: str) -> None:
    """InputError when writing ``output`` would replace one of ``inputs`` (what -> path, e.g. ``{"photo": ...}``;
    values that are not paths are skipped). Files are compared on disk, so a link or another spelling of the
    same file counts too. ``output_setting`` names the setting that chose ``output``."""
    for what, source in inputs.items():
        if (isinstance(source, (str, os.PathLike)) and os.path.exists(output) and os.path.exists(source)
                and os.path.samefile(output, source)):
            raise InputError(f"Writing {shown_path(output)} would replace the {what} {shown_path(source)}; change "
                             f"{setting(output_setting)}.")


def check_outputs(paths, inputs: dict | None = None, output_setting: str = "out_path") -> None:
    """InputError when a folder stands where one of ``paths`` is to be written, or writing one would replace one
    of ``inputs`` (see :func:`check_not_an_input`)."""
    for path in paths:
        if is_dir(path):
            raise InputError(f"Cannot write {shown_path(path)}: a folder of that name is in the way.")
        check_not_an_input(path, inputs or {}, output_setting)
