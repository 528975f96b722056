"""`dataset synth`: the paper's filter, counts, determinism, resuming and extending, shared views, bad input."""

import json

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file

from ganverse3d.cli import main
from ganverse3d.dataset import MultiViewDataset, read_manifest
from ganverse3d.dataset.segment import Instances, Segmenter
from ganverse3d.dataset.synth import content_codes, synthesize
from ganverse3d.dataset.views import load_candidates, render_view_content
from ganverse3d.errors import InputError
from ganverse3d.stylegan2.load import load_generator

from dataset_helpers import tiny_generator, write_annotation

HEIGHT, WIDTH = 12, 16
VIEW_IDS = [0, 2, 5]  # the views_folder fixture's choice, with bins 0, 3, 9


def box(top, bottom, left, right) -> torch.Tensor:
    mask = torch.zeros(HEIGHT, WIDTH, dtype=torch.bool)
    mask[top:bottom, left:right] = True
    return mask


# The scripted answers, cycled over the images in the order they are segmented.
CASES = [
    ("keep", [box(2, 10, 2, 14)]),                      # one car on half the image: kept
    ("instances", []),                                  # no car
    ("mask_area", [box(0, 3, 0, 5)]),                   # one car on 15 / 192 < 10 %: too small
    ("instances", [box(0, 6, 0, 8), box(6, 12, 8, 16)]),  # two cars
    ("keep", [box(0, 4, 0, 5)]),                        # 20 / 192 > 10 %: kept
]


class ScriptedSegmenter(Segmenter):
    """Answers the k-th image it sees with CASES[k % len(CASES)] and remembers the images."""

    def __init__(self, fail_after: int | None = None):
        self.seen: list[np.ndarray] = []
        self.fail_after = fail_after

    def segment(self, images):
        if self.fail_after is not None and len(self.seen) >= self.fail_after:
            raise KeyboardInterrupt  # a kill in the middle of the run
        found = []
        for image in images:
            _, masks = CASES[len(self.seen) % len(CASES)]
            self.seen.append((image.permute(1, 2, 0).numpy() * 255 + 0.5).astype(np.uint8))
            found.append(Instances(torch.stack(masks) if masks else torch.zeros(0, HEIGHT, WIDTH, dtype=torch.bool),
                                   torch.linspace(0.9, 0.6, len(masks))))
        return found

    def description(self):
        return {"kind": "scripted"}


def files_under(folder) -> dict[str, bytes]:
    return {str(path.relative_to(folder)): path.read_bytes() for path in sorted(folder.rglob("*")) if path.is_file()}


def read_png(path) -> np.ndarray:
    return np.asarray(Image.open(path))


def test_the_filter_keeps_exactly_the_single_large_cars(tmp_path, generator_file, views_folder):
    segmenter = ScriptedSegmenter()
    out = tmp_path / "data"
    manifest = synthesize(out, generator_file, views_folder / "views.toml", contents=4, segmenter=segmenter,
                          batch=5, device="cpu", progress=False)
    # Images are segmented content by content, views in id order.
    order = [(content, view) for content in range(4) for view in VIEW_IDS]
    assert len(segmenter.seen) == len(order) == 12
    cases = [CASES[index % len(CASES)] for index in range(len(order))]
    expected_kept = [pair for pair, (case, _) in zip(order, cases) if case == "keep"]

    meta = [json.loads(line) for line in (out / "meta.jsonl").read_text().splitlines()]
    assert [(line["content_id"], line["view_id"]) for line in meta] == expected_kept
    for line, index in zip(meta, [order.index(pair) for pair in expected_kept]):
        _, masks = cases[index]
        assert np.array_equal(read_png(out / line["image"]), segmenter.seen[index])
        assert np.array_equal(read_png(out / line["mask"]), masks[0].numpy().astype(np.uint8) * 255)
        assert line["mask_area"] == pytest.approx(masks[0].float().mean().item())
        assert line["camera"] == {"azimuth": {0: 0.0, 2: 90.0, 5: 270.0}[line["view_id"]], "elevation": 0.0,
                                  "distance": 3.8, "fov_y": 30.0}
        assert line["latent"] == f"latents/{line['content_id']:06d}.safetensors"
    assert sorted(path.name for path in (out / "images").iterdir()) == [
        f"{content:06d}_{view:02d}.png" for content, view in expected_kept]

    filtered = [json.loads(line) for line in (out / "filtered.jsonl").read_text().splitlines()]
    expected_filtered = [(pair, case) for pair, (case, _) in zip(order, cases) if case != "keep"]
    assert [((line["content_id"], line["view_id"]), line["reason"]) for line in filtered] == expected_filtered
    reasons = [case for _, case in expected_filtered]
    assert manifest["counts"] == {"contents": 4, "candidates": 12, "kept": len(expected_kept),
                                  "filtered": {"instances": reasons.count("instances"),
                                               "mask_area": reasons.count("mask_area")}}
    assert read_manifest(out) == manifest and manifest["complete"] is True
    assert manifest["filters"] == {"instances": 1, "min_mask_area": 0.1}
    assert [view["view_id"] for view in manifest["views"]] == VIEW_IDS
    assert manifest["resolution"] == [HEIGHT, WIDTH]

    # The lead's reader accepts it.
    dataset = MultiViewDataset(out)
    assert len(dataset) == len(expected_kept)
    assert dataset[0]["image"].shape == (3, HEIGHT, WIDTH) and dataset[0]["view_id"] == expected_kept[0][1]


