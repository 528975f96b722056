"""Mesh topology and the DIB-R template sphere.

Shapes: vertices [B, V, 3] (or [V, 3]), faces [F, 3] int64 shared by the batch, per-face UVs [F, 3, 2].

UV convention (glTF's): (u, v) = (0, 0) is the top-left corner of the texture image, u grows to the
right and v grows downward, so texel row = v * Ht. Textures wrap (repeat) in u and clamp in v; the
template's UVs run slightly past u = 1 on the faces that cross the seam instead of stretching back over
the whole image.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class TemplateMesh:
    """A template mesh and the topology helpers the shape losses need.

    Attributes:
        verts: [V, 3] float32 vertex positions, on the unit sphere for the template.
        faces: [F, 3] int64, counter-clockwise seen from outside (outward normals).
        face_uvs: [F, 3, 2] float32 per-face-vertex UVs (see module docstring).
        edges: [E, 2] int64 unique undirected edges (i < j).
        edge_faces: [E, 2] int64 the two faces sharing each edge (the mesh is closed).
    """

    verts: torch.Tensor
    faces: torch.Tensor
    face_uvs: torch.Tensor
    edges: torch.Tensor
    edge_faces: torch.Tensor

    @property
    def num_verts(self) -> int:
        return self.verts.shape[0]

    def laplacian(self) -> torch.Tensor:
        """Uniform Laplacian [V, V] (sparse COO): L_ii = -1, L_ij = 1/deg(i) for neighbours j."""
        return uniform_laplacian(self.num_verts, self.edges)


def _icosahedron() -> tuple[torch.Tensor, torch.Tensor]:
    """An icosahedron with vertices at both poles (+Y, -Y), faces counter-clockwise from outside."""
    latitude = math.atan(0.5)
    verts = [(0.0, 1.0, 0.0)]
    for ring, (lat, offset) in enumerate(((latitude, 0.0), (-latitude, math.pi / 5))):
        for k in range(5):
            lon = offset + 2 * math.pi * k / 5
            verts.append((math.cos(lat) * math.sin(lon), math.sin(lat), math.cos(lat) * math.cos(lon)))
    verts.append((0.0, -1.0, 0.0))
    faces = []
    for k in range(5):
        a, b = 1 + k, 1 + (k + 1) % 5          # upper ring
        c, d = 6 + k, 6 + (k + 1) % 5          # lower ring (rotated by half a step)
        faces += [(0, b, a), (a, b, c), (b, d, c), (11, c, d)]
    faces = torch.tensor(faces, dtype=torch.int64)
    verts = torch.tensor(verts, dtype=torch.float64)
    return verts, _orient_outward(verts, faces)


def _orient_outward(verts: torch.Tensor, faces: torch.Tensor) -> torch.Tensor:
    """Flip faces of a star-shaped (about the origin) mesh whose normals point inward."""
    tri = verts[faces]
    normal = torch.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0], dim=-1)
    inward = (normal * tri.mean(1)).sum(-1) < 0
    return torch.where(inward[:, None], faces[:, [0, 2, 1]], faces)


def split_faces(verts: torch.Tensor, faces: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Every triangle split 1-to-4 at its edge midpoints, the surface unchanged (flat, no smoothing).

    verts [..., V, 3] (any leading batch dims), faces [F, 3] -> (verts [..., V + E, 3]: the originals first, then
    one midpoint per edge; faces [4 F, 3]: for each corner's triangle in turn (corner 0, 1, 2), then all the
    middle triangles, in the order of :func:`split_corners`), keeping each face's winding.
    """
    edges = torch.cat((faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]])).sort(dim=1).values
    unique, inverse = torch.unique(edges, dim=0, return_inverse=True)
    mid = (inverse + verts.shape[-2]).reshape(3, -1).T  # [F, 3]: midpoints of edges (01, 12, 20)
    a, b, c = faces.T
    m01, m12, m20 = mid.T
    new_faces = torch.cat((torch.stack((a, m01, m20), 1), torch.stack((m01, b, m12), 1),
                           torch.stack((m20, m12, c), 1), torch.stack((m01, m12, m20), 1)))
    return torch.cat((verts, verts[..., unique, :].mean(dim=-2)), dim=-2), new_faces


