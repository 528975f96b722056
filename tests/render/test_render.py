"""The DIB-R renderer: exact coverage, reference twins, gradients against finite differences, conventions."""

import math

import pytest
import torch

from ganverse3d.geometry import Camera, template_sphere
from ganverse3d.render import Lighting, interpolate, rasterize, render_mesh, sample_texture, soft_silhouette
from ganverse3d.render.reference import rasterize_ref, soft_silhouette_ref


def pixels_to_ndc(points, image_size):
    """Continuous pixel coordinates (pixel centres at integers) -> NDC."""
    height, width = image_size
    points = torch.as_tensor(points, dtype=torch.float64)
    return torch.stack(((points[..., 0] + 0.5) * 2 / width - 1, 1 - (points[..., 1] + 0.5) * 2 / height), -1)


def random_triangle_soup(batch, faces, seed):
    generator = torch.Generator().manual_seed(seed)
    centre = torch.rand(batch, faces, 1, 2, generator=generator, dtype=torch.float64) * 2.2 - 1.1
    tri_ndc = centre + (torch.rand(batch, faces, 3, 2, generator=generator, dtype=torch.float64) - 0.5) * 0.8
    tri_depth = 1 + 3 * torch.rand(batch, faces, 3, generator=generator, dtype=torch.float64)
    return tri_ndc, tri_depth


def jittered_sphere(subdivisions, batch=1, seed=0, dtype=torch.float64):
    mesh = template_sphere(subdivisions)
    generator = torch.Generator().manual_seed(seed)
    verts = mesh.verts.to(dtype) * (0.7 + 0.05 * torch.rand(mesh.num_verts, 1, generator=generator, dtype=dtype))
    return mesh, verts.expand(batch, -1, -1).clone()


def test_coverage_of_a_hand_made_triangle_is_exact():
    image_size = (8, 8)
    # Legs along the top and left image edges, hypotenuse on x + y = 6 in pixel units: exactly the pixel
    # centres with column + row <= 6 are inside (the ones on the hypotenuse count, edges are inclusive).
    # Counter-clockwise on screen (NDC y up) so that it is front-facing.
    corners = pixels_to_ndc([[-0.25, -0.25], [-0.25, 6.25], [6.25, -0.25]], image_size)
    fragments = rasterize(corners[None, None], torch.full((1, 1, 3), 2.0, dtype=torch.float64), image_size)
    rows, columns = torch.meshgrid(torch.arange(8), torch.arange(8), indexing="ij")
    expected = torch.where(rows + columns <= 6, 0, -1)
    assert torch.equal(fragments.face_index[0], expected)
    assert int((fragments.face_index >= 0).sum()) == 28


def test_back_faces_are_culled_and_kept_on_request():
    image_size = (8, 8)
    clockwise = pixels_to_ndc([[-0.25, -0.25], [6.25, -0.25], [-0.25, 6.25]], image_size)[None, None]
    depth = torch.full((1, 1, 3), 2.0, dtype=torch.float64)
    assert int((rasterize(clockwise, depth, image_size).face_index >= 0).sum()) == 0
    assert int((rasterize(clockwise, depth, image_size, cull_backfaces=False).face_index >= 0).sum()) == 28


def test_nearer_face_wins_and_ties_go_to_lower_index():
    image_size = (6, 6)
    square = pixels_to_ndc([[-1, -1], [-1, 7], [7, -1]], image_size)
    tri_ndc = square.expand(1, 3, 3, 2).clone()
    tri_depth = torch.tensor([[[3.0] * 3, [2.0] * 3, [2.0] * 3]], dtype=torch.float64)
    fragments = rasterize(tri_ndc, tri_depth, image_size)
    assert set(fragments.face_index[fragments.face_index >= 0].tolist()) == {1}


def test_rasterize_matches_dense_reference():
    image_size = (20, 24)
    tri_ndc, tri_depth = random_triangle_soup(batch=2, faces=40, seed=1)
    fragments = rasterize(tri_ndc, tri_depth, image_size, perspective_correct=False)
    face_index, bary = rasterize_ref(tri_ndc, tri_depth, image_size)
    assert (face_index >= 0).sum() > 200  # the soup covers a good part of the image
    assert torch.equal(fragments.face_index, face_index)
    dense = torch.zeros(2 * 20 * 24, 3, dtype=torch.float64).index_put((fragments.pixel,), fragments.bary)
    assert torch.allclose(dense.reshape(2, 20, 24, 3), bary, atol=1e-9)


