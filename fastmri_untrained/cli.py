"""Command-line interface: ``fastmri-untrained {demo,simulate,reconstruct,evaluate}``.

Bad input is reported as one line naming the file or argument and the problem (exit code 2),
before any work is done.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import warnings
from pathlib import Path

from .errors import InputError

OUTPUT_FORMATS = ("fastmri", "nifti", "dicom")  # export.OUTPUT_FORMATS, without importing it here

DEMO_SHAPE = (256, 192)  # k-space; target 128x128: the un-trained fits take ~1-2 min each on 2 cores


def _positive_int(value: str) -> int:
    v = int(value)
    if v < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return v


def add_simulate(sub):
    p = sub.add_parser("simulate", help="write simulated data in fastMRI's h5 schema")
    p.add_argument("--out", type=Path, required=True, help="output directory")
    p.add_argument("--challenge", choices=("multicoil", "singlecoil"), default="multicoil")
    p.add_argument("--num-volumes", type=_positive_int, default=2)
    p.add_argument("--slices", type=_positive_int, default=2)
    p.add_argument("--coils", type=_positive_int, default=8)
    p.add_argument("--shape", type=_positive_int, nargs=2, default=(640, 368), metavar=("H", "W"),
                   help="k-space matrix (readout H, 2x oversampled: even, >= 8; phase encoding W >= 4)")
    p.add_argument("--seed", type=int, default=0, help="non-negative")
    p.add_argument("--format", choices=("fastmri", "mrd"), default="fastmri",
                   help="fastmri: fastMRI h5 with targets; mrd: ISMRMRD raw data (written with the ismrmrd package)")
    p.add_argument("--acceleration", type=float,
                   help="--format mrd: write only the lines of an equispaced mask at this acceleration, the centre "
                        "lines flagged as parallel-imaging calibration (default: fully sampled)")
    p.add_argument("--center-fraction", type=float, default=0.08, help="--format mrd with --acceleration")
    p.set_defaults(func=cmd_simulate)


def cmd_simulate(args) -> int:
    from .data.simulate import shape_problem, simulate_dataset
    from .pipeline import check_output_dir

    problem = shape_problem(args.shape)
    if problem:
        raise InputError("--shape", problem)
    if args.seed < 0:
        raise InputError("--seed", f"must be >= 0 (numpy seeds are non-negative), got {args.seed}")
    mask = None
    if args.format == "mrd":
        if args.challenge != "multicoil":
            raise InputError("--format", "mrd is written for --challenge multicoil")
        if args.acceleration is not None:
            from .operators.masks import check_column_mask

            try:
                mask = check_column_mask("equispaced_fraction", args.shape[1], args.acceleration, args.center_fraction)
            except InputError as exc:  # the library names reconstruct's flag
                raise InputError("--acceleration", exc.problem) from None
            mask = mask.numpy().reshape(-1).astype(bool)
    elif args.acceleration is not None:
        raise InputError("--acceleration", "applies to --format mrd (fastMRI files are undersampled by "
                                           "reconstruct's --accelerations)")
    check_output_dir(args.out)  # a file in the way or no permission: fail before simulating
    kwargs = dict(challenge=args.challenge, num_volumes=args.num_volumes, slices=args.slices, coils=args.coils,
                  shape=tuple(args.shape), seed=args.seed)
    if args.format == "fastmri":
        paths = simulate_dataset(args.out, **kwargs)
    else:  # the fastMRI twin in a scratch directory, rewritten as MRD under the same name
        import tempfile

        from .data.mrd import center_lines, write_mrd

        with tempfile.TemporaryDirectory() as tmp:
            paths = [write_mrd(f, args.out / f.name, mask=mask, calibration=None if mask is None else center_lines(mask))
                     for f in simulate_dataset(tmp, **kwargs)]
    for p in paths:
        print(p)
    return 0


def add_recon_args(p):
    from .pipeline import METHODS
    from .operators.masks import MASK_TYPES

    p.add_argument("--method", default="conv-decoder",
                   help=f"one of: {', '.join(METHODS)} (default: conv-decoder)")
    p.add_argument("--challenge", choices=("multicoil", "singlecoil"), default="multicoil")
    p.add_argument("--mask-type", default="equispaced_fraction", help=f"one of: {', '.join(MASK_TYPES)}")
    p.add_argument("--accelerations", type=float, nargs="+", default=[4])
    p.add_argument("--center-fractions", type=float, nargs="+", default=[0.08])
    p.add_argument("--retrospective-mask", action="store_true",
                   help="also undersample files that are already undersampled (fastMRI test/challenge files "
                        "keep their own mask by default)")
    p.add_argument("--forward-model", choices=("coil-images", "sense"),
                   help="un-trained methods: fit coil images (RSS) or one image through ESPIRiT maps "
                        "(default: coil-images for conv-decoder and dip, sense for deep-decoder)")
    p.add_argument("--iterations", type=int, help="fitting iterations (default: per method, see README)")
    p.add_argument("--lr", type=float, help="learning rate (default: per method)")
    p.add_argument("--layers", type=_positive_int, help="network depth (DIP: levels)")
    p.add_argument("--channels", type=_positive_int, help="network width")
    p.add_argument("--ensemble", type=_positive_int,
                   help="un-trained methods: fit N times from seeds seed..seed+N-1 and average "
                        "(default: 2 for deep-decoder, 1 otherwise)")
    p.add_argument("--early-stop", choices=("none", "holdout"), default="none",
                   help="holdout: stop at the minimum of the residual on held-out k-space samples")
    p.add_argument("--lamda", type=float, help="classical methods: regularisation weight (default: per method)")
    p.add_argument("--report-holdout", type=float, metavar="FRACTION",
                   help="also reconstruct without FRACTION of the acquired samples and report how well the "
                        "result predicts them (NMSE, holdout.json beside the output)")
    p.add_argument("--compile", action="store_true",
                   help="un-trained methods: torch.compile the network (ConvDecoder on CPU: ~15%% faster per "
                        "iteration after a compilation of ~30-40 s; slower for the deep decoder; see README)")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-progress", action="store_true", help="hide progress bars")


def untrained_config(args):
    import torch

    from .fit import FitConfig
    from .recon import DEFAULT_FIT, UntrainedConfig

    device = args.device
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise InputError("--device", f"{device} requested but no CUDA device is available")
    net = {}
    if args.layers is not None:
        net["levels" if args.method == "dip" else "layers"] = args.layers
    if args.channels is not None:
        if args.method == "dip":
            net.update(channels_down=args.channels, channels_up=args.channels)
        else:
            net["channels"] = args.channels
    fit_kwargs = dict(DEFAULT_FIT[args.method], seed=args.seed, compile=args.compile)
    if args.iterations is not None:
        if args.iterations < 0:
            raise InputError("--iterations", f"must be >= 0, got {args.iterations}")
        fit_kwargs["iterations"] = args.iterations
    if args.lr is not None:
        if not (args.lr > 0 and math.isfinite(args.lr)):
            raise InputError("--lr", f"must be a finite number > 0, got {args.lr}")
        fit_kwargs["lr"] = args.lr
    return UntrainedConfig(method=args.method, forward_model=args.forward_model, net=net,
                           fit=FitConfig(**fit_kwargs), early_stop=args.early_stop, ensemble=args.ensemble,
                           device=device, seed=args.seed)


def build_reconstructor(args):
    from .pipeline import METHODS, make_reconstructor
    from .recon import UNTRAINED_METHODS

    if args.method not in METHODS:
        raise InputError("--method", f"unknown method {args.method!r}; choose from {', '.join(METHODS)}")
    cfg = untrained_config(args) if args.method in UNTRAINED_METHODS else None
    return make_reconstructor(args.method, lamda=args.lamda, untrained=cfg, show_progress=not args.no_progress)


def add_trainer_args(p):
    """Where the reconstruction runs: passed to the Lightning Trainer (see docs/execution.md)."""
    g = p.add_argument_group("execution (Lightning Trainer)")
    g.add_argument("--accelerator", default="auto", help="auto | cpu | gpu | cuda | mps (default: auto)")
    g.add_argument("--devices", default="1",
                   help="processes per node: a count, 'auto', -1 (all GPUs) or GPU indices like 0,1 (default: 1)")
    g.add_argument("--num-nodes", type=int, default=1, help="nodes (e.g. SLURM --nodes; default: 1)")
    g.add_argument("--strategy", default="auto", help="auto | ddp | ddp_spawn | ddp_notebook | single_device")
    g.add_argument("--precision", default="32-true",
                   help="32-true | 16-mixed (GPU) | bf16-mixed: the networks' forward pass under autocast")
    g.add_argument("--log-dir", type=Path, help="Lightning logs, metrics and images (default: OUT/logs)")
    g.add_argument("--log-images", type=int, default=1,
                   help="volumes per process whose middle slice is saved as a PNG (default: 1)")


def add_reconstruct(sub):
    p = sub.add_parser("reconstruct", help="reconstruct fastMRI or ISMRMRD h5 files or a .cfl/.npy k-space file")
    p.add_argument("--data-path", type=Path, required=True,
                   help="a directory of fastMRI and/or ISMRMRD (MRD) h5 files, one such file, or a .cfl/.npy file")
    p.add_argument("--out", type=Path, required=True, help="output directory (one h5 per volume)")
    p.add_argument("--output-format", action="append", choices=OUTPUT_FORMATS, metavar="{fastmri,nifti,dicom}",
                   help="repeatable: nifti (NAME.nii.gz) and dicom (NAME_dicom/, one series) are written beside "
                        "the fastMRI h5, which is always written (evaluate, metrics and resume read it)")
    add_recon_args(p)
    add_trainer_args(p)
    p.set_defaults(func=cmd_reconstruct)


def cmd_reconstruct(args) -> int:
    from .evaluate import format_table, summarise
    from .pipeline import KSPACE_SUFFIXES, MaskSpec, reconstruct_kspace_file

    if args.report_holdout is not None and not 0 < args.report_holdout < 1:
        raise InputError("--report-holdout", f"must be in (0, 1), got {args.report_holdout}")
    trainer_args(args)  # bad devices fail here, before any work
    args.output_format = tuple(dict.fromkeys(["fastmri"] + (args.output_format or [])))
    reconstructor = build_reconstructor(args)
    if args.data_path.suffix in KSPACE_SUFFIXES:
        # One real k-space file: the plain path (nothing to distribute).
        row = reconstruct_kspace_file(args.data_path, args.out, args.method, reconstructor,
                                      report_holdout=args.report_holdout, seed=args.seed,
                                      output_formats=args.output_format)
        print(json.dumps(row, indent=2))
        return 0
    mask = MaskSpec(args.mask_type, tuple(args.accelerations), tuple(args.center_fractions),
                    retrospective=args.retrospective_mask)
    rows = reconstruct_with_trainer(args, mask, reconstructor)
    if rows is None:  # not the global-zero process: it only reconstructs its share
        return 0
    # The module wrote metrics.json / holdout.json (global-zero process); print the table.
    if rows and "SSIM" in rows[0]:
        print(format_table(summarise(rows)))
    return 0


def trainer_args(args) -> dict:
    """The Trainer's device arguments from the CLI, validated before any work (InputError)."""
    from .lightning import check_trainer_args

    accelerator = args.accelerator
    if accelerator == "auto" and args.device != "auto":  # the older --device flag still works
        accelerator = "cpu" if args.device == "cpu" else "gpu"
    return check_trainer_args(accelerator, args.devices, args.num_nodes, args.strategy, args.precision)


