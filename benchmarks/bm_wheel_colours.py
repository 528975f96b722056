"""The new wheels' tyre and rim colours read from the photo (``geometry.wheels.photo_wheel_colours``) against the
world's true colours, over held-out world cars (seed 999, as ``bm_parts3d.py``; no training used it).

    python benchmarks/bm_wheel_colours.py [--cars 40] [--resolution 256]

Each car is rendered in its own scene (camera, light, background) at ``--resolution`` px and reconstructed from
that photo and its true mask on the embedded default (``api.reconstruct``, quality fast); the colours are read at
the wheels fitted to the reconstruction's part mesh, as ``reconstruct -o car.glb`` and the Blender import do.
Errors are mean absolute differences in sRGB, 0-255, against two truths:

* **lit**: the rim's and the tyre's colour in the scene's light on the wheel's outer side (the world's albedo, the
  spec's rim colour times the rim texture's mean metal level 0.975 or the tyre's 0.07, times the world's shading
  for a normal along the axle: ambient * 0.85 + diffuse * max(0, n . sun)). The body's texture is the photo, so
  it carries this light too: a wheel tinted on the same footing matches the body around it;
* **albedo**: the spec's colours themselves, which no row can reach without removing the light.

Rows:

* **read from the photo** (what ships), on the cars where some wheel is seen well enough (the others keep the
  default look; a last row counts every car so);
* **the same at the true wheels**: the true car's wheels and camera, so what is left is the light and the read;
* **default look**: the fixed rubber and metal (``export._PART_LOOKS``);
* **one constant**: the mean truth over those cars (the best a constant can do; the world's tyres are all one
  colour, so for tyres it is the truth up to the light).

Prints a table and writes benchmarks/results/bm_wheel_colours.json.
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

from common import machine, write_results

SEED = 999
TRUE_TYRE = 0.07
RIM_METAL = 0.975  # world.cars._rim_layout: spokes at 0.9 + 0.15 (1 - v), v across the disk


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cars", type=int, default=40)
    parser.add_argument("--resolution", type=int, default=256)
    args = parser.parse_args()

    from ganverse3d import api
    from ganverse3d.export import _PART_LOOKS, part_aware_car
    from ganverse3d.geometry.wheels import fit_wheels, linear_to_srgb, photo_wheel_colours
    from ganverse3d.world.scene import render_items

    torch.set_grad_enabled(False)
    bands = ("tyre", "rim")
    defaults = {band: linear_to_srgb(np.array(_PART_LOOKS[band]["baseColorFactor"][:3])) for band in bands}
    truths, estimates = {"lit": [], "albedo": []}, {"read from the photo": [], "the same at the true wheels": []}
    for index in range(args.cars):
        cars, scenes, render = render_items(SEED, [index], args.resolution)
        car, scene = cars[0], scenes[0]
        side = np.sign(float(render.cameras.position()[0, 0]))  # the side whose wheels face the camera
        shade = scene.ambient * 0.85 + scene.diffuse * max(0.0, side * scene.sun_direction()[0])
        albedo = {"tyre": np.full(3, TRUE_TYRE), "rim": RIM_METAL * np.array(car.spec.rim)}
        truths["albedo"].append(albedo)
        truths["lit"].append({band: shade * colour for band, colour in albedo.items()})
        reconstruction = api.reconstruct(render.images[0], mask=render.masks[0], quality="fast")
        wheels = [car_wheel.wheel for car_wheel in part_aware_car(reconstruction.part_mesh).wheels]
        for row, colours in (("read from the photo", photo_wheel_colours(
                wheels, reconstruction.camera, reconstruction.image, reconstruction.mask)),
                ("the same at the true wheels", photo_wheel_colours(
                    fit_wheels(car.verts, car.faces, car.part_labels), render.cameras, render.images[0],
                    render.masks[0]))):
            estimates[row].append({band: linear_to_srgb(np.array(colours[band])) for band in colours})

    seen = sum(bool(colours) for colours in estimates["read from the photo"])
    print(f"{args.cars} held-out world cars (seed {SEED}), {args.resolution} px photos; wheels seen on {seen}; "
          "mean |error| in sRGB 0-255")
    results = {"cars": args.cars, "resolution": args.resolution, "seen": seen, "rows": {}}
    seen_cars = [index for index, colours in enumerate(estimates["read from the photo"]) if colours]
    for truth_name, truth in truths.items():
        mean_truth = {band: np.mean([truth[index][band] for index in seen_cars], axis=0) for band in bands}
        rows = {"read from the photo": estimates["read from the photo"],
                "the same at the true wheels": estimates["the same at the true wheels"],
                "default look": [defaults] * args.cars,
                "one constant (the mean truth)": [mean_truth] * args.cars}
        print(f"truth: {truth_name}, the {seen} cars with a wheel seen\n{'':50s}{'tyre':>8s}{'rim':>8s}")
        for row, colours in rows.items():
            means = {band: float(np.mean([np.abs(255 * (colours[index][band] - truth[index][band])).mean()
                                          for index in seen_cars if band in colours[index]])) for band in bands}
            results["rows"][f"{truth_name}: {row}"] = means
            print(f"{row:50s}" + "".join(f"{means[band]:8.1f}" for band in bands))
        every = {band: float(np.mean([np.abs(255 * (estimate.get(band, defaults[band]) - car_truth[band])).mean()
                                      for estimate, car_truth in zip(estimates["read from the photo"], truth)]))
                 for band in bands}
        results["rows"][f"{truth_name}: every car, the default look where no wheel is seen"] = every
        print(f"{'every car, the default look where none is seen':50s}"
              + "".join(f"{every[band]:8.1f}" for band in bands))
    write_results("bm_wheel_colours", {"machine": machine(), **results})


if __name__ == "__main__":
    main()
