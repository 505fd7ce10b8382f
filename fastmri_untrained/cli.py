"""Command line: fastmri-untrained demo | simulate | reconstruct | evaluate | train-baseline | predict-baseline.

Bad input is reported as one line naming the file or argument and the problem (exit code 2),
before any work is done. Library code names arguments by their parameter names; this module
reports them under the subcommand's flags.
"""

from __future__ import annotations

import argparse
import functools
import json
import math
import sys
import warnings
from pathlib import Path

from .devices import DEVICE_HELP, parse_device
from .errors import InputError, Terminated

OUTPUT_FORMATS = ("fastmri", "nifti", "dicom")  # export.OUTPUT_FORMATS, without importing it here

DEMO_SHAPE = (256, 192)  # k-space; target 128x128: the un-trained fits take ~1-2 min each on 2 cores

DESCRIPTION = ("Un-trained network MRI reconstruction (ConvDecoder, deep decoder, DIP) and classical and "
               "trained baselines on fastMRI data.")
EPILOG = "Each command's options and their defaults: fastmri-untrained COMMAND --help"


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """argparse's defaults in every help line, except where there is nothing to show (None, a
    flag's False) or the help already says what the default is."""

    def _get_help_string(self, action):
        help_text = action.help or ""
        if action.default is None or action.default is False or "default" in help_text:
            return help_text
        return super()._get_help_string(action)


# Library parameter names spelled otherwise on the command line, and flags the library still
# names itself that this command line spells otherwise.
PARAMETER_DESTS = {"accelerator": "device", "output_formats": "output_format", "prediction_paths": "predictions_path",
                   "out_dir": "out"}
RENAMED_FLAGS = {"--accelerator": "--device"}


def flag_for(source: str, flags: dict) -> str:
    """The flag under which a command reports an InputError's ``source``: a parameter name
    (``center_fractions``) or flag becomes the command's flag (``--center-fractions``, or
    ``--center-fraction`` where the command takes one value); a file name stays as it is.
    ``flags`` maps the command's argument names (dests) to their flags."""
    source = RENAMED_FLAGS.get(source, source)
    name = source[2:].replace("-", "_") if source.startswith("--") else source
    if not name.isidentifier():
        return source
    other_number = name[:-1] if name.endswith("s") else name + "s"
    for dest in (name, PARAMETER_DESTS.get(name), other_number):
        if dest in flags:
            return flags[dest]
    return source


def command_flags(args) -> dict:
    """The parsed command's flags by argument name (every option's name is argparse's default,
    derived from its flag)."""
    return {dest: "--" + dest.replace("_", "-") for dest in vars(args) if dest not in ("func", "command", "given")}


class GivenAction(argparse.Action):
    """Store the value and remember that the option was given, so that an option the input
    ignores can be named in a warning."""

    def __call__(self, parser, namespace, values, option_string=None):
        setattr(namespace, self.dest, values)
        namespace.given = tuple(getattr(namespace, "given", ())) + (option_string,)


def _nonnegative_int(value: str) -> int:
    v = int(value)
    if v < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {value}")
    return v


def _positive_int(value: str) -> int:
    v = int(value)
    if v < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return v


