"""Volumes: contiguous simulated slabs, warm starts from the neighbouring slice, ensemble uncertainty."""

import dataclasses
import json

import h5py
import numpy as np
import pytest
import torch

import fastmri_untrained as fu
from fastmri_untrained.cli import main
from fastmri_untrained.data.images import SLAB_SOURCES, mr_images, source_slices
from fastmri_untrained.data.simulate import SimulationConfig, simulate_dataset
from fastmri_untrained.errors import InputError
from fastmri_untrained.fit import FitConfig
from fastmri_untrained.mri import MRISample
from fastmri_untrained.pipeline import UNCERTAINTY_KEY, MaskSpec, for_slice
from fastmri_untrained.recon import UntrainedConfig, UntrainedReconstructor, WarmStarts

SLAB_DEPTH = SLAB_SOURCES["dipy:S0_10slices"]


def test_contiguous_images_are_neighbouring_slices_in_one_pose():
    images, names = mr_images(4, (64, 64), seed=3, contiguous=True, return_sources=True)
    start = [s.name for s in source_slices()].index(names[0])
    assert names == [s.name for s in source_slices()[start:start + 4]]
    # One pose for the slab: neighbours differ as neighbouring slices do, far less than two
    # independently posed draws of the same slice.
    again = mr_images(4, (64, 64), seed=3, contiguous=True)
    np.testing.assert_array_equal(images, again)
    neighbour = np.linalg.norm(images[1] - images[0]) / np.linalg.norm(images[0])
    assert neighbour < 0.5
    with pytest.raises(ValueError, match="slices"):
        mr_images(SLAB_DEPTH + 1, (64, 64), contiguous=True)


def test_mni_template_slabs_are_axial_slices_3mm_apart():
    from fastmri_untrained.data.images import SLAB_SOURCES, slab_slices

    assert len(slab_slices("mni152:T1")) == SLAB_SOURCES["mni152:T1"]
    images, names = mr_images(5, (64, 64), seed=1, contiguous=True, slab_source="mni152:T1", return_sources=True)
    z = [int(n.split("[")[1].rstrip("]")) for n in names]
    assert names[0].startswith("mni152:T1[") and np.diff(z).tolist() == [3] * 4
    assert images.shape == (5, 64, 64) and np.isclose(images.max(axis=(1, 2)), 1).all()
    with pytest.raises(ValueError, match="slab source"):
        slab_slices("nope")


def test_fixed_slab_starts_place_each_volume_and_keep_the_pose_of_its_seed():
    _, names = mr_images(3, (32, 32), seed=5, contiguous=True, slab_source="mni152:T1", slab_start=20,
                         return_sources=True)
    assert names == [f"mni152:T1[{40 + 3 * i}]" for i in (20, 21, 22)]
    drawn, drawn_names = mr_images(3, (32, 32), seed=5, contiguous=True, return_sources=True)
    start = int(drawn_names[0].split("[")[1].rstrip("]"))
    fixed = mr_images(3, (32, 32), seed=5, contiguous=True, slab_start=start)
    np.testing.assert_array_equal(fixed, drawn)  # same start, same seed: the same slab in the same pose
    with pytest.raises(ValueError, match="slab_start"):
        mr_images(3, (32, 32), contiguous=True, slab_start=SLAB_DEPTH - 2)
    with pytest.raises(ValueError, match="slab_start"):
        mr_images(3, (32, 32), slab_start=0)
    config = SimulationConfig(num_volumes=2, slices=2, coils=2, shape=(64, 48), contiguous=True, slab_starts=(0, 8))
    with pytest.raises(ValueError, match="slab_starts"):
        dataclasses.replace(config, slab_starts=(0,))
    with pytest.raises(ValueError, match="slab_starts"):
        dataclasses.replace(config, slab_starts=(0, 9))
    with pytest.raises(ValueError, match="slab_starts"):
        dataclasses.replace(config, contiguous=False)


