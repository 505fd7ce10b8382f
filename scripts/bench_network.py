"""Benchmark: where a ConvDecoder fitting step spends its time, and what changes it.

    .venv-bench/bin/python scripts/bench_network.py [--height 160 --width 184] [--steps 25]

Three measurements, on the network alone (forward, squared-norm loss, backward, Adam step; no
MRI operator), each printed and written to ``--out`` as JSON:

1. ours (``nets.ConvDecoder``) against deepinv's ``ConvDecoder`` of the same size (6 layers, 64
   channels, 8x4 input, nearest upsampling, 3x3), steps interleaved one by one so the machine's
   drift hits both alike (deepinv optional: skipped where it is not installed);
2. variants of ours, also interleaved: eager (float32, NCHW), ``torch.compile``, channels-last
   (NHWC) and bf16 autocast;
3. a ``torch.profiler`` table of one full fitting iteration of ours (SENSE model, reduced
   readout) by operator, as in ``bench_fit.py``'s reduced slice.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

from fastmri_untrained.fit import FitConfig, fit
from fastmri_untrained.nets.conv_decoder import ConvDecoder, ConvDecoderConfig
from fastmri_untrained.recon import MRIProblem, UntrainedConfig

sys.path.insert(0, str(Path(__file__).parent))
from bench_fit import SIZES, make_sample  # noqa: E402


def adam_stepper(net, input_tensor=None, autocast=False):
    """One fitting step of ``net`` (Adam on the squared norm of the output), as a closure."""
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)

    def step():
        opt.zero_grad(set_to_none=True)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
            out = net() if input_tensor is None else net(input_tensor)
        (out.float() ** 2).sum().backward()
        opt.step()

    return step


def interleaved_ms(steppers: dict, steps: int, warmup: int = 3) -> dict:
    """Median milliseconds per step of each stepper, the steps taken in turn."""
    for step in steppers.values():
        for _ in range(warmup):
            step()
    times = {key: [] for key in steppers}
    for _ in range(steps):
        for key, step in steppers.items():
            start = time.perf_counter()
            step()
            times[key].append(time.perf_counter() - start)
    return {key: 1000 * float(np.median(v)) for key, v in times.items()}


def ours_net(size, out_channels):
    return ConvDecoder(ConvDecoderConfig(layers=6, channels=64, in_size=(8, 4)), out_channels=out_channels,
                       out_size=size)


def profile_fit_iteration(iterations: int = 10, rows: int = 25) -> str:
    from torch.profiler import ProfilerActivity, profile

    sample = make_sample(**SIZES["reduced"])
    problem = MRIProblem(sample, UntrainedConfig(method="conv-decoder", forward_model="sense",
                                                 net=dict(layers=6, channels=64)))
    net, fm = problem.build_net(), problem.forward_model(problem.mask)
    fit(net, fm, problem.kspace, FitConfig(iterations=3, show_progress=False))  # warm-up
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        fit(net, fm, problem.kspace, FitConfig(iterations=iterations, show_progress=False))
    return prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=rows)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--height", type=int, default=160, help="output rows (the reduced slice's readout-reduced grid)")
    p.add_argument("--width", type=int, default=184)
    p.add_argument("--out-channels", type=int, default=2)
    p.add_argument("--steps", type=int, default=25)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--skip-profile", action="store_true")
    p.add_argument("--out", type=Path, default=Path("outputs/bench_network.json"))
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    size = (args.height, args.width)
    results = {"size": list(size), "threads": args.threads, "torch": torch.__version__, "steps": args.steps}

    try:
        import deepinv
    except ImportError:
        deepinv = None
        print("deepinv not installed: ours-vs-deepinv skipped (see scripts/setup_bench_venv.sh)")
    if deepinv is not None:
        theirs = deepinv.models.ConvDecoder(img_size=(args.out_channels, *size), in_size=(8, 4), layers=6,
                                            channels=64)
        z = torch.rand(1, 64, 8, 4)
        results["ours_vs_deepinv_ms"] = interleaved_ms(
            {"ours": adam_stepper(ours_net(size, args.out_channels)), "deepinv": adam_stepper(theirs, z)}, args.steps)
        print("network alone, ms per step:", results["ours_vs_deepinv_ms"], flush=True)

    channels_last = ours_net(size, args.out_channels).to(memory_format=torch.channels_last)
    channels_last.net_input = channels_last.net_input.contiguous(memory_format=torch.channels_last)
    start = time.perf_counter()
    compiled = adam_stepper(torch.compile(ours_net(size, args.out_channels)))
    compiled()
    results["compile_seconds"] = time.perf_counter() - start
    results["variants_ms"] = interleaved_ms({
        "eager": adam_stepper(ours_net(size, args.out_channels)),
        "compiled": compiled,
        "channels_last": adam_stepper(channels_last),
        "bf16_autocast": adam_stepper(ours_net(size, args.out_channels), autocast=True),
    }, args.steps)
    print(f"variants of ours, ms per step (compile took {results['compile_seconds']:.1f} s):",
          results["variants_ms"], flush=True)

    if not args.skip_profile:
        table = profile_fit_iteration()
        results["profile_reduced_fit"] = table
        print(table)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
