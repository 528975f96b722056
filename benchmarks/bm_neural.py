"""The neural preview's latency: a camera in, StyleGAN-R's pixels out.

    python benchmarks/bm_neural.py [--neural-model PATH] [--repeat 50] [--device cpu|cuda|auto]

Cases:
- worker round trip: a real ``python -m ganverse3d.worker`` subprocess, as the Blender add-on drives it: one
  ``reconstruct`` of docs/example_car.png, one ``neural_render`` to warm up (model load, the scene encoded once),
  then ``--repeat`` requests, each from a new camera (a turntable step); timed from writing the request line to
  the decoded pixels of the PNG it wrote (what the add-on loads into its image);
- API render: ``NeuralScene.render`` alone in this process, the same cameras (no JSON, no PNG, no process hop).
Reported: p50 and p95 in milliseconds, and for the API render the memory the scene took (host peak RSS; on CUDA
peak GPU memory). Target (issue 19): the round trip ≤ 33 ms p50 (30 previews a second).
The model is the shipped StyleGAN-R (assets kind ``neural``) or ``--neural-model``. Prints a table and writes
benchmarks/results/bm_neural.json.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import (add_device_option, case_result, machine, memory_baseline, memory_cells, memory_header,
                    resolve_device, write_results)

REPO = Path(__file__).resolve().parents[1]
PHOTO = REPO / "docs" / "example_car.png"
TARGET_P50_MS = 33.0


def percentiles(seconds: list[float]) -> dict:
    """p50 and p95 of ``seconds`` in milliseconds (p95 by the inclusive method, exact for small samples)."""
    milliseconds = sorted(1000 * value for value in seconds)
    p95 = statistics.quantiles(milliseconds, n=20, method="inclusive")[-1] if len(milliseconds) > 1 else milliseconds[0]
    return {"p50_ms": statistics.median(milliseconds), "p95_ms": p95, "n": len(milliseconds)}


def cameras(repeat: int) -> list[dict]:
    """A turntable at 15 degrees elevation, once round in ``repeat`` steps, so no two requests repeat a camera."""
    return [{"azimuth": 360.0 * (index + 0.5) / repeat, "elevation": 15.0, "distance": 3.8} for index in range(repeat)]


class Worker:
    """The worker subprocess; ``ask`` sends one request and returns its final reply."""

    def __init__(self, device: str):
        self.process = subprocess.Popen([sys.executable, "-m", "ganverse3d.worker", "--device", device],
                                        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                        text=True, bufsize=1)
        self.next_id = 1

    def ask(self, op: str, **arguments) -> dict:
        self.process.stdin.write(json.dumps({"protocol": 2, "id": self.next_id, "op": op, **arguments}) + "\n")
        self.process.stdin.flush()
        self.next_id += 1
        while True:
            line = self.process.stdout.readline()
            if not line:
                sys.exit(f"The worker exited during {op} (exit code {self.process.wait()}).")
            reply = json.loads(line)
            if reply["type"] == "result":
                return reply
            if reply["type"] == "error":
                sys.exit(f"The worker refused {op}: {reply['message']}")

    def close(self) -> None:
        self.process.stdin.close()
        self.process.wait(timeout=30)


def worker_round_trip(neural_model: str | None, repeat: int, device: str, folder: Path) -> list[float]:
    from PIL import Image

    worker = Worker(device)
    try:
        made = worker.ask("reconstruct", photo=str(PHOTO), out_dir=str(folder / "car"))
        request = {"reconstruction": made["reconstruction"], "neural_model": neural_model,
                   "out_dir": str(folder / "preview")}
        worker.ask("neural_render", camera={"azimuth": 0.0, "elevation": 15.0, "distance": 3.8}, **request)
        times = []
        for camera in cameras(repeat):
            start = time.perf_counter()
            reply = worker.ask("neural_render", camera=camera, **request)
            with Image.open(reply["image"]) as image:
                image.load()
            times.append(time.perf_counter() - start)
        return times
    finally:
        worker.close()


def api_render(neural_model: str | None, repeat: int, device: str) -> tuple[list[float], int, dict]:
    """The render times (seconds), the model's resolution and the memory the scene took: host peak RSS above the
    process's before it, and on CUDA the peak GPU memory allocated (common.case_result)."""
    from ganverse3d.api import neural_scene, reconstruct
    from ganverse3d.geometry import Camera

    baseline = memory_baseline(device)
    scene = neural_scene(reconstruct(PHOTO, device=device), neural_model=neural_model, device=device)
    scene.render(Camera.create(0.0, 15.0, 3.8, 30.0))
    times = []
    for camera in cameras(repeat):
        orbit = Camera.create(camera["azimuth"], camera["elevation"], camera["distance"], 30.0)
        start = time.perf_counter()
        scene.render(orbit)  # returns a CPU tensor: on CUDA the copy waits for the device
        times.append(time.perf_counter() - start)
    memory = {name: value for name, value in case_result("", times, baseline, device).items() if "mib" in name}
    return times, scene.model.resolution, memory


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--neural-model", default=None, help="StyleGAN-R bundle [default: the shipped one].")
    parser.add_argument("--repeat", type=int, default=50)
    add_device_option(parser)
    args = parser.parse_args()
    device = resolve_device(args.device)
    from ganverse3d.assets import lookup

    if args.neural_model is None and (lookup("neural") is None or not lookup("neural").path.is_file()):
        sys.exit("No StyleGAN-R model is shipped yet; give one with --neural-model PATH.")
    if args.neural_model is not None and not os.path.isfile(args.neural_model):
        sys.exit(f"--neural-model {args.neural_model} does not exist.")
    with tempfile.TemporaryDirectory() as folder:
        round_trip = worker_round_trip(args.neural_model, args.repeat, device, Path(folder))
    render, resolution, memory = api_render(args.neural_model, args.repeat, device)
    results = [{"case": "worker round trip (camera -> PNG pixels)", **percentiles(round_trip)},
               {"case": "API NeuralScene.render", **percentiles(render), **memory}]
    description = machine(device)
    model = args.neural_model or "shipped"
    print(f"bm_neural — {device} ({description}); model {model}, {resolution} px")
    print(f"{'case':<42} {'p50 ms':>8} {'p95 ms':>8} {memory_header(device)}")
    for row in results:  # the round trip's memory is the worker process's own, not measured here
        cells = memory_cells(row) if "peak_extra_mib" in row else ""
        print(f"{row['case']:<42} {row['p50_ms']:>8.1f} {row['p95_ms']:>8.1f} {cells}")
    verdict = "meets" if results[0]["p50_ms"] <= TARGET_P50_MS else "misses"
    print(f"the round trip {verdict} the target of {TARGET_P50_MS:g} ms p50")
    write_results("bm_neural", {"machine": description, "device": device, "model": model, "resolution": resolution,
                                "repeat": args.repeat, "target_p50_ms": TARGET_P50_MS, "results": results})


if __name__ == "__main__":
    main()
