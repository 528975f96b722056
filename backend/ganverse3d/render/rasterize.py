"""Hard rasterisation (z-buffer) and DIB-R's differentiable barycentric interpolation.

The rasteriser and the shaders meet through :class:`Fragments`. Which face covers a pixel is a discrete
choice made without gradients; the barycentric weights of that face at the pixel centre are then
recomputed with autograd from the projected vertices, which is exactly DIB-R's analytic interpolation
gradient: a pixel's feature sum_k w_k f_k moves with the vertex positions through the w_k and with the
features f_k directly.

Work is proportional to the pixels each face's bounding box touches (faces are binned to pixels by
enumerating (face, pixel) candidate pairs); no pixels x faces dense tensor is ever built.

The discrete step (which face is front-most at each pixel) is the seam for optional CUDA rasterisers
(``backend``: nvdiffrast, kaolin; :mod:`ganverse3d.render.backends`); the differentiable pass stays ours.

Coordinates: NDC as in :mod:`ganverse3d.geometry.camera` (x right, y up, both in [-1, 1]; the centre of
pixel (column i, row j) of a W x H image is ((2i + 1 - W) / W, (H - 2j - 1) / H)). Internally pixel space is
used too: column i and row j are at integer (i, j) at pixel centres.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .backends import check_backend, external_face_index

# Faces with a vertex closer than this to the camera plane (in object units) are not rasterised.
NEAR_PLANE = 1e-3

# Bounding-box pairs processed at once; bounds peak memory on big faces / big images (~40 bytes a pair).
_PAIRS_PER_CHUNK = 4_000_000


@dataclass
class Fragments:
    """What the rasteriser hands to the shaders: for every covered pixel, its face and barycentrics.

    Covered pixels are stored packed (N = number of covered pixels over the whole batch).

    Attributes:
        face_index: [B, H, W] int64, the front-most face at each pixel centre, -1 where nothing is.
        pixel: [N] int64 flat index b * H * W + row * W + column of each covered pixel.
        face: [N] int64 face index (into faces [F, 3]) covering it.
        bary: [N, 3] float, the barycentric weights of the face's three corners at the pixel centre;
            they sum to 1, and they are differentiable w.r.t. the projected vertices (DIB-R's
            interpolation gradient). Perspective-correct when the rasteriser was asked for it.
        image_size: (H, W).
    """

    face_index: torch.Tensor
    pixel: torch.Tensor
    face: torch.Tensor
    bary: torch.Tensor
    image_size: tuple[int, int]

    @property
    def batch_size(self) -> int:
        return self.face_index.shape[0]

    @property
    def mask(self) -> torch.Tensor:
        """Hard coverage [B, 1, H, W] in the barycentrics' dtype."""
        return (self.face_index >= 0).unsqueeze(1).to(self.bary.dtype)

    def batch_index(self) -> torch.Tensor:
        """[N] the image each covered pixel belongs to."""
        height, width = self.image_size
        return self.pixel // (height * width)


def pixel_centres_ndc(columns: torch.Tensor, rows: torch.Tensor, image_size: tuple[int, int], dtype):
    """NDC (x, y) [..., 2] of the centres of pixels at integer ``columns`` / ``rows``."""
    height, width = image_size
    x = (2 * columns.to(dtype) + 1 - width) / width
    y = (height - 2 * rows.to(dtype) - 1) / height
    return torch.stack((x, y), dim=-1)


def ndc_to_pixel(ndc_xy: torch.Tensor, image_size: tuple[int, int]) -> torch.Tensor:
    """NDC [..., 2] -> continuous pixel coordinates [..., 2] with pixel centres at integers."""
    height, width = image_size
    return torch.stack(((ndc_xy[..., 0] + 1) * width / 2 - 0.5, (1 - ndc_xy[..., 1]) * height / 2 - 0.5), dim=-1)


def front_facing(tri_ndc: torch.Tensor, tri_depth: torch.Tensor) -> torch.Tensor:
    """[B, F] bool: faces in front of the near plane whose corners run counter-clockwise on screen.

    Args:
        tri_ndc: [B, F, 3, 2] projected corners. tri_depth: [B, F, 3] depths.
    """
    edge_a = tri_ndc[:, :, 1] - tri_ndc[:, :, 0]
    edge_b = tri_ndc[:, :, 2] - tri_ndc[:, :, 0]
    signed_area = edge_a[..., 0] * edge_b[..., 1] - edge_a[..., 1] * edge_b[..., 0]
    return (signed_area > 0) & (tri_depth > NEAR_PLANE).all(-1)


