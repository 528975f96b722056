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


def add_device_option(parser) -> None:
    """The ``--device`` option of a benchmark: cpu (the default, as the recorded numbers), cuda, or auto."""
    parser.add_argument("--device", choices=("cpu", "cuda", "auto"), default="cpu",
                        help="Where the cases run; auto = cuda when available [default: cpu].")


def resolve_device(device: str) -> str:
    """``--device`` as the cases get it: auto becomes cuda or cpu, so every case runs on the same device."""
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        sys.exit("--device cuda: this PyTorch sees no CUDA device.")
    return device


def _wait(device: str) -> None:
    """Wait for the device's queued work: CUDA runs asynchronously, so a clock read before this misses it."""
    if device == "cuda":
        torch.cuda.synchronize()


def timed(step, repeat: int, device: str = "cpu") -> list[float]:
    """Seconds of each of ``repeat`` calls of ``step`` after one warm-up call, each until ``device`` is done."""
    step()
    _wait(device)
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        step()
        _wait(device)
        times.append(time.perf_counter() - start)
    return times


def memory_baseline(device: str = "cpu") -> int:
    """The process's peak resident memory so far (``ru_maxrss``, KiB), read after a case's set-up; on CUDA the
    peak of allocated GPU memory starts again here too, so that :func:`case_result` reports the case's own."""
    if device == "cuda":
        _wait(device)
        torch.cuda.reset_peak_memory_stats()
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def case_result(name: str, times: list[float], baseline_kib: int, device: str = "cpu") -> dict:
    """One case's row: median and fastest of ``times`` (seconds), the process's peak resident memory above
    ``baseline_kib`` (:func:`memory_baseline`), in MiB, and on CUDA the peak GPU memory allocated since then."""
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    row = {"case": name, "median_s": statistics.median(times), "min_s": min(times),
           "peak_extra_mib": (peak_kib - baseline_kib) / 1024}
    if device == "cuda":
        row["gpu_peak_mib"] = torch.cuda.max_memory_allocated() / 2**20
    return row


def memory_header(device: str) -> str:
    """The memory columns' titles of a table: host peak RSS, and on CUDA peak GPU memory."""
    return f"{'peak MiB':>9}" + (f" {'GPU MiB':>8}" if device == "cuda" else "")


def memory_cells(row: dict) -> str:
    """A row's memory columns (:func:`memory_header`)."""
    return f"{row['peak_extra_mib']:>9.0f}" + (f" {row['gpu_peak_mib']:>8.0f}" if "gpu_peak_mib" in row else "")


def machine(device: str = "cpu") -> str:
    """CPU, threads, torch version and the load average (other work on a shared machine slows every case), and
    the GPU's name when the cases run on CUDA."""
    gpu = f", GPU {torch.cuda.get_device_name()}" if device == "cuda" else ""
    return (f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, {torch.get_num_threads()} threads, "
            f"torch {torch.__version__}, load average {os.getloadavg()[0]:.1f}{gpu}")


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
