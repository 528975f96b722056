"""Data-parallel training (ganverse3d.distributed and the run kit) on the CPU with gloo: 2 processes launched
by torchrun (``python -m torch.distributed.run``, 127.0.0.1 and a free port) train what one process trains
with the same global batch; a rank killed with SIGKILL and a resume continue the run, with as many processes
(bit for bit) or with one; a batch that does not split is one sentence.

The launches are the slow part (each starts three Python processes): the 2-process runs of every test come
from one launch (the module's fixture) and the kill test makes two more.
"""

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from ganverse3d import distributed
from ganverse3d.bundle import load_state
from ganverse3d.cli import main
from ganverse3d.inverse.train import TrainConfig as InverseConfig, Trainer as InverseTrainer
from ganverse3d.runs import read_metrics
from ganverse3d.stylegan2.train import TrainConfig as GANConfig, Trainer as GANTrainer

from distributed_helpers import run_workers, state, the_run, torchrun
from inverse.inverse_helpers import write_multiview_dataset

# Global batch 8 (4 a rank), 4 steps; path length on, so that its pass through DDP is exercised.
GAN = dict(resolution=8, kimg=0.032, batch=8, z_dim=8, w_dim=8, mapping_layers=2, channel_base=64, channel_max=8,
           r1_interval=2, pl_weight=1.0, pl_interval=2, sample_every=2, checkpoint_every=2, log_every=1)
# Global batch 4 (2 a rank), 6 steps with learned cameras, checkpoints every 2.
INVERSE = dict(iterations=6, batch=4, resolution=16, texture_height=4, holdout_fraction=0.3, log_every=1,
               sample_every=2, eval_every=2, checkpoint_every=2)
# 11 training images in batches of 4: the epoch's last batch (3) is filled up to split evenly.
SEGMENTER = dict(resolution=16, width=4, epochs=1, batch=4, holdout=0.1, log_every=1, checkpoint_every=2)


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("data")
    rng = np.random.default_rng(0)
    (folder / "gan" / "images").mkdir(parents=True)
    for index in range(16):
        Image.fromarray((rng.random((8, 8, 3)) * 255).astype(np.uint8)).save(folder / "gan" / "images" / f"{index:06d}.png")
    write_multiview_dataset(folder / "multiview")  # 3 contents x 4 views at 32 px, images and masks
    return {"gan": folder / "gan", "multiview": folder / "multiview"}


@pytest.fixture(scope="module")
def two_processes(data, tmp_path_factory) -> Path:
    """The runs root of one torchrun launch of 2 processes: a GAN, an inverse-network and a segmenter run."""
    folder = tmp_path_factory.mktemp("two")
    root = folder / "runs"
    result = run_workers(folder, [
        {"trainer": "gan", "config": {**GAN, "data": str(data["gan"])}, "runs_root": str(root)},
        {"trainer": "inverse", "config": {**INVERSE, "data": str(data["multiview"])}, "runs_root": str(root)},
        {"trainer": "segmenter", "config": {**SEGMENTER, "data": str(data["multiview"])}, "runs_root": str(root)}])
    assert result.returncode == 0, result.stderr[-3000:]
    return root


def test_two_processes_train_the_inverse_network_as_one_does(data, two_processes, tmp_path):
    one = InverseTrainer.train(InverseConfig(**INVERSE, data=str(data["multiview"])), runs_root=tmp_path,
                               device="cpu", progress=False)
    one, two = state(one.parents[1]), state(the_run(two_processes, "inverse"))
    # Network and cameras after 6 steps: the same up to the order of float sums (measured: 1.2e-6 at most).
    parameters = [name for name in one if name.startswith(("model.", "cameras.")) and one[name].is_floating_point()]
    assert parameters
    for name in parameters:
        torch.testing.assert_close(two[name], one[name], rtol=0, atol=1e-5, msg=name)
    # ... and both ranks' torch RNG states are in the checkpoint.
    assert two["rng_torch_global_ranks"].shape[0] == 2


