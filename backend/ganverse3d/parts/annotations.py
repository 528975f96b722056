"""Annotation folders: a few generated images with their latent codes and label files painted by a person.

``ganverse3d parts annotate`` writes one (:func:`write_annotation_templates`):

* ``images/000000.png`` - the generated image (8-bit RGB, the generator's content size).
* ``labels/000000.png`` - the label template: an indexed PNG of the image's size carrying the class palette
  (:data:`~ganverse3d.parts.interpreter.PALETTE`), all background. Paint the parts in any image editor with the
  palette's colours; saving as indexed, RGB (each pixel takes the nearest palette colour) or 8-bit grey
  (value = class index, as a world dataset's ``parts/``) all read back. Delete an image's label file to leave
  the image out.
* ``legend.png`` - the classes and their colours; ``sheet.png`` - image | labels of every item.
* ``latents.safetensors`` - ``ws`` [N, num_ws, w_dim]: the codes the interpreter's features are made from.
* ``manifest.json`` - ``format`` ("ganverse3d-part-annotations"), ``format_version``, ``generator`` (as
  given), ``seed``, ``truncation``, ``count``, ``classes``, ``palette``, ``image_size`` [H, W].

:func:`read_annotations` reads the folder back for training, checking that the generator given remakes its
images (features of another generator would teach the interpreter nothing).
"""

from __future__ import annotations

import io
import json
import shutil
import tempfile
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw

from ..bundle import load_state, save_state
from ..errors import InputError, setting
from ..files import (check_output_folder_writable, image_grid, is_dir, is_file, png_bytes, png_files, read_image,
                     shown_path, write_files)
from ..stylegan2.networks import Generator
from .interpreter import CLASSES, PALETTE, colourise

FORMAT = "ganverse3d-part-annotations"
FORMAT_VERSION = 1
# How far (mean absolute difference, of 255) an image on disk may be from the generator's remake.
_REMAKE_TOLERANCE = 3.0


def item_name(index: int) -> str:
    return f"{index:06d}.png"


def label_png_bytes(labels: np.ndarray) -> bytes:
    """labels [H, W] class indices -> an indexed PNG carrying the class palette."""
    image = Image.fromarray(labels.astype(np.uint8), mode="P")
    image.putpalette([channel for colour in PALETTE for channel in colour])
    stream = io.BytesIO()
    image.save(stream, format="PNG")
    return stream.getvalue()


def legend_png_bytes() -> bytes:
    """The classes beside their colour swatches (and their index), one per row."""
    row, width = 22, 190
    image = Image.new("RGB", (width, row * len(CLASSES) + 4), "white")
    draw = ImageDraw.Draw(image)
    for index, (name, colour) in enumerate(zip(CLASSES, PALETTE)):
        top = 2 + index * row
        draw.rectangle((4, top, 40, top + row - 4), fill=tuple(colour), outline=(0, 0, 0))
        draw.text((48, top + 4), f"{index}  {name}  {'#%02x%02x%02x' % tuple(colour)}", fill=(0, 0, 0))
    return png_bytes(np.asarray(image))


def sheet_png_bytes(images: torch.Tensor, labels: torch.Tensor, columns: int = 4) -> bytes:
    """A contact sheet of image | labels pairs: images [N, 3, H, W] in [0, 1], labels [N, H, W] class indices."""
    pairs = torch.stack((images.float().cpu(), colourise(labels.cpu())), dim=1).flatten(0, 1)
    return png_bytes(image_grid(pairs, columns=2 * columns))


def check_sampling(count: int, seed: int, truncation: float) -> None:
    """InputError (one sentence naming the setting) unless ``count`` >= 1, ``seed`` >= 0 and ``truncation`` in
    (0, 1]: how many generator samples, from which seed, how truncated."""
    if count < 1:
        raise InputError(f"{setting('count')} must be at least 1, not {count}.")
    if not 0 < truncation <= 1:
        raise InputError(f"{setting('truncation')} must be in (0, 1], not {truncation}.")
    if seed < 0:
        raise InputError(f"{setting('seed')} must be 0 or more, not {seed}.")


