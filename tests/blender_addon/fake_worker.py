"""A stand-in for ``python -m ganverse3d.worker`` that misbehaves on purpose, for the add-on's tests.

Run as ``fake_worker.py BEHAVIOUR STARTS_FILE [worker options...]``; every start appends a line to STARTS_FILE
(so tests can count restarts), every request its JSON to a file beside it (:func:`received`, so tests see what
the add-on sent). :func:`write_launcher` makes an executable that tests give the add-on as its backend Python.
Behaviours:

* ``echo``: a well-behaved worker: every request gets two progress events, then a result
  ``{"op": ..., "arguments": {...}, "pid": ...}``; ``shutdown`` exits 0; ``fail`` gets an "input" error reply.
* ``exit``: says on stderr what a Python without the backend says, then exits with code 1 at once.
* ``crash``: reads one request, writes a last line to stderr, and dies with exit code 3.
* ``garbage``: answers the first request with a line that is not JSON.
* ``hang``: reads requests and never answers.
* ``slow``: like ``echo``, but one progress event and half a second before the result.
* ``car``: answers ``reconstruct`` in a quarter of a second with a valid car: a tetrahedron ``length`` metres
  long along Y, standing on the ground, with copies of the photo as texture and framed photo, and a camera;
  ``swap`` with a new reconstruction id; ``neural_render`` after ``NEURAL_DELAY_S`` with an 8 x 8 PNG of one
  colour that follows the camera's matrix and the background (so a moved camera gives another image).
* ``bad_mesh``: like ``car``, but at once and with a face that points past the vertices, so the add-on fails
  half-way through building the car.
* ``part_car``: like ``car`` (at once), but the car has parts (the mesh.json keys of the part-aware contract):
  a body of boxes, ``length`` metres long, labelled body / window / wheel / headlight / taillight / plate
  (:func:`part_car_mesh`), and four wheels (:func:`wheel_entry`).
* ``bad_wheel``: like ``part_car``, but its third wheel has a negative radius.
* ``world_car``: the backend's own mesh.json of a part-labelled car (``ganverse3d.worker.blender_payload`` of
  the world's sedan of seed 0 with its true part labels, ``length`` metres long): what the real worker sends
  once its model labels parts (:func:`world_car_mesh`); needs the ganverse3d package. It keeps a copy of the
  mesh.json beside its starts file (:func:`kept_mesh`), for tests that run where ganverse3d is not.
"""

import json
import math
import os
import shutil
import sys
import time
from pathlib import Path

NEURAL_DELAY_S = 0.2
CAMERA = {"location": [0, -5, 1], "rotation_euler": [1.4, 0, 0], "lens": 50, "sensor_width": 36,
          "sensor_height": 36, "sensor_fit": "VERTICAL"}


def write_launcher(folder: Path, behaviour: str) -> tuple[str, Path]:
    """An executable in ``folder`` that stands in for the backend Python -> (its path, its starts file).

    It ignores the ``-m ganverse3d.worker`` that the client puts before the worker's options and runs this file
    with ``behaviour`` in the interpreter running the tests.
    """
    starts = folder / f"{behaviour}_starts.txt"
    starts.touch()
    launcher = folder / f"python_{behaviour}"
    launcher.write_text(f"#!/bin/sh\nshift 2\nexec '{sys.executable}' '{Path(__file__).resolve()}' {behaviour} '{starts}' \"$@\"\n")
    launcher.chmod(0o755)
    return str(launcher), starts


def requests_file(starts: Path) -> Path:
    return starts.with_name(starts.name.replace("_starts.txt", "_requests.jsonl"))


def received(starts: Path) -> list[dict]:
    """The requests that the workers of the launcher with starts file ``starts`` have read, in order."""
    path = requests_file(starts)
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def reply(message):
    sys.stdout.write(json.dumps(message) + "\n")
    sys.stdout.flush()


