"""Our cameras against Blender's: pure-math round trips, then a real bpy camera checked point by point.

Conventions pinned (docs/ARCHITECTURE.md): object space is Y up with the car's front at +Z; Blender is Z up and object
space maps to it as (x, y, z) -> (x, -z, y); a Blender camera (location, XYZ Euler rotation, lens, sensor and
sensor fit, render resolution) converts to our Camera and back exactly.
"""

import math
import random

import bpy  # noqa: F401  (imported first: it puts bpy_extras and mathutils on the path)
import numpy as np
import pytest
import torch
from bpy_extras.object_utils import world_to_camera_view
from mathutils import Euler, Matrix, Vector

from blender_scene import add_camera, degrees_between, lumpy_car_mesh, read_camera, reset_blender
from ganverse3d.geometry import (BlenderCamera, Camera, blender_fov_y_deg, camera_from_blender, camera_to_blender,
                                 euler_xyz_to_matrix, matrix_to_euler_xyz, object_to_blender)

RESOLUTIONS = [(256, 256), (256, 192), (192, 256), (1920, 1080), (64, 300)]  # (width, height)


def wrapped_degrees(a, b):
    """Signed difference a - b folded into [-180, 180)."""
    return (a - b + 180.0) % 360.0 - 180.0


def random_cameras(count, seed):
    rng = random.Random(seed)
    for _ in range(count):
        yield dict(azimuth=rng.uniform(-400.0, 400.0), elevation=rng.uniform(-85.0, 85.0),
                   distance=rng.uniform(0.5, 8.0), fov_y=rng.uniform(5.0, 120.0),
                   resolution=rng.choice(RESOLUTIONS), scale=rng.choice([1.0, 0.01, 2.5, 100.0]))


# ---------------------------------------------------------------------------------------------------
# (a) Pure math
# ---------------------------------------------------------------------------------------------------

def test_camera_to_blender_and_back_recovers_azimuth_elevation_distance_and_fov():
    for params in random_cameras(500, seed=3):
        settings = camera_to_blender(params["azimuth"], params["elevation"], params["distance"], params["fov_y"],
                                     resolution=params["resolution"], scale=params["scale"])
        assert settings.resolution == params["resolution"]
        camera, off_axis_deg = camera_from_blender(settings, scale=params["scale"])
        assert abs(wrapped_degrees(float(camera.azimuth), params["azimuth"])) < 1e-7, params
        assert float(camera.elevation) == pytest.approx(params["elevation"], abs=1e-7), params
        assert float(camera.distance) == pytest.approx(params["distance"], rel=1e-12), params
        assert float(camera.fov_y) == pytest.approx(params["fov_y"], abs=1e-9), params
        assert off_axis_deg < 1e-5, params


def test_camera_to_blender_scales_the_location_and_nothing_else():
    base = camera_to_blender(40.0, 15.0, 3.0, 45.0, resolution=(256, 192))
    scaled = camera_to_blender(40.0, 15.0, 3.0, 45.0, resolution=(256, 192), scale=2.5)
    assert scaled.location == pytest.approx(tuple(2.5 * c for c in base.location), rel=1e-12)
    assert (scaled.rotation_euler, scaled.lens, scaled.sensor_width, scaled.sensor_height, scaled.sensor_fit) == \
        (base.rotation_euler, base.lens, base.sensor_width, base.sensor_height, base.sensor_fit)


def test_camera_from_blender_reports_how_far_a_free_camera_looks_off_the_origin():
    settings = camera_to_blender(20.0, 10.0, 3.0, 40.0)
    matrix = np.array(euler_xyz_to_matrix(settings.rotation_euler))
    # Turn the camera 7 degrees about its own up axis (local Y): its view axis now misses the origin by 7 degrees.
    turn = math.radians(7.0)
    local_yaw = np.array([[math.cos(turn), 0, math.sin(turn)], [0, 1, 0], [-math.sin(turn), 0, math.cos(turn)]])
    turned = BlenderCamera(settings.location, matrix_to_euler_xyz((matrix @ local_yaw).tolist()), settings.lens,
                           settings.sensor_width, settings.sensor_height, settings.sensor_fit, settings.resolution)
    _, off_axis_deg = camera_from_blender(turned)
    assert off_axis_deg == pytest.approx(7.0, abs=1e-9)


