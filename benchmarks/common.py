"""What every benchmark shares: timing, a description of the machine, and the results file."""

from __future__ import annotations

import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch


def timed(step, repeat: int) -> list[float]:
    """Seconds of each of ``repeat`` calls of ``step`` after one warm-up call."""
    step()
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    return times


def case_result(name: str, times: list[float], baseline_kib: int) -> dict:
    """One case's row: median and fastest of ``times`` (seconds) and the process's peak resident memory above
    ``baseline_kib`` (``ru_maxrss`` read after set-up), in MiB."""
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {"case": name, "median_s": statistics.median(times), "min_s": min(times),
            "peak_extra_mib": (peak_kib - baseline_kib) / 1024}


def machine() -> str:
    """CPU, threads, torch version and the load average (other work on a shared machine slows every case)."""
    return (f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, {torch.get_num_threads()} threads, "
            f"torch {torch.__version__}, load average {os.getloadavg()[0]:.1f}")


def write_results(name: str, payload: dict) -> Path:
    """Write ``benchmarks/results/<name>.json``."""
    out = Path(__file__).parent / "results" / f"{name}.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(payload, indent=2))
    return out


def run_case_in_subprocess(script: str, name: str, *arguments: str) -> dict:
    """Run ``python SCRIPT --case NAME ARGUMENTS`` and return the JSON object on its last stdout line: each case
    in a fresh process, so that its peak resident memory is its own."""
    output = subprocess.run([sys.executable, script, "--case", name, *arguments], check=True, capture_output=True,
                            text=True).stdout
    return json.loads(output.strip().splitlines()[-1])
