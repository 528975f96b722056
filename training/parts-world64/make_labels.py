"""How labels/*.png of this folder were made: pre-labelled by a part segmenter, then the edits below, chosen by
looking at the sheet (README.md).

    python training/parts-world64/make_labels.py --segmenter out/parts/seg_world.safetensors

Reads images/*.png, labels them with the segmenter (``parts.segmenter.segment_parts``), applies
:data:`CORRECTIONS` in order, and writes labels/*.png (indexed, the class palette) and sheet.png
(image | labels). Each edit names an image, a rule and a region of it (pixels of the 64 x 64 image, rows down,
columns right, ends exclusive): ``recolour`` (source, target) changes one class to another inside the rectangle
(rows, columns); ``disc`` paints a class on every pixel within ``radius`` of (row, column).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

from ganverse3d.files import png_files, read_image, write_files
from ganverse3d.parts.annotations import label_png_bytes, sheet_png_bytes
from ganverse3d.parts.interpreter import CLASSES
from ganverse3d.parts.segmenter import load_part_segmenter, segment_parts

FOLDER = Path(__file__).parent

# (item, rule, what, region, why): chosen by looking at the pre-labelled images enlarged 5-8x with an 8-px grid.
CORRECTIONS: list[tuple] = [
    (2, "recolour", ("window", "background"), ((18, 23), (26, 35)), "window specks above the roof, off the car"),
    (3, "recolour", ("taillight", "body"), ((28, 33), (44, 49)), "a lone taillight pixel in the middle of the side"),
    (4, "disc", "wheel", (43, 14, 4), "left wheel ring labelled body and lights"),
    (4, "disc", "wheel", (43, 33, 4), "right wheel ring labelled body and lights"),
    (8, "disc", "wheel", (47, 16, 3), "front wheel ring labelled body and plate"),
    (8, "disc", "wheel", (47, 30, 3), "rear wheel: the label's wheel sat 3 px left of the ring"),
    (9, "recolour", ("plate", "wheel"), ((35, 43), (44, 53)), "plate pixels on the rear wheel of a side view"),
    (14, "disc", "wheel", (45, 34, 4), "front wheel ring half labelled body"),
    (15, "recolour", ("window", "background"), ((19, 24), (23, 33)), "window specks above the roof, off the car"),
]


def apply(labels: torch.Tensor, item: int, rule: str, what, region) -> None:
    """One edit of :data:`CORRECTIONS` on labels [N, H, W] in place."""
    if rule == "recolour":
        (top, bottom), (left, right) = region
        source, target = (CLASSES.index(name) for name in what)
        area = labels[item, top:bottom, left:right]
        area[area == source] = target
    elif rule == "disc":
        row, column, radius = region
        rows, columns = torch.meshgrid(torch.arange(labels.shape[1]), torch.arange(labels.shape[2]), indexing="ij")
        labels[item][(rows - row) ** 2 + (columns - column) ** 2 <= radius ** 2] = CLASSES.index(what)
    else:
        sys.exit(f"unknown rule {rule}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--segmenter", required=True, help="Part segmenter bundle that pre-labels the images.")
    parser.add_argument("--raw", action="store_true", help="Write the pre-labels without the corrections.")
    args = parser.parse_args()
    names = [path.name for path in png_files(FOLDER / "images")]
    images = torch.stack([torch.from_numpy(read_image(FOLDER / "images" / name, "RGB")).permute(2, 0, 1)
                          for name in names])
    labels = segment_parts(load_part_segmenter(args.segmenter), images)
    if not args.raw:
        for item, rule, what, region, _why in CORRECTIONS:
            apply(labels, item, rule, what, region)
    contents = {FOLDER / "labels" / name: label_png_bytes(labels[index].numpy()) for index, name in enumerate(names)}
    contents[FOLDER / "sheet.png"] = sheet_png_bytes(images.float() / 255, labels)
    write_files(contents)
    counts = torch.bincount(labels.flatten(), minlength=len(CLASSES)).tolist()
    print(f"wrote {len(names)} label files; pixels per class: "
          + ", ".join(f"{name} {count}" for name, count in zip(CLASSES, counts)))


if __name__ == "__main__":
    main()
