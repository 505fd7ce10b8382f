"""The four generators of Appendix B of Heckel & Soltanolkotabi, "Denoising and regularization
via exploiting the structural bias of convolutional generators" (ICLR 2020).

They differ only in the operator ``M`` producing layer ``i+1`` from layer ``i``,
``b_{i+1,l} = ReLU(sum_j M(c_ijl) b_{i,j})`` (``T(c)``: convolution with kernel ``c``,
``u``: the linear-interpolation kernel, ``U``: 2x zero-insertion upsampling):

* (i)   ``M(c) = c T(u) U``: 1x1 convolution + bilinear upsampling: the deep decoder
        (:class:`~fastmri_untrained.nets.deep_decoder.DeepDecoder` is reused);
* (ii)  ``M(c) = c T(u)``: 1x1 convolution + the FIXED 4x4 interpolation kernel
        ``[[1,3,3,1],[3,9,9,3],[3,9,9,3],[1,3,3,1]] / 16`` per channel, no upsampling;
* (iii) ``M(c) = T(c)``: learned 3x3 convolutions, no upsampling;
* (iv)  ``M(c) = T(c) U``: learned 4x4 transposed convolutions with stride 2 (DC-GAN).

Architectures (i) and (ii) have only fixed spatial kernels and fit natural images much faster
than noise; with learned kernels (iii, iv) the gap shrinks and nearly vanishes when the
network is highly over-parameterised.

Choices where the appendix is silent: as in Section 2.2 and Figure 4 ("convolutional
layers, channel normalization, and applying ReLU"), every layer is followed by ReLU then
channel normalisation (``channel_norm=False`` gives the bare formula above), and a last 1x1
convolution maps to the output channels. The input is ``U[0, 0.1)`` noise with ``k``
channels at the coarsest size: the output size for (ii)/(iii), ``ceil(out / 2^d)`` for (iv)
(one stride-2 layer each; the result is centre-cropped), ``ceil(out / 2^(d-1))`` for (i)
(the deep decoder upsamples ``d - 1`` times, by about 2 each). No biases.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from torch import Tensor, nn

from .common import (
    Conv1x1,
    FixedInterpolationConv,
    UntrainedNet,
    center_crop,
    channel_norm,
    check_choice,
    check_positive_int,
    random_input,
    seeded,
)
from .deep_decoder import DeepDecoder, DeepDecoderConfig

Arch = Literal["i", "ii", "iii", "iv"]
ARCHS: tuple[str, ...] = ("i", "ii", "iii", "iv")

# Learned weights per (input channel, output channel) pair of one layer's operator M.
_WEIGHTS_PER_PAIR = {"i": 1, "ii": 1, "iii": 9, "iv": 16}


@dataclass
class AppendixBConfig:
    """Configuration of an Appendix-B generator.

    Attributes:
        arch: ``"i"``, ``"ii"``, ``"iii"`` or ``"iv"`` (see the module docstring).
        channels: width ``k`` of every layer.
        layers: depth ``d``.
        channel_norm: channel normalisation (affine) after each ReLU.
        input_scale: the input is uniform in ``[0, input_scale)``.
    """

    arch: Arch = "i"
    channels: int = 64
    layers: int = 5
    channel_norm: bool = True
    input_scale: float = 0.1

    def __post_init__(self):
        check_choice("arch", self.arch, ARCHS)
        check_positive_int("channels", self.channels)
        check_positive_int("layers", self.layers)


class ConvGenerator(UntrainedNet):
    """Appendix-B architectures (ii), (iii) and (iv); (i) is the deep decoder.

    Args:
        config: the architecture (``arch`` in ``{"ii", "iii", "iv"}``).
        out_channels: output channels.
        out_size: output ``(H, W)``, any size.
        seed: seeds both the weight initialisation and the fixed random input.
    """

    def __init__(
        self,
        config: AppendixBConfig,
        out_channels: int = 1,
        out_size: Sequence[int] = (64, 64),
        seed: int = 0,
    ):
        super().__init__(out_channels, out_size)
        check_choice("arch", config.arch, ("ii", "iii", "iv"))  # (i): use DeepDecoder
        self.config = config
        k, d = config.channels, config.layers
        if config.arch == "iv":
            in_size = tuple(math.ceil(s / 2**d) for s in self.out_size)
        else:
            in_size = self.out_size

        with seeded(seed):
            layers = []
            for _ in range(d):
                if config.arch == "ii":
                    block = [Conv1x1(k, k), FixedInterpolationConv(k)]
                elif config.arch == "iii":
                    block = [nn.Conv2d(k, k, 3, padding=1, bias=False)]
                else:  # output size exactly 2n: (n - 1) * 2 - 2 + 4
                    block = [nn.ConvTranspose2d(k, k, 4, stride=2, padding=1, bias=False)]
                block.append(nn.ReLU())
                if config.channel_norm:
                    block.append(channel_norm(k))
                layers.append(nn.Sequential(*block))
            self.layers = nn.Sequential(*layers)
            self.head = Conv1x1(k, self.out_channels)

        self.register_buffer("net_input", random_input((1, k, *in_size), seed, "uniform", config.input_scale))

    def generate(self, z: Tensor) -> Tensor:
        x = self.layers(z)
        if x.shape[-2:] != self.out_size:  # (iv): 2^d * ceil(out / 2^d) >= out
            x = center_crop(x, self.out_size)
        return self.head(x)


def build_appendix_b(
    arch: str,
    out_size: Sequence[int],
    channels: int,
    layers: int,
    out_channels: int = 1,
    seed: int = 0,
    channel_norm: bool = True,
) -> UntrainedNet:
    """Build Appendix-B architecture ``arch`` (``"i"``, ``"ii"``, ``"iii"`` or ``"iv"``).

    ``"i"`` is a :class:`DeepDecoder` with bilinear upsampling whose input is
    ``ceil(out / 2^(layers-1))`` so that each of its ``layers - 1`` upsamplings is about 2x.
    """
    config = AppendixBConfig(arch=arch, channels=channels, layers=layers, channel_norm=channel_norm)
    if arch != "i":
        return ConvGenerator(config, out_channels=out_channels, out_size=out_size, seed=seed)
    out_size = tuple(out_size)
    dd_config = DeepDecoderConfig(
        layers=layers,
        channels=channels,
        in_size=tuple(max(1, math.ceil(s / 2 ** (layers - 1))) for s in out_size),
        upsample="bilinear",
        bias=False,
        channel_norm=channel_norm,
        input_scale=config.input_scale,
    )
    return DeepDecoder(dd_config, out_channels=out_channels, out_size=out_size, seed=seed)


def appendix_b_num_parameters(
    arch: str, channels: int, layers: int, out_channels: int = 1, channel_norm: bool = True
) -> int:
    """Trainable parameters of an Appendix-B network, without building it.

    ``d * w * k^2`` for the layers (``w`` = 1, 1, 9, 16 for i-iv), ``2 d k`` for the affine
    channel normalisations and ``k * out_channels`` for the last 1x1 convolution.
    """
    check_choice("arch", arch, ARCHS)
    k, d = channels, layers
    norms = 2 * d * k if channel_norm else 0
    return d * _WEIGHTS_PER_PAIR[arch] * k * k + norms + k * out_channels


def width_for_overparameterization(
    arch: str,
    out_size: Sequence[int],
    factor: float,
    layers: int = 5,
    out_channels: int = 1,
    channel_norm: bool = True,
) -> int:
    """The width ``k`` whose parameters-per-output-value is closest to ``factor`` (e.g. 1, 4, 16).

    The over-parameterisation is ``num_parameters / (out_channels * H * W)``.
    """
    if factor <= 0:
        raise ValueError(f"factor must be positive, got {factor}")
    h, w = out_size
    target = factor * out_channels * h * w

    def count(k: int) -> int:
        return appendix_b_num_parameters(arch, k, layers, out_channels, channel_norm)

    # The count is increasing in k: start from the positive root of a k^2 + b k = target.
    a = layers * _WEIGHTS_PER_PAIR[arch]
    b = (2 * layers if channel_norm else 0) + out_channels
    k = max(1, int((-b + math.sqrt(b * b + 4 * a * target)) / (2 * a)))
    while count(k) > target and k > 1:
        k -= 1
    while count(k + 1) <= target:
        k += 1
    # Now count(k) <= target < count(k + 1) (or k = 1): pick the closer one.
    return k if abs(count(k) - target) <= abs(count(k + 1) - target) else k + 1
