"""The run kit (ganverse3d.runs) with a toy trainer, the file helpers it relies on, the trainers' config checks,
and a real kill: world render and gan train killed with SIGKILL, resumed, and read by the next stage."""

from __future__ import annotations

import json
import math
import os
import random
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from ganverse3d import runs
from ganverse3d.bundle import save_state
from ganverse3d.cli import main
from ganverse3d.errors import InputError
from ganverse3d.files import check_dataset_complete, image_paths, read_image, remove_temp_files
from ganverse3d.inverse.train import TrainConfig as InverseConfig
from ganverse3d.runs import RunTrainer
from ganverse3d.stylegan2.train import TrainConfig as GanConfig


@dataclass
class ToyConfig:
    data: str                  # must exist (the toy's "dataset")
    steps: int = 6
    lr: float = 0.05
    noise: float = 0.5         # resumable: it does not shape the saved state
    seed: int = 0
    log_every: int = 1
    checkpoint_every: int = 2

    def check(self) -> None:
        runs.check_fields(self)
        runs.check_at_least(self, 1, "steps", "log_every", "checkpoint_every")
        runs.check_positive(self, "lr")


class ToyTrainer(RunTrainer):
    """A linear fit that uses every kind of checkpointed state: a module, an optimiser, a torch.Generator, a
    random.Random, a tensor updated in place, and torch's global RNG."""

    config_class = ToyConfig
    stage = "toy"
    length_field = "steps"
    resumable = ("noise",)
    crash_at_step: int | None = None  # train_step raises KeyboardInterrupt here (a kill that loses the step)

    def __init__(self, config: ToyConfig, run_dir, device, progress: bool = True):
        super().__init__(config, run_dir, device, progress=False)
        if not Path(config.data).is_dir():
            raise InputError(f"The toy dataset {config.data} does not exist.")
        self.rng_inputs = runs.seeded_rng(config.seed)
        self.rng_noise = random.Random(config.seed)
        self.net = torch.nn.Linear(3, 1)
        self.optimizer = torch.optim.Adam(self.net.parameters(), lr=config.lr)
        self.loss_average = torch.zeros([])

    @classmethod
    def run_name(cls, config: ToyConfig) -> str:
        return "fit"

    @property
    def total_steps(self) -> int:
        return self.config.steps

    @property
    def output_path(self) -> Path:
        return self.run_dir / "checkpoints" / "net.safetensors"

    def checkpointed(self) -> dict:
        return {"net": self.net, "optimizer": self.optimizer, "rng_inputs": self.rng_inputs,
                "rng_noise": self.rng_noise, "loss_average": self.loss_average}

    def write_outputs(self) -> None:
        save_state(self.output_path, self.net.state_dict(), {"step": self.step})

    def train_step(self) -> dict:
        if self.step == type(self).crash_at_step:
            raise KeyboardInterrupt
        inputs = torch.randn(4, 3, generator=self.rng_inputs)
        jitter = torch.randn(4, 1) * 0.1  # from the global RNG
        targets = inputs.sum(1, keepdim=True) + self.rng_noise.gauss(0, self.config.noise) + jitter
        loss = F.mse_loss(self.net(inputs), targets)
        self.optimizer.zero_grad()
        loss.backward()
        self.optimizer.step()
        self.loss_average.copy_(0.9 * self.loss_average + 0.1 * loss.detach())
        self.step += 1
        return {"loss": loss.item()}


@pytest.fixture()
def data(tmp_path) -> Path:
    (tmp_path / "data").mkdir()
    return tmp_path / "data"


def crashed_run(data, root, monkeypatch, crash_at_step: int = 5, **settings) -> Path:
    """A toy run killed before training step ``crash_at_step`` (its last checkpoint: the even step before)."""
    monkeypatch.setattr(ToyTrainer, "crash_at_step", crash_at_step)
    with pytest.raises(KeyboardInterrupt):
        ToyTrainer.train(ToyConfig(data=str(data), **settings), runs_root=root, device="cpu")
    monkeypatch.setattr(ToyTrainer, "crash_at_step", None)
    (run_dir,) = (Path(root) / "toy").iterdir()
    return run_dir


