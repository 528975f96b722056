"""`ganverse3d world render`: the dataset layout, same seed same bytes, resuming, and bad input."""

import json

import numpy as np
import pytest
from PIL import Image

from ganverse3d.cli import main
from ganverse3d.export import load_mesh
from ganverse3d.world import BODY_TYPES, PART_LABELS, sample_item
from ganverse3d.world.dataset import SHEET_COLUMNS

RESOLUTION = 32


def world_render(out, count=3, resolution=RESOLUTION, seed=0) -> int:
    return main(["world", "render", "--n", str(count), "--resolution", str(resolution), "--seed", str(seed),
                 "--out", str(out)])


def files_under(folder) -> dict[str, bytes]:
    return {str(path.relative_to(folder)): path.read_bytes() for path in sorted(folder.rglob("*")) if path.is_file()}


def test_writes_the_exact_layout_meta_and_manifest(tmp_path):
    out = tmp_path / "data"
    assert world_render(out, count=3, seed=4) == 0
    names = [f"{index:06d}" for index in range(3)]
    expected = {"manifest.json", "meta.jsonl", "sheet.png"}
    for folder, suffix in (("images", "png"), ("masks", "png"), ("parts", "png"), ("meshes", "glb")):
        expected |= {f"{folder}/{name}.{suffix}" for name in names}
    assert set(files_under(out)) == expected

    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["generator"] == "world" and manifest["complete"] is True
    assert manifest["counts"]["items"] == 3 and manifest["resolution"] == RESOLUTION and manifest["seed"] == 4
    assert manifest["part_labels"] == list(PART_LABELS) and manifest["format_version"] >= 1

    lines = [json.loads(line) for line in (out / "meta.jsonl").read_text().splitlines()]
    assert [line["id"] for line in lines] == [0, 1, 2]
    for index, line in enumerate(lines):
        car_spec, scene = sample_item(4, index)
        assert line["body_type"] == car_spec.body_type in BODY_TYPES
        assert line["camera"] == {"azimuth": scene.azimuth, "elevation": scene.elevation,
                                  "distance": scene.distance, "fov_y": scene.fov_y}
        assert line["params"]["length"] == car_spec.params["length"] and line["params"]["scale"] > 0
        assert line["image"] == f"images/{index:06d}.png"

    for name in names:
        image = np.asarray(Image.open(out / "images" / f"{name}.png"))
        mask = np.asarray(Image.open(out / "masks" / f"{name}.png"))
        parts = np.asarray(Image.open(out / "parts" / f"{name}.png"))
        assert image.shape == (RESOLUTION, RESOLUTION, 3) and image.dtype == np.uint8
        assert mask.shape == parts.shape == (RESOLUTION, RESOLUTION)
        assert set(np.unique(mask)) <= {0, 255} and parts.max() <= len(PART_LABELS)
        np.testing.assert_array_equal(parts > 0, mask == 255)
        mesh = load_mesh(out / "meshes" / f"{name}.glb")
        assert mesh.part_labels is not None and set(mesh.part_labels.tolist()) == set(range(len(PART_LABELS)))
        assert mesh.verts.norm(dim=1).max() <= 1.0
    sheet = Image.open(out / "sheet.png")
    assert sheet.width == SHEET_COLUMNS * (RESOLUTION + 2) - 2 and sheet.height == RESOLUTION


def test_same_seed_same_bytes_other_seed_other_images(tmp_path):
    assert world_render(tmp_path / "a", seed=9) == 0
    assert world_render(tmp_path / "b", seed=9) == 0
    assert world_render(tmp_path / "c", seed=10) == 0
    first = files_under(tmp_path / "a")
    assert first == files_under(tmp_path / "b")
    assert first["images/000000.png"] != files_under(tmp_path / "c")["images/000000.png"]