def test_a_stricter_area_keeps_fewer(tmp_path, generator_file, views_folder):
    manifest = synthesize(tmp_path / "data", generator_file, views_folder / "views.toml", contents=4,
                          segmenter=ScriptedSegmenter(), min_mask_area=0.2, batch=5, device="cpu", progress=False)
    # The 20-pixel car (10.4 %) of case 4 now fails too: only the half-image cars stay.
    keeps = [index for index in range(12) if index % len(CASES) == 0]
    assert manifest["counts"]["kept"] == len(keeps)
    assert manifest["counts"]["filtered"]["mask_area"] == sum(index % len(CASES) in (2, 4) for index in range(12))


def test_images_of_one_view_share_its_view_code(tmp_path, generator_file, views_folder, view_layers):
    out = tmp_path / "data"
    synthesize(out, generator_file, views_folder / "views.toml", contents=3, segmenter=_keep_all(), batch=4,
               device="cpu", progress=False)
    G = load_generator(generator_file)
    candidates = load_candidates(views_folder / "candidates.safetensors")
    codes = load_file(out / "view_codes.safetensors")
    assert codes["view_ids"].tolist() == VIEW_IDS and torch.equal(codes["ws"], candidates.ws[VIEW_IDS])
    latents = {content: load_file(out / "latents" / f"{content:06d}.safetensors")["ws"] for content in range(3)}
    for content in range(3):
        assert torch.allclose(latents[content], content_codes(G, 0, [content], 0.7)[0])
        for view in VIEW_IDS:
            image = read_png(out / "images" / f"{content:06d}_{view:02d}.png").astype(int)
            again = render_view_content(G, candidates.ws[view:view + 1], latents[content][None], view_layers)[0]
            assert np.abs(image - (again.permute(1, 2, 0).numpy() * 255 + 0.5).astype(int)).max() <= 1
            other_view = VIEW_IDS[(VIEW_IDS.index(view) + 1) % 3]
            other = render_view_content(G, candidates.ws[other_view:other_view + 1], latents[content][None], view_layers)
            assert np.abs(image - (other[0].permute(1, 2, 0).numpy() * 255 + 0.5).astype(int)).max() > 1
    # W* of two contents in one view: the view entries are equal, the content entries differ.
    for view in VIEW_IDS:
        ws_view = candidates.ws[view:view + 1].expand(2, -1, -1)
        ws_content = torch.stack([latents[0], latents[1]])
        mixed = torch.cat([ws_view[:, :view_layers], ws_content[:, view_layers:]], dim=1)
        styles = G.synthesis.styles(mixed)
        assert all(torch.equal(style[0], style[1]) for style in styles[:view_layers])
        assert all(not torch.allclose(style[0], style[1]) for style in styles[view_layers:])


def _keep_all():
    class KeepAll(ScriptedSegmenter):
        def segment(self, images):
            return [Instances(torch.ones(1, HEIGHT, WIDTH, dtype=torch.bool), torch.ones(1)) for _ in images]

    return KeepAll()


def test_same_seed_same_bytes_with_the_world_segmenter(tmp_path, generator_file, views_folder, segmenter_file):
    folders = [tmp_path / "a", tmp_path / "b"]
    for folder in folders:
        assert main(["dataset", "synth", "--generator", str(generator_file), "--views",
                     str(views_folder / "views.toml"), "--contents", "5", "--out", str(folder), "--segmenter",
                     f"world:{segmenter_file}", "--seed", "7", "--min-mask-area", "0.05", "--device", "cpu"]) == 0
    first, second = files_under(folders[0]), files_under(folders[1])
    assert first == second
    manifest = json.loads(first["manifest.json"])
    assert manifest["counts"]["kept"] + sum(manifest["counts"]["filtered"].values()) == 15
    assert manifest["source"]["segmenter"]["kind"] == "world" and manifest["seed"] == 7
    # Another seed draws other contents.
    assert main(["dataset", "synth", "--generator", str(generator_file), "--views", str(views_folder / "views.toml"),
                 "--contents", "5", "--out", str(tmp_path / "c"), "--segmenter", f"world:{segmenter_file}",
                 "--seed", "8", "--device", "cpu"]) == 0
    images = [{data for name, data in files.items() if name.startswith("images/")}
              for files in (first, files_under(tmp_path / "c"))]
    assert all(images) and not images[0] & images[1]


