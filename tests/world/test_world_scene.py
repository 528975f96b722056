"""World scenes: camera distribution, batch independence, masks / part maps, and the background's horizon."""

import math

import numpy as np
import pytest
import torch

from ganverse3d.geometry import Camera
from ganverse3d.world import PART_LABELS, build_car, render_items, render_world, sample_item
from ganverse3d.world.cars import WHEEL, WINDOW
from ganverse3d.world.scene import CAMERA_DISTANCE, CAMERA_FOV_Y, render_backgrounds

RESOLUTION = 48


def test_camera_distribution_matches_the_documented_one():
    scenes = [sample_item(3, index)[1] for index in range(300)]
    azimuth = np.array([s.azimuth for s in scenes])
    elevation = np.array([s.elevation for s in scenes])
    distance = np.array([s.distance for s in scenes])
    assert ((0 <= azimuth) & (azimuth < 360)).all() and azimuth.min() < 30 and azimuth.max() > 330
    assert ((0 <= elevation) & (elevation <= 30)).all() and elevation.min() < 3 and elevation.max() > 27
    assert ((0.95 * CAMERA_DISTANCE <= distance) & (distance <= 1.05 * CAMERA_DISTANCE)).all()
    assert {s.fov_y for s in scenes} == {CAMERA_FOV_Y}
    # Every body type occurs.
    assert len({sample_item(3, index)[0].body_type for index in range(60)}) == 5


def test_items_depend_on_seed_and_index_only_not_on_their_batch():
    _, _, together = render_items(5, [0, 1, 2, 3], RESOLUTION)
    _, _, alone = render_items(5, [2], RESOLUTION)
    assert torch.equal(together.images[2], alone.images[0])
    assert torch.equal(together.part_maps[2], alone.part_maps[0])
    _, _, other_seed = render_items(6, [2], RESOLUTION)
    assert not torch.equal(other_seed.images[0], alone.images[0])


def test_render_outputs_agree_with_each_other():
    cars, scenes, out = render_items(0, range(6), RESOLUTION)
    assert out.images.shape == (6, 3, RESOLUTION, RESOLUTION) and out.images.dtype == torch.float32
    assert 0 <= out.images.min() and out.images.max() <= 1
    assert set(out.masks.unique().tolist()) <= {0.0, 1.0}
    assert torch.equal(out.part_maps >= 0, out.masks[:, 0] > 0)
    assert out.part_maps.max() < len(PART_LABELS)
    # The car covers a fair share of the frame, never all of it.
    coverage = out.masks.mean((1, 2, 3))
    assert (coverage > 0.05).all() and (coverage < 0.7).all()
    assert torch.allclose(out.cameras.azimuth, torch.tensor([s.azimuth for s in scenes]))


def test_side_view_shows_wheels_below_windows():
    car_spec, scene = sample_item(0, 0)
    car = build_car(car_spec)
    side = scene.__class__(**{**scene.__dict__, "azimuth": 90.0, "elevation": 5.0})
    out = render_world([car], [side], 96)
    rows = torch.arange(96)[:, None].expand(96, 96)
    parts = out.part_maps[0]
    assert (parts == WHEEL).sum() > 20 and (parts == WINDOW).sum() > 20
    assert rows[parts == WHEEL].float().mean() > rows[parts == WINDOW].float().mean() + 10


@pytest.mark.parametrize("elevation", [0.0, 10.0, 20.0])
def test_the_horizon_follows_the_camera_elevation(elevation):
    """Blue clear sky above the horizon, green grass below it, the horizon where the camera puts it (at
    elevation 20 degrees, above the top of a 30-degree frame)."""
    car_spec, scene = sample_item(1, 4)
    car = build_car(car_spec)
    scene = scene.__class__(**{**scene.__dict__, "elevation": elevation, "sky": "clear", "ground": "grass",
                               "cloud_cover": 0.0, "scenery_height": 0.0})
    height = 64
    camera = Camera.create(scene.azimuth, elevation, scene.distance, scene.fov_y)
    background = render_backgrounds([car], [scene], camera, (height, height))[0]
    # Angle above the horizon of the ray through each row's centre (the camera looks at the origin).
    row_ndc = (height - 2 * torch.arange(height) - 1) / height
    ray_angle = torch.rad2deg(torch.atan(row_ndc * math.tan(math.radians(scene.fov_y / 2)))) - elevation
    green_minus_blue = (background[1] - background[2]).mean(1)                     # per row
    sky_rows, ground_rows = ray_angle > 2.5, ray_angle < -2.5
    assert (green_minus_blue[sky_rows] < 0).all()
    assert (green_minus_blue[ground_rows] > 0).all()
    assert sky_rows.any() == (elevation < scene.fov_y / 2)
