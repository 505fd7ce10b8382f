"""Benchmark: milliseconds per fitting iteration and time to reach an SSIM, ours vs deepinv.

Runs in the optional benchmark environment (deepinv needs torchvision, which cannot live beside
the CPU torch of .venv):

    bash scripts/setup_bench_venv.sh
    .venv-bench/bin/python scripts/bench_fit.py [--sizes full reduced] [--iterations 20] [--device cpu]

Both sides fit the same ConvDecoder size (layers, channels, 3x3, nearest upsampling) to the same
measurements through the same SENSE model (ESPIRiT maps computed once, not timed), with Adam:
deepinv as ``deepinv.models.DeepImagePrior(ConvDecoder)`` on ``deepinv.physics.MultiCoilMRI``,
ours through ``fastmri_untrained.fit.fit`` with the readout reduction and our vectorised
operator. The deep decoder is timed on our side only (deepinv has none). Writes a JSON.
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
from fastmri_untrained.mri import MRISample
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


def time_ours(sample, method, layers, channels, iterations, device, autocast=None, sense=True):
    cfg = UntrainedConfig(method=method, forward_model="sense" if sense else "coil-images", device=device,
                          net=dict(layers=layers, channels=channels))
    problem = MRIProblem(sample, cfg)
    fit_cfg = FitConfig(iterations=iterations, lr=0.008, show_progress=False, autocast_dtype=autocast)
    net = problem.build_net()
    fm = problem.forward_model(problem.mask)
    fit(net, fm, problem.kspace, FitConfig(iterations=2, show_progress=False))  # warm-up
    net = problem.build_net()
    sync(device)
    start = time.perf_counter()
    fit(net, fm, problem.kspace, fit_cfg)
    sync(device)
    return 1000 * (time.perf_counter() - start) / iterations, problem


def sync(device):
    if str(device).startswith("cuda"):
        torch.cuda.synchronize()


def deepinv_setup(sample, problem, layers, channels, device):
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
    return dinv, physics, y, gen, (channels,) + in_size


def time_deepinv(sample, problem, layers, channels, iterations, device):
    dinv, physics, y, gen, img_size = deepinv_setup(sample, problem, layers, channels, device)
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
    p.add_argument("--out", type=Path, default=Path("outputs/bench_fit.json"))
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    results = {"device": args.device, "threads": args.threads, "torch": torch.__version__,
               "layers": args.layers, "channels": args.channels, "iterations": args.iterations, "rows": []}
    for size in args.sizes:
        sample = make_sample(**SIZES[size])
        row = {"size": size, **{k: list(v) if isinstance(v, tuple) else v for k, v in SIZES[size].items()}}
        row["ours_conv_decoder_ms"], problem = time_ours(sample, "conv-decoder", args.layers, args.channels,
                                                         args.iterations, args.device)
        row["ours_deep_decoder_ms"], _ = time_ours(sample, "deep-decoder", args.layers, 2 * args.channels,
                                                   args.iterations, args.device)
        if args.bf16:
            row["ours_conv_decoder_bf16_ms"], _ = time_ours(sample, "conv-decoder", args.layers, args.channels,
                                                            args.iterations, args.device, autocast="bfloat16")
        if not args.skip_deepinv:
            row["deepinv_conv_decoder_ms"] = time_deepinv(sample, problem, args.layers, args.channels,
                                                          args.iterations, args.device)
            row["ratio_ours_over_deepinv"] = row["ours_conv_decoder_ms"] / row["deepinv_conv_decoder_ms"]
        results["rows"].append(row)
        print(json.dumps(row), flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
