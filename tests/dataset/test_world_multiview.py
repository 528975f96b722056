"""`dataset world`: the oracle multi-view dataset - exact cameras that reproduce the masks from the meshes,
the multi-view format, same seed same bytes, resuming and extending, bad input."""

import json

import numpy as np
import pytest
import torch
from PIL import Image

from ganverse3d.cli import main
from ganverse3d.dataset import MultiViewDataset, read_manifest
from ganverse3d.dataset.world_multiview import AZIMUTH_JITTER, write_world_multiview
from ganverse3d.export import load_mesh
from ganverse3d.geometry import Camera
from ganverse3d.render import render_mesh
from ganverse3d.world import build_car, sample_item

RESOLUTION = 48


def files_under(folder) -> dict[str, bytes]:
    return {str(path.relative_to(folder)): path.read_bytes() for path in sorted(folder.rglob("*")) if path.is_file()}


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    out = tmp_path_factory.mktemp("world") / "mv"
    assert main(["dataset", "world", "--cars", "3", "--views", "4", "--resolution", str(RESOLUTION), "--seed", "2",
                 "--out", str(out)]) == 0
    return out


def test_layout_manifest_and_meta(dataset):
    manifest = read_manifest(dataset)
    assert manifest["counts"] == {"contents": 3, "candidates": 12, "kept": 12,
                                  "filtered": {"instances": 0, "mask_area": 0}}
    assert manifest["source"]["kind"] == "world" and manifest["source"]["views_per_car"] == 4
    assert manifest["filters"] == {} and manifest["resolution"] == [RESOLUTION, RESOLUTION] and manifest["complete"]
    assert [(view["view_id"], view["azimuth"], view["bin"]) for view in manifest["views"]] == [
        (0, 0.0, 0), (1, 90.0, 3), (2, 180.0, 6), (3, 270.0, 9)]
    meta = [json.loads(line) for line in (dataset / "meta.jsonl").read_text().splitlines()]
    assert [(line["content_id"], line["view_id"]) for line in meta] == [(c, v) for c in range(3) for v in range(4)]
    for line in meta:
        camera = line["camera"]
        nominal = 90.0 * line["view_id"]
        # Each exact camera lies within a quarter of the 90-degree spacing of its nominal view.
        assert abs((camera["azimuth"] - nominal + 180) % 360 - 180) <= AZIMUTH_JITTER * 90 + 1e-9
        assert 0 <= camera["elevation"] <= 30 and 3.8 * 0.95 <= camera["distance"] <= 3.8 * 1.05
        assert line["mesh"] == f"meshes/{line['content_id']:06d}.glb" and "latent" not in line
        mask = np.asarray(Image.open(dataset / line["mask"])) > 127
        assert line["mask_area"] == pytest.approx(mask.mean())
    # The exact cameras of one car differ from view to view and from the other cars' cameras of that view.
    azimuths = np.array([line["camera"]["azimuth"] for line in meta]).reshape(3, 4)
    assert len(np.unique(azimuths)) == 12
    expected = {"manifest.json", "meta.jsonl", "filtered.jsonl", "sheet.png"}
    expected |= {f"{folder}/{c:06d}_{v:02d}.png" for folder in ("images", "masks") for c in range(3) for v in range(4)}
    expected |= {f"meshes/{c:06d}.glb" for c in range(3)}
    assert {name for name in files_under(dataset) if not name.startswith(".chunks/")} == expected


