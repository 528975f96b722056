"""The new wheels' tyre and rim colours read from a photo (ganverse3d.geometry.wheels.photo_wheel_colours), on world
renders whose true colours and light are known."""

import dataclasses

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from ganverse3d.geometry import Camera
from ganverse3d.geometry import wheels as wheels_module
from ganverse3d.geometry.wheels import fit_wheels, linear_to_srgb, photo_wheel_colours, srgb_to_linear
from ganverse3d.world.scene import render_items

SEED, ITEM = 999, 0  # a sports car seen from its left side at 112 degrees, gold rims, in low evening light


@pytest.fixture(scope="module")
def photo():
    cars, scenes, render = render_items(SEED, [ITEM], 256)
    car = cars[0]
    return car, scenes[0], render, fit_wheels(car.verts, car.faces, car.part_labels)


def test_the_true_wheels_read_the_rim_and_tyre_in_the_photos_light(photo):
    car, scene, render, wheels = photo
    # The world shades albedo * (ambient * 0.85 + diffuse * max(0, n . sun)), n along the seen wheels' axle (+x,
    # the camera is on the car's left); rim spokes are 0.9 .. 1.05 times the rim colour, tyres 0.07.
    assert float(render.cameras.position()[0, 0]) > 0
    shade = scene.ambient * 0.85 + scene.diffuse * max(0.0, scene.sun_direction()[0])
    colours = photo_wheel_colours(wheels, render.cameras, render.images[0], render.masks[0])
    assert set(colours) == {"tyre", "rim"}
    # Within 4 of 255 in sRGB: the texture's noise and the tyre's bulging sidewall, whose normals are not the axle.
    rim, tyre = (linear_to_srgb(np.array(colours[material])) for material in ("rim", "tyre"))
    np.testing.assert_allclose(rim, 0.975 * shade * np.array(car.spec.rim), atol=4 / 255)
    np.testing.assert_allclose(tyre, np.full(3, 0.07 * shade), atol=4 / 255)
    assert colours["rim"][0] > 1.5 * colours["rim"][2], "gold: more red than blue"


def test_wheels_seen_edge_on_too_small_or_off_the_car_say_nothing(photo, monkeypatch):
    car, scene, render, wheels = photo
    image, mask = render.images[0], render.masks[0]
    front = Camera.create([0.0], [5.0], [float(render.cameras.distance[0])], [float(render.cameras.fov_y[0])])
    assert photo_wheel_colours(wheels, front, image, mask) == {}
    assert photo_wheel_colours(wheels, render.cameras, image, torch.zeros_like(mask)) == {}
    moved = [dataclasses.replace(wheel, centre=wheel.centre + np.array([0.0, 3.0, 0.0])) for wheel in wheels]
    assert photo_wheel_colours(moved, render.cameras, image, mask) == {}
    # The same photo at 32 px: a wheel's radius spans under 4 pixels, which the size gate alone refuses.
    small_image, small_mask = (F.avg_pool2d(tensor[None], 8)[0] for tensor in (image, mask))
    assert photo_wheel_colours(wheels, render.cameras, small_image, small_mask.round()) == {}
    monkeypatch.setattr(wheels_module, "MIN_RADIUS_PIXELS", 0.0)
    assert set(photo_wheel_colours(wheels, render.cameras, small_image, small_mask.round())) == {"tyre", "rim"}


def test_srgb_to_linear_matches_the_standard_and_inverts():
    np.testing.assert_allclose(srgb_to_linear(np.array([0.0, 0.04045, 0.5, 1.0, 1.2])),
                               [0.0, 0.04045 / 12.92, 0.21404114, 1.0, 1.0], rtol=1e-6)
    values = np.linspace(0, 1, 101)
    np.testing.assert_allclose(linear_to_srgb(srgb_to_linear(values)), values, atol=1e-9)
