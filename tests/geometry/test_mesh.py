"""The DIB-R template sphere and the topology helpers."""

import torch

from ganverse3d.geometry import face_normals, template_sphere, vertex_normals


def test_template_has_dibr_sizes_and_lies_on_the_unit_sphere():
    mesh = template_sphere()
    assert mesh.verts.shape == (642, 3) and mesh.faces.shape == (1280, 3) and mesh.face_uvs.shape == (1280, 3, 2)
    assert torch.allclose(mesh.verts.norm(dim=-1), torch.ones(642), atol=1e-6)
    assert mesh.edges.shape == (1920, 2)  # Euler: V - E + F = 2


def test_faces_point_outward():
    mesh = template_sphere()
    normals = face_normals(mesh.verts, mesh.faces)
    assert ((normals * mesh.verts[mesh.faces].mean(1)).sum(-1) > 0.9).all()
    assert torch.allclose(vertex_normals(mesh.verts, mesh.faces), mesh.verts, atol=0.02)


def test_uvs_do_not_stretch_across_the_seam():
    mesh = template_sphere()
    u, v = mesh.face_uvs[..., 0], mesh.face_uvs[..., 1]
    assert (u.max(1).values - u.min(1).values).max() < 0.21   # no face spans the texture
    assert u.min() >= 0 and u.max() < 1.25 and v.min() >= 0 and v.max() <= 1
    # The front of the sphere (+Z) maps to the middle of the texture, the top (+Y) to v = 0.
    front_face = int(mesh.verts[mesh.faces].mean(1)[:, 2].argmax())
    assert abs(mesh.face_uvs[front_face, :, 0].mean() - 0.5) < 0.05
    top_face = int(mesh.verts[mesh.faces].mean(1)[:, 1].argmax())
    assert mesh.face_uvs[top_face, :, 1].mean() < 0.1


def test_edge_faces_share_their_edge():
    mesh = template_sphere(subdivisions=2)
    for (i, j), (f, g) in zip(mesh.edges.tolist(), mesh.edge_faces.tolist()):
        assert f != g and {i, j} <= set(mesh.faces[f].tolist()) and {i, j} <= set(mesh.faces[g].tolist())


def test_uniform_laplacian_rows_sum_to_zero_and_point_inward():
    mesh = template_sphere()
    laplacian = mesh.laplacian().to_dense()
    assert torch.allclose(laplacian.sum(1), torch.zeros(642), atol=1e-6)
    degree = (laplacian > 0).sum(1)
    assert set(degree.tolist()) == {5, 6}  # 12 icosahedron corners of degree 5, the rest 6
    delta = laplacian @ mesh.verts
    assert ((delta * mesh.verts).sum(-1) < 0).all()   # the neighbours' mean lies inside a convex surface


def test_split_faces_quarters_every_triangle_on_the_same_surface():
    from ganverse3d.geometry.mesh import split_corners, split_faces

    verts = torch.tensor([[0.0, 0.0, 0.0], [2.0, 0.0, 0.0], [0.0, 2.0, 0.0], [0.0, 0.0, 2.0]])
    faces = torch.tensor([[0, 1, 2], [0, 2, 3]])
    split, new_faces = split_faces(verts, faces)
    assert split.shape == (4 + 5, 3) and new_faces.shape == (8, 3)
    assert torch.equal(split[:4], verts)
    areas = face_normals(split, new_faces, normalize=False).norm(dim=-1) / 2
    original = face_normals(verts, faces, normalize=False).norm(dim=-1) / 2
    assert torch.allclose(areas.reshape(4, 2).sum(0), original)          # face f's quarters are rows f, F + f, ...
    assert torch.allclose(areas, original.repeat(4) / 4)
    normals = face_normals(split, new_faces)
    assert torch.allclose(normals, face_normals(verts, faces).repeat(4, 1))  # windings kept
    uvs = torch.tensor([[[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]]])
    quarters = split_corners(uvs)
    assert quarters.tolist()[3] == [[0.5, 0.0], [0.5, 0.5], [0.0, 0.5]]
    # Corner attributes of the split faces are the positions' interpolation: UVs equal to x, y stay so.
    xy = split_corners(verts[faces][..., :2])
    assert torch.allclose(xy, split[new_faces][..., :2])
