"""The worker's neural preview ops (protocol version 2): ``neural_render`` of a kept reconstruction from an orbit
or a Blender camera, ``swap``, the kept reconstructions and scenes, and their errors. A tiny untrained
StyleGAN-R (tests/neural/neural_helpers.py) stands in for the shipped one; the reference for every image is
``api.neural_scene`` run in this process on the same reconstruction."""

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from ganverse3d import api, worker as worker_module
from ganverse3d.files import to_uint8
from ganverse3d.geometry import BlenderCamera, Camera, camera_from_blender, camera_to_blender, euler_xyz_to_matrix

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "neural"))
from neural_helpers import save_tiny_stylegan_r  # noqa: E402

PHOTO = Path(__file__).resolve().parents[2] / "docs" / "example_car.png"
LENGTH_M = 3.7


class InProcess:
    """A Worker in this process; ``ask`` returns the final reply of one request."""

    def __init__(self):
        self.lines = []
        self.worker = worker_module.Worker(self.lines.append, device="cpu")

    def ask(self, request: dict) -> dict:
        self.worker.handle_line(json.dumps(request).encode())
        return json.loads(self.lines[-1])


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    return str(save_tiny_stylegan_r(tmp_path_factory.mktemp("neural") / "tiny.safetensors"))


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """(worker, reconstruct reply) with the example photo reconstructed once."""
    worker = InProcess()
    reply = worker.ask({"id": 1, "op": "reconstruct", "photo": str(PHOTO), "length": LENGTH_M,
                        "out_dir": str(tmp_path_factory.mktemp("car"))})
    assert reply["type"] == "result"
    return worker, reply


def matrix_world(location, rotation_euler) -> torch.Tensor:
    matrix = torch.eye(4, dtype=torch.float64)
    matrix[:3, :3] = torch.tensor(euler_xyz_to_matrix(rotation_euler), dtype=torch.float64)
    matrix[:3, 3] = torch.tensor(location, dtype=torch.float64)
    return matrix


CAR_TRANSFORMS = {
    "as imported": torch.eye(4, dtype=torch.float64),
    "moved, turned and scaled": matrix_world((2.0, -3.0, 0.5), (0.0, 0.0, 1.1)) @ torch.diag(
        torch.tensor([1.7, 1.7, 1.7, 1.0], dtype=torch.float64)),
    "tilted and scaled unevenly": matrix_world((-1.0, 0.5, 0.2), (0.3, -0.2, 2.5)) @ torch.diag(
        torch.tensor([0.6, 1.3, 2.0, 1.0], dtype=torch.float64)),
}


def blender_request(camera: Camera, scale: float, lift: float, car: torch.Tensor, resolution=(256, 256)) -> dict:
    """The Blender form of ``camera`` for a car imported with ``scale`` and ``lift`` whose object then got the world
    matrix ``car``: the camera the import would make, carried along with the car."""
    settings = camera_to_blender(*(float(getattr(camera, name)[0]) for name in worker_module.ORBIT_FIELDS),
                                 resolution=resolution, scale=scale)
    location = list(settings.location)
    location[2] += lift
    world = car @ matrix_world(location, settings.rotation_euler)
    return {"matrix_world": world.tolist(), "car_matrix_world": car.tolist(), "lens": settings.lens,
            "sensor_width": settings.sensor_width, "sensor_height": settings.sensor_height,
            "sensor_fit": settings.sensor_fit, "resolution": list(resolution)}


def render_reference(reconstruction, camera, tiny_model, background=None) -> np.ndarray:
    scene = api.neural_scene(reconstruction, background=background, neural_model=tiny_model, device="cpu")
    return to_uint8(scene.render(camera))


def read_png(path) -> np.ndarray:
    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"))


# ---------------------------------------------------------------------------------------------------
# Cameras


