"""Export of textured meshes: .glb and .obj round trips, file conventions, and what Blender makes of a .glb."""

import json
import struct

import numpy as np
import pytest
import torch
import trimesh
from PIL import Image

from ganverse3d.errors import InputError
from ganverse3d.export import TexturedMesh, load_mesh, mesh_files, save_mesh
from ganverse3d.files import to_uint8, write_files
from ganverse3d.geometry import template_sphere


def sphere_mesh(seed: int = 0, with_labels: bool = True) -> TexturedMesh:
    """The 1-subdivision template (42 vertices, 80 faces, UVs past u = 1 at the seam), random texture and labels."""
    generator = torch.Generator().manual_seed(seed)
    template = template_sphere(subdivisions=1)
    labels = torch.randint(0, 5, (template.faces.shape[0],), generator=generator) if with_labels else None
    return TexturedMesh(template.verts, template.faces, template.face_uvs,
                        torch.rand(3, 12, 20, generator=generator), labels)


def two_triangles(shared_uvs_agree: bool) -> TexturedMesh:
    """A quad of two triangles sharing the edge (1, 2); the shared corners' UVs agree or differ at vertex 2."""
    verts = [[0.0, 0.0, 0.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [1.0, 1.0, 0.0]]
    faces = [[0, 1, 2], [2, 1, 3]]
    uv_of_2 = [0.0, 0.0] if shared_uvs_agree else [0.5, 0.5]
    face_uvs = [[[0.0, 1.0], [1.0, 1.0], [0.0, 0.0]], [uv_of_2, [1.0, 1.0], [1.0, 0.0]]]
    return TexturedMesh(torch.tensor(verts), torch.tensor(faces), torch.tensor(face_uvs), torch.rand(3, 4, 4))


def read_glb(path) -> tuple[dict, bytes]:
    """The JSON document and BIN chunk of a .glb, parsed by hand so that no loader's conventions interfere."""
    data = path.read_bytes()
    magic, version, total = struct.unpack_from("<III", data, 0)
    assert (magic, version, total) == (0x46546C67, 2, len(data))
    json_length, json_type = struct.unpack_from("<II", data, 12)
    assert json_type == 0x4E4F534A
    bin_offset = 20 + json_length
    bin_length, bin_type = struct.unpack_from("<II", data, bin_offset)
    assert bin_type == 0x004E4942
    return json.loads(data[20:bin_offset]), data[bin_offset + 8:bin_offset + 8 + bin_length]


def glb_accessor(document: dict, binary: bytes, index: int) -> np.ndarray:
    accessor = document["accessors"][index]
    view = document["bufferViews"][accessor["bufferView"]]
    dtype = {5126: "<f4", 5125: "<u4"}[accessor["componentType"]]
    width = {"SCALAR": 1, "VEC2": 2, "VEC3": 3}[accessor["type"]]
    start = view["byteOffset"] + accessor.get("byteOffset", 0)
    return np.frombuffer(binary, dtype, accessor["count"] * width, start).reshape(accessor["count"], width)


def assert_same_mesh(loaded: TexturedMesh, original: TexturedMesh, labels: bool):
    assert torch.allclose(loaded.verts, original.verts, atol=1e-6)
    assert torch.equal(loaded.faces, original.faces)
    assert torch.allclose(loaded.face_uvs, original.face_uvs, atol=1e-6)
    assert loaded.texture.shape == original.texture.shape
    assert (loaded.texture - original.texture).abs().max() <= 1 / 255
    if labels:
        assert torch.equal(loaded.part_labels, original.part_labels)


def test_glb_round_trip_keeps_vertices_faces_uvs_labels_and_texture(tmp_path):
    mesh = sphere_mesh()
    assert mesh.face_uvs[..., 0].max() > 1  # the seam case is exercised
    assert save_mesh(tmp_path / "car.glb", mesh) == [tmp_path / "car.glb"]
    assert_same_mesh(load_mesh(tmp_path / "car.glb"), mesh, labels=True)


def test_obj_round_trip_keeps_vertices_faces_uvs_and_texture(tmp_path):
    mesh = sphere_mesh(with_labels=False)
    written = save_mesh(tmp_path / "car.obj", mesh)
    assert sorted(p.name for p in written) == ["car.mtl", "car.obj", "car_texture.png"]
    assert_same_mesh(load_mesh(tmp_path / "car.obj"), mesh, labels=False)


def test_obj_stores_v_from_the_bottom_and_an_upright_texture(tmp_path):
    mesh = sphere_mesh(with_labels=False)
    save_mesh(tmp_path / "car.obj", mesh)
    lines = (tmp_path / "car.obj").read_text().splitlines()
    assert "mtllib car.mtl" in lines
    assert "map_Kd car_texture.png" in (tmp_path / "car.mtl").read_text().splitlines()
    texcoords = np.array([[float(x) for x in line.split()[1:]] for line in lines if line.startswith("vt ")])
    first_face = next(line for line in lines if line.startswith("f ")).split()[1:]
    for corner, token in enumerate(first_face):
        vertex, texcoord, _ = (int(i) - 1 for i in token.split("/"))
        assert vertex == int(mesh.faces[0, corner])
        u, v = mesh.face_uvs[0, corner].tolist()
        assert texcoords[texcoord] == pytest.approx([u, 1 - v], abs=1e-6)
    png = np.asarray(Image.open(tmp_path / "car_texture.png").convert("RGB"))
    assert np.array_equal(png, to_uint8(mesh.texture))  # row 0 of the texture is the top of the image


def test_glb_stores_gltf_uvs_repeat_clamp_sampler_and_labels(tmp_path):
    mesh = sphere_mesh()
    save_mesh(tmp_path / "car.glb", mesh)
    document, binary = read_glb(tmp_path / "car.glb")
    primitive = document["meshes"][0]["primitives"][0]
    positions = glb_accessor(document, binary, primitive["attributes"]["POSITION"])
    texcoords = glb_accessor(document, binary, primitive["attributes"]["TEXCOORD_0"])
    labels = glb_accessor(document, binary, primitive["attributes"]["_PART"])[:, 0]
    normals = glb_accessor(document, binary, primitive["attributes"]["NORMAL"])
    indices = glb_accessor(document, binary, primitive["indices"]).reshape(-1, 3)
    # glTF's UVs run downward like ours, so the file holds our per-corner UVs unchanged.
    assert np.allclose(texcoords[indices], mesh.face_uvs.numpy())
    assert np.allclose(positions[indices], mesh.verts.numpy()[mesh.faces.numpy()])
    assert np.array_equal(labels[indices], mesh.part_labels.numpy()[:, None].repeat(3, 1))
    assert np.allclose(np.linalg.norm(normals, axis=1), 1, atol=1e-5)
    assert np.allclose(normals, positions, atol=0.2)  # a sphere's smooth normals point away from its centre
    assert document["samplers"][0]["wrapS"] == 10497 and document["samplers"][0]["wrapT"] == 33071
    material = document["materials"][0]["pbrMetallicRoughness"]
    texture = document["textures"][material["baseColorTexture"]["index"]]
    assert document["images"][texture["source"]]["mimeType"] == "image/png"


@pytest.mark.parametrize("shared_uvs_agree, expected_vertices", [(True, 4), (False, 5)])
def test_glb_splits_vertices_only_where_corner_uvs_differ(tmp_path, shared_uvs_agree, expected_vertices):
    save_mesh(tmp_path / "quad.glb", two_triangles(shared_uvs_agree))
    document, _ = read_glb(tmp_path / "quad.glb")
    position_accessor = document["meshes"][0]["primitives"][0]["attributes"]["POSITION"]
    assert document["accessors"][position_accessor]["count"] == expected_vertices


def test_two_exports_in_one_folder_do_not_collide(tmp_path):
    first, second = sphere_mesh(seed=1), sphere_mesh(seed=2)
    for name, mesh in (("a", first), ("b", second)):
        save_mesh(tmp_path / f"{name}.obj", mesh)
        save_mesh(tmp_path / f"{name}.glb", mesh)
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "a.glb", "a.mtl", "a.obj", "a_texture.png", "b.glb", "b.mtl", "b.obj", "b_texture.png"]
    for name, mesh in (("a", first), ("b", second)):
        for suffix in (".obj", ".glb"):
            assert (load_mesh(tmp_path / f"{name}{suffix}").texture - mesh.texture).abs().max() <= 1 / 255


