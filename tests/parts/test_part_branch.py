"""The inverse network's part branch: part textures read per face and per pixel, labels of world datasets, training."""

import dataclasses
import json
import shutil

from pathlib import Path

import numpy as np
import pytest
import torch

from ganverse3d import api
from ganverse3d.bundle import load_module
from ganverse3d.cli import main
from ganverse3d.dataset.format import MultiViewDataset
from ganverse3d.dataset.world_multiview import write_world_multiview
from ganverse3d.errors import InputError
from ganverse3d.files import save_png
from ganverse3d.geometry import Camera, template_sphere
from ganverse3d.geometry.wheels import replace_wheels
from ganverse3d.inverse.model import InverseGraphicsNet
from ganverse3d.parts.annotations import label_png_bytes
from ganverse3d.parts.branch import (PART_NAMES, PartBranch, face_part_labels,
                                     render_face_labels, render_part_labels)
from ganverse3d.parts.interpreter import confusion_matrix, iou_scores
from ganverse3d.parts.train_branch import novel_view_scores, read_part_data, view_part_labels
from ganverse3d.render import render_mesh
from ganverse3d.world.cars import build_car
from ganverse3d.world.scene import render_world, sample_item

from parts_helpers import write_tiny_inverse

WINDOW, WHEEL = PART_NAMES.index("window"), PART_NAMES.index("wheel")


@pytest.fixture(scope="module")
def world_views(tmp_path_factory):
    """Three world cars x 4 exact views at 32 px, with their meshes."""
    folder = tmp_path_factory.mktemp("world-mv") / "data"
    write_world_multiview(folder, cars=3, views=4, resolution=32, seed=7, progress=False)
    return folder


@pytest.fixture(scope="module")
def tiny_inverse(world_views, tmp_path_factory):
    path = tmp_path_factory.mktemp("inverse") / "inverse.safetensors"
    write_tiny_inverse(world_views, path)
    return path


def halves_texture(left: int, right: int, height: int = 8) -> torch.Tensor:
    """Logits [1, P, H, 2H]: part ``left`` where u < 0.5, ``right`` elsewhere, by a wide margin."""
    logits = torch.zeros(1, len(PART_NAMES), height, 2 * height)
    logits[0, left, :, :height] = 20
    logits[0, right, :, height:] = 20
    return logits


def test_face_labels_follow_the_part_covering_most_of_each_face():
    mesh = template_sphere(2)
    labels = face_part_labels(halves_texture(WINDOW, WHEEL), mesh.face_uvs)[0]
    u = mesh.face_uvs[..., 0] % 1
    inside_left, inside_right = (u < 0.45).all(dim=1), ((u > 0.55) & (u < 0.95)).all(dim=1)
    assert inside_left.sum() > 20 and inside_right.sum() > 20
    assert (labels[inside_left] == WINDOW).all() and (labels[inside_right] == WHEEL).all()
    assert set(labels.unique().tolist()) == {WINDOW, WHEEL}


def test_a_one_part_texture_and_one_part_faces_render_the_same_labels_on_the_silhouette():
    mesh = template_sphere(2)
    verts = (mesh.verts * torch.tensor([0.5, 0.4, 0.9]))[None].expand(2, -1, -1)
    cameras = Camera.create([30.0, 200.0], [10.0, 20.0], [3.0, 3.0], [30.0, 30.0])
    logits = halves_texture(WINDOW, WINDOW).expand(2, -1, -1, -1)
    from_texture = render_part_labels(verts, mesh.faces, mesh.face_uvs, logits, cameras, 24)
    from_faces = render_face_labels(verts, mesh.faces, torch.full((len(mesh.faces),), WINDOW), cameras, 24)
    silhouette = render_mesh(verts, mesh.faces, mesh.face_uvs, torch.ones(2, 1, 1, 1), cameras, 24, soft=False).mask
    assert torch.equal(from_texture, from_faces)
    assert torch.equal(from_texture >= 0, silhouette[:, 0] > 0)
    assert (from_texture[from_texture >= 0] == WINDOW).all()


def test_iou_from_a_confusion_matrix_on_a_hand_computed_case():
    truth = torch.tensor([0, 0, 1, 1, 2])
    predicted = torch.tensor([0, 1, 1, 1, 0])
    confusion = confusion_matrix(predicted, truth, 4)
    assert confusion.tolist() == [[1, 1, 0, 0], [0, 2, 0, 0], [1, 0, 0, 0], [0, 0, 0, 0]]
    scores = iou_scores(confusion, ("background", "a", "b", "c"))
    assert scores["per_class"] == {"background": 1 / 3, "a": 2 / 3, "b": 0.0, "c": None}
    assert scores["miou"] == pytest.approx(1 / 3) and scores["miou_parts"] == pytest.approx(1 / 3)
    assert iou_scores(torch.zeros(2, 2, dtype=torch.int64), ("background", "a"))["miou_parts"] == 1.0


