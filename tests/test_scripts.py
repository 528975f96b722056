"""The reproduction scripts of the segmenter and the feature net resume a killed training when run again.

The scripts train for up to an hour, so they run here against a stand-in ``ganverse3d`` on PATH that records each
command: a training started with --data makes its run folder as the real trainer names it (ganverse3d.runs), writes
its config.json and dies as if killed; everything else succeeds at once.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

STAND_IN = f"""#!{sys.executable}
import json, os, sys
from pathlib import Path

arguments = sys.argv[1:]
with open(os.environ["GANVERSE3D_LOG"], "a") as log:
    log.write(json.dumps(arguments) + "\\n")
if arguments[:2] in (["segmenter", "train"], ["gan", "feature-net"]) and "--data" in arguments:
    from ganverse3d.dataset.train_segmenter import SegmenterTrainConfig, SegmenterTrainer
    from ganverse3d.files import new_run_dir
    from ganverse3d.world.features import FeatureNetConfig, FeatureNetTrainer
    trainer, config_class = ((SegmenterTrainer, SegmenterTrainConfig) if arguments[0] == "segmenter" else
                             (FeatureNetTrainer, FeatureNetConfig))
    value = lambda flag: arguments[arguments.index(flag) + 1]
    config = config_class(data=value("--data"), resolution=int(value("--resolution")))
    run_dir = new_run_dir(value("--runs"), trainer.stage, trainer.run_name(config))
    (run_dir / "config.json").write_text("{{}}")
    sys.exit(137)  # killed during training
"""

SCRIPTS = {"segmenter": ("make_segmenter.sh", ["segmenter", "train"]),
           "feature_net": ("make_feature_net.sh", ["gan", "feature-net"])}


@pytest.mark.parametrize("stage", list(SCRIPTS))
def test_rerunning_a_killed_script_resumes_its_training_run(stage, tmp_path):
    script, command = SCRIPTS[stage]
    (tmp_path / "bin").mkdir()
    stand_in = tmp_path / "bin" / "ganverse3d"
    stand_in.write_text(STAND_IN)
    stand_in.chmod(0o755)
    log = tmp_path / "commands.jsonl"
    environment = {**os.environ, "PATH": f"{tmp_path / 'bin'}{os.pathsep}{os.environ['PATH']}",
                   "GANVERSE3D_LOG": str(log)}
    work = tmp_path / "work"

    def run_script() -> tuple[int, list[list[str]]]:
        log.write_text("")
        done = subprocess.run(["bash", str(REPO / "scripts" / script), str(work)], cwd=tmp_path, env=environment,
                              capture_output=True, text=True, timeout=300)
        trainings = [line for line in map(json.loads, log.read_text().splitlines()) if line[:2] == command]
        return done.returncode, trainings

    code, trainings = run_script()
    assert code != 0 and len(trainings) == 1 and "--data" in trainings[0]  # killed during its first training
    (run_dir,) = (work / "runs" / stage).iterdir()

    code, trainings = run_script()
    assert code == 0
    assert len(trainings) == 1 and "--resume" in trainings[0], trainings
    assert trainings[0][trainings[0].index("--resume") + 1] == str(run_dir)
    assert list((work / "runs" / stage).iterdir()) == [run_dir]  # no second run
