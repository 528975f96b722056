"""DatasetGAN's part labels measured against ground truth (issue 20, section 2).

    python benchmarks/bm_parts.py --test out/parts/world-s42-r64 \\
        --row "(i) DatasetGAN, filtered=out/parts/seg_datasetgan.safetensors" \\
        --row "(i') DatasetGAN, unfiltered=out/parts/seg_datasetgan_all.safetensors" \\
        --row "(ii) transfer, 16 labels=out/parts/seg_transfer.safetensors" \\
        --row "(iii) supervised, 2,700 renders=out/parts/seg_world.safetensors" \\
        [--figure docs/parts_benchmark.png]

Test set: world renders of a seed no training set uses (``ganverse3d world render --seed 42``), with their true
part labels (background and the six parts). Every row is a part segmenter bundle (``ganverse3d parts
train-segmenter``) labelling the renders; scores are pooled over all pixels of all images
(``parts.segmenter.part_scores``): IoU per class, mIoU over the 7 classes (background included) and over the 6
parts. A trivial row shows what the metric gives for free: every pixel of the TRUE car mask labelled body,
everything else background (a segmenter that finds the car but no part). Prints a table, writes
benchmarks/results/bm_parts.json, and with ``--figure`` a sheet: image | truth | one column per row.
"""

from __future__ import annotations

import argparse
import time

import torch

from common import machine, write_results


def body_given_true_mask(truth: torch.Tensor) -> torch.Tensor:
    """The trivial labelling: truth [N, H, W] class indices -> every car pixel (class > 0) body (1), else 0."""
    return (truth > 0).long()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--test", required=True, help="World dataset with parts/ (the held-out seed).")
    parser.add_argument("--row", action="append", default=[], metavar="NAME=BUNDLE",
                        help="A part segmenter to score, with its row name (repeat).")
    parser.add_argument("--figure", default=None, help="Write the sheet PNG here.")
    parser.add_argument("--figure-items", type=int, default=10, help="Test images in the sheet.")
    args = parser.parse_args()

    from ganverse3d.files import image_grid, save_png
    from ganverse3d.parts.interpreter import CLASSES, colourise
    from ganverse3d.parts.segmenter import load_part_images, load_part_segmenter, part_scores, segment_parts

    torch.set_grad_enabled(False)
    images, truth = load_part_images(args.test)
    rows, predictions = {}, {}
    for spec in args.row:
        name, path = spec.rsplit("=", 1)
        start = time.perf_counter()
        predictions[name] = segment_parts(load_part_segmenter(path), images)
        rows[name] = {**part_scores(predictions[name], truth), "bundle": path,
                      "seconds": round(time.perf_counter() - start, 2)}
    trivial = "every car pixel body (true mask)"
    rows[trivial] = part_scores(body_given_true_mask(truth), truth)

    def percent(value):
        return "   -" if value is None else f"{100 * value:5.1f}"

    header = f"{'row':<40} {'mIoU':>6} {'parts':>6} " + " ".join(f"{name[:8]:>8}" for name in CLASSES)
    print(f"{len(truth)} test images of {args.test}")
    print(header)
    for name, scores in rows.items():
        print(f"{name:<40} {percent(scores['miou']):>6} {percent(scores['miou_parts']):>6} "
              + " ".join(f"{percent(scores['per_class'][c]):>8}" for c in CLASSES))
    out = write_results("bm_parts", {"machine": machine(), "test": args.test, "count": len(truth),
                                     "classes": list(CLASSES), "rows": rows})
    print(f"wrote {out}")
    if args.figure:
        shown = slice(0, args.figure_items)
        columns = [images[shown].float() / 255, colourise(truth[shown])]
        columns += [colourise(prediction[shown]) for prediction in predictions.values()]
        save_png(args.figure, image_grid(torch.stack(columns, dim=1).flatten(0, 1), columns=len(columns)))
        print(f"wrote {args.figure}: image | truth | " + " | ".join(predictions))


if __name__ == "__main__":
    main()
