"""Launching data-parallel runs for the tests: ``torchrun`` (``python -m torch.distributed.run``) of N CPU
processes with gloo on 127.0.0.1 and a free port, each running tests/distributed_worker.py on a spec of runs."""

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import torch

from ganverse3d.bundle import load_state

REPO = Path(__file__).resolve().parents[1]
WORKER = Path(__file__).resolve().parent / "distributed_worker.py"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def torchrun(*args, processes: int = 2) -> subprocess.CompletedProcess:
    """``torchrun --nproc_per_node=processes ARGS`` on 127.0.0.1 and a free port, one thread a process."""
    command = [sys.executable, "-m", "torch.distributed.run", f"--nproc_per_node={processes}",
               "--master_addr=127.0.0.1", f"--master_port={free_port()}", *map(str, args)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run(command, env=env, cwd=REPO, capture_output=True, text=True, timeout=180)


def run_workers(tmp_path: Path, runs: list[dict]) -> subprocess.CompletedProcess:
    spec = tmp_path / f"spec{len(list(tmp_path.glob('spec*.json')))}.json"
    spec.write_text(json.dumps(runs))
    return torchrun(WORKER, spec)


def the_run(runs_root: Path, stage: str) -> Path:
    (run,) = (runs_root / stage).iterdir()
    return run


def state(run: Path) -> dict[str, torch.Tensor]:
    return load_state(run / "checkpoints" / "state.safetensors")[0]