def reconstruct_result(request: dict, faces: list | None = None, mesh: dict | None = None) -> dict:
    """Write the three files of a reconstruct answer (a tetrahedron with ``faces``, or ``mesh``: the mesh.json
    content as a function of the length) and return the reply."""
    out_dir, length = request["out_dir"], request.get("length", 4.5)
    os.makedirs(out_dir, exist_ok=True)
    files = {name: os.path.join(out_dir, name) for name in ("mesh.json", "texture.png", "photo_framed.png")}
    shutil.copy(request["photo"], files["texture.png"])
    shutil.copy(request["photo"], files["photo_framed.png"])
    if mesh is None:
        vertices = [[-0.5, -length / 2, 0], [0.5, -length / 2, 0], [0, length / 2, 0], [0, 0, 1.2]]
        mesh = {"vertices": vertices, "faces": faces, "uvs": [[0, 0], [1, 0], [0, 1]] * len(faces)}
    with open(files["mesh.json"], "w") as file:
        json.dump(mesh, file)
    return {"id": request["id"], "type": "result", "reconstruction": f"fake-{request['id']}",
            "mesh": files["mesh.json"], "texture": files["texture.png"],
            "framed_photo": files["photo_framed.png"], "length": length, "scale": 1.0, "camera": CAMERA}


PART_NAMES = ["body", "window", "wheel", "headlight", "taillight", "plate"]
WHEEL_RADIUS, WHEEL_WIDTH, WHEEL_SEGMENTS = 0.34, 0.24, 24
SPOKE_PERIOD = 4  # rim disc segments: 2 rim, 2 tyre, ... (6 spokes)
TYRE, RIM = 0, 1


def _box(lo: tuple, hi: tuple, offset: int) -> tuple[list, list]:
    """An axis-aligned box -> (8 vertices, 12 counter-clockwise (outward) triangles numbered from ``offset``)."""
    vertices = [[(lo, hi)[(corner >> axis) & 1][axis] for axis in range(3)] for corner in range(8)]
    quads = [(0, 2, 3, 1), (4, 5, 7, 6), (0, 1, 5, 4), (2, 6, 7, 3), (0, 4, 6, 2), (1, 3, 7, 5)]
    faces = [[offset + i for i in triangle] for a, b, c, d in quads for triangle in ((a, b, c), (a, c, d))]
    return vertices, faces