def enumerate_bbox_pixels(lo: torch.Tensor, hi: torch.Tensor):
    """All integer pixels inside per-item inclusive boxes.

    Args:
        lo, hi: [M, 2] int64 (column, row) inclusive corners, already clipped to the image; empty
            boxes (hi < lo) yield nothing.

    Yields chunks ``(owner [P], columns [P], rows [P])`` of int64, owner indexing the M boxes, with at most
    about ``_PAIRS_PER_CHUNK`` pairs per chunk.
    """
    extent = (hi - lo + 1).clamp_min(0)
    counts = extent[:, 0] * extent[:, 1]
    ends = torch.cumsum(counts, 0)
    total = int(ends[-1]) if len(ends) else 0
    first = 0
    while first < len(counts) and total > 0:
        done_before = int(ends[first - 1]) if first else 0
        last = int(torch.searchsorted(ends, done_before + _PAIRS_PER_CHUNK, right=True))
        last = max(last, first + 1)
        chunk_counts = counts[first:last]
        owner = torch.repeat_interleave(torch.arange(first, last, device=lo.device), chunk_counts)
        starts = torch.cumsum(chunk_counts, 0) - chunk_counts
        local = torch.arange(owner.shape[0], device=lo.device) - starts[owner - first]
        width = extent[owner, 0]
        yield owner, lo[owner, 0] + local % width, lo[owner, 1] + local // width
        first = last


def _edge_weights(tri: torch.Tensor, points: torch.Tensor, perspective_depth: torch.Tensor | None = None):
    """Barycentric weights [P, 3] of ``points`` [P, 2] in triangles ``tri`` [P, 3, 2] (2D, same units).

    With ``perspective_depth`` [P, 3] (view-space depths of the corners) the weights are made
    perspective-correct: w'_k = (w_k / z_k) / sum_j (w_j / z_j).
    """
    a, b, c = tri[:, 0], tri[:, 1], tri[:, 2]

    def cross(u, v):
        return u[..., 0] * v[..., 1] - u[..., 1] * v[..., 0]

    area = cross(b - a, c - a)
    w0 = cross(b - points, c - points) / area
    w1 = cross(c - points, a - points) / area
    weights = torch.stack((w0, w1, 1 - w0 - w1), dim=-1)
    if perspective_depth is not None:
        weights = weights / perspective_depth
        weights = weights / weights.sum(-1, keepdim=True)
    return weights


