"""3D part accuracy of the inverse network's part branch (issue 20, section 3).

    python benchmarks/bm_parts3d.py [--cars 40] [--model oracle] [--part-branch oracle] [--figure ../docs/parts3d.png]

Test set: held-out world cars (seed 999, as ``bm_generalisation.py``; no training used it), each rendered from 7
cameras (``ganverse3d dataset world --views 7``). The first view is the input; the predicted mesh with its part
texture is rendered from the 6 others and compared with the world's true part renders there (background
included: a mesh that misses the car's outline loses there). Per-class IoU, mIoU over the 7 classes and over
the 6 parts.

Rows: the **part branch**, its texture read back **per face** of the mesh split 1-to-16 (the reconstruction's part
mesh: what the exported .glb and Blender's material slots get), and baselines on the same predicted meshes:
**one constant car** (every car gets the mean of the branch's part textures over the test inputs: the prior
without looking) and **all body** (the silhouette alone); and the **ceiling** the predicted meshes allow: per car,
the part texture fitted by gradient descent to the true parts of the very views it is scored on. Prints a table,
writes benchmarks/results/bm_parts3d.json, and with ``--figure`` a sheet: input | truth in 3 other views | the
branch there.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import torch
import torch.nn.functional as F

from common import machine, write_results

SEED, VIEWS, RESOLUTION = 999, 7, 64


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cars", type=int, default=40)
    parser.add_argument("--model", default="oracle", help="Inverse network: a shipped name or a bundle.")
    parser.add_argument("--part-branch", default="oracle", help="Part branch: a shipped name or a bundle.")
    parser.add_argument("--figure", default=None, help="Write the sheet PNG here.")
    args = parser.parse_args()

    from ganverse3d.bundle import load_module
    from ganverse3d.dataset.format import MultiViewDataset, cameras_from_batch
    from ganverse3d.dataset.world_multiview import write_world_multiview
    from ganverse3d.files import image_grid, save_png
    from ganverse3d.parts.branch import PartBranch, render_part_labels
    from ganverse3d.parts.interpreter import colourise
    from ganverse3d.parts.train_branch import load_inverse, novel_view_scores, read_part_data
    from ganverse3d import assets

    torch.set_grad_enabled(False)
    inverse, _ = load_inverse(args.model, "cpu")
    branch = load_module(assets.resolve("part_branch", args.part_branch, setting_name="part_branch"), PartBranch).eval()
    with tempfile.TemporaryDirectory() as folder:
        write_world_multiview(Path(folder) / "test", cars=args.cars, views=VIEWS, resolution=RESOLUTION, seed=SEED,
                              progress=False)
        data = read_part_data(MultiViewDataset(Path(folder) / "test"), inverse, progress=False)

    def branch_logits(indices):
        return branch(data.codes[indices], data.textures[indices])

    firsts = torch.tensor([int((data.contents == c).nonzero()[0]) for c in data.contents.unique()])
    mean_texture = branch_logits(firsts).softmax(dim=1).mean(dim=0)
    body = F.one_hot(torch.zeros(mean_texture.shape[1:], dtype=torch.int64), mean_texture.shape[0]).permute(2, 0, 1)

    ceiling = _fitted_to_the_truth(data, inverse)
    rows = {"part branch": novel_view_scores(data, inverse, branch_logits),
            "part branch, per split face (export)": novel_view_scores(data, inverse, branch_logits, per_face=True),
            "one constant car (mean part texture)": novel_view_scores(
                data, inverse, lambda indices: mean_texture.log().expand(len(indices), -1, -1, -1)),
            "all body (silhouette only)": novel_view_scores(
                data, inverse, lambda indices: body.float().expand(len(indices), -1, -1, -1)),
            "ceiling: a part texture fitted to the truth": novel_view_scores(
                data, inverse, lambda indices: ceiling[indices])}

    names = list(next(iter(rows.values()))["per_class"])
    print(f"{args.cars} held-out world cars (seed {SEED}) x {VIEWS - 1} new views, {RESOLUTION} px; IoU")
    print(f"{'':40s}" + "".join(f"{name[:9]:>10s}" for name in names) + f"{'mIoU':>8s}{'parts':>8s}")
    for label, scores in rows.items():
        cells = "".join(f"{'-' if v is None else f'{v:.3f}':>10s}" for v in scores["per_class"].values())
        print(f"{label:40s}{cells}{scores['miou']:8.3f}{scores['miou_parts']:8.3f}")
    write_results("bm_parts3d", {"machine": machine(), "cars": args.cars, "views": VIEWS - 1, "model": args.model,
                                 "part_branch": args.part_branch, "rows": rows})

    if args.figure:
        shown = firsts[:6]
        tiles = []
        for first in shown.tolist():
            siblings = (data.contents == data.contents[first]).nonzero().flatten()[1::2][:3]
            predicted = render_part_labels(data.verts[[first] * len(siblings)], inverse.faces, inverse.face_uvs,
                                           branch_logits(torch.tensor([first] * len(siblings))),
                                           cameras_from_batch(data.cameras[siblings]), RESOLUTION)
            tiles += [data.images[first], *colourise(data.labels[siblings].long() + 1), *colourise(predicted + 1)]
        save_png(args.figure, image_grid(torch.stack(tiles), columns=7))
        print(f"Wrote {args.figure}: input | truth in 3 new views | the part branch there.")


def _fitted_to_the_truth(data, inverse, steps: int = 150) -> torch.Tensor:
    """Per car, the part texture [P, Ht, 2 Ht] that best shows the true parts of its 6 new views on its predicted
    mesh (Adam on the cross-entropy of those very views): what any part texture can reach on that mesh, the
    ceiling its geometry sets. Returns logits [N, P, Ht, 2 Ht], indexed by each car's first image."""
    from ganverse3d.dataset.format import cameras_from_batch
    from ganverse3d.parts.branch import PART_NAMES, render_part_logits

    size = (inverse.texture_height, 2 * inverse.texture_height)
    fitted = torch.zeros(len(data.contents), len(PART_NAMES), *size)
    for content in data.contents.unique().tolist():
        indices = (data.contents == content).nonzero().flatten()
        first, others = int(indices[0]), indices[1:]
        logits = torch.zeros(1, len(PART_NAMES), *size, requires_grad=True)
        optimiser = torch.optim.Adam([logits], lr=0.1)
        truth = data.labels[others].long()
        with torch.enable_grad():
            for _ in range(steps):
                image, covered = render_part_logits(data.verts[[first] * len(others)], inverse.faces,
                                                    inverse.face_uvs, logits.expand(len(others), -1, -1, -1),
                                                    cameras_from_batch(data.cameras[others]), inverse.resolution)
                scored = covered & (truth >= 0)
                loss = F.cross_entropy(image.permute(0, 2, 3, 1)[scored], truth[scored])
                optimiser.zero_grad()
                loss.backward()
                optimiser.step()
        fitted[first] = logits.detach()[0]
    return fitted


if __name__ == "__main__":
    main()
