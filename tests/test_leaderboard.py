"""Leaderboard evaluation: fastmri.evaluate's numbers, ranking, reports, and bad input by name."""

import argparse
import csv
import json
import shutil
from pathlib import Path
from types import SimpleNamespace

import h5py
import numpy as np
import pytest
from fastmri import evaluate as fm_eval

from fastmri_untrained import leaderboard
from fastmri_untrained.data.simulate import SimulationConfig, simulate_dataset
from fastmri_untrained.errors import InputError
from fastmri_untrained.leaderboard import add_evaluate, evaluate_predictions
from fastmri_untrained.pipeline import save_volume

SHAPE = (96, 64)  # targets 48x48
ATTR_SCALE = 1.25  # the files' 'max' attribute differs from the target max, so the two maxval modes differ
EPS32, EPS64 = float(np.finfo(np.float32).eps), float(np.finfo(np.float64).eps)
# fastmri.evaluate's metrics of float32 volumes run in float32 (NMSE, and SSIM in skimage): memory layout
# or maxval's dtype (Python float vs np.float32) move them by a few eps32 (<= 0.1 eps32 measured)
METRIC_RTOL = 8 * EPS32


def std_rtol(mean: float, std: float) -> float:
    """Metric errors of METRIC_RTOL * |mean| reach a standard deviation amplified by |mean| / std."""
    return METRIC_RTOL * (1 + abs(mean) / std)


def _noisy_predictions(targets: Path, out: Path, level: float, seed: int) -> Path:
    """Target + Gaussian noise (level x target max): a 'method' of known quality."""
    out.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    for f in sorted(targets.glob("*.h5")):
        with h5py.File(f, "r") as hf:
            t = hf["reconstruction_rss"][()]
        save_volume(out, f.name, t + level * t.max() * rng.standard_normal(t.shape).astype(np.float32))
    return out


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("lb")
    targets = root / "targets"
    simulate_dataset(targets, "multicoil", num_volumes=2, slices=2, coils=2, shape=SHAPE, seed=1, show_progress=False)
    cfg = SimulationConfig(challenge="multicoil", num_volumes=1, slices=3, coils=2, shape=SHAPE, seed=2,
                           acquisition="AXT2")
    simulate_dataset(targets, config=cfg, show_progress=False)
    for f in targets.glob("*.h5"):
        with h5py.File(f, "r+") as hf:
            hf.attrs["max"] = float(hf["reconstruction_rss"][()].max()) * ATTR_SCALE
    good = _noisy_predictions(targets, root / "preds" / "good", 0.02, seed=0)
    bad = _noisy_predictions(targets, root / "preds" / "bad", 0.2, seed=1)
    return SimpleNamespace(root=root, targets=targets, good=good, bad=bad)


def _scalar(value) -> float:
    return float(np.asarray(value).reshape(-1)[0])  # fastmri's SSIM is a 1-element array


