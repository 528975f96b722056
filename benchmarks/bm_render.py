"""Renderer speed and memory: batch 16, 128 x 128, the template sphere (1280 faces), a 256^2 texture.

    python benchmarks/bm_render.py [--repeat 10] [--device cpu|cuda|auto] [--compile]
                                   [--backend torch nvdiffrast kaolin]

``--compile`` runs ``render_mesh`` through ``torch.compile`` (the first, compiling call is the warm-up).
``--backend`` names the hard rasterisers to time, one set of cases each (default: torch, ours); nvdiffrast and
kaolin need CUDA and their packages. With any other than torch alone, each case's name ends in its backend.
On CUDA the table adds the peak GPU memory allocated by a case (torch.cuda.max_memory_allocated).

Each case runs in a fresh subprocess so its peak resident memory (ru_maxrss, minus the process's size
after imports and set-up) is its own. Prints a table and writes benchmarks/results/bm_render.json.
Reference on the same 2-core machine (issue 3): pytorch3d's CPU rasterizer takes 8.2 s for the textured hard
rasterisation alone and 34 s for its soft silhouette at this size.
"""

from __future__ import annotations

import argparse
import json
import sys

from common import (add_device_option, case_result, machine, memory_baseline, memory_cells, memory_header,
                    resolve_device, run_case_in_subprocess, timed, write_results)
from ganverse3d.render.backends import BACKENDS

CASES = {
    "forward: textured image (no soft mask)": dict(soft=False, backward=False),
    "forward: textured image + soft mask": dict(soft=True, backward=False),
    "forward + backward: textured image + soft mask": dict(soft=True, backward=True),
}


def run_case(name: str, repeat: int, device: str, compiled: bool, backend: str) -> dict:
    import torch

    from ganverse3d.geometry import Camera, template_sphere
    from ganverse3d.render import render_mesh

    case = CASES[name]
    batch, size = 16, 128
    mesh = template_sphere(device=device)
    generator = torch.Generator().manual_seed(0)
    offsets = 0.05 * torch.randn(batch, mesh.num_verts, 3, generator=generator)
    base_verts = (0.75 * mesh.verts.cpu() + offsets).to(device)
    texture = torch.rand(batch, 3, 256, 256, generator=generator).to(device)
    cameras = Camera.create(torch.linspace(0, 330, batch), 15.0, 2.5, 40.0, device=device)
    render = torch.compile(render_mesh) if compiled else render_mesh
    baseline_kib = memory_baseline(device)

    def step():
        verts = base_verts.clone().requires_grad_(case["backward"])
        tex = texture.clone().requires_grad_(case["backward"])
        with torch.set_grad_enabled(case["backward"]):
            out = render(verts, mesh.faces, mesh.face_uvs, tex, cameras, size, soft=case["soft"], backend=backend)
            if case["backward"]:
                (out.image.mean() + out.soft_mask.mean()).backward()

    return case_result(name, timed(step, repeat, device), baseline_kib, device)


def check_backend_runs(backend: str, device: str) -> None:
    """Exit with the library's sentence when ``backend`` cannot run here (package missing, not CUDA)."""
    import torch

    from ganverse3d.errors import InputError
    from ganverse3d.render import rasterize

    triangle = torch.tensor([[[[-0.5, -0.5], [0.5, -0.5], [0.0, 0.5]]]], device=device)
    try:
        rasterize(triangle, torch.full((1, 1, 3), 2.0, device=device), (8, 8), backend=backend)
    except InputError as error:
        sys.exit(f"--backend {backend}: {error}")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=10)
    add_device_option(parser)
    parser.add_argument("--compile", action="store_true", help="Run the renderer through torch.compile.")
    parser.add_argument("--backend", nargs="+", choices=BACKENDS, default=["torch"],
                        help="The hard rasterisers to time, one set of cases each [default: torch].")
    parser.add_argument("--case", help=argparse.SUPPRESS)
    args = parser.parse_args()
    device = resolve_device(args.device)
    if args.case:
        print(json.dumps(run_case(args.case, args.repeat, device, args.compile, args.backend[0])))
        return
    for backend in args.backend:
        check_backend_runs(backend, device)
    compile_flag = ["--compile"] if args.compile else []
    results = []
    for backend in args.backend:
        for name in CASES:
            row = run_case_in_subprocess(__file__, name, "--repeat", str(args.repeat), "--device", device,
                                         "--backend", backend, *compile_flag)
            if args.backend != ["torch"]:
                row["case"] = f"{name} [{backend}]"
            results.append(row)
    case_width = max(len(row["case"]) for row in results + [{"case": "x" * 50}])
    description = machine(device)
    note = ", torch.compile" if args.compile else ""
    print(f"bm_render — batch 16, 128x128, template sphere (1280 faces), 256^2 texture, {device}{note} "
          f"({description})")
    print(f"{'case':<{case_width}} {'median s':>9} {'min s':>8} {memory_header(device)}")
    for row in results:
        print(f"{row['case']:<{case_width}} {row['median_s']:>9.3f} {row['min_s']:>8.3f} {memory_cells(row)}")
    write_results("bm_render", {"machine": description, "device": device, "compile": args.compile,
                                "results": results})


if __name__ == "__main__":
    main()
