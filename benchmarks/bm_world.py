"""World rendering speed: images per second at 128 x 128, batched, without gradients (target >= 100 on 2 cores).

    python benchmarks/bm_world.py [--repeat 5] [--resolution 128]

Cases, each over the dataset's batch size at that resolution (64 items at 128^2):

* render: :func:`render_world` on cars built beforehand (rasterise, shade, ray-cast backgrounds);
* sample + build + render: :func:`render_items`, everything an item needs short of the disk;
* dataset: ``ganverse3d world render`` minus start-up for two batches, i.e. the above plus the PNG and
  .glb writes (which overlap the next batch's rendering) and the contact sheet.

Prints a table and writes benchmarks/results/bm_world.json. The machine is shared: the median of the
repeats is reported next to the best.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
from pathlib import Path

from common import machine, timed, write_results

from ganverse3d.world import build_car, render_items, render_world, sample_item
from ganverse3d.world.dataset import batch_size_for, write_world_dataset


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--resolution", type=int, default=128)
    args = parser.parse_args()
    resolution = args.resolution
    batch = batch_size_for(resolution)

    items = [sample_item(0, index) for index in range(batch)]
    cars = [build_car(car_spec) for car_spec, _ in items]
    scenes = [scene for _, scene in items]
    scratch = Path(tempfile.mkdtemp(prefix="bm_world_"))
    runs = iter(range(10**6))

    def write_dataset():
        folder = scratch / f"run{next(runs)}"
        write_world_dataset(folder, 2 * batch, resolution, seed=0, progress=False)
        shutil.rmtree(folder)

    cases = (  # (name, step, images per step)
        ("render (cars built beforehand)", lambda: render_world(cars, scenes, resolution), batch),
        ("sample + build + render", lambda: render_items(0, range(batch), resolution), batch),
        ("dataset: + PNG / .glb writes, sheet", write_dataset, 2 * batch),
    )
    results = []
    try:
        for name, step, count in cases:
            times = timed(step, args.repeat)
            results.append({"case": name, "images": count, "median_s": statistics.median(times), "min_s": min(times),
                            "median_images_per_s": count / statistics.median(times),
                            "best_images_per_s": count / min(times)})
    finally:
        shutil.rmtree(scratch, ignore_errors=True)

    description = machine()
    faces = len(cars[0].faces)
    print(f"bm_world — {resolution}x{resolution}, batches of {batch}, {faces} faces per car, cpu ({description})")
    print(f"{'case':<40} {'median img/s':>13} {'best img/s':>11} {'median s':>9}")
    for row in results:
        print(f"{row['case']:<40} {row['median_images_per_s']:>13.1f} {row['best_images_per_s']:>11.1f} "
              f"{row['median_s']:>9.3f}")
    write_results("bm_world", {"machine": description, "resolution": resolution, "faces": faces, "results": results})


if __name__ == "__main__":
    main()
