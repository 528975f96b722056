"""View candidates, their sheet and annotation template, pose guesses, and annotation parsing with its errors."""

import re

import numpy as np
import pytest
import torch
from PIL import Image

from ganverse3d.bundle import save_module
from ganverse3d.cli import main
from ganverse3d.dataset.views import (
    DEFAULT_DISTANCE, DEFAULT_FOV, SHEET_BAND, SHEET_TILE_WIDTH, PoseGuess, annotation_template, check_candidates_fit,
    consistency_summary, generator_fingerprint, preselect_views, guess_poses, load_candidates, parse_annotation, read_annotation,
    render_view_content, sample_codes)
from ganverse3d.errors import InputError
from ganverse3d.world.features import WorldFeatureNet

from dataset_helpers import NUM_CANDIDATES, tiny_generator


def uncomment(template: str, view_ids) -> str:
    """What the user does: uncomment the lines of the chosen views."""
    chosen = {f"# {view_id} = " for view_id in view_ids}
    return "\n".join(line[2:] if any(line.startswith(prefix) for prefix in chosen) else line
                     for line in template.splitlines())


def test_template_with_guesses_round_trips_to_the_guessed_bins():
    guesses = [PoseGuess(azimuth=30.0 * view_id + 8, elevation=5.0, agreement=0.9, cars=4) for view_id in range(NUM_CANDIDATES)]
    template = annotation_template("G.safetensors", "candidates.safetensors", NUM_CANDIDATES, 2, guesses)
    # Untouched, the template chooses nothing.
    with pytest.raises(InputError, match="chooses no view"):
        parse_annotation(template, "views.toml", NUM_CANDIDATES)
    annotation = parse_annotation(uncomment(template, [1, 4]), "views.toml", NUM_CANDIDATES)
    assert [view.view_id for view in annotation.views] == [1, 4]
    assert [view.bin for view in annotation.views] == [1, 4]
    assert [view.azimuth for view in annotation.views] == [30.0, 120.0]
    first = annotation.views[0]
    assert (first.elevation, first.distance, first.fov_y) == (0.0, DEFAULT_DISTANCE, DEFAULT_FOV)
    assert annotation.candidates.name == "candidates.safetensors"


def test_preselection_keeps_the_most_consistent_views_of_each_bin():
    agreements = [0.95, 0.99, 0.91, 0.99, 0.5, 0.97]
    azimuths = [0.0, 10.0, 355.0, 5.0, 90.0, 91.0]   # bin 0 four times (one inconsistent), bin 3 twice
    guesses = [PoseGuess(azimuth=a, elevation=0.0, agreement=r, cars=4) for a, r in zip(azimuths, agreements)]
    assert preselect_views(guesses, per_bin=2) == {1, 3, 5}       # 1 and 3 tie at 0.99 in bin 0; 4 is at 0.5
    assert preselect_views(guesses, per_bin=1) == {1, 5}          # a tie goes to the lower id
    assert preselect_views(guesses, per_bin=9) == {0, 1, 2, 3, 5}
    assert preselect_views(guesses, per_bin=9, min_agreement=0.5) == {0, 1, 2, 3, 4, 5}
    assert preselect_views(guesses, per_bin=1, min_agreement=0.98) == {1}  # bin 3's best is 0.97
    template = annotation_template("G.safetensors", "candidates.safetensors", len(guesses), 2, guesses, {1, 5}, 0.6)
    annotation = parse_annotation(template, "views.toml", len(guesses))
    assert [(view.view_id, view.bin) for view in annotation.views] == [(1, 0), (5, 3)]
    assert "The 2 uncommented views were preselected" in template and "agreement >= 0.60" in template


def test_template_without_guesses_must_be_filled_in():
    template = annotation_template("G.safetensors", "candidates.safetensors", NUM_CANDIDATES, 2, None)
    with pytest.raises(InputError, match="not valid TOML"):
        parse_annotation(uncomment(template, [2]), "views.toml", NUM_CANDIDATES)
    filled = uncomment(template, [2]).replace("2 = { bin = ? }", "2 = { bin = 6 }")
    assert parse_annotation(filled, "views.toml", NUM_CANDIDATES).views[0].azimuth == 180.0


def test_defaults_and_per_view_overrides():
    text = ("[defaults]\nelevation = 10\ndistance = 2.5\nfov = 40\n[views]\n"
            "3 = { bin = 11 }\n1 = { bin = 0, elevation = 20.5, distance = 3, fov = 25 }\n")
    first, second = parse_annotation(text, "v.toml", NUM_CANDIDATES).views  # sorted by id
    assert (first.view_id, first.azimuth, first.elevation, first.distance, first.fov_y) == (1, 0.0, 20.5, 3.0, 25.0)
    assert (second.view_id, second.azimuth, second.elevation, second.distance, second.fov_y) == (3, 330.0, 10.0, 2.5, 40.0)


