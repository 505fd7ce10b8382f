"""The command line as a manual: help text with defaults, one device flag, warnings for ignored
options, PNG previews of real-data reconstructions, and library parameter names reported as flags."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from fastmri_untrained.cli import build_parser, flag_for, main
from fastmri_untrained.devices import parse_device
from fastmri_untrained.errors import InputError

COMMANDS = ("demo", "simulate", "reconstruct", "evaluate", "train-baseline", "predict-baseline")


def test_top_level_help_lists_every_command_in_plain_text():
    out = build_parser().format_help()
    assert all(f"    {c}" in out for c in COMMANDS), out
    assert "``" not in out


@pytest.mark.parametrize("command", COMMANDS)
def test_every_option_has_help_and_shows_its_default(command):
    sub = next(a for a in build_parser()._actions if a.dest == "command").choices[command]  # the subparser
    for action in sub._actions:
        assert action.help, f"{command} {action.option_strings}: no help"
    text = sub.format_help()
    assert "``" not in text
    if command in ("simulate", "demo"):
        assert "(default: 0)" in text  # --seed
    if command == "reconstruct":  # one device flag
        flags = [o for action in sub._actions for o in action.option_strings]
        assert "--accelerator" not in flags and flags.count("--device") == 1


def test_library_parameter_names_are_reported_as_the_commands_flags():
    reconstruct = {"accelerations": "--accelerations", "center_fractions": "--center-fractions",
                   "device": "--device", "output_format": "--output-format"}
    demo = {"acceleration": "--acceleration", "center_fraction": "--center-fraction"}
    assert flag_for("center_fractions", reconstruct) == "--center-fractions"
    assert flag_for("acceleration", reconstruct) == "--accelerations"
    assert flag_for("accelerations", demo) == "--acceleration"
    assert flag_for("--center-fractions", demo) == "--center-fraction"
    assert flag_for("accelerator", reconstruct) == flag_for("--accelerator", reconstruct) == "--device"
    assert flag_for("output_formats", reconstruct) == "--output-format"
    assert flag_for("/data/file_1.h5", reconstruct) == "/data/file_1.h5"


def test_one_device_parser(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert parse_device("auto") == parse_device("cpu") == ("cpu", "cpu", None)
    for bad, message in [("tpu", "unknown device"), ("cuda", "no CUDA device"), ("cuda:x", "cuda:N")]:
        with pytest.raises(InputError, match=message) as err:
            parse_device(bad)
        assert err.value.source == "device"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert parse_device("auto") == parse_device("gpu") == ("cuda", "gpu", None)
    assert parse_device("cuda:1") == ("cuda:1", "gpu", 1)
    with pytest.raises(InputError, match="GPU 2 requested but only 2"):
        parse_device("cuda:2")


def test_kspace_file_warns_about_ignored_mask_options_and_writes_a_preview(tmp_path, capsys):
    rng = np.random.default_rng(0)
    k = (rng.standard_normal((2, 32, 24)) + 1j * rng.standard_normal((2, 32, 24))).astype(np.complex64)
    k[..., ::3] = 0  # the mask is the file's zeros
    np.save(tmp_path / "k.npy", k)
    out = tmp_path / "out"
    assert main(["reconstruct", "--data-path", str(tmp_path / "k.npy"), "--out", str(out), "--method", "zero-filled",
                 "--mask-type", "random", "--accelerations", "8", "--device", "cpu", "--no-progress"]) == 0
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["fastmri-untrained: warning: k.npy: --mask-type, --accelerations ignored: the sampling mask "
                   "of a k-space file is its zeros"]
    assert sorted(p.name for p in out.iterdir()) == ["k.h5", "k.png"]
    assert (out / "k.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    again = tmp_path / "again"
    assert main(["reconstruct", "--data-path", str(tmp_path / "k.npy"), "--out", str(again), "--method", "zero-filled",
                 "--no-preview", "--no-progress"]) == 0
    assert capsys.readouterr().err == ""  # nothing given, nothing ignored
    assert sorted(p.name for p in again.iterdir()) == ["k.h5"]


def test_cycle_spinning_l1_wavelet_from_the_command_line(shared_data, tmp_path, capsys):
    import json

    out = tmp_path / "cs"
    assert main(["reconstruct", "--data-path", str(shared_data / "kspace" / "brain_8coil_sigpy.npy"), "--out", str(out),
                 "--method", "l1-wavelet", "--cycle-spin", "--report-holdout", "0.1", "--no-preview"]) == 0
    # The shifted solver's held-out NMSE on this file, split and weight (0.0908 measured; tests/test_bench_real.py).
    (score,) = json.loads((out / "holdout.json").read_text())["volumes"].values()
    assert score < 0.095
    capsys.readouterr()
    assert main(["reconstruct", "--data-path", str(shared_data / "kspace" / "brain_8coil_sigpy.npy"),
                 "--out", str(tmp_path / "tv"), "--method", "tv", "--cycle-spin"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--cycle-spin" in err[0] and "l1-wavelet only" in err[0]
    assert not (tmp_path / "tv").exists()
