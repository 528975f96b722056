"""The backend worker (``python -m ganverse3d.worker``, protocol version 2) driven the way the add-on drives it:
a subprocess, JSON lines on its stdin and stdout. One worker serves the whole module (it keeps its model loaded);
tests that end a worker start their own.

The reference for every number is ``api.reconstruct`` run in this process on the same photo: the worker's files
must be exactly that reconstruction, moved into Blender's frame.
"""

import dataclasses
import json
import os
import platform
import queue
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from ganverse3d import __version__, api, assets, worker as worker_module
from ganverse3d.errors import InputError, setting
from ganverse3d.files import to_uint8
from ganverse3d.geometry import BlenderCamera, blender_to_object, camera_from_blender, euler_xyz_to_matrix

PHOTO = Path(__file__).resolve().parents[2] / "docs" / "example_car.png"
LENGTH_M = 3.7  # not the default, so that a worker ignoring the argument fails
REPLY_TIMEOUT_S = 120.0  # generous: CI machines may be busy; a healthy reply takes well under a second


class WorkerDied(AssertionError):
    """The worker closed its stdout (it exited or was killed) before the final reply."""


class WorkerProcess:
    """A worker subprocess; a thread reads its stdout lines into a queue so that every wait has a timeout."""

    def __init__(self, stderr_path: Path, *options: str):
        self.stderr = open(stderr_path, "wb")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "ganverse3d.worker", "--device", "cpu", *options],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.stderr,
            env={**os.environ, "OMP_NUM_THREADS": "1"})
        self.lines: queue.Queue = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.process.stdout:
            self.lines.put(line)
        self.lines.put(None)  # end of output

    def send(self, request) -> None:
        """Send a dict as one JSON line, or raw bytes as they are (plus the newline)."""
        data = request if isinstance(request, bytes) else json.dumps(request).encode("utf-8")
        try:
            self.process.stdin.write(data + b"\n")
            self.process.stdin.flush()
        except BrokenPipeError:
            raise WorkerDied(f"the worker's input is closed (exit code {self.process.wait()})") from None

    def next_message(self, timeout: float = REPLY_TIMEOUT_S) -> dict:
        try:
            line = self.lines.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"the worker sent nothing for {timeout} s") from None
        if line is None:
            raise WorkerDied(f"the worker's output ended (exit code {self.process.wait(timeout)})")
        return json.loads(line)

    def ask(self, request) -> tuple[list[dict], dict]:
        """Send one request; (progress events, final reply)."""
        self.send(request)
        events = []
        while (message := self.next_message())["type"] == "progress":
            events.append(message)
        return events, message

    def close(self):
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()
        self.stderr.close()


@pytest.fixture(scope="module")
def worker(tmp_path_factory):
    process = WorkerProcess(tmp_path_factory.mktemp("worker") / "stderr.txt")
    yield process
    process.close()


@pytest.fixture
def fresh_worker(tmp_path):
    process = WorkerProcess(tmp_path / "stderr.txt")
    yield process
    process.close()


@pytest.fixture(scope="module")
def reference():
    """The photo's reconstruction computed in this process."""
    return api.reconstruct(PHOTO, device="cpu")


@pytest.fixture(scope="module")
def round_trip(worker, tmp_path_factory):
    """(out_dir, progress events, final reply) of one reconstruct request."""
    out_dir = tmp_path_factory.mktemp("round_trip") / "new" / "folder"
    events, reply = worker.ask({"protocol": 2, "id": "car-1", "op": "reconstruct", "photo": str(PHOTO),
                                "mask": None, "length": LENGTH_M, "out_dir": str(out_dir)})
    return out_dir, events, reply


def object_to_blender_reference(reconstruction, length):
    """Independent statement of the geometry: (x, y, z) -> s (x, -z, y), lifted to the ground; (vertices, s, lift).
    A mesh with part labels has its wheel blobs pulled in first (only x moves: the scale and lift stay)."""
    from ganverse3d.geometry.wheels import replace_wheels

    mesh = reconstruction.part_mesh or reconstruction.mesh
    verts = mesh.verts.double().numpy()
    if mesh.part_labels is not None:
        verts[:, 0] = replace_wheels(mesh.verts, mesh.faces, mesh.part_labels)[0][:, 0]
    scale = length / (verts[:, 2].max() - verts[:, 2].min())
    lift = -scale * verts[:, 1].min()
    return scale * np.stack((verts[:, 0], -verts[:, 2], verts[:, 1]), axis=1) + (0.0, 0.0, lift), scale, lift


