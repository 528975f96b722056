"""Wheel fitting (ganverse3d.geometry.wheels.fit_wheels) against the world's true wheels: hub error (cm) and
radius error (%) over N world cars of each body type (seeds 0..N-1), for three labellings of each car:

* ``true``: the world mesh with its true part labels;
* ``30 % dropped``: the same with a random 30 % of its wheel faces relabelled body (seed 100 + car);
* ``template``: the inverse network's kind of mesh, the 642-vertex template sphere shrink-wrapped onto the car,
  each face labelled as the car's nearest face (tests/geometry/test_wheels.py ``wrapped_template``).

    python benchmarks/bm_wheels.py [--cars 20]

Hub errors are Euclidean distances in metres (object units / params["scale"]) over all four wheels; radius
errors are relative to the spec's wheel_radius. Prints a table and writes benchmarks/results/bm_wheels.json.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

from common import machine, write_results

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "geometry"))
from test_wheels import true_hubs, world_car, wrapped_template  # noqa: E402  (the tests' ground truth)

from ganverse3d.geometry.wheels import BODY_LABEL, WHEEL_LABEL, fit_wheels  # noqa: E402
from ganverse3d.world.cars import BODY_TYPES  # noqa: E402

LABELLINGS = ("true", "30 % dropped", "template")


def labelling(car, name: str, seed: int):
    if name == "true":
        return car.verts, car.faces, car.part_labels
    if name == "30 % dropped":
        labels = car.part_labels.clone()
        dropped = torch.from_numpy(np.random.default_rng(100 + seed).random(len(labels)) < 0.3)
        labels[dropped & (labels == WHEEL_LABEL)] = BODY_LABEL
        return car.verts, car.faces, labels
    return wrapped_template(car)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cars", type=int, default=20, help="cars per body type")
    args = parser.parse_args()

    rows = []
    print(f"{'body type':10} {'labels':13} {'hub mean cm':>11} {'hub max cm':>10} {'radius mean %':>13} "
          f"{'radius max |%|':>14} {'not fitted':>10}")
    for body_type in BODY_TYPES:
        for name in LABELLINGS:
            hub_cm, radius_pct, not_fitted = [], [], 0
            for seed in range(args.cars):
                car = world_car(body_type, seed)
                hubs, scale = true_hubs(car), car.params["scale"]
                for wheel in fit_wheels(*labelling(car, name, seed)):
                    hub_cm.append(np.linalg.norm(wheel.centre - hubs[wheel.front, wheel.left]) / scale * 100)
                    radius_pct.append((wheel.radius / (car.params["wheel_radius"] * scale) - 1) * 100)
                    not_fitted += wheel.source != "fitted"
            row = dict(body_type=body_type, labels=name, cars=args.cars, hub_mean_cm=float(np.mean(hub_cm)),
                       hub_max_cm=float(np.max(hub_cm)), radius_mean_pct=float(np.mean(radius_pct)),
                       radius_max_abs_pct=float(np.max(np.abs(radius_pct))), wheels_not_fitted=not_fitted)
            rows.append(row)
            print(f"{body_type:10} {name:13} {row['hub_mean_cm']:11.2f} {row['hub_max_cm']:10.2f} "
                  f"{row['radius_mean_pct']:13.1f} {row['radius_max_abs_pct']:14.1f} {not_fitted:10d}")
    out = write_results("bm_wheels", {"machine": machine(), "rows": rows})
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
