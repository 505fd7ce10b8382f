"""The shared command line of the reproduce_* scripts: --set overrides, --device and results.json."""

import json
from dataclasses import dataclass

import pytest
import torch

from fastmri_untrained.errors import InputError
from fastmri_untrained.theory.sections import apply_overrides, run_sections


@dataclass
class ToyConfig:
    size: int = 256
    steps: tuple = (1500, 3000)
    image: str = "camera"
    net: dict = None
    device: str = "cpu"

    @classmethod
    def quick(cls):
        return cls(size=8)


def test_overrides_parse_json_and_keep_tuples():
    cfg = apply_overrides(ToyConfig(), ["size=128", "steps=[10, 20]", "image=barbara.png", 'net={"channels": 4}'])
    assert cfg == ToyConfig(size=128, steps=(10, 20), image="barbara.png", net={"channels": 4})


@pytest.mark.parametrize("item, message", [("sizes=3", "unknown field 'sizes'"), ("size", "FIELD=VALUE")])
def test_bad_override_names_the_option_and_problem(item, message):
    with pytest.raises(InputError, match=message) as info:
        apply_overrides(ToyConfig(), [item])
    assert info.value.source == "--set"


def test_run_sections_writes_results_of_each_finished_section(tmp_path, keep_threads):
    calls = []

    def first(cfg, out):
        calls.append("first")
        return {"size": cfg.size}

    def second(cfg, out):
        raise RuntimeError("interrupted")

    with keep_threads(), pytest.raises(RuntimeError):
        run_sections("toy", "toy", ToyConfig, {"first": first, "second": second},
                     ["--quick", "--set", "size=16", "--out", str(tmp_path)])
    res = json.loads((tmp_path / "results.json").read_text())
    assert res["first"] == {"size": 16} and res["overrides"] == ["size=16"] and "second" not in res
    assert [p.name for p in tmp_path.iterdir()] == ["results.json"]  # no temporary file left behind
    with keep_threads():
        res = run_sections("toy", "toy", ToyConfig, {"first": first, "second": second},
                           ["--only", "first", "--out", str(tmp_path / "b")])
    assert res["first"] == {"size": 256} and calls == ["first", "first"]


def test_bad_override_on_the_command_line_is_one_line_and_creates_nothing(tmp_path, capsys):
    with pytest.raises(SystemExit) as info:
        run_sections("toy", "toy", ToyConfig, {}, ["--set", "sizes=3", "--out", str(tmp_path / "out")])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert "--set: unknown field 'sizes'" in err and "Traceback" not in err
    assert not (tmp_path / "out").exists()


def test_device_option_sets_the_config_field(tmp_path, keep_threads):
    seen = []
    section = {"first": lambda cfg, out: seen.append(cfg.device) or {}}
    with keep_threads():
        res = run_sections("toy", "toy", ToyConfig, section, ["--device", "cpu", "--out", str(tmp_path / "a")])
        run_sections("toy", "toy", ToyConfig, section, ["--out", str(tmp_path / "b")])  # auto
    assert seen == ["cpu", "cuda" if torch.cuda.is_available() else "cpu"]
    assert res["config"]["device"] == "cpu"


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message on a machine without CUDA")
def test_cuda_without_a_gpu_is_one_line_and_creates_nothing(tmp_path, capsys):
    with pytest.raises(SystemExit) as info:
        run_sections("toy", "toy", ToyConfig, {}, ["--device", "cuda", "--out", str(tmp_path / "out")])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert "--device: cuda requested but no CUDA device" in err and "Traceback" not in err
    assert not (tmp_path / "out").exists()