def steps_of(run_dir: Path) -> list[int]:
    return [json.loads(line)["step"] for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def weights(path: Path) -> dict:
    from safetensors.torch import load_file
    return load_file(str(path))


# --- the run folder -----------------------------------------------------------------------------------------


def test_runs_are_numbered_and_a_new_run_never_touches_an_old_one(data, tmp_path):
    first = ToyTrainer.train(ToyConfig(data=str(data), steps=2), runs_root=tmp_path / "runs", device="cpu")
    before = {path: path.read_bytes() for path in first.parent.parent.rglob("*") if path.is_file()}
    second = ToyTrainer.train(ToyConfig(data=str(data), steps=4), runs_root=tmp_path / "runs", device="cpu")
    assert [p.name for p in sorted((tmp_path / "runs" / "toy").iterdir())] == ["00000-fit", "00001-fit"]
    assert second.parent.parent.name == "00001-fit"
    assert {path: path.read_bytes() for path in before} == before
    assert json.loads((second.parent.parent / "config.json").read_text())["steps"] == 4


def test_a_failed_start_leaves_no_run_folder(tmp_path, data):
    with pytest.raises(InputError, match="does not exist"):      # the trainer cannot read its input
        ToyTrainer.train(ToyConfig(data=str(tmp_path / "missing")), runs_root=tmp_path / "runs", device="cpu")
    with pytest.raises(InputError) as error:                     # the config does not check
        ToyTrainer.train(ToyConfig(data=str(data), lr=math.nan), runs_root=tmp_path / "runs", device="cpu")
    assert error.value.settings == ["lr"]
    assert not (tmp_path / "runs").exists()


# --- resuming -----------------------------------------------------------------------------------------------


def test_a_killed_run_resumes_to_the_same_state_and_logs_each_step_once(data, tmp_path, monkeypatch):
    straight = ToyTrainer.train(ToyConfig(data=str(data)), runs_root=tmp_path / "a", device="cpu")
    run_dir = crashed_run(data, tmp_path / "b", monkeypatch)
    assert steps_of(run_dir) == [1, 2, 3, 4, 5]  # step 5 was logged, then lost with the kill
    resumed = ToyTrainer.train(resume=run_dir, device="cpu")
    for name in ("net.safetensors", "state.safetensors"):  # the state: optimiser, RNGs, the in-place tensor
        a, b = weights(straight.parent / name), weights(resumed.parent / name)
        assert a.keys() == b.keys() and all(torch.equal(a[key], b[key]) for key in a), name
    assert steps_of(run_dir) == [1, 2, 3, 4, 5, 6]
    assert (straight.parent.parent / "metrics.jsonl").read_text().count("loss") == 6


def test_a_torn_last_metrics_line_is_dropped_with_a_warning(data, tmp_path, monkeypatch, capsys):
    run_dir = crashed_run(data, tmp_path, monkeypatch)
    with open(run_dir / "metrics.jsonl", "a") as handle:
        handle.write('{"step": 5, "lo')  # the process died while appending this line
    ToyTrainer.train(resume=run_dir, device="cpu")
    assert "torn last line" in capsys.readouterr().err
    assert steps_of(run_dir) == [1, 2, 3, 4, 5, 6]


def test_a_damaged_metrics_line_before_the_last_is_refused(data, tmp_path, monkeypatch):
    run_dir = crashed_run(data, tmp_path, monkeypatch)
    lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    (run_dir / "metrics.jsonl").write_text("\n".join([lines[0], "garbage", *lines[1:]]) + "\n")
    with pytest.raises(InputError, match="damaged at line 2"):
        ToyTrainer.train(resume=run_dir, device="cpu")


@pytest.mark.parametrize("text, words", [
    ("{", "not readable JSON"),
    ("[1, 2]", "holds a JSON list"),
    ('{"data": "x", "colour": 1}', "has an unknown setting colour."),
    ('{"data": "x", "size": 1, "colour": 1}', "has unknown settings colour, size."),
    ('{"data": "x", "steps": "many"}', "sets steps to 'many'"),
    ('{"data": "x", "steps": true}', "sets steps to True"),
    ('{"steps": 3}', "lacks data"),
    ('{"data": "x", "lr": NaN}', "finite"),
])
def test_a_damaged_config_json_is_one_sentence_and_changes_nothing(tmp_path, text, words):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "config.json").write_text(text)
    with pytest.raises(InputError) as error:
        ToyTrainer.train(resume=tmp_path / "run", device="cpu")
    assert words in str(error.value) and "\n" not in str(error.value)
    assert [p.name for p in (tmp_path / "run").iterdir()] == ["config.json"]
    assert (tmp_path / "run" / "config.json").read_text() == text