def add_simulate(sub):
    p = sub.add_parser("simulate", help="write simulated data in fastMRI's h5 schema (or as ISMRMRD raw data)",
                       description="Simulate multi-coil (or single-coil) k-space of real MR images with "
                                   "fastMRI's file layout and targets.")
    p.add_argument("--out", type=Path, required=True, help="output directory")
    p.add_argument("--challenge", choices=("multicoil", "singlecoil"), default="multicoil",
                   help="coil k-space with RSS targets, or single-coil k-space")
    p.add_argument("--num-volumes", type=_positive_int, default=2, help="volumes (one h5 file each)")
    p.add_argument("--slices", type=_positive_int, default=2, help="slices per volume")
    p.add_argument("--coils", type=_positive_int, default=8, help="receive coils (multicoil)")
    p.add_argument("--shape", type=_positive_int, nargs=2, default=(640, 368), metavar=("H", "W"),
                   help="k-space matrix (readout H, 2x oversampled: even, >= 8; phase encoding W >= 4)")
    p.add_argument("--seed", type=int, default=0,
                   help="non-negative; picks the images, coil maps and noise (file names carry it)")
    p.add_argument("--contiguous", action="store_true",
                   help="each volume is a slab of contiguous slices of one 3-D brain volume (--slab-source) "
                        "instead of unrelated slices; each file lists its slices' sources (attribute slice_sources)")
    p.add_argument("--slab-source", default="dipy:S0_10slices",
                   help="with --contiguous: dipy:S0_10slices (b0, at most 10 slices) or mni152:T1 (the MNI152 "
                        "T1 template bundled with nilearn, at most 30 axial slices 3 mm apart)")
    p.add_argument("--format", choices=("fastmri", "mrd"), default="fastmri",
                   help="fastmri: fastMRI h5 with targets; mrd: ISMRMRD raw data (written with the ismrmrd package)")
    p.add_argument("--acceleration", type=float,
                   help="--format mrd: write only the lines of an equispaced mask at this acceleration, the centre "
                        "lines flagged as parallel-imaging calibration (default: fully sampled)")
    p.add_argument("--center-fraction", type=float, default=0.08,
                   help="fully sampled centre of that mask (--format mrd with --acceleration)")
    p.set_defaults(func=cmd_simulate)