# ---------------------------------------------------------------------------------------------------
# Round trip


def test_hello_describes_versions_device_and_model(worker):
    events, reply = worker.ask({"protocol": 2, "id": 1, "op": "hello"})
    assert events == []
    assert reply["id"] == 1 and reply["type"] == "result" and reply["protocol"] == 2
    assert reply["versions"] == {"ganverse3d": __version__, "torch": torch.__version__.split("+")[0],
                                 "python": platform.python_version()}
    assert reply["device"] == "cpu"
    assert reply["model"] == str(assets.FOLDER / "inverse.safetensors")
    assert reply["summary"] == (f"ganverse3d {__version__} · torch {torch.__version__.split('+')[0]} · Python "
                                f"{sys.version_info.major}.{sys.version_info.minor} · cpu · "
                                f"model inverse.safetensors (embedded)")


def test_reconstruct_reports_progress_then_the_files_and_camera(round_trip, reference):
    out_dir, events, reply = round_trip
    assert events and all(event["id"] == "car-1" and isinstance(event["message"], str) for event in events)
    fractions = [event["fraction"] for event in events]
    assert fractions == sorted(fractions) and 0.0 <= fractions[0] and fractions[-1] <= 1.0
    assert reply["id"] == "car-1" and reply["type"] == "result"
    assert isinstance(reply["reconstruction"], str) and len(reply["reconstruction"]) == 32
    assert reply["mesh"] == str(out_dir / "mesh.json")
    assert reply["texture"] == str(out_dir / "texture.png")
    assert reply["framed_photo"] == str(out_dir / "photo_framed.png")
    assert sorted(path.name for path in out_dir.iterdir()) == ["mesh.json", "photo_framed.png", "texture.png"]
    _, scale, _ = object_to_blender_reference(reference, LENGTH_M)
    assert reply["length"] == LENGTH_M and reply["scale"] == pytest.approx(scale, rel=1e-12)
    camera = reply["camera"]
    for field in ("azimuth", "elevation", "distance", "fov_y"):
        assert camera[field] == pytest.approx(float(getattr(reference.camera, field)[0]), abs=1e-6), field
    assert camera["sensor_fit"] == "VERTICAL" and camera["sensor_width"] == camera["sensor_height"] == 36.0


def test_reconstruct_files_hold_the_reconstruction_with_consistent_sizes(round_trip, reference):
    out_dir, _, _ = round_trip
    mesh = json.loads((out_dir / "mesh.json").read_text())
    sent = reference.part_mesh  # the shipped model labels parts: its mesh split 1-to-16 goes to Blender
    faces = sent.faces
    assert faces.shape[0] == 16 * reference.mesh.faces.shape[0]
    assert len(mesh["vertices"]) == sent.verts.shape[0]
    assert mesh["faces"] == faces.tolist()
    assert len(mesh["uvs"]) == 3 * faces.shape[0]
    with Image.open(out_dir / "texture.png") as texture:
        assert texture.mode == "RGB"
        assert np.array_equal(np.asarray(texture), to_uint8(reference.mesh.texture))
    with Image.open(out_dir / "photo_framed.png") as framed:
        assert framed.size == (api.FRAMED_SIZE, api.FRAMED_SIZE)
        assert np.array_equal(np.asarray(framed), to_uint8(reference.image))


def test_mesh_json_is_in_blenders_frame_on_the_ground_front_towards_minus_y(round_trip, reference):
    out_dir, _, _ = round_trip
    mesh = json.loads((out_dir / "mesh.json").read_text())
    vertices = np.array(mesh["vertices"])
    assert vertices[:, 2].min() == pytest.approx(0.0, abs=1e-6)
    assert vertices[:, 1].max() - vertices[:, 1].min() == pytest.approx(LENGTH_M, rel=1e-6)
    expected, _, _ = object_to_blender_reference(reference, LENGTH_M)
    assert np.abs(vertices - expected).max() < 1e-5
    # Object space's front (+z) is Blender's -Y: the front-most vertex has the smallest Y.
    object_z = reference.part_mesh.verts[:, 2].numpy()
    assert np.argmin(vertices[:, 1]) == np.argmax(object_z)


def test_mesh_json_uvs_are_blenders_with_v_up(round_trip, reference):
    out_dir, _, _ = round_trip
    uvs = np.array(json.loads((out_dir / "mesh.json").read_text())["uvs"])
    ours = reference.part_mesh.face_uvs.reshape(-1, 2).double().numpy()  # corner k of face f at 3 f + k
    assert np.abs(uvs[:, 0] - ours[:, 0]).max() < 1e-6
    assert np.abs(uvs[:, 1] - (1.0 - ours[:, 1])).max() < 1e-6