def split_corners(corners: torch.Tensor) -> torch.Tensor:
    """Per-corner face attributes [F, 3, C] (UVs, normals) of faces split by :func:`split_faces` -> [4 F, 3, C],
    interpolated linearly at the edge midpoints."""
    a, b, c = corners.unbind(dim=1)
    m01, m12, m20 = (a + b) / 2, (b + c) / 2, (c + a) / 2
    return torch.cat((torch.stack((a, m01, m20), 1), torch.stack((m01, b, m12), 1), torch.stack((m20, m12, c), 1),
                      torch.stack((m01, m12, m20), 1)))


def _subdivide(verts: torch.Tensor, faces: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Loop-style 1-to-4 split with midpoints pushed onto the unit sphere."""
    split, new_faces = split_faces(verts, faces)
    return torch.cat((verts, torch.nn.functional.normalize(split[verts.shape[0]:], dim=-1))), new_faces


def _spherical_face_uvs(verts: torch.Tensor, faces: torch.Tensor) -> torch.Tensor:
    """Equirectangular per-face UVs: u from longitude (u = 0.5 at the front, +Z), v from latitude (v = 0 at +Y).

    Faces straddling the seam get their small u's lifted by 1 (the texture wraps in u); a pole vertex takes
    the mean u of its face's other two corners so polar triangles are not fanned across the whole texture.
    """
    x, y, z = verts.T
    u = torch.atan2(x, z) / (2 * math.pi) + 0.5
    v = torch.acos(y.clamp(-1, 1)) / math.pi
    face_u, face_v = u[faces], v[faces]
    at_pole = (verts[:, 1].abs() > 1 - 1e-9)[faces]
    span = torch.where(at_pole, torch.full_like(face_u, 0.5), face_u)
    crosses_seam = (span.max(1).values - span.min(1).values) > 0.5
    face_u = torch.where(crosses_seam[:, None] & (face_u < 0.5), face_u + 1, face_u)
    other_mean = (face_u.sum(1, keepdim=True) - face_u) / 2
    face_u = torch.where(at_pole, other_mean, face_u)
    return torch.stack((face_u, face_v), dim=-1)


def mesh_edges(faces: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Unique undirected edges [E, 2] (i < j) and, per edge, its two adjacent faces [E, 2].

    Raises ValueError when the mesh is not closed and manifold (an edge without exactly two faces).
    """
    num_faces = faces.shape[0]
    directed = torch.cat((faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]))
    face_of = torch.arange(num_faces, device=faces.device).repeat(3)
    edges, inverse, counts = torch.unique(directed.sort(dim=1).values, dim=0, return_inverse=True, return_counts=True)
    if not bool((counts == 2).all()):
        raise ValueError("The mesh is not closed and manifold: some edges do not have exactly two faces.")
    order = torch.argsort(inverse, stable=True)
    edge_faces = face_of[order].reshape(-1, 2)
    return edges, edge_faces


def uniform_laplacian(num_verts: int, edges: torch.Tensor) -> torch.Tensor:
    """Uniform Laplacian [V, V] as a sparse COO tensor: L_ii = -1, L_ij = 1/deg(i) for each neighbour j."""
    both = torch.cat((edges, edges.flip(1)))
    degree = torch.bincount(both[:, 0], minlength=num_verts).to(torch.float32)
    diagonal = torch.arange(num_verts, device=edges.device)
    indices = torch.cat((both.T, torch.stack((diagonal, diagonal))), dim=1)
    values = torch.cat((1.0 / degree[both[:, 0]], -torch.ones(num_verts, device=edges.device)))
    return torch.sparse_coo_tensor(indices, values, (num_verts, num_verts), check_invariants=True).coalesce()