def test_blender_imports_glb_with_image_texture_uvs_and_front_at_minus_y(tmp_path):
    bpy = pytest.importorskip("bpy")
    # An asymmetric tetrahedron with its tip at the car's front (+Z), so any other axis mapping shows.
    verts = torch.tensor([[0.0, 0.1, 1.0], [0.6, 0.0, -0.3], [-0.5, 0.2, -0.4], [0.1, 0.9, -0.2]])
    faces = torch.tensor([[0, 1, 3], [1, 2, 3], [2, 0, 3], [0, 2, 1]])
    texture = torch.rand(3, 6, 10, generator=torch.Generator().manual_seed(3))
    height, width = texture.shape[1:]
    # UVs at texel centres, one distinct texel per corner.
    texel = torch.arange(12).reshape(4, 3)
    face_uvs = torch.stack(((texel % width + 0.5) / width, (texel // width * 2 + 0.5) / height), dim=-1)
    save_mesh(tmp_path / "tetra.glb", TexturedMesh(verts, faces, face_uvs, texture))

    bpy.ops.wm.read_factory_settings(use_empty=True)
    bpy.ops.import_scene.gltf(filepath=str(tmp_path / "tetra.glb"))
    (blender_object,) = [o for o in bpy.context.scene.objects if o.type == "MESH"]

    world = np.array([list(blender_object.matrix_world @ v.co) for v in blender_object.data.vertices])
    expected = verts.numpy()[:, [0, 2, 1]] * [1, -1, 1]  # (x, y, z) -> (x, -z, y)
    for point in expected:
        assert np.abs(world - point).max(axis=1).min() < 1e-5
    assert world[:, 1].min() == pytest.approx(-1.0, abs=1e-6)  # the front vertex lands at Blender -Y

    material = blender_object.data.materials[0]
    principled = next(n for n in material.node_tree.nodes if n.type == "BSDF_PRINCIPLED")
    (link,) = principled.inputs["Base Color"].links
    image = link.from_node.image
    assert link.from_node.type == "TEX_IMAGE" and tuple(image.size) == (width, height)

    # Blender's UVs and image rows run upward; the texel under each corner's UV must still be ours.
    pixels = np.array(image.pixels[:]).reshape(height, width, 4)[::-1, :, :3]  # now row 0 = top
    uv_layer = blender_object.data.uv_layers.active.data
    for loop in blender_object.data.loops:
        u, v_up = uv_layer[loop.index].uv
        column, row = int(u * width), int((1 - v_up) * height)
        position = world[loop.vertex_index]
        corner = np.abs(expected - position).max(axis=1).argmin()
        faces_with_corner = [(f, c) for f in range(4) for c in range(3) if int(faces[f, c]) == corner]
        candidates = [texture[:, int(face_uvs[f, c, 1] * height), int(face_uvs[f, c, 0] * width)].numpy()
                      for f, c in faces_with_corner]
        assert min(np.abs(pixels[row, column] - colour).max() for colour in candidates) <= 1 / 255 + 1e-6


def test_foreign_mesh_without_uvs_or_texture_loads_with_flat_grey(tmp_path):
    box = trimesh.creation.box(extents=(2.0, 1.0, 4.0))
    for suffix in (".glb", ".obj"):
        box.export(tmp_path / f"box{suffix}")
        mesh = load_mesh(tmp_path / f"box{suffix}")
        assert mesh.verts.shape == (8, 3) and mesh.faces.shape == (12, 3)  # welded back to the 8 corners
        assert mesh.verts.max(dim=0).values.tolist() == [1.0, 0.5, 2.0]
        assert torch.all(mesh.texture == 0.5) and torch.all(mesh.face_uvs == 0)


def test_foreign_scene_joins_meshes_with_their_node_transforms(tmp_path):
    scene = trimesh.Scene()
    scene.add_geometry(trimesh.creation.box(), transform=trimesh.transformations.translation_matrix([3, 0, 0]))
    scene.add_geometry(trimesh.creation.box())
    scene.export(tmp_path / "two_boxes.glb")
    mesh = load_mesh(tmp_path / "two_boxes.glb")
    assert mesh.faces.shape == (24, 3)
    assert mesh.verts[:, 0].max() == pytest.approx(3.5) and mesh.verts[:, 0].min() == pytest.approx(-0.5)


@pytest.mark.parametrize("name, content, message", [
    ("missing.glb", None, "does not exist"),
    ("notes.glb", b"not a gltf file", "not a valid .glb file"),
    ("notes.obj", b"hello world\n", "contains no triangles"),
    ("points.obj", b"v 0 0 0\nv 1 0 0\nv 0 1 0\n", "contains no triangles"),
    ("car.stl", b"solid x\nendsolid x\n", "must end in .glb, .gltf or .obj"),
])
def test_load_mesh_rejects_bad_files_with_one_sentence(tmp_path, name, content, message):
    if content is not None:
        (tmp_path / name).write_bytes(content)
    with pytest.raises(InputError, match=message) as caught:
        load_mesh(tmp_path / name)
    text = str(caught.value)
    assert "\n" not in text and text.endswith(".")


def test_save_mesh_rejects_unknown_suffix_and_unwritable_folder_without_writing(tmp_path):
    with pytest.raises(InputError, match="must end in .glb or .obj"):
        save_mesh(tmp_path / "car.ply", sphere_mesh())
    (tmp_path / "a_file").write_text("")
    for suffix in (".glb", ".obj"):
        with pytest.raises(InputError, match="Cannot write"):
            save_mesh(tmp_path / "a_file" / f"car{suffix}", sphere_mesh())
    assert [p.name for p in tmp_path.iterdir()] == ["a_file"]


@pytest.mark.parametrize("in_the_way", ["car.obj", "car.mtl", "car_texture.png"])
def test_an_obj_is_written_with_its_companions_or_not_at_all(tmp_path, in_the_way):
    assert mesh_files(tmp_path / "car.obj") == [tmp_path / "car.obj", tmp_path / "car.mtl",
                                               tmp_path / "car_texture.png"]
    (tmp_path / in_the_way).mkdir()
    with pytest.raises(InputError, match=f"Cannot write .*{in_the_way}: a folder of that name is in the way"):
        save_mesh(tmp_path / "car.obj", sphere_mesh())
    assert [path.name for path in tmp_path.iterdir()] == [in_the_way]  # no companion, no temporary


def test_write_files_replaces_earlier_files_only_when_all_are_written(tmp_path):
    (tmp_path / "a.txt").write_text("old")
    (tmp_path / "c.txt").mkdir()
    with pytest.raises(InputError, match="a folder of that name is in the way"):
        write_files({tmp_path / "a.txt": b"new", tmp_path / "b.txt": b"new", tmp_path / "c.txt": b"new"})
    assert (tmp_path / "a.txt").read_text() == "old"
    assert sorted(path.name for path in tmp_path.iterdir()) == ["a.txt", "c.txt"]
    (tmp_path / "c.txt").rmdir()
    written = write_files({tmp_path / "a.txt": b"new", tmp_path / "b.txt": b"new", tmp_path / "c.txt": b"new"})
    assert written == [tmp_path / name for name in ("a.txt", "b.txt", "c.txt")]
    assert all(path.read_bytes() == b"new" for path in written) and len(list(tmp_path.iterdir())) == 3


@pytest.mark.parametrize("field, value, message", [
    ("verts", torch.zeros(4, 2), r"verts must have shape \[V, 3\]"),
    ("faces", torch.zeros(0, 3, dtype=torch.int64), r"faces must have shape \[F, 3\] with F >= 1"),
    ("faces", torch.tensor([[0.0, 1.0, 2.0]] * 2), "faces must hold integers"),
    ("faces", torch.tensor([[0, 1, 4], [0, 1, 2]]), "faces must index the 4 vertices"),
    ("face_uvs", torch.zeros(2, 3, 3), r"face_uvs must have shape \[F, 3, 2\] = \[2, 3, 2\]"),
    ("texture", torch.zeros(4, 8, 8), r"texture must have shape \[3, Ht, Wt\]"),
    ("verts", torch.full((4, 3), float("nan")), "verts contains NaN"),
    ("part_labels", torch.tensor([0, 1, 2]), r"part_labels must have shape \[F\] = \[2\]"),
    ("part_labels", torch.tensor([0, -1]), "part_labels must lie in"),
])
def test_textured_mesh_rejects_bad_shapes_with_clear_messages(field, value, message):
    fields = {name: getattr(two_triangles(True), name) for name in ("verts", "faces", "face_uvs", "texture")}
    fields[field] = value
    with pytest.raises(ValueError, match=message):
        TexturedMesh(**fields)


def test_textured_mesh_accepts_arrays_and_detaches_tensors():
    verts = torch.rand(3, 3, requires_grad=True)
    mesh = TexturedMesh(verts * 2, np.array([[0, 1, 2]], dtype=np.int32), np.zeros((1, 3, 2)), np.ones((3, 2, 2)))
    assert mesh.verts.dtype == torch.float32 and not mesh.verts.requires_grad
    assert mesh.faces.dtype == torch.int64 and mesh.face_uvs.dtype == torch.float32
