"""ConvDecoder (Darestani & Heckel, 2021).

A decoder with learned spatial filters: per layer nearest-neighbour upsampling to a size that
grows geometrically from a small input (e.g. 8x4) to the output, a learned 3x3 convolution,
ReLU and BatchNorm; a last 1x1 convolution maps to the output channels.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from .common import (
    Conv1x1,
    InputNoise,
    PaddingMode,
    Resize,
    UntrainedNet,
    as_size2d,
    channel_norm,
    check_choice,
    check_positive_int,
    conv2d,
    geometric_sizes,
    random_input,
    seeded,
)


@dataclass
class ConvDecoderConfig:
    """Configuration of a :class:`ConvDecoder`.

    Attributes:
        layers: number of (upsample, conv, ReLU, BatchNorm) layers; the first ``layers - 1``
            upsample, the last works at the output size.
        channels: width of every layer; the input also has ``channels`` channels.
        in_size: spatial size of the random input (8x4 suits 640x368 knee k-space images);
            clipped to the output size per axis.
        kernel_size: odd size of the learned convolutions.
        padding: ``"zeros"`` (as in the published code) or ``"reflection"``.
        bias: bias in the convolutions (the published count assumes none).
        sigmoid: squash the output to (0, 1).
        input_noise: the fixed input is ``U[0, input_scale)`` (``"uniform"``, default, as the
            deep decoder) or ``input_scale * N(0, 1)`` (``"normal"``).
        input_scale: scale of the fixed input.

    The defaults are the published configuration: 8 layers, 160 channels, 3x3 kernels
    without bias: 1,850,560 parameters for 30 output channels.
    """

    layers: int = 8
    channels: int = 160
    in_size: tuple[int, int] = (8, 4)
    kernel_size: int = 3
    padding: PaddingMode = "zeros"
    bias: bool = False
    sigmoid: bool = False
    input_noise: InputNoise = "uniform"
    input_scale: float = 0.1

    def __post_init__(self):
        check_positive_int("layers", self.layers)
        check_positive_int("channels", self.channels)
        as_size2d("in_size", self.in_size)
        if check_positive_int("kernel_size", self.kernel_size) % 2 == 0:
            raise ValueError(f"kernel_size must be odd, got {self.kernel_size}")
        check_choice("padding", self.padding, ("zeros", "reflection"))
        check_choice("input_noise", self.input_noise, ("uniform", "normal"))


class ConvDecoder(UntrainedNet):
    """ConvDecoder: nearest upsampling + learned 3x3 convolutions + ReLU + BatchNorm.

    Args:
        config: the architecture.
        out_channels: output channels (2 per complex image).
        out_size: output ``(H, W)``, any size.
        seed: seeds both the weight initialisation and the fixed random input.
    """

    def __init__(
        self,
        config: ConvDecoderConfig | None = None,
        out_channels: int = 2,
        out_size: Sequence[int] = (320, 320),
        seed: int = 0,
    ):
        super().__init__(out_channels, out_size)
        self.config = config = config or ConvDecoderConfig()
        k = config.channels
        in_size = tuple(min(a, b) for a, b in zip(as_size2d("in_size", config.in_size), self.out_size))
        if config.layers == 1:
            in_size = self.out_size
        # sizes[i + 1] is the size layer i upsamples to; the last layer keeps the output size.
        sizes = geometric_sizes(in_size, self.out_size, config.layers - 1) + [self.out_size]
        self.sizes = sizes

        with seeded(seed):
            layers = []
            for i in range(config.layers):
                block = []
                if sizes[i + 1] != sizes[i]:
                    block.append(Resize(sizes[i + 1], "nearest"))
                block += [
                    conv2d(k, k, config.kernel_size, bias=config.bias, padding=config.padding),
                    nn.ReLU(),
                    channel_norm(k),
                ]
                layers.append(nn.Sequential(*block))
            self.layers = nn.Sequential(*layers)
            self.head = Conv1x1(k, self.out_channels, bias=config.bias)

        self.register_buffer(
            "net_input", random_input((1, k, *in_size), seed, config.input_noise, config.input_scale)
        )

    def generate(self, z: Tensor) -> Tensor:
        x = self.head(self.layers(z))
        return torch.sigmoid(x) if self.config.sigmoid else x