def test_contiguous_volumes_record_their_sources(tmp_path):
    config = SimulationConfig(num_volumes=1, slices=3, coils=2, shape=(64, 48), contiguous=True)
    (path,) = simulate_dataset(tmp_path, config=config, show_progress=False)
    with h5py.File(path, "r") as hf:
        sources = [s.decode() if isinstance(s, bytes) else str(s) for s in hf.attrs["slice_sources"]]
        assert hf["kspace"].shape == (3, 2, 64, 48)
    index = [int(s.split("[")[1].rstrip("]")) for s in sources]
    assert index == list(range(index[0], index[0] + 3))
    with pytest.raises(ValueError, match="slices"):
        SimulationConfig(slices=SLAB_DEPTH + 1, contiguous=True)
    assert main(["simulate", "--out", str(tmp_path / "x"), "--contiguous", "--slices", "11"]) == 2
    assert main(["simulate", "--out", str(tmp_path / "x"), "--contiguous", "--slab-source", "nope"]) == 2


def _sample(slice_num, fname="vol.h5", shape=(32, 24)):
    k = torch.zeros((2, *shape), dtype=torch.complex64)
    return MRISample(kspace=k, mask=torch.ones(1, shape[1]), target_size=(16, 16), challenge="multicoil",
                     fname=fname, slice_num=slice_num)


def test_warm_starts_hand_over_the_neighbour_only_and_keep_a_slice_first_fit():
    store, net = WarmStarts(), torch.nn.Linear(2, 2)
    assert store.get(_sample(0), "k") is None
    store.put(_sample(0), "k", [net])
    assert store.get(_sample(1), "k") is not None
    assert store.get(_sample(2), "k") is None  # not a neighbour
    assert store.get(_sample(1, fname="other.h5"), "k") is None  # another volume
    first = store.get(_sample(1), "k")[0]["weight"].clone()
    with torch.no_grad():
        net.weight.add_(1.0)
    store.put(_sample(0), "k", [net])  # a second fit of slice 0 (the held-out score) is not kept
    torch.testing.assert_close(store.get(_sample(1), "k")[0]["weight"], first)
    with pytest.warns(UserWarning, match="another shape"):
        assert store.get(_sample(1), "other key") is None
    store.put(_sample(0, fname="other.h5"), "k", [net])  # a new volume clears the old one
    assert store.get(_sample(1), "k") is None


def test_warm_start_fits_later_slices_from_the_neighbour_for_fewer_iterations(tmp_path):
    simulate_dataset(tmp_path / "data", config=SimulationConfig(num_volumes=1, slices=3, coils=2, shape=(64, 48),
                                                                contiguous=True), show_progress=False)
    config = UntrainedConfig(method="conv-decoder", net=dict(channels=8, layers=3), warm_start=3,
                             fit=FitConfig(iterations=12, show_progress=False))
    base = UntrainedReconstructor(config, show_progress=False)
    from fastmri_untrained.pipeline import iterate_volumes

    _, samples = next(iterate_volumes(sorted((tmp_path / "data").glob("*.h5")), "multicoil",
                                      MaskSpec(center_fractions=(0.16,))))
    infos = [for_slice(base, s)(s).info for s in samples]
    assert [i["warm_start"] for i in infos] == [False, True, True]
    assert [i["iterations"] for i in infos] == [12, 3, 3]
    with pytest.raises(ValueError, match="warm_start"):
        UntrainedConfig(warm_start=-1)


