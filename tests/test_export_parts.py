"""Part-aware cars (issue 20 §3): one material per part, four wheel nodes, in .glb and .obj, and what loads back."""

import dataclasses

import numpy as np
import pytest
import torch
import trimesh

from ganverse3d.export import PartAwareCar, TexturedMesh, load_mesh, part_aware_car, save_mesh
from ganverse3d.geometry.wheels import PART_NAMES, WHEEL_LABEL, WHEEL_NAMES, fit_wheels
from ganverse3d.world import cars
from test_export import glb_accessor, read_glb  # same folder: pytest's rootdir import finds it

WHEEL_NODE_NAMES = list(WHEEL_NAMES.values())


@pytest.fixture(scope="module")
def car() -> PartAwareCar:
    world_car = cars.build_car(cars.sample_car_spec(np.random.default_rng(0), "sedan"))
    mesh = TexturedMesh(world_car.verts, world_car.faces, world_car.face_uvs, world_car.texture,
                        world_car.part_labels)
    return part_aware_car(mesh)


def test_part_names_are_the_worlds():
    assert PART_NAMES == cars.PART_LABELS


def test_part_aware_car_replaces_the_wheel_blobs_by_four_wheels(car):
    world_car = cars.build_car(cars.sample_car_spec(np.random.default_rng(0), "sedan"))
    assert [wheel.wheel.name for wheel in car.wheels] == WHEEL_NODE_NAMES
    assert not (car.body.part_labels == WHEEL_LABEL).any()
    assert torch.equal(car.body.faces, world_car.faces) and torch.equal(car.body.face_uvs, world_car.face_uvs)
    expected = fit_wheels(world_car.verts, world_car.faces, world_car.part_labels)
    for car_wheel, wheel in zip(car.wheels, expected):
        assert np.array_equal(car_wheel.wheel.centre, wheel.centre)
        assert np.hypot(car_wheel.verts[:, 1], car_wheel.verts[:, 2]).max() == pytest.approx(wheel.radius, rel=1e-6)
        assert len(car_wheel.materials) == len(car_wheel.faces)
        # The rim faces outward: +x on the left, -x on the right.
        assert np.sign(car_wheel.verts[car_wheel.faces[car_wheel.materials == 1]].mean(axis=(0, 1))[0]) == (
            1 if wheel.left else -1)


def test_a_mesh_without_labels_has_no_part_aware_car():
    mesh = TexturedMesh(torch.eye(3), torch.tensor([[0, 1, 2]]), torch.zeros(1, 3, 2), torch.rand(3, 2, 2))
    with pytest.raises(ValueError, match="part labels"):
        part_aware_car(mesh)


def test_glb_has_a_body_node_with_a_primitive_per_part_and_four_wheel_children(car, tmp_path):
    path = tmp_path / "car.glb"
    assert save_mesh(path, car) == [path]
    document, binary = read_glb(path)
    nodes = document["nodes"]
    assert document["scenes"][0]["nodes"] == [0]
    assert [node["name"] for node in nodes] == ["body", *WHEEL_NODE_NAMES]
    assert nodes[0]["children"] == [1, 2, 3, 4] and "translation" not in nodes[0]
    for node, car_wheel in zip(nodes[1:], car.wheels):
        assert node["translation"] == car_wheel.wheel.centre.tolist()

    materials = {material["name"]: material for material in document["materials"]}
    body_primitives = document["meshes"][nodes[0]["mesh"]]["primitives"]
    labels = car.body.part_labels.numpy()
    assert [document["materials"][primitive["material"]]["name"] for primitive in body_primitives] == [
        PART_NAMES[part] for part in np.unique(labels)]
    positions = glb_accessor(document, binary, body_primitives[0]["attributes"]["POSITION"])
    for primitive in body_primitives:
        name = document["materials"][primitive["material"]]["name"]
        part = glb_accessor(document, binary, primitive["attributes"]["_PART"])[:, 0]
        corners = glb_accessor(document, binary, primitive["indices"])[:, 0]
        assert len(corners) == 3 * int((labels == PART_NAMES.index(name)).sum())
        assert (part[corners] == PART_NAMES.index(name)).all()
        assert np.array_equal(glb_accessor(document, binary, primitive["attributes"]["POSITION"]), positions)
    assert materials["window"]["alphaMode"] == "BLEND"
    assert materials["window"]["pbrMetallicRoughness"]["roughnessFactor"] < 0.2
    assert materials["headlight"]["emissiveFactor"] == [1.0, 1.0, 1.0]
    assert materials["taillight"]["emissiveFactor"][0] == 1.0 and max(materials["taillight"]["emissiveFactor"][1:]) < 0.1
    assert materials["body"]["pbrMetallicRoughness"]["baseColorTexture"] == {"index": 0}
    assert "baseColorTexture" not in materials["tyre"]["pbrMetallicRoughness"]
    assert materials["rim"]["pbrMetallicRoughness"]["metallicFactor"] == 1.0

    for node, car_wheel in zip(nodes[1:], car.wheels):
        primitives = document["meshes"][node["mesh"]]["primitives"]
        assert [document["materials"][primitive["material"]]["name"] for primitive in primitives] == ["tyre", "rim"]
        for primitive in primitives:
            assert (glb_accessor(document, binary, primitive["attributes"]["_PART"]) == WHEEL_LABEL).all()
        vertices = glb_accessor(document, binary, primitives[0]["attributes"]["POSITION"])
        assert np.array_equal(vertices, car_wheel.verts)