@pytest.mark.parametrize("car", CAR_TRANSFORMS)
def test_a_blender_camera_carried_with_the_car_is_the_orbit_camera_exactly(car):
    scale, lift = 0.93, 0.41
    expected = Camera.create(37.0, 12.0, 3.4, 28.0, dtype=torch.float64)
    request = blender_request(expected, scale, lift, CAR_TRANSFORMS[car])
    camera, off_axis = worker_module.blender_camera_in_car_frame(request, scale, lift)
    for name in worker_module.ORBIT_FIELDS:
        assert float(getattr(camera, name)[0]) == pytest.approx(float(getattr(expected, name)[0]), abs=1e-9), name
    assert off_axis < 1e-5


def test_a_blender_camera_is_converted_as_camera_from_blender_converts_it_in_the_cars_frame():
    """A free camera (aimed off the car, a wide frame, sensor fit AUTO) by the geometry module's own function."""
    scale, lift = 1.6, 0.3
    car = CAR_TRANSFORMS["moved, turned and scaled"]
    local = matrix_world((1.2, -4.0, 2.1), (1.3, 0.1, 0.4))
    request = {"matrix_world": (car @ local).tolist(), "car_matrix_world": car.tolist(), "lens": 42.0,
               "sensor_width": 36.0, "sensor_height": 24.0, "sensor_fit": "AUTO", "resolution": [1920, 1080]}
    camera, off_axis = worker_module.blender_camera_in_car_frame(request, scale, lift)
    location = (1.2, -4.0, 2.1 - lift)
    expected, expected_off_axis = camera_from_blender(BlenderCamera(location, (1.3, 0.1, 0.4), 42.0, 36.0, 24.0, "AUTO",
                                                                    (1920, 1080)), scale=scale)
    for name in worker_module.ORBIT_FIELDS:
        assert float(getattr(camera, name)[0]) == pytest.approx(float(getattr(expected, name)[0]), abs=1e-9), name
    assert off_axis == pytest.approx(expected_off_axis, abs=1e-7) and off_axis > 1


# ---------------------------------------------------------------------------------------------------
# neural_render and swap


def test_neural_render_writes_the_png_of_the_scene_from_the_camera(served, tiny_model, tmp_path):
    worker, reconstructed = served
    reply = worker.ask({"id": 2, "op": "neural_render", "reconstruction": reconstructed["reconstruction"],
                        "camera": {"azimuth": 40.0, "elevation": 8.0, "distance": 3.2, "fov_y": 25.0},
                        "neural_model": tiny_model, "out_dir": str(tmp_path / "out")})
    assert reply["type"] == "result", reply
    assert reply["image"] == str(tmp_path / "out" / "neural.png") and reply["resolution"] == 16
    assert reply["camera"] == {"azimuth": 40.0, "elevation": 8.0, "distance": 3.2, "fov_y": 25.0, "off_axis": 0.0}
    assert sorted(path.name for path in (tmp_path / "out").iterdir()) == ["neural.png"]
    reconstruction = worker.worker.kept[reconstructed["reconstruction"]].reconstruction
    expected = render_reference(reconstruction, Camera.create(40.0, 8.0, 3.2, 25.0), tiny_model)
    assert np.array_equal(read_png(reply["image"]), expected)


def test_the_kept_reconstruction_is_the_one_the_import_got_with_the_networks_texture(served):
    worker, reconstructed = served
    kept = worker.worker.kept[reconstructed["reconstruction"]]
    reference = api.reconstruct(PHOTO, device="cpu")
    assert torch.equal(kept.reconstruction.mesh.verts, reference.mesh.verts)
    assert torch.equal(kept.reconstruction.mesh.texture, reference.network_texture)
    assert kept.scale == pytest.approx(reconstructed["scale"], rel=1e-12)
    assert kept.lift == pytest.approx(-kept.scale * float(reference.mesh.verts[:, 1].min()), rel=1e-9)


