"""Diagnostics on the real k-space (``../shared/data/kspace``), all on the held-out split of
``scripts/bench_real.py`` (10% of the acquired samples outside the calibration centre, seed 0):

    .venv/bin/python scripts/real_data_diagnosis.py l1 --file brain_8coil_sigpy.npy
        SigPy L1-wavelet over weights x ESPIRiT map crops x wavelets, on our maps and on BART's
        (``bart ecalib -m1``, when installed), and BART's ``pics`` with and without its random
        wavelet shifts (``-n``): which of maps, weight or solver makes the gap to BART; with
        ``--cycle-spin`` the package's shifted solver over map crops x weights instead.
    .venv/bin/python scripts/real_data_diagnosis.py curve --file brain_8coil_sigpy.npy \\
            --method deep-decoder --forward-model sense --maps-crop 0.95 --iterations 1500 --lr 0.008
        The held-out NMSE of an un-trained fit every 50 iterations (constant learning rate unless
        --schedule), to see whether the default budget under- or over-fits real data;
        ``--members N`` fits N seeds and scores their running mean (does an ensemble help?);
        ``--kspace-weight P`` weights the loss by |k|^P, ``--net channels=256`` resizes the network;
        ``--residual-of LAMDA`` fits the network to what the shifted L1-wavelet (weight LAMDA, through
        the same maps) leaves unexplained and scores their sum (does the network add to L1-wavelet?);
        ``--wavelet-penalty LAMDA`` adds L1-wavelet's shifted penalty (SigPy's weight) to the loss.
    .venv/bin/python scripts/real_data_diagnosis.py weights --method l1-wavelet --lamdas 1e-4 3e-4 1e-3 3e-3 1e-2
        A classical method's weight on both real files (held-out NMSE) and on four simulated
        demo-size slices (seeds 0 and 1, 4x and 8x equispaced: held-out NMSE and SSIM to the
        target), each slice's estimated noise level beside it, and the package default: whether
        held-out NMSE picks the weight SSIM picks, and how the default rule fares.

    .venv/bin/python scripts/real_data_diagnosis.py floor
        The held-out NMSE that the noise alone sets on each real file (the estimated noise level
        against the held-out samples' energy): how far any method is from the best possible.

Prints one line per configuration and appends it as JSON to ``--out`` (default
``outputs/real_data_diagnosis.jsonl``).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import sys
import time
from pathlib import Path

import numpy as np
import sigpy.mri
import torch

import fastmri_untrained.baselines as baselines
from fastmri_untrained import bart
from fastmri_untrained.baselines import normalisation
from fastmri_untrained.fit import EarlyStopConfig, FitConfig, data_scale, fit
from fastmri_untrained.mri import holdout_split, kspace_nmse, kspace_noise_std, reduced_problem
from fastmri_untrained.operators.espirit import espirit_maps
from fastmri_untrained.operators.fourier import fft2c
from fastmri_untrained.pipeline import kspace_file_sample
from fastmri_untrained.recon import DEFAULT_FIT, MRIProblem, UntrainedConfig

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "kspace"
FILES = ("brain_8coil_sigpy.npy", "brain_8coil_bart.cfl")


def use_maps_crop(crop: float) -> None:
    """Make the package's SENSE maps cropped at ``crop`` (baselines.MAPS_CROP; the package's is 0:
    uncropped) for the rest of this process."""
    baselines.sense_maps_for.__defaults__ = (1, crop)


def split(file: str, fraction: float, seed: int):
    sample = kspace_file_sample(SHARED / file)
    fit_mask, held = holdout_split(sample.mask, fraction, seed=seed)
    return sample, fit_mask, held


def l1(args) -> list[dict]:
    if args.cycle_spin:
        return l1_cycle_spin(args)
    sample, fit_mask, held = split(args.file, args.holdout, args.seed)
    kept = (sample.kspace * fit_mask).numpy()
    maps = {f"ours crop {c:g}": espirit_maps(kept, fit_mask, crop=c) for c in args.crops}
    if bart.available():
        maps["bart ecalib -m1"] = bart.espirit(kept)
    scale = normalisation(torch.from_numpy(kept))
    rows = []
    for name, m in maps.items():
        for lamda in args.lamdas:
            for wave in args.wavelets:
                app = sigpy.mri.app.L1WaveletRecon(kept * scale, m, lamda, weights=fit_mask.numpy(), wave_name=wave,
                                                   max_iter=args.max_iter, show_pbar=False)
                image = app.run() / scale
                predicted = fft2c(torch.from_numpy((m * image[None]).astype(np.complex64)))
                rows.append({"file": args.file, "maps": name, "lamda": lamda, "wavelet": wave,
                             "holdout_nmse": kspace_nmse(predicted, sample.kspace, held),
                             "fit_nmse": kspace_nmse(predicted, sample.kspace, fit_mask)})
                print(json.dumps(rows[-1]), flush=True)
    if bart.available():  # BART's own solver, with and without its random wavelet shifts (-n)
        for lamda in args.lamdas:
            for flags, name in (([], "bart pics"), (["-n"], "bart pics -n")):
                image = bart.pics(kept, maps["bart ecalib -m1"], [*flags, "-l1", "-r", f"{lamda:g}"])
                predictions = [fft2c(torch.from_numpy((maps["bart ecalib -m1"] * image[None] * sign)
                                                      .astype(np.complex64))) for sign in (1, -1)]
                predicted = min(predictions, key=lambda k: kspace_nmse(k, sample.kspace, fit_mask))
                rows.append({"file": args.file, "maps": "bart ecalib -m1", "solver": name, "lamda": lamda,
                             "holdout_nmse": kspace_nmse(predicted, sample.kspace, held),
                             "fit_nmse": kspace_nmse(predicted, sample.kspace, fit_mask)})
                print(json.dumps(rows[-1]), flush=True)
    return rows


def l1_cycle_spin(args) -> list[dict]:
    """The package's L1-wavelet with random wavelet shifts (``SigPyRecon(cycle_spin=True)``) over
    map crops x weights, through the package's own held-out score."""
    from fastmri_untrained.baselines import SigPyRecon
    from fastmri_untrained.pipeline import holdout_score

    sample = kspace_file_sample(SHARED / args.file)
    rows = []
    for crop in args.crops:
        use_maps_crop(crop)
        for lamda in args.lamdas:
            recon = SigPyRecon(method="l1-wavelet", lamda=lamda, cycle_spin=True)
            rows.append({"file": args.file, "maps": f"ours crop {crop:g}", "lamda": lamda, "cycle_spin": True,
                         "holdout_nmse": holdout_score(recon, sample, args.holdout, args.seed)})
            print(json.dumps(rows[-1]), flush=True)
    return rows


