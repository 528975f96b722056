"""Load weights files in a fresh Python and measure the memory the attempts took: for files whose headers
promise gigabytes, which must be refused before the memory is taken. The pytest process itself cannot tell:
its peak resident size already holds whatever earlier tests used."""

import json
import os
import subprocess
import sys

_CHILD = """
import json, resource, sys
from ganverse3d import assets
from ganverse3d.bundle import load_module
from ganverse3d.errors import InputError
from ganverse3d.stylegan2 import load_generator

LOADERS = {"bundle": load_module, "generator": load_generator}

def peak():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux reports KiB

# Warm up: what a first load imports and builds once is not the files' doing.
load_generator("world64")
load_module(assets.resolve("inverse"))
baseline = peak()
messages = []
for loader, path in json.loads(sys.argv[1]):
    try:
        LOADERS[loader](path)
        messages.append(None)
    except InputError as error:
        messages.append(str(error))
print(json.dumps({"messages": messages, "growth": peak() - baseline}))
"""


def refusals_and_peak_growth(loads: list[tuple[str, str]]) -> tuple[list[str | None], int]:
    """Run each ``(loader, path)`` ("bundle" or "generator") in one fresh process: the InputError message of
    each (None where the file loaded) and how far the peak resident size grew past the warm-up, in bytes."""
    arguments = json.dumps([[loader, str(path)] for loader, path in loads])
    result = subprocess.run([sys.executable, "-c", _CHILD, arguments], capture_output=True, text=True, timeout=300,
                            env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert result.returncode == 0, result.stderr[-2000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    return report["messages"], report["growth"]