def cmd_simulate(args) -> int:
    from .data.simulate import shape_problem, simulate_dataset
    from .pipeline import check_output_dir

    problem = shape_problem(args.shape)
    if problem:
        raise InputError("--shape", problem)
    if args.seed < 0:
        raise InputError("--seed", f"must be >= 0 (numpy seeds are non-negative), got {args.seed}")
    from .data.images import SLAB_SOURCES

    if args.slab_source not in SLAB_SOURCES:
        raise InputError("--slab-source", f"must be one of {', '.join(SLAB_SOURCES)}, got {args.slab_source!r}")
    depth = SLAB_SOURCES[args.slab_source]
    if args.contiguous and args.slices > depth:
        raise InputError("--slices", f"must be <= {depth} with --contiguous --slab-source {args.slab_source} (its "
                                     f"slices), got {args.slices}")
    mask = None
    if args.format == "mrd":
        if args.challenge != "multicoil":
            raise InputError("--format", "mrd is written for --challenge multicoil")
        if args.acceleration is not None:
            from .operators.masks import check_column_mask

            mask = check_column_mask("equispaced_fraction", args.shape[1], args.acceleration, args.center_fraction)
            mask = mask.numpy().reshape(-1).astype(bool)
    elif args.acceleration is not None:
        raise InputError("--acceleration", "applies to --format mrd (fastMRI files are undersampled by "
                                           "reconstruct's --accelerations)")
    check_output_dir(args.out)  # a file in the way or no permission: fail before simulating
    kwargs = dict(challenge=args.challenge, num_volumes=args.num_volumes, slices=args.slices, coils=args.coils,
                  shape=tuple(args.shape), seed=args.seed, contiguous=args.contiguous,
                  slab_source=args.slab_source)
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
    from .operators.masks import MASK_TYPES
    from .pipeline import METHODS

    p.add_argument("--method", default="conv-decoder", help=f"one of: {', '.join(METHODS)}")
    p.add_argument("--challenge", choices=("multicoil", "singlecoil"), default="multicoil",
                   help="fastMRI challenge of the h5 files: coil k-space with RSS targets, or single-coil")
    p.add_argument("--mask-type", default="equispaced_fraction", action=GivenAction,
                   help=f"retrospective undersampling of fully sampled h5 files, one of: {', '.join(MASK_TYPES)}")
    p.add_argument("--accelerations", type=float, nargs="+", default=[4], action=GivenAction,
                   help="undersampling factors (one is drawn per volume, as in fastMRI)")
    p.add_argument("--center-fractions", type=float, nargs="+", default=[0.08], action=GivenAction,
                   help="fully sampled centre fraction, one per acceleration")
    p.add_argument("--retrospective-mask", action="store_true",
                   help="also undersample files that are already undersampled (fastMRI test/challenge files "
                        "keep their own mask by default)")
    p.add_argument("--forward-model", choices=("coil-images", "sense"),
                   help="un-trained methods: fit coil images (RSS) or one image through ESPIRiT maps "
                        "(default: coil-images for conv-decoder and dip, sense for deep-decoder)")
    p.add_argument("--iterations", type=int, help="fitting iterations (default: per method, see README)")
    p.add_argument("--lr", type=float, help="learning rate (default: per method)")
    p.add_argument("--layers", type=_positive_int, help="network depth (DIP: levels; default: per method)")
    p.add_argument("--channels", type=_positive_int, help="network width (default: per method)")
    p.add_argument("--ensemble", type=_positive_int,
                   help="un-trained methods: fit N times from seeds seed..seed+N-1 and average "
                        "(default: 2 for deep-decoder, 1 otherwise)")
    p.add_argument("--warm-start", type=_nonnegative_int, default=0, metavar="ITERATIONS",
                   help="un-trained methods: fit each slice after the first of a volume from its neighbour's fitted "
                        "weights, for ITERATIONS iterations (0: every slice from scratch; docs/benchmarks.md)")
    p.add_argument("--batch-slices", type=_positive_int, default=1, metavar="K",
                   help="un-trained methods: fit up to K slices of a volume (and each slice's ensemble members) in "
                        "one pass; pays on a GPU, slower on a 2-core CPU (scripts/bench_batched.py)")
    p.add_argument("--joint-slices", type=_positive_int, metavar="K",
                   help="un-trained methods: fit up to K consecutive slices of a volume with ONE network (its "
                        "layers shared, an output per slice), then each slice briefly alone; a volume then costs "
                        "about one slice's fit (default: 8 for conv-decoder and deep-decoder; 1 for dip and with "
                        "--warm-start, --batch-slices or --early-stop holdout; docs/benchmarks.md)")
    p.add_argument("--joint-iterations", type=_positive_int, metavar="N",
                   help="iterations of each joint network (default: per method)")
    p.add_argument("--joint-refine", type=_nonnegative_int, metavar="N",
                   help="iterations of each slice alone after its joint network (default: per method; 0: none)")
    p.add_argument("--save-uncertainty", action="store_true",
                   help="un-trained ensembles (--ensemble >= 2; deep-decoder by default): also store the members' "
                        "per-pixel standard deviation as reconstruction_std in each output h5")
    p.add_argument("--early-stop", choices=("none", "holdout"), default="none",
                   help="holdout: stop at the minimum of the residual on held-out k-space samples")
    p.add_argument("--lamda", type=float, help="classical methods: regularisation weight, relative to k-space scaled so that the zero-filled "
                        "image has maximum 1 (default: L1-wavelet 0.1 x the estimated noise level, TV and "
                        "SENSE 1e-2)")
    p.add_argument("--cycle-spin", action="store_true",
                   help="l1-wavelet: shift the wavelet grid at random every iteration (cycle spinning, BART's "
                        "default); better on real and simulated data (docs/real_data.md)")
    p.add_argument("--report-holdout", type=float, metavar="FRACTION",
                   help="also reconstruct without FRACTION of the acquired samples and report how well the "
                        "result predicts them (NMSE, holdout.json beside the output); a score for data without "
                        "ground truth (zero-filled predicts nothing: it scores 1.0 by construction)")
    p.add_argument("--compile", action="store_true",
                   help="un-trained methods: torch.compile the network (ConvDecoder on CPU: ~15%% faster per "
                        "iteration after a compilation of ~30-40 s; slower for the deep decoder; see README)")
    p.add_argument("--seed", type=int, default=0,
                   help="un-trained methods: network initialisation (and the --report-holdout split), per slice")
    p.add_argument("--no-progress", action="store_true", help="hide progress bars")


