"""The optional rasteriser backends (nvdiffrast, kaolin) against ours.

On CPU the packages are replaced by stand-ins: brute-force PyTorch versions of ``nvdiffrast.torch.rasterize`` and
``kaolin.render.mesh.rasterize`` written from the packages' own documentation and kernels, each in its own
conventions (nvdiffrast: clip space, bottom row first, triangle_id + 1, both windings drawn, the frustum clips
z/w to [-1, 1]; kaolin: y up with row 0 on top, the largest interpolated z wins, ``valid_faces``). They never
call our rasteriser, so agreeing with it checks the adapters' conversions. The real packages are compared on
CUDA at the end, where they are installed.
"""

import sys
import types

import numpy as np
import pytest
import torch

from ganverse3d.errors import InputError
from ganverse3d.geometry import Camera, template_sphere
from ganverse3d.render import backends, rasterize, render_mesh
from ganverse3d.render.rasterize import NEAR_PLANE


def cross(u, v):
    return u[..., 0] * v[..., 1] - u[..., 1] * v[..., 0]


def screen_barycentrics(corners, points):
    """Barycentrics [B, F, H, W, 3] of pixel centres ``points`` [H, W, 2] in triangles ``corners`` [B, F, 3, 2],
    normalised by their sum so that either winding gives non-negative weights inside."""
    a, b, c = (corners[:, :, k, None, None, :] for k in range(3))
    weights = torch.stack((cross(b - points, c - points), cross(c - points, a - points),
                           cross(a - points, b - points)), dim=-1)
    return weights / weights.sum(-1, keepdim=True)


class StandInRasterizeCudaContext:
    """``nvdiffrast.torch.RasterizeCudaContext``: counts how many were made."""

    made = 0

    def __init__(self, device=None):
        StandInRasterizeCudaContext.made += 1
        self.device = device


def stand_in_nvdiffrast_rasterize(glctx, pos, tri, resolution, ranges=None, grad_db=True):
    """``nvdiffrast.torch.rasterize`` in instanced mode, as its docs and TriangleSetup.inl describe it.

    pos [B, V, 4] float32 clip space, tri [F, 3] int32 -> (rast [B, H, W, 4] = (u, v, z/w, triangle_id + 1),
    zeros where empty; rast_db). OpenGL's conventions: x/w, y/w, z/w in [-1, 1] inside the frustum; row 0 is
    the bottom row (y = -1); pixel centres are point-sampled; both windings are drawn, zero-area triangles
    never; a triangle wholly beyond one frustum plane is culled; the smallest z/w wins.
    """
    assert isinstance(glctx, StandInRasterizeCudaContext)
    assert pos.dtype == torch.float32 and pos.dim() == 3 and pos.shape[-1] == 4 and pos.is_contiguous()
    assert tri.dtype == torch.int32 and tri.dim() == 2 and tri.shape[1] == 3 and tri.is_contiguous()
    assert tri.shape[0] > 0, "tri must have shape [>0, 3]"  # torch_rasterize.cpp's NVDR_CHECK
    height, width = resolution
    corners = pos[:, tri.long()]  # [B, F, 3, 4]
    x, y, z, w = corners.unbind(-1)
    beyond = torch.zeros(corners.shape[:2], dtype=torch.bool)
    for coordinate in (x, y, z):
        beyond |= (w < coordinate).all(-1) | (w < -coordinate).all(-1)
    # Clipping at w <= 0 is not needed by anything drawn here; the stand-in refuses rather than guess it.
    assert (w[~beyond] > 0).all()
    screen = torch.stack((x / w, y / w), -1)
    depth = z / w
    rows = (2 * torch.arange(height, dtype=torch.float32) + 1) / height - 1  # row 0 at y = -1: bottom-up
    columns = (2 * torch.arange(width, dtype=torch.float32) + 1) / width - 1
    points = torch.stack(torch.meshgrid(columns, rows, indexing="xy"), -1)  # [H, W, 2]
    area = cross(screen[:, :, 1] - screen[:, :, 0], screen[:, :, 2] - screen[:, :, 0])
    weights = screen_barycentrics(screen, points)
    sample_depth = (weights * depth[:, :, None, None, :]).sum(-1)  # z/w is affine in screen space
    drawn = ((weights >= 0).all(-1) & (area != 0)[..., None, None] & ~beyond[..., None, None]
             & (sample_depth >= -1) & (sample_depth <= 1))
    nearest = torch.where(drawn, sample_depth, torch.inf).argmin(1)  # [B, H, W], ties to the first triangle
    hit = drawn.any(1)
    chosen = torch.gather(weights, 1, nearest[:, None, ..., None].expand(-1, 1, -1, -1, 3))[:, 0]
    chosen_w = torch.gather(w, 1, nearest.reshape(len(w), -1, 1).expand(-1, -1, 3)).reshape(*nearest.shape, 3)
    perspective = chosen / chosen_w
    perspective = perspective / perspective.sum(-1, keepdim=True)  # the first vertex gets (u, v) = (1, 0)
    chosen_depth = torch.gather(sample_depth, 1, nearest[:, None])[:, 0]
    rast = torch.stack((perspective[..., 0], perspective[..., 1], chosen_depth, (nearest + 1).float()), -1)
    rast = torch.where(hit[..., None], rast, 0.0)
    return rast, torch.zeros_like(rast)