def test_a_killed_run_resumes_and_a_longer_one_extends_to_the_same_bytes(tmp_path, generator_file, views_folder):
    annotation = views_folder / "views.toml"
    reference = tmp_path / "reference"
    synthesize(reference, generator_file, annotation, contents=5, segmenter=ScriptedSegmenter(), batch=6,
               device="cpu", progress=False)
    expected = files_under(reference)

    # Killed after the first chunk (2 contents x 3 views): no meta.jsonl yet, the chunk's files are complete.
    resumed = tmp_path / "resumed"
    with pytest.raises(KeyboardInterrupt):
        synthesize(resumed, generator_file, annotation, contents=5, segmenter=ScriptedSegmenter(fail_after=6),
                   batch=6, device="cpu", progress=False)
    assert not (resumed / "meta.jsonl").exists() and not read_manifest(resumed)["complete"]
    assert (resumed / ".chunks" / "000000.json").is_file()
    # The resumed run segments only the remaining contents (the scripted answers continue where they stopped),
    # batched as the first run was even when asked otherwise.
    rest = ScriptedSegmenter()
    rest.seen = [None] * 6
    synthesize(resumed, generator_file, annotation, contents=5, segmenter=rest, batch=4, device="cpu", progress=False)
    assert len(rest.seen) == 15
    assert files_under(resumed) == expected

    # Made with 3 contents, then extended to 5: the last, shorter chunk (content 2) is redone whole.
    extended = tmp_path / "extended"
    synthesize(extended, generator_file, annotation, contents=3, segmenter=ScriptedSegmenter(), batch=6,
               device="cpu", progress=False)
    more = ScriptedSegmenter()
    more.seen = [None] * 6
    synthesize(extended, generator_file, annotation, contents=5, segmenter=more, batch=6, device="cpu", progress=False)
    assert files_under(extended) == expected
    # Rerunning a complete dataset changes nothing and segments nothing.
    idle = ScriptedSegmenter(fail_after=0)
    synthesize(extended, generator_file, annotation, contents=5, segmenter=idle, batch=6, device="cpu", progress=False)
    assert files_under(extended) == expected


def test_bad_input_is_refused_before_anything_is_written(tmp_path, generator_file, views_folder):
    out = tmp_path / "data"

    def run(**changes):
        arguments = dict(out=out, generator=generator_file, annotation=views_folder / "views.toml", contents=2,
                         candidates=views_folder / "candidates.safetensors", segmenter=ScriptedSegmenter(),
                         device="cpu", progress=False)
        arguments.update(changes)
        with pytest.raises(InputError) as error:
            synthesize(**arguments)
        assert not out.exists()
        return str(error.value)

    assert "annotates view 9" in run(annotation=write_annotation(tmp_path, {9: 1}))
    assert "bins are whole numbers" in run(annotation=write_annotation(tmp_path, {1: 12}))
    assert "does not exist" in run(candidates=tmp_path / "none.safetensors")
    assert "does not exist" in run(generator=tmp_path / "none.safetensors")
    assert run(truncation=1.5).startswith("truncation must lie in (0, 1]")  # the library's name; the CLI's is a flag
    assert run(min_mask_area=1.0).startswith("min_mask_area must lie in [0, 1)")
    assert run(contents=0).startswith("contents and batch must be at least 1")
    assert "Unknown segmenter" in run(segmenter="sam")
    assert "do not exist" in run(segmenter=f"maskrcnn:{tmp_path / 'maskrcnn.pth'}")
    other_generator = tmp_path / "other.safetensors"
    from ganverse3d.bundle import save_module

    save_module(other_generator, tiny_generator(seed=1))
    assert "another generator" in run(generator=other_generator)


def test_an_output_folder_with_other_content_or_settings_is_refused(tmp_path, generator_file, views_folder):
    annotation = str(views_folder / "views.toml")
    crowded = tmp_path / "crowded"
    crowded.mkdir()
    (crowded / "notes.txt").write_text("mine")
    command = ["dataset", "synth", "--generator", str(generator_file), "--views", annotation, "--contents", "2",
               "--segmenter", "world:/nonexistent.safetensors"]
    assert main(command + ["--out", str(crowded)]) == 2
    assert sorted(path.name for path in crowded.iterdir()) == ["notes.txt"]

    out = tmp_path / "data"
    synthesize(out, generator_file, annotation, contents=3, segmenter=ScriptedSegmenter(), seed=1, device="cpu",
               progress=False)
    before = files_under(out)
    with pytest.raises(InputError, match="other settings \\(seed\\)"):
        synthesize(out, generator_file, annotation, contents=3, segmenter=ScriptedSegmenter(), seed=2, device="cpu",
                   progress=False)
    with pytest.raises(InputError, match="already holds 3 contents"):
        synthesize(out, generator_file, annotation, contents=2, segmenter=ScriptedSegmenter(), seed=1, device="cpu",
                   progress=False)
    write_annotation(views_folder, {0: 1, 2: 3, 5: 9})  # view 0 re-annotated: other initial cameras
    with pytest.raises(InputError, match="other settings \\(views\\)"):
        synthesize(out, generator_file, annotation, contents=3, segmenter=ScriptedSegmenter(), seed=1, device="cpu",
                   progress=False)
    assert files_under(out) == before