def test_the_imports_own_camera_renders_the_photos_view_and_a_moved_camera_another_image(served, tiny_model, tmp_path):
    worker, reconstructed = served
    blender = reconstructed["camera"]
    rotation = torch.tensor(euler_xyz_to_matrix(blender["rotation_euler"]), dtype=torch.float64)
    view = torch.eye(4, dtype=torch.float64)
    view[:3, :3], view[:3, 3] = rotation, torch.tensor(blender["location"], dtype=torch.float64)
    car = CAR_TRANSFORMS["moved, turned and scaled"]
    camera = {"matrix_world": (car @ view).tolist(), "car_matrix_world": car.tolist(), "lens": blender["lens"],
              "sensor_width": blender["sensor_width"], "sensor_height": blender["sensor_height"],
              "sensor_fit": blender["sensor_fit"], "resolution": [512, 512]}
    request = {"id": 3, "op": "neural_render", "reconstruction": reconstructed["reconstruction"], "camera": camera,
               "neural_model": tiny_model, "out_dir": str(tmp_path)}
    reply = worker.ask(request)
    for name in worker_module.ORBIT_FIELDS:
        assert reply["camera"][name] == pytest.approx(blender[name], abs=1e-6), name
    first = read_png(reply["image"])
    moved = car @ matrix_world((0.0, 0.0, 0.0), (0.0, 0.0, math.radians(60))) @ view
    reply = worker.ask({**request, "camera": {**camera, "matrix_world": moved.tolist()}})
    assert reply["camera"]["azimuth"] == pytest.approx((blender["azimuth"] + 60 + 180) % 360 - 180, abs=1e-6)
    assert not np.array_equal(read_png(reply["image"]), first)


def test_a_scene_is_encoded_once_per_reconstruction_background_and_model(served, tiny_model, tmp_path, monkeypatch):
    worker, reconstructed = served
    encoded = []
    real_scene = api.neural_scene

    def counting_scene(*args, **kwargs):
        encoded.append(kwargs.get("background"))
        return real_scene(*args, **kwargs)

    monkeypatch.setattr(api, "neural_scene", counting_scene)
    worker.worker.scenes.clear()
    background = tmp_path / "sky.png"
    Image.new("RGB", (64, 48), (90, 140, 230)).save(background)
    images = []
    for azimuth, backdrop in ((10.0, None), (50.0, None), (90.0, background), (130.0, background), (170.0, None)):
        reply = worker.ask({"id": 4, "op": "neural_render", "reconstruction": reconstructed["reconstruction"],
                            "camera": {"azimuth": azimuth, "elevation": 5.0, "distance": 3.5},
                            "background": None if backdrop is None else str(backdrop),
                            "neural_model": tiny_model, "out_dir": str(tmp_path / "out")})
        images.append(read_png(reply["image"]))
    assert encoded == [None, background]
    reconstruction = worker.worker.kept[reconstructed["reconstruction"]].reconstruction
    fov = float(reconstruction.camera.fov_y[0])
    assert np.array_equal(images[2], render_reference(reconstruction, Camera.create(90.0, 5.0, 3.5, fov), tiny_model,
                                                      background=background))