def test_ensemble_uncertainty_is_written_beside_the_reconstruction(tmp_path):
    simulate_dataset(tmp_path / "data", num_volumes=1, slices=2, coils=2, shape=(64, 48), show_progress=False)
    config = UntrainedConfig(method="deep-decoder", net=dict(channels=8, layers=3),
                             fit=FitConfig(iterations=10, show_progress=False))
    fu.reconstruct_dataset(tmp_path / "data", tmp_path / "out", "deep-decoder",
                           mask=MaskSpec(center_fractions=(0.16,)), progress=False, log=lambda m: None,
                           reconstructor=UntrainedReconstructor(config, show_progress=False), save_uncertainty=True)
    (out,) = sorted((tmp_path / "out").glob("*.h5"))
    with h5py.File(out, "r") as hf:
        recon, std = hf["reconstruction"][()], hf[UNCERTAINTY_KEY][()]
    assert std.shape == recon.shape and np.isfinite(std).all() and (std >= 0).all()
    # Two fits from different seeds disagree somewhere, but by less than the image itself.
    assert 0 < std.mean() < recon.mean()
    with pytest.raises(InputError, match="save_uncertainty"):
        fu.reconstruct_dataset(tmp_path / "data", tmp_path / "o2", "conv-decoder", save_uncertainty=True,
                               progress=False, log=lambda m: None)
    with pytest.raises(InputError, match="save_uncertainty"):
        fu.reconstruct_dataset(tmp_path / "data", tmp_path / "o3", "l1-wavelet", save_uncertainty=True,
                               progress=False, log=lambda m: None)


def test_batched_slices_through_the_driver_equal_slice_by_slice(tmp_path):
    # K = 2 slices (x 2 deep-decoder members) fitted in one pass write what one fit after another
    # writes, to the batched engine's tolerance (tests/test_fit.py: float32 rounding order).
    from fastmri_untrained.pipeline import read_reconstruction

    simulate_dataset(tmp_path / "data", num_volumes=1, slices=3, coils=2, shape=(64, 48), show_progress=False)
    outs = {}
    for batch in (1, 2):
        config = UntrainedConfig(method="deep-decoder", net=dict(channels=8, layers=3), batch=batch, joint_slices=1,
                                 fit=FitConfig(iterations=10, show_progress=False))
        out = tmp_path / f"batch{batch}"
        fu.reconstruct_dataset(tmp_path / "data", out, "deep-decoder", mask=MaskSpec(center_fractions=(0.16,)),
                               reconstructor=UntrainedReconstructor(config, show_progress=False), progress=False,
                               log=lambda m: None, save_uncertainty=True)
        (path,) = sorted(out.glob("*.h5"))
        outs[batch] = read_reconstruction(path)
    assert outs[1].shape == (3, 32, 32)
    np.testing.assert_allclose(outs[2], outs[1], rtol=0, atol=1e-4 * float(outs[1].max()))
    with pytest.raises(ValueError, match="batch"):
        UntrainedConfig(batch=0)


def test_gpu_check_runs_its_steps_on_cpu(tmp_path):
    # The one-command GPU measurement, as a smoke run of the same steps on CPU (no timing checked).
    import json
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    out = tmp_path / "gpu.json"
    proc = subprocess.run(["bash", "scripts/gpu_check.sh", "--device", "cpu", "--quick", str(out)], cwd=root,
                          capture_output=True, text=True, timeout=600, env={**__import__("os").environ,
                                                                             "PYTHON": sys.executable})
    assert proc.returncode == 0, proc.stderr[-2000:]
    rows = json.loads(out.read_text())["rows"]
    assert {(r["method"], r["members"], r["autocast"]) for r in rows} == {
        (m, k, a) for m in ("conv-decoder", "deep-decoder", "dip") for k in (1, 2) for a in (None, "bfloat16")}
    assert all(r["batched_ms"] > 0 and r["slices_per_minute"] > 0 for r in rows)


def test_a_run_that_exhausts_device_memory_is_halved_not_lost(monkeypatch):
    from fastmri_untrained import recon

    real = recon.fit_batched
    seen = []

    def small_device(nets, *args, **kwargs):  # a device that holds at most 2 networks
        seen.append(len(nets))
        if len(nets) > 2:
            raise torch.OutOfMemoryError("CUDA out of memory (simulated)")
        return real(nets, *args, **kwargs)

    monkeypatch.setattr(recon, "fit_batched", small_device)
    samples = [_sample(i) for i in range(3)]
    for s in samples:
        s.kspace[:, 10:22, 8:16] = 1.0  # something to fit
    config = UntrainedConfig(method="conv-decoder", net=dict(channels=4, layers=2), batch=3, ensemble=1,
                             forward_model="coil-images", fit=FitConfig(iterations=2, show_progress=False))
    with pytest.warns(RuntimeWarning, match="out of device memory"):
        results = UntrainedReconstructor(config, show_progress=False).reconstruct_volume(samples)
    assert seen == [3, 1, 2] and len(results) == 3
    assert all(np.isfinite(r.image).all() for r in results)