def untrained_config(args):
    from .fit import FitConfig
    from .recon import DEFAULT_FIT, UntrainedConfig

    device = parse_device(args.device).torch
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
                           warm_start=args.warm_start, batch=args.batch_slices, joint_slices=args.joint_slices,
                           joint_iterations=args.joint_iterations, joint_refine=args.joint_refine, device=device,
                           seed=args.seed)


def build_reconstructor(args):
    from .pipeline import METHODS, make_reconstructor
    from .recon import UNTRAINED_METHODS

    if args.method not in METHODS:
        raise InputError("--method", f"unknown method {args.method!r}; choose from {', '.join(METHODS)}")
    cfg = untrained_config(args) if args.method in UNTRAINED_METHODS else None
    return make_reconstructor(args.method, lamda=args.lamda, untrained=cfg, show_progress=not args.no_progress,
                              cycle_spin=args.cycle_spin)


def add_trainer_args(p):
    """Where the reconstruction runs: passed to the Lightning Trainer (see docs/execution.md)."""
    g = p.add_argument_group("execution (Lightning Trainer)")
    g.add_argument("--device", default="auto", help=DEVICE_HELP + "; cuda:N runs on GPU N")
    g.add_argument("--devices", default="1",
                   help="processes per node: a count, 'auto', -1 (all GPUs) or GPU indices like 0,1")
    g.add_argument("--num-nodes", type=int, default=1, help="nodes (e.g. SLURM --nodes)")
    g.add_argument("--strategy", default="auto", help="auto | ddp | ddp_spawn | ddp_notebook | single_device")
    g.add_argument("--precision", default="32-true",
                   help="32-true | 16-mixed (GPU) | bf16-mixed: the networks' forward pass under autocast")
    g.add_argument("--log-dir", type=Path, help="Lightning logs, metrics and images (default: OUT/logs)")
    g.add_argument("--log-images", type=int, default=1,
                   help="volumes per process whose middle slice is saved as a PNG in the logs")


KSPACE_INPUT = "real k-space input (.npy/.cfl/.hdr or ISMRMRD h5)"


def add_reconstruct(sub):
    p = sub.add_parser("reconstruct", help="reconstruct fastMRI or ISMRMRD h5 files or a .cfl/.npy k-space file",
                       description="Reconstruct every volume of a fastMRI/ISMRMRD h5 directory (or one h5, "
                                   ".cfl/.hdr or .npy k-space file) into OUT, one h5 per volume; a rerun "
                                   "skips finished volumes.")
    p.add_argument("--data-path", type=Path, required=True,
                   help="a directory of fastMRI and/or ISMRMRD (MRD) h5 files, one such file, or a .cfl/.npy file")
    p.add_argument("--out", type=Path, required=True, help="output directory (one h5 per volume)")
    p.add_argument("--output-format", action="append", choices=OUTPUT_FORMATS, metavar="{fastmri,nifti,dicom}",
                   help="repeatable: nifti (NAME.nii.gz) and dicom (NAME_dicom/, one series) are written beside "
                        "the fastMRI h5, which is always written (evaluate, metrics and resume read it)")
    p.add_argument("--preview", action=argparse.BooleanOptionalAction, default=None,
                   help=f"write NAME.png (the middle slice) beside each reconstructed volume (default: on for "
                        f"{KSPACE_INPUT}, off for fastMRI h5 files)")
    add_recon_args(p)
    add_trainer_args(p)
    p.set_defaults(func=cmd_reconstruct, given=())


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
        ignored = [flag for flag in ("--mask-type", "--accelerations", "--center-fractions") if flag in args.given]
        if ignored:
            warn(f"{args.data_path.name}: {', '.join(ignored)} ignored: the sampling mask of a k-space file "
                 "is its zeros")
        row = reconstruct_kspace_file(args.data_path, args.out, args.method, reconstructor,
                                      report_holdout=args.report_holdout, seed=args.seed,
                                      output_formats=args.output_format, save_uncertainty=args.save_uncertainty)
        if args.preview is not False:
            write_preview(args.out / row["file"], args.method)
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


