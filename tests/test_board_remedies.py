"""scripts/board_remedies.py: remedies against a method's default on tuning slices, on a tiny board."""

import json

import h5py
import numpy as np
import pytest


def slice_count(directory):
    total = 0
    for f in directory.glob("*.h5"):
        with h5py.File(f, "r") as hf:
            total += hf["kspace"].shape[0]
    return total


@pytest.fixture(scope="module")
def scripts(load_script):
    return load_script("leaderboard_simulated"), load_script("board_remedies")


@pytest.fixture(scope="module")
def board(tmp_path_factory, scripts):
    leaderboard, _ = scripts
    root = tmp_path_factory.mktemp("board")
    leaderboard.simulate_splits(leaderboard.QUICK, root, seed=0)
    return root


def test_remedy_is_paired_against_the_default_on_tuning_slices_only(board, scripts, tmp_path):
    leaderboard, remedies = scripts
    out = tmp_path / "remedies"
    result = remedies.main(["--board", str(board), "--out", str(out), "--center-fraction", "0.09",
                            "--remedy", "ensemble2=--ensemble 2", "--train-files", "1",
                            "--common", "--iterations 5 --joint-iterations 4 --joint-refine 2 --layers 3 --channels 16"])
    tuning = out / "tuning" / "data"
    # validation (1 file) + one training file per source (2 sources); none is a test slice
    assert len(list(tuning.glob("*.h5"))) == 3
    assert not leaderboard.source_overlap(board / "data" / "test", [tuning])
    slices = slice_count(tuning)
    paired = result["paired"]["conv-decoder+ensemble2"]["SSIM"]
    assert paired["n"] == slices and paired["volumes"] == 3
    assert paired["ci_low"] <= paired["mean"] <= paired["ci_high"]
    for variant in ("conv-decoder", "conv-decoder+ensemble2"):
        for f in tuning.glob("*.h5"):
            with h5py.File(out / "tuning" / "8x" / variant / f.name, "r") as hf:
                assert np.isfinite(hf["reconstruction"][()]).all()
    assert json.loads((out / "tuning" / "8x" / "remedies.json").read_text())["remedies"] == {
        "ensemble2": "--ensemble 2"}


def test_a_tuning_split_that_holds_a_test_slice_is_refused(board, scripts, tmp_path):
    _, remedies = scripts
    fake = tmp_path / "board"
    for split in ("train", "val", "test"):
        (fake / "data" / split).mkdir(parents=True)
        for f in (board / "data" / split).glob("*.h5"):
            (fake / "data" / split / f.name).symlink_to(f)
    test_file = next((board / "data" / "test").glob("*.h5"))
    (fake / "data" / "val" / "leak.h5").symlink_to(test_file)
    with pytest.raises(SystemExit, match="test slices"):
        remedies.tuning_split(fake, tmp_path / "tuning", train_files=1)


def test_bad_remedy_is_refused(scripts):
    _, remedies = scripts
    with pytest.raises(SystemExit):
        remedies.main(["--board", "b", "--out", "o", "--remedy", "no-equals-sign"])


def test_test_split_never_writes_into_the_board(board, scripts, tmp_path):
    _, remedies = scripts
    out = tmp_path / "remedies"
    result = remedies.main(["--board", str(board), "--out", str(out), "--center-fraction", "0.09", "--split", "test",
                            "--remedy", "wider=--channels 24", "--common",
                            "--iterations 3 --joint-iterations 3 --joint-refine 1 --layers 3 --channels 16"])
    assert not (board / "8x").exists()  # the default with --common flags is fitted under OUT, not the board
    assert result["paired"]["conv-decoder+wider"]["SSIM"]["n"] == slice_count(board / "data" / "test")
