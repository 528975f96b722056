"""The trainers on :class:`ganverse3d.runs.EpochTrainer` (world segmenter, world feature net): a run killed in
the middle of an epoch and of its learning-rate schedule resumes to the weights of an uninterrupted run, its
metrics.jsonl reads as the uninterrupted run's, and the bundle reaches ``out`` only when the run ends. A resume
keeps the epochs: the learning-rate schedule spans them."""

from __future__ import annotations

import json

import pytest
import torch

from ganverse3d.bundle import load_module
from ganverse3d.cli import main
from ganverse3d.errors import InputError
from ganverse3d.dataset.train_segmenter import SegmenterTrainConfig, SegmenterTrainer, train_world_segmenter
from ganverse3d.world.features import FeatureNetConfig, FeatureNetTrainer, train_feature_net

# 22 training images of the 24 rendered: batches of 8 (the last one short) and of 6 (the remainder left out) both
# make 3 steps an epoch, so a checkpoint every 2 steps falls in the middle of the second epoch at step 4.
TRAINERS = {
    "segmenter": (SegmenterTrainer, train_world_segmenter,
                  lambda data: SegmenterTrainConfig(data=data, resolution=32, width=4, epochs=2, batch=8, seed=3,
                                                    log_every=1, checkpoint_every=2)),
    "feature_net": (FeatureNetTrainer, train_feature_net,
                    lambda data: FeatureNetConfig(data=data, resolution=32, width=4, feature_dim=8, epochs=2, batch=6,
                                                  seed=3, log_every=1, checkpoint_every=2)),
}


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    data = tmp_path_factory.mktemp("world") / "world"
    assert main(["world", "render", "--n", "24", "--resolution", "32", "--seed", "5", "--out", str(data)]) == 0
    return str(data)


@pytest.mark.parametrize("stage", list(TRAINERS))
def test_a_run_killed_mid_epoch_resumes_to_the_weights_of_an_uninterrupted_one(stage, world, tmp_path, monkeypatch):
    trainer_class, train, make_config = TRAINERS[stage]
    config = make_config(world)
    straight = train(config, tmp_path / "a.safetensors", device="cpu", progress=False, runs_root=tmp_path / "a")

    def kill_in_step_five(trainer, items, train_batch=trainer_class.train_batch):
        if trainer.step == 4:  # after the checkpoint of step 4, before step 5 trains
            raise KeyboardInterrupt
        return train_batch(trainer, items)

    monkeypatch.setattr(trainer_class, "train_batch", kill_in_step_five)
    with pytest.raises(KeyboardInterrupt):
        train(config, tmp_path / "b.safetensors", device="cpu", progress=False, runs_root=tmp_path / "b")
    monkeypatch.undo()
    run_dir = tmp_path / "b" / stage / "00000-world-r32"
    assert not (tmp_path / "b.safetensors").exists()
    resumed = train(None, tmp_path / "b.safetensors", device="cpu", progress=False, resume=run_dir)

    assert resumed == straight
    a, b = load_module(tmp_path / "a.safetensors"), load_module(tmp_path / "b.safetensors")
    for (name, tensor_a), tensor_b in zip(a.state_dict().items(), b.state_dict().values()):
        assert torch.equal(tensor_a, tensor_b), name
    lines = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    straight_lines = (tmp_path / "a" / stage / "00000-world-r32" / "metrics.jsonl").read_text().splitlines()
    assert [line["step"] for line in lines] == [json.loads(line)["step"] for line in straight_lines]
    assert [line["step"] for line in lines if "count" in line] == [2, 4, 6]  # held-out scores at each checkpoint
    assert lines[-1]["epoch"] == 2.0 and lines[-1]["count"] == 2


@pytest.mark.parametrize("stage", list(TRAINERS))
def test_a_resume_keeps_the_epochs_that_the_schedule_spans(stage, world, tmp_path):
    trainer_class, train, make_config = TRAINERS[stage]
    config = make_config(world)
    train(config, tmp_path / "a.safetensors", device="cpu", progress=False, runs_root=tmp_path / "runs")
    run_dir = tmp_path / "runs" / stage / "00000-world-r32"
    before = {path: path.read_bytes() for path in tmp_path.rglob("*") if path.is_file()}
    for epochs in (1, 3):  # shorter than trained, or longer: either would bend the schedule of the whole run
        with pytest.raises(InputError) as error:
            train(None, tmp_path / "b.safetensors", device="cpu", progress=False, resume=run_dir, epochs=epochs)
        assert error.value.settings == ["epochs"] and "schedule" in str(error.value)
    assert {path: path.read_bytes() for path in tmp_path.rglob("*") if path.is_file()} == before

    # The epochs it has (given or not): the finished run ends at once, and its bundle reaches out.
    train(None, tmp_path / "b.safetensors", device="cpu", progress=False, resume=run_dir, epochs=config.epochs)
    assert (tmp_path / "b.safetensors").read_bytes() == (tmp_path / "a.safetensors").read_bytes()
