"""The Neural Preview with the bpy module: the camera it sends is exact for a moved, rotated and scaled car, a
moved camera brings a new image, a stale reply is dropped, a dead worker stops it with one sentence, swaps go
through the worker, and the toggle leaves no timer or draw handler behind. The bpy module runs no event loop,
so the tests call the preview's timer step themselves; fake workers (fake_worker.py, behaviour ``car``) answer
at once, and one test runs the real worker with a tiny StyleGAN-R."""

import math
import os
import sys
import time
from pathlib import Path

import bpy
import addon_utils  # Blender's own module: importable once bpy is
import pytest
from mathutils import Euler, Matrix

from ganverse3d import worker as worker_module
from ganverse3d.geometry import BlenderCamera, camera_from_blender, camera_to_blender
from ganverse3d_blender import preview, session

import fake_worker

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "neural"))
from neural_helpers import save_tiny_stylegan_r  # noqa: E402

ADDON = "ganverse3d_blender"
PHOTO = Path(__file__).resolve().parents[2] / "docs" / "example_car.png"


@pytest.fixture(autouse=True)
def addon():
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    addon_utils.enable(ADDON, default_set=True, handle_error=None)
    bpy.data.batch_remove([*bpy.data.objects, *bpy.data.meshes, *bpy.data.cameras, *bpy.data.images])
    settings = bpy.context.scene.ganverse3d.preview
    for name in ("car", "background", "background_photo", "swap_with", "swap_shape", "swap_texture",
                 "swap_background"):
        settings.property_unset(name)
    yield
    addon_utils.disable(ADDON, default_set=True, handle_error=None)


def preferences():
    return bpy.context.preferences.addons[ADDON].preferences


def add_car(name: str, reconstruction: str, matrix=None) -> bpy.types.Object:
    mesh = bpy.data.meshes.new(name)
    mesh.from_pydata([(0, 0, 0), (1, 0, 0), (0, 1, 0)], [], [(0, 1, 2)])
    car = bpy.data.objects.new(name, mesh)
    bpy.context.scene.collection.objects.link(car)
    car[preview.RECONSTRUCTION_PROPERTY] = reconstruction
    if matrix is not None:
        car.matrix_world = matrix
    return car


def add_camera(matrix, lens=50.0) -> bpy.types.Object:
    data = bpy.data.cameras.new("camera")
    data.lens, data.sensor_fit, data.sensor_width, data.sensor_height = lens, "VERTICAL", 36.0, 36.0
    camera = bpy.data.objects.new("camera", data)
    bpy.context.scene.collection.objects.link(camera)
    camera.matrix_world = matrix
    bpy.context.scene.camera = camera
    return camera


def camera_matrix(settings: BlenderCamera, lift: float = 0.0) -> Matrix:
    x, y, z = settings.location
    return Matrix.Translation((x, y, z + lift)) @ Euler(settings.rotation_euler, "XYZ").to_matrix().to_4x4()