def test_perspective_correct_interpolation_matches_ray_casting():
    # A tilted square z = 0.4 x in object space; its UVs are (x, y) + 0.5, so at each pixel the interpolated
    # UV must equal the ray's hit point on the plane.
    corners = torch.tensor([[-0.5, -0.5], [0.5, -0.5], [0.5, 0.5], [-0.5, 0.5]], dtype=torch.float64)
    verts = torch.cat((corners, 0.4 * corners[:, :1]), 1)[None]
    faces = torch.tensor([[0, 1, 2], [0, 2, 3]])
    camera = Camera.create(25.0, 10.0, 2.0, 50.0, dtype=torch.float64)
    image_size = (32, 32)
    ndc, depth = camera.transform(verts)
    fragments = rasterize(ndc[:, faces], depth[:, faces], image_size)
    uv = interpolate((verts[0, :, :2] + 0.5)[faces], fragments)

    rows, columns = fragments.pixel // 32, fragments.pixel % 32
    x_ndc, y_ndc = (2 * columns + 1 - 32) / 32, (32 - 2 * rows - 1) / 32
    focal = 1 / math.tan(math.radians(25.0))
    direction_camera = torch.stack((x_ndc / focal, y_ndc / focal, -torch.ones_like(x_ndc)), -1).double()
    direction = direction_camera @ camera.rotation()[0]
    origin = camera.position()[0]
    # Plane z - 0.4 x = 0: solve origin + t * direction on it.
    normal = torch.tensor([-0.4, 0.0, 1.0], dtype=torch.float64)
    t = -(origin @ normal) / (direction @ normal)
    hit = origin + t[:, None] * direction
    assert len(uv) > 200
    assert torch.allclose(uv, hit[:, :2] + 0.5, atol=1e-9)