def test_wheel_colours_replace_the_tyre_and_rim_base_colours_in_glb_and_mtl(car, tmp_path):
    default_rim = read_glb_materials(car, tmp_path / "default.glb")["rim"]["pbrMetallicRoughness"]
    tinted = dataclasses.replace(car, wheel_colours={"rim": (0.5, 0.25, 0.125)})
    materials = read_glb_materials(tinted, tmp_path / "tinted.glb")
    assert materials["rim"]["pbrMetallicRoughness"] == {**default_rim, "baseColorFactor": [0.5, 0.25, 0.125, 1.0]}
    assert materials["tyre"] == read_glb_materials(car, tmp_path / "default.glb")["tyre"]
    save_mesh(tmp_path / "tinted.obj", tinted)
    rim = (tmp_path / "tinted.mtl").read_text().split("newmtl rim\n")[1].split("newmtl")[0]
    assert "Kd 0.5 0.25 0.125\n" in rim and "Pm 1\n" in rim


def read_glb_materials(car, path) -> dict:
    save_mesh(path, car)
    return {material["name"]: material for material in read_glb(path)[0]["materials"]}


def test_glb_loads_in_trimesh_with_the_wheels_at_their_hubs(car, tmp_path):
    path = tmp_path / "car.glb"
    save_mesh(path, car)
    scene = trimesh.load(path, force="scene", process=False)
    for car_wheel in car.wheels:
        node = next(name for name in scene.graph.nodes_geometry if name.startswith(car_wheel.wheel.name))
        transform, _ = scene.graph[node]
        assert np.allclose(transform[:3, 3], car_wheel.wheel.centre, atol=1e-6)


def test_load_mesh_of_a_part_aware_glb_is_the_body_with_its_labels(car, tmp_path):
    path = tmp_path / "car.glb"
    save_mesh(path, car)
    loaded = load_mesh(path)
    body = car.body
    # Faces come back grouped by part id, each part's in its order; vertices as they were (welded).
    order = torch.from_numpy(np.argsort(body.part_labels.numpy(), kind="stable"))
    unique_positions = np.unique(body.verts.numpy(), axis=0)
    assert len(loaded.verts) == len(unique_positions)
    assert torch.equal(loaded.part_labels, body.part_labels[order])
    assert torch.allclose(loaded.verts[loaded.faces], body.verts[body.faces[order]], atol=1e-6)
    assert torch.allclose(loaded.face_uvs, body.face_uvs[order], atol=1e-6)
    assert torch.allclose(loaded.texture, body.texture, atol=0.5 / 255 + 1e-6)


def test_obj_keeps_the_wheels_as_objects_and_the_parts_as_material_groups(car, tmp_path):
    path = tmp_path / "car.obj"
    written = save_mesh(path, car)
    assert [file.name for file in written] == ["car.obj", "car.mtl", "car_texture.png"]
    text = path.read_text()
    objects = [line.split()[1] for line in text.splitlines() if line.startswith("o ")]
    assert objects == ["body", *WHEEL_NODE_NAMES]
    groups = [line.split()[1] for line in text.splitlines() if line.startswith("usemtl ")]
    assert groups == [PART_NAMES[part] for part in np.unique(car.body.part_labels.numpy())] + ["tyre", "rim"] * 4
    materials = (tmp_path / "car.mtl").read_text()
    for name in set(groups):
        assert f"newmtl {name}\n" in materials
    assert "Ke 1 1 1" in materials and "d 0.55" in materials

    # OBJ has no node transforms: the wheel's vertices stand at its hub.
    front_left_lines = text.split("o wheel_front_left\n")[1].split("o wheel_front_right\n")[0].splitlines()
    vertices = np.array([[float(value) for value in line.split()[1:]] for line in front_left_lines
                         if line.startswith("v ")])
    front_left = car.wheels[0]
    assert np.allclose(vertices, front_left.verts.astype(np.float64) + front_left.wheel.centre, atol=1e-6)
    # load_mesh reads the textured body: its faces and positions (OBJ carries no part ids).
    loaded = load_mesh(path)
    assert len(loaded.faces) == len(car.body.faces) and loaded.part_labels is None
    assert np.allclose(np.sort(loaded.verts.numpy(), axis=0), np.sort(np.unique(car.body.verts.numpy(), axis=0), axis=0),
                       atol=1e-6)


def test_blender_imports_the_body_with_part_materials_and_four_wheels_at_their_hubs(car, tmp_path):
    bpy = pytest.importorskip("bpy")
    path = tmp_path / "car.glb"
    save_mesh(path, car)
    bpy.ops.wm.read_factory_settings(use_empty=True)
    bpy.ops.import_scene.gltf(filepath=str(path))
    objects = {o.name: o for o in bpy.context.scene.objects if o.type == "MESH"}
    assert set(objects) == {"body", *WHEEL_NODE_NAMES}
    body = objects["body"]
    assert [slot.material.name for slot in body.material_slots] == [
        PART_NAMES[part] for part in np.unique(car.body.part_labels.numpy())]
    for car_wheel in car.wheels:
        blender_wheel = objects[car_wheel.wheel.name]
        assert blender_wheel.parent == body
        x, y, z = car_wheel.wheel.centre
        assert np.allclose(list(blender_wheel.matrix_world.translation), (x, -z, y), atol=1e-5)
        assert [slot.material.name for slot in blender_wheel.material_slots] == ["tyre", "rim"]