def test_the_mesh_seen_from_each_camera_reproduces_the_mask(dataset):
    meta = [json.loads(line) for line in (dataset / "meta.jsonl").read_text().splitlines()]
    for line in meta:
        mesh = load_mesh(dataset / line["mesh"])
        camera = line["camera"]
        rendered = render_mesh(mesh.verts[None], mesh.faces, mesh.face_uvs, mesh.texture[None],
                               Camera.create(camera["azimuth"], camera["elevation"], camera["distance"],
                                             camera["fov_y"], dtype=torch.float32), RESOLUTION, soft=False)
        predicted = rendered.mask[0, 0].numpy() > 0.5
        truth = np.asarray(Image.open(dataset / line["mask"])) > 127
        iou = (predicted & truth).sum() / (predicted | truth).sum()
        assert iou > 0.995, (line["image"], iou)
        # A wrong camera (the next view's) does not reproduce it: the test can fail.
        wrong = meta[(meta.index(line) // 4) * 4 + (line["view_id"] + 1) % 4]["camera"]
        moved = render_mesh(mesh.verts[None], mesh.faces, mesh.face_uvs, mesh.texture[None],
                            Camera.create(wrong["azimuth"], wrong["elevation"], wrong["distance"], wrong["fov_y"],
                                          dtype=torch.float32), RESOLUTION, soft=False).mask[0, 0].numpy() > 0.5
        assert (moved & truth).sum() / (moved | truth).sum() < 0.95


def test_car_c_is_world_item_c_of_the_same_seed(dataset):
    for car_index in range(3):
        car = build_car(sample_item(2, car_index)[0])
        mesh = load_mesh(dataset / "meshes" / f"{car_index:06d}.glb")
        # Loading welds the car's coincident vertices, so compare the sets of positions.
        assert torch.equal(torch.unique(mesh.verts, dim=0), torch.unique(car.verts, dim=0))
        other = build_car(sample_item(2, car_index + 1)[0])
        assert not torch.equal(torch.unique(mesh.verts, dim=0), torch.unique(other.verts, dim=0))


def test_the_reader_groups_views_by_car(dataset):
    data = MultiViewDataset(dataset)
    assert data.content_ids == [0, 1, 2] and len(data) == 12
    item = data[5]
    assert item["content_id"] == 1 and item["view_id"] == 1 and item["image"].shape == (3, RESOLUTION, RESOLUTION)
    line = json.loads((dataset / "meta.jsonl").read_text().splitlines()[5])
    assert torch.allclose(item["camera"], torch.tensor([line["camera"][key] for key in
                                                        ("azimuth", "elevation", "distance", "fov_y")]))


def test_same_seed_same_bytes_resume_and_extend(tmp_path, dataset, monkeypatch):
    import ganverse3d.dataset.world_multiview as world_multiview

    again = tmp_path / "again"
    write_world_multiview(again, cars=3, views=4, resolution=RESOLUTION, seed=2, progress=False)
    expected = files_under(dataset)
    assert files_under(again) == expected

    # One car per chunk at this size (48 images per renderer batch / 4 views would be 12 cars): force small
    # chunks by killing the renderer on its second call.
    killed = tmp_path / "killed"
    calls = {"count": 0}
    original = world_multiview.render_world

    def flaky_render(*args, **kwargs):
        calls["count"] += 1
        if calls["count"] == 2:
            raise KeyboardInterrupt
        return original(*args, **kwargs)

    monkeypatch.setattr(world_multiview, "batch_size_for", lambda resolution: 4)
    monkeypatch.setattr(world_multiview, "render_world", flaky_render)
    with pytest.raises(KeyboardInterrupt):
        write_world_multiview(killed, cars=3, views=4, resolution=RESOLUTION, seed=2, progress=False)
    assert not (killed / "meta.jsonl").exists() and (killed / ".chunks" / "000000.json").is_file()
    write_world_multiview(killed, cars=3, views=4, resolution=RESOLUTION, seed=2, progress=False)
    assert calls["count"] == 4  # car 0 once, then car 1 (killed), car 1 again and car 2
    killed_files = files_under(killed)
    assert {name: data for name, data in killed_files.items() if name not in ("manifest.json",)
            and not name.startswith(".chunks/")} == {name: data for name, data in expected.items()
                                                     if name != "manifest.json" and not name.startswith(".chunks/")}

    extended = tmp_path / "extended"
    monkeypatch.setattr(world_multiview, "render_world", original)
    write_world_multiview(extended, cars=2, views=4, resolution=RESOLUTION, seed=2, progress=False)
    write_world_multiview(extended, cars=3, views=4, resolution=RESOLUTION, seed=2, progress=False)
    assert files_under(extended) == killed_files


def test_a_held_out_body_type_leaves_its_cars_out_and_keeps_the_others_as_they_were(tmp_path, dataset):
    types = [sample_item(2, car_index)[0].body_type for car_index in range(3)]
    held_out = tmp_path / "held-out"
    write_world_multiview(held_out, cars=3, views=4, resolution=RESOLUTION, seed=2, progress=False,
                          hold_out=(types[1],))
    kept_cars = [index for index, body_type in enumerate(types) if body_type != types[1]]
    data = MultiViewDataset(held_out)
    assert data.content_ids == kept_cars and kept_cars != [0, 1, 2]
    for index in kept_cars:  # a kept car is the car of the full dataset, byte for byte
        stem = f"{index:06d}_00"
        assert (held_out / "images" / f"{stem}.png").read_bytes() == (dataset / "images" / f"{stem}.png").read_bytes()
    manifest = read_manifest(held_out)
    assert manifest["filters"] == {"hold_out": [types[1]]}
    assert manifest["counts"]["filtered"]["body_type"] == 4 * (3 - len(kept_cars))
    assert not (held_out / "meshes" / "000001.glb").exists()


@pytest.mark.parametrize("arguments, message", [
    (["--hold-out", "truck"], "--hold-out takes body types of sedan"),
    (["--cars", "0"], "--cars must be at least 1"),
    (["--views", "0"], "--views from 1 to 100"),
    (["--resolution", "8"], "--resolution must be from 16"),
    (["--seed", "-1"], "--seed 0 or more"),
])
def test_bad_input_writes_nothing(tmp_path, capsys, arguments, message):
    out = tmp_path / "out"
    base = {"--cars": "1", "--views": "2", "--resolution": "16", "--seed": "0"}
    base.update(dict(zip(arguments[::2], arguments[1::2])))
    command = ["dataset", "world", "--out", str(out)] + [item for pair in base.items() for item in pair]
    assert main(command) == 2
    assert message in capsys.readouterr().err and not out.exists()


def test_resuming_with_other_settings_is_refused(dataset, capsys):
    before = files_under(dataset)
    assert main(["dataset", "world", "--cars", "3", "--views", "6", "--resolution", str(RESOLUTION), "--seed", "2",
                 "--out", str(dataset)]) == 2
    assert "other settings (views_per_car)" in capsys.readouterr().err
    assert files_under(dataset) == before