def test_euler_xyz_round_trips_through_the_matrix():
    rng = random.Random(5)
    for _ in range(500):
        euler = (rng.uniform(-math.pi, math.pi), rng.uniform(-math.pi / 2 + 1e-3, math.pi / 2 - 1e-3),
                 rng.uniform(-math.pi, math.pi))
        matrix = np.array(euler_xyz_to_matrix(euler))
        assert matrix @ matrix.T == pytest.approx(np.eye(3), abs=1e-12)
        assert np.linalg.det(matrix) == pytest.approx(1.0, abs=1e-12)
        assert matrix_to_euler_xyz(matrix.tolist()) == pytest.approx(euler, abs=1e-9)


def test_matrix_round_trips_through_euler_xyz_including_gimbal_lock():
    rng = np.random.default_rng(6)
    matrices = []
    for _ in range(300):
        q, r = np.linalg.qr(rng.normal(size=(3, 3)))
        q = q * np.sign(np.diag(r))
        matrices.append(q if np.linalg.det(q) > 0 else -q)
    # ry = +-90 degrees: rx and rz share one degree of freedom.
    matrices += [np.array(euler_xyz_to_matrix((rx, sign * math.pi / 2, rz)))
                 for rx, rz in [(0.3, -1.1), (2.0, 0.5), (-2.9, 3.0)] for sign in (1, -1)]
    for matrix in matrices:
        assert np.array(euler_xyz_to_matrix(matrix_to_euler_xyz(matrix.tolist()))) == pytest.approx(matrix, abs=1e-9)


# Hand-derived: lens 50 mm, sensor 36 x 24 mm.
#   HORIZONTAL: tan(fov_x / 2) = 18 / 50 over the width, so tan(fov_y / 2) = 0.36 * H / W.
#   VERTICAL:   tan(fov_y / 2) = 12 / 50 over the height, whatever the resolution.
#   AUTO:       sensor_width (36) spans the larger image axis; sensor_height is ignored.
# 1920 x 1080: 0.36 * 1080 / 1920 = 0.2025;  1080 x 1920: 0.36 * 1920 / 1080 = 0.64;  18 / 50 = 0.36;  12 / 50 = 0.24.
FOV_CASES = [
    ("HORIZONTAL", (1920, 1080), 22.895193),   # 2 atan(0.2025)
    ("HORIZONTAL", (1080, 1920), 65.238486),   # 2 atan(0.64)
    ("VERTICAL", (1920, 1080), 26.991467),     # 2 atan(0.24)
    ("VERTICAL", (1080, 1920), 26.991467),     # 2 atan(0.24)
    ("AUTO", (1920, 1080), 22.895193),         # landscape: width is larger -> as HORIZONTAL
    ("AUTO", (1080, 1920), 39.597752),         # portrait: 36 mm spans the height -> 2 atan(0.36)
    ("AUTO", (500, 500), 39.597752),           # square: 36 mm spans both
]


@pytest.mark.parametrize("sensor_fit, resolution, expected_fov_y", FOV_CASES)
def test_blender_fov_y_matches_hand_derived_values(sensor_fit, resolution, expected_fov_y):
    assert blender_fov_y_deg(50.0, 36.0, 24.0, sensor_fit, resolution) == pytest.approx(expected_fov_y, abs=1e-5)


def test_blender_fov_y_rejects_an_unknown_sensor_fit():
    with pytest.raises(ValueError):
        blender_fov_y_deg(50.0, 36.0, 24.0, "DIAGONAL", (256, 256))


# ---------------------------------------------------------------------------------------------------
# (b) Against a real bpy camera
# ---------------------------------------------------------------------------------------------------

def blender_pixels(scene, camera_object, points_object, scale=1.0):
    """Object-space points [N, 3] -> Blender's view as (column, row) pixels with row 0 at the top, and depth.

    world_to_camera_view gives normalised frame coordinates with (0, 0) the bottom-left and (1, 1) the top-right
    corner of the frame, and the distance in front of the camera along its view axis as z."""
    width, height = scene.render.resolution_x, scene.render.resolution_y
    out = []
    for point in points_object.tolist():
        ndc = world_to_camera_view(scene, camera_object, Vector([scale * c for c in object_to_blender(point)]))
        out.append((ndc.x * width, (1.0 - ndc.y) * height, ndc.z))
    out = np.array(out)
    return out[:, :2], out[:, 2]


