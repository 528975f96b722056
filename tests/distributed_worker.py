"""What each process of the tests' torchrun launches runs (distributed_helpers.run_workers; not a test module).

``python -m torch.distributed.run --nproc_per_node=N tests/distributed_worker.py SPEC.json`` trains, in order,
the runs SPEC lists: ``{"trainer": <a name in TRAINERS>, "config": {...TrainConfig fields}, "runs_root": ...}``,
each optionally with ``"resume"`` (a run folder), ``"out"`` (copy the bundle there, as `--out` does),
``"kill": [rank, step]`` (that rank SIGKILLs itself when it is about to train past ``step``: a kill -9 of one rank
in the middle of a run) and ``"trace": PATH`` (each rank writes the steps its training steps started at to
``PATH.rank<r>.json``: where each rank's run ended).
"""

import json
import os
import signal
import sys

import torch

from ganverse3d import distributed
from ganverse3d.dataset.train_segmenter import SegmenterTrainer
from ganverse3d.inverse.train import Trainer as InverseTrainer
from ganverse3d.neural.train import Trainer as NeuralTrainer
from ganverse3d.parts.segmenter import PartSegmenterTrainer
from ganverse3d.parts.train import InterpreterTrainer
from ganverse3d.parts.train_branch import BranchTrainer
from ganverse3d.stylegan2.train import Trainer as GANTrainer

TRAINERS = {"gan": GANTrainer, "inverse": InverseTrainer, "segmenter": SegmenterTrainer, "neural": NeuralTrainer,
            "interpreter": InterpreterTrainer, "part-branch": BranchTrainer, "part-segmenter": PartSegmenterTrainer}


def main(spec_path: str) -> None:
    torch.set_num_threads(1)
    for run in json.loads(open(spec_path).read()):
        trainer_class = TRAINERS[run["trainer"]]
        if "kill" in run:
            rank, step = run["kill"]
            train_step = trainer_class.train_step

            def killing_step(trainer, train_step=train_step, rank=rank, step=step):
                if distributed.rank() == rank and trainer.step == step:
                    os.kill(os.getpid(), signal.SIGKILL)
                return train_step(trainer)

            trainer_class.train_step = killing_step
        started = []
        if "trace" in run:
            train_step = trainer_class.train_step

            def tracing_step(trainer, train_step=train_step):
                started.append(trainer.step)
                return train_step(trainer)

            trainer_class.train_step = tracing_step
        config = trainer_class.config_class(**run["config"]) if "config" in run else None
        settings = dict(runs_root=run.get("runs_root", "runs"), resume=run.get("resume"), device="cpu", progress=False)
        if "out" in run:  # the bundle copied to --out as the training commands do (RunTrainer.train_into)
            trainer_class.train_into(run["out"], config, **settings)
        else:
            trainer_class.train(config, **settings)
        if "trace" in run:
            trainer_class.train_step = train_step  # later runs of the same trainer untraced
            with open(f"{run['trace']}.rank{distributed.rank()}.json", "w") as handle:
                json.dump(started, handle)


if __name__ == "__main__":
    main(sys.argv[1])