def curve(args) -> list[dict]:
    sample, fit_mask, held = split(args.file, args.holdout, args.seed)
    kept = sample._replace(kspace=sample.kspace * fit_mask, mask=fit_mask)
    use_maps_crop(args.maps_crop)
    net = dict(arg.split("=") for arg in args.net)
    net = {k: int(v) for k, v in net.items()}
    cfg = UntrainedConfig(method=args.method, forward_model=args.forward_model, ensemble=1, seed=args.seed, net=net)
    problem = MRIProblem(kept, cfg)
    full = problem.operator(torch.ones_like(problem.mask))
    forward_model, measurements = problem.forward_model(problem.mask), problem.kspace
    if args.kspace_weight:
        # Loss weight |k|^p (|k| in samples from the centre, at least 1): fits high frequencies sooner.
        h, w = problem.kspace.shape[-2:]
        ky, kx = torch.meshgrid(torch.arange(h) - h // 2, torch.arange(w) - w // 2, indexing="ij")
        weight = torch.clamp(torch.sqrt(ky ** 2 + kx ** 2.0), min=1.0) ** args.kspace_weight
        unweighted = forward_model
        forward_model = lambda output: weight * unweighted(output)  # noqa: E731
        measurements = weight * measurements
    offset = 0.0

    def holdout_nmse(output):
        return kspace_nmse(full(problem.to_operator_input(output + offset)), sample.kspace, held)

    if args.residual_of is not None:
        # The network models the L1-wavelet image's residual: data r = y - A x_L1, prediction x_L1 + G.
        offset = l1_channels(problem, args.residual_of)
        measurements = measurements - forward_model(offset)
        print(json.dumps({"l1_wavelet_alone": args.residual_of, "holdout_nmse": holdout_nmse(0 * offset)}), flush=True)

    rows, member_outputs = [], []
    start = time.perf_counter()
    for member in range(args.members):
        # Members differ only in the network's seed; the held-out split stays that of --seed.
        outputs = []
        member_outputs.append(outputs)

        seed = args.seed + member
        fit_cfg = FitConfig(**{**DEFAULT_FIT[args.method], "iterations": args.iterations, "lr": args.lr,
                               "lr_schedule": args.schedule, "seed": seed, "show_progress": True},
                            early_stop=EarlyStopConfig(check_every=50, patience=10 ** 9))
        net = problem.build_net(seed)
        member_model, member_measurements, output_scale = forward_model, measurements, 1.0
        if args.wavelet_penalty is not None:
            output_scale = data_scale(net, forward_model, measurements)
            member_model, member_measurements = with_wavelet_penalty(
                problem, forward_model, measurements, args.wavelet_penalty, seed, output_scale)
            fit_cfg = dataclasses.replace(fit_cfg, scale_data=False)

        def validation(output):
            outputs.append(output / output_scale)
            return holdout_nmse(output / output_scale)

        res = fit(net, member_model, member_measurements, fit_cfg,
                  validation=validation, description=f"{args.method} {args.forward_model} seed {seed}")
        rows.append(curve_row(args, f"seed {seed}", res.history["validation_iteration"], res.history["validation"],
                              time.perf_counter() - start))
        if member:
            # The ensemble of the first member + 1 fits: the mean of their outputs at each checkpoint
            # (the operator is linear, so this is the mean of their k-space predictions).
            mean = [holdout_nmse(torch.stack(step).mean(0)) for step in zip(*member_outputs)]
            rows.append(curve_row(args, f"mean of {member + 1}", res.history["validation_iteration"], mean,
                                  time.perf_counter() - start))
    return rows


def with_wavelet_penalty(problem: MRIProblem, data_model, measurements: torch.Tensor, lamda: float, seed: int,
                         fit_scale: float):
    """The fit's loss ||A G - y||^2 plus L1-wavelet's penalty on the network's image, as extra
    residual entries (an entry sqrt(c |w|) adds c |w| to the squared norm the engine minimises).

    SigPy's objective 1/2 ||A x - y||^2 + lamda ||W S x||_1 on k-space scaled by ``normalisation``
    is, in the units of ``y``, proportional to ||A x - y||^2 + mu ||W S x||_1 with mu = 2 lamda /
    normalisation. The engine's own data scaling would multiply the two terms by different powers
    of its scale, so the fit runs unscaled (``FitConfig(scale_data=False)``) on the returned
    measurements, which are ``y`` x ``fit_scale`` (the scale the engine would choose,
    ``fit.data_scale``): the network's image is G = fit_scale x and the loss
    ||A G - s y||^2 + mu s ||W S G||_1 = s^2 (||A x - y||^2 + mu ||W S x||_1). S is a new random
    circular shift each step (cycle spinning, as ``ShiftedWaveletL1``); |w| is smoothed by a floor
    far below the coefficients' scale so that its gradient stays finite at zero."""
    import sigpy

    from fastmri_untrained.operators.sigpy_bridge import SigPyLinop

    if not problem.use_sense:
        raise SystemExit("--wavelet-penalty needs --forward-model sense (one image through the maps)")
    shape = tuple(problem.kspace.shape[-2:])
    linop = sigpy.linop.Wavelet(shape, wave_name="db4")
    wavelet = SigPyLinop(linop)
    units = fit_scale / normalisation(problem.kspace)  # SigPy's image -> the network's
    weight = 2 * lamda * units
    floor = 1e-8 * units  # 1e-8 of the zero-filled image's peak
    rng = np.random.default_rng(seed)
    penalty_entries = math.prod(linop.oshape)

    def penalised(output):
        shift = [int(rng.integers(0, n)) for n in shape]
        w = wavelet(torch.roll(problem.to_operator_input(output), shift, dims=(-2, -1)))
        penalty = torch.sqrt(weight * torch.sqrt(w.real ** 2 + w.imag ** 2 + floor ** 2))
        return torch.cat([data_model(output).flatten(), penalty.flatten().to(torch.complex64)])

    return penalised, torch.cat([fit_scale * measurements.flatten(), torch.zeros(penalty_entries, dtype=torch.complex64)])


def l1_channels(problem: MRIProblem, lamda: float) -> torch.Tensor:
    """The shifted L1-wavelet image (weight ``lamda``) of ``problem``'s measurements through its
    maps, as a network output (1, 2, H, W) in the measurements' units."""
    from fastmri_untrained.baselines import SigPyRecon
    from fastmri_untrained.edges import from_numpy, to_numpy

    if not problem.use_sense:
        raise SystemExit("--residual-of needs --forward-model sense (one image through the maps)")
    scale = normalisation(problem.kspace)
    weights = np.broadcast_to(problem.mask.numpy(), problem.kspace.shape[-2:]).astype(np.float32)
    image = from_numpy(SigPyRecon(method="l1-wavelet", cycle_spin=True).solve(
        to_numpy(problem.kspace * scale), to_numpy(problem.maps), lamda, weights)) / scale
    return torch.stack([image.real, image.imag])[None]


def curve_row(args, what: str, iterations, values, seconds: float) -> dict:
    best = int(np.argmin(values))
    row = {"file": args.file, "fit": what,
           **{k: getattr(args, k) for k in ("method", "forward_model", "maps_crop", "iterations",
                                            "lr", "schedule", "kspace_weight", "net", "residual_of",
                                            "wavelet_penalty")},
           "seconds": seconds, "best_holdout_nmse": values[best], "best_iteration": iterations[best],
           "last_holdout_nmse": values[-1], "curve": dict(zip(iterations, values))}
    print(json.dumps({k: v for k, v in row.items() if k != "curve"}), flush=True)
    return row


def floor(args) -> list[dict]:
    """The held-out NMSE that the noise alone sets: a prediction equal to the noise-free k-space
    still misses the noise of each held-out sample (2 sigma^2 per complex sample, sigma from
    ``kspace_noise_std``)."""
    rows = []
    for file in FILES:
        sample, _, held = split(file, args.holdout, args.seed)
        sigma = kspace_noise_std(sample.kspace, sample.mask)
        measured = sample.kspace[:, held.bool()] if held.dim() == 2 else sample.kspace[held.bool()]
        row = {"file": file, "noise_std": sigma, "held_out_samples": int(measured.numel()),
               "noise_floor_nmse": measured.numel() * 2 * sigma ** 2 / float((measured.abs() ** 2).sum())}
        print(json.dumps(row), flush=True)
        rows.append(row)
    return rows


def weights(args) -> list[dict]:
    from fastmri_untrained.baselines import SigPyRecon, default_lamda
    from fastmri_untrained.evaluate import slice_ssim
    from fastmri_untrained.pipeline import MaskSpec, holdout_score, simulated_samples

    cases = [(f, kspace_file_sample(SHARED / f)) for f in FILES]
    for acc, cf in ((4, 0.08), (8, 0.04)):
        for seed in (0, 1):
            mask = MaskSpec("equispaced_fraction", (acc,), (cf,))
            cases.append((f"simulated 256x192 seed {seed} {acc}x", simulated_samples(mask, (256, 192), seed=seed)[0]))
    rows = []
    for name, sample in cases:
        kspace, _ = reduced_problem(sample)
        row = {"case": name, "method": args.method, "cycle_spin": args.cycle_spin,
               "default": default_lamda(args.method, kspace, sample.mask),
               "noise_std": kspace_noise_std(kspace, sample.mask) * normalisation(kspace)}
        for lamda in [*args.lamdas, None]:
            recon = SigPyRecon(method=args.method, lamda=lamda, cycle_spin=args.cycle_spin)
            key = "default" if lamda is None else f"{lamda:g}"
            row[f"holdout {key}"] = holdout_score(recon, sample, args.holdout, args.seed)
            if sample.target is not None:
                row[f"ssim {key}"] = slice_ssim(sample.target, recon(sample).image, sample.max_value or None)
        rows.append(row)
        print(json.dumps(row), flush=True)
    return rows


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("what", choices=("l1", "curve", "weights", "floor"))
    p.add_argument("--file", choices=FILES, default=FILES[0])
    p.add_argument("--holdout", type=float, default=0.1)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=Path("outputs/real_data_diagnosis.jsonl"))
    p.add_argument("--lamdas", type=float, nargs="+", default=[5e-4, 2e-3, 5e-3, 1e-2])
    p.add_argument("--crops", type=float, nargs="+", default=[0.0, 0.8, 0.95])
    p.add_argument("--wavelets", nargs="+", default=["db4", "haar"])
    p.add_argument("--max-iter", type=int, default=100)
    p.add_argument("--method", default="deep-decoder",
                   help="curve: an un-trained method; weights: l1-wavelet or tv")
    p.add_argument("--forward-model", default="sense", choices=("sense", "coil-images"))
    p.add_argument("--maps-crop", type=float, default=0.0)
    p.add_argument("--iterations", type=int, default=1500)
    p.add_argument("--lr", type=float, default=0.008)
    p.add_argument("--schedule", default="constant", choices=("constant", "cosine"))
    p.add_argument("--members", type=int, default=1,
                   help="curve: fit from seeds seed..seed+N-1 and score the mean of the first 2..N too")
    p.add_argument("--kspace-weight", type=float, default=0.0, help="loss weight |k|^P (0: unweighted)")
    p.add_argument("--residual-of", type=float, metavar="LAMDA",
                   help="curve: fit the residual of the shifted L1-wavelet at this weight (SENSE model)")
    p.add_argument("--wavelet-penalty", type=float, metavar="LAMDA",
                   help="curve: add L1-wavelet's shifted penalty at this weight (SigPy units) to the fit's loss")
    p.add_argument("--net", nargs="*", default=[], help="network overrides, e.g. channels=128")
    p.add_argument("--cycle-spin", action="store_true",
                   help="weights, l1: L1-wavelet with random wavelet shifts (l1: the package's solver over crops)")
    args = p.parse_args(argv)
    for flag, value in (("--residual-of", args.residual_of), ("--wavelet-penalty", args.wavelet_penalty)):
        if value is not None and args.forward_model != "sense":
            p.error(f"{flag} needs --forward-model sense (one image through the maps)")
    if args.residual_of is not None and args.wavelet_penalty is not None:
        p.error("--residual-of and --wavelet-penalty exclude each other (the penalty is on the network's image)")
    if not SHARED.is_dir():
        p.error(f"real k-space not found: {SHARED}")
    rows = {"l1": l1, "curve": curve, "weights": weights, "floor": floor}[args.what](args)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with args.out.open("a") as f:
        for row in rows:
            f.write(json.dumps(row) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
