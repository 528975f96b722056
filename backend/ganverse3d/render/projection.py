"""Texture from the photo: bake a photo, seen through a camera, into a mesh's UV texture (issue 18, section 2).

:func:`project_photo` makes a texture of ``texture_size`` x 2 ``texture_size`` texels in a UV layout of the
mesh given for it (``atlas_uvs``: in use, ``render.atlas.uv_atlas`` of the mesh, each texel about the same
patch of surface). Each texel is a point of the surface (the UV triangles are rasterised in texture space; a
texel takes the point its face's barycentrics give). Its colour is, blended by weights:

1. **the photo** where the point is visible from the camera — in front of the z-buffer of the mesh rendered
   at the photo's resolution, inside the photo's car mask when one is given — weighted by how squarely it
   faces the camera: 0 at or below ``min_cos`` (grazing), 1 from ``full_cos`` up, linear between;
2. what is left, **the mirrored point** (x -> -x, its normal mirrored too) when *it* is visible, with its
   own weight, in the photo's colour there: cars are mirror-symmetric (any UV layout will do, the mesh
   itself must be symmetric in x, as the network's and the fitted meshes are);
3. what is left after that, **the predicted texture**, sampled as the renderer does (wrapping in u, clamped
   in v) at the point's UV in the predicted texture's own layout (``face_uvs``, the template's).

Texels no face covers (the gutters between charts) take the mean of their covered neighbours, repeated
``dilate_steps`` times, and then the rest the mean colour of ever larger blocks around them, so bilinear and
mipmapped sampling across a chart's edge reads the chart's colours, not black.

Tensors in, tensors out; no networks, no files. Vectorised torch: about a second for 1024 x 2048 on one CPU core.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from ..geometry.camera import Camera
from ..geometry.mesh import face_normals
from .rasterize import interpolate, ndc_to_pixel, rasterize
from .shading import sample_texture


def uv_texels(face_uvs: torch.Tensor, texture_size: int):
    """Which face, and where in it, each texel centre of a ``texture_size`` x 2 ``texture_size`` texture lies.

    Args:
        face_uvs: [F, 3, 2] per-face UVs ((0, 0) the top-left; u may run past 1 on faces across the seam).

    Returns:
        (texel [N] int64 flat index row * W + column of each covered texel, face [N] int64, bary [N, 3]), on
        ``face_uvs``' device. The last layout asked for is remembered (the template's never changes).
    """
    uvs = face_uvs.detach().to(device="cpu", dtype=torch.float32).contiguous()
    key = (uvs.numpy().tobytes(), int(texture_size))
    if _UV_TEXELS_CACHE.get("key") != key:
        _UV_TEXELS_CACHE.clear()
        _UV_TEXELS_CACHE.update(key=key, value=_uv_texels(uvs, int(texture_size)))
    texel, face, bary = _UV_TEXELS_CACHE["value"]
    return texel.to(face_uvs.device), face.to(face_uvs.device), bary.to(face_uvs.device)


_UV_TEXELS_CACHE: dict = {}


def _uv_texels(uvs: torch.Tensor, texture_size: int):
    height, width = texture_size, 2 * texture_size
    seam = (uvs[..., 0] > 1).any(-1).nonzero()[:, 0]  # faces past the seam are also drawn one width left
    shifted = uvs[seam] - uvs.new_tensor([1.0, 0.0])
    all_uvs = torch.cat((uvs, shifted))
    owner = torch.cat((torch.arange(uvs.shape[0]), seam))
    ndc = torch.stack((2 * all_uvs[..., 0] - 1, 1 - 2 * all_uvs[..., 1]), -1)
    with torch.no_grad():
        fragments = rasterize(ndc[None], torch.ones_like(ndc[None, ..., 0]), (height, width), cull_backfaces=False,
                              perspective_correct=False)
    return fragments.pixel, owner[fragments.face], fragments.bary


def _ramp(value: torch.Tensor, low: float, high: float) -> torch.Tensor:
    return ((value - low) / (high - low)).clamp(0, 1)


def dilate(texture: torch.Tensor, covered: torch.Tensor, steps: int) -> torch.Tensor:
    """Fill the uncovered texels of ``texture``: ``steps`` times with the mean of their covered 3 x 3 neighbours
    (wrapping in u, as the texture does), then every one still uncovered from :func:`_pull_push`.

    Args:
        texture: [C, H, W] float; covered: [H, W] bool, the texels whose colour is known.

    Returns:
        [C, H, W] the texture with every texel filled (uncovered texels of an all-uncovered texture stay 0).
    """
    values = texture * covered
    weight = covered.to(texture.dtype)[None]
    for _ in range(steps):
        padded = torch.cat((values[..., -1:], values, values[..., :1]), -1)[None]
        padded_weight = torch.cat((weight[..., -1:], weight, weight[..., :1]), -1)[None]
        total = F.avg_pool2d(F.pad(padded, (0, 0, 1, 1)), 3, stride=1)[0]
        count = F.avg_pool2d(F.pad(padded_weight, (0, 0, 1, 1)), 3, stride=1)[0]
        fill = (weight == 0) & (count > 0)
        values = torch.where(fill, total / count.clamp_min(1e-12), values)
        weight = torch.where(fill, torch.ones_like(weight), weight)
    return _pull_push(values, weight)


def _pull_push(values: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """``values`` [C, H, W] (0 where unknown) with each texel where ``weight`` [1, H, W] is 0 replaced by the
    covered mean of the 2 x 2 block above it, recursively (the block's own gaps filled the same way): the
    gutters of a mip level then hold their charts' colours."""
    if bool((weight > 0).all()) or not bool((weight > 0).any()):
        return values
    # The same window over both: the average's divisor cancels, also in the partial blocks of odd sizes.
    total = F.avg_pool2d((values * weight)[None], 2, ceil_mode=True)[0]
    count = F.avg_pool2d(weight[None], 2, ceil_mode=True)[0]
    coarse_weight = (count > 0).to(values.dtype)
    coarse = _pull_push(total / count.clamp_min(1e-12) * coarse_weight, coarse_weight)
    height, width = values.shape[-2:]
    upsampled = coarse.repeat_interleave(2, -2).repeat_interleave(2, -1)[..., :height, :width]
    return torch.where(weight > 0, values, upsampled)


def project_photo(verts: torch.Tensor, faces: torch.Tensor, face_uvs: torch.Tensor, camera: Camera,
                  photo: torch.Tensor, texture: torch.Tensor, atlas_uvs: torch.Tensor, texture_size: int,
                  mask: torch.Tensor | None = None, min_cos: float = 0.1, full_cos: float = 0.3,
                  mirror: bool = True, dilate_steps: int = 4, depth_tolerance: float = 0.01) -> torch.Tensor:
    """Bake ``photo`` into a UV texture of the mesh (see the module docstring).

    Args:
        verts: [V, 3] float object-space vertices; faces [F, 3] int64.
        face_uvs: [F, 3, 2] float per-face UVs of ``texture`` ((0, 0) the top-left; u may run past 1).
        camera: a :class:`Camera` of batch size 1 that sees the mesh as the photo shows it.
        photo: [3, R, R] float the square region the camera sees, in [0, 1], at any resolution.
        texture: [3, Ht, Wt] float the predicted texture on ``face_uvs``, the fallback where the photo says
            nothing.
        atlas_uvs: [F, 3, 2] float per-face UVs of the output, the layout baked into (no two faces sharing a
            texel; ``render.atlas.uv_atlas``); may be ``face_uvs`` itself.
        texture_size: the output's height; its width is twice that.
        mask: optional [1, R, R] or [R, R] the car in ``photo`` (> 0.5 = car); texels seen outside it take
            no colour from the photo.
        min_cos, full_cos: the photo's weight ramps from 0 at cos(angle to the camera) = ``min_cos`` to 1 at
            ``full_cos``.
        mirror: fill from the mirrored point (needs a mesh mirror-symmetric in x).
        dilate_steps: texels of gutter filled around the covered texels from their neighbours (the rest of
            the gutters from ever coarser blocks, :func:`dilate`).
        depth_tolerance: how far behind the z-buffer (in units of the point's depth, plus a pixel's footprint
            at the surface's slope) a point still counts as visible.

    Returns:
        [3, texture_size, 2 * texture_size] float texture in [0, 1] on ``verts``' device.
    """
    assert verts.dim() == 2 and verts.shape[1] == 3, verts.shape
    assert photo.dim() == 3 and photo.shape[0] == 3 and photo.shape[1] == photo.shape[2], photo.shape
    assert len(camera) == 1, len(camera)
    device, dtype = verts.device, verts.dtype
    height, width = texture_size, 2 * texture_size
    resolution = photo.shape[-1]
    camera = camera.to(device=device, dtype=dtype)
    photo = photo.to(device=device, dtype=dtype)

    with torch.no_grad():
        # Every texel's surface point and normal.
        texel, face, bary = uv_texels(atlas_uvs.to(device), texture_size)
        bary = bary.to(dtype)
        corners = faces[face]  # [N, 3]
        points = (bary[..., None] * verts[corners]).sum(1)
        normals = face_normals(verts, faces)[face]  # the face's own: vertex normals round a car's edges

        # The z-buffer of the mesh at the photo's resolution (both sides of every face: the nearest surface).
        ndc, depth = camera.transform(verts[None])
        fragments = rasterize(ndc[:, faces], depth[:, faces], (resolution, resolution), cull_backfaces=False)
        zbuffer = torch.full((resolution * resolution,), math.inf, dtype=dtype, device=device)
        zbuffer[fragments.pixel] = interpolate(depth[0, faces][..., None], fragments)[:, 0]
        if mask is not None:
            car = (mask.reshape(resolution, resolution) > 0.5).reshape(-1).to(device)
            zbuffer = torch.where(car, zbuffer, torch.full_like(zbuffer, -math.inf))

        footprint = 2 * math.tan(math.radians(float(camera.fov_y[0])) / 2) / resolution

        def photo_samples(points, normals):
            """Photo colour [N, 3] and its weight [N] at surface points [N, 3] with normals [N, 3]."""
            cos = (normals * F.normalize(camera.position()[0] - points, dim=-1)).sum(-1)
            point_ndc, point_depth = camera.transform(points[None])
            point_ndc, point_depth = point_ndc[0], point_depth[0]
            pixel = ndc_to_pixel(point_ndc, (resolution, resolution)).round().long()
            inside = ((pixel >= 0) & (pixel < resolution)).all(-1) & (point_depth > 0)
            flat = pixel[:, 1].clamp(0, resolution - 1) * resolution + pixel[:, 0].clamp(0, resolution - 1)
            # A pixel's footprint on the surface grows as 1 / cos: allow two pixels' worth of depth along the slope.
            slack = point_depth * (depth_tolerance + 2 * footprint / cos.clamp_min(min_cos))
            visible = inside & (point_depth <= zbuffer[flat] + slack)
            weight = torch.where(visible, _ramp(cos, min_cos, full_cos), torch.zeros_like(cos))
            grid = torch.stack((point_ndc[:, 0], -point_ndc[:, 1]), -1).clamp(-1, 1)
            colour = F.grid_sample(photo[None], grid[None, None], mode="bilinear", padding_mode="border",
                                   align_corners=False)[0, :, 0].T
            return colour, weight

        colour, weight = photo_samples(points, normals)
        texture_uv = (bary[..., None] * face_uvs.to(device=device, dtype=dtype)[face]).sum(1)
        fallback = sample_texture(texture[None].to(device=device, dtype=dtype), texture_uv, torch.zeros_like(texel))
        if mirror:
            flip = points.new_tensor([-1.0, 1.0, 1.0])
            mirrored_colour, mirrored_weight = photo_samples(points * flip, normals * flip)
            fallback = mirrored_weight[:, None] * mirrored_colour + (1 - mirrored_weight[:, None]) * fallback
        values = weight[:, None] * colour + (1 - weight[:, None]) * fallback

        result = torch.zeros(3, height * width, dtype=dtype, device=device)
        result[:, texel] = values.T
        result = result.reshape(3, height, width)
        covered = torch.zeros(height * width, dtype=torch.bool, device=device)
        covered[texel] = True
        result = dilate(result, covered.reshape(height, width), dilate_steps)
    return result.clamp(0, 1)