@pytest.mark.parametrize("text, message", [
    ("[views]\n6 = { bin = 1 }\n", "annotates view 6, but the candidates are numbered 0 to 5"),
    ("[views]\n1 = { bin = 12 }\n", "bin 12; bins are whole numbers from 0 to 11"),
    ("[views]\n1 = { bin = -1 }\n", "bin -1"),
    ("[views]\n1 = { bin = 1.5 }\n", "bin 1.5"),
    ("[views]\n1 = { bin = true }\n", "bin True"),
    ("[views]\n1 = { bin = \"3\" }\n", "bin '3'"),
    ("[views]\n1 = { elevation = 5 }\n", "bin None"),
    ("[views]\n1 = { bin = 2, bni = 3 }\n", "unknown key 'bni'"),
    ("[views]\nfront = { bin = 0 }\n", "view id 'front' is not a whole number"),
    ("[views]\n1 = 3\n", "view 1 must be a table"),
    ("[views]\n1 = { bin = 2, distance = 0 }\n", "distance must lie in"),
    ("[views]\n1 = { bin = 2, fov = 180 }\n", "fov must lie in"),
    ("[views]\n1 = { bin = 2, elevation = \"up\" }\n", "elevation must be a number"),
    ("[views\n1 = { bin = 2 }\n", "is not valid TOML"),
    ("[views]\n1 = { bin = 2 }\n1 = { bin = 3 }\n", "is not valid TOML"),
    ("[view]\n1 = { bin = 2 }\n", "unknown entry 'view'"),
    ("[defaults]\nazimuth = 3\n[views]\n1 = { bin = 2 }\n", r"\[defaults\] may only set"),
    ("candidates = 3\n[views]\n1 = { bin = 2 }\n", "candidates must be a file name"),
    ("", "chooses no view"),
])
def test_bad_annotations_are_one_clear_sentence(text, message):
    with pytest.raises(InputError, match=message) as error:
        parse_annotation(text, "views.toml", NUM_CANDIDATES)
    assert str(error.value).startswith("views.toml") and str(error.value).count(". ") == 0


def test_missing_annotation_file(tmp_path):
    with pytest.raises(InputError, match="does not exist"):
        read_annotation(tmp_path / "nope.toml", NUM_CANDIDATES)


class ScriptedPoseNet(torch.nn.Module):
    """Reads image (row r, column c) as azimuth 30 c + (10 r - 5) and elevation r: the rows of a column
    disagree by 10 degrees, so their circular mean is 30 c and their agreement cos(5 degrees)."""

    def __init__(self, rows: int, columns: int):
        super().__init__()
        self.anchor = torch.nn.Parameter(torch.zeros(1))
        self.rows, self.columns = rows, columns

    def forward(self, images):
        assert images.shape[0] == self.rows * self.columns and images.shape[-2] == images.shape[-1]  # padded square
        index = torch.arange(images.shape[0])
        row, column = index // self.columns, index % self.columns
        azimuth = 30.0 * column + 10.0 * row - 5.0
        return None, azimuth[:, None].float(), row.float()

    def azimuth_deg(self, logits):
        return logits[:, 0] % 360


def test_pose_guesses_average_each_column_over_its_rows():
    rows, columns = 2, 5
    tiles = [[torch.rand(3, 12, 16) for _ in range(columns)] for _ in range(rows)]
    guesses = guess_poses(ScriptedPoseNet(rows, columns), tiles)
    assert [guess.bin for guess in guesses] == list(range(columns))
    for column, guess in enumerate(guesses):
        assert abs((guess.azimuth - 30.0 * column + 180) % 360 - 180) < 1e-4
        assert guess.elevation == pytest.approx(0.5)
        assert guess.agreement == pytest.approx(np.cos(np.radians(5)), abs=1e-5) and guess.cars == rows


