"""Benchmark: milliseconds per fitting iteration and time to reach an SSIM, ours vs deepinv.

Runs in the optional benchmark environment (deepinv needs torchvision, which cannot live beside
the CPU torch of .venv):

    bash scripts/setup_bench_venv.sh
    .venv-bench/bin/python scripts/bench_fit.py [--sizes full reduced] [--iterations 20] [--device cpu]

Both sides fit the same ConvDecoder size (layers, channels, 3x3, nearest upsampling) to the same
measurements through the same SENSE model (ESPIRiT maps computed once, not timed), with Adam:
deepinv as ``deepinv.models.DeepImagePrior(ConvDecoder)`` on ``deepinv.physics.MultiCoilMRI``,
ours through ``fastmri_untrained.fit.fit`` with the readout reduction and our vectorised
operator. The deep decoder is timed on our side only (deepinv has none).

With ``--ssim-iterations N`` it also fits N iterations per network, recording the SSIM of the
finished reconstruction (data consistency, RSS, crop: what the product returns, applied alike
to both sides) every ``--ssim-every`` iterations, and reports the time to reach each of
``--ssim-levels`` as (first iteration at that SSIM) x (the untracked milliseconds per
iteration), so the SSIM evaluations are not timed. Writes a JSON.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from fastmri_untrained.data.simulate import SimulationConfig, simulate_slice
from fastmri_untrained.data.images import mr_images
from fastmri_untrained.evaluate import slice_ssim
from fastmri_untrained.fit import FitConfig, fit
from fastmri_untrained.mri import MRISample, data_consistency, rss_image, to_target
from fastmri_untrained.operators.fourier import fft2c, ifft2c
from fastmri_untrained.operators.masks import make_mask
from fastmri_untrained.recon import MRIProblem, UntrainedConfig

SIZES = {"full": dict(shape=(640, 368), coils=15), "reduced": dict(shape=(320, 184), coils=8)}


def make_sample(shape, coils, seed=0, acceleration=4, center_fraction=0.08) -> MRISample:
    cfg = SimulationConfig(shape=shape, coils=coils, slices=1, seed=seed)
    image = mr_images(1, cfg.recon_size, seed=(seed, 0, 0))[0]
    sl = simulate_slice(image, cfg, np.random.default_rng(seed))
    mask = make_mask("equispaced_fraction", shape, acceleration, center_fraction, seed=seed)
    kspace = torch.from_numpy(sl.kspace) * mask
    return MRISample(kspace=kspace, mask=mask, target_size=cfg.recon_size, target=sl.target)


def time_ours(sample, method, layers, channels, iterations, device, autocast=None, sense=True, compile=False):
    """(milliseconds per iteration, seconds of the 2-iteration warm-up fit); with ``compile=True``
    the warm-up is where the network is compiled."""
    cfg = UntrainedConfig(method=method, forward_model="sense" if sense else "coil-images", device=device,
                          net=dict(layers=layers, channels=channels))
    problem = MRIProblem(sample, cfg)
    fit_cfg = FitConfig(iterations=iterations, lr=0.008, show_progress=False, autocast_dtype=autocast,
                        compile=compile)
    net = problem.build_net()
    fm = problem.forward_model(problem.mask)
    start = time.perf_counter()
    # warm-up (with compile=True: compiles; later fits of an equal network reuse the compiled code)
    fit(net, fm, problem.kspace, FitConfig(iterations=2, show_progress=False, autocast_dtype=autocast,
                                           compile=compile))
    warmup_seconds = time.perf_counter() - start
    net = problem.build_net()
    sync(device)
    start = time.perf_counter()
    fit(net, fm, problem.kspace, fit_cfg)
    sync(device)
    return 1000 * (time.perf_counter() - start) / iterations, warmup_seconds


def ssim_curve_ours(sample, method, layers, channels, iterations, every, device):
    """[(iteration, SSIM)] of our finished reconstruction while fitting (SENSE model, Adam 0.008)."""
    cfg = UntrainedConfig(method=method, forward_model="sense", device=device,
                          net=dict(layers=layers, channels=channels))
    problem = MRIProblem(sample, cfg)
    fit_cfg = FitConfig(iterations=iterations, lr=0.008, show_progress=True, track_every=every)
    result = fit(problem.build_net(), problem.forward_model(problem.mask), problem.kspace, fit_cfg,
                 monitor=lambda out: {"ssim": slice_ssim(sample.target, problem.finish(out)[0])},
                 description=f"ours {method} SSIM curve")
    return list(zip(result.history["monitor_iteration"], result.history["ssim"]))


def ssim_curve_deepinv(sample, layers, channels, iterations, every, device):
    """The same curve for deepinv's ConvDecoder: DeepImagePrior's loop (Adam on the MSE of
    physics.A(generator(z)) - y), with our finishing step on its SENSE image."""
    from tqdm import tqdm

    _, physics, y, gen, img_size, maps = deepinv_setup(sample, layers, channels, device)
    scale = y.abs().max()
    y = y / scale
    kspace, mask = sample.kspace.to(device), sample.mask.to(device)
    z = torch.randn((1,) + img_size, device=device)
    optimizer = torch.optim.Adam(gen.parameters(), lr=0.008)
    curve = []
    for it in tqdm(range(iterations + 1), desc="deepinv conv-decoder SSIM curve", leave=False):
        x = gen(z)
        if it % every == 0 or it == iterations:
            with torch.no_grad():
                image = torch.complex(x[0, 0], x[0, 1]) * scale
                coils = fft2c(maps * image)
                done = rss_image(ifft2c(data_consistency(coils, kspace, mask)))
                curve.append((it, slice_ssim(sample.target, to_target(done, sample.target_size))))
        if it == iterations:
            break
        optimizer.zero_grad()
        loss = torch.nn.functional.mse_loss(physics.A(x), y)
        loss.backward()
        optimizer.step()
    return curve


def time_to_levels(curve, ms_per_iteration, levels) -> dict:
    """{level: {"iteration", "seconds"}} for the first tracked iterate at or above each level
    (None where the curve never reaches it)."""
    out = {}
    for level in levels:
        hit = next((it for it, value in curve if value >= level), None)
        out[f"{level:g}"] = None if hit is None else {"iteration": hit, "seconds": hit * ms_per_iteration / 1000}
    return out


def sync(device):
    if str(device).startswith("cuda"):
        torch.cuda.synchronize()


def deepinv_setup(sample, layers, channels, device):
    import deepinv as dinv

    from fastmri_untrained.baselines import sense_maps_for

    h, w = sample.kspace.shape[-2:]
    # deepinv has no readout reduction: it fits the full oversampled grid with full-grid maps.
    full_maps = torch.from_numpy(sense_maps_for(sample.kspace, sample.mask, "multicoil"))[None].to(device)
    mask = torch.broadcast_to(sample.mask, (h, w)).to(device)
    physics = dinv.physics.MultiCoilMRI(mask=mask, coil_maps=full_maps, img_size=(1, 2, h, w), device=device)
    y = torch.view_as_real(sample.kspace.to(device)).permute(3, 0, 1, 2)[None].contiguous()  # (1, 2, C, H, W)
    in_size = (8, 4)
    gen = dinv.models.ConvDecoder(img_size=(2, h, w), in_size=in_size, layers=layers, channels=channels).to(device)
    return dinv, physics, y, gen, (channels,) + in_size, full_maps[0]


def time_deepinv(sample, layers, channels, iterations, device):
    dinv, physics, y, gen, img_size, _ = deepinv_setup(sample, layers, channels, device)
    # Same data scaling as ours, so both fit numbers of comparable size.
    y = y / y.abs().max()
    dip = dinv.models.DeepImagePrior(gen, img_size=img_size, iterations=2, learning_rate=0.008)
    dip(y, physics)  # warm-up
    dip = dinv.models.DeepImagePrior(gen, img_size=img_size, iterations=iterations, learning_rate=0.008)
    sync(device)
    start = time.perf_counter()
    dip(y, physics)
    sync(device)
    return 1000 * (time.perf_counter() - start) / iterations


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", nargs="+", default=["reduced", "full"], choices=list(SIZES))
    p.add_argument("--iterations", type=int, default=20)
    p.add_argument("--layers", type=int, default=6)
    p.add_argument("--channels", type=int, default=64)
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--skip-deepinv", action="store_true")
    p.add_argument("--bf16", action="store_true", help="also time ours under bf16 autocast (GPU)")
    p.add_argument("--compile", action="store_true",
                   help="also time ours with FitConfig(compile=True) (torch.compile; compile time reported apart)")
    p.add_argument("--repeats", type=int, default=1,
                   help="timing rounds, ours and deepinv alternating; the medians are reported (the "
                        "machine's speed drifts between runs, so compare within one run)")
    p.add_argument("--ssim-iterations", type=int, default=0, help="also measure time to SSIM (0: skip)")
    p.add_argument("--ssim-every", type=int, default=25)
    p.add_argument("--ssim-levels", type=float, nargs="+", default=[0.8, 0.85, 0.9])
    p.add_argument("--timing-from", type=Path,
                   help="take the ms per iteration from this earlier bench JSON (same sizes and network) instead of "
                        "timing again, e.g. to record SSIM curves while the machine is busy (iteration counts do "
                        "not depend on load; timings do)")
    p.add_argument("--out", type=Path, default=Path("outputs/bench_fit.json"))
    args = p.parse_args(argv)
    if args.repeats < 1:
        p.error(f"--repeats must be >= 1, got {args.repeats}")
    earlier = {}
    if args.timing_from is not None:
        old = json.loads(args.timing_from.read_text())
        if (old["layers"], old["channels"]) != (args.layers, args.channels):
            p.error(f"{args.timing_from}: timed {old['layers']} layers x {old['channels']} channels, "
                    f"not {args.layers} x {args.channels}")
        earlier = {row["size"]: row for row in old["rows"]}
        missing = [s for s in args.sizes if s not in earlier]
        if missing:
            p.error(f"{args.timing_from}: no timing for sizes {missing}")
    torch.set_num_threads(args.threads)
    results = {"device": args.device, "threads": args.threads, "torch": torch.__version__,
               "layers": args.layers, "channels": args.channels, "iterations": args.iterations, "rows": []}
    for size in args.sizes:
        sample = make_sample(**SIZES[size])
        row = {"size": size, **{k: list(v) if isinstance(v, tuple) else v for k, v in SIZES[size].items()}}
        if size in earlier:
            row.update({k: v for k, v in earlier[size].items() if k.endswith("_ms") or k.startswith("ratio")},
                       timing_from=str(args.timing_from))
        else:
            row.update(time_all(args, sample))
        if args.ssim_iterations > 0:
            row.update(ssim_rows(args, sample, row))
        results["rows"].append(row)
        print(json.dumps({k: v for k, v in row.items() if k != "ssim_curves"}), flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2))
    print(f"wrote {args.out}")


def time_all(args, sample) -> dict:
    """Milliseconds per iteration: ours (ConvDecoder, deep decoder, optionally bf16 / compiled) and
    deepinv, the median of ``args.repeats`` rounds in which the timings alternate (``*_runs``:
    every round); with ``--compile`` also the first round's compilation seconds per network."""
    ours = dict(layers=args.layers, iterations=args.iterations, device=args.device)
    timers = {"ours_conv_decoder_ms": lambda: time_ours(sample, "conv-decoder", channels=args.channels, **ours)}
    if not args.skip_deepinv:
        timers["deepinv_conv_decoder_ms"] = lambda: (time_deepinv(sample, args.layers, args.channels,
                                                                  args.iterations, args.device), None)
    timers["ours_deep_decoder_ms"] = lambda: time_ours(sample, "deep-decoder", channels=2 * args.channels, **ours)
    if args.bf16:
        timers["ours_conv_decoder_bf16_ms"] = lambda: time_ours(sample, "conv-decoder", channels=args.channels,
                                                                autocast="bfloat16", **ours)
    compiled = {}  # timer key -> network
    if args.compile:
        timers["ours_conv_decoder_compiled_ms"] = lambda: time_ours(sample, "conv-decoder", channels=args.channels,
                                                                    compile=True, **ours)
        timers["ours_deep_decoder_compiled_ms"] = lambda: time_ours(sample, "deep-decoder", channels=2 * args.channels,
                                                                    compile=True, **ours)
        compiled = {"ours_conv_decoder_compiled_ms": "conv-decoder", "ours_deep_decoder_compiled_ms": "deep-decoder"}
    runs = {key: [] for key in timers}
    compile_seconds = {}
    for _ in range(args.repeats):
        for key, timer in timers.items():
            ms, warmup_seconds = timer()
            runs[key].append(ms)
            if key in compiled:
                compile_seconds.setdefault(compiled[key], warmup_seconds)  # later rounds reuse the compiled code
    row = {key: float(np.median(values)) for key, values in runs.items()}
    row.update({key[:-3] + "_runs_ms": values for key, values in runs.items()})
    if not args.skip_deepinv:
        row["ratio_ours_over_deepinv"] = row["ours_conv_decoder_ms"] / row["deepinv_conv_decoder_ms"]
        row["ratio_per_round"] = [a / b for a, b in zip(runs["ours_conv_decoder_ms"], runs["deepinv_conv_decoder_ms"])]
        if args.compile:
            row["ratio_compiled_over_deepinv"] = row["ours_conv_decoder_compiled_ms"] / row["deepinv_conv_decoder_ms"]
            row["ratio_compiled_per_round"] = [a / b for a, b in zip(runs["ours_conv_decoder_compiled_ms"],
                                                                     runs["deepinv_conv_decoder_ms"])]
    if args.compile:
        row["compile_seconds"] = compile_seconds
    return row


def ssim_rows(args, sample, row) -> dict:
    """SSIM curves while fitting and the time to reach each level (with the row's ms/iteration)."""
    curves = {"ours_conv_decoder": (ssim_curve_ours(sample, "conv-decoder", args.layers, args.channels,
                                                    args.ssim_iterations, args.ssim_every, args.device),
                                    row["ours_conv_decoder_ms"]),
              "ours_deep_decoder": (ssim_curve_ours(sample, "deep-decoder", args.layers, 2 * args.channels,
                                                    args.ssim_iterations, args.ssim_every, args.device),
                                    row["ours_deep_decoder_ms"])}
    if not args.skip_deepinv:
        curves["deepinv_conv_decoder"] = (ssim_curve_deepinv(sample, args.layers, args.channels,
                                                             args.ssim_iterations, args.ssim_every, args.device),
                                          row["deepinv_conv_decoder_ms"])
    return {"ssim_curves": {k: c for k, (c, _) in curves.items()},
            "time_to_ssim": {k: time_to_levels(c, ms, args.ssim_levels) for k, (c, ms) in curves.items()}}


if __name__ == "__main__":
    main()