def test_bench_volume_quick_runs_every_variant(tmp_path, load_script):
    # The benchmark's smoke size (timing is not checked): every variant writes a row, and the
    # batched pass gives what one fit after another gives (warm starts differ by design).
    import json

    bench = load_script("bench_volume")
    assert bench.main(["--quick", "--out", str(tmp_path), "--slices", "2", "--methods", "deep-decoder",
                       "--accelerations", "4", "--variants", "scratch", "warm", "joint", "batched", "default"]) == 0
    rows = {r["variant"]: r for r in json.loads((tmp_path / "results.json").read_text())["rows"]}
    assert set(rows) == {"scratch", "warm", "joint", "batched", "default"} and rows["warm"]["warm_start"] > 0
    assert rows["joint"]["joint_slices"] == 2 and rows["joint"]["iterations"] >= rows["scratch"]["iterations"]
    # The package default for the deep decoder on a volume is its joint network.
    assert rows["default"]["joint_slices"] == 2 and rows["scratch"]["joint_slices"] == 1
    assert rows["batched"]["SSIM"] == pytest.approx(rows["scratch"]["SSIM"], abs=1e-4)
    assert "| deep-decoder | 4x | joint (2 slices) |" in (tmp_path / "results.md").read_text()


def test_joint_refine_curve_quick_reuses_its_joint_network(tmp_path, load_script):
    # The diagnosis script's smoke size: a row per setting with the SSIM at each checkpoint, and a
    # second call takes the cached joint network (the same joint SSIM) instead of refitting it.
    import json

    script = load_script("joint_refine_curve")
    args = ["--quick", "--bench", str(tmp_path), "--slices", "2", "--every", "2",
            "--refine", "constant:0.001:4", "cosine:0.001:3"]
    assert script.main(args) == 0
    assert script.main(args[:-1]) == 0
    rows = [json.loads(line) for line in (tmp_path / "joint_refine.jsonl").read_text().splitlines()]
    assert [(r["schedule"], r["steps"]) for r in rows] == [("constant", 4), ("cosine", 3), ("constant", 4)]
    assert list(rows[0]["ssim_at_step"]) == ["2", "4"] and list(rows[1]["ssim_at_step"]) == ["2", "3"]
    assert rows[2]["joint_ssim"] == rows[0]["joint_ssim"]
    # Same joint network, same seed, same setting: the same curve.
    assert rows[2]["ssim_at_step"] == rows[0]["ssim_at_step"]
    assert all(0 < v <= 1 for r in rows for v in r["ssim_at_step"].values())
    with pytest.raises(SystemExit):
        script.main(["--bench", str(tmp_path), "--refine", "linear:0.1:3"])


def _contiguous_samples(tmp_path, slices=3, center=0.16):
    from fastmri_untrained.pipeline import iterate_volumes

    simulate_dataset(tmp_path / "data", config=SimulationConfig(num_volumes=1, slices=slices, coils=2,
                                                                shape=(64, 48), contiguous=True), show_progress=False)
    return next(iterate_volumes(sorted((tmp_path / "data").glob("*.h5")), "multicoil",
                                MaskSpec(center_fractions=(center,))))[1]


