"""Data-parallel training of the parts room (the style interpreter, the part branch, the part segmenter) on the
CPU with gloo: 2 processes launched by torchrun train what one process trains with the same global batch, rank 0
alone writes, and the interpreter's early stop ends the run at the same step on both ranks.

One launch (the module's fixture) trains every 2-process run; the conventions are those of
tests/test_distributed.py.
"""

import json
from pathlib import Path

import pytest
import torch

from ganverse3d import distributed
from ganverse3d.bundle import save_module
from ganverse3d.cli import main
from ganverse3d.dataset.world_multiview import write_world_multiview
from ganverse3d.parts.annotations import write_annotation_templates
from ganverse3d.parts.train import InterpreterTrainConfig, InterpreterTrainer
from ganverse3d.parts.train_branch import BranchTrainConfig, BranchTrainer
from ganverse3d.runs import read_metrics

from distributed_helpers import run_workers, state, the_run
from parts.parts_helpers import paint_known_labels, tiny_generator, write_tiny_inverse

# 16 annotated 12 x 16 images: 3,072 pixels, 6 batches of 512 an epoch (256 a rank); 2 members, 12 steps, no stop.
INTERPRETER = dict(members=2, batch=512, steps=12, min_epochs=0, patience=1000, log_every=1, checkpoint_every=6)
# Batches of 614 pixels: an epoch is 5 of them and 2 pixels, 1 a rank, which waits (BatchNorm needs two); after
# the first epoch a member stops when its loss has not fallen for 2 steps, long before step 400.
STOPPING = dict(members=2, batch=614, steps=400, min_epochs=1, patience=2, log_every=1, checkpoint_every=100)
# 3 cars x 4 views, one car held out: 8 training images, global batch 4 (2 a rank), 4 steps.
BRANCH = dict(channels=16, steps=4, batch=4, holdout=0.3, log_every=1, checkpoint_every=2)
# The 16 annotated images, 3 held out: 13 to train on in batches of 4, the last (1) filled up to split evenly.
SEGMENTER = dict(resolution=16, width=4, epochs=1, batch=4, holdout=0.2, log_every=1, checkpoint_every=2)


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("data")
    generator = folder / "G.safetensors"
    save_module(generator, tiny_generator())
    write_annotation_templates(folder / "annotations", str(generator), count=16, seed=0, device="cpu")
    paint_known_labels(folder / "annotations")
    write_world_multiview(folder / "views", cars=3, views=4, resolution=32, seed=7, progress=False)
    write_tiny_inverse(folder / "views", folder / "inverse.safetensors")
    return {"generator": str(generator), "annotations": str(folder / "annotations"), "views": str(folder / "views"),
            "inverse": str(folder / "inverse.safetensors")}


def interpreter_config(data, settings: dict) -> InterpreterTrainConfig:
    return InterpreterTrainConfig(annotations=data["annotations"], generator=data["generator"], **settings)


def branch_config(data) -> BranchTrainConfig:
    return BranchTrainConfig(data=data["views"], inverse=data["inverse"], **BRANCH)


@pytest.fixture(scope="module")
def two_processes(data, tmp_path_factory) -> Path:
    """The folder of one torchrun launch of 2 processes: runs roots ``interpreter``, ``stopping`` (its ranks'
    traces ``stopping.rank<r>.json``), ``branch`` and ``segmenter``; the interpreter's and the branch's bundles
    copied to ``interpreter.safetensors`` and ``branch.safetensors`` (--out)."""
    folder = tmp_path_factory.mktemp("two")
    interpreter = {"annotations": data["annotations"], "generator": data["generator"]}
    result = run_workers(folder, [
        {"trainer": "interpreter", "config": {**INTERPRETER, **interpreter}, "runs_root": str(folder / "interpreter"),
         "out": str(folder / "interpreter.safetensors")},
        {"trainer": "interpreter", "config": {**STOPPING, **interpreter}, "runs_root": str(folder / "stopping"),
         "trace": str(folder / "stopping")},
        {"trainer": "part-branch", "config": {**BRANCH, "data": data["views"], "inverse": data["inverse"]},
         "runs_root": str(folder / "branch"), "out": str(folder / "branch.safetensors")},
        {"trainer": "part-segmenter", "config": {**SEGMENTER, "data": data["annotations"]},
         "runs_root": str(folder / "segmenter")}])
    assert result.returncode == 0, result.stderr[-3000:]
    return folder