# ---------------------------------------------------------------------------------------------------
# The overlay guarantee: the Blender camera sees the Blender mesh as the predicted camera sees the car


def test_blender_payload_camera_projects_the_mesh_where_the_predicted_camera_does(reference):
    reference = dataclasses.replace(reference, part_mesh=None)  # the plain mesh (the split one lies on its surface)
    mesh, camera, scale, lift = worker_module.blender_payload(reference, 4.5)
    vertices = np.array(mesh["vertices"])  # Blender world, metres
    verts = reference.mesh.verts.double()
    predicted = reference.camera.to(dtype=torch.float64)
    expected_ndc, _ = predicted.transform(verts[None])
    expected_ndc = expected_ndc[0].numpy()
    assert np.abs(expected_ndc).max() < 1.2, "the car must be in (or near) the frame for the test to mean much"

    # (a) Blender's own pinhole model on the Blender-world vertices: camera looks down its local -Z, and with
    # sensor fit VERTICAL the focal length in NDC units is lens / (sensor_height / 2) on a square render.
    rotation = np.array(euler_xyz_to_matrix(camera["rotation_euler"]))
    in_camera = (vertices - np.array(camera["location"])) @ rotation  # rows: R^T (p - location)
    focal = camera["lens"] / (camera["sensor_height"] / 2)
    blender_ndc = focal * in_camera[:, :2] / -in_camera[:, 2:3]
    assert np.abs(blender_ndc - expected_ndc).max() < 1e-4

    # (b) Back through camera_from_blender: it assumes a camera aimed at the origin, so undo the common lift
    # (a translation of mesh and camera together changes no image) and the scale.
    assert lift == pytest.approx(-scale * float(verts[:, 1].min()), rel=1e-12)
    location = camera["location"][:2] + [camera["location"][2] - lift]
    settings = BlenderCamera(tuple(location), tuple(camera["rotation_euler"]), camera["lens"],
                             camera["sensor_width"], camera["sensor_height"], camera["sensor_fit"],
                             (api.FRAMED_SIZE, api.FRAMED_SIZE))
    recovered, off_axis_deg = camera_from_blender(settings, scale=scale)
    assert off_axis_deg < 1e-6
    back_in_object = torch.tensor([blender_to_object((x, y, z - lift)) for x, y, z in vertices]) / scale
    recovered_ndc, _ = recovered.transform(back_in_object[None])
    assert np.abs(recovered_ndc[0].numpy() - expected_ndc).max() < 1e-4


def test_blender_payload_scales_to_the_length_and_rejects_a_flat_mesh(reference):
    reference = dataclasses.replace(reference, part_mesh=None)
    for length in (1.0, 4.5, 12.0):
        mesh, _, scale, _ = worker_module.blender_payload(reference, length)
        y = np.array(mesh["vertices"])[:, 1]
        assert y.max() - y.min() == pytest.approx(length, rel=1e-9)
        assert scale == pytest.approx(length / float(reference.mesh.verts[:, 2].max() - reference.mesh.verts[:, 2].min()))
    flat_mesh = dataclasses.replace(reference.mesh, verts=reference.mesh.verts * torch.tensor([1.0, 1.0, 0.0]))
    flat = dataclasses.replace(reference, mesh=flat_mesh)
    with pytest.raises(ValueError, match="no extent"):
        worker_module.blender_payload(flat, 4.5)


# ---------------------------------------------------------------------------------------------------
# Part-aware cars: mesh.json's part keys (issue 20 §3/§4)

PART_KEYS = {"part_names", "part_labels", "wheels"}


def labelled_world_car(reference):
    """The reconstruction with a world sedan (true part labels) as its part mesh, and the car."""
    from ganverse3d.world import cars

    car = cars.build_car(cars.sample_car_spec(np.random.default_rng(0), "sedan"))
    mesh = api.TexturedMesh(car.verts, car.faces, car.face_uvs, car.texture, car.part_labels)
    return dataclasses.replace(reference, part_mesh=mesh), car


def test_mesh_json_has_no_part_keys_without_part_labels(reference):
    unlabelled = dataclasses.replace(reference, part_mesh=None)
    mesh, _, _, _ = worker_module.blender_payload(unlabelled, LENGTH_M)
    assert set(mesh) == {"vertices", "faces", "uvs"}