def warn(message: str) -> None:
    """A one-line warning on stderr, in the form of the errors."""
    print(f"fastmri-untrained: warning: {message}", file=sys.stderr)


def write_preview(volume_file: Path, method: str) -> Path:
    """NAME.png beside NAME.h5: the middle slice of the written reconstruction (atomic)."""
    from .figures import preview_figure
    from .pipeline import read_reconstruction

    volume = read_reconstruction(volume_file)
    n = volume.shape[0]
    title = f"{volume_file.name}: {method}" + (f", slice {n // 2 + 1} of {n}" if n > 1 else "")
    return preview_figure(volume, volume_file.with_suffix(".png"), title=title)


def trainer_args(args) -> dict:
    """The Trainer's device arguments from the CLI, validated before any work (InputError)."""
    from .lightning import check_trainer_args

    device = parse_device(args.device)
    devices = args.devices
    if device.index is not None:  # cuda:N: that GPU, unless --devices says otherwise
        if str(devices) != "1":
            raise InputError("--devices", f"give GPUs either with --device {args.device} or with --devices, "
                                          "not both")
        devices = [device.index]
    return check_trainer_args(device.accelerator, devices, args.num_nodes, args.strategy, args.precision)


def reconstruct_with_trainer(args, mask, reconstructor):
    """``reconstruct`` on a fastMRI directory: :func:`lightning.reconstruct_dataset` with the
    command's flags; returns the rows on the global-zero process, None elsewhere."""
    from .lightning import reconstruct_dataset
    from .pipeline import h5_files

    files = h5_files(args.data_path, log=lambda message: None)
    finished = {f.name for f in files if (args.out / f.name).exists()}
    rows = reconstruct_dataset(args.data_path, args.out, args.method, args.challenge, mask, reconstructor,
                               args.report_holdout, args.seed, lamda=args.lamda, trainer=trainer_args(args),
                               output_formats=args.output_format, log_dir=args.log_dir, log_images=args.log_images,
                               progress=not args.no_progress, save_uncertainty=args.save_uncertainty)
    if rows is not None:
        write_previews(args, files, args.out, [f.name for f in files if f.name not in finished])
    return rows


def write_previews(args, files, out: Path, written) -> None:
    """PNG previews of the finished volumes (:func:`write_preview`): those written by this run,
    and any an earlier run left without one; by default only for ISMRMRD (real k-space) input."""
    from .data.mrd import is_mrd

    if args.preview is False:
        return
    for f in files:
        h5, png = out / f.name, (out / f.name).with_suffix(".png")
        if h5.exists() and (f.name in written or not png.exists()) and (args.preview or is_mrd(f)):
            write_preview(h5, args.method)


def add_demo(sub):
    p = sub.add_parser("demo", help="the main job: simulate default data, reconstruct, metrics table, PNG",
                       description="Simulate one 8-coil volume, reconstruct it with each method, print the fastMRI "
                                   "metrics and write OUT/demo.png.")
    p.add_argument("--out", type=Path, default=Path("outputs/demo"),
                   help="output directory: data/, one directory per method, demo.png")
    p.add_argument("--methods", nargs="+", default=["zero-filled", "l1-wavelet", "conv-decoder", "deep-decoder"],
                   help="methods to run (see reconstruct --help for all)")
    p.add_argument("--acceleration", type=float, default=4, help="undersampling factor (equispaced mask)")
    p.add_argument("--center-fraction", type=float, default=0.08, help="fully sampled centre fraction")
    p.add_argument("--seed", type=int, default=0, help="simulated data and network initialisation")
    p.add_argument("--save-uncertainty", action="store_true",
                   help="store and show the per-pixel standard deviation of the ensembles (deep-decoder: 2 fits)")
    p.set_defaults(func=cmd_demo)