def reconstruct_with_trainer(args, mask, reconstructor):
    """Reconstruct a fastMRI directory through :class:`lightning.SliceReconstructionModule`.

    Returns the per-volume rows of all processes on the global-zero process, None elsewhere.
    Every process (DDP re-runs this command per rank) lists the unfinished volumes before the
    Trainer starts, so all ranks agree on the work even while rank 0 starts writing.
    """
    import pytorch_lightning as pl
    from pytorch_lightning.utilities import rank_zero_only

    from .data.readers import validate_fastmri_file
    from .lightning import DataConfig, FastMRIDataModule, ReconConfig, SliceReconstructionModule, default_loggers
    from .pipeline import check_inputs, check_output_dir, finished_rows, h5_files, write_reports
    from .recon import UNTRAINED_METHODS

    rank0 = rank_zero_only.rank == 0
    log = print if rank0 else (lambda message: None)
    targs = trainer_args(args)
    if args.data_path.resolve() == args.out.resolve():
        raise InputError("--out", "must not be the --data-path directory (the run would read its own output)")
    files = h5_files(args.data_path, log=log)
    out = check_output_dir(args.out)
    infos = [validate_fastmri_file(f, args.challenge) for f in files]
    untrained = reconstructor.config if args.method in UNTRAINED_METHODS else None
    check_inputs(infos, mask, args.method, untrained, log=log)
    formats = getattr(args, "output_format", None) or ("fastmri",)
    pending = []
    for f in files:
        if (out / f.name).exists():
            log(f"{f.name}: already reconstructed, skipped")
            if rank0:  # a rerun asking for more formats: written from the finished h5
                from .export import write_missing

                write_missing(out, f, formats)
        else:
            pending.append(f.name)
    if not pending:  # nothing to fit: the reports still cover every finished volume
        if not rank0:
            return None
        rows = finished_rows(files, out, args.method, args.challenge, [])
        write_reports(out, args.method, rows, args.report_holdout)
        return rows
    config = ReconConfig(method=args.method, untrained=untrained, lamda=args.lamda, out_dir=out,
                         challenge=args.challenge, report_holdout=args.report_holdout, seed=args.seed,
                         log_images=args.log_images, show_progress=False, data_path=args.data_path,
                         output_formats=formats)
    module = SliceReconstructionModule(config)
    data = FastMRIDataModule(DataConfig(args.data_path, args.challenge, mask, files=pending))
    trainer = pl.Trainer(**targs, logger=default_loggers(args.log_dir or out / "logs"), default_root_dir=out,
                         use_distributed_sampler=False, enable_checkpointing=False, enable_model_summary=False,
                         enable_progress_bar=not args.no_progress)
    metrics_json = out / "metrics.json"
    stamp = metrics_json.stat().st_mtime_ns if metrics_json.exists() else None
    try:
        trainer.test(module, datamodule=data, verbose=False)
    except SystemExit:
        if trainer.interrupted:  # Lightning turns Ctrl-C into exit(1) after its own teardown
            raise KeyboardInterrupt from None
        raise
    if not trainer.is_global_zero:
        return None
    if not module.rows and metrics_json.exists() and metrics_json.stat().st_mtime_ns != stamp:
        # ddp_spawn ran the module in child processes: its rows come back through the report.
        return json.loads(metrics_json.read_text())["rows"]
    return module.rows