def test_consistency_summary_counts_agreeing_views_and_their_bins():
    guesses = [PoseGuess(azimuth=0.0, elevation=0.0, agreement=0.95, cars=4),     # bin 0
               PoseGuess(azimuth=350.0, elevation=0.0, agreement=0.90, cars=4),   # bin 0 again, at the threshold
               PoseGuess(azimuth=100.0, elevation=0.0, agreement=0.89, cars=4),   # not consistent
               PoseGuess(azimuth=275.0, elevation=0.0, agreement=0.99, cars=4)]   # bin 9
    assert consistency_summary(guesses) == ("3 of 4 candidate views look alike in all 4 cars to the pose net "
                                            "(agreement >= 0.90), covering 2 of 12 bins: 0, 9.")
    assert consistency_summary(guesses, min_agreement=0.999).startswith("0 of 4 ")
    assert consistency_summary(guesses, min_agreement=0.999).endswith("covering 0 of 12 bins: none.")


def test_views_command_writes_candidates_sheet_and_template(tmp_path, generator_file, view_layers):
    out = tmp_path / "views"
    assert main(["dataset", "views", "--generator", str(generator_file), "--candidates", "20", "--contents", "3",
                 "--seed", "4", "--out", str(out), "--pose-net", "none", "--device", "cpu"]) == 0
    candidates = load_candidates(out / "candidates.safetensors")
    G = tiny_generator()
    # The candidates are the first codes of the seed's stream, with their settings recorded.
    expected = sample_codes(G, 20, torch.Generator().manual_seed(4), truncation=0.7)
    assert torch.allclose(candidates.ws, expected)
    assert (candidates.view_layers, candidates.truncation, candidates.seed) == (view_layers, 0.7, 4)
    check_candidates_fit(candidates, G, "c")
    with pytest.raises(InputError, match="another generator"):
        check_candidates_fit(candidates, tiny_generator(seed=1), "c")

    # Bands of SHEET_BAND columns, one label strip and three rows of tiles each (12 x 16 content, widened to 64).
    sheet = np.asarray(Image.open(out / "sheet.png"))
    tile_width = SHEET_TILE_WIDTH[0]
    tile_height = 12 * tile_width // 16
    assert sheet.shape == (2 * (14 + 3 * (tile_height + 2)), SHEET_BAND * (tile_width + 2) - 2, 3)
    # The tile of band 1, column 1, row 2 is content 2 (drawn after the candidates) in candidate view 17.
    stream = torch.Generator().manual_seed(4)
    sample_codes(G, 20, stream, truncation=0.7)
    ws_content = sample_codes(G, 3, stream, truncation=0.7)[2:3]
    tile = render_view_content(G, candidates.ws[17:18], ws_content, view_layers)[0]
    upscaled = np.asarray(Image.fromarray((tile.permute(1, 2, 0).numpy() * 255 + 0.5).astype(np.uint8)).resize(
        (tile_width, tile_height), Image.Resampling.NEAREST)).astype(int)
    top, left = (14 + 3 * (tile_height + 2)) + 14 + 2 * (tile_height + 2), tile_width + 2
    assert np.abs(sheet[top:top + tile_height, left:left + tile_width] - upscaled).max() <= 1
    assert np.abs(sheet[top:top + tile_height, :tile_width] - upscaled).max() > 1  # view 16 differs

    template = (out / "views.toml").read_text()
    assert re.findall(r"^# (\d+) = \{ bin = \? \}$", template, flags=re.M) == [str(i) for i in range(20)]
    annotation = parse_annotation(uncomment(template, [7]).replace("bin = ?", "bin = 2"), out / "views.toml", 20)
    assert annotation.candidates == out / "candidates.safetensors" and annotation.views[0].bin == 2

    # Same seed, same files; an annotated views.toml is never overwritten.
    again = tmp_path / "again"
    assert main(["dataset", "views", "--generator", str(generator_file), "--candidates", "20", "--contents", "3",
                 "--seed", "4", "--out", str(again), "--pose-net", "none", "--device", "cpu"]) == 0
    for name in ("candidates.safetensors", "sheet.png", "views.toml"):
        assert (out / name).read_bytes() == (again / name).read_bytes()
    assert main(["dataset", "views", "--generator", str(generator_file), "--out", str(out), "--pose-net", "none"]) == 2
    assert (out / "views.toml").read_text() == template


