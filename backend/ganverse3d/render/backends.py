"""Optional CUDA rasterisers behind :func:`ganverse3d.render.rasterize`'s ``backend``: nvdiffrast and kaolin.

A backend only answers the discrete question of the z-buffer: which face is front-most at each pixel centre
(``face_index`` [B, H, W] int64, -1 for none). The barycentrics and every gradient are then computed by our
own differentiable pass from that answer, so DIB-R's interpolation gradient is the same whichever backend
drew the coverage. Neither package is required; each is imported when first asked for.

Both adapters are given the faces our rasteriser would consider (``visible``: in front of the near plane and,
when culling, front-facing) and follow the packages' documented conventions, noted where they differ from
ours (NDC x right, y up; row 0 at the top; pixel centres at ((2i + 1 - W) / W, (H - 2j - 1) / H); the
nearest perspective-correct depth wins).
"""

from __future__ import annotations

import functools
import importlib

import torch

from ..errors import InputError, setting

BACKENDS = ("torch", "nvdiffrast", "kaolin")

# Backends whose packages run on CUDA tensors only (tests that stand in for the packages on CPU empty it).
CUDA_ONLY = frozenset({"nvdiffrast", "kaolin"})

_PACKAGES = {"nvdiffrast": ("nvdiffrast.torch", "pip install nvdiffrast"),
             "kaolin": ("kaolin.render.mesh", "install kaolin built for your PyTorch and CUDA")}

# nvdiffrast stores triangle_id + 1 as a float: exact up to 2^24, bit-shifted above (common.h, float_to_triidx).
_EXACT_FLOAT_IDS = 16_777_216
_FLOAT_ID_OFFSET = 0x4A800000


def check_backend(backend: str) -> None:
    """Raise :class:`InputError` (one sentence) unless ``backend`` is one of :data:`BACKENDS`."""
    if backend not in BACKENDS:
        raise InputError(f"Unknown rasteriser {setting('backend')} {backend!r}; use one of {', '.join(BACKENDS)}.")


def _package(backend: str, device: torch.device):
    module_name, install = _PACKAGES[backend]
    try:
        module = importlib.import_module(module_name)
    except ImportError:
        raise InputError(f"The {backend} rasteriser is not installed ({install}); set {setting('backend')} to "
                         f"torch to use ours.") from None
    if backend in CUDA_ONLY and device.type != "cuda":
        raise InputError(f"The {backend} rasteriser needs CUDA tensors, got {device.type}; set "
                         f"{setting('backend')} to torch for {device.type}.")
    return module


def external_face_index(backend: str, tri_ndc: torch.Tensor, tri_depth: torch.Tensor, visible: torch.Tensor,
                        image_size: tuple[int, int]) -> torch.Tensor:
    """The front-most face at every pixel centre, found by an optional package (no gradients).

    Args:
        backend: "nvdiffrast" or "kaolin".
        tri_ndc: [B, F, 3, 2] NDC corners (x right, y up). tri_depth: [B, F, 3] view-space depths.
        visible: [B, F] bool, the faces that may be drawn (the others are never drawn, whatever their winding).
        image_size: (H, W).

    Returns:
        [B, H, W] int64 face index into F, -1 where no face is; row 0 is the top row.
    """
    check_backend(backend)
    module = _package(backend, tri_ndc.device)
    if not visible.any():  # nvdiffrast refuses an empty triangle list, kaolin's packing indexes one
        return torch.full((visible.shape[0], *image_size), -1, dtype=torch.int64, device=tri_ndc.device)
    with torch.no_grad():
        if backend == "nvdiffrast":
            return _nvdiffrast_face_index(module, tri_ndc, tri_depth, visible, image_size)
        return _kaolin_face_index(module, tri_ndc, tri_depth, visible, image_size)


@functools.lru_cache(maxsize=None)
def _nvdiffrast_context(context_class, device: torch.device):
    """One rasteriser context per device (creating one allocates its buffers)."""
    return context_class(device=device)


def _nvdiffrast_face_index(dr, tri_ndc, tri_depth, visible, image_size):
    """nvdiffrast (``dr.rasterize``, instanced mode): clip-space corners in, (u, v, z/w, triangle_id + 1) out.

    Each face gets its own three vertices (V = 3F, tri = arange), w = depth, so that x/w, y/w are our NDC and
    nvdiffrast interpolates z/w perspective-correctly. z is OpenGL's perspective depth for a near and far plane
    around each image's visible corners: z/w = a - b / depth rises with depth and stays inside the [-1, 1]
    frustum (which nvdiffrast clips to), and its smallest value wins the depth test as our nearest depth does.
    nvdiffrast draws both windings and clips at the near plane instead of dropping the face, so every face we
    would not draw is moved wholly outside the frustum, where nvdiffrast culls it. Its row 0 is the bottom row.
    """
    height, width = image_size
    batch, num_faces = visible.shape
    depth = tri_depth.float()
    seen = visible[..., None].expand_as(depth)
    nearest = torch.where(seen, depth, torch.inf).amin((1, 2))
    farthest = torch.where(seen, depth, 0.0).amax((1, 2))
    any_seen = seen.any(2).any(1)
    near = torch.where(any_seen, nearest / 2, 1.0)[:, None, None]
    far = torch.where(any_seen, farthest * 2, 2.0)[:, None, None]
    z = (far + near) / (far - near) * depth - 2 * far * near / (far - near)
    clip = torch.cat((tri_ndc.float() * depth[..., None], z[..., None], depth[..., None]), dim=-1)  # [B, F, 3, 4]
    outside = torch.tensor([2.0, 2.0, 2.0, 1.0], device=clip.device)  # x/w = 2 > 1 at every corner
    clip = torch.where(visible[..., None, None], clip, outside)
    pos = clip.reshape(batch, num_faces * 3, 4).contiguous()
    tri = torch.arange(num_faces * 3, dtype=torch.int32, device=clip.device).reshape(num_faces, 3)
    context = _nvdiffrast_context(dr.RasterizeCudaContext, clip.device)
    rast, _ = dr.rasterize(context, pos, tri, resolution=[height, width], grad_db=False)
    ids = rast[..., 3].flip(1)
    ids = torch.where(ids > _EXACT_FLOAT_IDS, ids.view(torch.int32) - _FLOAT_ID_OFFSET, ids.int())
    return ids.long() - 1


def _kaolin_face_index(kaolin_mesh, tri_ndc, tri_depth, visible, image_size):
    """kaolin (``kaolin.render.mesh.rasterize``, its DIB-R CUDA kernel): image coordinates in [-1, 1] with y up
    and row 0 at the top, as ours; pixels covered inclusively for either winding (``valid_faces`` selects the
    faces); the largest screen-space interpolation of ``face_vertices_z`` wins, ties to the lower index.

    kaolin's camera looks down -z, so its z (-depth) is larger nearer. We pass 1 / depth, also larger nearer,
    whose screen-space interpolation is exact under perspective (kaolin's -depth is approximate, as its kernel
    notes): the winner is the face with our nearest perspective-correct depth.
    """
    height, width = image_size
    features = torch.zeros(*tri_depth.shape, 1, dtype=tri_ndc.dtype, device=tri_ndc.device)
    _, face_index = kaolin_mesh.rasterize(height, width, 1.0 / tri_depth.to(tri_ndc.dtype), tri_ndc.contiguous(),
                                          features, valid_faces=visible, backend="cuda")
    return face_index.long()