def cmd_demo(args) -> int:
    from .data.simulate import simulate_dataset
    from .evaluate import format_table, summarise
    from .figures import comparison_figure
    from .lightning import reconstruct_dataset
    from .pipeline import METHODS, UNCERTAINTY_KEY, MaskSpec, read_reconstruction
    from .recon import UNTRAINED_METHODS, UntrainedConfig

    # Arguments first, before simulating anything.
    unknown = [m for m in args.methods if m not in METHODS]
    if unknown:
        raise InputError("--methods", f"unknown method(s) {', '.join(unknown)}; choose from {', '.join(METHODS)}")
    mask = MaskSpec("equispaced_fraction", (args.acceleration,), (args.center_fraction,))
    mask.calibration_width(DEMO_SHAPE[1])
    data_dir = args.out / "data"
    if not sorted(data_dir.glob("*.h5")):
        print(f"simulating the default multi-coil dataset into {data_dir}")
        simulate_dataset(data_dir, challenge="multicoil", num_volumes=1, slices=1, coils=8, shape=DEMO_SHAPE,
                         seed=args.seed)
    rows, recon_paths = [], {}
    for method in args.methods:
        out = args.out / method
        print(f"reconstructing with {method} at {args.acceleration:g}x")
        keep_std = args.save_uncertainty and UntrainedConfig(method=method).ensemble > 1 \
            if method in UNTRAINED_METHODS else False
        rows += reconstruct_dataset(data_dir, out, method, "multicoil", mask, seed=args.seed, resume=False,
                                    save_uncertainty=keep_std)
        recon_paths[method] = sorted(out.glob("*.h5"))[0]
    summary = summarise(rows)
    print(f"\nfastMRI metrics ({args.acceleration:g}x equispaced_fraction, centre {args.center_fraction}), "
          f"simulated 8-coil data:")
    print(format_table(summary))
    import h5py

    with h5py.File(sorted(data_dir.glob("*.h5"))[0], "r") as hf:
        target = hf["reconstruction_rss"][0]
    recons = {m: read_reconstruction(p)[0] for m, p in recon_paths.items()}
    stds = {}
    for m, p in recon_paths.items():
        with h5py.File(p, "r") as hf:
            if UNCERTAINTY_KEY in hf:
                stds[m] = hf[UNCERTAINTY_KEY][0]
    png = comparison_figure(target, recons, args.out / "demo.png", metrics=summary,
                            title=f"{args.acceleration:g}x, simulated 8-coil data, slice 0", uncertainty=stds)
    print(f"\nfigure: {png}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="fastmri-untrained", description=DESCRIPTION, epilog=EPILOG,
                                     formatter_class=HelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True, title="commands", metavar="COMMAND",
                                parser_class=functools.partial(argparse.ArgumentParser, formatter_class=HelpFormatter))
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
        with warnings.catch_warnings():
            # Lightning's own deprecation notice about torch's pytree API: nothing a user can act on.
            warnings.filterwarnings("ignore", message=".*LeafSpec.*is deprecated", category=Warning)
            return args.func(args)
    except InputError as exc:
        print(f"fastmri-untrained: error: {flag_for(exc.source, command_flags(args))}: {exc.problem}",
              file=sys.stderr)
        return 2
    except Terminated:
        print("fastmri-untrained: terminated (SIGTERM); finished volumes are kept, no partial file was written",
              file=sys.stderr)
        return 143
    except KeyboardInterrupt:
        print("fastmri-untrained: interrupted; finished volumes are kept, no partial file was written",
              file=sys.stderr)
        return 130
    finally:
        warnings.formatwarning = formatwarning


if __name__ == "__main__":
    sys.exit(main())
