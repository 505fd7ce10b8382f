"""Deep decoder (Heckel & Hand, ICLR 2019).

``B_{i+1} = cn(ReLU(U_i B_i C_i))`` for ``i = 0..d-1`` and ``x = B_d C_{d+1}``: per layer a
1x1 convolution (the learned channel mixing ``C_i``), a fixed upsampling ``U_i``, ReLU and
channel normalisation; a last 1x1 convolution maps to the output channels (2 for one complex
image, 2C for C coil images). Only 1x1 convolutions are learned: the spatial structure comes
from the fixed upsampling, i.e. a convolution with a fixed (triangular) kernel.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor, nn

from .common import (
    Conv1x1,
    LearnedUpsample,
    Resize,
    UntrainedNet,
    as_size2d,
    channel_norm,
    check_choice,
    check_positive_int,
    geometric_sizes,
    per_layer,
    random_input,
    seeded,
)

UpsampleMode = Literal["bilinear", "nearest", "none", "transposed"]


@dataclass
class DeepDecoderConfig:
    """Configuration of a :class:`DeepDecoder`.

    Attributes:
        layers: depth ``d``: number of (1x1 conv, upsampling, ReLU, cn) layers; there are
            ``d - 1`` upsamplings (the last layer works at the output size).
        channels: width ``k``, an int or one int per layer (layer ``i`` maps
            ``channels[i-1] -> channels[i]``; the input has ``channels[0]`` channels).
        in_size: spatial size ``(h0, w0)`` of the fixed random input; sizes then grow
            geometrically to the output size. Clipped to the output size per axis. Ignored
            (input at output size) for ``upsample="none"`` or a single layer.
        upsample: ``"bilinear"`` (convolution with a triangular kernel, align_corners=False),
            ``"nearest"``, ``"none"`` (no upsampling) or ``"transposed"`` (a learned depthwise
            transposed convolution in place of the fixed ``U_i``).
        bias: bias in the convolutions (the published parameter counts assume none).
        channel_norm: apply channel normalisation after each ReLU.
        norm_affine: learn a per-channel scale and shift in the channel normalisation.
        sigmoid: squash the output to (0, 1) (off: MRI real/imaginary parts are signed).
        input_scale: the input ``B_0`` is uniform in ``[0, input_scale)``.

    The defaults (10 layers, 368 channels, 16x16 input) are the configuration used for
    fastMRI knees: 1,372,640 parameters for 30 output channels (15 coils).
    """

    layers: int = 10
    channels: int | Sequence[int] = 368
    in_size: tuple[int, int] = (16, 16)
    upsample: UpsampleMode = "bilinear"
    bias: bool = False
    channel_norm: bool = True
    norm_affine: bool = True
    sigmoid: bool = False
    input_scale: float = 0.1

    def __post_init__(self):
        check_positive_int("layers", self.layers)
        per_layer("channels", self.channels, self.layers)
        as_size2d("in_size", self.in_size)
        check_choice("upsample", self.upsample, ("bilinear", "nearest", "none", "transposed"))


class DeepDecoder(UntrainedNet):
    """The deep decoder: 1x1 convolutions, fixed upsampling, ReLU, channel normalisation.

    Args:
        config: the architecture.
        out_channels: output channels (2 per complex image).
        out_size: output ``(H, W)``, any size.
        seed: seeds both the weight initialisation and the fixed random input.
    """

    def __init__(
        self,
        config: DeepDecoderConfig | None = None,
        out_channels: int = 2,
        out_size: Sequence[int] = (320, 320),
        seed: int = 0,
    ):
        super().__init__(out_channels, out_size)
        self.config = config = config or DeepDecoderConfig()
        channels = per_layer("channels", config.channels, config.layers)

        if config.upsample == "none" or config.layers == 1:
            in_size = self.out_size
        else:
            in_size = tuple(min(a, b) for a, b in zip(as_size2d("in_size", config.in_size), self.out_size))
        steps = 0 if in_size == self.out_size else config.layers - 1
        # sizes[i] is the size entering layer i; layer i resizes to sizes[i + 1].
        sizes = geometric_sizes(in_size, self.out_size, steps) if steps else [in_size]
        sizes = sizes + [self.out_size] * (config.layers + 1 - len(sizes))
        self.sizes = sizes

        with seeded(seed):
            layers = []
            k_in = channels[0]
            for i, k in enumerate(channels):
                block = [Conv1x1(k_in, k, bias=config.bias)]
                if sizes[i + 1] != sizes[i]:
                    if config.upsample == "transposed":
                        block.append(LearnedUpsample(k, sizes[i], sizes[i + 1], bias=config.bias))
                    else:
                        block.append(Resize(sizes[i + 1], config.upsample))
                block.append(nn.ReLU())
                if config.channel_norm:
                    block.append(channel_norm(k, affine=config.norm_affine))
                layers.append(nn.Sequential(*block))
                k_in = k
            self.layers = nn.Sequential(*layers)
            self.head = Conv1x1(k_in, self.out_channels, bias=config.bias)

        self.register_buffer(
            "net_input", random_input((1, channels[0], *in_size), seed, "uniform", config.input_scale)
        )

    def generate(self, z: Tensor) -> Tensor:
        x = self.head(self.layers(z))
        return torch.sigmoid(x) if self.config.sigmoid else x
