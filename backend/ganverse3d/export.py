"""Textured meshes to and from files: binary glTF (.glb) and Wavefront OBJ (.obj + .mtl + texture .png).

Conventions (docs/ARCHITECTURE.md):

* Object space is +Y up with the car's front facing +Z, which is glTF's own convention, so positions are
  written unchanged; Blender's glTF importer maps them as (x, y, z) -> (x, -z, y), the front to Blender's -Y.
* UVs are glTF's: (0, 0) is the top-left of the texture image and v grows downward. OBJ counts v from the
  bottom of the image, so .obj files store 1 - v. Textures repeat in u (UVs may run a little past 1 on
  faces that cross a seam) and clamp in v; the .glb sampler says so (wrapS REPEAT, wrapT CLAMP_TO_EDGE).
* A car with part labels can be written part-aware (:func:`part_aware_car`): one material per part and four
  separate wheel meshes instead of the body's wheel blobs.
* glTF and OBJ viewers need one UV per vertex, while our meshes carry UVs per face corner: vertices are
  split only where their corners' UVs (or part labels) differ, so the file stays connected elsewhere.
  Loading welds vertices at identical positions again, so our own files load back with the original
  vertex order and faces.
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from . import __version__
from .errors import InputError
from .files import is_file, png_bytes, shown_path, write_files
from .geometry import vertex_normals
from .geometry.wheels import (PART_NAMES, RIM_MATERIAL, TYRE_MATERIAL, WHEEL_LABEL, Wheel, replace_wheels,
                              wheel_mesh)

# Labels travel through .glb as float32 (glTF allows no 32-bit integer vertex attributes), exact below 2**24.
_MAX_PART_LABEL = 2**24 - 1
_PART_ATTRIBUTE = "_PART"
# Colour of the flat texture given to meshes that have no UVs or no texture image.
_FLAT_GREY = 0.5

_GLTF_FLOAT, _GLTF_UNSIGNED_INT = 5126, 5125
_GLTF_ARRAY_BUFFER, _GLTF_ELEMENT_ARRAY_BUFFER = 34962, 34963
_GLTF_LINEAR, _GLTF_LINEAR_MIPMAP_LINEAR = 9729, 9987
_GLTF_REPEAT, _GLTF_CLAMP_TO_EDGE = 10497, 33071
_GLB_MAGIC, _GLB_JSON_CHUNK, _GLB_BIN_CHUNK = 0x46546C67, 0x4E4F534A, 0x004E4942


@dataclass
class TexturedMesh:
    """One textured mesh in object space (+Y up, front at +Z).

    Attributes:
        verts: [V, 3] float32 positions.
        faces: [F, 3] int64 vertex indices, counter-clockwise seen from outside; F >= 1.
        face_uvs: [F, 3, 2] float32 UVs per face corner, (0, 0) = top-left of the texture, v downward;
            u may run past [0, 1] (the texture repeats in u), v is clamped to the texture.
        texture: [3, Ht, Wt] float32 RGB in [0, 1], row 0 at the top.
        part_labels: optional [F] int64 part id per face, in [0, 2**24).

    Tensors or arrays are accepted and stored as detached CPU tensors of the dtypes above.
    """

    verts: torch.Tensor
    faces: torch.Tensor
    face_uvs: torch.Tensor
    texture: torch.Tensor
    part_labels: torch.Tensor | None = None

    def __post_init__(self):
        self.verts = _cpu_tensor(self.verts, torch.float32, "verts")
        self.faces = _cpu_tensor(self.faces, torch.int64, "faces")
        self.face_uvs = _cpu_tensor(self.face_uvs, torch.float32, "face_uvs")
        self.texture = _cpu_tensor(self.texture, torch.float32, "texture")
        if self.verts.dim() != 2 or self.verts.shape[1] != 3:
            raise ValueError(f"verts must have shape [V, 3]; got {list(self.verts.shape)}.")
        if self.faces.dim() != 2 or self.faces.shape[1] != 3 or self.faces.shape[0] == 0:
            raise ValueError(f"faces must have shape [F, 3] with F >= 1; got {list(self.faces.shape)}.")
        num_faces = self.faces.shape[0]
        if tuple(self.face_uvs.shape) != (num_faces, 3, 2):
            raise ValueError(f"face_uvs must have shape [F, 3, 2] = [{num_faces}, 3, 2]; "
                             f"got {list(self.face_uvs.shape)}.")
        if self.texture.dim() != 3 or self.texture.shape[0] != 3 or min(self.texture.shape[1:]) < 1:
            raise ValueError(f"texture must have shape [3, Ht, Wt]; got {list(self.texture.shape)}.")
        if int(self.faces.min()) < 0 or int(self.faces.max()) >= self.verts.shape[0]:
            raise ValueError(f"faces must index the {self.verts.shape[0]} vertices; "
                             f"found indices from {int(self.faces.min())} to {int(self.faces.max())}.")
        for name in ("verts", "face_uvs", "texture"):
            if not bool(torch.isfinite(getattr(self, name)).all()):
                raise ValueError(f"{name} contains NaN or infinite values.")
        if self.part_labels is not None:
            self.part_labels = _cpu_tensor(self.part_labels, torch.int64, "part_labels")
            if tuple(self.part_labels.shape) != (num_faces,):
                raise ValueError(f"part_labels must have shape [F] = [{num_faces}]; "
                                 f"got {list(self.part_labels.shape)}.")
            if int(self.part_labels.min()) < 0 or int(self.part_labels.max()) > _MAX_PART_LABEL:
                raise ValueError(f"part_labels must lie in [0, {_MAX_PART_LABEL}].")


def _cpu_tensor(value, dtype: torch.dtype, name: str) -> torch.Tensor:
    tensor = value.detach().cpu() if isinstance(value, torch.Tensor) else torch.as_tensor(np.asarray(value))
    if not dtype.is_floating_point and tensor.dtype.is_floating_point:
        raise ValueError(f"{name} must hold integers; got {tensor.dtype}.")
    return tensor.to(dtype).contiguous()


@dataclass
class CarWheel:
    """One wheel of a :class:`PartAwareCar`: where it is and its mesh in its own frame.

    Attributes:
        wheel: name, hub (object space), radius, width, front / left, how it was found
            (:class:`ganverse3d.geometry.wheels.Wheel`).
        verts: [N, 3] float32, the wheel's mesh in its frame: origin at the hub, axes the car's (+X the axle).
        faces: [M, 3] int64, counter-clockwise seen from outside.
        materials: [M] int64, 0 = tyre, 1 = rim (:func:`ganverse3d.geometry.wheels.wheel_mesh`).
    """

    wheel: Wheel
    verts: np.ndarray
    faces: np.ndarray
    materials: np.ndarray


@dataclass
class PartAwareCar:
    """A car cut into its parts: the body (one material per part id) and four separate wheels.

    Attributes:
        body: the labelled mesh with its wheel blobs pulled in and relabelled body (part ids:
            ``geometry.wheels.PART_NAMES``).
        wheels: front-left, front-right, rear-left, rear-right.
        wheel_colours: ``{"tyre": (r, g, b), "rim": (r, g, b)}``, linear RGB in [0, 1], base colours that replace
            the default rubber and metal of those materials (``geometry.wheels.photo_wheel_colours``: the colours
            the photo shows); a material without an entry keeps its default look.
    """

    body: TexturedMesh
    wheels: list[CarWheel]
    wheel_colours: dict[str, tuple[float, float, float]] = field(default_factory=dict)

    def look(self, material_name: str) -> dict:
        """The look (a :data:`_PART_LOOKS` entry) of the car's material ``material_name``, with its wheel colour."""
        look = _PART_LOOKS.get(material_name, _PART_LOOKS["body"])
        if material_name in self.wheel_colours:
            look = {**look, "baseColorFactor": [*self.wheel_colours[material_name], 1.0]}
        return look


