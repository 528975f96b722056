"""Write backend/ganverse3d/inverse/car_template.json: the inverse network's car-shaped template (its
``template="car"``), the DIB-R template sphere (642 vertices) shrink-wrapped onto the mean of 40 world cars.

Each vertex keeps its direction from the centre (so the sphere's UVs, faces and mirror symmetry carry over) and
moves to the mean distance at which 8 cars of each body type (``sample_car`` of seed 0, the i-th car of a type
drawn from its own generator; no test set uses seed 0) meet that ray, averaged with its mirror vertex and scaled
so the farthest vertex is at 1, like the sphere. Takes a few seconds; tests/inverse/test_model.py checks that
the committed file is what this script writes.

    python scripts/make_car_template.py
"""

from __future__ import annotations

import json

import numpy as np
import torch

from ganverse3d.geometry import template_sphere
from ganverse3d.geometry.mesh import shrink_wrap
from ganverse3d.inverse.model import CAR_TEMPLATE_PATH, mirror_permutation
from ganverse3d.world import BODY_TYPES, sample_car

CARS_PER_BODY_TYPE = 8


def car_template() -> list[list[float]]:
    sphere = template_sphere()
    reaches = []
    for type_index, body_type in enumerate(BODY_TYPES):
        for index in range(CARS_PER_BODY_TYPE):
            car = sample_car(np.random.default_rng((0, type_index, index)), body_type)
            reaches.append(shrink_wrap(sphere.verts, car.verts, car.faces))
    reach = torch.stack(reaches).mean(0)
    reach = (reach + reach[mirror_permutation(sphere.verts)]) / 2
    verts = sphere.verts.double() * (reach / reach.max())[:, None]
    return [[round(float(value), 6) for value in vertex] for vertex in verts]


def main():
    CAR_TEMPLATE_PATH.write_text(json.dumps({"verts": car_template()}, separators=(",", ":")) + "\n")
    print(f"Wrote {CAR_TEMPLATE_PATH}.")


if __name__ == "__main__":
    main()
