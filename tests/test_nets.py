"""Tests of the un-trained networks in ``fastmri_untrained.nets``."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from fastmri_untrained.nets import (
    ARCHS,
    ConvDecoder,
    ConvDecoderConfig,
    DeepDecoder,
    DeepDecoderConfig,
    DeepImagePrior,
    DeepImagePriorConfig,
    appendix_b_num_parameters,
    build_appendix_b,
    build_net,
    overparameterization,
    width_for_overparameterization,
)
from fastmri_untrained.nets.common import FixedInterpolationConv, Resize, geometric_sizes

# Small widths keep every forward pass in milliseconds.
SMALL = {
    "deep-decoder": dict(layers=4, channels=6, in_size=(4, 4)),
    "conv-decoder": dict(layers=4, channels=6, in_size=(4, 3)),
    "dip": dict(levels=3, channels_down=6, channels_up=6, channels_skip=2, input_depth=4),
}
ODD_SIZES = [(320, 368), (640, 368), (37, 53), (256, 256)]
# The 2x bilinear (align_corners=False) kernel, written out independently of the package.
TRIANGLE_4x4 = torch.tensor(
    [[1.0, 3, 3, 1], [3, 9, 9, 3], [3, 9, 9, 3], [1, 3, 3, 1]]
) / 16
EPS32 = torch.finfo(torch.float32).eps
EPS64 = torch.finfo(torch.float64).eps


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    # Tiny convolutions on a shared 2-core machine: thread spinning costs far more than it gives.
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


# ----------------------------------------------------------------------------- parameter counts
def test_deep_decoder_published_parameter_count():
    net = DeepDecoder(
        DeepDecoderConfig(layers=10, channels=368, in_size=(16, 16), bias=False),
        out_channels=30,
        out_size=(640, 368),
    )
    # 10 x (368*368) 1x1 convs + 10 x (2*368) affine norms + 368*30 last 1x1 conv
    assert 10 * 368 * 368 + 10 * 2 * 368 + 368 * 30 == 1_372_640
    assert net.num_parameters() == 1_372_640
    # The count does not depend on the output size (only 1x1 convs are learned).
    assert build_net("deep-decoder", 30, (320, 320)).num_parameters() == 1_372_640


def test_conv_decoder_published_parameter_count():
    net = ConvDecoder(
        ConvDecoderConfig(layers=8, channels=160, in_size=(8, 4), kernel_size=3, bias=False),
        out_channels=30,
        out_size=(640, 368),
    )
    assert 8 * 160 * 160 * 9 + 8 * 2 * 160 + 160 * 30 == 1_850_560
    assert net.num_parameters() == 1_850_560
    assert build_net("conv-decoder", 30, (640, 368)).num_parameters() == 1_850_560


def test_dip_skip_net_parameter_count():
    # The DIP denoising "skip" net (5 levels, 128/128/4, 32 input channels, biases), 3 outputs.
    def conv(ci, co, k):
        return ci * co * k * k + co

    def bn(c):
        return 2 * c

    expected = 0
    for level in range(5):
        c_in = 32 if level == 0 else 128
        expected += conv(c_in, 4, 1) + bn(4)  # skip branch
        expected += conv(c_in, 128, 3) + bn(128) + conv(128, 128, 3) + bn(128)  # down
        expected += bn(132) + conv(132, 128, 3) + bn(128) + conv(128, 128, 1) + bn(128)  # up
    expected += conv(128, 3, 1)
    assert expected == 2_217_831
    net = DeepImagePrior(DeepImagePriorConfig(), out_channels=3, out_size=(64, 64))
    assert net.num_parameters() == 2_217_831


@pytest.mark.parametrize("arch", ARCHS)
def test_appendix_b_parameter_formula_matches_built_network(arch):
    net = build_appendix_b(arch, (24, 20), channels=5, layers=3, out_channels=2)
    weights_per_pair = {"i": 1, "ii": 1, "iii": 9, "iv": 16}[arch]
    expected = 3 * weights_per_pair * 25 + 3 * 2 * 5 + 5 * 2
    assert net.num_parameters() == expected
    assert appendix_b_num_parameters(arch, 5, 3, out_channels=2) == expected
    assert overparameterization(net) == pytest.approx(expected / (2 * 24 * 20), rel=EPS64)  # an integer ratio


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("factor", [1, 4, 16])
def test_width_for_overparameterization_is_closest(arch, factor):
    size = (64, 48)
    k = width_for_overparameterization(arch, size, factor, layers=5)

    def gap(width):
        return abs(appendix_b_num_parameters(arch, width, 5) / (64 * 48) - factor)

    assert gap(k) <= gap(k + 1)
    assert k == 1 or gap(k) <= gap(k - 1)
    assert gap(k) < 0.1 * factor  # widths are coarse, but not that coarse at these sizes


# ----------------------------------------------------------------------------- shapes
@pytest.mark.parametrize("size", ODD_SIZES)
@pytest.mark.parametrize("name", ["deep-decoder", "conv-decoder", "dip"])
def test_output_shape_for_any_size(name, size):
    net = build_net(name, 4, size, **SMALL[name])
    with torch.no_grad():
        out = net()
    assert out.shape == (1, 4, *size)
    assert out.dtype == torch.float32
    assert torch.isfinite(out).all()
    assert net.net_input.shape[0] == 1 and net.net_input.ndim == 4


@pytest.mark.parametrize("upsample", ["bilinear", "nearest", "none", "transposed"])
def test_deep_decoder_upsampling_modes(upsample):
    cfg = DeepDecoderConfig(layers=3, channels=4, in_size=(5, 7), upsample=upsample)
    net = DeepDecoder(cfg, out_channels=2, out_size=(37, 53))
    with torch.no_grad():
        assert net().shape == (1, 2, 37, 53)
    expected_input = (37, 53) if upsample == "none" else (5, 7)
    assert tuple(net.net_input.shape) == (1, 4, *expected_input)
    fixed = 3 * 16 + 3 * 8 + 4 * 2
    if upsample == "transposed":
        assert net.num_parameters() > fixed  # the learned upsampling kernels
    else:
        assert net.num_parameters() == fixed


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("size", [(37, 53), (64, 64)])
def test_appendix_b_output_shape(arch, size):
    net = build_appendix_b(arch, size, channels=4, layers=3, out_channels=1)
    with torch.no_grad():
        assert net().shape == (1, 1, *size)
    # Input at the coarsest size: full size without upsampling, 2^-d with d stride-2 layers.
    h0 = {"i": -(-size[0] // 4), "ii": size[0], "iii": size[0], "iv": -(-size[0] // 8)}[arch]
    assert net.net_input.shape[-2] == h0


def test_geometric_sizes_reach_output_and_grow():
    sizes = geometric_sizes((16, 16), (640, 368), 9)
    assert sizes[0] == (16, 16) and sizes[-1] == (640, 368)
    for a, b in zip(sizes, sizes[1:]):
        assert b[0] > a[0] and b[1] > a[1]
    # Exact powers of two stay exact despite floating point.
    assert geometric_sizes((16, 16), (256, 256), 4) == [(16, 16), (32, 32), (64, 64), (128, 128), (256, 256)]
    # 1 * 64 ** (5/6) evaluates to 32.00000000000001 and must not round up to 33.
    assert geometric_sizes((1, 1), (64, 64), 6) == [(2**j, 2**j) for j in range(7)]


def test_dip_rejects_sizes_too_small_for_its_levels():
    with pytest.raises(ValueError, match="too small"):
        DeepImagePrior(DeepImagePriorConfig(levels=5), out_channels=2, out_size=(20, 64))


# ----------------------------------------------------------------------------- determinism
@pytest.mark.parametrize("name", ["deep-decoder", "conv-decoder", "dip"])
def test_seed_determines_weights_and_input(name):
    torch.manual_seed(123)
    a = build_net(name, 2, (37, 53), seed=7, **SMALL[name])
    torch.manual_seed(456)  # the global RNG state must not matter
    b = build_net(name, 2, (37, 53), seed=7, **SMALL[name])
    c = build_net(name, 2, (37, 53), seed=8, **SMALL[name])
    with torch.no_grad():
        assert torch.equal(a(), b())
        assert not torch.allclose(a(), c())  # other weights: far beyond rounding
    assert torch.equal(a.net_input, b.net_input)
    assert not torch.equal(a.net_input, c.net_input)
    for (na, pa), (_, pc) in zip(a.named_parameters(), c.named_parameters()):
        if "weight" in na and pa.ndim > 1:  # conv weights (norm weights start at 1)
            assert not torch.equal(pa, pc)


def test_construction_leaves_global_rng_untouched():
    torch.manual_seed(0)
    expected = torch.rand(5)
    torch.manual_seed(0)
    build_net("conv-decoder", 2, (16, 16), seed=3, **SMALL["conv-decoder"])
    assert torch.equal(torch.rand(5), expected)


@pytest.mark.parametrize("name", ["deep-decoder", "conv-decoder"])
def test_input_is_uniform_in_0_to_0_1(name):
    net = build_net(name, 2, (64, 64), channels=16, layers=3)
    z = net.net_input
    assert z.min() >= 0 and z.max() < 0.1
    # mean of N iid U(0, 0.1): standard error 0.1 / sqrt(12 N) (4.5e-4 for N = 4096); 5 of them
    assert z.mean().item() == pytest.approx(0.05, abs=5 * 0.1 / math.sqrt(12 * z.numel()))


def test_dip_input_and_noise_regularisation_setting():
    net = build_net("dip", 2, (32, 32), reg_noise_std=0.05, **SMALL["dip"])
    assert net.reg_noise_std == 0.05
    assert tuple(net.net_input.shape) == (1, 4, 32, 32)  # full size, input_depth channels
    assert net.net_input.min() >= 0 and net.net_input.max() < 0.1
    assert build_net("deep-decoder", 2, (32, 32), **SMALL["deep-decoder"]).reg_noise_std == 0.0


def test_forward_uses_given_input():
    net = build_net("dip", 2, (32, 32), **SMALL["dip"])
    with torch.no_grad():
        assert torch.equal(net(), net(net.net_input.clone()))
        noisy = net.net_input + 0.05 * torch.randn_like(net.net_input)
        assert not torch.allclose(net(), net(noisy))  # a 5% input perturbation shows far beyond rounding
        with pytest.raises(ValueError, match="does not match"):
            net(torch.zeros(1, 3, 32, 32))


# ----------------------------------------------------------------------------- operators
def test_bilinear_upsampling_is_triangular_kernel_convolution():
    # Factor-2 deep decoder: its one upsampling goes from 8x10 to 16x20.
    net = DeepDecoder(DeepDecoderConfig(layers=2, channels=3, in_size=(8, 10)), 1, (16, 20))
    resizes = [m for m in net.modules() if isinstance(m, Resize)]
    assert len(resizes) == 1 and resizes[0].size == (16, 20)
    x = torch.randn(1, 3, 8, 10, generator=torch.Generator().manual_seed(0))
    up = resizes[0](x)
    # Zero-insertion upsampling then the 4x4 triangular kernel == transposed conv, stride 2.
    kernel = TRIANGLE_4x4.expand(3, 1, 4, 4)
    ref = F.conv_transpose2d(x, kernel, stride=2, padding=1, groups=3)
    assert ref.shape == up.shape
    # Equal in the interior up to float32 rounding (two lerps vs a 4-tap sum with weights summing to 1:
    # a few eps32 of max|x|; 0.3 measured); the borders differ (interpolate clamps at the edge).
    torch.testing.assert_close(up[..., 1:-1, 1:-1], ref[..., 1:-1, 1:-1], rtol=0,
                               atol=4 * EPS32 * float(x.abs().max()))
    assert not torch.allclose(up[..., 0, :], ref[..., 0, :])


def test_arch_ii_kernel_is_fixed_and_not_learned():
    net = build_appendix_b("ii", (20, 20), channels=4, layers=3)
    fixed = [m for m in net.modules() if isinstance(m, FixedInterpolationConv)]
    assert len(fixed) == 3
    for m in fixed:
        assert list(m.parameters()) == []
        assert not m.kernel.requires_grad
        torch.testing.assert_close(m.kernel[0, 0], TRIANGLE_4x4, rtol=0, atol=0)  # dyadic weights k/16: exact
    # Only the 1x1 convs, norms and head are trainable: same count as architecture (i).
    assert net.num_parameters() == appendix_b_num_parameters("i", 4, 3)
    # Applied per channel, without upsampling: a delta returns the kernel, channels stay apart.
    delta = torch.zeros(1, 4, 9, 9)
    delta[0, 1, 4, 4] = 1.0
    out = fixed[0](delta)
    assert out.shape == delta.shape
    # Pads 1 before, 2 after: output o sees inputs o-1..o+2, so the delta at 4 spreads to 2..5.
    # products with 1 and sums with 0 are exact; allow a transform-based conv (Winograd) a few eps32 per tap
    torch.testing.assert_close(out[0, 1, 2:6, 2:6], TRIANGLE_4x4, rtol=0, atol=4 * EPS32)
    assert out[0, 1].sum() == pytest.approx(TRIANGLE_4x4.sum().item(), rel=16 * EPS32)  # 16 taps
    assert out[0, [0, 2, 3]].abs().max() == 0


def test_arch_iv_transposed_layers_double_the_size():
    net = build_appendix_b("iv", (64, 64), channels=3, layers=3)
    x = net.net_input
    assert x.shape[-2:] == (8, 8)
    for layer in net.layers:
        x = layer(x)
        assert layer[0].kernel_size == (4, 4) and layer[0].stride == (2, 2)
    assert x.shape[-2:] == (64, 64)


def test_channel_norm_normalises_each_channel():
    net = DeepDecoder(DeepDecoderConfig(layers=3, channels=5, in_size=(6, 6)), 2, (24, 24))
    norm = net.layers[1][-1]
    assert isinstance(norm, torch.nn.BatchNorm2d)
    captured = {}
    norm.register_forward_hook(lambda m, i, o: captured.update(inp=i[0].detach(), out=o.detach()))
    with torch.no_grad():
        net()
        out = captured["out"][0]  # affine is the identity at initialisation
        # BatchNorm divides by sqrt(var + eps): the variance is var / (var + eps), not 1 (1 - 1e-3 here)
        var_in = captured["inp"][0].var(dim=(1, 2), unbiased=False)
        shrink = var_in / (var_in + norm.eps)
        # float32 means and variances of n = 576 values: pairwise sums, ~eps32 log2(n) of their size
        tol = 4 * EPS32 * math.log2(out[0].numel())
        torch.testing.assert_close(out.mean(dim=(1, 2)), torch.zeros(5), rtol=0, atol=tol * float(out.abs().mean()))
        torch.testing.assert_close(out.var(dim=(1, 2), unbiased=False), shrink, rtol=0, atol=tol)
        norm.weight.fill_(2.0)
        norm.bias.fill_(3.0)
        net()
        out = captured["out"][0]
        torch.testing.assert_close(out.mean(dim=(1, 2)), torch.full((5,), 3.0), rtol=0,
                                   atol=tol * float(out.abs().mean()))
        torch.testing.assert_close(out.std(dim=(1, 2), unbiased=False), 2 * shrink.sqrt(), rtol=0, atol=2 * tol)


@pytest.mark.parametrize("name", ["deep-decoder", "conv-decoder", "dip"])
def test_output_is_the_same_in_eval_mode(name):
    # Normalisation uses the current statistics only: eval() must not change the image.
    net = build_net(name, 2, (32, 32), **SMALL[name])
    with torch.no_grad():
        train_out = net.train()()
        eval_out = net.eval()()
    # the same batch statistics in both modes (bitwise equal measured): rounding at most, a few eps32 of the peak
    torch.testing.assert_close(train_out, eval_out, rtol=0, atol=8 * EPS32 * float(train_out.abs().max()))


@pytest.mark.parametrize(
    "builder",
    [
        lambda: build_net("deep-decoder", 2, (24, 20), **SMALL["deep-decoder"]),
        lambda: build_net("deep-decoder", 2, (24, 20), upsample="transposed", **SMALL["deep-decoder"]),
        lambda: build_net("conv-decoder", 2, (24, 20), **SMALL["conv-decoder"]),
        lambda: build_net("dip", 2, (24, 20), **SMALL["dip"]),
        *[lambda a=a: build_appendix_b(a, (24, 20), channels=4, layers=3) for a in ARCHS],
    ],
)
def test_gradients_reach_every_trainable_parameter(builder):
    net = builder()
    out = net()
    target = torch.randn(out.shape, generator=torch.Generator().manual_seed(1))
    ((out - target) ** 2).sum().backward()
    params = [(n, p) for n, p in net.named_parameters() if p.requires_grad]
    assert params
    for name, p in params:
        assert p.grad is not None, name
        assert p.grad.abs().sum() > 0, name
    assert net.net_input.grad is None  # the input is a fixed buffer


# ----------------------------------------------------------------------------- factory
def test_build_net_applies_overrides():
    net = build_net("deep-decoder", 2, (32, 32), channels=[4, 6, 8], layers=3, in_size=[4, 4])
    assert isinstance(net, DeepDecoder)
    # 4->4, 4->6, 6->8 1x1 convs, norms on 4, 6, 8 channels, head 8->2
    assert net.num_parameters() == 16 + 24 + 48 + 2 * (4 + 6 + 8) + 16
    assert isinstance(build_net("conv-decoder", 2, (32, 32), channels=4), ConvDecoder)
    assert isinstance(build_net("dip", 2, (32, 32), **SMALL["dip"]), DeepImagePrior)


def test_build_net_rejects_unknown_name():
    with pytest.raises(ValueError, match="unet-9000"):
        build_net("unet-9000", 2, (32, 32))


def test_build_net_rejects_unknown_field():
    with pytest.raises(ValueError, match="chanels"):
        build_net("deep-decoder", 2, (32, 32), chanels=64)
    with pytest.raises(ValueError, match="input_depth"):
        build_net("conv-decoder", 2, (32, 32), input_depth=8)


def test_invalid_values_are_rejected():
    with pytest.raises(ValueError, match="upsample"):
        build_net("deep-decoder", 2, (32, 32), upsample="cubic")
    with pytest.raises(ValueError, match="channels"):
        build_net("deep-decoder", 2, (32, 32), layers=3, channels=[4, 4])
    with pytest.raises(ValueError, match="out_size"):
        build_net("conv-decoder", 2, (0, 32))
    with pytest.raises(ValueError, match="padding"):
        build_net("dip", 2, (32, 32), padding="circular")