def test_a_resume_may_change_the_length_and_the_resumable_fields_only(data, tmp_path, monkeypatch):
    run_dir = crashed_run(data, tmp_path, monkeypatch)
    config_before = (run_dir / "config.json").read_text()
    with pytest.raises(InputError) as error:
        ToyTrainer.train(resume=run_dir, device="cpu", lr=0.5)
    assert error.value.settings[0] == "lr"
    assert (run_dir / "config.json").read_text() == config_before

    ToyTrainer.train(resume=run_dir, device="cpu", steps=8, noise=0.25, lr=0.05)  # lr as it was: no change
    config = json.loads((run_dir / "config.json").read_text())
    assert (config["steps"], config["noise"]) == (8, 0.25)
    lines = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert {"step": 4, "noise": 0.25} in lines            # recorded where training went on
    assert not any("steps" in line for line in lines)     # the length shows in config.json only
    assert [line["step"] for line in lines if "loss" in line] == list(range(1, 9))


def test_a_resume_never_shortens_a_run_below_its_checkpoint(data, tmp_path, monkeypatch):
    run_dir = crashed_run(data, tmp_path, monkeypatch)  # its checkpoint: step 4
    before = {path: path.read_bytes() for path in run_dir.rglob("*") if path.is_file()}
    with pytest.raises(InputError) as error:
        ToyTrainer.train(resume=run_dir, device="cpu", steps=3)
    assert error.value.settings == ["steps", "steps"] and "trained 4 steps" in str(error.value)
    assert "\n" not in str(error.value)
    assert {path: path.read_bytes() for path in run_dir.rglob("*") if path.is_file()} == before  # config.json too

    ToyTrainer.train(resume=run_dir, device="cpu", steps=4)  # the checkpoint's own step: the run ends there
    assert json.loads((run_dir / "config.json").read_text())["steps"] == 4
    assert steps_of(run_dir) == [1, 2, 3, 4]


def test_resuming_deletes_orphan_temporaries_and_nothing_else(data, tmp_path, monkeypatch):
    run_dir = crashed_run(data, tmp_path, monkeypatch)
    orphans = [run_dir / "checkpoints" / ".state.safetensors.k2j3h_g5.safetensors",
               run_dir / ".metrics.jsonl.abcdefgh.jsonl"]
    for orphan in orphans:
        orphan.write_bytes(b"")
    (run_dir / ".notes").write_text("mine")
    ToyTrainer.train(resume=run_dir, device="cpu")
    assert not any(orphan.exists() for orphan in orphans)
    assert (run_dir / ".notes").read_text() == "mine"


# --- files ----------------------------------------------------------------------------------------------------


def test_remove_temp_files_finds_what_a_killed_atomic_write_leaves(tmp_path):
    killer = ("import os, signal, sys\nfrom ganverse3d.files import atomic_path\n"
              "with atomic_path(sys.argv[1]) as tmp:\n    tmp.write_bytes(b'half')\n"
              "    os.kill(os.getpid(), signal.SIGKILL)\n")
    subprocess.run([sys.executable, "-c", killer, str(tmp_path / "images" / "000045.png")], check=False)
    (orphan,) = (tmp_path / "images").iterdir()
    assert orphan.name.startswith(".000045.png.") and orphan.suffix == ".png"
    (tmp_path / "images" / ".hidden-but-mine.txt").write_text("keep")
    assert remove_temp_files(tmp_path) == [orphan]
    assert [p.name for p in (tmp_path / "images").iterdir()] == [".hidden-but-mine.txt"]


def test_image_paths_never_read_hidden_files_and_refuse_incomplete_datasets(tmp_path):
    (tmp_path / "images").mkdir()
    Image.new("RGB", (4, 4)).save(tmp_path / "images" / "000000.png")
    (tmp_path / "images" / ".000001.png.abcdefgh.png").write_bytes(b"")
    assert image_paths(tmp_path) == [tmp_path / "images" / "000000.png"]
    (tmp_path / "manifest.json").write_text('{"complete": false}')
    with pytest.raises(InputError, match="incomplete dataset"):
        image_paths(tmp_path)
    (tmp_path / "manifest.json").write_text('{"complete": true}')
    check_dataset_complete(tmp_path)