def test_two_processes_train_the_gan_as_one_does_but_for_each_ranks_noise(data, two_processes, tmp_path):
    config = GANConfig(**GAN, data=str(data["gan"]))
    one = GANTrainer.train(config, runs_root=tmp_path, device="cpu", progress=False)
    one, two = state(one.parents[1]), state(the_run(two_processes, "gan"))
    start = GANTrainer(config, None, "cpu", progress=False)  # the initial weights (seeded alike)
    # Each rank draws StyleGAN's per-pixel noise itself, so the runs part after the first step: the noise
    # strengths start at 0 and take a step of either sign, and Adam turns small changes of tiny gradients into
    # full steps. Per network, the weights differ by less than a fifth of how far training moved them (measured:
    # G 0.07, D 0.01; G 0.69 when the ranks' gradients were not averaged).
    for network in ("G", "D"):
        names = [name for name, _ in getattr(start, network).named_parameters() if "noise_strength" not in name]
        initial = {name: value.detach() for name, value in getattr(start, network).named_parameters()}
        moved = sum(float((one[f"{network}.{name}"] - initial[name]).abs().sum()) for name in names)
        apart = sum(float((two[f"{network}.{name}"] - one[f"{network}.{name}"]).abs().sum()) for name in names)
        assert apart < 0.2 * moved, (network, apart / moved)


def test_two_processes_train_a_segmenter_with_only_rank_0_writing(two_processes):
    run = the_run(two_processes, "segmenter")
    steps = [line["step"] for line in read_metrics(run / "metrics.jsonl") if "loss" in line]
    assert steps == [1, 2, 3]  # 11 training images, global batch 4: the last batch filled up from the epoch start
    assert (run / "checkpoints" / "world_segmenter.safetensors").is_file()
    assert len(list((two_processes / "segmenter").iterdir())) == 1  # one run folder, not one per rank


def test_a_killed_rank_and_a_resume_continue_the_run(data, two_processes, tmp_path):
    root = tmp_path / "runs"
    killed = run_workers(tmp_path, [{"trainer": "inverse", "config": {**INVERSE, "data": str(data["multiview"])},
                                     "runs_root": str(root), "kill": [1, 3]}])
    assert killed.returncode != 0
    run = the_run(root, "inverse")
    assert load_state(run / "checkpoints" / "state.safetensors")[1]["step"] == 2
    copy = tmp_path / "copy" / run.name
    shutil.copytree(run, copy)

    # With as many processes, through the command line: the uninterrupted run's state, bit for bit.
    resumed = torchrun("-m", "ganverse3d.cli", "inverse", "train", "--resume", run, "--device", "cpu")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    uninterrupted = the_run(two_processes, "inverse")
    expected, got = state(uninterrupted), state(run)
    assert set(got) == set(expected)
    for name in expected:
        assert torch.equal(got[name], expected[name]), name
    assert ([line["step"] for line in read_metrics(run / "metrics.jsonl")]
            == [line["step"] for line in read_metrics(uninterrupted / "metrics.jsonl")])

    # With one process: the same weights up to the order of float sums.
    InverseTrainer.train(resume=copy, device="cpu", progress=False)
    got = state(copy)
    for name in expected:
        if name.startswith(("model.", "cameras.")) and expected[name].is_floating_point():
            torch.testing.assert_close(got[name], expected[name], rtol=0, atol=1e-5, msg=name)


def test_a_batch_that_does_not_split_among_the_processes_is_one_sentence(data, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(distributed, "size", lambda: 3)
    code = main(["segmenter", "train", "--data", str(data["multiview"]), "--out", str(tmp_path / "seg.safetensors"),
                 "--batch", "4", "--runs", str(tmp_path / "runs"), "--device", "cpu"])
    assert code == 2
    assert capsys.readouterr().err.strip() == ("Error: --batch 4 is the global batch, split evenly among the 3 "
                                               "processes, so it must be a multiple of 3.")
    assert not (tmp_path / "runs").exists()


def test_a_training_commands_closing_line_comes_from_rank_0_alone(monkeypatch, capsys):
    from ganverse3d.cli.options import echo_once

    for is_main, expected in ((False, ""), (True, "Wrote run.\n")):
        monkeypatch.setattr(distributed, "is_main", lambda is_main=is_main: is_main)
        echo_once("Wrote run.")
        assert capsys.readouterr().out == expected