def test_labels_of_a_world_dataset_are_its_meshes_parts_seen_from_each_camera(world_views):
    dataset = MultiViewDataset(world_views)
    labels = view_part_labels(dataset)
    line = dataset.meta[5]
    car_spec, scene = sample_item(7, line["content_id"])
    camera = line["camera"]
    scene = dataclasses.replace(scene, **camera)
    truth = render_world([build_car(car_spec)], [scene], 32).part_maps[0]
    assert (labels[5].long() == truth).float().mean() > 0.995
    assert {WINDOW, WHEEL} <= set(labels.unique().tolist())


def test_a_parts_folder_is_read_as_part_id_plus_one(world_views, tmp_path):
    folder = tmp_path / "copy"
    shutil.copytree(world_views, folder)
    dataset = MultiViewDataset(folder)
    painted = np.zeros((32, 32), np.uint8)
    painted[4:8, 4:8] = WHEEL + 1
    for line in dataset.meta:
        save_png(folder / "parts" / line["image"].split("/")[-1], painted)
    # The first image's labels as `parts synth` writes them: an indexed PNG with the class palette.
    (folder / "parts" / dataset.meta[0]["image"].split("/")[-1]).write_bytes(label_png_bytes(painted))
    labels = view_part_labels(dataset)
    assert (labels[:, 4:8, 4:8] == WHEEL).all() and (labels[:, :4] == -1).all()
    painted[0, 0] = len(PART_NAMES) + 1
    save_png(folder / "parts" / dataset.meta[0]["image"].split("/")[-1], painted)
    with pytest.raises(InputError, match="has the value 7"):
        view_part_labels(dataset)
    save_png(folder / "parts" / dataset.meta[0]["image"].split("/")[-1], painted[:16])
    with pytest.raises(InputError, match="32x16 px, but its image is 32x32"):
        view_part_labels(dataset)


def test_a_dataset_without_part_labels_is_one_sentence_naming_the_setting(world_views, tmp_path):
    folder = tmp_path / "copy"
    shutil.copytree(world_views, folder)
    lines = [json.loads(line) for line in (folder / "meta.jsonl").read_text().splitlines()]
    (folder / "meta.jsonl").write_text("".join(json.dumps({k: v for k, v in line.items() if k != "mesh"}) + "\n"
                                               for line in lines))
    with pytest.raises(InputError, match="no part labels.*data"):
        view_part_labels(MultiViewDataset(folder))


def test_training_learns_the_parts_of_other_views_better_than_one_constant_part(world_views, tiny_inverse, tmp_path,
                                                                                 capsys):
    out = tmp_path / "branch.safetensors"
    assert main(["inverse", "train-parts", "--data", str(world_views), "--inverse", str(tiny_inverse), "--out",
                 str(out), "--steps", "120", "--batch", "8", "--learning-rate", "3e-3", "--holdout", "0",
                 "--checkpoint-every", "60", "--runs", str(tmp_path / "runs"), "--device", "cpu"]) == 0
    assert f"Wrote {out}: 120 steps." in capsys.readouterr().out
    branch = load_module(out, PartBranch)
    inverse = load_module(tiny_inverse, InverseGraphicsNet).eval()
    data = read_part_data(MultiViewDataset(world_views), inverse, progress=False)
    with torch.no_grad():
        learnt = novel_view_scores(data, inverse, lambda indices: branch(data.codes[indices], data.textures[indices]))
        body = torch.zeros(len(PART_NAMES), 8, 16)
        body[0] = 1
        constant = novel_view_scores(data, inverse, lambda indices: body.expand(len(indices), -1, -1, -1))
        per_face = novel_view_scores(data, inverse, lambda indices: branch(data.codes[indices], data.textures[indices]),
                                     per_face=True)
    assert learnt["views"] == 3 * 3
    assert learnt["miou_parts"] > constant["miou_parts"] + 0.05
    assert per_face["miou_parts"] > constant["miou_parts"]
    samples = sorted((tmp_path / "runs" / "part_branch").glob("*/samples/*.png"))
    assert [path.name for path in samples] == ["step0000060.png", "step0000120.png"]


def test_train_parts_without_data_or_on_unlabelled_data_is_one_sentence_and_exit_2(world_views, tmp_path, capsys):
    out = tmp_path / "branch.safetensors"
    assert main(["inverse", "train-parts", "--out", str(out)]) == 2
    assert "Give --data" in capsys.readouterr().err
    assert main(["inverse", "train-parts", "--data", str(tmp_path / "missing"), "--out", str(out),
                 "--runs", str(tmp_path / "runs")]) == 2
    assert not out.exists() and not (tmp_path / "runs" / "part_branch").exists()


