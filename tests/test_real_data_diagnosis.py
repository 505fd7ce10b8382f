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


def test_residual_of_with_coil_images_is_refused_at_the_command_line(load_script, capsys):
    module = load_script("real_data_diagnosis")
    with pytest.raises(SystemExit) as bad:
        module.main(["curve", "--forward-model", "coil-images", "--residual-of", "3e-3"])
    assert bad.value.code == 2
    assert "--residual-of needs --forward-model sense" in capsys.readouterr().err
