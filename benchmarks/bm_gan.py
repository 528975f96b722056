"""StyleGAN2 at the default size (64 px, channel_base 2048, channel_max 64, batch 32): generation throughput,
training step time (G and D forward + backward, no regularisers, then with lazy R1), and peak memory.

    python benchmarks/bm_gan.py [--repeat 3]

Each case runs in a fresh subprocess so its peak resident memory (ru_maxrss above the size after set-up) is
its own. Reference (issue 4, this 2-core machine, a reference implementation, no regularisers): 0.8 s/step.
Prints a table and writes benchmarks/results/bm_gan.json.
"""

from __future__ import annotations

import argparse
import json
import resource

from common import case_result, machine, run_case_in_subprocess, timed, write_results

CASES = ("generate (eval, batch 32, no grad)", "train step: G + D, no regularisers", "train step: G + D + R1")


def run_case(name: str, repeat: int) -> dict:
    import torch
    import torch.nn.functional as F

    from ganverse3d.stylegan2 import Discriminator, Generator

    torch.manual_seed(0)
    G = Generator(z_dim=128, w_dim=128, img_resolution=64, img_channels=3, channel_base=2048, channel_max=64)
    D = Discriminator(img_resolution=64, img_channels=3, channel_base=2048, channel_max=64)
    z, reals = torch.randn(32, 128), torch.rand(32, 3, 64, 64) * 2 - 1
    baseline_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss

    def generate():
        with torch.no_grad():
            G.eval()(z)

    def train_step(r1: bool):
        G.train(), D.train()
        F.softplus(-D(G(z, noise_mode="random"))).mean().backward()
        with torch.no_grad():
            fakes = G(z, noise_mode="random")
        real = reals.clone().requires_grad_(r1)
        real_logits = D(real)
        loss = F.softplus(D(fakes)).mean() + F.softplus(-real_logits).mean()
        if r1:
            (grad,) = torch.autograd.grad(real_logits.sum(), real, create_graph=True)
            loss = loss + grad.square().sum((1, 2, 3)).mean()
        loss.backward()

    step = {CASES[0]: generate, CASES[1]: lambda: train_step(False), CASES[2]: lambda: train_step(True)}[name]
    result = case_result(name, timed(step, repeat), baseline_kib)
    return {**result, "images_per_s": 32 / result["median_s"]}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--case", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.case:
        print(json.dumps(run_case(args.case, args.repeat)))
        return
    results = [run_case_in_subprocess(__file__, name, "--repeat", str(args.repeat)) for name in CASES]
    description = machine()
    print(f"bm_gan — 64 px, channel_base 2048, channel_max 64, batch 32, cpu ({description})")
    print(f"{'case':<40} {'median s':>9} {'min s':>8} {'img/s':>7} {'peak MiB':>9}")
    for row in results:
        print(f"{row['case']:<40} {row['median_s']:>9.3f} {row['min_s']:>8.3f} {row['images_per_s']:>7.1f} "
              f"{row['peak_extra_mib']:>9.0f}")
    write_results("bm_gan", {"machine": description, "results": results})


if __name__ == "__main__":
    main()
