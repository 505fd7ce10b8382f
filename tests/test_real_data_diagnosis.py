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
    # Same solver, seed, maps and data: equal up to float32 rounding of the unscaling (1e-5 of
    # the k-space's peak is about 100 float32 ulps, far below any difference of method).
    assert torch.allclose(predicted, reference, atol=1e-5 * float(reference.abs().max()), rtol=0)


def test_residual_reference_needs_the_sense_model(sample, load_script):
    module = load_script("real_data_diagnosis")
    problem = MRIProblem(sample, UntrainedConfig(method="deep-decoder", forward_model="coil-images"))
    with pytest.raises(SystemExit, match="--forward-model sense"):
        module.l1_channels(problem, 1e-3)