def test_soft_silhouette_matches_dense_reference_values_and_gradients():
    mesh, verts = jittered_sphere(subdivisions=1, batch=2)
    verts.requires_grad_(True)
    cameras = Camera.create([20.0, 200.0], [10.0, 25.0], 3.0, 40.0, dtype=torch.float64)
    image_size = (24, 20)
    ndc, depth = cameras.transform(verts, aspect=20 / 24)
    tri_ndc, tri_depth = ndc[:, mesh.faces], depth[:, mesh.faces]
    fragments = rasterize(tri_ndc, tri_depth, image_size)
    fast = soft_silhouette(tri_ndc, tri_depth, fragments, sigmainv=2000.0, boxlen=0.15, knum=1000)
    reference = soft_silhouette_ref(tri_ndc, tri_depth, image_size, sigmainv=2000.0, boxlen=0.15)
    border = (fast > 1e-3) & (fast < 1)
    assert int(border.sum()) > 20
    assert torch.allclose(fast, reference, atol=1e-12)
    weights = torch.rand(fast.shape, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    (grad_fast,) = torch.autograd.grad((fast * weights).sum(), verts, retain_graph=True)
    (grad_ref,) = torch.autograd.grad((reference * weights).sum(), verts)
    assert grad_fast.abs().sum() > 0
    assert torch.allclose(grad_fast, grad_ref, atol=1e-9)


def test_knum_keeps_the_nearest_faces():
    mesh, verts = jittered_sphere(subdivisions=2)
    cameras = Camera.create(0.0, 0.0, 3.0, 40.0, dtype=torch.float64)
    ndc, depth = cameras.transform(verts)
    tri_ndc, tri_depth = ndc[:, mesh.faces], depth[:, mesh.faces]
    fragments = rasterize(tri_ndc, tri_depth, (16, 16))
    everything = soft_silhouette(tri_ndc, tri_depth, fragments, sigmainv=500.0, boxlen=0.5, knum=10_000)
    capped = soft_silhouette(tri_ndc, tri_depth, fragments, sigmainv=500.0, boxlen=0.5, knum=3)
    nearest_only = soft_silhouette(tri_ndc, tri_depth, fragments, sigmainv=500.0, boxlen=0.5, knum=1)
    # Fewer faces can only lower the probability, and the nearest face alone gives exp(-sigmainv d_min^2).
    assert (capped <= everything + 1e-12).all() and (nearest_only <= capped + 1e-12).all()
    assert (capped < everything - 1e-6).any()
    assert nearest_only.max() < 1 or (nearest_only == 1).sum() == (fragments.face_index >= 0).sum()


def _gradcheck_setup():
    mesh, verts = jittered_sphere(subdivisions=1)
    generator = torch.Generator().manual_seed(3)
    texture = torch.rand(1, 3, 6, 7, generator=generator, dtype=torch.float64)
    uvs = (mesh.face_uvs.double() + 0.01 * torch.rand(mesh.face_uvs.shape, generator=generator, dtype=torch.float64))
    camera = Camera.create(30.0, 20.0, 2.4, 45.0, dtype=torch.float64)
    return mesh, verts, uvs, texture, camera


def test_image_gradients_match_finite_differences():
    mesh, verts, uvs, texture, camera = _gradcheck_setup()

    def image(verts, uvs, texture):
        return render_mesh(verts, mesh.faces, uvs, texture, camera, 12, lighting=Lighting(), soft=False).image

    assert torch.autograd.gradcheck(image, (verts.requires_grad_(), uvs.requires_grad_(), texture.requires_grad_()),
                                    eps=1e-6, atol=1e-6, rtol=1e-4)


def test_soft_mask_gradients_match_finite_differences():
    mesh, verts, uvs, texture, camera = _gradcheck_setup()

    def soft_mask(verts):
        return render_mesh(verts, mesh.faces, uvs, texture, camera, 12, sigmainv=1500.0, boxlen=0.1).soft_mask

    out = soft_mask(verts)
    assert ((out > 1e-4) & (out < 1)).sum() > 10  # enough uncovered pixels carry a gradient
    assert torch.autograd.gradcheck(soft_mask, (verts.requires_grad_(),), eps=1e-6, atol=1e-6, rtol=1e-4)


def test_batch_equals_per_item():
    mesh = template_sphere()
    generator = torch.Generator().manual_seed(0)
    verts = mesh.verts * (0.6 + 0.1 * torch.rand(3, mesh.num_verts, 1, generator=generator))
    texture = torch.rand(3, 3, 32, 32, generator=generator)
    cameras = Camera.create([0.0, 120.0, 250.0], [0.0, 15.0, 30.0], [2.5, 2.8, 3.0], 40.0)
    together = render_mesh(verts, mesh.faces, mesh.face_uvs, texture, cameras, (40, 48), lighting=Lighting())
    for item in range(3):
        alone = render_mesh(verts[item:item + 1], mesh.faces, mesh.face_uvs, texture[item:item + 1], cameras[item],
                            (40, 48), lighting=Lighting())
        assert torch.equal(together.face_index[item], alone.face_index[0])
        assert torch.allclose(together.image[item], alone.image[0], atol=1e-6)
        assert torch.allclose(together.soft_mask[item], alone.soft_mask[0], atol=1e-6)


def test_texture_sampling_hits_texel_centres_and_wraps_in_u():
    texture = torch.arange(2 * 3 * 4, dtype=torch.float64).reshape(1, 2, 3, 4)
    centres = torch.tensor([[(c + 0.5) / 4, (r + 0.5) / 3] for r in range(3) for c in range(4)], dtype=torch.float64)
    sampled = sample_texture(texture, centres, torch.zeros(12, dtype=torch.long))
    assert torch.allclose(sampled, texture[0].reshape(2, 12).T)
    # u = 0 lies halfway between the last and first columns; u and u + 1 are the same place.
    seam = sample_texture(texture, torch.tensor([[0.0, 0.5], [1.0, 0.5], [1.05, 0.5]], dtype=torch.float64),
                          torch.zeros(3, dtype=torch.long))
    assert torch.allclose(seam[0], (texture[0, :, 1, 0] + texture[0, :, 1, 3]) / 2)
    assert torch.allclose(seam[0], seam[1])
    assert torch.allclose(seam[2], sample_texture(texture, torch.tensor([[0.05, 0.5]], dtype=torch.float64),
                                                  torch.zeros(1, dtype=torch.long))[0])


def test_sphere_silhouette_has_the_analytic_radius():
    # A sphere of radius r at distance d subtends a disc of angular radius asin(r / d).
    mesh = template_sphere(subdivisions=4)
    camera = Camera.create(10.0, 20.0, 3.0, 40.0)
    out = render_mesh(mesh.verts[None], mesh.faces, mesh.face_uvs, torch.ones(1, 3, 4, 4), camera, 256)
    radius_ndc = math.tan(math.asin(1 / 3.0)) / math.tan(math.radians(20.0))
    expected_area = math.pi * (radius_ndc * 128) ** 2
    assert abs(out.mask.sum().item() / expected_area - 1) < 0.01


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_equals_cpu():
    mesh, verts, uvs, texture, camera = _gradcheck_setup()
    cpu = render_mesh(verts, mesh.faces, uvs, texture, camera, 32)
    cuda = render_mesh(verts.cuda(), mesh.faces.cuda(), uvs.cuda(), texture.cuda(), camera.to("cuda"), 32)
    assert torch.equal(cpu.face_index, cuda.face_index.cpu())
    assert torch.allclose(cpu.image, cuda.image.cpu(), atol=1e-9)
    assert torch.allclose(cpu.soft_mask, cuda.soft_mask.cpu(), atol=1e-9)