def test_two_processes_train_the_part_branch_as_one_does(data, two_processes, tmp_path):
    one = BranchTrainer.train(branch_config(data), runs_root=tmp_path, device="cpu", progress=False)
    one, two = state(one.parents[1]), state(the_run(two_processes / "branch", "part_branch"))
    # After 4 steps: the same up to the order of float sums (measured: 8.9e-8 at most; 2.5e-3 when each rank took
    # the mean over its own pixels, 6.4e-3 when the ranks' gradients were not averaged either).
    names = [name for name in one if name.startswith("branch.")]
    assert names
    for name in names:
        torch.testing.assert_close(two[name], one[name], rtol=0, atol=1e-5, msg=name)


def test_two_processes_train_the_interpreter_close_to_one_but_for_batchnorms_statistics(data, two_processes,
                                                                                          tmp_path):
    config = interpreter_config(data, INTERPRETER)
    one = InterpreterTrainer.train(config, runs_root=tmp_path, device="cpu", progress=False)
    one, two = state(one.parents[1]), state(the_run(two_processes / "interpreter", "parts"))
    start = InterpreterTrainer(config, None, "cpu", progress=False).interpreter  # the initial weights (seeded alike)
    # BatchNorm normalises each rank's 256 pixels by their own statistics, so the runs part from the first step,
    # and Adam turns small changes of small gradients into full steps. The weights differ by a quarter at most of
    # how far training moved them (measured: 0.13; 0.36 when the ranks' gradients were not averaged; with batches
    # of 64 the two were 0.42 and 0.67).
    initial = {f"interpreter.{name}": value.detach() for name, value in start.named_parameters()}
    moved = sum(float((one[name] - value).abs().sum()) for name, value in initial.items())
    apart = sum(float((two[name] - one[name]).abs().sum()) for name in initial)
    assert apart < 0.25 * moved, apart / moved


def test_the_early_stop_ends_the_run_at_the_same_step_on_both_ranks(two_processes):
    traces = [json.loads((two_processes / f"stopping.rank{rank}.json").read_text()) for rank in (0, 1)]
    assert traces[0] == traces[1]
    last = traces[0][-1]
    assert traces[0] == list(range(last + 1)) and 6 <= last < STOPPING["steps"] - 1  # past an epoch's lone pixels
    run = the_run(two_processes / "stopping", "parts")
    lines = [line for line in read_metrics(run / "metrics.jsonl") if "loss" in line]
    assert [line["step"] for line in lines] == [*range(1, last + 1), STOPPING["steps"]]
    assert lines[-1]["training"] == 0  # every member stopped
    assert len(list((two_processes / "stopping" / "parts").iterdir())) == 1  # one run folder, not one per rank


def test_two_processes_train_a_part_segmenter_with_only_rank_0_writing(two_processes):
    run = the_run(two_processes / "segmenter", "parts-segmenter")
    steps = [line["step"] for line in read_metrics(run / "metrics.jsonl") if "loss" in line]
    assert steps == [1, 2, 3, 4]  # 13 training images, global batch 4: the last batch filled up from the epoch start
    assert (run / "checkpoints" / "part_segmenter.safetensors").is_file()
    assert len(list((two_processes / "segmenter").iterdir())) == 1


@pytest.mark.parametrize("trainer, stage", [("interpreter", "parts"), ("branch", "part_branch")])
def test_out_is_a_copy_of_the_runs_bundle(trainer, stage, two_processes):
    bundles = list((the_run(two_processes / trainer, stage) / "checkpoints").glob("*.safetensors"))
    bundle = next(path for path in bundles if path.name != "state.safetensors")
    assert (two_processes / f"{trainer}.safetensors").read_bytes() == bundle.read_bytes()


def test_a_global_batch_too_small_for_batchnorm_on_each_rank_is_one_sentence(data, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(distributed, "size", lambda: 2)
    code = main(["parts", "train", "--annotations", data["annotations"], "--generator", data["generator"],
                 "--out", str(tmp_path / "interpreter.safetensors"), "--batch", "2", "--runs", str(tmp_path / "runs"),
                 "--device", "cpu"])
    assert code == 2
    assert capsys.readouterr().err.strip() == ("Error: --batch 2 is the global batch, split among the 2 processes, "
                                               "and BatchNorm needs two pixels on each: give at least 4.")
    assert not (tmp_path / "runs").exists()
