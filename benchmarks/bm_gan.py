"""StyleGAN2 at the default size (64 px, channel_base 2048, channel_max 64, batch 32): generation throughput,
training step time (G and D forward + backward, no regularisers, then with lazy R1; in float32 and with
``--precision bfloat16``'s autocast; then with ``--view-mixing``'s loss on half a batch of mixes, as
stylegan2/train.py adds it), and peak memory.

    python benchmarks/bm_gan.py [--repeat 3] [--device cpu|cuda|auto]

Each case runs in a fresh subprocess so its peak resident memory (ru_maxrss above the size after set-up) is
its own; on CUDA the table adds the case's peak GPU memory allocated (torch.cuda.max_memory_allocated). Reference (issue 4, this 2-core machine, a reference implementation, no regularisers): 0.8 s/step.
Prints a table and writes benchmarks/results/bm_gan.json.
"""

from __future__ import annotations

import argparse
import json

from common import (add_device_option, case_result, machine, memory_baseline, memory_cells, memory_header,
                    resolve_device, run_case_in_subprocess, timed, write_results)

CASES = ("generate (eval, batch 32, no grad)", "train step: G + D, no regularisers", "train step: G + D + R1",
         "train step: G + D, bfloat16", "train step: G + D + R1, bfloat16", "train step: G + D + view mixing")


def run_case(name: str, repeat: int, device: str) -> dict:
    import torch
    import torch.nn.functional as F

    from ganverse3d.stylegan2 import Discriminator, Generator
    from ganverse3d.world.features import WorldFeatureNet
    from ganverse3d.stylegan2.views import default_view_layers, view_mixing_loss
    from ganverse3d.world import BODY_TYPES

    torch.manual_seed(0)
    G = Generator(z_dim=128, w_dim=128, img_resolution=64, img_channels=3, channel_base=2048,
                  channel_max=64).to(device)
    D = Discriminator(img_resolution=64, img_channels=3, channel_base=2048, channel_max=64).to(device)
    # Untrained: the step costs the same whatever the reader's weights.
    reader = WorldFeatureNet(body_types=list(BODY_TYPES)).eval().requires_grad_(False).to(device)
    z, reals = torch.randn(32, 128).to(device), (torch.rand(32, 3, 64, 64) * 2 - 1).to(device)
    baseline_kib = memory_baseline(device)

    def generate():
        with torch.no_grad():
            G.eval()(z)

    def autocast(enabled: bool):
        return torch.autocast(device, dtype=torch.bfloat16, enabled=enabled)

    def train_step(r1: bool, bfloat16: bool = False, view_mixing: bool = False):
        # As stylegan2/train.py: the mapping network outside autocast, synthesis and D inside.
        G.train(), D.train()
        ws = G.mapping(z)
        with autocast(bfloat16):
            logits = D(G.synthesis(ws, noise_mode="random")).float()
        loss_G = F.softplus(-logits).mean()
        if view_mixing:
            ws_view, ws_content = G.mapping(z[:16]), G.mapping(z[16:])
            loss_G = loss_G + view_mixing_loss(G, reader, ws_view, ws_content, default_view_layers(G.num_ws))[0]
        loss_G.backward()
        with torch.no_grad(), autocast(bfloat16):
            fakes = G.synthesis(G.mapping(z), noise_mode="random").float()
        real = reals.clone().requires_grad_(r1)
        with autocast(bfloat16):
            real_logits, fake_logits = D(real).float(), D(fakes).float()
        loss = F.softplus(fake_logits).mean() + F.softplus(-real_logits).mean()
        if r1:
            (grad,) = torch.autograd.grad(real_logits.sum(), real, create_graph=True)
            loss = loss + grad.square().sum((1, 2, 3)).mean()
        loss.backward()

    step = {CASES[0]: generate, CASES[1]: lambda: train_step(False), CASES[2]: lambda: train_step(True),
            CASES[3]: lambda: train_step(False, True), CASES[4]: lambda: train_step(True, True),
            CASES[5]: lambda: train_step(False, view_mixing=True)}[name]
    result = case_result(name, timed(step, repeat, device), baseline_kib, device)
    return {**result, "images_per_s": 32 / result["median_s"]}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=3)
    add_device_option(parser)
    parser.add_argument("--case", help=argparse.SUPPRESS)
    args = parser.parse_args()
    device = resolve_device(args.device)
    if args.case:
        print(json.dumps(run_case(args.case, args.repeat, device)))
        return
    results = [run_case_in_subprocess(__file__, name, "--repeat", str(args.repeat), "--device", device)
               for name in CASES]
    description = machine(device)
    print(f"bm_gan — 64 px, channel_base 2048, channel_max 64, batch 32, {device} ({description})")
    print(f"{'case':<40} {'median s':>9} {'min s':>8} {'img/s':>7} {memory_header(device)}")
    for row in results:
        print(f"{row['case']:<40} {row['median_s']:>9.3f} {row['min_s']:>8.3f} {row['images_per_s']:>7.1f} "
              f"{memory_cells(row)}")
    write_results("bm_gan", {"machine": description, "device": device, "results": results})


if __name__ == "__main__":
    main()