def stand_in_kaolin_rasterize(height, width, face_vertices_z, face_vertices_image, face_features,
                              valid_faces=None, multiplier=None, eps=None, backend="cuda"):
    """``kaolin.render.mesh.rasterize`` with its 'cuda' backend (packed_rasterize_forward_cuda_kernel).

    Pixel (column i, row j) is sampled at ((2i + 1 - W) / W, (H - 2j - 1) / H): y up, row 0 on top. A face
    covers it when it is inside its half-open bounding box and its barycentrics (either winding) are all
    >= 0; the largest screen-space interpolation of ``face_vertices_z`` wins, ties to the first face. Returns
    (features [B, H, W, D], face_idx [B, H, W] int64, -1 for none).
    """
    assert backend == "cuda"
    batch, num_faces = face_vertices_z.shape[:2]
    valid = torch.ones(batch, num_faces, dtype=torch.bool) if valid_faces is None else valid_faces
    dtype = face_vertices_image.dtype
    columns = (2 * torch.arange(width, dtype=dtype) + 1 - width) / width
    rows = (height - 2 * torch.arange(height, dtype=dtype) - 1) / height
    points = torch.stack(torch.meshgrid(columns, rows, indexing="xy"), -1)
    lo, hi = face_vertices_image.amin(2)[:, :, None, None], face_vertices_image.amax(2)[:, :, None, None]
    in_box = ((points >= lo) & (points < hi)).all(-1)
    weights = screen_barycentrics(face_vertices_image, points)
    covered = in_box & (weights >= 0).all(-1) & valid[..., None, None]
    z = (weights * face_vertices_z[:, :, None, None, :]).sum(-1)
    face_idx = torch.where(covered, z, -torch.inf).argmax(1)
    face_idx = torch.where(covered.any(1), face_idx, -1)
    chosen = torch.gather(weights, 1, face_idx.clamp_min(0)[:, None, ..., None].expand(-1, 1, -1, -1, 3))[:, 0]
    corners = face_features[torch.arange(batch)[:, None, None], face_idx.clamp_min(0)]  # [B, H, W, 3, D]
    features = torch.where(face_idx[..., None] >= 0, (chosen[..., None] * corners).sum(-2), 0.0)
    return features, face_idx


@pytest.fixture
def stand_ins(monkeypatch):
    """Both packages replaced by their stand-ins, allowed on CPU tensors."""
    nvdiffrast_torch = types.SimpleNamespace(RasterizeCudaContext=StandInRasterizeCudaContext,
                                             rasterize=stand_in_nvdiffrast_rasterize)
    kaolin_mesh = types.SimpleNamespace(rasterize=stand_in_kaolin_rasterize)
    modules = {"nvdiffrast": types.SimpleNamespace(torch=nvdiffrast_torch), "nvdiffrast.torch": nvdiffrast_torch,
               "kaolin": types.SimpleNamespace(render=types.SimpleNamespace(mesh=kaolin_mesh)),
               "kaolin.render": types.SimpleNamespace(mesh=kaolin_mesh), "kaolin.render.mesh": kaolin_mesh}
    for name, module in modules.items():
        monkeypatch.setitem(sys.modules, name, module)
    monkeypatch.setattr(backends, "CUDA_ONLY", frozenset())