def run_ticks(until, timeout=10.0):
    """Call the preview's timer step (as bpy.app.timers would) until ``until()`` or the preview ends."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if until():
            return
        preview_object = preview._preview
        if preview_object is None or preview_object.tick(bpy.context) is None:
            break
        time.sleep(0.01)
    assert until(), "the preview never got there"


def image_pixels(name):
    image = bpy.data.images.get(name)
    return None if image is None else list(image.pixels)


def use_fake(fake_python, behaviour="car"):
    python, starts = fake_python(behaviour)
    preferences().python = python
    return starts


def start_preview(car):
    settings = bpy.context.scene.ganverse3d.preview
    settings.car = car
    assert bpy.ops.ganverse3d.neural_preview() == {"FINISHED"}
    assert preview.running()


# ---------------------------------------------------------------------------------------------------
# The camera


CARS = {
    "as imported": Matrix.Identity(4),
    "moved, turned and scaled": Matrix.Translation((2.0, -3.0, 0.5)) @ Matrix.Rotation(1.1, 4, "Z") @ Matrix.Scale(1.7, 4),
    "tilted and scaled unevenly": (Matrix.Translation((-1.0, 0.5, 0.2)) @ Matrix.Rotation(0.3, 4, "X")
                                   @ Matrix.Diagonal((0.6, 1.3, 2.0, 1.0))),
}


@pytest.mark.parametrize("car_matrix", CARS)
def test_the_camera_sent_is_exactly_the_orbit_camera_for_a_moved_rotated_scaled_car(car_matrix):
    scale, lift = 0.87, 0.42
    azimuth, elevation, distance, fov_y = 33.0, 14.0, 3.6, 27.0
    settings = camera_to_blender(azimuth, elevation, distance, fov_y, resolution=(256, 256), scale=scale)
    car = add_car("car", "id", CARS[car_matrix])
    camera = add_camera(CARS[car_matrix] @ camera_matrix(settings, lift), lens=settings.lens)
    scene = bpy.context.scene
    scene.render.resolution_x = scene.render.resolution_y = 256
    bpy.context.view_layer.update()
    request = preview.camera_request(scene, camera, car)
    converted, off_axis = worker_module.blender_camera_in_car_frame(request, scale, lift)
    got = [float(getattr(converted, name)[0]) for name in worker_module.ORBIT_FIELDS]
    assert got == pytest.approx([azimuth, elevation, distance, fov_y], abs=1e-4)  # Blender stores float32
    # An unevenly scaled car shears the camera carried with it, which an object's loc / rot / scale cannot hold:
    # Blender keeps its location (so the orbit above is exact) but not its exact aim.
    assert off_axis < 1e-3 or car_matrix == "tilted and scaled unevenly"
    # And as the geometry module converts the same camera standing by an unmoved car.
    unmoved, _ = camera_from_blender(BlenderCamera(settings.location, settings.rotation_euler, settings.lens,
                                                   settings.sensor_width, settings.sensor_height, "VERTICAL",
                                                   (256, 256)), scale=scale)
    assert got == pytest.approx([float(getattr(unmoved, name)[0]) for name in worker_module.ORBIT_FIELDS], abs=1e-4)


# ---------------------------------------------------------------------------------------------------
# Requests and replies (fake worker)


def test_a_moved_camera_brings_a_new_image_named_for_the_car(fake_python):
    starts = use_fake(fake_python)
    car = add_car("car_a", "fake-1")
    camera = add_camera(Matrix.Translation((0.0, -6.0, 1.0)) @ Matrix.Rotation(math.radians(80), 4, "X"))
    start_preview(car)
    name = "car_a Neural Preview"
    run_ticks(lambda: bpy.data.images.get(name) is not None)
    first = image_pixels(name)
    assert len(first) == 8 * 8 * 4
    camera.matrix_world = Matrix.Rotation(0.5, 4, "Z") @ camera.matrix_world
    run_ticks(lambda: image_pixels(name) != first)
    renders = [request for request in fake_worker.received(starts) if request["op"] == "neural_render"]
    assert len(renders) == 2 and renders[0]["reconstruction"] == "fake-1" and renders[0]["background"] is None
    assert renders[1]["camera"]["matrix_world"] == [list(row) for row in camera.matrix_world]
    assert bpy.context.window_manager.ganverse3d.preview_status.startswith("Previewing car_a from azimuth")
    before = len(fake_worker.received(starts))
    for _ in range(5):  # nothing changed: nothing is sent
        preview._preview.tick(bpy.context)
        time.sleep(0.01)
    assert len(fake_worker.received(starts)) == before
    bpy.ops.ganverse3d.neural_preview()
    assert not preview.running()


def test_a_stale_reply_is_dropped_and_the_newest_request_sent(fake_python):
    starts = use_fake(fake_python)
    add_camera(Matrix.Translation((0.0, -6.0, 1.0)) @ Matrix.Rotation(math.radians(80), 4, "X"))
    car_a, car_b = add_car("car_a", "fake-a"), add_car("car_b", "fake-b")
    start_preview(car_a)
    run_ticks(lambda: preview._preview.request is not None)
    bpy.context.scene.ganverse3d.preview.car = car_b  # while car_a's render is in flight
    run_ticks(lambda: bpy.data.images.get("car_b Neural Preview") is not None)
    assert bpy.data.images.get("car_a Neural Preview") is None, "car_a's reply came too late and was dropped"
    assert [request["reconstruction"] for request in fake_worker.received(starts)
            if request["op"] == "neural_render"] == ["fake-a", "fake-b"]
    bpy.ops.ganverse3d.neural_preview()


def test_a_dead_worker_stops_the_preview_with_one_sentence(fake_python):
    use_fake(fake_python, "crash")
    add_camera(Matrix.Translation((0.0, -6.0, 1.0)) @ Matrix.Rotation(math.radians(80), 4, "X"))
    start_preview(add_car("car_a", "fake-a"))
    run_ticks(lambda: not preview.running())
    status = bpy.context.window_manager.ganverse3d
    assert status.preview_status_failed
    assert status.preview_status == ("The backend worker stopped during 'neural_render' (exit code 3): "
                                     "Fatal Python error: Segmentation fault")
    assert preview.last_error() == status.preview_status
    assert not bpy.app.timers.is_registered(preview._tick)


def test_swapping_asks_the_worker_once_then_renders_the_swapped_reconstruction(fake_python):
    starts = use_fake(fake_python)
    add_camera(Matrix.Translation((0.0, -6.0, 1.0)) @ Matrix.Rotation(math.radians(80), 4, "X"))
    car_a, car_b = add_car("car_a", "fake-a"), add_car("car_b", "fake-b")
    settings = bpy.context.scene.ganverse3d.preview
    settings.swap_with, settings.swap_texture, settings.swap_background = car_b, True, True
    settings.background, settings.background_photo = "FILE", str(PHOTO)
    start_preview(car_a)
    run_ticks(lambda: bpy.data.images.get("car_a Neural Preview") is not None)
    requests = fake_worker.received(starts)
    assert [request["op"] for request in requests] == ["swap", "neural_render"]
    assert {key: requests[0][key] for key in ("reconstruction", "other", "parts")} == \
        {"reconstruction": "fake-a", "other": "fake-b", "parts": ["texture", "background"]}
    assert requests[1]["reconstruction"] == f"swapped-{requests[0]['id']}"
    assert requests[1]["background"] == str(PHOTO)
    bpy.ops.ganverse3d.neural_preview()


@pytest.mark.parametrize("case, sentence", [
    ("no car", "Choose a Car imported from a photo in the Neural Preview's Car field."),
    ("no camera", "The scene has no camera; set one in the Scene properties to preview from it."),
    ("no background photo", "Choose a Background Photo, or set Background to the car's photo."),
])
def test_a_preview_that_cannot_start_says_why_in_one_sentence(fake_python, case, sentence):
    use_fake(fake_python)
    if case != "no camera":
        add_camera(Matrix.Translation((0.0, -6.0, 1.0)))
    if case != "no car":
        bpy.context.scene.ganverse3d.preview.car = add_car("car_a", "fake-a")
    if case == "no background photo":
        bpy.context.scene.ganverse3d.preview.background = "FILE"
    with pytest.raises(RuntimeError, match=sentence.replace("(", r"\(").replace(")", r"\)")):
        bpy.ops.ganverse3d.neural_preview()
    assert not preview.running() and preview._preview is None
    assert bpy.context.window_manager.ganverse3d.preview_status == sentence


def test_toggling_off_and_unregistering_remove_the_timer_and_the_draw_handler(fake_python, monkeypatch):
    use_fake(fake_python)
    added, removed = [], []
    real_add, real_remove = bpy.types.SpaceView3D.draw_handler_add, bpy.types.SpaceView3D.draw_handler_remove
    monkeypatch.setattr(bpy.types.SpaceView3D, "draw_handler_add",
                        lambda *args: added.append(real_add(*args)) or added[-1])
    monkeypatch.setattr(bpy.types.SpaceView3D, "draw_handler_remove",
                        lambda handler, region: removed.append(handler) or real_remove(handler, region))
    add_camera(Matrix.Translation((0.0, -6.0, 1.0)))
    start_preview(add_car("car_a", "fake-a"))
    assert bpy.app.timers.is_registered(preview._tick) and len(added) == 1
    bpy.ops.ganverse3d.neural_preview()  # off
    assert removed == added and not preview.running()
    run_ticks(lambda: preview._preview.request is None)  # the request in flight finishes; its reply is dropped
    assert not bpy.app.timers.is_registered(preview._tick)
    start_preview(bpy.data.objects["car_a"])
    assert len(added) == 2
    addon_utils.disable(ADDON, default_set=True, handle_error=None)
    assert removed == added and not bpy.app.timers.is_registered(preview._tick)
    assert preview.stop_on_load not in bpy.app.handlers.load_pre
    addon_utils.enable(ADDON, default_set=True, handle_error=None)


# ---------------------------------------------------------------------------------------------------
# The real worker


def test_the_real_worker_previews_an_imported_car_and_a_moved_camera_changes_the_image(tmp_path):
    preferences().python, preferences().device = sys.executable, "CPU"
    preferences().neural_model = str(save_tiny_stylegan_r(tmp_path / "tiny.safetensors"))
    bpy.context.scene.render.resolution_x = bpy.context.scene.render.resolution_y = 128
    try:
        assert bpy.ops.ganverse3d.import_photo(filepath=str(PHOTO)) == {"FINISHED"}
        car = bpy.data.objects["car_example_car"]
        assert len(car[preview.RECONSTRUCTION_PROPERTY]) == 32
        car.matrix_world = Matrix.Translation((3.0, 1.0, 0.0)) @ Matrix.Rotation(0.7, 4, "Z") @ Matrix.Scale(2.0, 4)
        camera = bpy.context.scene.camera
        camera.matrix_world = car.matrix_world @ camera.matrix_world  # the photo's view of the moved car
        start_preview(car)
        name = "car_example_car Neural Preview"
        run_ticks(lambda: bpy.data.images.get(name) is not None, timeout=120)
        image = bpy.data.images[name]
        assert tuple(image.size) == (16, 16)
        status = bpy.context.window_manager.ganverse3d.preview_status
        first = list(image.pixels)
        camera.matrix_world = car.matrix_world @ Matrix.Rotation(math.radians(90), 4, "Z") @ \
            car.matrix_world.inverted() @ camera.matrix_world
        run_ticks(lambda: list(bpy.data.images[name].pixels) != first, timeout=60)
        azimuth = float(status.split("azimuth ")[1].split(",")[0])
        moved = bpy.context.window_manager.ganverse3d.preview_status
        assert float(moved.split("azimuth ")[1].split(",")[0]) == pytest.approx((azimuth + 90 + 180) % 360 - 180,
                                                                                abs=1.01)
        bpy.ops.ganverse3d.neural_preview()
        run_ticks(lambda: preview._preview.request is None)
    finally:
        session.close_worker()
        preferences().neural_model = ""
