"""The backend worker: a persistent process that the Blender add-on talks to in JSON lines, protocol version 2.

Start it with the Python that has ``ganverse3d`` installed::

    python -m ganverse3d.worker [--device auto|cpu|cuda] [--model PATH|oracle|gan] [--segmenter SPEC]

``--model`` is an inverse-graphics bundle or an embedded model's name (default: ``oracle``,
``assets/inverse.safetensors``; ``gan`` is the one trained the paper's way), ``--segmenter``
finds the car in photos without mask or alpha (default ``world``; see ``ganverse3d reconstruct --help``). Models
load once, on the first request that needs them, and stay loaded.

Transport
---------
One JSON object per line, UTF-8, on stdin (requests) and stdout (replies). stdout carries only protocol lines:
everything else the backend prints (progress bars, warnings, prints of libraries, even C code writing to file
descriptor 1) goes to stderr, which the client may log or discard. The worker writes nothing until it receives
a request, answers requests one at a time in order, and flushes after every line. Paths are file-system paths
of the worker's machine; relative ones are resolved against the worker's working directory.

Requests
--------
``{"protocol": 2, "id": ID, "op": NAME, ...arguments}``. ``id`` is an integer or a string chosen by the client
and repeated in every line that answers the request; ``protocol`` may be left out, and any value other than 2
is refused. Version 2 added the reconstruction ids, ``neural_render`` and ``swap``; a version 1 client would
not know that a reconstruction is kept, so the versions do not mix. Arguments not listed below are refused (a
misspelt option must not be ignored silently).

Replies
-------
Zero or more progress events, then exactly one final reply::

    {"id": ID, "type": "progress", "fraction": 0.1, "message": "Predicting the mesh"}    fraction in [0, 1]
    {"id": ID, "type": "result", ...fields of the op}
    {"id": ID, "type": "error", "kind": KIND, "message": "One sentence."}

Error kinds:

* ``"protocol"``: the request breaks this protocol: a line that is not a JSON object (answered with
  ``"id": null``, as is a request without a valid id) or that nests too deeply, another protocol version, an
  unknown op, a missing, unknown or wrongly typed argument, a path with a NUL character. The client has a bug
  or speaks another version.
* ``"input"``: a problem the user can fix, in the words of :class:`ganverse3d.errors.InputError` with each
  setting named as the add-on labels it (*Mask*, *Device*; see :func:`addon_setting`), never as a flag: a
  missing or unreadable photo, a file name the system refuses, no car or several cars in it, a missing model,
  an unwritable folder, an output that would replace the photo or mask, a length that is not a positive
  number of metres, fit steps or a texture size out of range, CUDA asked for but absent.
* ``"internal"``: anything else, ``"Internal error: TypeName: detail."``; the traceback goes to stderr.

Messages are one sentence of at most 1000 characters (a longer path is shortened in the middle), and so is
every line of a logged traceback. After any error the worker stays alive and answers the next request.

Ops
---
``hello`` (no arguments): loads the model (so later requests are fast and a missing model shows up here as an
``"input"`` error) and describes the backend::

    {"protocol": 2, "versions": {"ganverse3d": "0.1.0", "torch": "2.14.1", "python": "3.11.7"},
     "device": "cpu" | "cuda (NVIDIA H100 80GB HBM3)", "model": "/abs/path/inverse.safetensors",
     "summary": "ganverse3d 0.1.0 · torch 2.14.1 · Python 3.11 · cpu · model inverse.safetensors (embedded)"}

``reconstruct``: one photo of one car to a textured mesh in Blender's frame.

* ``photo`` (string, required): the photo, any format Pillow reads; an alpha channel marks the car.
* ``mask`` (string or null, default null): the car's mask, same size as the photo (white = car).
* ``length`` (number > 0, at most 1000, default 4.5): the car's real length in metres.
* ``quality`` (string, default ``"fast"``): a preset of ``fit_steps`` and ``texture_size``
  (``ganverse3d.api.QUALITIES``: ``"fast"``, ``"balanced"``, ``"best"``); another string is an ``"input"``
  error.
* ``fit_steps`` (integer from 0 to 2000, or null, default null = the quality's): steps of fitting the mesh, its
  proportions, the camera and the texture to the photo (``ganverse3d.api.reconstruct``); 0 returns the
  network's prediction, 100 costs about a second on a CPU. Another type is a ``"protocol"`` error, an integer
  out of range an ``"input"`` one.
* ``texture_size`` (0, an integer from 512 to 4096, or null, default null = the quality's): bake the photo
  itself into ``texture.png``, this many pixels high and twice as wide (the faces the photo sees take its
  pixels, the hidden side the mirrored side's, the rest the network's texture; after the fitting when there is
  one); 0 keeps the network's 64 x 32 texture. Another type is a ``"protocol"`` error, an integer out of range
  an ``"input"`` one.
* ``out_dir`` (string, required): folder for the three files below, created if missing and owned by the
  client; files of an earlier request there are replaced, and temporaries that an interrupted request left
  there are deleted. The three files appear all or none (``mesh.json`` last); none may be the photo or the mask.

Progress events, then::

    {"reconstruction": "5f0c9a...", "mesh": "OUT/mesh.json", "texture": "OUT/texture.png",
     "framed_photo": "OUT/photo_framed.png", "length": 4.5, "scale": 1.83,
     "camera": {"azimuth": 46.1, "elevation": 9.5, "distance": 3.87, "fov_y": 30.0,
                "location": [X, Y, Z], "rotation_euler": [rx, ry, rz], "lens": 67.2,
                "sensor_width": 36.0, "sensor_height": 36.0, "sensor_fit": "VERTICAL"}}

* ``mesh.json``: ``{"vertices": [[X, Y, Z], ...], "faces": [[i, j, k], ...], "uvs": [[u, v], ...]}`` in Blender's
  world: metres, Z up, the car's front towards -Y, its lowest vertex at Z = 0, ``length`` long along Y; faces
  counter-clockwise seen from outside; one UV per face corner (3 F entries, corner k of face f at 3 f + k) in
  Blender's convention, origin at the bottom-left of the texture and v up. When the model labels parts (a part
  branch, ``api.Reconstruction.part_mesh``), the mesh is the part mesh (every face of the network's split into 16:
  the same surface, finer part borders) and three or four more keys come with it (absent otherwise; the car's
  left is +X, since forward -Y x up +Z = -X is its right):

  - ``"part_names"``: ``["body", "window", "wheel", "headlight", "taillight", "plate"]``;
  - ``"part_labels"``: [F] ints, each face's index into ``part_names``. The wheels are replaced
    (``ganverse3d.geometry.wheels.replace_wheels``): the body's wheel blobs are pulled in behind the new wheels
    (``vertices`` are the pulled-in body) and relabelled body, so no face is ``"wheel"`` in practice;
  - ``"wheels"``: four objects, front-left, front-right, rear-left, rear-right: ``{"name": "wheel_front_left" |
    "wheel_front_right" | "wheel_rear_left" | "wheel_rear_right", "front": bool, "left": bool, "hub": [X, Y, Z]
    metres in the same frame as ``vertices``, "radius": metres, "width": metres (along X), "vertices": [[x, y,
    z], ...] metres in the wheel's frame (origin at the hub, axes parallel to the world's: +X is the axle, the
    rim on the outer side: +X on the left, -X on the right), "faces": [[i, j, k], ...] counter-clockwise seen
    from outside, "materials": [M] ints, 0 = tyre, 1 = rim}``, made with the body's ``scale`` and ``lift``;
  - ``"wheel_colours"``, when the photo shows a wheel well enough (``api.Reconstruction.wheel_colours``):
    ``{"tyre": [r, g, b], "rim": [r, g, b]}``, linear RGB in [0, 1], the base colours of the tyre and rim
    materials; without it the add-on keeps its default rubber and metal.
* ``texture.png``: the predicted UV texture, 8-bit RGB.
* ``photo_framed.png``: the square crop of the photo that the camera sees (use it as the camera background).
* ``scale``: metres per object-space unit, ``length`` / (extent of the mesh along object z).
* ``camera``: azimuth / elevation (degrees), distance (object units) and vertical field of view (degrees) of
  the predicted camera, and the Blender camera that sees the mesh as the framed photo shows the car:
  ``location`` in metres, ``rotation_euler`` in radians (rotation mode XYZ), ``lens`` and sensor in
  millimetres, ``sensor_fit`` VERTICAL, for a square render (any square resolution).
* ``reconstruction``: the id under which the worker keeps the reconstruction for ``neural_render`` and
  ``swap``: a random hex string, never reused, so an id from an earlier worker is refused rather than mistaken.
  The worker keeps the last :data:`KEPT_RECONSTRUCTIONS` (reconstructions and swaps together, the least
  recently used forgotten first), with the network's texture only (what StyleGAN-R reads), and forgets them
  all when it exits.

``neural_render``: StyleGAN-R's image of a kept reconstruction from a camera (paper Sec. 4.3).

* ``reconstruction`` (string, required): an id from ``reconstruct`` or ``swap``; one this worker does not hold
  is an ``"input"`` error.
* ``camera`` (object, required), one of two forms (mixing them, a missing or a wrongly typed field is a
  ``"protocol"`` error; impossible values are ``"input"`` ones):

  - orbit: ``{"azimuth": deg, "elevation": deg, "distance": object units, "fov_y": deg}``, as
    :class:`ganverse3d.geometry.Camera`; ``fov_y`` may be left out (the reconstruction's);
  - Blender: ``{"matrix_world": 4 x 4, "car_matrix_world": 4 x 4, "lens": mm, "sensor_width": mm,
    "sensor_height": mm, "sensor_fit": "AUTO" | "HORIZONTAL" | "VERTICAL", "resolution": [width, height]}``:
    the camera object's and the car object's world matrices (rows, as ``Matrix`` iterates), the camera
    data's lens and sensor, and the frame's size (pixels times pixel aspect: only its shape counts). The car
    may be moved, rotated and scaled (also non-uniformly) after the import: the camera is taken into the car
    object's own frame, where the import put the mesh, and converted exactly (``camera_from_blender``). The
    preview always looks at the car's centre; ``off_axis`` in the reply says how far the Blender camera aims
    away from it.
* ``background`` (string or null, default null): a photo whose centred square replaces the car's own
  background (its framed photo with the car masked out).
* ``neural_model`` (string or null, default null = the shipped default): a StyleGAN-R bundle or a shipped
  name (``ganverse3d.assets``, kind ``neural``).
* ``out_dir`` (string, required): folder for ``neural.png``, created if missing; the file of an earlier request
  is replaced (atomically: a reader sees the old image or the new one).

The scene (reconstruction, background and model encoded by StyleGAN-R) is kept for the last
:data:`KEPT_SCENES` of them, so a camera that moves around one car costs only the camera's part. Result::

    {"image": "OUT/neural.png", "resolution": 64,
     "camera": {"azimuth": 30.0, "elevation": 10.0, "distance": 3.9, "fov_y": 30.0, "off_axis": 0.0}}

``resolution`` is the side of the square image (the model's); ``camera`` is the orbit camera rendered
(degrees, object units), with ``off_axis`` in degrees (0 for an orbit request).

``swap``: a new kept reconstruction made of two (``ganverse3d.api.swap``, paper Fig. 10).

* ``reconstruction`` (string, required): the car that keeps its camera, and its place in Blender: a Blender
  camera is taken into this car's frame when the swap is rendered.
* ``other`` (string, required): the car that gives ``parts``.
* ``parts`` (list of strings, required): some of ``"shape"``, ``"texture"``, ``"background"``.

Result: ``{"reconstruction": ID}``.

``shutdown`` (no arguments): result ``{}``, then the worker exits with code 0. End of input on stdin, or a
stdout that the client closed, also ends it with code 0 (quietly). A request cannot be interrupted; to cancel
one, kill the process and start a new one.

Geometry
--------
The network predicts the mesh in object space (+Y up, front +Z) and a camera looking at its origin. Blender
gets ``object_to_blender`` ((x, y, z) -> (x, -z, y)) scaled by ``scale``, lifted by ``lift`` metres so that the
lowest vertex sits on the ground, and the camera ``camera_to_blender(azimuth, elevation, distance, fov_y,
scale=scale)`` lifted by the same ``lift``: mesh and camera move together, so the render from the camera
reproduces the car of the framed photo. :func:`blender_payload` is exactly this conversion.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import platform
import sys
import traceback
import uuid
from collections import OrderedDict
from pathlib import Path
from typing import TYPE_CHECKING, Callable

# Only light modules here: torch and the rest of the backend are imported inside the ops, after main() has
# moved stdout out of the way, so that nothing they print at import time can reach the protocol stream.
from . import __version__
from .errors import InputError

if TYPE_CHECKING:
    from .api import Reconstruction
    from .geometry import Camera

PROTOCOL_VERSION = 2
DEFAULT_LENGTH_M = 4.5
# No vehicle is longer; a larger length is a typo (and would overflow the scene's scale).
MAX_LENGTH_M = 1000.0
MESH_FILE, TEXTURE_FILE, FRAMED_PHOTO_FILE = "mesh.json", "texture.png", "photo_framed.png"
NEURAL_FILE = "neural.png"
# Enough for the cars of one scene and their swaps; each holds a 642-vertex mesh and a few small images.
KEPT_RECONSTRUCTIONS = 16
# A preview moves around one car at a time; a few more keep switching between cars and backgrounds cheap.
KEPT_SCENES = 4
ORBIT_FIELDS = ("azimuth", "elevation", "distance", "fov_y")
BLENDER_FIELDS = ("matrix_world", "car_matrix_world", "lens", "sensor_width", "sensor_height", "sensor_fit",
                  "resolution")
# Longest detail kept of an unexpected exception's message, so that an error reply stays one sentence.
_MAX_DETAIL_CHARS = 300
# Longest message of a reply, and longest line of a logged traceback: a 50 MB path is not echoed whole.
_MAX_MESSAGE_CHARS = 1000
_REQUIRED = object()
# How the Blender add-on labels the settings that library messages name: the sidebar's Photo, Mask and Length,
# the preferences' Model and Device, the folder the add-on picks for the files, and Fit Steps and Texture Size (the
# labels for the add-on's fitting and photo-texture settings). An artist never reads a flag.
# Bare labels, as the panel shows them, read right wherever a message puts a setting: "set Device to cpu",
# "The Model x.safetensors does not exist", "Unknown Device 'gpu'".
_ADDON_SETTINGS = {"photo": "Photo", "mask": "Mask", "mask_path": "Mask", "length": "Length", "model": "Model",
                   "model_path": "Model", "device": "Device", "out_dir": "the output folder", "fit_steps": "Fit Steps",
                   "texture_size": "Texture Size", "quality": "Quality", "background": "Background",
                   "neural_model": "Neural Model", "parts": "the parts to swap"}


class ProtocolError(Exception):
    """A request that breaks the protocol (error kind "protocol")."""


def _json_line(message: dict) -> str:
    """One protocol line: strict JSON (no NaN), UTF-8 text kept as is."""
    return json.dumps(message, ensure_ascii=False, allow_nan=False)


def addon_setting(name: str) -> str:
    """How a message names the library setting ``name`` to the Blender artist (``"device"`` -> "Device"); see
    :meth:`ganverse3d.errors.InputError.worded`."""
    return _ADDON_SETTINGS.get(name, name.replace("_", " "))


def _shortened(text: str, limit: int = _MAX_MESSAGE_CHARS) -> str:
    """``text`` cut to at most ``limit`` characters by dropping its middle (a sentence's end stays)."""
    if len(text) <= limit:
        return text
    tail = limit // 4
    return f"{text[:limit - tail - 3]}...{text[-tail:]}"


def _log_traceback(error: BaseException) -> None:
    """The traceback of ``error`` to stderr, each line shortened (it may quote a huge argument)."""
    for chunk in traceback.format_exception(error):
        for line in chunk.rstrip("\n").split("\n"):
            sys.stderr.write(_shortened(line) + "\n")
    sys.stderr.flush()


def blender_payload(reconstruction: Reconstruction, length: float) -> tuple[dict, dict, float, float]:
    """A reconstruction -> (mesh, camera, scale, lift) in Blender's world, as ``reconstruct`` replies and writes
    them.

    Args:
        reconstruction: from :func:`ganverse3d.api.reconstruct` (object space, camera of batch size 1).
        length: the car's length in metres (> 0), along Blender's Y.

    Returns:
        mesh: ``{"vertices": [V][3] metres (Z up, front -Y, min Z = 0), "faces": [F][3] vertex indices,
            "uvs": [3 F][2] (corner k of face f at 3 f + k; origin bottom-left, v up)}``; with a part mesh
            (``reconstruction.part_mesh``: the mesh split 1-to-16, a part per face) that mesh, and also
            "part_names", "part_labels", "wheels" and maybe "wheel_colours" (the module docstring's mesh.json),
            the body's wheel blobs pulled in.
        camera: azimuth, elevation, fov_y (degrees), distance (object units), and the Blender camera:
            location (metres), rotation_euler (radians, XYZ), lens, sensor_width, sensor_height (mm), sensor_fit.
        scale: metres per object-space unit.
        lift: metres by which mesh and camera were raised (object space's origin is at (0, 0, lift)).

    Raises:
        ValueError: the mesh has no extent along object z (a degenerate prediction).
    """
    import torch

    from .api import FRAMED_SIZE
    from .geometry import camera_to_blender
    from .geometry.camera import OBJECT_TO_BLENDER
    from .geometry.wheels import replace_wheels

    mesh, camera = reconstruction.part_mesh or reconstruction.mesh, reconstruction.camera
    verts = mesh.verts.double()
    extent = float(verts[:, 2].max() - verts[:, 2].min())
    if not extent > 0:
        raise ValueError("the predicted mesh has no extent along its length axis")
    scale = length / extent
    if mesh.part_labels is not None:  # the body's wheel blobs pulled in: only x moves, so scale and lift stay
        pulled, part_labels, wheels = replace_wheels(mesh.verts, mesh.faces, mesh.part_labels)
        verts = torch.from_numpy(pulled).double()
    vertices = scale * verts @ torch.tensor(OBJECT_TO_BLENDER, dtype=torch.float64).T
    lift = -float(vertices[:, 2].min())
    vertices[:, 2] += lift
    uvs = mesh.face_uvs.double().reshape(-1, 2)
    uvs[:, 1] = 1.0 - uvs[:, 1]  # ours: (0, 0) top-left, v down; Blender's: (0, 0) bottom-left, v up

    azimuth, elevation, distance, fov_y = (float(field[0]) for field in
                                           (camera.azimuth, camera.elevation, camera.distance, camera.fov_y))
    settings = camera_to_blender(azimuth, elevation, distance, fov_y, resolution=(FRAMED_SIZE, FRAMED_SIZE),
                                 scale=scale)
    x, y, z = settings.location
    blender_mesh = {"vertices": vertices.tolist(), "faces": mesh.faces.tolist(), "uvs": uvs.tolist()}
    if mesh.part_labels is not None:
        blender_mesh.update(_blender_parts(part_labels, wheels, scale, lift))
        colours = reconstruction.wheel_colours(wheels)
        if colours:
            blender_mesh["wheel_colours"] = {material: list(colour) for material, colour in colours.items()}
    blender_camera = {
        "azimuth": azimuth, "elevation": elevation, "distance": distance, "fov_y": fov_y,
        "location": [x, y, z + lift], "rotation_euler": list(settings.rotation_euler), "lens": settings.lens,
        "sensor_width": settings.sensor_width, "sensor_height": settings.sensor_height,
        "sensor_fit": settings.sensor_fit,
    }
    return blender_mesh, blender_camera, scale, lift


def _blender_parts(part_labels, wheels: list, scale: float, lift: float) -> dict:
    """mesh.json's part keys: the part names, the body's labels after the wheel pull-in, and the wheels
    (``geometry.wheels.Wheel``, object space) moved as :func:`blender_payload` moves the body, by
    ``object_to_blender`` scaled by ``scale`` (metres per object unit), hubs lifted by ``lift`` metres."""
    import numpy as np

    from .geometry.camera import OBJECT_TO_BLENDER
    from .geometry.wheels import PART_NAMES, wheel_mesh

    to_blender = scale * np.array(OBJECT_TO_BLENDER)  # a scaled rotation (determinant > 0): windings stay
    blender_wheels = []
    for wheel in wheels:
        wheel_verts, wheel_faces, materials = wheel_mesh(wheel.radius, wheel.width, wheel.outward)
        blender_wheels.append({
            "name": wheel.name, "front": wheel.front, "left": wheel.left,
            "hub": (to_blender @ wheel.centre + (0.0, 0.0, lift)).tolist(),
            "radius": scale * wheel.radius, "width": scale * wheel.width,
            "vertices": (wheel_verts @ to_blender.T).tolist(), "faces": wheel_faces.tolist(),
            "materials": materials.tolist()})
    return {"part_names": list(PART_NAMES), "part_labels": part_labels.tolist(), "wheels": blender_wheels}


def _matrix(value, name: str) -> list[list[float]]:
    """A 4 x 4 matrix of the request (rows of numbers), or ProtocolError."""
    if (not isinstance(value, list) or len(value) != 4
            or any(not isinstance(row, list) or len(row) != 4 for row in value)
            or any(isinstance(x, bool) or not isinstance(x, (int, float)) for row in value for x in row)):
        raise ProtocolError(f"The camera's {name!r} of neural_render must be 4 rows of 4 numbers.")
    return [[float(x) for x in row] for row in value]


def blender_camera_in_car_frame(camera: dict, scale: float, lift: float) -> tuple[Camera, float]:
    """A Blender camera of ``neural_render`` (the module docstring's Blender form, fields already type-checked)
    -> (our Camera of batch size 1, off-axis angle in degrees) of the car whose import had ``scale`` and ``lift``
    (:func:`blender_payload`).

    The camera's world matrix is taken into the car object's frame (where the import put the mesh; a moved,
    rotated or scaled car carries its camera with it), lowered by ``lift`` to the object-space origin, and
    converted by :func:`ganverse3d.geometry.camera_from_blender`. The rotation is re-orthonormalised from the view
    axis first: a scaled car or camera scales the axes too, and a non-uniform scale shears them.
    """
    import torch

    from .geometry import BlenderCamera, camera_from_blender, matrix_to_euler_xyz

    car = torch.tensor(_matrix(camera["car_matrix_world"], "car_matrix_world"), dtype=torch.float64)
    view = torch.tensor(_matrix(camera["matrix_world"], "matrix_world"), dtype=torch.float64)
    if not (torch.isfinite(car).all() and torch.isfinite(view).all()):
        raise InputError("The camera's and the car's transforms must be finite numbers.")
    if abs(float(torch.linalg.det(car[:3, :3]))) < 1e-12:
        raise InputError("The car object is scaled to nothing along an axis; give it a size to preview it.")
    local = torch.linalg.solve(car, view)
    backward, up = local[:3, 2], local[:3, 1]
    if float(backward.norm()) < 1e-12 or float(up.norm()) < 1e-12:
        raise InputError("The camera object is scaled to nothing; give it a size to preview from it.")
    backward = backward / backward.norm()
    up = up - (up @ backward) * backward
    up = up / up.norm()
    rotation = torch.stack((torch.linalg.cross(up, backward), up, backward), dim=1)
    location = local[:3, 3] - torch.tensor((0.0, 0.0, lift), dtype=torch.float64)
    lens, width, height = (float(camera[name]) for name in ("lens", "sensor_width", "sensor_height"))
    resolution = camera["resolution"]
    if (not isinstance(resolution, list) or len(resolution) != 2
            or any(isinstance(x, bool) or not isinstance(x, (int, float)) for x in resolution)):
        raise ProtocolError("The camera's 'resolution' of neural_render must be [width, height].")
    if not all(math.isfinite(x) and x > 0 for x in (lens, width, height, *resolution)):
        raise InputError("The camera's lens, sensor and the render resolution must be positive numbers.")
    settings = BlenderCamera(tuple(location.tolist()), matrix_to_euler_xyz(rotation.tolist()), lens, width, height,
                             camera["sensor_fit"], tuple(resolution))
    try:
        return camera_from_blender(settings, scale=scale)
    except ValueError as error:  # the camera at the car's centre, or a sensor fit Blender does not have
        raise InputError(str(error)) from None


@dataclasses.dataclass
class Kept:
    """A reconstruction the worker keeps for ``neural_render`` and ``swap``, with the ``scale`` and ``lift`` of
    the import that put its car into Blender (:func:`blender_payload`)."""

    reconstruction: Reconstruction
    scale: float
    lift: float


# ---------------------------------------------------------------------------------------------------
# Requests


def _argument(request: dict, op: str, name: str, types: tuple[type, ...], what: str, default=_REQUIRED):
    """``request[name]`` checked against ``types`` (bool never counts as a number), or ``default``."""
    if name not in request:
        if default is _REQUIRED:
            raise ProtocolError(f"{op} needs the argument {name!r} ({what}).")
        return default
    value = request[name]
    if isinstance(value, bool) or not isinstance(value, types):  # JSON true is no number (bool is an int)
        raise ProtocolError(f"The argument {name!r} of {op} must be {what}, not {json.dumps(value)[:60]}.")
    return value


def _path_argument(request: dict, op: str, name: str, what: str, default=_REQUIRED) -> Path | None:
    """``request[name]`` as a Path (or ``default`` when absent, None when null and allowed); a path cannot
    hold a NUL character, so one that does is a client's bug."""
    allowed = (str,) if default is _REQUIRED else (str, type(None))
    value = _argument(request, op, name, allowed, what, default)
    if value is None:
        return None
    if "\0" in value:
        raise ProtocolError(f"The argument {name!r} of {op} holds a NUL character, which no path can hold.")
    return Path(value)


def _length_metres(value) -> float:
    """The car's length (an int or float of the request) in metres; InputError unless in (0, MAX_LENGTH_M]."""
    try:
        metres = float(value)
    except OverflowError:  # an integer of hundreds of digits
        metres = math.inf
    if not 0 < metres <= MAX_LENGTH_M:  # also false for NaN
        raise InputError(f"The car's length must be a positive number of metres up to {MAX_LENGTH_M:g}, "
                         f"not {_shortened(json.dumps(value), 40)}.")
    return metres


def _request_id(request: dict):
    """The request's id (int or string), or ProtocolError answered with id null."""
    request_id = request.get("id")
    if isinstance(request_id, bool) or not isinstance(request_id, (int, str)):
        raise ProtocolError("Every request needs an 'id' that is an integer or a string.")
    return request_id


class Worker:
    """Answers requests; keeps the device and model settings of the process and, through
    :func:`ganverse3d.api.load_inverse_model`, the loaded model; keeps the last reconstructions by id and the
    last StyleGAN-R scenes (see the module docstring).

    Args:
        write_line: writes one protocol line (JSON text without the newline) and flushes it.
        device, model, segmenter: as the command-line options.
    """

    def __init__(self, write_line: Callable[[str], None], device: str = "auto", model: str | None = None,
                 segmenter: str = "world"):
        self.write_line = write_line
        self.device = device
        self.model = model
        self.segmenter = segmenter
        self.ops: dict[str, tuple[Callable, frozenset]] = {
            "hello": (self.hello, frozenset()),
            "reconstruct": (self.reconstruct, frozenset({"photo", "mask", "length", "quality", "fit_steps",
                                                             "texture_size", "out_dir"})),
            "neural_render": (self.neural_render, frozenset({"reconstruction", "camera", "background",
                                                               "neural_model", "out_dir"})),
            "swap": (self.swap, frozenset({"reconstruction", "other", "parts"})),
            "shutdown": (self.shutdown, frozenset()),
        }
        self.finished = False
        self.kept: OrderedDict[str, Kept] = OrderedDict()
        self.scenes: OrderedDict[tuple, object] = OrderedDict()

    def handle_line(self, line: bytes) -> None:
        """Answer one request line; every path ends in exactly one final reply."""
        request_id = None
        try:
            try:
                request = json.loads(line.decode("utf-8"))
            except (UnicodeDecodeError, ValueError):
                raise ProtocolError("The request is not one line of UTF-8 JSON.") from None
            except RecursionError:
                raise ProtocolError("The request nests JSON too deeply.") from None
            if not isinstance(request, dict):
                raise ProtocolError(f"A request must be a JSON object, not {type(request).__name__}.")
            request_id = _request_id(request)
            version = request.get("protocol", PROTOCOL_VERSION)
            if isinstance(version, bool) or version != PROTOCOL_VERSION:
                raise ProtocolError(f"This worker speaks protocol version {PROTOCOL_VERSION}, not "
                                    f"{_shortened(json.dumps(version), 60)}; use matching versions of the add-on "
                                    f"and the backend.")
            op = request.get("op")
            if not isinstance(op, str) or op not in self.ops:
                raise ProtocolError(f"Unknown op {_shortened(json.dumps(op), 60)}; this worker knows "
                                    f"{', '.join(self.ops)}.")
            handler, arguments = self.ops[op]
            unknown = sorted(set(request) - {"protocol", "id", "op"} - arguments)
            if unknown:
                raise ProtocolError(f"{op} takes no argument {unknown[0]!r}.")
            result = handler(request, lambda fraction, message: self.write_line(_json_line(
                {"id": request_id, "type": "progress", "fraction": fraction, "message": message})))
            # Serialised inside the try: a result that JSON cannot carry (NaN) becomes an internal error.
            reply = _json_line({"id": request_id, "type": "result", **result})
        except BrokenPipeError:  # the client closed our stdout: nobody is left to answer (see main)
            raise
        except ProtocolError as error:
            return self._error(request_id, "protocol", str(error))
        except InputError as error:  # the library words every path the system refuses as one (ganverse3d.files)
            return self._error(request_id, "input", error.worded(addon_setting))
        except Exception as error:  # a bug: report it in one sentence, keep the traceback for the log
            return self._internal_error(request_id, error)
        self.write_line(reply)

    def _internal_error(self, request_id, error: Exception) -> None:
        _log_traceback(error)
        detail = (str(error).strip().splitlines() or [""])[0][:_MAX_DETAIL_CHARS].rstrip(".")
        self._error(request_id, "internal",
                    f"Internal error: {type(error).__name__}" + (f": {detail}." if detail else "."))

    def _error(self, request_id, kind: str, message: str) -> None:
        self.write_line(_json_line({"id": request_id, "type": "error", "kind": kind,
                                    "message": _shortened(message)}))

    # -- ops ----------------------------------------------------------------------------------------

    def hello(self, request: dict, progress) -> dict:
        """Load the model and describe the backend (see the module docstring)."""
        import torch

        from .api import load_inverse_model
        from .assets import is_shipped, resolve
        from .devices import resolve_device

        device = resolve_device(self.device)
        load_inverse_model(self.model, device)
        model = resolve("inverse", self.model).resolve()
        torch_version = torch.__version__.split("+")[0]
        device_text = f"cuda ({torch.cuda.get_device_name(device)})" if device.type == "cuda" else device.type
        origin = " (embedded)" if is_shipped(model) else ""
        python = f"{sys.version_info.major}.{sys.version_info.minor}"
        summary = (f"ganverse3d {__version__} · torch {torch_version} · Python {python} · {device_text} · "
                   f"model {model.name}{origin}")
        return {"protocol": PROTOCOL_VERSION,
                "versions": {"ganverse3d": __version__, "torch": torch_version, "python": platform.python_version()},
                "device": device_text, "model": str(model), "summary": summary}

    def reconstruct(self, request: dict, progress) -> dict:
        """Photo -> mesh.json, texture.png, photo_framed.png in ``out_dir`` and the Blender camera."""
        from .api import (DEFAULT_QUALITY, check_fit_steps, check_quality, check_texture_size, load_inverse_model,
                          reconstruct)
        from .api import TexturedMesh
        from .files import check_output_file, check_outputs, png_bytes, remove_temp_files, write_files

        photo = _path_argument(request, "reconstruct", "photo", "a path")
        mask = _path_argument(request, "reconstruct", "mask", "a path or null", default=None)
        length = _length_metres(_argument(request, "reconstruct", "length", (int, float), "a number of metres",
                                          default=DEFAULT_LENGTH_M))
        quality = _argument(request, "reconstruct", "quality", (str,), "a preset name",
                            default=DEFAULT_QUALITY)
        check_quality(quality)
        fit_steps = _argument(request, "reconstruct", "fit_steps", (int, type(None)), "a whole number of steps or null",
                              default=None)
        if fit_steps is not None:
            check_fit_steps(fit_steps)
        texture_size = check_texture_size(_argument(request, "reconstruct", "texture_size", (int, type(None)),
                                                    "a whole number of pixels or null", default=None))
        out_dir = _path_argument(request, "reconstruct", "out_dir", "a folder path").absolute()
        # Checked before any work, and nothing is created until the reconstruction succeeded.
        files = {"mesh": out_dir / MESH_FILE, "texture": out_dir / TEXTURE_FILE,
                 "framed_photo": out_dir / FRAMED_PHOTO_FILE}
        check_output_file(files["mesh"], (".json",))
        check_outputs(files.values(), {"photo": photo, "mask": mask}, "out_dir")
        # Orphans of a request killed mid-write: only this worker writes these names there, and it answers one
        # request at a time, so none of them is a write under way.
        remove_temp_files(out_dir, names=[path.name for path in files.values()])

        progress(0.0, "Loading the model")
        load_inverse_model(self.model, self.device)
        progress(0.1, "Predicting the mesh")
        result = reconstruct(photo, mask=mask, model=self.model, segmenter=self.segmenter, device=self.device,
                             quality=quality, fit_steps=fit_steps, texture_size=texture_size)
        progress(0.8, "Writing the mesh and texture")
        mesh, camera, scale, lift = blender_payload(result, length)
        # All three or none; mesh.json, the first, is renamed last: the client reads it first.
        write_files({files["mesh"]: json.dumps(mesh, separators=(",", ":")).encode("utf-8"),
                     files["texture"]: png_bytes(result.mesh.texture), files["framed_photo"]: png_bytes(result.image)})
        # StyleGAN-R reads the network's texture on the network's UVs; a baked texture (up to 100 MB) is not kept.
        net, _ = load_inverse_model(self.model, self.device)
        mesh_kept = TexturedMesh(result.mesh.verts, result.mesh.faces, net.face_uvs.cpu(), result.network_texture)
        kept = dataclasses.replace(result, mesh=mesh_kept, part_mesh=None)  # the part mesh holds the baked texture too
        reconstruction_id = self._keep(Kept(kept, scale, lift))
        return {"reconstruction": reconstruction_id, **{key: str(path) for key, path in files.items()},
                "length": length, "scale": scale, "camera": camera}

    def neural_render(self, request: dict, progress) -> dict:
        """A kept reconstruction, a camera -> ``neural.png`` in ``out_dir`` (see the module docstring)."""
        from .api import neural_scene
        from .files import check_output_file, check_outputs, png_bytes, remove_temp_files, write_files

        kept = self._kept(_argument(request, "neural_render", "reconstruction", (str,), "a reconstruction id"))
        camera, off_axis = self._camera(_argument(request, "neural_render", "camera", (dict,), "an object"), kept)
        background = _path_argument(request, "neural_render", "background", "a path or null", default=None)
        neural_model = _argument(request, "neural_render", "neural_model", (str, type(None)), "a path, a name or null",
                                 default=None)
        out = _path_argument(request, "neural_render", "out_dir", "a folder path").absolute() / NEURAL_FILE
        check_output_file(out, (".png",))
        check_outputs([out], {"background": background}, "out_dir")
        key = (request["reconstruction"], self._background_key(background), self._neural_model_key(neural_model))
        scene = self.scenes.pop(key, None)
        if scene is None:
            scene = neural_scene(kept.reconstruction, background=background, neural_model=neural_model,
                                 device=self.device)
        self.scenes[key] = scene
        while len(self.scenes) > KEPT_SCENES:
            self.scenes.popitem(last=False)
        image = scene.render(camera)
        remove_temp_files(out.parent, names=[out.name])
        write_files({out: png_bytes(image)})
        used = {name: float(getattr(camera, name)[0]) for name in ORBIT_FIELDS}
        return {"image": str(out), "resolution": image.shape[-1], "camera": {**used, "off_axis": off_axis}}

    def swap(self, request: dict, progress) -> dict:
        """Two kept reconstructions -> a new one with ``parts`` of the other (see the module docstring)."""
        from .api import swap

        kept = self._kept(_argument(request, "swap", "reconstruction", (str,), "a reconstruction id"))
        other = self._kept(_argument(request, "swap", "other", (str,), "a reconstruction id"))
        parts = _argument(request, "swap", "parts", (list,), "a list of part names")
        if not all(isinstance(part, str) for part in parts):
            raise ProtocolError("The argument 'parts' of swap must be a list of strings.")
        swapped = swap(kept.reconstruction, other.reconstruction, parts)
        return {"reconstruction": self._keep(Kept(swapped, kept.scale, kept.lift))}

    # -- kept reconstructions and scenes ------------------------------------------------------------

    def _keep(self, kept: Kept) -> str:
        """Keep ``kept`` under a new id (forgetting the least recently used beyond the limit); returns the id."""
        reconstruction_id = uuid.uuid4().hex
        self.kept[reconstruction_id] = kept
        while len(self.kept) > KEPT_RECONSTRUCTIONS:
            forgotten, _ = self.kept.popitem(last=False)
            for key in [key for key in self.scenes if key[0] == forgotten]:
                del self.scenes[key]
        return reconstruction_id

    def _kept(self, reconstruction_id: str) -> Kept:
        kept = self.kept.get(reconstruction_id)
        if kept is None:
            raise InputError(f"The backend holds no reconstruction {_shortened(reconstruction_id, 40)} (it keeps the "
                             f"last {KEPT_RECONSTRUCTIONS} and forgets them when it restarts); import the car again.")
        self.kept.move_to_end(reconstruction_id)
        return kept

    def _camera(self, camera: dict, kept: Kept) -> tuple[Camera, float]:
        """The request's camera (either form) -> (Camera of batch size 1, off-axis degrees), values checked."""
        import torch

        from .geometry import Camera, check_camera_values

        fields = set(camera)
        if fields <= set(ORBIT_FIELDS) and fields >= set(ORBIT_FIELDS[:3]):
            values = [camera.get(name, float(getattr(kept.reconstruction.camera, name)[0])) for name in ORBIT_FIELDS]
            if any(isinstance(x, bool) or not isinstance(x, (int, float)) for x in values):
                raise ProtocolError("The camera's azimuth, elevation, distance and fov_y of neural_render must be "
                                    "numbers.")
            result, off_axis = Camera.create(*(float(x) for x in values), dtype=torch.float64), 0.0
        elif fields == set(BLENDER_FIELDS):
            if any(isinstance(camera[name], bool) or not isinstance(camera[name], (int, float))
                   for name in ("lens", "sensor_width", "sensor_height")) or not isinstance(camera["sensor_fit"], str):
                raise ProtocolError("The camera's lens and sensor sizes of neural_render must be numbers and its "
                                    "sensor_fit a string.")
            result, off_axis = blender_camera_in_car_frame(camera, kept.scale, kept.lift)
        else:
            raise ProtocolError("The camera of neural_render must have the fields azimuth, elevation, distance "
                                f"(and fov_y), or {', '.join(BLENDER_FIELDS)}; it has {', '.join(sorted(fields))}.")
        check_camera_values(*(float(getattr(result, name)[0]) for name in ORBIT_FIELDS))
        return result, off_axis

    @staticmethod
    def _background_key(background: Path | None):
        """What a background's scene depends on: the file and its version (None: the car's own)."""
        from .errors import setting
        from .files import is_file, shown_path

        if background is None:
            return None
        if not is_file(background):
            raise InputError(f"The {setting('background')} {shown_path(background)} does not exist.")
        status = background.stat()
        return str(background.resolve()), status.st_mtime_ns, status.st_size

    @staticmethod
    def _neural_model_key(neural_model: str | None):
        """What a scene's model is: the file and its version; an ``"input"`` error when there is none."""
        from .assets import resolve

        path = resolve("neural", neural_model)
        return str(path.resolve()), path.stat().st_mtime_ns

    def shutdown(self, request: dict, progress) -> dict:
        """Reply, then let the request loop end."""
        self.finished = True
        return {}


# ---------------------------------------------------------------------------------------------------
# The process


def _protocol_stdout():
    """A text stream on the original stdout for protocol lines; stdout itself (Python's and file descriptor
    1, for C code and child processes) is pointed at stderr so that nothing else can write between them."""
    protocol = os.fdopen(os.dup(sys.stdout.fileno()), "w", encoding="utf-8", newline="\n")
    sys.stdout.flush()
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    sys.stdout = sys.stderr
    return protocol


def main(argv: list[str] | None = None) -> int:
    """``python -m ganverse3d.worker``: answer requests from stdin until ``shutdown`` or end of input."""
    parser = argparse.ArgumentParser(prog="python -m ganverse3d.worker",
                                     description="GANverse3D backend worker (JSON lines over stdin/stdout, "
                                                 f"protocol version {PROTOCOL_VERSION}; see the module docstring).")
    parser.add_argument("--device", default="auto", help="'auto' (CUDA when available), 'cpu' or 'cuda'.")
    parser.add_argument("--model", default=None,
                        help="Inverse-graphics bundle, or 'oracle' or 'gan' (embedded) [default: oracle].")
    parser.add_argument("--segmenter", default="world",
                        help="Segmenter for photos without mask: world, world:PATH, maskrcnn:PATH or detectron2:PATH.")
    options = parser.parse_args(argv)
    protocol = _protocol_stdout()

    def write_line(text: str) -> None:
        protocol.write(text + "\n")
        protocol.flush()

    worker = Worker(write_line, device=options.device, model=options.model, segmenter=options.segmenter)
    requests = sys.stdin.buffer
    try:
        while not worker.finished:
            line = requests.readline()
            if not line:  # end of input: the client went away
                break
            worker.handle_line(line)
    except BrokenPipeError:
        # The client closed our stdout: it went away mid-request. End quietly, with the protocol descriptor
        # pointed at /dev/null so that the interpreter's last flush of the unsent reply cannot complain either.
        os.dup2(os.open(os.devnull, os.O_WRONLY), protocol.fileno())
    return 0


if __name__ == "__main__":
    sys.exit(main())