def part_car_mesh(length: float) -> dict:
    """A boxy car ``length`` metres long in Blender's frame (front -Y, left +X, on the ground), with part labels.

    Boxes: the lower body (body), the cabin (its 12 faces: window, but its roof stays body), an underbody strip
    between the wheels (wheel, as a backend may leave a few), two headlights at the front, two taillights and
    a plate at the rear. Each box face has the uvs (0,0) (1,0) (1,1) / (0,0) (1,1) (0,1).
    """
    half = length / 2
    boxes = [((-0.85, -half, 0.3), (0.85, half, 0.95), "body"),
             ((-0.75, -0.3 * half, 0.95), (0.75, 0.55 * half, 1.45), "window"),
             ((-0.3, -0.4 * half, 0.25), (0.3, 0.4 * half, 0.3), "wheel"),
             ((0.45, -half - 0.02, 0.65), (0.75, -half, 0.8), "headlight"),
             ((-0.75, -half - 0.02, 0.65), (-0.45, -half, 0.8), "headlight"),
             ((0.5, half, 0.7), (0.8, half + 0.02, 0.82), "taillight"),
             ((-0.8, half, 0.7), (-0.5, half + 0.02, 0.82), "taillight"),
             ((-0.25, half, 0.4), (0.25, half + 0.02, 0.52), "plate")]
    vertices, faces, labels = [], [], []
    for lo, hi, part in boxes:
        box_vertices, box_faces = _box(lo, hi, len(vertices))
        vertices += box_vertices
        faces += box_faces
        labels += [PART_NAMES.index(part)] * len(box_faces)
    labels[12 + 2:12 + 4] = [PART_NAMES.index("body")] * 2  # the cabin's top (its second quad): the roof
    uvs = [[0, 0], [1, 0], [1, 1], [0, 0], [1, 1], [0, 1]] * (len(faces) // 2)
    return {"vertices": vertices, "faces": faces, "uvs": uvs, "part_names": PART_NAMES, "part_labels": labels}


def wheel_entry(name: str, hub: list) -> dict:
    """A wheel of the contract: a tyre (tread band and sidewalls) around a rim disc on either side whose
    segments alternate rim and tyre (spokes, so that its turning shows), in the wheel's frame (+X the axle)."""
    vertices, faces, materials = [], [], []
    half, inner = WHEEL_WIDTH / 2, 0.65 * WHEEL_RADIUS
    for x in (-half, half):  # ring 0: outer, ring 1: inner, on each side; then the side's centre
        for radius in (WHEEL_RADIUS, inner):
            for k in range(WHEEL_SEGMENTS):
                angle = 2 * math.pi * k / WHEEL_SEGMENTS
                vertices.append([x, radius * math.cos(angle), radius * math.sin(angle)])
    vertices += [[-half, 0, 0], [half, 0, 0]]
    ring = lambda side, level, k: (2 * side + level) * WHEEL_SEGMENTS + k % WHEEL_SEGMENTS  # noqa: E731
    centre = (4 * WHEEL_SEGMENTS, 4 * WHEEL_SEGMENTS + 1)
    for k in range(WHEEL_SEGMENTS):
        a, b = ring(0, 0, k), ring(0, 0, k + 1)
        c, d = ring(1, 0, k + 1), ring(1, 0, k)
        faces += [[a, b, c], [a, c, d]]  # the tread, normal outwards (away from the axle)
        materials += [TYRE, TYRE]
        for side, flip in ((0, False), (1, True)):  # sidewall and rim, each side seen from outside
            outer_k, outer_next = ring(side, 0, k), ring(side, 0, k + 1)
            inner_k, inner_next = ring(side, 1, k), ring(side, 1, k + 1)
            spoke = RIM if k % SPOKE_PERIOD < SPOKE_PERIOD // 2 else TYRE
            for triangle, material in (([outer_k, inner_k, inner_next], TYRE),
                                       ([outer_k, inner_next, outer_next], TYRE),
                                       ([centre[side], inner_next, inner_k], spoke)):
                faces.append(triangle[::-1] if flip else triangle)
                materials.append(material)
    return {"name": name, "front": "front" in name, "left": name.endswith("_left"), "hub": hub,
            "radius": WHEEL_RADIUS, "width": WHEEL_WIDTH, "vertices": vertices, "faces": faces,
            "materials": materials}


def part_car_wheels(length: float) -> list:
    """The four wheels, hubs at +-0.8 m across (left = +X), 0.3 x length from the middle, on the ground."""
    return [wheel_entry(f"wheel_{end}_{side}", [0.8 if side == "left" else -0.8,
                                                -0.3 * length if end == "front" else 0.3 * length, WHEEL_RADIUS])
            for end in ("front", "rear") for side in ("left", "right")]


def kept_mesh(starts: Path) -> Path:
    """Where the ``world_car`` worker of the launcher with starts file ``starts`` keeps its last mesh.json."""
    return starts.with_name(starts.name.replace("_starts.txt", "_mesh.json"))


def world_car_mesh(length: float) -> tuple[dict, dict]:
    """The real worker's (mesh.json content, Blender camera) for the world's sedan of seed 0 with its true parts."""
    import types

    import numpy as np

    from ganverse3d.api import TexturedMesh
    from ganverse3d.geometry.camera import Camera
    from ganverse3d.worker import blender_payload
    from ganverse3d.world import cars

    car = cars.build_car(cars.sample_car_spec(np.random.default_rng(0), "sedan"))
    mesh = TexturedMesh(car.verts, car.faces, car.face_uvs, car.texture, car.part_labels)
    # No photo: no wheel colours (test_import_photo.py checks them on the real worker's import).
    reconstruction = types.SimpleNamespace(mesh=mesh, part_mesh=mesh, camera=Camera.create(30.0, 10.0, 2.6, 40.0),
                                           wheel_colours=lambda wheels: {})
    blender_mesh, camera, _, _ = blender_payload(reconstruction, length)
    return blender_mesh, camera


def neural_result(request: dict) -> dict:
    """Write ``neural.png`` (8 x 8, one colour made from the camera and background) and return the reply."""
    from PIL import Image

    seed = hash(json.dumps([request["camera"], request.get("background"), request["reconstruction"]])) % 2**24
    os.makedirs(request["out_dir"], exist_ok=True)
    path = os.path.join(request["out_dir"], "neural.png")
    Image.new("RGB", (8, 8), (seed & 255, (seed >> 8) & 255, seed >> 16)).save(path)
    return {"id": request["id"], "type": "result", "image": path, "resolution": 8,
            "camera": {"azimuth": 10.0, "elevation": 5.0, "distance": 3.0, "fov_y": 30.0, "off_axis": 0.0}}


def main(behaviour: str, starts_file: str, options: list[str]) -> None:
    with open(starts_file, "a") as starts:
        starts.write(f"{os.getpid()} {' '.join(options)}\n")
    if behaviour == "exit":
        sys.stderr.write("Traceback (most recent call last):\nModuleNotFoundError: No module named 'ganverse3d'\n")
        sys.exit(1)
    for line in sys.stdin:
        request = json.loads(line)
        with open(requests_file(Path(starts_file)), "a") as requests:
            requests.write(json.dumps(request) + "\n")
        request_id, op = request["id"], request["op"]
        if behaviour == "crash":
            sys.stderr.write("Fatal Python error: Segmentation fault\n")
            sys.stderr.flush()
            os._exit(3)
        if behaviour == "garbage":
            sys.stdout.write("Loading model weights... done\n")
            sys.stdout.flush()
            continue
        if behaviour == "hang":
            time.sleep(3600)
        if behaviour == "slow":
            reply({"id": request_id, "type": "progress", "fraction": 0.5, "message": "Predicting the mesh"})
            time.sleep(0.5)
        if op == "reconstruct" and behaviour == "car":
            reply({"id": request_id, "type": "progress", "fraction": 0.5, "message": "Predicting the mesh"})
            time.sleep(0.25)
            reply(reconstruct_result(request, faces=[[0, 2, 1], [0, 1, 3], [1, 2, 3], [2, 0, 3]]))
            continue
        if op == "swap" and behaviour == "car":
            reply({"id": request_id, "type": "result", "reconstruction": f"swapped-{request_id}"})
            continue
        if op == "neural_render" and behaviour == "car":
            time.sleep(NEURAL_DELAY_S)
            reply(neural_result(request))
            continue
        if op == "reconstruct" and behaviour == "bad_mesh":
            reply(reconstruct_result(request, faces=[[0, 1, 7]]))
            continue
        if op == "reconstruct" and behaviour in ("part_car", "bad_wheel"):
            length = request.get("length", 4.5)
            mesh = {**part_car_mesh(length), "wheels": part_car_wheels(length)}
            if behaviour == "bad_wheel":
                mesh["wheels"][2]["radius"] = -0.3
            reply(reconstruct_result(request, mesh=mesh))
            continue
        if op == "reconstruct" and behaviour == "world_car":
            mesh, camera = world_car_mesh(request.get("length", 4.5))
            kept_mesh(Path(starts_file)).write_text(json.dumps(mesh))
            reply({**reconstruct_result(request, mesh=mesh), "camera": camera})
            continue
        if op == "fail":
            reply({"id": request_id, "type": "error", "kind": "input", "message": "No car found in the photo."})
            continue
        for fraction in (0.25, 0.75) if behaviour == "echo" else ():
            reply({"id": request_id, "type": "progress", "fraction": fraction, "message": f"Step {fraction}"})
        arguments = {key: value for key, value in request.items() if key not in ("protocol", "id", "op")}
        reply({"id": request_id, "type": "result", "op": op, "arguments": arguments, "pid": os.getpid()})
        if op == "shutdown":
            sys.exit(0)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], sys.argv[3:])