def test_mesh_json_of_a_labelled_car_has_its_parts_and_four_wheels_in_metres(reference):
    from ganverse3d.geometry.wheels import PART_NAMES, WHEEL_LABEL, fit_wheels

    labelled, car = labelled_world_car(reference)
    verts = car.verts.double().numpy()
    length_m = float(np.ptp(verts[:, 2])) / car.params["scale"]  # then the import's scale is the world's
    mesh, _, scale, lift = worker_module.blender_payload(labelled, length_m)
    assert PART_KEYS <= set(mesh) and scale == pytest.approx(1.0 / car.params["scale"])
    assert mesh["part_names"] == list(PART_NAMES) == ["body", "window", "wheel", "headlight", "taillight", "plate"]
    labels = np.array(mesh["part_labels"])
    assert len(labels) == len(mesh["faces"]) and WHEEL_LABEL not in labels
    assert np.array_equal(labels == 0, (car.part_labels == 0).numpy() | (car.part_labels == WHEEL_LABEL).numpy())

    # The body: the same transform as without labels, only the wheel blobs moved towards X = 0.
    plain, _, _, _ = worker_module.blender_payload(
        dataclasses.replace(labelled, mesh=dataclasses.replace(labelled.part_mesh, part_labels=None), part_mesh=None),
        length_m)
    vertices, plain_vertices = np.array(mesh["vertices"]), np.array(plain["vertices"])
    assert np.array_equal(vertices[:, 1:], plain_vertices[:, 1:])
    assert (np.abs(vertices[:, 0]) <= np.abs(plain_vertices[:, 0])).all()
    assert np.abs(vertices - object_to_blender_reference(labelled, length_m)[0]).max() < 1e-9

    wheels = mesh["wheels"]
    assert [wheel["name"] for wheel in wheels] == ["wheel_front_left", "wheel_front_right", "wheel_rear_left",
                                                   "wheel_rear_right"]
    for wheel, fitted in zip(wheels, fit_wheels(car.verts, car.faces, car.part_labels)):
        assert (wheel["front"], wheel["left"]) == (fitted.front, fitted.left)
        hub = np.array(wheel["hub"])
        expected_hub = scale * np.array(object_point_to_blender(fitted.centre)) + (0.0, 0.0, lift)
        assert np.abs(hub - expected_hub).max() < 1e-9
        # Metres: the world's wheel; the left is +X, the front -Y; the wheels stand on the ground (Z = 0).
        assert wheel["radius"] == pytest.approx(car.params["wheel_radius"], rel=0.02)
        assert wheel["width"] == pytest.approx(car.params["wheel_width"], rel=1e-4)
        assert (hub[0] > 0) == wheel["left"] and (hub[1] < 0) == wheel["front"]
        assert hub[2] == pytest.approx(wheel["radius"], abs=0.01)
        # The wheel's own frame: round about X, the rim on the outer side, faces outward.
        wheel_vertices, faces = np.array(wheel["vertices"]), np.array(wheel["faces"])
        assert np.hypot(wheel_vertices[:, 1], wheel_vertices[:, 2]).max() == pytest.approx(wheel["radius"])
        assert np.ptp(wheel_vertices[:, 0]) == pytest.approx(wheel["width"])
        materials = np.array(wheel["materials"])
        assert len(materials) == len(faces) and set(materials.tolist()) == {0, 1}
        assert (wheel_vertices[faces[materials == 1]][..., 0].mean() > 0) == wheel["left"]
        corners = wheel_vertices[faces]
        assert np.einsum("ij,ij->i", corners[:, 0], np.cross(corners[:, 1], corners[:, 2])).sum() > 0
    json.dumps(mesh)  # plain JSON types throughout


def object_point_to_blender(point):
    """Object space -> Blender axes, stated independently of the worker: (x, y, z) -> (x, -z, y)."""
    x, y, z = point
    return (x, -z, y)


# ---------------------------------------------------------------------------------------------------
# Errors: the right kind, one sentence, and the worker answers the next request


