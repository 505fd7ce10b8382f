"""SSIM over iterations of one un-trained reconstruction on a separate tuning slice.

    .venv/bin/python scripts/tune_untrained.py --method conv-decoder --forward-model coil-images \
        --iterations 1500                       # the README's reference-setting numbers
    .venv/bin/python scripts/tune_untrained.py --l1-sweep   # zero-filled and L1-wavelet weights
    .venv/bin/python scripts/tune_untrained.py --method deep-decoder --acceleration 8 \
        --iterations 500 --ensemble 1 --seed 1  # one deep-decoder fit from seed 1 (--ensemble 2: the pair)

The tuning slice is simulated with seed 1000 (``--sim-seed``; never used by the quality table or the
leaderboard, whose seeds are below 100): one 256x256
slice (k-space 512x256), 8 coils, 4x equispaced_fraction with centre 0.08 (``--acceleration 8``:
centre 0.04). The SSIM after data consistency is tracked every 100 iterations (of the first fit
when several are averaged); this is how the package defaults (recon.DEFAULT_NET / DEFAULT_FIT /
DEFAULT_FORWARD_MODEL / DEFAULT_ENSEMBLE) were chosen.
"""

from __future__ import annotations

import argparse
import json
import time

import torch

from fastmri_untrained.baselines import SigPyRecon, ZeroFilled
from fastmri_untrained.evaluate import slice_ssim
from fastmri_untrained.fit import FitConfig
from fastmri_untrained.pipeline import MaskSpec, simulated_samples
from fastmri_untrained.recon import DEFAULT_FIT, UntrainedConfig, UntrainedReconstructor


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--method", default="conv-decoder")
    p.add_argument("--forward-model", choices=("coil-images", "sense"))
    p.add_argument("--iterations", type=int, default=1000)
    p.add_argument("--lr", type=float, default=DEFAULT_FIT["conv-decoder"]["lr"])
    p.add_argument("--net", type=json.loads, default={}, help='network overrides as JSON, e.g. \'{"channels": 64}\'')
    p.add_argument("--ensemble", type=int, help="fits averaged (default: the method's)")
    p.add_argument("--seed", type=int, default=0, help="seed of the (first) fit")
    p.add_argument("--acceleration", type=int, choices=(4, 8), default=4)
    p.add_argument("--shape", type=int, nargs=2, default=(512, 256))
    p.add_argument("--l1-sweep", action="store_true", help="sweep L1-wavelet weights instead")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--sim-seed", type=int, default=1000,
                   help="simulation seed of the tuning slice (1000; 1001 is the second tuning slice)")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    mask = MaskSpec("equispaced_fraction", (args.acceleration,), (0.08 if args.acceleration == 4 else 0.04,))
    sample = simulated_samples(mask, args.shape, coils=8, seed=args.sim_seed)[0]
    if args.l1_sweep:
        print("zero-filled", round(slice_ssim(sample.target, ZeroFilled()(sample).image), 4))
        for lam in (1e-4, 3e-4, 1e-3, 3e-3):
            print("l1-wavelet", lam, round(slice_ssim(sample.target, SigPyRecon("l1-wavelet", lamda=lam)(sample).image), 4))
        return
    fit_kwargs = dict(DEFAULT_FIT[args.method], iterations=args.iterations, lr=args.lr, track_every=100,
                      show_progress=False, seed=args.seed)
    cfg = UntrainedConfig(method=args.method, forward_model=args.forward_model, net=args.net, fit=FitConfig(**fit_kwargs),
                          ensemble=args.ensemble, seed=args.seed)
    recon = UntrainedReconstructor(cfg, show_progress=False)
    start = time.perf_counter()
    result = recon(sample, monitor=lambda img: {"ssim": slice_ssim(sample.target, img)})
    hist = recon.last_fit.history
    print(json.dumps({"method": args.method, "forward_model": cfg.model, "iterations": args.iterations,
                      "ensemble": cfg.ensemble, "seed": args.seed,
                      "final_ssim": round(slice_ssim(sample.target, result.image), 4),
                      "seconds": round(time.perf_counter() - start),
                      "ssim_every_100": [round(x, 3) for x in hist["ssim"]]}))


if __name__ == "__main__":
    main()