def test_read_image_names_a_missing_or_damaged_file(tmp_path):
    with pytest.raises(InputError, match="does not exist"):
        read_image(tmp_path / "none.png")
    (tmp_path / "bad.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    with pytest.raises(InputError, match=r"bad\.png.*damaged"):
        read_image(tmp_path / "bad.png")
    Image.new("L", (6, 3), 200).save(tmp_path / "grey.png")
    assert read_image(tmp_path / "grey.png", size=(4, 4)).shape == (4, 4, 3)


# --- the trainers' configs ------------------------------------------------------------------------------------


@pytest.mark.parametrize("config_class, field, value", [
    (GanConfig, "kimg", math.nan), (GanConfig, "kimg", math.inf), (GanConfig, "kimg", 0.0), (GanConfig, "kimg", -1.0),
    (GanConfig, "checkpoint_every", 0), (GanConfig, "sample_every", 0), (GanConfig, "log_every", 0),
    (GanConfig, "metric_every", -1), (GanConfig, "batch", 0), (GanConfig, "resolution", 12),
    (GanConfig, "precision", "float16"), (GanConfig, "g_lr", math.nan), (GanConfig, "batch", 2.5),
    (InverseConfig, "iterations", 0), (InverseConfig, "batch", 0), (InverseConfig, "eval_every", 0),
    (InverseConfig, "checkpoint_every", 0), (InverseConfig, "lr", math.inf), (InverseConfig, "holdout_fraction", 1.0),
])
def test_a_config_that_cannot_work_is_one_sentence_naming_the_setting(config_class, field, value):
    with pytest.raises(InputError) as error:
        config_class(data="d", **{field: value}).check()
    assert error.value.settings == [field] and "\n" not in str(error.value)
    config_class(data="d").check()  # the defaults work


# --- a real kill ----------------------------------------------------------------------------------------------


def _start(arguments: list[str], cwd: Path) -> subprocess.Popen:
    environment = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, "-m", "ganverse3d.cli", *arguments], cwd=cwd, env=environment,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _kill_when(process: subprocess.Popen, ready, timeout: float = 60.0) -> None:
    """SIGKILL ``process`` as soon as ``ready()`` holds (the test needs it killed mid-run, not finished)."""
    deadline = time.monotonic() + timeout
    while not ready():
        assert process.poll() is None, "the command ended before it could be killed"
        assert time.monotonic() < deadline, "the command made no progress"
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)
    assert process.wait() == -signal.SIGKILL, "the command finished before the kill landed"


def _hidden_files(folder: Path) -> list[Path]:
    return [path for path in folder.rglob(".*") if path.is_file()]


def test_killed_world_render_and_gan_train_resume_and_the_next_stage_reads_them(tmp_path, capsys):
    world = tmp_path / "world"
    # Six batches of 64: the kill, at the first image, lands seconds before the end even on a loaded machine.
    render = ["world", "render", "--n", "384", "--resolution", "16", "--seed", "3", "--out", str(world)]
    process = _start(render, tmp_path)
    _kill_when(process, lambda: (world / "images").is_dir() and any((world / "images").iterdir()))
    # What a kill in the middle of a PNG write leaves, in case this kill fell elsewhere.
    (world / "images" / ".000045.png.k2j3h4g5.png").write_bytes(b"")

    train = ["gan", "train", "--data", str(world), "--resolution", "16", "--batch", "4", "--kimg", "0.2",
             "--checkpoint-every", "1", "--sample-every", "5", "--runs", str(tmp_path / "runs"), "--device", "cpu"]
    assert main(train) == 2  # the dataset says it is incomplete
    assert "incomplete dataset" in capsys.readouterr().err
    assert not (tmp_path / "runs").exists()

    assert main(render) == 0
    assert _hidden_files(world) == []
    assert len(image_paths(world)) == 384

    process = _start(train, tmp_path)
    state = tmp_path / "runs" / "gan" / "00000-world-r16" / "checkpoints" / "state.safetensors"
    _kill_when(process, state.is_file)
    run_dir = state.parent.parent
    (state.parent / ".state.safetensors.abcd_123.safetensors").write_bytes(b"")  # as a kill mid-save leaves
    assert main(["gan", "train", "--resume", str(run_dir), "--device", "cpu"]) == 0
    assert _hidden_files(run_dir) == []
    steps = [json.loads(line)["step"] for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert steps == sorted(set(steps)) and steps[-1] == 50

    sheet = tmp_path / "layers.png"
    assert main(["gan", "layers", "--generator", str(run_dir / "checkpoints" / "G_ema.safetensors"), "-o", str(sheet),
                 "--samples", "1", "--device", "cpu"]) == 0
    assert np.asarray(Image.open(sheet)).std() > 0