def pixels_to_ndc(points, image_size):
    """Continuous pixel coordinates (pixel centres at integers, row 0 on top) -> NDC."""
    height, width = image_size
    points = torch.as_tensor(points, dtype=torch.float64)
    return torch.stack(((points[..., 0] + 0.5) * 2 / width - 1, 1 - (points[..., 1] + 0.5) * 2 / height), -1)


def sphere_faces(azimuth):
    """A jittered sphere (320 faces) seen from ``azimuth``: tri_ndc [1, F, 3, 2], tri_depth [1, F, 3]."""
    mesh = template_sphere(2)
    generator = torch.Generator().manual_seed(int(azimuth))
    verts = mesh.verts * (0.7 + 0.1 * torch.rand(mesh.num_verts, 1, generator=generator))
    ndc, depth = Camera.create([azimuth], 20.0, 2.5, 40.0).transform(verts[None].double(), aspect=1.0)
    return ndc[:, mesh.faces], depth[:, mesh.faces]


def layered_faces():
    """Faces over a 16 x 16 image, in pixel units (corners off the pixel grid):

    0: a far triangle over most of the image (depth 4); 1: a steep face (depth 1.2 to 6) crossing face 2
    (depth 3): where they cross depends on interpolating depth perspective-correctly (harmonic) rather than
    linearly; 3: a clockwise (back) face nearest of all; 4: a face with a corner behind the near plane,
    nearest elsewhere.
    """
    corners = [
        [[-3.3, -3.1], [-3.2, 19.4], [19.3, -3.4]],
        [[1.1, 2.3], [2.2, 14.6], [14.7, 8.1]],
        [[0.6, 7.7], [13.4, 14.2], [13.9, 1.3]],
        [[3.3, 3.4], [9.2, 4.1], [4.2, 9.3]],
        [[8.4, 8.2], [8.6, 15.3], [15.2, 11.4]],
    ]
    tri_ndc = pixels_to_ndc(corners, (16, 16))
    tri_depth = torch.tensor([[4.0, 4.0, 4.0], [1.2, 6.0, 3.5], [3.0, 3.0, 3.0], [1.0, 1.0, 1.0],
                              [NEAR_PLANE / 2, 1.1, 1.1]], dtype=torch.float64)
    return tri_ndc[None], tri_depth[None]


def windings(tri_ndc):
    edge_a, edge_b = tri_ndc[..., 1, :] - tri_ndc[..., 0, :], tri_ndc[..., 2, :] - tri_ndc[..., 0, :]
    return torch.sign(cross(edge_a, edge_b))


def test_layered_faces_are_what_the_scene_says():
    tri_ndc, tri_depth = layered_faces()
    assert windings(tri_ndc).tolist() == [[1, 1, 1, -1, 1]]
    culled = rasterize(tri_ndc, tri_depth, (16, 16)).face_index
    kept = rasterize(tri_ndc, tri_depth, (16, 16), cull_backfaces=False).face_index
    assert set(culled.unique().tolist()) == {-1, 0, 1, 2}  # 3 is culled, 4 is behind the near plane
    assert set(kept.unique().tolist()) == {-1, 0, 1, 2, 3}
    # Faces 1 and 2 both win somewhere, so the crossing line is in the picture.
    assert int((culled == 1).sum()) > 5 and int((culled == 2).sum()) > 5