@pytest.mark.parametrize("request_line, expected_id, fragment", [
    (b"this is not json", None, "not one line of UTF-8 JSON"),
    (b"\xff\xfe{}", None, "not one line of UTF-8 JSON"),
    (b"[1, 2, 3]", None, "must be a JSON object"),
    (b'"hello"', None, "must be a JSON object"),
    (b'{"op": "hello"}', None, "'id'"),
    (b'{"id": true, "op": "hello"}', None, "'id'"),
    (b'{"id": 7, "op": "paint"}', 7, 'Unknown op "paint"'),
    (b'{"id": 7}', 7, "Unknown op null"),
    (b'{"id": "a", "protocol": 1, "op": "hello"}', "a", "protocol version 2, not 1"),
    (b'{"id": "a", "protocol": "2", "op": "hello"}', "a", "protocol version 2"),
    (b'{"id": 8, "op": "reconstruct", "out_dir": "/tmp/x"}', 8, "needs the argument 'photo'"),
    (b'{"id": 8, "op": "reconstruct", "photo": "a.png"}', 8, "needs the argument 'out_dir'"),
    (b'{"id": 8, "op": "reconstruct", "photo": 3, "out_dir": "/tmp/x"}', 8, "'photo' of reconstruct must be a path"),
    (b'{"id": 8, "op": "reconstruct", "photo": "a.png", "out_dir": "/tmp/x", "length": "4.5"}', 8,
     "'length' of reconstruct must be a number"),
    (b'{"id": 8, "op": "reconstruct", "photo": "a.png", "out_dir": "/tmp/x", "fit_steps": 1.5}', 8,
     "'fit_steps' of reconstruct must be a whole number of steps"),
    (b'{"id": 8, "op": "reconstruct", "photo": "a.png", "out_dir": "/tmp/x", "fit_steps": "10"}', 8,
     "'fit_steps' of reconstruct must be a whole number of steps"),
    (b'{"id": 8, "op": "reconstruct", "photo": "a.png", "out_dir": "/tmp/x", "texture_size": "1024"}', 8,
     "'texture_size' of reconstruct must be a whole number of pixels or null"),
    (b'{"id": 8, "op": "reconstruct", "photo": "a.png", "out_dir": "/tmp/x", "lenght": 4.5}', 8,
     "takes no argument 'lenght'"),
    (b'{"id": 9, "op": "hello", "verbose": true}', 9, "takes no argument 'verbose'"),
    (b'{"id": 8, "op": "reconstruct", "photo": "a\\u0000.png", "out_dir": "/tmp/x"}', 8, "NUL character"),
    (b'{"id": 8, "op": "reconstruct", "photo": "a.png", "out_dir": "/tmp/\\u0000"}', 8, "NUL character"),
    (b'{"id": 8, "op": "reconstruct", "photo": "a.png", "mask": "\\u0000", "out_dir": "/tmp/x"}', 8,
     "NUL character"),
    (b"[" * 200_000 + b"]" * 200_000, None, "nests JSON too deeply"),
    (b'{"id": 9, "op": ["' + b"x" * 100_000 + b'"]}', 9, "Unknown op"),
])
def test_a_bad_request_gets_a_protocol_error_and_the_worker_goes_on(worker, request_line, expected_id, fragment):
    events, reply = worker.ask(request_line)
    assert events == []
    assert reply["type"] == "error" and reply["kind"] == "protocol" and reply["id"] == expected_id
    assert fragment in reply["message"] and reply["message"].count("\n") == 0
    assert worker.ask({"id": "after", "op": "hello"})[1]["type"] == "result"


def test_a_photo_that_is_no_image_is_an_input_error_and_writes_nothing(worker, tmp_path):
    photo = tmp_path / "photo.png"
    photo.write_text("this is not a picture")
    out_dir = tmp_path / "out"
    _, reply = worker.ask({"id": 3, "op": "reconstruct", "photo": str(photo), "out_dir": str(out_dir)})
    assert reply == {"id": 3, "type": "error", "kind": "input",
                     "message": f"The photo {photo} is not an image file this program can read."}
    assert not out_dir.exists() and sorted(tmp_path.iterdir()) == [photo]
    assert worker.ask({"id": 4, "op": "hello"})[1]["type"] == "result"