def face_normals(verts: torch.Tensor, faces: torch.Tensor, normalize: bool = True) -> torch.Tensor:
    """Face normals [..., F, 3] of vertices [..., V, 3] (counter-clockwise faces point outward)."""
    tri = verts[..., faces, :]  # [..., F, 3, 3]
    normal = torch.cross(tri[..., 1, :] - tri[..., 0, :], tri[..., 2, :] - tri[..., 0, :], dim=-1)
    return torch.nn.functional.normalize(normal, dim=-1) if normalize else normal


def vertex_normals(verts: torch.Tensor, faces: torch.Tensor) -> torch.Tensor:
    """Area-weighted vertex normals [..., V, 3] of vertices [..., V, 3]."""
    weighted = face_normals(verts, faces, normalize=False)  # length = 2 * area
    normals = torch.zeros_like(verts)
    for corner in range(3):
        normals = normals.index_add(-2, faces[:, corner], weighted)
    return torch.nn.functional.normalize(normals, dim=-1)


@functools.lru_cache(maxsize=None)
def _template_sphere_cpu(subdivisions: int) -> TemplateMesh:
    # On the CPU even inside a `torch.device("meta")` block: the topology is data, computed for real while
    # the bundle loader builds a network on the meta device to learn its tensor shapes (and this is cached).
    with torch.device("cpu"):
        verts, faces = _icosahedron()
        for _ in range(subdivisions):
            verts, faces = _subdivide(verts, faces)
        face_uvs = _spherical_face_uvs(verts, faces)
        edges, edge_faces = mesh_edges(faces)
    return TemplateMesh(verts.float(), faces, face_uvs.float(), edges, edge_faces)


def template_sphere(subdivisions: int = 3, device="cpu") -> TemplateMesh:
    """The DIB-R template: a unit icosphere, 642 vertices and 1280 faces at the default 3 subdivisions.

    Vertices lie on the unit sphere (DIB-R's kaolin tutorial scales it by 0.75; the inverse-graphics
    model applies its own scale). Poles are at +/-Y; the UV seam is at the back (-Z), so the texture's
    middle column maps to the car's front (+Z).
    """
    mesh = _template_sphere_cpu(int(subdivisions))
    return TemplateMesh(*(t.to(device) for t in (mesh.verts, mesh.faces, mesh.face_uvs, mesh.edges, mesh.edge_faces)))


def shrink_wrap(directions: torch.Tensor, verts: torch.Tensor, faces: torch.Tensor) -> torch.Tensor:
    """How far from the origin each ray meets a mesh's outermost surface.

    Args:
        directions: [N, 3] ray directions from the origin (any length: the result is in units of it).
        verts: [V, 3] and faces: [F, 3] int64, a mesh around the origin.

    Returns:
        [N] float64: the largest t with ``t * direction`` on a face (Moller-Trumbore against every face), 0 for
        a ray that meets none. A template sphere's vertices moved to ``directions * reach`` take the mesh's shape.
    """
    directions = directions.double()
    a, b, c = (verts.double()[faces][:, k] for k in range(3))
    e1, e2 = b - a, c - a
    p = torch.linalg.cross(directions[:, None], e2[None].expand(directions.shape[0], -1, -1))
    det = (e1[None] * p).sum(-1)
    det = torch.where(det.abs() > 1e-12, det, torch.full_like(det, math.inf))  # parallel: no hit
    s = -a[None]
    q = torch.linalg.cross(s.expand_as(p), e1[None].expand_as(p))
    u, v, t = (s * p).sum(-1) / det, (directions[:, None] * q).sum(-1) / det, (e2[None] * q).sum(-1) / det
    hit = (u >= -1e-9) & (v >= -1e-9) & (u + v <= 1 + 1e-9) & (t > 0)  # rays through an edge hit
    return torch.where(hit, t, torch.zeros_like(t)).max(1).values