def write_annotation_templates(out, generator, count: int = 16, seed: int = 0, truncation: float = 0.7,
                               device="auto") -> dict:
    """Write ``count`` images of ``generator`` (a name or a file, as ``stylegan2.load.load_generator`` reads) with
    blank label templates into the new folder ``out`` (module docstring), all files or none; returns the
    manifest."""
    from ..dataset.synth import content_codes
    from ..stylegan2.load import load_generator

    out = Path(out)
    check_sampling(count, seed, truncation)
    check_output_folder_writable(out)
    if is_dir(out) and any(out.iterdir()):
        raise InputError(f"The output folder {shown_path(out)} is not empty; give a new folder for the annotations.")
    G = load_generator(generator, device=device)
    ws = content_codes(G, seed, range(count), truncation)
    device = next(G.parameters()).device
    with torch.no_grad():
        images = G.crop_to_content((G.synthesis(ws.to(device)).float() + 1) / 2).clamp(0, 1).cpu()
    height, width = images.shape[-2:]
    blank = np.zeros((height, width), dtype=np.uint8)
    manifest = {"format": FORMAT, "format_version": FORMAT_VERSION, "generator": str(generator), "seed": seed,
                "truncation": truncation, "count": count, "classes": list(CLASSES),
                "palette": [list(colour) for colour in PALETTE], "image_size": [height, width]}
    contents = {out / "manifest.json": (json.dumps(manifest, indent=2, sort_keys=True) + "\n").encode()}
    for index in range(count):
        contents[out / "images" / item_name(index)] = png_bytes(images[index])
        contents[out / "labels" / item_name(index)] = label_png_bytes(blank)
    contents[out / "legend.png"] = legend_png_bytes()
    contents[out / "sheet.png"] = sheet_png_bytes(images, torch.zeros(count, height, width, dtype=torch.int64))
    contents[out / "latents.safetensors"] = _latents_bytes(ws)
    created = not is_dir(out)
    try:
        for path in contents:
            path.parent.mkdir(parents=True, exist_ok=True)
        write_files(contents)
    except (OSError, InputError) as error:  # all files or none: a folder this call made goes too
        if created:
            shutil.rmtree(out, ignore_errors=True)
        if isinstance(error, InputError):
            raise
        raise InputError(f"Cannot write {shown_path(out)}: {error.strerror or error}.") from None
    return manifest