def sample_points(seed=0, count=200):
    """Random points in the unit ball plus the test mesh's vertices, object space [N, 3] float64."""
    generator = torch.Generator().manual_seed(seed)
    directions = torch.nn.functional.normalize(torch.randn(count, 3, generator=generator, dtype=torch.float64), dim=-1)
    ball = directions * torch.rand(count, 1, generator=generator, dtype=torch.float64) ** (1 / 3)
    return torch.cat((ball, lumpy_car_mesh()[0][::7]))


# Blender stores the camera and projects in float32 (mathutils); that alone leaves up to ~1e-4 px of noise here
# (measured max 1.0e-4 px). Any convention error (an axis, the sensor fit, the row direction, half a pixel) is
# orders of magnitude larger.
PIXEL_TOLERANCE = 2e-4
VIEWS = [dict(azimuth=30.0, elevation=20.0, distance=2.6), dict(azimuth=-135.0, elevation=-25.0, distance=3.5),
         dict(azimuth=90.0, elevation=60.0, distance=2.2)]


@pytest.mark.parametrize("resolution", [(256, 256), (320, 200), (200, 320)], ids=lambda r: f"{r[0]}x{r[1]}")
@pytest.mark.parametrize("scale", [1.0, 2.5])
def test_our_camera_converted_to_blender_projects_points_to_the_same_pixels(resolution, scale):
    points = sample_points()
    for view in VIEWS:
        scene = reset_blender()
        settings = camera_to_blender(view["azimuth"], view["elevation"], view["distance"], 38.0,
                                     resolution=resolution, scale=scale)
        camera_object = add_camera(scene, settings)
        theirs, their_depth = blender_pixels(scene, camera_object, points, scale)
        camera = Camera.create(view["azimuth"], view["elevation"], view["distance"], 38.0, dtype=torch.float64)
        ours = camera.project_to_pixels(points[None], (resolution[1], resolution[0]))[0].numpy()
        _, our_depth = camera.transform(points[None])
        assert np.abs(ours - theirs).max() < PIXEL_TOLERANCE, (view, np.abs(ours - theirs).max())
        assert their_depth == pytest.approx(scale * our_depth[0].numpy(), abs=1e-5)


@pytest.mark.parametrize("sensor_fit", ["AUTO", "HORIZONTAL", "VERTICAL"])
@pytest.mark.parametrize("resolution", [(256, 256), (320, 200), (200, 320)], ids=lambda r: f"{r[0]}x{r[1]}")
def test_blender_camera_with_any_sensor_fit_converts_to_ours_and_projects_points_to_the_same_pixels(
        sensor_fit, resolution):
    # A Blender-side camera: its own lens and a non-square sensor (so using the wrong sensor side shows).
    points = sample_points(seed=1)
    for view, lens in zip(VIEWS, (35.0, 50.0, 24.0)):
        scene = reset_blender()
        placed = camera_to_blender(view["azimuth"], view["elevation"], view["distance"], 40.0, resolution=resolution)
        settings = BlenderCamera(placed.location, placed.rotation_euler, lens, 36.0, 20.0, sensor_fit, resolution)
        camera_object = add_camera(scene, settings)
        camera, off_axis_deg = camera_from_blender(read_camera(scene, camera_object))
        assert off_axis_deg < 1e-3
        theirs, _ = blender_pixels(scene, camera_object, points)
        ours = camera.project_to_pixels(points[None], (resolution[1], resolution[0]))[0].numpy()
        assert np.abs(ours - theirs).max() < PIXEL_TOLERANCE, (view, lens, np.abs(ours - theirs).max())


