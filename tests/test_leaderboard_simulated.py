"""scripts/leaderboard_simulated.py: the one-command leaderboard, at its --quick size."""

import json

import h5py
import numpy as np
import pytest

from fastmri_untrained.data.images import mr_images


@pytest.fixture(scope="module")
def board(tmp_path_factory, load_script):
    module = load_script("leaderboard_simulated")
    root = tmp_path_factory.mktemp("leaderboard")
    return module, root, module.main(["--quick", "--out", str(root)])


def test_every_method_ranked_at_both_accelerations(board):
    module, root, result = board
    methods = set(module.CLASSICAL + module.UNTRAINED + module.TRAINED)
    assert [p["acceleration"] for p in result["protocols"]] == [4, 8]
    for p in result["protocols"]:
        assert set(p["ranking"]) == methods
        assert sorted(s["rank"] for s in p["summary"].values()) == list(range(1, len(methods) + 1))
        for m in methods:
            assert p["summary"][m]["volumes"] == 2
            assert np.isfinite(p["summary"][m]["SSIM"]) and 0 < p["summary"][m]["SSIM"] <= 1
            assert p["timing"][m]["seconds"] > 0 and p["timing"][m]["slices"] == module.test_slices(module.QUICK) == 3
        for name in ("leaderboard.csv", "leaderboard.json", "metrics.png", "slices.png"):
            assert (root / f"{p['acceleration']}x" / "report" / name).is_file()
        # Paired against both references, on the same 3 slices.
        assert set(p["paired"]) == {"l1-wavelet", "unet"}
        assert set(p["paired"]["unet"]) == methods - {"unet"}
        assert (root / f"{p['acceleration']}x" / "report_vs_unet" / "paired.csv").is_file()
        assert p["intervals"]["conv-decoder"]["SSIM"]["n"] == 3
    ranking, paired = (root / "leaderboard.md").read_text().split("\n\n")[:2]
    assert ranking.count("| 4x |") == len(methods) and ranking.count("| 8x |") == len(methods)
    assert "SSIM minus l1-wavelet [95% CI]" in paired and "SSIM minus unet [95% CI]" in paired
    assert paired.count("| 8x |") == len(methods)
    assert json.loads((root / "leaderboard.json").read_text())["protocols"][1]["ranking"] == result["protocols"][1]["ranking"]


def test_reconstructions_are_fastmri_files_of_the_target_shape(board):
    _, root, _ = board
    target_files = sorted((root / "data" / "test").glob("*.h5"))
    assert len(target_files) == 2  # the quick test split: a 2-slice MNI slab and one 2-D slice
    for target_file in target_files:
        with h5py.File(target_file) as hf:
            shape = hf["reconstruction_rss"].shape
        for method_dir in sorted((root / "8x").iterdir()):
            if not method_dir.name.startswith("report"):
                with h5py.File(method_dir / target_file.name) as hf:
                    assert hf["reconstruction"].shape == shape, method_dir.name


def test_rerun_resumes_without_reconstructing_again(board, monkeypatch):
    module, root, result = board
    calls = []
    real = module.cli.main
    monkeypatch.setattr(module.cli, "main", lambda argv: calls.append(argv[0]) or real(argv))
    again = module.main(["--quick", "--out", str(root)])
    assert calls == ["evaluate"] * 4  # per protocol, against L1-wavelet and the U-Net; nothing else again
    assert again["protocols"][0]["summary"] == result["protocols"][0]["summary"]


def test_partial_rerun_refreshes_one_method_and_keeps_every_row(board, monkeypatch):
    # --methods X after deleting X's folders: only X is reconstructed again, and the board (JSON,
    # markdown, evaluate reports) still ranks every finished method, not just X.
    import shutil

    module, root, result = board
    for accel in ("4x", "8x"):
        shutil.rmtree(root / accel / "zero-filled")
    calls = []
    real = module.cli.main
    monkeypatch.setattr(module.cli, "main", lambda argv: calls.append(argv[0]) or real(argv))
    again = module.main(["--quick", "--out", str(root), "--methods", "zero-filled", "--trained"])
    assert calls == ["reconstruct", "evaluate", "evaluate"] * 2
    methods = set(module.CLASSICAL + module.UNTRAINED + module.TRAINED)
    for p in again["protocols"]:
        assert set(p["ranking"]) == methods
    saved = json.loads((root / "leaderboard.json").read_text())
    assert set(saved["protocols"][0]["ranking"]) == methods
    assert (root / "leaderboard.md").read_text().split("\n\n")[0].count("| 4x |") == len(methods)
    # Deterministic methods reproduce their rows exactly.
    assert again["protocols"][0]["summary"]["zero-filled"]["SSIM"] == result["protocols"][0]["summary"]["zero-filled"]["SSIM"]


def test_no_test_source_slice_is_in_training_or_validation_data(board):
    module, root, _ = board
    data = root / "data"
    test = module.slice_sources(data / "test")
    assert {"mni152:T1[40]", "mni152:T1[43]", "dipy:t1_coronal_slice"} == test
    assert module.source_overlap(data / "test", [data / "train", data / "val"]) == []
    assert module.slice_sources(data / "train")  # the check reads real names, not an empty set
    # The check catches a test slice that is also a training slice.
    assert module.source_overlap(data / "test", [data / "test"]) == sorted(test)


@pytest.mark.parametrize("size", ["small", "board"])
def test_the_documented_splits_keep_test_slices_out_of_training(size, load_script):
    # From the split definitions, without simulating: which source slices each part can use.
    from fastmri_untrained.data.images import slab_slices, source_slices

    module = load_script("leaderboard_simulated")
    names = [s.name for s in source_slices()]

    def used(parts):
        out = set()
        for part in parts:
            if part.slab_source is None:
                out.update(names[i] for i in part.sources)
            else:
                slab = [s.name for s in slab_slices(part.slab_source)]
                for start in part.slab_starts:
                    out.update(slab[start:start + part.slices])
        return out

    setting = module.SIZES[size]
    assert not used(setting.test) & used(setting.train + setting.val)
    if size == "board":
        assert module.test_slices(setting) >= 32
        assert {p.slab_source for p in setting.test} >= {"mni152:T1", "dipy:S0_10slices"}


def test_snr_flag_reaches_every_split_and_leaves_the_sizes_alone(load_script):
    module = load_script("leaderboard_simulated")
    setting, _ = module.parse_setting(["--size", "board", "--snr", "20"])
    assert {part.config(setting, 0).snr for part in setting.train + setting.val + setting.test} == {20.0}
    assert module.SIZES["board"].snr == 60.0  # a copy was changed, not the documented size
    assert module.test_slices(setting) == module.test_slices(module.SIZES["board"])
    with pytest.raises(SystemExit) as bad:
        module.parse_setting(["--snr", "0"])
    assert bad.value.code == 2


def test_train_and_test_images_come_from_disjoint_sources():
    test = mr_images(3, (64, 64), seed=0, augment=False, sources=(0, 4, 8))
    train = mr_images(8, (64, 64), seed=1, augment=False, sources=(1, 2, 3, 5, 6, 7, 9, 10))
    distances = [np.abs(a - b).max() for a in test for b in train]
    assert min(distances) > 0.05
    with pytest.raises(ValueError, match="sources"):
        mr_images(1, (8, 8), sources=())