def test_views_command_suggests_bins_with_a_pose_net(tmp_path, generator_file, capsys):
    torch.manual_seed(0)
    pose_net = tmp_path / "pose.safetensors"
    save_module(pose_net, WorldFeatureNet(["a", "b"], resolution=16, width=4, feature_dim=8))
    out = tmp_path / "views"
    assert main(["dataset", "views", "--generator", str(generator_file), "--candidates", "3", "--out", str(out),
                 "--pose-net", str(pose_net), "--pose-contents", "7", "--device", "cpu"]) == 0
    lines = re.findall(r"^# (\d+) = \{ bin = (\d+) \}    # pose net: azimuth (\d+), elevation (-?\d+), 7 cars agree "
                       r"([\d.]+)$", (out / "views.toml").read_text(), flags=re.M)
    assert [int(line[0]) for line in lines] == [0, 1, 2]
    # Each suggested bin is the one nearest the printed azimuth (which is rounded to a degree).
    assert all(abs((30 * int(line[1]) - int(line[2]) + 180) % 360 - 180) <= 15.5 for line in lines)
    agreements = {int(line[0]): float(line[4]) for line in lines}  # rounded to 0.01
    summary = re.search(r"^(\d+) of 3 candidate views look alike in all 7 cars", capsys.readouterr().out, flags=re.M)
    # Preselecting up to 3 per bin uncomments exactly the consistent views that the summary counts.
    preselected = tmp_path / "preselected"
    assert main(["dataset", "views", "--generator", str(generator_file), "--candidates", "3", "--out",
                 str(preselected), "--pose-net", str(pose_net), "--pose-contents", "7", "--device", "cpu",
                 "--preselect-per-bin", "3"]) == 0
    chosen = [int(view_id) for view_id in re.findall(r"^(\d+) = \{ bin", (preselected / "views.toml").read_text(),
                                                     flags=re.M)]
    assert len(chosen) == int(summary.group(1))
    assert all(agreements[view_id] >= 0.9 for view_id in chosen)
    assert all(view_id in chosen for view_id, agreement in agreements.items() if agreement >= 0.91)
    # With no least agreement, each bin gives up to 3 views whatever they show: all 3 candidates.
    anything = tmp_path / "anything"
    assert main(["dataset", "views", "--generator", str(generator_file), "--candidates", "3", "--out", str(anything),
                 "--pose-net", str(pose_net), "--pose-contents", "7", "--device", "cpu", "--preselect-per-bin", "3",
                 "--min-agreement", "0"]) == 0
    assert re.findall(r"^(\d+) = \{ bin", (anything / "views.toml").read_text(), flags=re.M) == ["0", "1", "2"]
    # The cars the pose net reads beyond the sheet's rows change its guesses, never the candidates or the sheet.
    fewer = tmp_path / "fewer"
    assert main(["dataset", "views", "--generator", str(generator_file), "--candidates", "3", "--out", str(fewer),
                 "--pose-net", str(pose_net), "--pose-contents", "2", "--device", "cpu"]) == 0
    for name in ("candidates.safetensors", "sheet.png"):
        assert (fewer / name).read_bytes() == (out / name).read_bytes()
    assert "4 cars agree" in (fewer / "views.toml").read_text()  # never fewer cars than the sheet's rows


def test_views_command_refuses_bad_input(tmp_path, generator_file):
    a_file = tmp_path / "file"
    a_file.write_text("x")
    assert main(["dataset", "views", "--generator", str(generator_file), "--out", str(a_file)]) == 2
    assert main(["dataset", "views", "--generator", str(tmp_path / "none.safetensors"), "--out",
                 str(tmp_path / "o")]) == 2
    assert main(["dataset", "views", "--generator", str(generator_file), "--out", str(tmp_path / "o"),
                 "--pose-net", str(tmp_path / "missing.safetensors")]) == 2
    assert main(["dataset", "views", "--generator", str(generator_file), "--out", str(tmp_path / "o"),
                 "--view-layers", "6"]) == 2
    assert main(["dataset", "views", "--generator", str(generator_file), "--out", str(tmp_path / "o"),
                 "--pose-net", "none", "--preselect-per-bin", "2"]) == 2
    assert main(["dataset", "views", "--generator", str(generator_file), "--out", str(tmp_path / "o"),
                 "--preselect-per-bin", "2", "--min-agreement", "1.5"]) == 2
    assert not (tmp_path / "o").exists()


def test_candidates_file_errors(tmp_path):
    with pytest.raises(InputError, match="does not exist"):
        load_candidates(tmp_path / "none.safetensors")
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"not a safetensors file at all")
    with pytest.raises(InputError, match="not a readable view candidates file"):
        load_candidates(junk)
    other = tmp_path / "bundle.safetensors"
    save_module(other, tiny_generator())
    with pytest.raises(InputError, match="not a view candidates file"):
        load_candidates(other)


def test_fingerprint_ignores_the_file_format_but_not_the_weights():
    G = tiny_generator()
    same = tiny_generator()
    assert generator_fingerprint(G) == generator_fingerprint(same)
    with torch.no_grad():
        same.synthesis.b4.conv1.weight[0, 0, 0, 0] += 1e-3
    assert generator_fingerprint(G) != generator_fingerprint(same)
