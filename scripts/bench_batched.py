"""Is fitting K networks as one batched pass faster than K sequential passes on this device?

    .venv/bin/python scripts/bench_batched.py                   # demo size, K = 4, CPU
    .venv/bin/python scripts/bench_batched.py --device cuda --size 320 368 --members 1 4 16 35 --autocast bfloat16

Times one Adam step (forward, backward, update) of K independent networks of one architecture at
the demo's fitting size (output 128x192: the demo's 256x192 k-space with the readout halved),
(a) one network after another and (b) all K at once through ``torch.func``: the weights stacked
(``stack_module_state``) and the network mapped over them (``vmap`` of ``functional_call``; a
convolution over stacked weights becomes one grouped convolution). The answer decides whether
the slices of a volume should be fitted as one batch on that device; it is a measurement of the
building block, not of a reconstruction. Prints ms per step of each, their ratio, and the slices
per minute the batched pass would reconstruct with the method's default iterations (K slices per
pass; the forward model's FFTs and data consistency not included). ``--autocast bfloat16`` runs the
networks under autocast, as ``FitConfig.autocast_dtype`` does (GPU).
"""

from __future__ import annotations

import argparse
import copy
import sys
import time
from pathlib import Path

import torch
from torch.func import functional_call, stack_module_state, vmap

from fastmri_untrained.nets import build_net
from fastmri_untrained.pipeline import write_json
from fastmri_untrained.recon import DEFAULT_ENSEMBLE, DEFAULT_FIT, DEFAULT_NET

# The package defaults' forward models: coil images (2 real channels per coil) for the ConvDecoder
# and the DIP, one SENSE image (2 channels) for the deep decoder.
METHODS = ("conv-decoder", "deep-decoder", "dip")


def out_channels(method: str, coils: int) -> int:
    return 2 if method == "deep-decoder" else 2 * coils


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def step_seconds(step, device: str, repeats: int) -> float:
    for _ in range(2):  # warm-up: allocator, kernels
        step()
    sync(device)
    start = time.perf_counter()
    for _ in range(repeats):
        step()
    sync(device)
    return (time.perf_counter() - start) / repeats


def measure(method: str, members: int, size, device: str, repeats: int, autocast=None, sequential_too=True,
            coils: int = 8) -> dict:
    nets = [build_net(method, out_channels(method, coils), size, seed=s, **DEFAULT_NET[method]).to(device) for s in range(members)]
    optimizers = [torch.optim.Adam(net.parameters(), lr=1e-3) for net in nets]

    def forward(call):
        if autocast is None:
            return call()
        with torch.autocast(device_type=torch.device(device).type, dtype=getattr(torch, autocast)):
            return call().float()

    def sequential():
        for net, opt in zip(nets, optimizers):
            opt.zero_grad()
            forward(net).square().sum().backward()
            opt.step()

    params, buffers = stack_module_state(nets)
    params = {k: torch.nn.Parameter(v) for k, v in params.items()}
    template = copy.deepcopy(nets[0]).to("meta")
    batched_net = vmap(lambda p, b: functional_call(template, (p, b), ()))
    stacked_opt = torch.optim.Adam(params.values(), lr=1e-3)

    def batched():
        stacked_opt.zero_grad()
        forward(lambda: batched_net(params, buffers)).square().sum().backward()
        stacked_opt.step()

    seq = step_seconds(sequential, device, repeats) if sequential_too else None
    bat = step_seconds(batched, device, repeats)
    iterations = DEFAULT_FIT[method]["iterations"] * DEFAULT_ENSEMBLE[method]
    return {"method": method, "members": members, "size": list(size), "coils": coils, "device": device,
            "autocast": autocast,
            "sequential_ms": None if seq is None else 1e3 * seq, "batched_ms": 1e3 * bat,
            "speedup": None if seq is None else seq / bat,
            "slices_per_minute": 60.0 * members / (bat * iterations)}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--members", type=int, nargs="+", default=[4], help="networks fitted together (K), one run each")
    p.add_argument("--size", type=int, nargs=2, default=(128, 192), metavar=("H", "W"))
    p.add_argument("--device", default="cpu")
    p.add_argument("--repeats", type=int, default=10)
    p.add_argument("--methods", nargs="+", choices=METHODS, default=list(METHODS))
    p.add_argument("--coils", type=int, default=8, help="coils (output channels of the coil-image networks)")
    p.add_argument("--autocast", choices=("bfloat16", "float16"), help="run the networks under autocast")
    p.add_argument("--no-sequential", action="store_true", help="time the batched pass only")
    p.add_argument("--json", type=Path, help="also write the rows to this JSON file")
    args = p.parse_args(argv)
    if min(args.members) < 1:
        p.error(f"--members must be >= 1, got {args.members}")
    rows = [measure(m, k, tuple(args.size), args.device, args.repeats, args.autocast, not args.no_sequential, args.coils)
            for m in args.methods for k in args.members]
    if args.json:
        write_json(args.json, rows)
    fmt = lambda v, f: "-" if v is None else format(v, f)  # noqa: E731
    print("| network | K | sequential ms / step | batched (vmap) ms / step | speed-up | slices / min (batched) |\n"
          "| --- | --- | --- | --- | --- | --- |")
    for r in rows:
        print(f"| {r['method']} | {r['members']} | {fmt(r['sequential_ms'], '.0f')} | {r['batched_ms']:.0f} | "
              f"{fmt(r['speedup'], '.2f')} | {r['slices_per_minute']:.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