def test_swap_keeps_a_new_reconstruction_with_the_other_cars_parts(served, tiny_model, tmp_path):
    worker, reconstructed = served
    other = worker.ask({"id": 5, "op": "reconstruct", "photo": str(PHOTO), "fit_steps": 3,
                        "out_dir": str(tmp_path / "other")})
    reply = worker.ask({"id": 6, "op": "swap", "reconstruction": reconstructed["reconstruction"],
                        "other": other["reconstruction"], "parts": ["shape", "background"]})
    assert reply["type"] == "result" and reply["reconstruction"] not in (reconstructed["reconstruction"],
                                                                        other["reconstruction"])
    kept = worker.worker.kept
    a, b = kept[reconstructed["reconstruction"]], kept[other["reconstruction"]]
    swapped = kept[reply["reconstruction"]]
    assert torch.equal(swapped.reconstruction.mesh.verts, b.reconstruction.mesh.verts)
    assert torch.equal(swapped.reconstruction.network_texture, a.reconstruction.network_texture)
    assert torch.equal(swapped.reconstruction.background, b.reconstruction.background)
    assert (swapped.scale, swapped.lift) == (a.scale, a.lift), "it stands where the first car stands in Blender"
    rendered = worker.ask({"id": 7, "op": "neural_render", "reconstruction": reply["reconstruction"],
                           "camera": {"azimuth": 0.0, "elevation": 10.0, "distance": 3.0, "fov_y": 30.0},
                           "neural_model": tiny_model, "out_dir": str(tmp_path / "out")})
    expected = api.swap(a.reconstruction, b.reconstruction, ("shape", "background"))
    assert np.array_equal(read_png(rendered["image"]),
                          render_reference(expected, Camera.create(0.0, 10.0, 3.0, 30.0), tiny_model))
    refused = worker.ask({"id": 8, "op": "swap", "reconstruction": reconstructed["reconstruction"],
                          "other": other["reconstruction"], "parts": ["wheels"]})
    assert refused["kind"] == "input" and "the parts to swap must be some of shape, texture, background" in \
        refused["message"]


def test_the_least_recently_used_reconstructions_are_forgotten(served, tiny_model, tmp_path, monkeypatch):
    _, reconstructed = served
    kept = served[0].worker.kept[reconstructed["reconstruction"]]
    monkeypatch.setattr(worker_module, "KEPT_RECONSTRUCTIONS", 2)
    worker = InProcess()
    first, second = worker.worker._keep(kept), worker.worker._keep(kept)
    assert worker.ask(neural_request(first, tmp_path, tiny_model))["type"] == "result"  # used: now the most recent
    third = worker.worker._keep(kept)
    assert list(worker.worker.kept) == [first, third]
    assert [key[0] for key in worker.worker.scenes] == [first]
    reply = worker.ask(neural_request(second, tmp_path, tiny_model))
    assert reply["kind"] == "input" and reply["message"].startswith(f"The backend holds no reconstruction {second}")


# ---------------------------------------------------------------------------------------------------
# Errors


def neural_request(reconstruction_id, tmp_path, tiny_model, **changes) -> dict:
    return {"id": 9, "op": "neural_render", "reconstruction": reconstruction_id,
            "camera": {"azimuth": 20.0, "elevation": 5.0, "distance": 3.0}, "neural_model": tiny_model,
            "out_dir": str(tmp_path / "out"), **changes}