@pytest.mark.parametrize("case, fragment", [
    ("negative_length", "positive number of metres up to 1000, not -1.0."),
    ("400_digit_length", "positive number of metres up to 1000, not 1111"),
    ("fit_steps_past_2000", "Fit Steps must be a whole number from 0 to 2000, not 2001."),
    ("texture_size_100", "Texture Size must be 0 (the network's texture) or a whole number of pixels from 512 to 4096, "
                          "not 100."),
    ("quality_ultra", "Quality must be one of fast, balanced, best, not ultra."),
    ("out_dir_is_a_file", "not a writable folder"),
    ("photo_name_too_long", "File name too long."),
    ("out_dir_name_too_long", "File name too long."),
    ("photo_is_an_output", "would replace the photo"),
    ("folder_where_an_output_goes", "a folder of that name is in the way"),
])
def test_bad_values_are_input_errors_found_before_any_work(worker, tmp_path, case, fragment):
    out_dir, photo, length, quality, fit_steps, texture_size = tmp_path / "out", PHOTO, 4.5, "fast", 0, None
    if case == "quality_ultra":
        quality = "ultra"
    elif case == "fit_steps_past_2000":
        fit_steps = 2001
    elif case == "texture_size_100":
        texture_size = 100
    elif case == "negative_length":
        length = -1.0
    elif case == "400_digit_length":
        length = int("1" * 400)
    elif case == "out_dir_is_a_file":
        out_dir.write_text("a file, not a folder")
    elif case == "photo_name_too_long":
        photo = tmp_path / ("p" * 300 + ".png")
    elif case == "out_dir_name_too_long":
        out_dir = tmp_path / ("o" * 300)
    elif case == "photo_is_an_output":
        out_dir.mkdir()
        photo = out_dir / "texture.png"
        photo.write_bytes(PHOTO.read_bytes())
    elif case == "folder_where_an_output_goes":
        (out_dir / "photo_framed.png").mkdir(parents=True)
    before = sorted(tmp_path.rglob("*"))
    events, reply = worker.ask({"id": 5, "op": "reconstruct", "photo": str(photo), "out_dir": str(out_dir),
                                "length": length, "quality": quality, "fit_steps": fit_steps,
                                "texture_size": texture_size})
    if case != "photo_name_too_long":  # the photo is read with the model at hand
        assert events == []  # refused before the model was even asked for
    assert reply["type"] == "error" and reply["kind"] == "input" and fragment in reply["message"]
    assert len(reply["message"]) <= 1000 and reply["message"].count("\n") == 0
    assert sorted(tmp_path.rglob("*")) == before
    if case == "photo_is_an_output":
        assert reply["message"].endswith("; change the output folder.") and photo.read_bytes() == PHOTO.read_bytes()


def test_a_huge_path_is_not_echoed_whole_in_the_reply_or_the_log(tmp_path):
    process = WorkerProcess(tmp_path / "stderr.txt")
    try:
        huge = "/" + "d" * 200 + "/" + "x" * 5_000_000 + ".png"
        _, reply = process.ask({"id": 1, "op": "reconstruct", "photo": huge, "out_dir": str(tmp_path / "out")})
        assert reply["kind"] == "input" and len(reply["message"]) <= 1000
        assert reply["message"].startswith("Cannot use /ddd")
        assert reply["message"].endswith("xxx.png: File name too long.")
    finally:
        process.close()
    assert (tmp_path / "stderr.txt").stat().st_size < 10_000


def test_a_traceback_is_logged_with_short_lines(monkeypatch, tmp_path, capsys):
    def broken_reconstruct(*args, **kwargs):
        raise RuntimeError("a detail that quotes a huge argument: " + "x" * 1_000_000)

    monkeypatch.setattr(api, "reconstruct", broken_reconstruct)
    lines = []
    request = {"id": 1, "op": "reconstruct", "photo": str(PHOTO), "out_dir": str(tmp_path / "out")}
    worker_module.Worker(lines.append, device="cpu").handle_line(json.dumps(request).encode())
    logged = capsys.readouterr().err
    assert "Traceback" in logged and "RuntimeError" in logged
    assert max(len(line) for line in logged.splitlines()) <= 1000
    assert len(json.loads(lines[-1])["message"]) <= 1000


def test_settings_in_messages_are_named_as_the_add_on_shows_them(monkeypatch, tmp_path):
    def refusing_reconstruct(*args, **kwargs):
        raise InputError(f"Set {setting('device')} to cpu, {setting('mask')} to the car's mask, "
                         f"{setting('model')} and {setting('length')}; {setting('view_layers')} is unknown here.")

    monkeypatch.setattr(api, "reconstruct", refusing_reconstruct)
    lines = []
    request = {"id": 1, "op": "reconstruct", "photo": str(PHOTO), "out_dir": str(tmp_path / "out")}
    worker_module.Worker(lines.append, device="cpu").handle_line(json.dumps(request).encode())
    assert json.loads(lines[-1]) == {
        "id": 1, "type": "error", "kind": "input",
        "message": "Set Device to cpu, Mask to the car's mask, Model and Length; view layers is unknown here."}