@pytest.mark.parametrize("backend", ["nvdiffrast", "kaolin"])
@pytest.mark.parametrize("cull_backfaces", [True, False])
def test_backends_find_our_front_faces(stand_ins, backend, cull_backfaces):
    scenes = [layered_faces()] + [sphere_faces(azimuth) for azimuth in (0.0, 130.0)]
    for tri_ndc, tri_depth in scenes:
        ours = rasterize(tri_ndc, tri_depth, (16, 16), cull_backfaces=cull_backfaces).face_index
        theirs = rasterize(tri_ndc, tri_depth, (16, 16), cull_backfaces=cull_backfaces, backend=backend).face_index
        assert theirs.dtype == torch.int64
        assert torch.equal(theirs, ours)


def test_batches_with_a_rectangle_and_an_empty_image(stand_ins):
    layered, layered_depth = layered_faces()
    tri_ndc = torch.cat((layered, layered))
    tri_depth = torch.cat((layered_depth, layered_depth.clone().fill_(-1.0)))  # all behind the camera
    ours = rasterize(tri_ndc, tri_depth, (12, 20)).face_index
    assert int((ours[1] >= 0).sum()) == 0
    for backend in ("nvdiffrast", "kaolin"):
        assert torch.equal(rasterize(tri_ndc, tri_depth, (12, 20), backend=backend).face_index, ours)


def test_nothing_to_draw(stand_ins):
    tri_ndc, tri_depth = layered_faces()
    for faces in (tri_ndc[:, :0], tri_ndc[:, 3:4]):  # no face at all; only a back face
        depth = tri_depth[:, :faces.shape[1]]
        for backend in ("torch", "nvdiffrast", "kaolin"):
            fragments = rasterize(faces, depth, (16, 16), backend=backend)
            assert torch.equal(fragments.face_index, torch.full((1, 16, 16), -1)) and fragments.pixel.numel() == 0


def test_a_wrong_depth_convention_would_be_caught(stand_ins):
    """kaolin given its camera z (-depth, interpolated linearly) moves the crossing of faces 1 and 2."""
    tri_ndc, tri_depth = layered_faces()
    visible = torch.tensor([[True, True, True, False, False]])
    ours = rasterize(tri_ndc, tri_depth, (16, 16)).face_index
    features = torch.zeros(1, 5, 3, 1, dtype=torch.float64)
    _, linear = stand_in_kaolin_rasterize(16, 16, -tri_depth, tri_ndc, features, valid_faces=visible)
    assert int((linear != ours).sum()) > 0


def test_nvdiffrast_context_is_made_once_per_device(stand_ins):
    tri_ndc, tri_depth = layered_faces()
    before = StandInRasterizeCudaContext.made
    for _ in range(3):
        rasterize(tri_ndc, tri_depth, (16, 16), backend="nvdiffrast")
    assert StandInRasterizeCudaContext.made - before <= 1


def render_sphere(backend):
    mesh = template_sphere(2)
    generator = torch.Generator().manual_seed(3)
    verts = (0.7 * mesh.verts + 0.04 * torch.randn(2, mesh.num_verts, 3, generator=generator)).requires_grad_()
    texture = torch.rand(2, 3, 8, 16, generator=generator)
    cameras = Camera.create([30.0, 200.0], 15.0, 2.5, 40.0)
    out = render_mesh(verts, mesh.faces, mesh.face_uvs, texture, cameras, (16, 20), backend=backend)
    (out.image * torch.linspace(0, 1, 20)).sum().add(out.soft_mask.sum()).backward()
    return out, verts.grad


@pytest.mark.parametrize("backend", ["nvdiffrast", "kaolin"])
def test_render_mesh_images_and_gradients_match_ours(stand_ins, backend):
    ours, our_grad = render_sphere("torch")
    theirs, their_grad = render_sphere(backend)
    assert int((ours.face_index >= 0).sum()) > 100
    assert torch.equal(theirs.face_index, ours.face_index)
    assert torch.equal(theirs.image, ours.image) and torch.equal(theirs.soft_mask, ours.soft_mask)
    assert our_grad.abs().sum() > 0 and torch.equal(their_grad, our_grad)


def one_sentence(error):
    message = str(error.value)
    return message.endswith(".") and ". " not in message and "\n" not in message