@pytest.mark.parametrize("from_matrix_world", [False, True], ids=["channels", "matrix_world"])
def test_bpy_camera_read_back_gives_the_same_camera(from_matrix_world):
    for params in random_cameras(40, seed=11):
        scene = reset_blender()
        settings = camera_to_blender(params["azimuth"], params["elevation"], params["distance"], params["fov_y"],
                                     resolution=params["resolution"], scale=params["scale"])
        camera_object = add_camera(scene, settings)
        read = read_camera(scene, camera_object, from_matrix_world=from_matrix_world)
        assert (read.sensor_fit, read.resolution) == (settings.sensor_fit, settings.resolution)
        camera, off_axis_deg = camera_from_blender(read, scale=params["scale"])
        assert abs(wrapped_degrees(float(camera.azimuth), params["azimuth"])) < 1e-4, params
        assert float(camera.elevation) == pytest.approx(params["elevation"], abs=1e-4), params
        assert float(camera.distance) == pytest.approx(params["distance"], rel=1e-6), params
        assert float(camera.fov_y) == pytest.approx(params["fov_y"], abs=1e-4), params
        assert off_axis_deg < 1e-3, params


def test_resolution_percentage_is_part_of_the_render_resolution():
    scene = reset_blender()
    camera_object = add_camera(scene, BlenderCamera((0.0, -3.0, 0.0), (math.pi / 2, 0.0, 0.0), 50.0, 36.0, 24.0,
                                                    "HORIZONTAL", (1920, 1080)))
    scene.render.resolution_percentage = 50
    read = read_camera(scene, camera_object)
    assert read.resolution == (960, 540)
    assert blender_fov_y_deg(read.lens, read.sensor_width, read.sensor_height, read.sensor_fit, read.resolution) == \
        pytest.approx(22.895193, abs=1e-5)


def test_euler_xyz_matches_blender_mathutils():
    rng = random.Random(9)
    for _ in range(200):
        euler = (rng.uniform(-math.pi, math.pi), rng.uniform(-math.pi / 2, math.pi / 2), rng.uniform(-math.pi, math.pi))
        theirs = np.array(Euler(euler, "XYZ").to_matrix())
        assert np.array(euler_xyz_to_matrix(euler)) == pytest.approx(theirs, abs=1e-6)
        back = Matrix(euler_xyz_to_matrix(euler)).to_euler("XYZ")
        assert np.array(euler_xyz_to_matrix(tuple(back))) == pytest.approx(theirs, abs=1e-6)


def test_blender_camera_looks_at_the_origin_and_azimuth_0_sits_on_blenders_minus_y():
    # The car's front (+Z in object space) faces Blender's -Y, so the camera that sees the front is on -Y.
    assert object_to_blender((0.0, 0.0, 1.0)) == (0.0, -1.0, 0.0)
    assert object_to_blender((0.0, 1.0, 0.0)) == (0.0, 0.0, 1.0)
    expected_direction = {0.0: (0.0, -1.0), 90.0: (1.0, 0.0), 180.0: (0.0, 1.0), 270.0: (-1.0, 0.0)}
    for azimuth, (x, y) in expected_direction.items():
        for elevation in (0.0, 25.0, -40.0):
            scene = reset_blender()
            distance = 3.0
            camera_object = add_camera(scene, camera_to_blender(azimuth, elevation, distance, 40.0))
            location = np.array(camera_object.matrix_world.translation)
            horizontal = distance * math.cos(math.radians(elevation))
            expected = (horizontal * x, horizontal * y, distance * math.sin(math.radians(elevation)))
            assert location == pytest.approx(expected, abs=1e-5)
            view_direction = camera_object.matrix_world.to_3x3() @ Vector((0.0, 0.0, -1.0))
            assert degrees_between(view_direction, -location) < 1e-3
            up = camera_object.matrix_world.to_3x3() @ Vector((0.0, 1.0, 0.0))
            assert up.z > 0  # no roll: the image's up leans toward Blender's +Z
            assert abs(camera_object.matrix_world.to_3x3() @ Vector((1.0, 0.0, 0.0)) @ Vector((0, 0, 1))) < 1e-6

    # Seen from the front (azimuth 0), the car's +X side is on the image's right and its top at the image's top.
    scene = reset_blender()
    camera_object = add_camera(scene, camera_to_blender(0.0, 0.0, 3.0, 40.0))
    right = world_to_camera_view(scene, camera_object, Vector(object_to_blender((0.5, 0.0, 0.0))))
    top = world_to_camera_view(scene, camera_object, Vector(object_to_blender((0.0, 0.5, 0.0))))
    assert right.x > 0.6 and abs(right.y - 0.5) < 1e-6
    assert top.y > 0.6 and abs(top.x - 0.5) < 1e-6