def test_a_photo_without_a_car_is_refused_in_the_add_ons_words(worker, tmp_path):
    photo = tmp_path / "blue.png"
    Image.new("RGB", (256, 256), (30, 60, 220)).save(photo)
    _, reply = worker.ask({"id": 6, "op": "reconstruct", "photo": str(photo), "out_dir": str(tmp_path / "out")})
    assert reply == {"id": 6, "type": "error", "kind": "input",
                     "message": "No car found in the photo; if it shows one, set Mask to the car's mask."}


def test_temporaries_an_interrupted_request_left_are_deleted_at_the_next(worker, tmp_path):
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    orphans = [".photo_framed.png.a1b2c3d4.png", ".texture.png.zz_9y8x7.png", ".mesh.json.k2k2k2k2.json"]
    kept = [".photo_framed.png.notes", "other.png", ".texture.png.too_long_suffix.png"]
    for name in orphans + kept:
        (out_dir / name).write_bytes(b"left behind")
    _, reply = worker.ask({"id": 7, "op": "reconstruct", "photo": str(PHOTO), "out_dir": str(out_dir)})
    assert reply["type"] == "result"
    assert sorted(path.name for path in out_dir.iterdir()) == sorted(kept + ["mesh.json", "photo_framed.png",
                                                                            "texture.png"])


def test_a_client_that_closes_stdout_mid_request_ends_the_worker_quietly(tmp_path):
    with open(tmp_path / "stderr.txt", "wb") as stderr:
        process = subprocess.Popen([sys.executable, "-m", "ganverse3d.worker", "--device", "cpu"],
                                   stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=stderr,
                                   env={**os.environ, "OMP_NUM_THREADS": "1"})
        process.stdout.close()  # the client goes away before the first progress event
        process.stdin.write(json.dumps({"id": 1, "op": "reconstruct", "photo": str(PHOTO),
                                        "out_dir": str(tmp_path / "out")}).encode() + b"\n")
        process.stdin.flush()
        assert process.wait(timeout=REPLY_TIMEOUT_S) == 0
    logged = (tmp_path / "stderr.txt").read_text()
    assert "Traceback" not in logged and "BrokenPipe" not in logged


def test_an_unexpected_exception_is_one_internal_sentence_and_the_worker_goes_on(monkeypatch, tmp_path):
    def broken_reconstruct(*args, **kwargs):
        raise RuntimeError("tensor sizes do not match\nsecond line of detail")

    monkeypatch.setattr(api, "reconstruct", broken_reconstruct)
    lines = []
    in_process = worker_module.Worker(lines.append, device="cpu")
    request = {"id": 1, "op": "reconstruct", "photo": str(PHOTO), "out_dir": str(tmp_path / "out")}
    in_process.handle_line(json.dumps(request).encode())
    in_process.handle_line(b'{"id": 2, "op": "hello"}')
    replies = [json.loads(line) for line in lines if json.loads(line)["type"] != "progress"]
    assert replies[0] == {"id": 1, "type": "error", "kind": "internal",
                          "message": "Internal error: RuntimeError: tensor sizes do not match."}
    assert replies[1]["id"] == 2 and replies[1]["type"] == "result"
    assert not (tmp_path / "out").exists()


def test_an_os_error_that_reaches_the_worker_is_a_bug_not_the_users_input(monkeypatch, tmp_path):
    # The library words every path the system refuses as an InputError; an OSError left over is a bug, even when
    # it names a file.
    def broken_reconstruct(*args, **kwargs):
        raise FileNotFoundError(2, "No such file or directory", "/internal/cache/table.bin")

    monkeypatch.setattr(api, "reconstruct", broken_reconstruct)
    lines = []
    request = {"id": 1, "op": "reconstruct", "photo": str(PHOTO), "out_dir": str(tmp_path / "out")}
    worker_module.Worker(lines.append, device="cpu").handle_line(json.dumps(request).encode())
    reply = json.loads(lines[-1])
    assert reply["kind"] == "internal" and reply["message"].startswith("Internal error: FileNotFoundError")


def test_the_three_files_appear_all_or_none(monkeypatch, tmp_path):
    out_dir = tmp_path / "out"
    reconstruct = api.reconstruct

    def reconstruct_then_block_the_texture(*args, **kwargs):
        result = reconstruct(*args, **kwargs)
        (out_dir / worker_module.TEXTURE_FILE).mkdir(parents=True)  # after the checks, before the writes
        return result

    monkeypatch.setattr(api, "reconstruct", reconstruct_then_block_the_texture)
    lines = []
    request = {"id": 1, "op": "reconstruct", "photo": str(PHOTO), "out_dir": str(out_dir)}
    worker_module.Worker(lines.append, device="cpu").handle_line(json.dumps(request).encode())
    reply = json.loads(lines[-1])
    assert reply["kind"] == "input" and reply["message"].endswith("texture.png: a folder of that name is in the way.")
    assert [path.name for path in out_dir.iterdir()] == [worker_module.TEXTURE_FILE]  # no file, no temporary


