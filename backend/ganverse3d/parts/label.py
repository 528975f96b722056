"""Part labels for a GAN multi-view dataset, by the style interpreter (``ganverse3d parts label``).

A dataset from ``ganverse3d dataset synth`` keeps every image's latent code: W* takes its first ``view_layers``
entries from the view's code (``view_codes.safetensors``) and the rest from the content's
(``latents/NNNNNN.safetensors``), see :mod:`ganverse3d.dataset.format`. From those codes the generator's pixel
features are made again and the interpreter's majority vote labels every pixel; the labels go to
``parts/{content:06d}_{view:02d}.png`` beside ``images/``: 8-bit grey, value = part id + 1 (0 = no car), the
encoding of a world dataset's ``parts/`` that :mod:`.train_branch` reads. Pixels outside the dataset's car mask
are set to 0, so the parts stay within the silhouette the inverse network was trained on. Each file is written
atomically; a rerun skips the images that have their labels.

The generator must remake the dataset's images (within a few levels of 255): an interpreter reading another
generator's features would label nothing that is there.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file

from ..dataset.format import MultiViewDataset
from ..devices import resolve_device
from ..errors import InputError, setting
from ..files import is_file, save_png, shown_path
from ..runs import progress_bar
from ..stylegan2.load import load_generator
from .interpreter import pixel_features
from .synth import load_interpreter

# How far (mean absolute difference, of 255) a dataset image may be from the generator's remake.
_REMAKE_TOLERANCE = 3.0
_BATCH = 16


@torch.no_grad()
def label_multiview(folder, generator, interpreter, device="auto", progress: bool = True) -> int:
    """Write ``parts/`` for every image of the GAN multi-view dataset ``folder`` (module docstring) that lacks it,
    with the ``interpreter`` bundle over the ``generator`` (a shipped name or a file). Returns how many were
    labelled."""
    dataset = MultiViewDataset(folder, cache=False)
    folder = Path(folder)
    source = dataset.manifest["source"]
    if source.get("kind") != "stylegan2" or not is_file(folder / "view_codes.safetensors"):
        raise InputError(f"The {setting('data')} {shown_path(folder)} is not a GAN multi-view dataset with its "
                         f"codes (`ganverse3d dataset synth` writes one); world datasets carry their true parts.")
    device = resolve_device(device)
    G = load_generator(generator, device=device).eval()
    members = load_interpreter(interpreter, device=device).eval()
    members.check_generator(G, f"The {setting('interpreter')}")
    view_codes = _read_tensors(folder / "view_codes.safetensors", ("ws", "view_ids"))
    if (tuple(view_codes["ws"].shape[1:]) != (G.num_ws, G.w_dim)
            or tuple(G.img_content_shape) != tuple(dataset.manifest["resolution"])):
        raise InputError(f"The {setting('generator')} does not make the images of {shown_path(folder)} (its codes "
                         f"or image size differ); give the generator the dataset was made with.")
    view_index = {int(view_id): index for index, view_id in enumerate(view_codes["view_ids"].tolist())}
    view_layers = int(source["view_layers"])
    todo = [index for index, line in enumerate(dataset.meta) if not is_file(_labels_path(folder, line))]
    bar = progress_bar(len(todo), "parts label", enabled=progress)
    for start in range(0, len(todo), _BATCH):
        indices = todo[start:start + _BATCH]
        lines = [dataset.meta[index] for index in indices]
        contents = torch.stack([_read_tensors(folder / line["latent"], ("ws",))["ws"] for line in lines])
        views = view_codes["ws"][[view_index[line["view_id"]] for line in lines]]
        ws = torch.cat((views[:, :view_layers], contents[:, view_layers:]), dim=1).to(device)
        features, images = pixel_features(G, ws, return_image=True)
        for index, line, image, labels in zip(indices, lines, images.cpu(), members.label(features)[0].cpu()):
            item = dataset[index]
            if float((item["image"] - image).abs().mean()) * 255 > _REMAKE_TOLERANCE:
                raise InputError(f"The {setting('generator')} does not remake {shown_path(folder / line['image'])}; "
                                 f"give the generator the dataset was made with.")
            labels = torch.where(item["mask"][0] > 0.5, labels, 0)
            save_png(_labels_path(folder, line), labels.numpy().astype(np.uint8))
        bar.update(len(lines))
    bar.close()
    return len(todo)


def _read_tensors(path: Path, names: tuple[str, ...]) -> dict[str, torch.Tensor]:
    """The tensors of a dataset's code file; InputError when it is missing, damaged or lacks ``names``."""
    try:
        tensors = load_file(str(path))
    except (OSError, SafetensorError):
        raise InputError(f"{shown_path(path)} is missing or damaged; make the dataset again.") from None
    if any(name not in tensors for name in names):
        raise InputError(f"{shown_path(path)} lacks {', '.join(names)}; make the dataset again.")
    return tensors


def _labels_path(folder: Path, line: dict) -> Path:
    return folder / "parts" / Path(line["image"]).name
