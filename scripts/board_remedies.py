"""Remedies for an un-trained method where the board is weakest, judged slice by slice against its default.

    .venv/bin/python scripts/board_remedies.py --board outputs/board --out outputs/board_remedies \\
        --remedy sense="--forward-model sense" --remedy ensemble2="--ensemble 2"
    .venv/bin/python scripts/board_remedies.py ... --split test --remedy sense="--forward-model sense"

On a board written by ``scripts/leaderboard_simulated.py`` (its ``BOARD/data``), at one protocol
(``--acceleration``, with the board's centre fraction):

- ``--split tuning`` (default): the tuning slices are the board's validation files plus the first
  ``--train-files`` training files of each source (``slice_sources``), linked into
  ``OUT/tuning/data``; none is a test slice (checked, as the board checks its splits). The method's
  package default and each remedy are reconstructed there (``OUT/tuning/<A>x/METHOD`` and
  ``METHOD+NAME``).
- ``--split test``: each remedy on the board's 34 test slices; the default is the board's own
  ``BOARD/<A>x/METHOD`` (reconstructed in ``OUT`` if the board lacks it or with ``--common``).

Then ``fastmri-untrained evaluate --paired-against METHOD``: every remedy minus the default on the
same slices, with 95% bootstrap intervals over slices and over whole volumes, and the fraction of
slices won (``OUT/<split>/<A>x/report/``). The adoption rule of the docs: a remedy becomes a default
only if its interval over the tuning slices lies above zero and it does not lose on the test
slices. Rerunning resumes (a finished variant has its ``timing.json``).
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from collections import defaultdict
from pathlib import Path

import h5py

sys.path.insert(0, str(Path(__file__).resolve().parent))
from leaderboard_simulated import BOARD, reconstruct_argv, run_command, source_overlap  # noqa: E402

from fastmri_untrained.data.readers import read_slice_sources  # noqa: E402
from fastmri_untrained.pipeline import write_json  # noqa: E402


def parse_remedy(text: str) -> tuple[str, list[str]]:
    name, sep, flags = text.partition("=")
    if not sep or not name or "/" in name:
        raise argparse.ArgumentTypeError(f"--remedy: expected NAME=\"FLAGS\", got {text!r}")
    return name, shlex.split(flags)


def source_of(path: Path) -> str:
    """The source of a simulated file: its first slice source without the index (``mni152:T1[64]``)."""
    with h5py.File(path, "r") as hf:
        names = read_slice_sources(hf) or ("unknown",)
    return names[0].split("[")[0]


def tuning_split(board: Path, out: Path, train_files: int) -> Path:
    """Link the validation files and the first ``train_files`` training files per source into
    ``out``; refuse if any of their source slices is a test slice."""
    chosen = sorted((board / "data" / "val").glob("*.h5"))
    per_source = defaultdict(list)
    for path in sorted((board / "data" / "train").glob("*.h5")):
        per_source[source_of(path)].append(path)
    for paths in per_source.values():
        chosen += paths[:train_files]
    out.mkdir(parents=True, exist_ok=True)
    for path in chosen:
        link = out / path.name
        if not link.exists():
            link.symlink_to(path.resolve())
    shared = source_overlap(board / "data" / "test", [out])
    if shared:
        raise SystemExit(f"tuning slices that are test slices: {', '.join(shared)}")
    return out


def reconstruct(data: Path, out: Path, method: str, accel: float, cf: float, flags: list[str], seed: int,
                log: Path) -> None:
    if (out / "timing.json").exists():
        return
    argv = reconstruct_argv(data, out, method, (accel, cf), flags, seed)
    seconds = run_command(argv, log=log)
    write_json(out / "timing.json", {"seconds": seconds, "command": shlex.join(argv)})


def summary_lines(board: dict, reference: str) -> list[str]:
    lines = [f"SSIM minus {reference} (same slices; 95% CI over slices / over volumes; slices won):"]
    for name, stats in board["paired"].items():
        s = stats["SSIM"]
        lines.append(f"  {name:<28} {s['mean']:+.4f} [{s['ci_low']:+.4f}, {s['ci_high']:+.4f}] / "
                     f"[{s['ci_low_volumes']:+.4f}, {s['ci_high_volumes']:+.4f}]  {s['win_fraction']:.2f}"
                     f"  ({s['n']} slices, {s['volumes']} volumes)")
    return lines


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--board", type=Path, required=True, help="a scripts/leaderboard_simulated.py output directory")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--method", default="conv-decoder", choices=("conv-decoder", "deep-decoder", "dip"))
    p.add_argument("--acceleration", type=float, default=8.0)
    p.add_argument("--center-fraction", type=float, help="default: the board's at --acceleration")
    p.add_argument("--remedy", type=parse_remedy, action="append", required=True, metavar='NAME="FLAGS"',
                   help="a variant: reconstruct flags added to the method's defaults (repeatable)")
    p.add_argument("--split", choices=("tuning", "test"), default="tuning")
    p.add_argument("--train-files", type=int, default=2, help="training files per source in the tuning split")
    p.add_argument("--common", default="", help="flags for the default and every remedy (the tests: tiny fits)")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    protocols = dict(BOARD.protocols)
    if args.center_fraction is None and args.acceleration not in protocols:
        p.error(f"--acceleration must be one of {sorted(protocols)} (or give --center-fraction), "
                f"got {args.acceleration:g}")
    accel = args.acceleration
    cf = protocols[accel] if args.center_fraction is None else args.center_fraction
    common = shlex.split(args.common)
    root = args.out / args.split / f"{accel:g}x"
    log = args.out / "commands.log"
    if args.split == "tuning":
        data = tuning_split(args.board, args.out / "tuning" / "data", args.train_files)
        default = root / args.method
    else:
        data = args.board / "data" / "test"
        default = args.board / f"{accel:g}x" / args.method  # the board's own row, package defaults
        if common or not (default / "timing.json").exists():
            default = root / args.method  # never written into the board, nor with --common flags
    reconstruct(data, default, args.method, accel, cf, common, args.seed, log)
    variants = [default]
    for name, flags in args.remedy:
        variants.append(root / f"{args.method}+{name}")
        reconstruct(data, variants[-1], args.method, accel, cf, [*common, *flags], args.seed, log)
    report = root / "report"
    run_command(["evaluate", "--target-path", str(data), "--challenge", "multicoil", "--predictions-path",
                 *map(str, variants), "--out", str(report), "--paired-against", args.method], log=log)
    board = json.loads((report / "leaderboard.json").read_text())
    seconds = {v.name: json.loads((v / "timing.json").read_text())["seconds"] for v in variants}
    result = {"split": args.split, "acceleration": accel, "center_fraction": cf, "method": args.method,
              "remedies": {name: shlex.join(flags) for name, flags in args.remedy}, "seconds": seconds,
              "summary": board["summary"], "paired": board["paired"]}
    write_json(root / "remedies.json", result)
    print("\n".join(summary_lines(board, args.method)))
    return result


if __name__ == "__main__":
    main()