@pytest.mark.parametrize("forward_model", ["coil-images", "sense"])
def test_joint_forward_model_is_each_slice_forward_model_on_its_channels(tmp_path, forward_model):
    from fastmri_untrained.recon import JointProblem, MRIProblem

    samples = _contiguous_samples(tmp_path, center=0.2)
    config = UntrainedConfig(method="deep-decoder", forward_model=forward_model, net=dict(channels=8, layers=3))
    # One mask for the volume (one stacked transform), and a slice with its own mask (a transform per slice).
    other = samples[2].mask.clone()
    other[..., other.shape[-1] // 2 + 5] = 1 - other[..., other.shape[-1] // 2 + 5]
    for volume in (samples, samples[:2] + [samples[2]._replace(mask=other)]):
        problems = [MRIProblem(s, config) for s in volume]
        joint = JointProblem(problems)
        output = joint.build_net(seed=0)()
        assert output.shape[1] == 3 * problems[0].out_channels
        predicted = joint.forward_model()(output)
        assert predicted.shape == joint.kspace.shape
        for i, problem in enumerate(problems):
            part = output[:, i * problem.out_channels:(i + 1) * problem.out_channels]
            expected = problem.forward_model(problem.mask)(part)
            # Equal up to float32 rounding of FFTs run as one batch or one by one.
            torch.testing.assert_close(predicted[i], expected, rtol=0, atol=1e-6 * float(expected.detach().abs().max()))


def test_joint_slices_fit_runs_of_a_volume_with_one_network_and_a_last_single_slice_alone(tmp_path):
    samples = _contiguous_samples(tmp_path)
    config = UntrainedConfig(method="conv-decoder", net=dict(channels=8, layers=3), joint_slices=2,
                             joint_iterations=7, fit=FitConfig(iterations=5, show_progress=False))
    recon = UntrainedReconstructor(config, show_progress=False)
    results = recon.reconstruct_volume(samples, seeds=[11, 12, 13])
    assert [r.info.get("joint") for r in results] == [2, 2, None]
    assert [r.info["iterations"] for r in results] == [7, 7, 5]
    assert all(np.isfinite(r.image).all() and r.image.shape == (32, 32) for r in results)
    # A run of one slice is the ordinary fit of that slice with its own seed.
    alone = recon.with_seed(13)(samples[2])
    np.testing.assert_array_equal(results[2].image, alone.image)
    # The two slices of the joint run get different images from their own measurements.
    assert not np.allclose(results[0].image, results[1].image)


@pytest.mark.parametrize("method", ["conv-decoder", "deep-decoder", "dip"])
def test_a_slice_net_of_a_joint_network_outputs_that_slice_channels(tmp_path, method):
    from fastmri_untrained.recon import JointProblem, MRIProblem

    samples = _contiguous_samples(tmp_path, center=0.2)
    net = {"dip": dict(levels=2, channels_down=8, channels_up=8)}.get(method, dict(channels=8, layers=3))
    problems = [MRIProblem(s, UntrainedConfig(method=method, net=net)) for s in samples]
    joint = JointProblem(problems)
    joint_net = joint.build_net(seed=4)
    with torch.no_grad():
        for i, part in enumerate(joint.split(joint_net())):
            # The same layers on the same input, the slice's rows of the last convolution: the same
            # numbers, up to float32 rounding of a convolution with fewer output channels.
            torch.testing.assert_close(joint.slice_net(joint_net, i, seed=4)(), part, rtol=1e-5, atol=1e-6)


def test_joint_refine_fits_each_slice_alone_after_the_joint_network(tmp_path):
    samples = _contiguous_samples(tmp_path)
    base = dict(method="conv-decoder", net=dict(channels=8, layers=3), joint_slices=3, joint_iterations=6,
                fit=FitConfig(iterations=5, show_progress=False))
    plain = UntrainedReconstructor(UntrainedConfig(**base, joint_refine=0), show_progress=False)
    refined = UntrainedReconstructor(UntrainedConfig(**base, joint_refine=4), show_progress=False)
    before, after = plain.reconstruct_volume(samples), refined.reconstruct_volume(samples)
    assert [r.info["refine_iterations"] for r in after] == [4, 4, 4]
    assert all(np.isfinite(r.image).all() for r in after)
    # Refining moves every slice, each by its own data.
    assert all(not np.allclose(a.image, b.image) for a, b in zip(before, after))


def test_default_joint_slices_per_method_and_where_per_slice_fits_are_asked_for():
    from fastmri_untrained.recon import DEFAULT_FIT, DEFAULT_JOINT_SLICES, JOINT_BUDGET

    for method in ("conv-decoder", "deep-decoder", "dip"):
        cfg = UntrainedConfig(method=method)
        assert cfg.joint_slices is None and cfg.slices_per_network == DEFAULT_JOINT_SLICES[method]
        refine = cfg.joint_refine_config()
        assert refine.iterations == round(JOINT_BUDGET[method].refine * DEFAULT_FIT[method]["iterations"])
        assert refine.lr == pytest.approx(JOINT_BUDGET[method].refine_lr * DEFAULT_FIT[method]["lr"])
        assert refine.lr_schedule == JOINT_BUDGET[method].refine_schedule
    assert UntrainedConfig(method="deep-decoder").slices_per_network == 8
    # Warm starts, batches and held-out stopping are fits per slice: the default gives way to them.
    for other in (dict(warm_start=3), dict(batch=2), dict(early_stop="holdout")):
        assert UntrainedConfig(method="deep-decoder", **other).slices_per_network == 1
    assert UntrainedConfig(method="deep-decoder", joint_slices=1).slices_per_pass == 1
    with pytest.raises(ValueError, match="joint_refine"):
        UntrainedConfig(joint_refine=-1)


def test_joint_slices_refuse_what_they_cannot_combine_with():
    from fastmri_untrained.recon import JOINT_BUDGET

    for other in (dict(warm_start=3), dict(batch=2), dict(early_stop="holdout")):
        with pytest.raises(InputError, match="joint_slices") as err:
            UntrainedConfig(joint_slices=2, **other)
        assert next(iter(other)) in str(err.value)
    with pytest.raises(ValueError, match="joint_slices"):
        UntrainedConfig(joint_slices=0)
    with pytest.raises(ValueError, match="joint_iterations"):
        UntrainedConfig(joint_slices=2, joint_iterations=0)
    # The per-slice budget scaled by the method's factors, unless set.
    cfg = UntrainedConfig(method="conv-decoder", joint_slices=8)
    budget = JOINT_BUDGET["conv-decoder"]
    assert cfg.joint_fit_config().iterations == round(budget.iterations * cfg.fit_config().iterations)
    assert cfg.joint_fit_config().lr == pytest.approx(budget.lr * cfg.fit_config().lr)
    assert UntrainedConfig(joint_slices=8, joint_iterations=40).joint_fit_config().iterations == 40


def test_cli_joint_slices_through_the_driver_and_its_bad_combinations(tmp_path, capsys):
    simulate_dataset(tmp_path / "data", config=SimulationConfig(num_volumes=1, slices=3, coils=2, shape=(64, 48),
                                                                contiguous=True), show_progress=False)
    common = ["--data-path", str(tmp_path / "data"), "--method", "conv-decoder", "--center-fractions", "0.16", "--channels", "8",
              "--layers", "3", "--iterations", "4", "--no-progress"]
    assert main(["reconstruct", *common, "--out", str(tmp_path / "joint"), "--joint-slices", "3"]) == 0
    (path,) = sorted((tmp_path / "joint").glob("*.h5"))
    with h5py.File(path, "r") as hf:
        recon = hf["reconstruction"][()]
    assert recon.shape == (3, 32, 32) and np.isfinite(recon).all()
    capsys.readouterr()
    assert main(["reconstruct", *common, "--out", str(tmp_path / "bad"), "--joint-slices", "2",
                 "--warm-start", "2"]) == 2
    assert "--joint-slices" in capsys.readouterr().err
    # The held-out score of joint fits refits each run together without its held-out samples.
    assert main(["reconstruct", *common, "--out", str(tmp_path / "holdout"), "--joint-slices", "2",
                 "--report-holdout", "0.1"]) == 0
    (score,) = json.loads((tmp_path / "holdout" / "holdout.json").read_text())["volumes"].values()
    assert np.isfinite(score) and score > 0