def test_a_missing_model_shows_up_at_hello_as_an_input_error(tmp_path):
    missing = tmp_path / "absent.safetensors"
    process = WorkerProcess(tmp_path / "stderr.txt", "--model", str(missing))
    try:
        _, reply = process.ask({"id": 1, "op": "hello"})
        message = (f"The Model {missing} does not exist; give a weights file or the name of a shipped "
                   f"inverse-graphics model: oracle (the default) or gan.")
        assert reply == {"id": 1, "type": "error", "kind": "input", "message": message}
    finally:
        process.close()


def test_an_embedded_model_chosen_by_name_is_reported_as_embedded(tmp_path):
    process = WorkerProcess(tmp_path / "stderr.txt", "--model", "gan")
    try:
        _, reply = process.ask({"id": 1, "op": "hello"})
        assert reply["model"] == str(assets.FOLDER / "inverse_gan.safetensors")
        assert reply["summary"].endswith(" · model inverse_gan.safetensors (embedded)")
    finally:
        process.close()


# ---------------------------------------------------------------------------------------------------
# The process: stdout carries only protocol lines; shutdown, end of input and a kill


def test_library_output_cannot_reach_the_protocol_stream(tmp_path):
    script = ("import os, sys\n"
              "from ganverse3d.worker import _protocol_stdout\n"
              "protocol = _protocol_stdout()\n"
              "print('a print of some library')\n"
              "os.write(1, b'C code writing to file descriptor 1\\n')\n"
              "os.system('echo a child process')\n"
              "protocol.write('{\"id\": 1}\\n')\n"
              "protocol.flush()\n")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, timeout=60)
    assert done.returncode == 0
    assert done.stdout == b'{"id": 1}\n'
    for noise in (b"a print of some library", b"C code writing", b"a child process"):
        assert noise in done.stderr


def test_shutdown_replies_then_exits_with_code_0(fresh_worker):
    _, reply = fresh_worker.ask({"protocol": 2, "id": "bye", "op": "shutdown"})
    assert reply == {"id": "bye", "type": "result"}
    assert fresh_worker.process.wait(timeout=30) == 0
    with pytest.raises(WorkerDied):
        fresh_worker.next_message()


def test_end_of_input_exits_with_code_0_having_written_nothing(fresh_worker):
    fresh_worker.process.stdin.close()
    assert fresh_worker.process.wait(timeout=30) == 0
    assert fresh_worker.lines.get(timeout=30) is None  # no line at all before the end of output


def test_a_killed_worker_is_seen_as_dead_not_waited_for(fresh_worker):
    assert fresh_worker.ask({"id": 1, "op": "hello"})[1]["type"] == "result"
    fresh_worker.process.kill()
    with pytest.raises(WorkerDied):
        fresh_worker.ask({"id": 2, "op": "hello"})
    assert fresh_worker.process.returncode == -9


@pytest.mark.parametrize("name, given, expected", [("fit_steps", {}, None), ("fit_steps", {"fit_steps": 3}, 3),
                                                   ("texture_size", {}, None),
                                                   ("texture_size", {"texture_size": 512}, 512),
                                                   ("quality", {}, "fast"),
                                                   ("quality", {"quality": "balanced", "fit_steps": 0}, "balanced")])
def test_quality_fit_steps_and_texture_size_reach_the_reconstruction(monkeypatch, tmp_path, name, given, expected):
    calls = []
    real_reconstruct = api.reconstruct

    def recording_reconstruct(*args, **kwargs):
        calls.append(kwargs)
        return real_reconstruct(*args, **kwargs)

    monkeypatch.setattr(api, "reconstruct", recording_reconstruct)
    lines = []
    request = {"id": 1, "op": "reconstruct", "photo": str(PHOTO), "out_dir": str(tmp_path / "out"), **given}
    worker_module.Worker(lines.append, device="cpu").handle_line(json.dumps(request).encode())
    assert json.loads(lines[-1])["type"] == "result"
    assert [call[name] for call in calls] == [expected]
    texture = Image.open(tmp_path / "out" / "texture.png")
    if name == "quality":
        height = api.QUALITIES[expected].texture_size or None
    else:
        height = expected if name == "texture_size" else None
    assert texture.size == ((64, 32) if height is None else (2 * height, height))
