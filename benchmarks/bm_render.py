"""Renderer speed and memory: batch 16, 128 x 128, the template sphere (1280 faces), a 256^2 texture.

    python benchmarks/bm_render.py [--repeat 10] [--device cpu|cuda|auto] [--compile]

``--compile`` runs ``render_mesh`` through ``torch.compile`` (the first, compiling call is the warm-up).
On CUDA the table adds the peak GPU memory allocated by a case (torch.cuda.max_memory_allocated).

Each case runs in a fresh subprocess so its peak resident memory (ru_maxrss, minus the process's size
after imports and set-up) is its own. Prints a table and writes benchmarks/results/bm_render.json.
Reference on the same 2-core machine (issue 3): pytorch3d's CPU rasterizer takes 8.2 s for the textured hard
rasterisation alone and 34 s for its soft silhouette at this size.
"""

from __future__ import annotations

import argparse
import json

from common import (add_device_option, case_result, machine, memory_baseline, memory_cells, memory_header,
                    resolve_device, run_case_in_subprocess, timed, write_results)

CASES = {
    "forward: textured image (no soft mask)": dict(soft=False, backward=False),
    "forward: textured image + soft mask": dict(soft=True, backward=False),
    "forward + backward: textured image + soft mask": dict(soft=True, backward=True),
}


def run_case(name: str, repeat: int, device: str, compiled: bool) -> dict:
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
            out = render(verts, mesh.faces, mesh.face_uvs, tex, cameras, size, soft=case["soft"])
            if case["backward"]:
                (out.image.mean() + out.soft_mask.mean()).backward()

    return case_result(name, timed(step, repeat, device), baseline_kib, device)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=10)
    add_device_option(parser)
    parser.add_argument("--compile", action="store_true", help="Run the renderer through torch.compile.")
    parser.add_argument("--case", help=argparse.SUPPRESS)
    args = parser.parse_args()
    device = resolve_device(args.device)
    if args.case:
        print(json.dumps(run_case(args.case, args.repeat, device, args.compile)))
        return
    compile_flag = ["--compile"] if args.compile else []
    results = [run_case_in_subprocess(__file__, name, "--repeat", str(args.repeat), "--device", device, *compile_flag)
               for name in CASES]
    description = machine(device)
    note = ", torch.compile" if args.compile else ""
    print(f"bm_render — batch 16, 128x128, template sphere (1280 faces), 256^2 texture, {device}{note} "
          f"({description})")
    print(f"{'case':<50} {'median s':>9} {'min s':>8} {memory_header(device)}")
    for row in results:
        print(f"{row['case']:<50} {row['median_s']:>9.3f} {row['min_s']:>8.3f} {memory_cells(row)}")
    write_results("bm_render", {"machine": description, "device": device, "compile": args.compile,
                                "results": results})


if __name__ == "__main__":
    main()