def test_unknown_backend_is_one_sentence():
    tri_ndc, tri_depth = layered_faces()
    with pytest.raises(InputError) as error:
        rasterize(tri_ndc, tri_depth, (16, 16), backend="opengl")
    assert str(error.value) == "Unknown rasteriser backend 'opengl'; use one of torch, nvdiffrast, kaolin."
    assert error.value.settings == ["backend"]


@pytest.mark.parametrize("backend, modules, install", [
    ("nvdiffrast", ["nvdiffrast", "nvdiffrast.torch"], "pip install nvdiffrast"),
    ("kaolin", ["kaolin", "kaolin.render", "kaolin.render.mesh"], "install kaolin"),
])
def test_a_missing_package_is_one_sentence(monkeypatch, backend, modules, install):
    for name in modules:
        monkeypatch.setitem(sys.modules, name, None)  # import raises ImportError
    tri_ndc, tri_depth = layered_faces()
    with pytest.raises(InputError) as error:
        rasterize(tri_ndc, tri_depth, (16, 16), backend=backend)
    assert one_sentence(error) and f"The {backend} rasteriser is not installed ({install}" in str(error.value)


def test_cpu_tensors_are_refused_by_a_cuda_backend_in_one_sentence(stand_ins, monkeypatch):
    monkeypatch.setattr(backends, "CUDA_ONLY", frozenset({"nvdiffrast", "kaolin"}))
    mesh = template_sphere(1)
    with pytest.raises(InputError) as error:
        render_mesh(mesh.verts[None], mesh.faces, mesh.face_uvs, torch.rand(1, 3, 4, 4),
                    Camera.create([0.0], 0.0, 2.5, 40.0), 8, backend="kaolin")
    assert one_sentence(error) and "The kaolin rasteriser needs CUDA tensors, got cpu" in str(error.value)


# Where nvdiffrast or kaolin and a CUDA device are present: the real packages against ours at 256 px.
# Tolerances: nvdiffrast snaps corners to 1/16 pixel (TriangleSetup.inl) and both packages follow their own
# fill rules on edges, so pixel centres within a few hundredths of a pixel of an edge may go to the
# neighbouring face, mostly of the same surface. Emulated with our rasteriser on these scenes (corners rounded
# to 1/16 pixel), face_index agreed on 99.77 % (sphere) and 99.78 % (car) of pixels and the image differed by a
# mean of 8e-5 and 3e-5: hence >= 99.5 % and < 1e-3, leaving room for fill rules and depth precision.
@pytest.mark.parametrize("backend, module", [("nvdiffrast", "nvdiffrast.torch"), ("kaolin", "kaolin.render.mesh")])
@pytest.mark.parametrize("mesh_name", ["template sphere", "world car"])
def test_real_backend_agrees_with_ours_on_cuda(backend, module, mesh_name):
    pytest.importorskip(module, reason=f"needs the {backend} package")
    if not torch.cuda.is_available():
        pytest.skip(f"the {backend} rasteriser needs a CUDA device")
    if mesh_name == "template sphere":
        mesh = template_sphere()
        verts, faces, face_uvs = 0.75 * mesh.verts, mesh.faces, mesh.face_uvs
        texture = torch.rand(3, 64, 128, generator=torch.Generator().manual_seed(0))
    else:
        from ganverse3d.world.cars import sample_car
        car = sample_car(np.random.default_rng(5))
        verts, faces, face_uvs, texture = car.verts, car.faces, car.face_uvs, car.texture
    cameras = Camera.create([35.0, 160.0, 290.0], [10.0, 25.0, 5.0], 2.6, 35.0, device="cuda")
    args = (verts.cuda().expand(3, -1, -1), faces.cuda(), face_uvs.cuda(), texture.cuda().expand(3, -1, -1, -1),
            cameras, 256)
    ours = render_mesh(*args, soft=False)
    theirs = render_mesh(*args, soft=False, backend=backend)
    agreement = float((theirs.face_index == ours.face_index).float().mean())
    assert agreement >= 0.995, agreement
    assert float((theirs.image - ours.image).abs().mean()) < 1e-3