def _latents_bytes(ws: torch.Tensor) -> bytes:
    """The bytes of a latents.safetensors holding ``ws`` (so that it is written with the other files, or not)."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "latents.safetensors"
        save_state(path, {"ws": ws.contiguous()}, {"format": FORMAT})
        return path.read_bytes()


def read_label_file(path, size: tuple[int, int]) -> np.ndarray:
    """A painted label file -> [H, W] int64 class indices (module docstring for the accepted kinds).

    ``size`` is (height, width) of the image it labels."""
    try:
        with Image.open(path) as image:
            image.load()
            mode, palette = image.mode, image.getpalette()
            array = np.asarray(image)
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError):
        raise InputError(f"Cannot read the label file {shown_path(path)}: the file is damaged or not an image.") \
            from None
    if array.shape[:2] != tuple(size):
        raise InputError(f"The label file {shown_path(path)} is {array.shape[1]}x{array.shape[0]} px, but its image "
                         f"is {size[1]}x{size[0]}; paint on the template of the image's size.")
    if mode == "P":
        colours = np.asarray(palette or [], dtype=np.int64).reshape(-1, 3)
        if len(colours) >= len(PALETTE) and np.array_equal(colours[:len(PALETTE)], np.asarray(PALETTE)) \
                and array.max() < len(CLASSES):
            return array.astype(np.int64)
        array = colours[array] if len(colours) else array  # another palette: read its colours
        mode = "RGB"
    if mode in ("L", "I", "I;16"):
        labels = array.astype(np.int64)
        if labels.max() >= len(CLASSES):
            raise InputError(f"The grey label file {shown_path(path)} has the value {labels.max()}; class indices "
                             f"go from 0 to {len(CLASSES) - 1}.")
        return labels
    if mode in ("RGB", "RGBA", "LA") or array.ndim == 3:
        rgb = np.asarray(Image.open(path).convert("RGB"), dtype=np.int64) if mode != "RGB" else array.astype(np.int64)
        distance = ((rgb[:, :, None, :] - np.asarray(PALETTE)[None, None]) ** 2).sum(-1)
        return distance.argmin(-1).astype(np.int64)
    raise InputError(f"The label file {shown_path(path)} is a {mode} image; save it as an indexed, RGB or grey PNG.")


def read_annotations(folder, G: Generator) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, list[str]]:
    """The labelled items of an annotation folder: (ws [N, num_ws, w_dim], images [N, 3, H, W] in [0, 1] as the
    generator remakes them, labels [N, H, W] int64, names). InputError for a folder that is not an annotation
    folder, a generator that does not remake its images, or labels that are all background."""
    folder = Path(folder)
    manifest_path = folder / "manifest.json"
    if not is_file(manifest_path):
        raise InputError(f"{shown_path(folder)} is not an annotation folder (no manifest.json); make one with "
                         f"`ganverse3d parts annotate`.")
    try:
        manifest = json.loads(manifest_path.read_text())
        if manifest["format"] != FORMAT:
            raise KeyError("format")
        version, classes = manifest["format_version"], manifest["classes"]
    except (OSError, ValueError, KeyError, TypeError):
        raise InputError(f"{shown_path(manifest_path)} is not a readable part-annotation manifest.") from None
    if version > FORMAT_VERSION:
        raise InputError(f"{shown_path(folder)} has annotation format {version}; this version of ganverse3d reads up "
                         f"to {FORMAT_VERSION}.")
    if list(classes) != list(CLASSES):
        raise InputError(f"{shown_path(folder)} is labelled with the classes {', '.join(map(str, classes))}, not "
                         f"{', '.join(CLASSES)}.")
    latents_path = folder / "latents.safetensors"
    if not is_file(latents_path):
        raise InputError(f"{shown_path(folder)} has no latents.safetensors: the codes of its images are needed.")
    tensors, _ = load_state(latents_path)
    ws = tensors.get("ws")
    if ws is None or ws.ndim != 3 or tuple(ws.shape[1:]) != (G.num_ws, G.w_dim):
        raise InputError(f"The codes in {shown_path(latents_path)} do not fit the generator (it takes "
                         f"[{G.num_ws}, {G.w_dim}] codes); give the generator the annotations were made with.")
    names = [path.name for path in png_files(folder / "labels") if is_file(folder / "images" / path.name)]
    indices = []
    for name in names:
        try:
            indices.append(int(Path(name).stem))
        except ValueError:
            raise InputError(f"The label file {shown_path(folder / 'labels' / name)} has no item number; keep the "
                             f"template's names.") from None
    if not names:
        raise InputError(f"{shown_path(folder)} holds no labels/NAME.png beside an images/NAME.png.")
    if max(indices) >= len(ws):
        raise InputError(f"{shown_path(folder / 'labels' / names[indices.index(max(indices))])} has no code in "
                         f"latents.safetensors.")
    ws = ws[indices].float()
    device = next(G.parameters()).device
    with torch.no_grad():
        images = G.crop_to_content((G.synthesis(ws.to(device)).float() + 1) / 2).clamp(0, 1).cpu()
    size = tuple(images.shape[-2:])
    labels = []
    for index, name in enumerate(names):
        stored = read_image(folder / "images" / name, "RGB")
        if stored.shape[:2] != size or np.abs(stored.astype(np.float64)
                                              - images[index].permute(1, 2, 0).numpy() * 255).mean() > _REMAKE_TOLERANCE:
            raise InputError(f"The generator does not remake {shown_path(folder / 'images' / name)}; give the "
                             f"generator the annotations were made with ({manifest.get('generator')}).")
        labels.append(read_label_file(folder / "labels" / name, size))
    labels = torch.from_numpy(np.stack(labels))
    if not bool((labels > 0).any()):
        raise InputError(f"Every label file in {shown_path(folder / 'labels')} is all background: paint the parts "
                         f"first (legend.png shows the colours).")
    return ws, images, labels, names