def part_aware_car(mesh: TexturedMesh) -> PartAwareCar:
    """The part-aware car of a mesh with part labels: wheels fitted to its wheel-labelled faces, the body's wheel
    blobs pulled in behind them (``geometry.wheels.replace_wheels``), a tyre + rim mesh for each wheel.

    Raises:
        ValueError: the mesh has no part labels.
    """
    if mesh.part_labels is None:
        raise ValueError("a part-aware car needs a mesh with part labels.")
    verts, labels, wheels = replace_wheels(mesh.verts, mesh.faces, mesh.part_labels)
    body = TexturedMesh(verts, mesh.faces, mesh.face_uvs, mesh.texture, labels)
    return PartAwareCar(body, [CarWheel(wheel, verts.astype(np.float32), faces, materials) for wheel in wheels
                               for verts, faces, materials in [wheel_mesh(wheel.radius, wheel.width, wheel.outward)]])


def save_mesh(path, mesh: TexturedMesh | PartAwareCar) -> list[Path]:
    """Write ``mesh`` to ``path`` by its suffix (see :func:`mesh_files`) and return the files written, all of
    them or none (:func:`ganverse3d.files.write_files`).

    * ``.glb``: one self-contained binary glTF (POSITION, NORMAL, TEXCOORD_0 and, with part labels, the
      custom float attribute ``_PART``; the texture embedded as PNG in a PBR material). A
      :class:`PartAwareCar` is node ``body`` with one primitive and material per part id (all of them with
      ``_PART``; looks in ``_PART_LOOKS``: the photo texture on body, window, lights; tinted glass with alpha
      BLEND; emissive white head- and red taillights; a plain light plate) and, as its children, nodes
      ``wheel_front_left``, ``wheel_front_right``, ``wheel_rear_left``, ``wheel_rear_right`` translated to
      their hubs, each with a ``tyre`` (dark rubber) and a ``rim`` (metal) primitive (``_PART`` = wheel).
    * ``.obj``: ``NAME.obj`` plus ``NAME.mtl`` and ``NAME_texture.png`` next to it, named after the
      output's stem so that exports to one folder never collide. OBJ cannot carry part labels; a part-aware
      car's parts are its material groups and its wheels are objects of their own (see :func:`_obj_bytes`).
    """
    return write_files(encode_mesh(path, mesh))


