"""The three edges where complex data change form (fastmri_untrained.edges), round trip."""

import numpy as np
import pytest
import torch
from fastmri.data.transforms import to_tensor

from fastmri_untrained.edges import channels_to_complex, from_numpy, from_real_pairs, to_numpy, to_real_pairs


def _complex(shape, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.complex(torch.randn(shape, generator=g), torch.randn(shape, generator=g))


def test_fastmri_pairs_round_trip_and_match_fastmri_to_tensor():
    x = _complex((3, 8, 6))
    assert torch.equal(from_real_pairs(to_real_pairs(x)), x)  # views: exact
    # fastMRI's own conversion of a complex NumPy array gives the same pairs.
    assert torch.equal(to_tensor(x.numpy()), to_real_pairs(x))
    with pytest.raises(TypeError):
        to_real_pairs(x.real)
    with pytest.raises(ValueError):
        from_real_pairs(torch.zeros(3, 8, 3))


def test_network_channels_are_real_imaginary_pairs():
    output = torch.arange(2 * 3 * 4 * 5, dtype=torch.float32).reshape(1, 6, 4, 5)
    x = channels_to_complex(output)
    assert x.shape == (3, 4, 5) and x.dtype == torch.complex64
    for k in range(3):  # channel 2k is the real part of image k, channel 2k+1 its imaginary part
        assert torch.equal(x[k].real, output[0, 2 * k]) and torch.equal(x[k].imag, output[0, 2 * k + 1])
    with pytest.raises(ValueError):
        channels_to_complex(output[:, :5])


def test_sigpy_numpy_round_trip():
    x = _complex((2, 8, 6))
    a = to_numpy(x)
    assert a.dtype == np.complex64 and a.shape == (2, 8, 6)
    assert torch.equal(from_numpy(a), x)
    assert from_numpy(a.astype(np.complex128)).dtype == torch.complex64  # SigPy may promote; we do not