def _zbuffer_face_index(tri_ndc: torch.Tensor, tri_depth: torch.Tensor, visible: torch.Tensor,
                        image_size: tuple[int, int]) -> torch.Tensor:
    """Our z-buffer (the "torch" backend): the front-most of the ``visible`` faces at every pixel centre.

    Args:
        tri_ndc: [B, F, 3, 2] NDC corners. tri_depth: [B, F, 3] depths (> NEAR_PLANE where visible).
        visible: [B, F] bool, the faces that may be drawn. image_size: (H, W).

    Returns:
        [B, H, W] int64 face index, -1 where no face is. A pixel is covered when its centre is inside or on
        the edge of a face; the smallest perspective-correct depth wins, ties going to the lower index.
    """
    height, width = image_size
    batch, num_faces = tri_ndc.shape[:2]
    device, dtype = tri_ndc.device, tri_ndc.dtype
    tri_pix = ndc_to_pixel(tri_ndc, image_size)
    candidates = visible.reshape(-1).nonzero()[:, 0]  # flat b * F + f
    tri_c = tri_pix.reshape(-1, 3, 2)[candidates]
    lo = torch.ceil(tri_c.amin(1)).long()
    hi = torch.floor(tri_c.amax(1)).long()
    lo = torch.maximum(lo, torch.zeros_like(lo))
    hi = torch.minimum(hi, torch.tensor([width - 1, height - 1], device=device))

    # One int64 key per (pixel, face): the float32 bits of the depth (monotonic for positive floats)
    # above the face index, so a single scatter-amin finds the nearest face and breaks ties by index.
    best = torch.full((batch * height * width,), torch.iinfo(torch.int64).max, dtype=torch.int64, device=device)
    for owner, columns, rows in enumerate_bbox_pixels(lo, hi):
        tri = tri_c[owner]
        points = torch.stack((columns, rows), -1).to(dtype)
        weights = _edge_weights(tri, points)
        inside = (weights >= 0).all(-1)
        owner, columns, rows, weights = owner[inside], columns[inside], rows[inside], weights[inside]
        flat_face = candidates[owner]
        corner_depth = tri_depth.reshape(-1, 3)[flat_face]
        pixel_depth = 1.0 / (weights / corner_depth).sum(-1)
        depth_bits = pixel_depth.float().view(torch.int32).long()
        key = (depth_bits << 32) | (flat_face % num_faces)
        pixel = (flat_face // num_faces) * (height * width) + rows * width + columns
        best.scatter_reduce_(0, pixel, key, reduce="amin")

    covered = best != torch.iinfo(torch.int64).max
    face_index = torch.where(covered, best & 0xFFFFFFFF, -1)
    return face_index.reshape(batch, height, width)


def rasterize(tri_ndc: torch.Tensor, tri_depth: torch.Tensor, image_size: tuple[int, int],
              cull_backfaces: bool = True, perspective_correct: bool = True, backend: str = "torch") -> Fragments:
    """Rasterise projected triangles with a z-buffer.

    Args:
        tri_ndc: [B, F, 3, 2] NDC corners of every face (differentiable; gradients flow to ``bary``).
        tri_depth: [B, F, 3] view-space depth of every corner (> 0 in front of the camera).
        image_size: (H, W) in pixels.
        cull_backfaces: skip faces whose corners run clockwise on screen (seen from behind), as DIB-R does.
        perspective_correct: interpolate with perspective-correct weights (as OpenGL and Blender do);
            False gives DIB-R's screen-space weights.
        backend: who finds the front-most face at each pixel: "torch" (ours, any device), or, on CUDA
            tensors with the package installed, "nvdiffrast" or "kaolin" (its DIB-R kernel); see
            :mod:`ganverse3d.render.backends`. Only that discrete coverage changes hands: the barycentrics
            and their gradients are ours whichever backend is used.

    Returns:
        :class:`Fragments`. A pixel is covered when its centre is inside or on the edge of a face; among
        covering faces the one with the smallest interpolated depth wins, ties going to the lower index
        (the optional backends follow their own rules on shared edges and ties).
    """
    assert tri_ndc.dim() == 4 and tri_ndc.shape[2:] == (3, 2), tri_ndc.shape
    assert tri_depth.shape == tri_ndc.shape[:3], (tri_depth.shape, tri_ndc.shape)
    check_backend(backend)
    height, width = image_size
    num_faces = tri_ndc.shape[1]

    with torch.no_grad():
        depth = tri_depth.detach()
        visible = (depth > NEAR_PLANE).all(-1)
        if cull_backfaces:
            visible &= front_facing(tri_ndc.detach(), depth)
        if backend == "torch":
            face_index = _zbuffer_face_index(tri_ndc.detach(), depth, visible, image_size)
        else:
            face_index = external_face_index(backend, tri_ndc.detach(), depth, visible, image_size)
        pixel = (face_index.reshape(-1) >= 0).nonzero()[:, 0]
        face = face_index.reshape(-1)[pixel]
        batch_of_pixel = pixel // (height * width)
        rows, columns = (pixel % (height * width)) // width, pixel % width

    # Differentiable pass over covered pixels only: DIB-R's barycentric interpolation weights.
    flat_face = batch_of_pixel * num_faces + face
    tri = tri_ndc.reshape(-1, 3, 2)[flat_face]
    centres = pixel_centres_ndc(columns, rows, image_size, tri_ndc.dtype)
    corner_depth = tri_depth.reshape(-1, 3)[flat_face] if perspective_correct else None
    bary = _edge_weights(tri, centres, corner_depth)
    return Fragments(face_index=face_index, pixel=pixel, face=face, bary=bary, image_size=(height, width))


def interpolate(face_attributes: torch.Tensor, fragments: Fragments) -> torch.Tensor:
    """Interpolate per-face-vertex attributes at covered pixel centres.

    Args:
        face_attributes: [F, 3, C] shared by the batch, or [B, F, 3, C].
        fragments: from :func:`rasterize`.

    Returns:
        [N, C] attribute values at the covered pixels (packed, in the order of ``fragments.pixel``);
        differentiable w.r.t. the attributes and, through the barycentrics, the vertex positions.
    """
    if face_attributes.dim() == 3:
        corners = face_attributes[fragments.face]
    else:
        assert face_attributes.dim() == 4 and face_attributes.shape[0] == fragments.batch_size, face_attributes.shape
        corners = face_attributes[fragments.batch_index(), fragments.face]
    return (fragments.bary.unsqueeze(-1).to(corners.dtype) * corners).sum(1)


def scatter_to_image(values: torch.Tensor, fragments: Fragments, fill: float | torch.Tensor = 0.0) -> torch.Tensor:
    """Packed per-pixel values [N, C] -> image [B, C, H, W]; uncovered pixels get ``fill``.

    ``fill`` is a number or a [B, C, H, W] tensor (e.g. a background image).
    """
    height, width = fragments.image_size
    batch, channels = fragments.batch_size, values.shape[-1]
    if isinstance(fill, torch.Tensor):
        assert fill.shape == (batch, channels, height, width), (fill.shape, (batch, channels, height, width))
        canvas = fill.to(values.dtype).permute(0, 2, 3, 1).reshape(-1, channels)
    else:
        canvas = torch.full((batch * height * width, channels), float(fill), dtype=values.dtype, device=values.device)
    canvas = canvas.index_put((fragments.pixel,), values)
    return canvas.reshape(batch, height, width, channels).permute(0, 3, 1, 2)
