"""scripts/bench_real.py: every method on the real k-space, scored on held-out samples."""

import json
import shutil

import pytest


def test_quick_bench_scores_every_method_on_held_out_real_kspace(shared_data, load_script, keep_threads, tmp_path):
    bench = load_script("bench_real")
    out = tmp_path / "bench"
    with keep_threads():
        assert bench.main(["--quick", "--no-bart", "--files", "brain_8coil_sigpy.npy", "--out", str(out)]) == 0
    rows = json.loads((out / "results.json").read_text())["files"]["brain_8coil_sigpy.npy"]
    assert list(rows) == list(bench.METHODS)
    # Zero-filled predicts zeros at every held-out sample: NMSE 1 up to float32 rounding of the sums.
    assert rows["zero-filled"]["holdout_nmse"] == pytest.approx(1.0, abs=1e-6)
    # The package defaults of the classical methods on real data (deterministic: fixed split,
    # solver and iteration count; the bounds leave 8-10% for numerical-library drift): L1-wavelet
    # with its noise-relative weight measured 0.106 (the earlier fixed 5e-4: 0.147), TV with 1e-2
    # 0.145 (5e-4: 0.222). A weight rule that regresses to the old defaults fails here.
    assert rows["l1-wavelet"]["holdout_nmse"] < 0.115
    assert rows["tv"]["holdout_nmse"] < 0.16
    assert (out / "brain_8coil_sigpy.png").stat().st_size > 0 and (out / "results.md").exists()


@pytest.mark.skipif(shutil.which("bart") is None, reason="BART not installed (apt-get install bart)")
def test_bart_peer_predicts_held_out_samples_with_our_fft_convention(shared_data, load_script):
    from fastmri_untrained.pipeline import kspace_file_sample

    bench = load_script("bench_real")
    scores = bench.bart_scores(kspace_file_sample(shared_data / "kspace" / "brain_8coil_sigpy.npy"), 0.1, 0)
    # BART's L1-wavelet predicts held-out samples at NMSE 0.075 on this split; a wrong layout or
    # FFT convention would predict noise (NMSE >= 1).
    nmse, image, _ = scores["bart-l1 (pics -l1 -r 0.005)"]
    assert nmse < 0.2 and image.shape == (230, 180)


def test_cycle_spinning_l1_wavelet_predicts_real_kspace_better_and_is_seeded(shared_data):
    from fastmri_untrained.baselines import SigPyRecon
    from fastmri_untrained.pipeline import holdout_score, kspace_file_sample

    sample = kspace_file_sample(shared_data / "kspace" / "brain_8coil_sigpy.npy")
    spun = holdout_score(SigPyRecon("l1-wavelet", cycle_spin=True), sample, 0.1, 0)
    # Measured 0.0908 with random wavelet shifts, 0.1055 without (same weight, split, iterations);
    # the bound sits between them, 4.6% above the measurement for numerical-library drift.
    assert spun < 0.095
    # Seeded shifts: a second run agrees (measured 1.5e-5 apart in relative terms: the runs are
    # not bitwise equal); other shift seeds move it by about 2% (0.0892, 0.0892 for seeds 1, 2).
    assert holdout_score(SigPyRecon("l1-wavelet", cycle_spin=True), sample, 0.1, 0) == pytest.approx(spun, rel=1e-3)