@pytest.fixture(scope="module")
def tiny_branch(world_views, tiny_inverse, tmp_path_factory):
    folder = tmp_path_factory.mktemp("branch")
    assert main(["inverse", "train-parts", "--data", str(world_views), "--inverse", str(tiny_inverse), "--out",
                 str(folder / "branch.safetensors"), "--steps", "2", "--batch", "2", "--runs", str(folder / "runs"),
                 "--device", "cpu"]) == 0
    return folder / "branch.safetensors"


def test_reconstruct_labels_every_face_with_the_branch_trained_on_its_model(world_views, tiny_inverse, tiny_branch,
                                                                            tmp_path):
    photo = world_views / "images" / "000001_02.png"
    mask = world_views / "masks" / "000001_02.png"
    plain = api.reconstruct(photo, mask=mask, model=str(tiny_inverse), device="cpu")
    assert plain.part_mesh is None  # a model given as a file has no branch unless one is given
    labelled = api.reconstruct(photo, mask=mask, model=str(tiny_inverse), part_branch=str(tiny_branch), device="cpu")
    assert torch.equal(labelled.mesh.verts, plain.mesh.verts) and labelled.mesh.part_labels is None
    part_mesh, faces = labelled.part_mesh, labelled.mesh.faces
    assert part_mesh.faces.shape == (16 * len(faces), 3) and part_mesh.part_labels.shape == (16 * len(faces),)
    assert torch.equal(part_mesh.verts[:len(labelled.mesh.verts)], labelled.mesh.verts)
    assert part_mesh.part_labels.dtype == torch.int64
    assert 0 <= part_mesh.part_labels.min() and part_mesh.part_labels.max() < len(PART_NAMES)
    off = api.reconstruct(photo, mask=mask, model=str(tiny_inverse), part_branch="none", device="cpu")
    assert off.part_mesh is None


def test_a_branch_trained_on_another_model_is_one_sentence_naming_both_settings(world_views, tiny_branch):
    with pytest.raises(InputError, match="part_branch.*another inverse-graphics model than the.*model"):
        api.reconstruct(world_views / "images" / "000001_02.png", mask=world_views / "masks" / "000001_02.png",
                        model="oracle", part_branch=str(tiny_branch), device="cpu")


def test_the_shipped_model_labels_the_example_car_with_its_own_branch():
    result = api.reconstruct(Path(__file__).resolve().parents[2] / "docs" / "example_car.png", device="cpu")
    labels = result.part_mesh.part_labels
    counts = torch.bincount(labels, minlength=len(PART_NAMES))
    # Most faces are paint; the glass, the four wheels and the lights are there too.
    assert counts[PART_NAMES.index("body")] > counts.sum() / 2
    for part in ("window", "wheel", "headlight", "taillight"):
        assert counts[PART_NAMES.index(part)] > 0, part


def test_reconstruct_writes_a_part_aware_car_unless_the_part_branch_is_none(tmp_path, capsys):
    import trimesh

    photo = str(Path(__file__).resolve().parents[2] / "docs" / "example_car.png")
    assert main(["reconstruct", photo, "-o", str(tmp_path / "car.glb"), "--device", "cpu"]) == 0
    nodes = set(trimesh.load(tmp_path / "car.glb").graph.nodes)
    assert {"body", "wheel_front_left", "wheel_front_right", "wheel_rear_left", "wheel_rear_right"} <= nodes
    # The tyres and rims in the colours the photo shows (its gold rims), not the default rubber and silver.
    reconstruction = api.reconstruct(photo, device="cpu")
    part_mesh = reconstruction.part_mesh
    colours = reconstruction.wheel_colours(replace_wheels(part_mesh.verts, part_mesh.faces, part_mesh.part_labels)[2])
    glb = (tmp_path / "car.glb").read_bytes()
    json_length = int.from_bytes(glb[12:16], "little")
    materials = {material["name"]: material["pbrMetallicRoughness"]
                 for material in json.loads(glb[20:20 + json_length])["materials"]}
    for material in ("tyre", "rim"):
        np.testing.assert_allclose(materials[material]["baseColorFactor"], [*colours[material], 1.0], rtol=1e-6)
    assert main(["reconstruct", photo, "-o", str(tmp_path / "plain.glb"), "--part-branch", "none",
                 "--device", "cpu"]) == 0
    assert not any(node.startswith("wheel") for node in trimesh.load(tmp_path / "plain.glb").graph.nodes)
    assert main(["reconstruct", photo, "-o", str(tmp_path / "x.glb"), "--part-branch", str(tmp_path / "no")]) == 2
    assert "--part-branch" in capsys.readouterr().err and not (tmp_path / "x.glb").exists()