def test_rerun_skips_finished_items_and_resume_gives_the_same_files(tmp_path):
    fresh = tmp_path / "fresh"
    assert world_render(fresh, count=5) == 0

    resumed = tmp_path / "resumed"
    assert world_render(resumed, count=2) == 0   # an earlier, shorter run ...
    (resumed / "images" / "000001.png").unlink()  # ... that lost a file
    stamps = {path: path.stat().st_mtime_ns for path in (resumed / "meshes").iterdir()}
    assert world_render(resumed, count=5) == 0
    assert files_under(resumed) == files_under(fresh)
    # Item 0 was complete and was not rendered again; item 1 was.
    assert (resumed / "meshes" / "000000.glb").stat().st_mtime_ns == stamps[resumed / "meshes" / "000000.glb"]
    assert (resumed / "meshes" / "000001.glb").stat().st_mtime_ns != stamps[resumed / "meshes" / "000001.glb"]

    # A run interrupted after some batches: the finished items wait in .meta/ and are kept.
    interrupted = tmp_path / "interrupted"
    assert world_render(interrupted, count=3) == 0
    pending = interrupted / ".meta"
    pending.mkdir()
    (pending / "000000.jsonl").write_text((interrupted / "meta.jsonl").read_text())
    (interrupted / "meta.jsonl").unlink()
    (interrupted / "sheet.png").unlink()
    stamp = (interrupted / "images" / "000002.png").stat().st_mtime_ns
    assert world_render(interrupted, count=5) == 0
    assert (interrupted / "images" / "000002.png").stat().st_mtime_ns == stamp
    assert files_under(interrupted) == files_under(fresh)


@pytest.mark.parametrize("arguments, message", [
    (["--n", "0"], "--n"),
    (["--n", "-3"], "--n"),
    (["--resolution", "8"], "--resolution"),
    (["--resolution", "4096"], "--resolution"),
    (["--seed", "-1"], "--seed"),
    (["--n", "many"], "many"),
])
def test_bad_arguments_exit_2_with_one_sentence_and_create_nothing(tmp_path, capsys, arguments, message):
    out = tmp_path / "new" / "data"
    options = {"--n": "2", "--resolution": str(RESOLUTION), "--seed": "0", "--out": str(out)}
    options.update(dict(zip(arguments[::2], arguments[1::2])))
    code = main(["world", "render", *[item for pair in options.items() for item in pair]])
    error = capsys.readouterr().err.strip()
    assert code == 2
    error_lines = [line for line in error.splitlines() if line.startswith("Error:")]
    assert len(error_lines) == 1 and message in error_lines[0] and "Traceback" not in error
    assert not (tmp_path / "new").exists()


def test_unusable_output_folders_exit_2_and_are_left_untouched(tmp_path, capsys):
    a_file = tmp_path / "file.png"
    a_file.write_bytes(b"not a folder")
    assert world_render(a_file) == 2
    assert world_render(a_file / "inside") == 2
    assert a_file.read_bytes() == b"not a folder"

    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    assert world_render(foreign) == 2
    assert [path.name for path in foreign.iterdir()] == ["notes.txt"]

    existing = tmp_path / "existing"
    assert world_render(existing, count=2, seed=1) == 0
    before = files_under(existing)
    assert world_render(existing, count=2, seed=2) == 2          # another seed
    assert world_render(existing, count=2, resolution=48, seed=1) == 2
    assert world_render(existing, count=1, seed=1) == 2          # fewer items than it holds
    assert files_under(existing) == before
    errors = capsys.readouterr().err
    assert "Traceback" not in errors and errors.count("Error:") == 6

    # A dataset of the five labels before the lights were split (light = 4, plate = 5) is not extended.
    manifest = json.loads((existing / "manifest.json").read_text())
    manifest["part_labels"] = ["body", "window", "wheel", "light", "plate"]
    (existing / "manifest.json").write_text(json.dumps(manifest))
    before = files_under(existing)
    assert world_render(existing, count=3, seed=1) == 2
    assert files_under(existing) == before
    assert "part labels of an older version" in capsys.readouterr().err


def test_help_shows_a_worked_example(capsys):
    assert main(["world", "render", "--help"]) == 0
    text = capsys.readouterr().out
    assert "Example" in text and "ganverse3d world render --n" in text
