"""StyleGAN2 training: a killed run resumes to exactly the same weights, the committed run of the trainer before
the run kit resumes from its state; bad input leaves nothing behind."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from ganverse3d.bundle import flatten_optimizer, load_module, load_state, save_module
from ganverse3d.cli import main
from ganverse3d.world.features import WorldFeatureNet
from ganverse3d.stylegan2.networks import Generator
from ganverse3d.stylegan2.train import TrainConfig, Trainer, train


@pytest.fixture()
def tiny_dataset(tmp_path):
    rng = np.random.default_rng(0)
    (tmp_path / "data" / "images").mkdir(parents=True)
    for index in range(12):
        pixels = (rng.random((8, 8, 3)) * 255).astype(np.uint8)
        Image.fromarray(pixels).save(tmp_path / "data" / "images" / f"{index:06d}.png")
    return tmp_path / "data"

# The default generator's run: its checkpoint was written by the trainer before the run kit (runs.py).
COMMITTED_RUN = Path(__file__).resolve().parents[2] / "training" / "gan-world64"


def tiny_config(data, **overrides):
    settings = dict(data=str(data), resolution=8, kimg=0.016, batch=4, z_dim=8, w_dim=8, mapping_layers=2,
                    channel_base=64, channel_max=8, r1_interval=2, pl_weight=1.0, pl_interval=2,
                    sample_every=2, checkpoint_every=2, log_every=1)
    settings.update(overrides)
    return TrainConfig(**settings)


def test_killed_run_resumes_to_identical_weights(tiny_dataset, tmp_path, monkeypatch):
    straight = train(tiny_config(tiny_dataset), runs_root=tmp_path / "a", device="cpu")

    original_step = Trainer.train_step

    def crash_after_two_steps(self):
        if self.step == 3:  # the checkpoint of step 2 exists, step 3's work is lost
            raise KeyboardInterrupt
        return original_step(self)

    monkeypatch.setattr(Trainer, "train_step", crash_after_two_steps)
    with pytest.raises(KeyboardInterrupt):
        train(tiny_config(tiny_dataset), runs_root=tmp_path / "b", device="cpu")
    monkeypatch.setattr(Trainer, "train_step", original_step)
    run_dir = next((tmp_path / "b" / "gan").iterdir())
    resumed = train(resume=run_dir, device="cpu")

    a, b = load_module(straight, Generator), load_module(resumed, Generator)
    for (name, tensor_a), tensor_b in zip(a.state_dict().items(), b.state_dict().values()):
        assert torch.equal(tensor_a, tensor_b), name
    assert len((run_dir / "metrics.jsonl").read_text().splitlines()) >= 4
    assert (run_dir / "samples" / "fakes0000004.png").is_file()


def test_the_committed_run_of_the_old_trainer_resumes_from_its_state(tmp_path, monkeypatch):
    run_dir = tmp_path / "gan-world64"
    shutil.copytree(COMMITTED_RUN, run_dir)
    saved, meta = load_state(run_dir / "checkpoints" / "state.safetensors")
    config = json.loads((run_dir / "config.json").read_text())
    # Stand-ins for the 20,000 renders at the run's (relative) data path: one step needs a batch, not the data.
    monkeypatch.chdir(tmp_path)
    images = Path(config["data"]) / "images"
    images.mkdir(parents=True)
    for index in range(4):
        pixels = np.full((config["resolution"], config["resolution"], 3), 60 * index, np.uint8)
        Image.fromarray(pixels).save(images / f"{index:06d}.png")
    at_start = {}
    original_run = Trainer.run

    def run_noting_the_start(trainer):
        at_start.update(step=trainer.step, rng=trainer.rng.get_state(), global_rng=torch.get_rng_state(),
                        pl_mean=trainer.pl_mean.clone())
        for name in ("G", "D", "G_ema"):
            weights = getattr(trainer, name).state_dict()
            at_start.update({f"{name}.{key}": value.clone() for key, value in weights.items()})
        for name in ("opt_G", "opt_D"):
            tensors, at_start[name] = flatten_optimizer(name, getattr(trainer, name))
            at_start.update({key: value.clone() for key, value in tensors.items()})
        return original_run(trainer)

    monkeypatch.setattr(Trainer, "run", run_noting_the_start)
    # One step past the checkpoint; float32, because bfloat16 is emulated (slow) on CPUs without AVX-512 BF16.
    train(resume=run_dir, kimg=(meta["step"] + 0.5) * config["batch"] / 1000, precision="float32", device="cpu",
          progress=False)

    assert at_start["step"] == meta["step"] == 15000
    assert torch.equal(at_start["rng"], saved["rng.train"])
    assert torch.equal(at_start["global_rng"], saved["rng.torch"])
    saved_weights = {key: value for key, value in saved.items() if not key.startswith("rng.")}
    assert saved_weights.keys() <= at_start.keys()
    for key, value in saved_weights.items():
        assert torch.equal(at_start[key], value), key
    for name in ("opt_G", "opt_D"):
        assert json.loads(json.dumps(at_start[name])) == meta[name]
    _, resumed_meta = load_state(run_dir / "checkpoints" / "state.safetensors")
    assert resumed_meta["step"] == meta["step"] + 1
    steps = [json.loads(line)["step"] for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert steps[-3:] == [15000, 15000, 15001]  # the last old line, the precision change, the new step


def test_a_finished_run_extended_with_kimg_equals_a_longer_run(tiny_dataset, tmp_path):
    longer = train(tiny_config(tiny_dataset), runs_root=tmp_path / "a", device="cpu")
    train(tiny_config(tiny_dataset, kimg=0.008), runs_root=tmp_path / "b", device="cpu")
    run_dir = next((tmp_path / "b" / "gan").iterdir())
    assert main(["gan", "train", "--resume", str(run_dir), "--kimg", "0.016", "--device", "cpu"]) == 0
    extended = run_dir / "checkpoints" / "G_ema.safetensors"
    a, b = load_module(longer, Generator), load_module(extended, Generator)
    for (name, tensor_a), tensor_b in zip(a.state_dict().items(), b.state_dict().values()):
        assert torch.equal(tensor_a, tensor_b), name
    assert '"kimg": 0.016' in (run_dir / "config.json").read_text()
    assert main(["gan", "train", "--resume", str(run_dir), "--kimg", "-1"]) == 2


def test_training_moves_the_generator_and_tracks_w_avg(tiny_dataset, tmp_path):
    config = tiny_config(tiny_dataset, kimg=0.008)
    trainer = Trainer(config, tmp_path, torch.device("cpu"))
    before = [p.detach().clone() for p in trainer.G.parameters()]
    stats = {}
    for _ in range(2):  # step 0 runs both lazy regularisers, step 1 neither
        stats.update(trainer.train_step())
    assert {"loss_G", "loss_D", "r1_penalty", "pl_penalty"} <= set(stats)
    assert all(np.isfinite(v) for v in stats.values())
    assert any(not torch.equal(a, b) for a, b in zip(before, trainer.G.parameters()))
    assert trainer.G.mapping.w_avg.abs().sum() > 0


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_training_on_cuda_logs_finite_losses_and_writes_the_bundle(tiny_dataset, tmp_path):
    for precision in ("float32", "bfloat16"):
        bundle = train(tiny_config(tiny_dataset, precision=precision), runs_root=tmp_path / precision, device="cuda")
        lines = [json.loads(line) for line in (bundle.parent.parent / "metrics.jsonl").read_text().splitlines()]
        assert [line["step"] for line in lines if "loss_G" in line] == [1, 2, 3, 4]
        assert all(np.isfinite(line[name]) for line in lines for name in ("loss_G", "loss_D") if name in line)
        assert bundle.is_file()


def test_bfloat16_autocast_changes_the_numbers_but_not_the_losses(tiny_dataset, tmp_path):
    losses = {}
    for precision in ("float32", "bfloat16"):
        trainer = Trainer(tiny_config(tiny_dataset, precision=precision), tmp_path / precision, torch.device("cpu"))
        losses[precision] = trainer.train_step()  # step 0: with R1 and path length, in bfloat16 too
    for name in ("loss_G", "loss_D", "r1_penalty"):
        full, half = losses["float32"][name], losses["bfloat16"][name]
        assert abs(half - full) <= 0.01 * abs(full), name    # measured: 0.1-0.4 %
        assert half != full, name                            # autocast did run in bfloat16
    assert losses["bfloat16"]["pl_penalty"] == losses["float32"]["pl_penalty"]  # path length stays float32


def test_resume_in_bfloat16_records_the_switch(tiny_dataset, tmp_path):
    train(tiny_config(tiny_dataset, kimg=0.008), runs_root=tmp_path, device="cpu")
    run_dir = next((tmp_path / "gan").iterdir())
    assert main(["gan", "train", "--resume", str(run_dir), "--kimg", "0.016", "--precision", "bfloat16",
                 "--device", "cpu"]) == 0
    assert '"precision": "bfloat16"' in (run_dir / "config.json").read_text()
    assert '{"step": 2, "kimg": 0.008, "precision": "bfloat16"}' in (run_dir / "metrics.jsonl").read_text()
    assert main(["gan", "train", "--resume", str(run_dir), "--precision", "float16"]) == 2


def test_bad_dataset_is_one_sentence_and_no_run_folder(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    code = main(["gan", "train", "--data", str(tmp_path / "empty"), "--runs", str(tmp_path / "runs")])
    assert code == 2
    assert "No PNG images" in capsys.readouterr().err
    assert not (tmp_path / "runs").exists()


@pytest.fixture()
def tiny_reader(tmp_path):
    torch.manual_seed(1)
    reader = WorldFeatureNet(["sedan", "suv"], resolution=8, width=4, feature_dim=8).eval()
    path = tmp_path / "reader.safetensors"
    save_module(path, reader)
    return path


def test_view_mixing_joins_the_generator_loss_and_can_start_on_resume(tiny_dataset, tiny_reader, tmp_path):
    plain = Trainer(tiny_config(tiny_dataset), tmp_path / "plain", torch.device("cpu"))
    mixing = Trainer(tiny_config(tiny_dataset, view_mixing=1.0, view_layers=2, feature_net=str(tiny_reader)),
                     tmp_path / "mixing", torch.device("cpu"))
    stats = mixing.train_step()
    plain.train_step()
    assert stats["view_mixing"] > 0 and {"view_mixing_azimuth_kl", "view_mixing_body_kl"} <= set(stats)
    assert any(not torch.equal(a, b) for a, b in zip(plain.G.parameters(), mixing.G.parameters()))

    train(tiny_config(tiny_dataset, kimg=0.008, feature_net=str(tiny_reader)), runs_root=tmp_path, device="cpu")
    run_dir = next((tmp_path / "gan").iterdir())
    assert main(["gan", "train", "--resume", str(run_dir), "--kimg", "0.016", "--view-mixing", "0.5",
                 "--device", "cpu"]) == 0
    metrics = (run_dir / "metrics.jsonl").read_text()
    assert '{"step": 2, "kimg": 0.008, "view_mixing": 0.5}' in metrics
    assert '"view_mixing_body_kl"' in metrics.splitlines()[-1]
    assert main(["gan", "train", "--resume", str(run_dir), "--view-layers", "6"]) == 2  # 8 px has 4 W entries


def test_view_mixing_needs_a_world_feature_net(tiny_dataset, tmp_path, capsys):
    (tmp_path / "inception.pth").write_bytes(b"not a world feature net")
    code = main(["gan", "train", "--data", str(tiny_dataset), "--view-mixing", "1", "--feature-net",
                 str(tmp_path / "inception.pth"), "--runs", str(tmp_path / "runs")])
    assert code == 2
    assert capsys.readouterr().err.count("\n") == 1
    assert not (tmp_path / "runs").exists()
