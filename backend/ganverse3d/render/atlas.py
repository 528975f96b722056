"""A UV atlas for textures baked from a photo (issue 18, section 2): the mesh cut into charts and flattened by
xatlas, the charts packed into a texture twice as wide as it is high.

The template sphere's own UVs (equirectangular, ``geometry.mesh``) suit the network's small texture but not a
baked one: they pinch at the poles (a car's nose and tail when the sphere is stretched along z get the same
texture rows as a sliver of roof) and spread texels by latitude, not by surface area. An atlas gives every
part of *this* mesh about the same number of texels per square metre: charts cut where the surface bends
(xatlas' chart costs), each flattened with little stretch, packed with gutters of empty texels between them.

:func:`uv_atlas` computes it from the mesh's own vertices, so the fitted car, not the sphere, decides the chart
shapes (measured in ``tests/render/test_projection.py``: an atlas of the template, used on a fitted car, gives
its surface unequal texel densities). The same mesh always gives the same atlas; it costs about 0.2 s on one
CPU core for the 1,280 faces of the network's template.
"""

from __future__ import annotations

import numpy as np
import torch
import xatlas

# Charts are packed on a square grid of PACK_RESOLUTION cells with PADDING empty cells between charts; the grid
# is then stretched to the texture (N rows, 2N columns), so a texture of N rows keeps at least
# PADDING * N / PACK_RESOLUTION texels between charts: 2 at the smallest texture size, 512.
PACK_RESOLUTION = 512
PADDING = 2
# Halvings of the texel scale tried to pack all charts into one grid (a relative precision of 2 ** -10).
_SEARCH_STEPS = 10


def uv_atlas(verts: torch.Tensor, faces: torch.Tensor) -> torch.Tensor:
    """Per-face UVs of an atlas of the mesh, for a texture of N rows and 2N columns (any N).

    Args:
        verts: [V, 3] float vertex positions; the charts' shapes and sizes follow them.
        faces: [F, 3] int64 vertex indices.

    Returns:
        [F, 3, 2] float32 UVs on ``verts``' device, (0, 0) the texture's top-left (glTF), every one in [0, 1];
        no two charts share a texel, texel sizes are about equal on the surface in both directions.
    """
    assert verts.dim() == 2 and verts.shape[1] == 3, verts.shape
    assert faces.dim() == 2 and faces.shape[1] == 3, faces.shape
    positions = verts.detach().to(device="cpu", dtype=torch.float32).numpy()
    indices = faces.detach().cpu().numpy().astype(np.uint32)

    # Charts: xatlas cuts and flattens the mesh (and packs the charts into a square, which is not kept).
    charts = xatlas.Atlas()
    charts.add_mesh(positions, indices)
    charts.generate(xatlas.ChartOptions(), xatlas.PackOptions())
    mapping, chart_faces, chart_uvs = charts[0]
    if not np.array_equal(mapping[chart_faces], indices):
        raise ValueError("xatlas changed the mesh's faces.")
    # Pack them again into a square grid with every chart twice as tall as it is: stretched back to a 2 : 1
    # texture, the texels are square on the surface again.
    flat = chart_uvs * np.array([charts.width, 2 * charts.height], dtype=np.float32)

    def pack(texels_per_unit: float) -> xatlas.Atlas:
        atlas = xatlas.Atlas()
        atlas.add_uv_mesh(flat, chart_faces)
        options = xatlas.PackOptions()
        options.resolution, options.padding, options.bilinear = PACK_RESOLUTION, PADDING, True
        options.texels_per_unit = texels_per_unit
        atlas.generate(xatlas.ChartOptions(), options)
        return atlas

    # The largest scale at which every chart fits into one grid: packing is monotone enough in the scale for
    # a bisection, starting from xatlas' own estimate (which overshoots the grid).
    low, high = 0.0, pack(0.0).texels_per_unit
    for _ in range(_SEARCH_STEPS):
        middle = (low + high) / 2
        if pack(middle).atlas_count == 1:
            low = middle
        else:
            high = middle
    if low == 0:
        raise ValueError("xatlas could not pack the mesh's charts into one atlas.")
    packed = pack(low)
    mapping, packed_faces, packed_uvs = packed[0]
    if not np.array_equal(mapping[packed_faces], chart_faces):
        raise ValueError("xatlas changed the charts' faces.")
    face_uvs = torch.from_numpy(packed_uvs[packed_faces].astype(np.float32)).clamp(0, 1)
    return face_uvs.to(verts.device)