def mesh_files(path) -> list[Path]:
    """The files :func:`save_mesh` writes for ``path``: itself for a .glb; for a .obj also ``NAME.mtl`` and
    ``NAME_texture.png`` beside it."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".glb":
        return [path]
    if suffix == ".obj":
        return [path, path.with_suffix(".mtl"), path.with_name(f"{path.stem}_texture.png")]
    raise InputError(f"Cannot write {path.name}: the mesh file name must end in .glb or .obj.")


def encode_mesh(path, mesh: TexturedMesh | PartAwareCar) -> dict[Path, bytes]:
    """The contents of each of :func:`mesh_files` ``(path)`` for ``mesh``, in that order."""
    files = mesh_files(path)
    if len(files) == 1:
        return {files[0]: _glb_bytes(mesh, name=files[0].stem)}
    return dict(zip(files, _obj_bytes(*files, mesh)))


# ---------------------------------------------------------------------------------------------------
# Writing
# ---------------------------------------------------------------------------------------------------

@dataclass
class _SplitMesh:
    """The mesh with one UV (and label) per vertex, as glTF stores it: vertices split where corners differ."""

    positions: np.ndarray  # [N, 3] float32
    normals: np.ndarray    # [N, 3] float32, unit length, smooth across UV seams
    uvs: np.ndarray        # [N, 2] float32
    labels: np.ndarray | None  # [N] float32
    faces: np.ndarray      # [F, 3] uint32 into the split vertices, in the original face order


def _split_by_corner_attributes(mesh: TexturedMesh) -> _SplitMesh:
    corner_vertex = mesh.faces.reshape(-1).numpy()
    columns = [corner_vertex.astype(np.float64), mesh.face_uvs.reshape(-1, 2).numpy().astype(np.float64)]
    if mesh.part_labels is not None:
        columns.append(mesh.part_labels.repeat_interleave(3).numpy().astype(np.float64))
    # Every key component is exact in float64, so equal keys mean identical (vertex, uv, label) corners.
    # np.unique sorts by the original vertex index first, so split copies of a vertex stay adjacent.
    _, first_corner, corner_to_split = np.unique(np.column_stack(columns), axis=0, return_index=True,
                                                 return_inverse=True)
    source_vertex = corner_vertex[first_corner]
    normals = vertex_normals(mesh.verts, mesh.faces).numpy()[source_vertex]
    # A vertex whose faces are all degenerate has no normal; glTF requires unit normals, any will do.
    normals[np.linalg.norm(normals, axis=1) < 0.5] = (0.0, 1.0, 0.0)
    labels = None
    if mesh.part_labels is not None:
        labels = mesh.part_labels.repeat_interleave(3).numpy()[first_corner].astype(np.float32)
    return _SplitMesh(
        positions=mesh.verts.numpy()[source_vertex],
        normals=normals.astype(np.float32),
        uvs=mesh.face_uvs.reshape(-1, 2).numpy()[first_corner],
        labels=labels,
        faces=corner_to_split.reshape(-1, 3).astype(np.uint32),
    )


class _GlbBinary:
    """The BIN chunk of a .glb under construction, with the bufferViews and accessors that point into it."""

    def __init__(self):
        self.data = bytearray()
        self.buffer_views: list[dict] = []
        self.accessors: list[dict] = []

    def add_view(self, payload: bytes, target: int | None = None) -> int:
        self.data += b"\0" * (-len(self.data) % 4)  # accessors need 4-byte aligned views
        view = {"buffer": 0, "byteOffset": len(self.data), "byteLength": len(payload)}
        if target is not None:
            view["target"] = target
        self.data += payload
        self.buffer_views.append(view)
        return len(self.buffer_views) - 1

    def add_accessor(self, array: np.ndarray, accessor_type: str, target: int, with_bounds: bool = False) -> int:
        component_type = _GLTF_UNSIGNED_INT if array.dtype == np.uint32 else _GLTF_FLOAT
        payload = np.ascontiguousarray(array, dtype=array.dtype.newbyteorder("<")).tobytes()  # glTF is little-endian
        accessor = {"bufferView": self.add_view(payload, target), "componentType": component_type,
                    "count": len(array), "type": accessor_type}
        if with_bounds:  # required for POSITION
            accessor["min"] = array.min(axis=0).tolist()
            accessor["max"] = array.max(axis=0).tolist()
        self.accessors.append(accessor)
        return len(self.accessors) - 1


def _body_attributes(binary: _GlbBinary, split: _SplitMesh) -> dict:
    attributes = {
        "POSITION": binary.add_accessor(split.positions, "VEC3", _GLTF_ARRAY_BUFFER, with_bounds=True),
        "NORMAL": binary.add_accessor(split.normals, "VEC3", _GLTF_ARRAY_BUFFER),
        "TEXCOORD_0": binary.add_accessor(split.uvs, "VEC2", _GLTF_ARRAY_BUFFER),
    }
    if split.labels is not None:
        attributes[_PART_ATTRIBUTE] = binary.add_accessor(split.labels, "SCALAR", _GLTF_ARRAY_BUFFER)
    return attributes


def _indices(binary: _GlbBinary, faces: np.ndarray) -> int:
    return binary.add_accessor(faces.reshape(-1).astype(np.uint32), "SCALAR", _GLTF_ELEMENT_ARRAY_BUFFER)


# The look of each part of a part-aware car in glTF's metallic-roughness model. "texture": the photo texture as
# base colour (multiplied by baseColorFactor where given); parts without it are plain colours. The window is
# tinted glass that lets the cabin show through (alpha BLEND); the lights glow (emissive, white at the front,
# red at the back); wheels have no UVs, so their tyre and rim are plain rubber and metal, in the colours the photo
# shows where it shows them (PartAwareCar.wheel_colours).
_PART_LOOKS = {
    "body": dict(texture=True, metallicFactor=0.0, roughnessFactor=0.4),
    "window": dict(texture=True, baseColorFactor=[0.3, 0.33, 0.36, 0.55], metallicFactor=0.0, roughnessFactor=0.05,
                   alphaMode="BLEND"),
    "wheel": dict(texture=True, metallicFactor=0.0, roughnessFactor=0.9),
    "headlight": dict(texture=True, metallicFactor=0.0, roughnessFactor=0.2, emissiveFactor=[1.0, 1.0, 1.0]),
    "taillight": dict(texture=True, metallicFactor=0.0, roughnessFactor=0.2, emissiveFactor=[1.0, 0.05, 0.02]),
    "plate": dict(texture=False, baseColorFactor=[0.9, 0.9, 0.88, 1.0], metallicFactor=0.0, roughnessFactor=0.6),
    "tyre": dict(texture=False, baseColorFactor=[0.03, 0.03, 0.03, 1.0], metallicFactor=0.0, roughnessFactor=0.9),
    "rim": dict(texture=False, baseColorFactor=[0.8, 0.8, 0.82, 1.0], metallicFactor=1.0, roughnessFactor=0.3),
}
_WHEEL_MATERIAL_NAMES = {TYRE_MATERIAL: "tyre", RIM_MATERIAL: "rim"}


def _material(name: str, look: dict) -> dict:
    pbr = {key: look[key] for key in ("baseColorFactor", "metallicFactor", "roughnessFactor") if key in look}
    if look["texture"]:
        pbr["baseColorTexture"] = {"index": 0}
    material = {"name": name, "pbrMetallicRoughness": pbr, "doubleSided": True}
    material.update({key: look[key] for key in ("alphaMode", "emissiveFactor") if key in look})
    return material


def _part_name(part_id: int) -> str:
    return PART_NAMES[part_id] if part_id < len(PART_NAMES) else f"part_{part_id}"


def _plain_scene(binary: _GlbBinary, mesh: TexturedMesh, name: str) -> tuple[list, list, list]:
    """(nodes, meshes, materials) of one mesh: one node, one primitive, the photo texture."""
    split = _split_by_corner_attributes(mesh)
    primitive = {"attributes": _body_attributes(binary, split), "indices": _indices(binary, split.faces),
                 "material": 0, "mode": 4}
    # Non-metallic and fully rough: the closest PBR material to the Lambertian shading we render with.
    material = _material(name, dict(texture=True, metallicFactor=0.0, roughnessFactor=1.0))
    return [{"mesh": 0, "name": name}], [{"name": name, "primitives": [primitive]}], [material]


def _part_aware_scene(binary: _GlbBinary, car: PartAwareCar) -> tuple[list, list, list]:
    """(nodes, meshes, materials) of a part-aware car: node "body" with one primitive per part id (all sharing
    the body's vertex attributes, ``_PART`` among them), and four wheel nodes as its children, each translated
    to its hub, with a tyre and a rim primitive (``_PART`` = the wheel id)."""
    materials: list[dict] = []

    def material_index(name: str) -> int:
        names = [material["name"] for material in materials]
        if name not in names:
            materials.append(_material(name, car.look(name)))
            names.append(name)
        return names.index(name)

    split = _split_by_corner_attributes(car.body)
    attributes = _body_attributes(binary, split)
    labels = car.body.part_labels.numpy()
    body_primitives = [{"attributes": attributes, "indices": _indices(binary, split.faces[labels == part_id]),
                        "material": material_index(_part_name(int(part_id))), "mode": 4}
                       for part_id in np.unique(labels)]
    nodes = [{"name": "body", "mesh": 0, "children": list(range(1, 1 + len(car.wheels)))}]
    meshes = [{"name": "body", "primitives": body_primitives}]
    for car_wheel in car.wheels:
        normals = vertex_normals(torch.from_numpy(car_wheel.verts), torch.from_numpy(car_wheel.faces)).numpy()
        wheel_attributes = {
            "POSITION": binary.add_accessor(car_wheel.verts, "VEC3", _GLTF_ARRAY_BUFFER, with_bounds=True),
            "NORMAL": binary.add_accessor(normals.astype(np.float32), "VEC3", _GLTF_ARRAY_BUFFER),
            _PART_ATTRIBUTE: binary.add_accessor(np.full(len(car_wheel.verts), WHEEL_LABEL, np.float32), "SCALAR",
                                                 _GLTF_ARRAY_BUFFER),
        }
        primitives = [{"attributes": wheel_attributes, "mode": 4,
                       "indices": _indices(binary, car_wheel.faces[car_wheel.materials == material_id]),
                       "material": material_index(_WHEEL_MATERIAL_NAMES[material_id])}
                      for material_id in np.unique(car_wheel.materials)]
        name = car_wheel.wheel.name
        nodes.append({"name": name, "mesh": len(meshes), "translation": car_wheel.wheel.centre.tolist()})
        meshes.append({"name": name, "primitives": primitives})
    return nodes, meshes, materials


def _glb_bytes(model: TexturedMesh | PartAwareCar, name: str) -> bytes:
    binary = _GlbBinary()
    if isinstance(model, PartAwareCar):
        nodes, meshes, materials = _part_aware_scene(binary, model)
        texture = model.body.texture
    else:
        nodes, meshes, materials = _plain_scene(binary, model, name)
        texture = model.texture
    image_view = binary.add_view(png_bytes(texture))
    binary.data += b"\0" * (-len(binary.data) % 4)
    document = {
        "asset": {"version": "2.0", "generator": f"ganverse3d {__version__}"},
        "scene": 0,
        "scenes": [{"nodes": [0]}],
        "nodes": nodes,
        "meshes": meshes,
        # Reconstructed meshes may fold over: every material shows both sides rather than holes.
        "materials": materials,
        "textures": [{"sampler": 0, "source": 0}],
        "images": [{"bufferView": image_view, "mimeType": "image/png", "name": name}],
        "samplers": [{"magFilter": _GLTF_LINEAR, "minFilter": _GLTF_LINEAR_MIPMAP_LINEAR,
                      "wrapS": _GLTF_REPEAT, "wrapT": _GLTF_CLAMP_TO_EDGE}],
        "accessors": binary.accessors,
        "bufferViews": binary.buffer_views,
        "buffers": [{"byteLength": len(binary.data)}],
    }
    json_chunk = json.dumps(document, separators=(",", ":")).encode("utf-8")
    json_chunk += b" " * (-len(json_chunk) % 4)
    total = 12 + 8 + len(json_chunk) + 8 + len(binary.data)
    return b"".join((struct.pack("<III", _GLB_MAGIC, 2, total),
                     struct.pack("<II", len(json_chunk), _GLB_JSON_CHUNK), json_chunk,
                     struct.pack("<II", len(binary.data), _GLB_BIN_CHUNK), bytes(binary.data)))


def _format_rows(tag: str, rows: np.ndarray, fmt: str) -> str:
    return "".join(f"{tag} {fmt % tuple(row)}\n" for row in rows.tolist())


def _obj_bytes(path: Path, mtl_path: Path, texture_path: Path, model: TexturedMesh | PartAwareCar
               ) -> tuple[bytes, bytes, bytes]:
    """The .obj, .mtl and texture .png of ``model``, which refer to each other by the names of the paths.

    A plain mesh is one object with one material named after the file. A part-aware car is object ``body``
    with one ``usemtl`` group per part id (materials named as the parts) and objects ``wheel_front_left`` ...
    with ``tyre`` and ``rim`` groups; OBJ has no node transforms, so the wheels' vertices are placed at their
    hubs, and it has no part ids either: the material names carry them."""
    stem = path.stem
    mesh = model.body if isinstance(model, PartAwareCar) else model
    uvs, corner_uv = np.unique(mesh.face_uvs.reshape(-1, 2).numpy(), axis=0, return_inverse=True)
    obj_uvs = np.column_stack((uvs[:, 0], 1.0 - uvs[:, 1].astype(np.float64)))  # OBJ's v counts from the bottom
    normals = vertex_normals(mesh.verts, mesh.faces).numpy()
    vertex = mesh.faces.numpy() + 1  # OBJ indices start at 1
    uv_index = corner_uv.reshape(-1, 3) + 1
    corners = np.stack((vertex, uv_index, vertex), axis=-1).reshape(-1, 9)  # v/vt/vn, normals per vertex
    lines = [f"# ganverse3d {__version__}: +Y up, front at +Z\n", f"mtllib {mtl_path.name}\n"]
    if not isinstance(model, PartAwareCar):
        lines += [f"o {stem}\n", _format_rows("v", mesh.verts.numpy(), "%.9g %.9g %.9g"),
                  _format_rows("vt", obj_uvs, "%.9g %.9g"), _format_rows("vn", normals, "%.6f %.6f %.6f"),
                  f"usemtl {stem}\n", _format_rows("f", corners, "%d/%d/%d %d/%d/%d %d/%d/%d")]
        mtl_text = (f"newmtl {stem}\n"
                    "Ka 0 0 0\nKd 1 1 1\nKs 0 0 0\nd 1\nillum 1\n"
                    f"map_Kd {texture_path.name}\n")
        return "".join(lines).encode("utf-8"), mtl_text.encode("utf-8"), png_bytes(mesh.texture)

    lines += ["o body\n", _format_rows("v", mesh.verts.numpy(), "%.9g %.9g %.9g"),
              _format_rows("vt", obj_uvs, "%.9g %.9g"), _format_rows("vn", normals, "%.6f %.6f %.6f")]
    labels = mesh.part_labels.numpy()
    material_names = []
    for part_id in np.unique(labels):
        material_names.append(_part_name(int(part_id)))
        lines += [f"usemtl {material_names[-1]}\n",
                  _format_rows("f", corners[labels == part_id], "%d/%d/%d %d/%d/%d %d/%d/%d")]
    offset = len(mesh.verts)  # vertices (and normals) so far: the next object's indices start after them
    for car_wheel in model.wheels:
        wheel_normals = vertex_normals(torch.from_numpy(car_wheel.verts), torch.from_numpy(car_wheel.faces)).numpy()
        lines += [f"o {car_wheel.wheel.name}\n",
                  _format_rows("v", car_wheel.verts.astype(np.float64) + car_wheel.wheel.centre, "%.9g %.9g %.9g"),
                  _format_rows("vn", wheel_normals, "%.6f %.6f %.6f")]
        for material_id in np.unique(car_wheel.materials):
            name = _WHEEL_MATERIAL_NAMES[material_id]
            if name not in material_names:
                material_names.append(name)
            wheel_vertex = car_wheel.faces[car_wheel.materials == material_id] + offset + 1
            lines += [f"usemtl {name}\n",
                      _format_rows("f", np.repeat(wheel_vertex, 2, axis=1), "%d//%d %d//%d %d//%d")]
        offset += len(car_wheel.verts)
    mtl_text = "".join(_mtl_material(name, model.look(name), texture_path.name) for name in material_names)
    return "".join(lines).encode("utf-8"), mtl_text.encode("utf-8"), png_bytes(mesh.texture)


def _mtl_material(name: str, look: dict, texture_name: str) -> str:
    """One .mtl material of :data:`_PART_LOOKS` (roughness and metalness as the PBR extension's Pr and Pm)."""
    red, green, blue, alpha = look.get("baseColorFactor", [1.0, 1.0, 1.0, 1.0])
    text = (f"newmtl {name}\nKa 0 0 0\nKd {red:g} {green:g} {blue:g}\nKs 0 0 0\nd {alpha:g}\n"
            f"Pr {look['roughnessFactor']:g}\nPm {look['metallicFactor']:g}\n")
    if "emissiveFactor" in look:
        text += "Ke {:g} {:g} {:g}\n".format(*look["emissiveFactor"])
    text += "illum 1\n"
    if look["texture"]:
        text += f"map_Kd {texture_name}\n"
    return text


# ---------------------------------------------------------------------------------------------------
# Reading
# ---------------------------------------------------------------------------------------------------

def load_mesh(path) -> TexturedMesh:
    """Read a .glb, .gltf or .obj file into one :class:`TexturedMesh` in the file's object space.

    All triangle meshes of the file are joined with their node transforms applied. Vertices at identical
    positions are welded (files split them along UV seams), so files written by :func:`save_mesh` load back
    with the original vertices, faces, UVs, part labels and texture (up to 8-bit quantisation). A mesh
    without UVs or texture image gets a flat grey texture and all-zero UVs.

    A file that holds meshes with UVs and meshes without (a :class:`PartAwareCar`: its photo-textured body and
    its plain wheels) loads as the meshes with UVs alone: the car's body, wheel blobs pulled in, without the
    wheels. From a part-aware .glb that is the body exactly, with its part labels, its faces grouped by part
    id (in their order within each part); from a part-aware .obj the body's groups as trimesh joins them (their
    textures packed into one, no part labels).

    Raises:
        InputError: the file is missing, has another suffix, cannot be parsed, or holds no triangles.
    """
    import trimesh  # only reading needs it, and it is slow to import

    path = Path(path)
    if path.suffix.lower() not in (".glb", ".gltf", ".obj"):
        raise InputError(f"Cannot read {path}: mesh files must end in .glb, .gltf or .obj.")
    if not is_file(path):
        raise InputError(f"The mesh file {shown_path(path)} does not exist.")
    try:
        scene = trimesh.load(path, force="scene", process=False)
        parts = [part for part in scene.dump() if isinstance(part, trimesh.Trimesh) and len(part.faces)]
    except Exception as error:  # trimesh raises many types for malformed files
        raise InputError(f"Cannot read {path}: it is not a valid {path.suffix} file ({_first_line(error)}).") from None
    if not parts:
        raise InputError(f"The file {path} contains no triangles.")
    textured = [part for part in parts if getattr(part.visual, "uv", None) is not None]
    if textured and len(textured) < len(parts):  # a part-aware car: its textured body, not its plain wheels
        parts = textured
    if all(_same_vertices(part, parts[0]) for part in parts[1:]):
        # One primitive, or primitives over one set of vertices (the parts of a part-aware body): their faces in
        # the file's order, the texture of the first that has one.
        joined = next((part for part in parts if _texture_image(part) is not None), parts[0])
        faces = np.concatenate([np.asarray(part.faces, dtype=np.int64) for part in parts])
        labels = joined.vertex_attributes.get(_PART_ATTRIBUTE)
    else:
        joined = trimesh.util.concatenate(parts)
        faces = np.asarray(joined.faces, dtype=np.int64)
        labels = None
    positions = np.asarray(joined.vertices, dtype=np.float32)
    face_uvs, texture = _uvs_and_texture(joined, faces)
    part_labels = None
    if labels is not None:  # per vertex in the file, constant over each face
        part_labels = np.rint(np.asarray(labels).reshape(-1)[faces[:, 0]]).astype(np.int64)
    verts, faces = _weld_identical_positions(positions, faces)
    try:
        return TexturedMesh(verts, faces, face_uvs, texture, part_labels)
    except ValueError as error:
        raise InputError(f"The mesh in {path} is not usable: {str(error).rstrip('.')}.") from None


def _first_line(error: Exception) -> str:
    text = str(error).strip().splitlines()
    return (text[0].rstrip(".")[:160] if text else type(error).__name__)


def _texture_image(mesh):
    """The texture image (PIL) of a trimesh mesh's material, or None."""
    material = getattr(mesh.visual, "material", None)
    # glTF files load as PBR materials (baseColorTexture), OBJ files as simple ones (image).
    image = getattr(material, "baseColorTexture", None)
    return image if image is not None else getattr(material, "image", None)


def _same_vertices(mesh, other) -> bool:
    """Whether two trimesh meshes have the same vertex positions and UVs (primitives sharing their accessors)."""
    uv, other_uv = getattr(mesh.visual, "uv", None), getattr(other.visual, "uv", None)
    return (np.array_equal(mesh.vertices, other.vertices) and (uv is None) == (other_uv is None)
            and (uv is None or np.array_equal(uv, other_uv)))


def _uvs_and_texture(mesh, faces: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-face UVs [F, 3, 2] in our convention and the texture [3, Ht, Wt] of a trimesh mesh."""
    uv = getattr(mesh.visual, "uv", None)
    image = _texture_image(mesh)
    if uv is None or len(uv) != len(mesh.vertices) or image is None:
        return (np.zeros((len(faces), 3, 2), np.float32), np.full((3, 1, 1), _FLAT_GREY, np.float32))
    # trimesh stores UVs OpenGL-style (v up from the bottom of the image) for every format; ours run down.
    uv = np.asarray(uv, dtype=np.float64)
    face_uvs = np.stack((uv[:, 0], 1.0 - uv[:, 1]), axis=-1)[faces].astype(np.float32)
    pixels = np.asarray(image.convert("RGB"), dtype=np.float32) / 255.0
    return face_uvs, pixels.transpose(2, 0, 1)


def _weld_identical_positions(positions: np.ndarray, faces: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Merge vertices with bit-identical positions, keeping vertices in order of first use."""
    _, first, inverse = np.unique(positions, axis=0, return_index=True, return_inverse=True)
    order = np.argsort(first)
    new_index = np.empty_like(order)
    new_index[order] = np.arange(len(order))
    return positions[first[order]], new_index[inverse.reshape(-1)][faces]
