"""`ganverse3d.neural.train` on tiny files: a 16-px generator with its view candidates and annotation, a tiny
untrained inverse network and segmenter. Pins the warm-up's learning, the run folder and the resume."""

import json

import pytest
import torch

from ganverse3d.bundle import load_module, read_metadata, save_module
from ganverse3d.cli import main
from ganverse3d.dataset.segment import WorldSegmenterNet
from ganverse3d.dataset.views import write_view_candidates
from ganverse3d.inverse.model import InverseGraphicsNet
from ganverse3d.neural import StyleGANR
from ganverse3d.neural.train import Trainer, TrainConfig, train
from ganverse3d.runs import seeded_rng

from dataset.dataset_helpers import tiny_generator, write_annotation

WARMUP_KEYS = {"loss", "loss_w", "entropy"}
FINETUNE_KEYS = {"loss", "loss_shape", "loss_texture", "loss_background", "loss_pair", "loss_camera",
                 "loss_adversarial", "loss_D"}


@pytest.fixture(scope="module")
def kit(tmp_path_factory):
    """Paths of a generator, its annotated view candidates (views 0, 2, 5 in bins 0, 3, 9), an inverse network
    and a segmenter, all tiny and untrained."""
    folder = tmp_path_factory.mktemp("kit")
    G = tiny_generator()
    save_module(folder / "G.safetensors", G)
    write_view_candidates(G, folder / "G.safetensors", folder / "views", 6, contents=2, seed=3)
    (folder / "views" / "views.toml").unlink()
    views = write_annotation(folder / "views", {0: 0, 2: 3, 5: 9})
    torch.manual_seed(0)
    save_module(folder / "inverse.safetensors",
                InverseGraphicsNet(resolution=16, texture_height=8, feature_dim=16, base_channels=8, max_channels=8,
                                   texture_channels=8))
    segmenter = WorldSegmenterNet(resolution=16, width=4).eval()
    with torch.no_grad():  # about half of each image is "car", so masks, backgrounds and their codes all vary
        segmenter.head.bias -= segmenter(torch.rand(4, 3, 16, 16)).median()
    save_module(folder / "segmenter.safetensors", segmenter)
    return dict(views=views, generator=str(folder / "G.safetensors"), inverse=str(folder / "inverse.safetensors"),
                segmenter=str(folder / "segmenter.safetensors"))


def config(kit, **fields) -> TrainConfig:
    settings = dict(view_dims=4, hidden=16, warmup_steps=3, finetune_steps=2, batch=2, log_every=1, sample_every=100,
                    checkpoint_every=100, metric_every=0)
    return TrainConfig(**kit, **{**settings, **fields})


def test_warm_up_lowers_the_code_loss_on_a_fixed_batch(kit):
    trainer = Trainer(config(kit, lr=3e-3), None, "cpu", progress=False)
    examples = trainer.examples(4, seeded_rng(9))

    def loss_w() -> float:
        with torch.no_grad():
            ws = trainer.model.mapping(examples.camera_vector, examples.verts, examples.texture, examples.background,
                                       examples.masks)
        return float((ws - examples.ws).square().mean())

    start = loss_w()
    for _ in range(20):
        trainer.warmup_step(examples)
    assert loss_w() < 0.5 * start


def lines(run_dir) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def test_a_run_writes_its_folder_and_a_resume_continues_from_the_checkpoint(kit, tmp_path):
    bundle = train(config(kit), runs_root=tmp_path, device="cpu", progress=False)
    run_dir = bundle.parents[1]
    assert json.loads((run_dir / "config.json").read_text())["finetune_steps"] == 2
    losses = [line for line in lines(run_dir) if "loss" in line]
    assert [line["step"] for line in losses] == [1, 2, 3, 4, 5]
    assert all(WARMUP_KEYS <= set(line) for line in losses[:3])
    assert all(FINETUNE_KEYS <= set(line) and "loss_w" not in line for line in losses[3:])
    view_dims = json.loads((run_dir / "view_dims.json").read_text())
    assert view_dims["view_dims"] == 4 and view_dims["of"] == 16 and len(view_dims["correlation"]) == 16
    # Keeping every dimension of the view code is the full code: the pose net reads it exactly as itself.
    assert next(row for row in view_dims["sweep"] if row["count"] == 16)["azimuth_error"] == 0
    assert sorted(path.name for path in (run_dir / "samples").iterdir()) == ["samples0000000.png",
                                                                            "samples0000005.png"]
    model = load_module(bundle, StyleGANR, device="cpu")
    assert model.resolution == 16 and model.mapping.view_indices.shape == (4,)
    assert read_metadata(bundle)["provenance"]["fine_tuned_steps"] == 2

    assert train(resume=run_dir, finetune_steps=4, device="cpu", progress=False) == bundle
    resumed = [line for line in lines(run_dir) if "loss" in line]
    assert [line["step"] for line in resumed] == [1, 2, 3, 4, 5, 6, 7]
    assert resumed[:5] == losses and all(FINETUNE_KEYS <= set(line) for line in resumed[5:])
    assert read_metadata(bundle)["provenance"]["fine_tuned_steps"] == 4
    assert json.loads((run_dir / "config.json").read_text())["finetune_steps"] == 4


def test_train_without_views_leaves_no_run_folder(tmp_path, capsys):
    assert main(["neural", "train", "--runs", str(tmp_path / "runs"), "--device", "cpu"]) == 2
    assert capsys.readouterr().err.strip() == "Error: Give --views (a view annotation) or --resume (a run folder)."
    assert not (tmp_path / "runs").exists()
