"""scripts/real_data_diagnosis.py: the residual reference of ``curve --residual-of`` is the
package's shifted L1-wavelet, on the problem's own grid and scale (no real data needed)."""

import pytest
import torch

from fastmri_untrained.baselines import SigPyRecon
from fastmri_untrained.pipeline import MaskSpec, simulated_samples
from fastmri_untrained.recon import MRIProblem, UntrainedConfig


@pytest.fixture(scope="module")
def sample():
    return simulated_samples(MaskSpec("equispaced_fraction", (4,), (0.16,)), (64, 48), coils=4)[0]


def test_residual_reference_predicts_what_the_l1_wavelet_reconstruction_predicts(sample, load_script):
    module = load_script("real_data_diagnosis")
    problem = MRIProblem(sample, UntrainedConfig(method="deep-decoder", forward_model="sense"))
    offset = module.l1_channels(problem, 1e-3)
    assert offset.shape == (1, 2, *problem.out_size)
    predicted = problem.operator(torch.ones_like(problem.mask))(problem.to_operator_input(offset))
    reference = SigPyRecon(method="l1-wavelet", lamda=1e-3, cycle_spin=True)(sample).kspace
    # Same solver, seed, maps and data. 100 iterations amplify rounding: the thread count alone
    # moves the result by 1.4e-4 (relative norm, 1 vs 2 threads), a weight 20% off moves it by
    # 2.1e-2; 2e-3 sits between them with a factor of about 10 to each.
    assert float((predicted - reference).norm() / reference.norm()) < 2e-3


def test_residual_reference_needs_the_sense_model(sample, load_script):
    module = load_script("real_data_diagnosis")
    problem = MRIProblem(sample, UntrainedConfig(method="deep-decoder", forward_model="coil-images"))
    with pytest.raises(SystemExit, match="--forward-model sense"):
        module.l1_channels(problem, 1e-3)


@pytest.mark.parametrize("argv, message", [
    (["--forward-model", "coil-images", "--residual-of", "3e-3"], "--residual-of needs --forward-model sense"),
    (["--forward-model", "coil-images", "--wavelet-penalty", "3e-3"], "--wavelet-penalty needs --forward-model sense"),
    (["--residual-of", "3e-3", "--wavelet-penalty", "3e-3"], "exclude each other"),
])
def test_curve_flags_that_do_not_fit_are_refused_at_the_command_line(argv, message, load_script, capsys):
    module = load_script("real_data_diagnosis")
    with pytest.raises(SystemExit) as bad:
        module.main(["curve", *argv])
    assert bad.value.code == 2
    assert message in capsys.readouterr().err


def test_wavelet_penalty_adds_sigpys_l1_wavelet_term_in_the_fits_units(sample, load_script):
    import numpy as np
    import sigpy

    from fastmri_untrained.baselines import normalisation
    from fastmri_untrained.fit import squared_norm

    module = load_script("real_data_diagnosis")
    problem = MRIProblem(sample, UntrainedConfig(method="deep-decoder", forward_model="sense"))
    data_model, lamda, fit_scale = problem.forward_model(problem.mask), 1e-3, 2.0
    penalised, measurements = module.with_wavelet_penalty(problem, data_model, problem.kspace, lamda, 0, fit_scale)
    output = problem.build_net(0)().detach()
    n = problem.kspace.numel()  # the data entries come first, scaled; the penalty's are measured as 0
    assert torch.equal(measurements[:n], fit_scale * problem.kspace.flatten()) and not measurements[n:].any()
    entries = penalised(output)  # the first step: its shift is the generator's first draw
    assert torch.equal(entries[:n], data_model(output).flatten())
    penalty = float(squared_norm(entries[n:]))
    # SigPy's L1-wavelet term lamda ||W S x_s||_1 on the image in SigPy's units (x_s = x * scale,
    # x = G / fit_scale), shifted as the first step shifts; the fit's loss is SigPy's objective x
    # 2 fit_scale^2 / scale^2.
    scale = normalisation(problem.kspace)
    image = problem.to_operator_input(output).numpy() / fit_scale * scale
    rng = np.random.default_rng(0)
    shift = [int(rng.integers(0, size)) for size in image.shape]
    sigpy_term = lamda * np.abs(sigpy.linop.Wavelet(image.shape, wave_name="db4")(np.roll(image, shift, (0, 1)))).sum()
    # float32 sums of about 10^4 terms: relative rounding near 1e-6; a weight off by 2 (the 1/2 of
    # SigPy's data term forgotten) is off by a factor of 2.
    assert penalty * scale ** 2 / (2 * fit_scale ** 2) == pytest.approx(sigpy_term, rel=1e-4)
