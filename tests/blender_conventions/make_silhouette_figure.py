"""Write docs/blender_silhouette.png: for each case of test_silhouette_blender.py, our silhouette | Cycles' |
their xor (red where they differ), one row per case, non-square views padded onto a grey 256 x 256 tile.

    python tests/blender_conventions/make_silhouette_figure.py [OUT.png]
"""

import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import torch  # noqa: E402

from blender_scene import SILHOUETTE_CASES, comparison_image, iou, render_silhouette_pair  # noqa: E402
from ganverse3d.files import image_grid, save_png  # noqa: E402

TILE = 256


def padded(images):
    """[N, 3, H, W] -> [N, 3, TILE, TILE], centred on mid grey."""
    count, channels, height, width = images.shape
    out = torch.full((count, channels, TILE, TILE), 0.5)
    top, left = (TILE - height) // 2, (TILE - width) // 2
    out[:, :, top:top + height, left:left + width] = images
    return out


def main(out_path: Path) -> None:
    tiles = []
    with tempfile.TemporaryDirectory() as tmp:
        for case in SILHOUETTE_CASES:
            pair = render_silhouette_pair(case, Path(tmp))
            print(f"{case.name}: IoU {iou(pair.ours, pair.blender):.4f}, "
                  f"{int((pair.ours != pair.blender).sum())} pixels differ")
            tiles.append(padded(comparison_image(pair.ours, pair.blender)))
    save_png(out_path, image_grid(torch.cat(tiles), columns=3, padding=4, fill=1.0))
    print(f"wrote {out_path}")


if __name__ == "__main__":
    default = Path(__file__).resolve().parents[2] / "docs" / "blender_silhouette.png"
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else default)
