"""``render_mesh``: the thin composition of project -> rasterize -> interpolate -> texture -> shade -> soft mask."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..geometry.camera import Camera
from ..geometry.mesh import face_normals
from .rasterize import interpolate, rasterize, scatter_to_image
from .shading import Lighting, sample_texture
from .soft_mask import soft_silhouette


@dataclass
class RenderOutput:
    """Result of :func:`render_mesh`.

    Attributes:
        image: [B, 3, H, W] colour in [0, 1] (background where nothing is drawn).
        mask: [B, 1, H, W] hard coverage, 0 or 1, no gradient.
        soft_mask: [B, 1, H, W] DIB-R soft silhouette in [0, 1], differentiable w.r.t. vertices;
            equal to ``mask`` when rendering with ``soft=False``.
        face_index: [B, H, W] int64 front-most face per pixel, -1 for background.
    """

    image: torch.Tensor
    mask: torch.Tensor
    soft_mask: torch.Tensor
    face_index: torch.Tensor


def _as_image_size(image_size) -> tuple[int, int]:
    height, width = (image_size, image_size) if isinstance(image_size, int) else tuple(int(s) for s in image_size)
    if height <= 0 or width <= 0:
        raise ValueError(f"image_size must be positive, got {image_size}.")
    return height, width


def render_mesh(verts: torch.Tensor, faces: torch.Tensor, face_uvs: torch.Tensor, texture: torch.Tensor,
                cameras: Camera, image_size, *, background: torch.Tensor | None = None,
                lighting: Lighting | None = None, normals: torch.Tensor | None = None, soft: bool = True,
                sigmainv: float = 7000.0, boxlen: float = 0.02, knum: int = 30, cull_backfaces: bool = True,
                perspective_correct: bool = True, backend: str = "torch") -> RenderOutput:
    """Render textured triangle meshes differentiably (DIB-R).

    Args:
        verts: [B, V, 3] object-space vertex positions (+Y up, front toward +Z; units of the unit sphere).
        faces: [F, 3] int64 vertex indices shared by the batch, counter-clockwise seen from outside.
        face_uvs: [F, 3, 2] or [B, F, 3, 2] per-face-vertex UVs; (0, 0) is the texture's top-left corner,
            u repeats, v is clamped (see :func:`ganverse3d.render.shading.sample_texture`).
        texture: [B, C, Ht, Wt] texture images in [0, 1] (C = 3 for colour).
        cameras: a :class:`Camera` batch of size B.
        image_size: H = W as an int, or (H, W).
        background: optional [B, C, H, W] image (or [C] colour) behind the mesh; black when None.
        lighting: optional :class:`Lighting`; None renders the texture unlit (the inverse-graphics
            setting: the paper predicts no lighting).
        normals: optional [B, F, 3, 3] per-face-vertex object-space normals for smooth shading; flat face
            normals when None. Only used with ``lighting``.
        soft: also compute the DIB-R soft silhouette (skip it for plain rendering; it costs about as much
            as the rest).
        sigmainv, boxlen, knum: soft-silhouette parameters (see :mod:`ganverse3d.render.soft_mask`).
        cull_backfaces: rasterise only faces seen from the front, as DIB-R does.
        perspective_correct: perspective-correct interpolation (True, as Blender) or DIB-R's screen-space one.
        backend: the hard coverage's rasteriser, "torch" (ours), "nvdiffrast" or "kaolin" (CUDA, optional
            packages; see :func:`ganverse3d.render.rasterize`); every gradient is ours whichever it is.

    Returns:
        :class:`RenderOutput`. ``image`` is differentiable w.r.t. ``verts`` (through the barycentric
        weights), ``face_uvs``, ``texture``, ``normals`` and ``background``; ``soft_mask`` w.r.t. ``verts``.
    """
    height, width = _as_image_size(image_size)
    batch = verts.shape[0]
    assert verts.dim() == 3 and verts.shape[-1] == 3, verts.shape
    assert faces.dim() == 2 and faces.shape[1] == 3 and faces.dtype == torch.int64, (faces.shape, faces.dtype)
    assert face_uvs.shape[-3:] == (faces.shape[0], 3, 2), face_uvs.shape
    assert texture.dim() == 4 and texture.shape[0] == batch, texture.shape
    assert len(cameras) == batch, (len(cameras), batch)

    ndc, depth = cameras.to(device=verts.device, dtype=verts.dtype).transform(verts, aspect=width / height)
    tri_ndc, tri_depth = ndc[:, faces], depth[:, faces]  # [B, F, 3, 2], [B, F, 3]
    fragments = rasterize(tri_ndc, tri_depth, (height, width), cull_backfaces=cull_backfaces,
                          perspective_correct=perspective_correct, backend=backend)

    uv = interpolate(face_uvs, fragments)
    colour = sample_texture(texture, uv, fragments.batch_index())
    if lighting is not None:
        face_vertex_normals = normals if normals is not None else face_normals(verts, faces)[:, :, None].expand(-1, -1, 3, -1)
        colour = lighting.shade(colour, interpolate(face_vertex_normals, fragments))

    channels = texture.shape[1]
    if background is None:
        fill = 0.0
    elif background.dim() == 1:
        fill = background.to(colour.dtype)[None, :, None, None].expand(batch, channels, height, width)
    else:
        fill = background
    image = scatter_to_image(colour, fragments, fill)
    mask = fragments.mask
    soft_mask = soft_silhouette(tri_ndc, tri_depth, fragments, sigmainv, boxlen, knum) if soft else mask
    return RenderOutput(image=image, mask=mask, soft_mask=soft_mask, face_index=fragments.face_index)
