"""`neural train` data-parallel on the CPU with gloo (one torchrun launch of 2 processes): the warm-up trains what
one process trains with the same global batch, to the order of float sums; fine-tuning, whose pairs of examples
are made within each rank's share, stays close to one process where an un-averaged run does not; a rank killed in
fine-tuning and a resume with 2 processes continue the run bit for bit; a global batch that leaves a process fewer
than 2 examples is one sentence."""

import pytest
import torch

from ganverse3d import distributed
from ganverse3d.bundle import load_state
from ganverse3d.cli import main
from ganverse3d.neural.train import Trainer, TrainConfig

from dataset.dataset_helpers import tiny_generator
from distributed_helpers import run_workers, state, the_run, torchrun
from neural.neural_helpers import write_training_kit

# Global batch 4 (2 a rank); the realism term on, so that the discriminator's pass through DDP is exercised.
SETTINGS = dict(view_dims=4, hidden=16, batch=4, log_every=1, sample_every=100, checkpoint_every=100, metric_every=0)
WARMUP = dict(SETTINGS, warmup_steps=3, finetune_steps=0)
FINETUNE = dict(SETTINGS, warmup_steps=2, finetune_steps=3, finetune_lr=1e-3)


@pytest.fixture(scope="module")
def kit(tmp_path_factory):
    return write_training_kit(tmp_path_factory.mktemp("kit"), tiny_generator())


@pytest.fixture(scope="module")
def two_processes(kit, tmp_path_factory) -> dict:
    """The run folders of one torchrun launch of 2 processes: a warm-up run and a fine-tuning run."""
    folder = tmp_path_factory.mktemp("two")
    roots = {name: folder / name for name in ("warmup", "finetune")}
    result = run_workers(folder, [
        {"trainer": "neural", "config": {**kit, **WARMUP}, "runs_root": str(roots["warmup"])},
        {"trainer": "neural", "config": {**kit, **FINETUNE}, "runs_root": str(roots["finetune"])}])
    assert result.returncode == 0, result.stderr[-3000:]
    return {name: the_run(root, "neural") for name, root in roots.items()}


def one_process(kit, settings: dict, runs_root) -> dict[str, torch.Tensor]:
    bundle = Trainer.train(TrainConfig(**kit, **settings), runs_root=runs_root, device="cpu", progress=False)
    return state(bundle.parents[1])


def test_two_processes_warm_up_as_one_does(kit, two_processes, tmp_path):
    one, two = one_process(kit, WARMUP, tmp_path), state(two_processes["warmup"])
    names = [name for name in one if name.startswith("model.mapping.") and one[name].is_floating_point()]
    assert names
    for name in names:
        torch.testing.assert_close(two[name], one[name], rtol=0, atol=1e-5, msg=name)


def test_two_processes_fine_tune_close_to_one(kit, two_processes, tmp_path):
    one, two = one_process(kit, FINETUNE, tmp_path), state(two_processes["finetune"])
    start = Trainer(TrainConfig(**kit, **FINETUNE), None, "cpu", progress=False)  # the initial weights
    initial = {f"model.{name}": value.detach() for name, value in start.model.state_dict().items()}
    initial.update({f"D.{name}": value.detach() for name, value in start.D.state_dict().items()})
    # Each rank pairs its own examples and runs the discriminator's minibatch statistics on its own share, so the
    # runs part; per network, the 2-process weights stay within a small fraction of how far training moved them
    # (measured: synthesis 3.7e-5, mapping 3.7e-5, D 0.012; 0.36, 0.63 and 0.20 when the ranks' gradients were
    # not averaged).
    for prefix in ("model.generator.synthesis.", "model.mapping.", "D."):
        names = [name for name in initial if name.startswith(prefix) and initial[name].is_floating_point()]
        moved = sum(float((one[name] - initial[name]).abs().sum()) for name in names)
        apart = sum(float((two[name] - one[name]).abs().sum()) for name in names)
        assert moved > 0 and apart < 0.1 * moved, (prefix, apart / moved)


def test_a_rank_killed_in_fine_tuning_and_a_resume_continue_the_run(kit, two_processes, tmp_path):
    # Checkpoints at step 3 (one fine-tuning step after the switch copied g_b to the background reference); rank 1
    # dies as it is about to train step 5.
    root = tmp_path / "runs"
    killed = run_workers(tmp_path, [{"trainer": "neural", "config": {**kit, **FINETUNE, "checkpoint_every": 3},
                                     "runs_root": str(root), "kill": [1, 4]}])
    assert killed.returncode != 0
    run = the_run(root, "neural")
    assert load_state(run / "checkpoints" / "state.safetensors")[1]["step"] == 3
    resumed = torchrun("-m", "ganverse3d.cli", "neural", "train", "--resume", run, "--device", "cpu")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    expected, got = state(two_processes["finetune"]), state(run)
    assert set(got) == set(expected)
    for name in expected:
        assert torch.equal(got[name], expected[name]), name


def test_a_global_batch_leaving_a_process_one_example_is_one_sentence(kit, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(distributed, "size", lambda: 2)
    code = main(["neural", "train", "--views", kit["views"], "--generator", kit["generator"], "--inverse",
                 kit["inverse"], "--batch", "2", "--runs", str(tmp_path / "runs"), "--device", "cpu"])
    assert code == 2
    assert capsys.readouterr().err.strip() == (
        "Error: --batch 2 gives each of the 2 processes fewer than 2 examples, and fine-tuning pairs each example "
        "with another of its process's; give at least 4.")
    assert not (tmp_path / "runs").exists()