def _copy(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def test_metrics_equal_fastmri_evaluate_per_volume_and_aggregated(data):
    board = evaluate_predictions(data.targets, [data.bad, data.good], "multicoil")
    assert len(board.rows) == 6
    for row in board.rows:
        pred_dir = data.good if row["method"] == "good" else data.bad
        with h5py.File(data.targets / row["file"], "r") as t, h5py.File(pred_dir / row["file"], "r") as p:
            gt, pred = t["reconstruction_rss"][()], p["reconstruction"][()]
        assert row["NMSE"] == pytest.approx(float(fm_eval.nmse(gt, pred)), rel=METRIC_RTOL)
        assert row["PSNR"] == pytest.approx(float(fm_eval.psnr(gt, pred)), rel=METRIC_RTOL)
        assert row["SSIM"] == pytest.approx(float(fm_eval.ssim(gt, pred)[0]), rel=METRIC_RTOL)
    # fastmri.evaluate.evaluate itself (its Metrics: means, ddof=1 standard deviations).
    for name, pred_dir in (("good", data.good), ("bad", data.bad)):
        args = SimpleNamespace(target_path=data.targets, predictions_path=pred_dir, acquisition=None,
                               acceleration=None)
        reference = fm_eval.evaluate(args, "reconstruction_rss")
        means, stds = reference.means(), reference.stddevs()
        for metric in ("NMSE", "PSNR", "SSIM"):  # Metrics accumulates float32 values in float32 (runstats)
            mean, std = _scalar(means[metric]), _scalar(stds[metric])
            assert board.summary[name][metric] == pytest.approx(mean, rel=METRIC_RTOL)
            assert board.summary[name][metric + "_std"] == pytest.approx(std, rel=std_rtol(mean, std))
    assert board.ranking() == ["good", "bad"]
    assert board.summary["good"]["rank"] == 1 and board.summary["good"]["SSIM"] > board.summary["bad"]["SSIM"]


def test_maxval_attr_uses_the_files_max_attribute(data):
    target = evaluate_predictions(data.targets, [data.good], "multicoil", maxval="target")
    attr = evaluate_predictions(data.targets, [data.good], "multicoil", maxval="attr")
    for a, b in zip(target.rows, attr.rows):
        assert b["maxval"] == pytest.approx(a["maxval"] * ATTR_SCALE, rel=2 * EPS64)  # the same float64 product
        # same MSE, so the PSNRs differ by 20 log10(scale) up to the float64 rounding of each (~36 dB)
        psnr_tol = 8 * EPS64 * (abs(a["PSNR"]) + abs(b["PSNR"]))
        assert b["PSNR"] - a["PSNR"] == pytest.approx(20 * np.log10(ATTR_SCALE), abs=psnr_tol)
        assert b["NMSE"] == a["NMSE"] and b["SSIM"] != a["SSIM"]
        with h5py.File(data.targets / a["file"], "r") as t, h5py.File(data.good / a["file"], "r") as p:
            gt, pred, mx = t["reconstruction_rss"][()], p["reconstruction"][()], t.attrs["max"]
        assert b["SSIM"] == pytest.approx(float(fm_eval.ssim(gt, pred, maxval=mx)[0]), rel=METRIC_RTOL)


def test_per_acquisition_summaries_and_acquisition_filter(data):
    board = evaluate_predictions(data.targets, [data.good, data.bad], "multicoil")
    assert set(board.by_acquisition) == {"AXT1", "AXT2"}
    assert board.by_acquisition["AXT1"]["good"]["volumes"] == 2
    assert board.by_acquisition["AXT2"]["good"]["volumes"] == 1
    assert board.by_acquisition["AXT2"]["good"]["SSIM_std"] is None  # one volume: no sample std
    axt2 = [r for r in board.rows if r["acquisition"] == "AXT2" and r["method"] == "good"]
    assert board.by_acquisition["AXT2"]["good"]["SSIM"] == axt2[0]["SSIM"]  # a one-volume mean: that value, exactly

    only = evaluate_predictions(data.targets, [data.good], "multicoil", acquisition="AXT2")
    assert [r["file"] for r in only.rows] == ["file_sim_2_0.h5"]
    assert sorted(only.excluded) == ["file_sim_1_0.h5", "file_sim_1_1.h5"]
    assert "excluded by --acquisition AXT2: file_sim_1_0.h5, file_sim_1_1.h5" in leaderboard.format_report(only)
    with pytest.raises(InputError, match=r"no target volume has acquisition 'AXFLAIR' \(available: AXT1, AXT2\)"):
        evaluate_predictions(data.targets, [data.good], "multicoil", acquisition="AXFLAIR")


def test_cli_subcommand_prints_ranked_table_and_writes_report(data, tmp_path, capsys):
    parser = argparse.ArgumentParser()
    add_evaluate(parser.add_subparsers(dest="command", required=True))
    out = tmp_path / "report"
    args = parser.parse_args(["evaluate", "--target-path", str(data.targets), "--predictions-path", str(data.bad),
                              str(data.good), "--challenge", "multicoil", "--out", str(out)])
    assert args.func(args) == 0
    printed = capsys.readouterr().out
    lines = printed.splitlines()
    first = next(i for i, line in enumerate(lines) if line.strip().startswith("1 "))
    assert "good" in lines[first] and "bad" in lines[first + 1]
    assert "acquisition AXT2:" in printed and "±" in printed

    assert sorted(p.name for p in out.iterdir()) == ["intervals.csv", "leaderboard.csv", "leaderboard.json",
                                                      "metrics.png", "slice_metrics.csv", "slices.png",
                                                      "volumes.csv"]  # no temporary leftovers
    report = json.loads((out / "leaderboard.json").read_text())
    assert report["ranking"] == ["good", "bad"] and len(report["rows"]) == 6
    with open(out / "leaderboard.csv") as f:
        rows = list(csv.DictReader(f))
    overall = {r["method"]: r for r in rows if r["acquisition"] == "all"}
    assert overall["good"]["rank"] == "1"
    assert float(overall["good"]["SSIM"]) == report["summary"]["good"]["SSIM"]  # CSV and JSON write repr(float): exact
    assert {r["acquisition"] for r in rows} == {"all", "AXT1", "AXT2"}
    with open(out / "volumes.csv") as f:
        assert len(list(csv.DictReader(f))) == 6
    for png in ("metrics.png", "slices.png"):
        assert (out / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def _main_error(argv, capsys) -> str:
    assert leaderboard.main(argv) == 2
    return capsys.readouterr().err


def _args(data, *preds, challenge="multicoil", targets=None):
    return ["--target-path", str(targets or data.targets), "--predictions-path", *map(str, preds),
            "--challenge", challenge]


def test_every_bad_prediction_file_is_named_and_fails_the_run(data, tmp_path, capsys):
    preds = _copy(data.good, tmp_path / "broken")
    (preds / "file_sim_1_0.h5").unlink()  # missing volume
    with h5py.File(preds / "file_sim_1_1.h5", "r+") as hf:  # wrong key
        hf["recon"] = hf["reconstruction"][()]
        del hf["reconstruction"]
    with h5py.File(data.good / "file_sim_2_0.h5", "r") as hf:  # wrong slice count
        vol = hf["reconstruction"][()]
    save_volume(preds, "file_sim_2_0.h5", vol[:2])
    out = tmp_path / "report"
    err = _main_error(_args(data, preds) + ["--out", str(out)], capsys)
    assert "3 problem(s)" in err and "'broken'" in err
    assert "file_sim_1_0.h5: missing" in err
    assert "file_sim_1_1.h5: no 'reconstruction' dataset (keys: recon)" in err
    assert "file_sim_2_0.h5: wrong slice count: prediction (2, 48, 48), target (3, 48, 48)" in err
    assert not list(out.glob("*"))  # nothing written for a failed run


def test_wrong_shape_and_non_finite_predictions_are_named(data, tmp_path, capsys):
    preds = _copy(data.good, tmp_path / "shape")
    with h5py.File(data.good / "file_sim_1_0.h5", "r") as hf:
        vol = hf["reconstruction"][()]
    save_volume(preds, "file_sim_1_0.h5", np.pad(vol, ((0, 0), (8, 8), (8, 8))))
    err = _main_error(_args(data, preds), capsys)
    assert "file_sim_1_0.h5: wrong shape: prediction (2, 64, 64), target (2, 48, 48)" in err
    assert "another data split" not in err  # only one file is off: no challenge hint

    nan = _copy(data.good, tmp_path / "nan")
    vol[0, 3, 3] = np.nan
    with h5py.File(nan / "file_sim_1_0.h5", "w") as hf:  # by hand: save_volume refuses NaN
        hf["reconstruction"] = vol
    err = _main_error(_args(data, nan), capsys)
    assert "file_sim_1_0.h5" in err and "NaN" in err


def test_predictions_for_another_challenge_get_a_hint(data, tmp_path, capsys):
    preds = tmp_path / "singlecoil_preds"
    preds.mkdir()
    for f in data.targets.glob("*.h5"):
        save_volume(preds, f.name, np.zeros((5, 64, 64), np.float32))
    err = _main_error(_args(data, preds), capsys)
    assert err.count("wrong slice count") == 3
    assert "is this directory for the singlecoil challenge or another data split?" in err


def test_targets_without_ground_truth_or_for_the_other_challenge(data, tmp_path, capsys):
    # multicoil targets evaluated as singlecoil
    err = _main_error(_args(data, data.good, challenge="singlecoil"), capsys)
    assert "these are multicoil targets, not singlecoil" in err and "file_sim_1_0.h5" in err
    # test-set style files: k-space and mask, no reconstruction_rss
    test_dir = _copy(data.targets, tmp_path / "test_set")
    for f in test_dir.glob("*.h5"):
        with h5py.File(f, "r+") as hf:
            del hf["reconstruction_rss"]
            hf["mask"] = np.ones(SHAPE[1], dtype=bool)
    err = _main_error(_args(data, data.good, targets=test_dir), capsys)
    assert err.count("no ground truth ('reconstruction_rss' missing") == 3
    assert "test/challenge-set files cannot be evaluated" in err


def test_bad_paths_and_duplicate_method_names(data, tmp_path, capsys):
    err = _main_error(_args(data, tmp_path / "nope"), capsys)
    assert "nope" in err and "does not exist" in err
    empty = tmp_path / "empty"
    empty.mkdir()
    assert "contains no .h5 files" in _main_error(_args(data, empty), capsys)
    other = _copy(data.good, tmp_path / "elsewhere" / "good")
    assert "several directories are named good" in _main_error(_args(data, data.good, other), capsys)
    blocker = tmp_path / "file"
    blocker.write_text("x")
    err = _main_error(_args(data, data.good) + ["--out", str(blocker / "sub")], capsys)
    assert "cannot be written" in err


def test_extra_prediction_files_are_reported_not_silently_ignored(data, tmp_path):
    preds = _copy(data.good, tmp_path / "extra")
    save_volume(preds, "file_other.h5", np.zeros((2, 48, 48), np.float32))
    board = evaluate_predictions(data.targets, [preds], "multicoil")
    assert board.unused_predictions == {"extra": ["file_other.h5"]}
    assert "extra: 1 prediction file(s) have no target and were not evaluated: file_other.h5" in \
        leaderboard.format_report(board)


def test_slice_intervals_and_paired_comparison(data, tmp_path, capsys):
    board = evaluate_predictions(data.targets, [data.bad, data.good], "multicoil", paired_against="bad")
    assert len(board.slice_rows) == 2 * 7  # 2 methods x (2 x 2 + 3) slices
    # A volume's SSIM is the mean of its slice SSIMs (same data range), as fastmri.evaluate computes it.
    for row in board.rows:
        slices = [r["SSIM"] for r in board.slice_rows if r["method"] == row["method"] and r["file"] == row["file"]]
        assert row["SSIM"] == pytest.approx(np.mean(slices), rel=METRIC_RTOL)
    for name in ("good", "bad"):
        stats = board.intervals[name]["SSIM"]
        assert stats["n"] == 7 and stats["ci_low"] <= stats["mean"] <= stats["ci_high"]
    # 2% against 20% noise: better on every slice, by an interval far from zero.
    paired = board.paired["good"]
    assert paired["SSIM"]["win_fraction"] == 1.0 and paired["SSIM"]["ci_low"] > 0
    assert paired["NMSE"]["win_fraction"] == 1.0 and paired["NMSE"]["ci_high"] < 0  # lower NMSE wins
    assert set(board.paired) == {"good"}

    parser = argparse.ArgumentParser()
    add_evaluate(parser.add_subparsers(dest="command", required=True))
    out = tmp_path / "report"
    args = parser.parse_args(["evaluate", "--target-path", str(data.targets), "--predictions-path", str(data.bad),
                              str(data.good), "--challenge", "multicoil", "--out", str(out),
                              "--paired-against", "bad"])
    assert args.func(args) == 0
    printed = capsys.readouterr().out
    assert "paired against bad" in printed and "over 7 slices" in printed
    with open(out / "paired.csv") as f:
        rows = {r["metric"]: r for r in csv.DictReader(f)}
    assert float(rows["SSIM"]["mean"]) == paired["SSIM"]["mean"] and rows["SSIM"]["n"] == "7"
    assert (out / "paired.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    err = _main_error(_args(data, data.bad, data.good) + ["--paired-against", "nope"], capsys)
    assert "paired_against" in err and "nope" in err


def test_bootstrap_interval_covers_the_mean_and_is_degenerate_where_it_must_be():
    from fastmri_untrained.evaluate import bootstrap_ci, paired_difference

    assert bootstrap_ci([0.7]) == (0.7, 0.7)
    assert bootstrap_ci([0.5] * 9) == (0.5, 0.5)
    rng = np.random.default_rng(0)
    values = rng.normal(0.8, 0.05, size=32)
    low, high = bootstrap_ci(values)
    # The percentile interval of a mean of 32 values is about mean +- 1.96 sd / sqrt(32).
    half = 1.96 * values.std(ddof=1) / np.sqrt(32)
    assert low < values.mean() < high
    assert (high - low) / 2 == pytest.approx(half, rel=0.15)  # bootstrap's sd uses ddof=0, plus resampling noise
    same = paired_difference(values, values)
    assert same["mean"] == 0 and same["win_fraction"] == 0.5


def test_volume_bootstrap_widens_the_interval_when_slices_of_a_volume_move_together():
    from fastmri_untrained.evaluate import bootstrap_ci, interval_summary

    rng = np.random.default_rng(1)
    # 4 volumes x 8 slices: a volume effect (sd 0.05) shared by its slices, small slice noise (sd 0.005).
    groups = np.repeat(np.arange(4), 8)
    values = 0.8 + rng.normal(0, 0.05, 4)[groups] + rng.normal(0, 0.005, 32)
    slice_low, slice_high = bootstrap_ci(values)
    volume_low, volume_high = bootstrap_ci(values, groups=groups)
    # Resampling 32 "independent" slices claims about sqrt(8) times the precision that 4 volumes give.
    assert (volume_high - volume_low) > 2 * (slice_high - slice_low)
    # Equal-size groups: each resample's mean is the mean of the volume means drawn, so the interval
    # is the bootstrap interval of the 4 volume means (same seed, same draws).
    means = values.reshape(4, 8).mean(axis=1)
    assert (volume_low, volume_high) == pytest.approx(bootstrap_ci(means), abs=1e-12)
    stats = interval_summary(values, groups=groups)
    assert stats["volumes"] == 4 and stats["n"] == 32
    assert (stats["ci_low_volumes"], stats["ci_high_volumes"]) == (volume_low, volume_high)
    assert bootstrap_ci(values[:8], groups=groups[:8]) == (values[:8].mean(), values[:8].mean())  # one volume
    with pytest.raises(ValueError, match="groups"):
        bootstrap_ci(values, groups=groups[:5])
