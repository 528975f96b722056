"""Textured meshes to and from files: binary glTF (.glb) and Wavefront OBJ (.obj + .mtl + texture .png).

Conventions (docs/ARCHITECTURE.md):

* Object space is +Y up with the car's front facing +Z, which is glTF's own convention, so positions are
  written unchanged; Blender's glTF importer maps them as (x, y, z) -> (x, -z, y), the front to Blender's -Y.
* UVs are glTF's: (0, 0) is the top-left of the texture image and v grows downward. OBJ counts v from the
  bottom of the image, so .obj files store 1 - v. Textures repeat in u (UVs may run a little past 1 on
  faces that cross a seam) and clamp in v; the .glb sampler says so (wrapS REPEAT, wrapT CLAMP_TO_EDGE).
* glTF and OBJ viewers need one UV per vertex, while our meshes carry UVs per face corner: vertices are
  split only where their corners' UVs (or part labels) differ, so the file stays connected elsewhere.
  Loading welds vertices at identical positions again, so our own files load back with the original
  vertex order and faces.
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from . import __version__
from .errors import InputError
from .files import is_file, png_bytes, shown_path, write_files
from .geometry import vertex_normals

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


def save_mesh(path, mesh: TexturedMesh) -> list[Path]:
    """Write ``mesh`` to ``path`` by its suffix (see :func:`mesh_files`) and return the files written, all of
    them or none (:func:`ganverse3d.files.write_files`).

    * ``.glb``: one self-contained binary glTF (POSITION, NORMAL, TEXCOORD_0 and, with part labels, the
      custom float attribute ``_PART``; the texture embedded as PNG in a PBR material).
    * ``.obj``: ``NAME.obj`` plus ``NAME.mtl`` and ``NAME_texture.png`` next to it, named after the
      output's stem so that exports to one folder never collide. OBJ cannot carry part labels.
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


def encode_mesh(path, mesh: TexturedMesh) -> dict[Path, bytes]:
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


def _glb_bytes(mesh: TexturedMesh, name: str) -> bytes:
    split = _split_by_corner_attributes(mesh)
    binary = _GlbBinary()
    attributes = {
        "POSITION": binary.add_accessor(split.positions, "VEC3", _GLTF_ARRAY_BUFFER, with_bounds=True),
        "NORMAL": binary.add_accessor(split.normals, "VEC3", _GLTF_ARRAY_BUFFER),
        "TEXCOORD_0": binary.add_accessor(split.uvs, "VEC2", _GLTF_ARRAY_BUFFER),
    }
    if split.labels is not None:
        attributes[_PART_ATTRIBUTE] = binary.add_accessor(split.labels, "SCALAR", _GLTF_ARRAY_BUFFER)
    indices = binary.add_accessor(split.faces.reshape(-1), "SCALAR", _GLTF_ELEMENT_ARRAY_BUFFER)
    image_view = binary.add_view(png_bytes(mesh.texture))
    binary.data += b"\0" * (-len(binary.data) % 4)
    document = {
        "asset": {"version": "2.0", "generator": f"ganverse3d {__version__}"},
        "scene": 0,
        "scenes": [{"nodes": [0]}],
        "nodes": [{"mesh": 0, "name": name}],
        "meshes": [{"name": name, "primitives": [
            {"attributes": attributes, "indices": indices, "material": 0, "mode": 4}]}],
        "materials": [{
            "name": name,
            # Non-metallic and fully rough: the closest PBR material to the Lambertian shading we render with.
            "pbrMetallicRoughness": {"baseColorTexture": {"index": 0}, "metallicFactor": 0.0,
                                     "roughnessFactor": 1.0},
            # Reconstructed meshes may fold over; show both sides rather than holes.
            "doubleSided": True,
        }],
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


def _obj_bytes(path: Path, mtl_path: Path, texture_path: Path, mesh: TexturedMesh) -> tuple[bytes, bytes, bytes]:
    """The .obj, .mtl and texture .png of ``mesh``, which refer to each other by the names of the paths."""
    stem = path.stem
    uvs, corner_uv = np.unique(mesh.face_uvs.reshape(-1, 2).numpy(), axis=0, return_inverse=True)
    obj_uvs = np.column_stack((uvs[:, 0], 1.0 - uvs[:, 1].astype(np.float64)))  # OBJ's v counts from the bottom
    normals = vertex_normals(mesh.verts, mesh.faces).numpy()
    vertex = mesh.faces.numpy() + 1  # OBJ indices start at 1
    uv_index = corner_uv.reshape(-1, 3) + 1
    corners = np.stack((vertex, uv_index, vertex), axis=-1).reshape(-1, 9)  # v/vt/vn, normals per vertex
    obj_text = "".join((
        f"# ganverse3d {__version__}: +Y up, front at +Z\n",
        f"mtllib {mtl_path.name}\n",
        f"o {stem}\n",
        _format_rows("v", mesh.verts.numpy(), "%.9g %.9g %.9g"),
        _format_rows("vt", obj_uvs, "%.9g %.9g"),
        _format_rows("vn", normals, "%.6f %.6f %.6f"),
        f"usemtl {stem}\n",
        _format_rows("f", corners, "%d/%d/%d %d/%d/%d %d/%d/%d"),
    ))
    mtl_text = (f"newmtl {stem}\n"
                "Ka 0 0 0\nKd 1 1 1\nKs 0 0 0\nd 1\nillum 1\n"
                f"map_Kd {texture_path.name}\n")
    return obj_text.encode("utf-8"), mtl_text.encode("utf-8"), png_bytes(mesh.texture)


# ---------------------------------------------------------------------------------------------------
# Reading
# ---------------------------------------------------------------------------------------------------

def load_mesh(path) -> TexturedMesh:
    """Read a .glb, .gltf or .obj file into one :class:`TexturedMesh` in the file's object space.

    All triangle meshes of the file are joined with their node transforms applied. Vertices at identical
    positions are welded (files split them along UV seams), so files written by :func:`save_mesh` load back
    with the original vertices, faces, UVs, part labels and texture (up to 8-bit quantisation). A mesh
    without UVs or texture image gets a flat grey texture and all-zero UVs.

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
    joined = parts[0] if len(parts) == 1 else trimesh.util.concatenate(parts)

    faces = np.asarray(joined.faces, dtype=np.int64)
    positions = np.asarray(joined.vertices, dtype=np.float32)
    face_uvs, texture = _uvs_and_texture(joined, faces)
    labels = joined.vertex_attributes.get(_PART_ATTRIBUTE) if len(parts) == 1 else None
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


def _uvs_and_texture(mesh, faces: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-face UVs [F, 3, 2] in our convention and the texture [3, Ht, Wt] of a trimesh mesh."""
    visual = mesh.visual
    uv = getattr(visual, "uv", None)
    material = getattr(visual, "material", None)
    # glTF files load as PBR materials (baseColorTexture), OBJ files as simple ones (image).
    image = getattr(material, "baseColorTexture", None)
    if image is None:
        image = getattr(material, "image", None)
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