def add_demo(sub):
    p = sub.add_parser("demo", help="the main job: simulate default data, reconstruct, metrics table, PNG")
    p.add_argument("--out", type=Path, default=Path("outputs/demo"))
    p.add_argument("--methods", nargs="+", default=["zero-filled", "l1-wavelet", "conv-decoder", "deep-decoder"])
    p.add_argument("--acceleration", type=float, default=4)
    p.add_argument("--center-fraction", type=float, default=0.08)
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=cmd_demo)


def cmd_demo(args) -> int:
    from .data.simulate import simulate_dataset
    from .evaluate import format_table, summarise
    from .figures import comparison_figure
    from .pipeline import METHODS, MaskSpec, make_reconstructor, read_reconstruction, reconstruct_dataset

    # Arguments first, before simulating anything.
    unknown = [m for m in args.methods if m not in METHODS]
    if unknown:
        raise InputError("--methods", f"unknown method(s) {', '.join(unknown)}; choose from {', '.join(METHODS)}")
    try:
        mask = MaskSpec("equispaced_fraction", (args.acceleration,), (args.center_fraction,))
        mask.calibration_width(DEMO_SHAPE[1])
    except InputError as exc:  # the library names reconstruct's flags; the demo's are singular
        raise InputError(exc.source.replace("--accelerations", "--acceleration")
                         .replace("--center-fractions", "--center-fraction"), exc.problem) from None
    data_dir = args.out / "data"
    if not sorted(data_dir.glob("*.h5")):
        print(f"simulating the default multi-coil dataset into {data_dir}")
        simulate_dataset(data_dir, challenge="multicoil", num_volumes=1, slices=1, coils=8, shape=DEMO_SHAPE,
                         seed=args.seed)
    rows, recon_paths = [], {}
    for method in args.methods:
        out = args.out / method
        print(f"reconstructing with {method} at {args.acceleration:g}x")
        rows += reconstruct_dataset(data_dir, out, method, "multicoil", mask, make_reconstructor(method, seed=args.seed),
                                    resume=False, seed=args.seed)
        recon_paths[method] = sorted(out.glob("*.h5"))[0]
    summary = summarise(rows)
    print(f"\nfastMRI metrics ({args.acceleration:g}x equispaced_fraction, centre {args.center_fraction}), "
          f"simulated 8-coil data:")
    print(format_table(summary))
    import h5py

    with h5py.File(sorted(data_dir.glob("*.h5"))[0], "r") as hf:
        target = hf["reconstruction_rss"][0]
    recons = {m: read_reconstruction(p)[0] for m, p in recon_paths.items()}
    png = comparison_figure(target, recons, args.out / "demo.png", metrics=summary,
                            title=f"{args.acceleration:g}x, simulated 8-coil data, slice 0")
    print(f"\nfigure: {png}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="fastmri-untrained", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    add_demo(sub)
    add_simulate(sub)
    add_reconstruct(sub)
    from .leaderboard import add_evaluate
    from .trained import add_predict_baseline, add_train_baseline

    add_evaluate(sub)
    add_train_baseline(sub)
    add_predict_baseline(sub)
    return parser


def one_line_warning(message, category, filename, lineno, line=None) -> str:
    """Warnings on the command line: one line each, like the errors."""
    return f"fastmri-untrained: warning: {message}\n"


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    formatwarning, warnings.formatwarning = warnings.formatwarning, one_line_warning
    try:
        return args.func(args)
    except InputError as exc:
        print(f"fastmri-untrained: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("fastmri-untrained: interrupted; finished volumes are kept, no partial file was written",
              file=sys.stderr)
        return 130
    finally:
        warnings.formatwarning = formatwarning


if __name__ == "__main__":
    sys.exit(main())