@pytest.mark.parametrize("case, kind, fragment", [
    ("unknown id", "input", "The backend holds no reconstruction 0123456789abcdef (it keeps the last 16"),
    ("id of another type", "protocol", "'reconstruction' of neural_render must be a reconstruction id"),
    ("negative distance", "input", "distance must be greater than 0, not -1."),
    ("field of view 200", "input", "fov must lie between 0 and 180 degrees, not 200."),
    ("camera without distance", "protocol", "must have the fields azimuth, elevation, distance (and fov_y)"),
    ("camera mixing both forms", "protocol", "must have the fields azimuth"),
    ("azimuth as text", "protocol", "must be numbers"),
    ("matrix of 3 rows", "protocol", "'matrix_world' of neural_render must be 4 rows of 4 numbers"),
    ("camera at the car's centre", "input", "The Blender camera sits at the origin"),
    ("car scaled to nothing", "input", "The car object is scaled to nothing along an axis"),
    ("sensor fit unknown", "input", "sensor_fit must be 'AUTO', 'HORIZONTAL' or 'VERTICAL'"),
    ("missing background", "input", "The Background {tmp}/nowhere.png does not exist."),
    ("background that is no image", "input", "is not an image file this program can read"),
    ("missing neural model", "input", "The Neural Model {tmp}/absent.safetensors does not exist"),
])
def test_bad_requests_get_one_sentence_and_write_nothing(served, tiny_model, tmp_path, case, kind, fragment):
    worker, reconstructed = served
    request = neural_request(reconstructed["reconstruction"], tmp_path, tiny_model)
    blender = blender_request(Camera.create(20.0, 5.0, 3.0, 30.0), 1.0, 0.0, torch.eye(4, dtype=torch.float64))
    if case == "unknown id":
        request["reconstruction"] = "0123456789abcdef"
    elif case == "id of another type":
        request["reconstruction"] = 7
    elif case == "negative distance":
        request["camera"]["distance"] = -1
    elif case == "field of view 200":
        request["camera"]["fov_y"] = 200
    elif case == "camera without distance":
        del request["camera"]["distance"]
    elif case == "camera mixing both forms":
        request["camera"] = {**blender, "azimuth": 3.0}
    elif case == "azimuth as text":
        request["camera"]["azimuth"] = "20"
    elif case == "matrix of 3 rows":
        request["camera"] = {**blender, "matrix_world": blender["matrix_world"][:3]}
    elif case == "camera at the car's centre":
        centre = torch.eye(4, dtype=torch.float64)
        centre[2, 3] = worker.worker.kept[reconstructed["reconstruction"]].lift
        request["camera"] = {**blender, "matrix_world": centre.tolist()}
    elif case == "car scaled to nothing":
        request["camera"] = {**blender, "car_matrix_world": torch.diag(torch.tensor([1.0, 0.0, 1.0, 1.0])).tolist()}
    elif case == "sensor fit unknown":
        request["camera"] = {**blender, "sensor_fit": "DIAGONAL"}
    elif case == "missing background":
        request["background"] = str(tmp_path / "nowhere.png")
    elif case == "background that is no image":
        (tmp_path / "notes.png").write_text("not a picture")
        request["background"] = str(tmp_path / "notes.png")
    elif case == "missing neural model":
        request["neural_model"] = str(tmp_path / "absent.safetensors")
    before = sorted(tmp_path.rglob("*"))
    reply = worker.ask(request)
    assert reply["type"] == "error" and reply["kind"] == kind, reply
    assert fragment.format(tmp=tmp_path) in reply["message"] and reply["message"].count("\n") == 0
    assert sorted(tmp_path.rglob("*")) == before
    assert worker.ask({"id": 10, "op": "hello"})["type"] == "result"


def test_without_a_shipped_neural_model_the_default_is_refused_in_one_sentence(served, tmp_path, monkeypatch):
    from ganverse3d import assets

    worker, reconstructed = served
    lookup = assets.lookup
    monkeypatch.setattr(assets, "lookup", lambda kind, name=None: None if kind == "neural" else lookup(kind, name))
    reply = worker.ask(neural_request(reconstructed["reconstruction"], tmp_path, None))
    assert reply == {"id": 9, "type": "error", "kind": "input",
                     "message": "No StyleGAN-R model is shipped with this install; set Neural Model to a "
                                "weights file."}


def test_a_real_worker_subprocess_renders_what_it_reconstructed(tiny_model, tmp_path):
    process = subprocess.Popen([sys.executable, "-m", "ganverse3d.worker", "--device", "cpu"], stdin=subprocess.PIPE,
                               stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                               env={**os.environ, "OMP_NUM_THREADS": "1"})
    try:
        def ask(request):
            process.stdin.write(json.dumps(request) + "\n")
            process.stdin.flush()
            while (reply := json.loads(process.stdout.readline()))["type"] == "progress":
                pass
            return reply

        made = ask({"protocol": 2, "id": 1, "op": "reconstruct", "photo": str(PHOTO), "out_dir": str(tmp_path / "car")})
        reply = ask({"protocol": 2, "id": 2, "op": "neural_render", "reconstruction": made["reconstruction"],
                     "camera": {"azimuth": 30.0, "elevation": 10.0, "distance": 3.0, "fov_y": 30.0},
                     "neural_model": tiny_model, "out_dir": str(tmp_path / "preview")})
        assert reply["type"] == "result" and reply["id"] == 2
        assert read_png(reply["image"]).shape == (16, 16, 3)
    finally:
        process.kill()
        process.wait()
