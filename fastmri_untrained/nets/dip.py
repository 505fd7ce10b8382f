"""Deep image prior (Ulyanov, Vedaldi & Lempitsky, CVPR 2018): the "skip" encoder-decoder.

A U-net-like hourglass fed with fixed noise at full resolution. Level ``i`` (outermost first):

    x -> [skip:   conv k_skip (1x1)       -> BN -> act]                      \\
    x -> [deeper: conv stride 2 (3x3)     -> BN -> act -> conv (3x3) -> BN -> act
                  -> level i+1 -> upsample x2 -> crop to x's size]          -> concat
      -> BN -> conv k_up (3x3) -> BN -> act [-> conv 1x1 -> BN -> act]

and a last 1x1 convolution to the output channels. Strided convolutions give
``ceil(n / 2)`` pixels, so upsampling by 2 covers the level's size and a centre crop matches
odd and non-power-of-two sizes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .common import (
    PaddingMode,
    UntrainedNet,
    center_crop,
    channel_norm,
    check_choice,
    check_positive_int,
    conv2d,
    per_layer,
    random_input,
    seeded,
)


@dataclass
class DeepImagePriorConfig:
    """Configuration of a :class:`DeepImagePrior` skip network.

    Attributes:
        levels: number of scales (each halves the resolution).
        channels_down / channels_up: encoder / decoder width, an int or one per level.
        channels_skip: skip-connection width, an int or one per level (0: no skip there).
        kernel_down / kernel_up / kernel_skip: odd filter sizes.
        upsample_mode: ``"bilinear"`` or ``"nearest"``.
        padding: ``"reflection"`` or ``"zeros"``.
        bias: bias in the convolutions (the DIP default).
        conv1x1_up: the extra 1x1 convolution at the end of each decoder level.
        leaky_slope: negative slope of the LeakyReLU activations.
        sigmoid: squash the output to (0, 1) (off: MRI real/imaginary parts are signed).
        input_depth: channels of the fixed input noise (at full resolution).
        input_scale: the input is uniform in ``[0, input_scale)``.
        reg_noise_std: std of the noise added to the input at each fitting step; the fitting
            engine applies it unless ``FitConfig.reg_noise_std`` overrides it (``fit.input_noise_std``).

    The defaults are the DIP denoising/inpainting "skip" net: 5 levels, 128 down/up, 4 skip,
    3x3 filters down/up, 1x1 skip, bilinear upsampling, reflection padding, 32 input
    channels, input noise ``U[0, 0.1)`` and ``reg_noise_std = 1/30``.
    """

    levels: int = 5
    channels_down: int | Sequence[int] = 128
    channels_up: int | Sequence[int] = 128
    channels_skip: int | Sequence[int] = 4
    kernel_down: int = 3
    kernel_up: int = 3
    kernel_skip: int = 1
    upsample_mode: Literal["bilinear", "nearest"] = "bilinear"
    padding: PaddingMode = "reflection"
    bias: bool = True
    conv1x1_up: bool = True
    leaky_slope: float = 0.2
    sigmoid: bool = False
    input_depth: int = 32
    input_scale: float = 0.1
    reg_noise_std: float = 1.0 / 30.0

    def __post_init__(self):
        check_positive_int("levels", self.levels)
        per_layer("channels_down", self.channels_down, self.levels)
        per_layer("channels_up", self.channels_up, self.levels)
        _skip_widths(self.channels_skip, self.levels)
        for name in ("kernel_down", "kernel_up", "kernel_skip"):
            if check_positive_int(name, getattr(self, name)) % 2 == 0:
                raise ValueError(f"{name} must be odd, got {getattr(self, name)}")
        check_choice("upsample_mode", self.upsample_mode, ("bilinear", "nearest"))
        check_choice("padding", self.padding, ("zeros", "reflection"))
        check_positive_int("input_depth", self.input_depth)
        if self.reg_noise_std < 0:
            raise ValueError(f"reg_noise_std must be >= 0, got {self.reg_noise_std}")


def _skip_widths(value, levels: int) -> tuple[int, ...]:
    """Skip widths may be 0 (no skip connection at that level)."""
    values = (value,) * levels if isinstance(value, int) else tuple(value)
    if len(values) != levels:
        raise ValueError(f"channels_skip has {len(values)} entries but there are {levels} levels")
    if any(isinstance(v, bool) or not isinstance(v, int) or v < 0 for v in values):
        raise ValueError(f"channels_skip must be non-negative integers, got {value!r}")
    return values


class _SkipLevel(nn.Module):
    """One scale of the skip network; ``inner`` is the next (coarser) level or None."""

    def __init__(self, cfg: DeepImagePriorConfig, c_in: int, c_down: int, c_up: int,
                 c_skip: int, c_inner_out: int | None, inner: nn.Module | None):
        super().__init__()

        def act() -> nn.Module:
            return nn.LeakyReLU(cfg.leaky_slope)

        def conv(ci: int, co: int, k: int, stride: int = 1) -> nn.Conv2d:
            return conv2d(ci, co, k, stride=stride, bias=cfg.bias, padding=cfg.padding)

        self.skip = (
            nn.Sequential(conv(c_in, c_skip, cfg.kernel_skip), channel_norm(c_skip), act())
            if c_skip
            else None
        )
        self.down = nn.Sequential(
            conv(c_in, c_down, cfg.kernel_down, stride=2), channel_norm(c_down), act(),
            conv(c_down, c_down, cfg.kernel_down), channel_norm(c_down), act(),
        )
        self.inner = inner
        self.upsample_mode = cfg.upsample_mode
        c_deep = c_inner_out if inner is not None else c_down
        up = [
            channel_norm(c_skip + c_deep),
            conv(c_skip + c_deep, c_up, cfg.kernel_up), channel_norm(c_up), act(),
        ]
        if cfg.conv1x1_up:
            up += [conv(c_up, c_up, 1), channel_norm(c_up), act()]
        self.up = nn.Sequential(*up)

    def forward(self, x: Tensor) -> Tensor:
        size = tuple(x.shape[-2:])
        deep = self.down(x)
        if self.inner is not None:
            deep = self.inner(deep)
        if self.upsample_mode == "bilinear":
            deep = F.interpolate(deep, scale_factor=2, mode="bilinear", align_corners=False)
        else:
            deep = F.interpolate(deep, scale_factor=2, mode="nearest")
        deep = center_crop(deep, size)  # ceil(n/2) * 2 >= n
        if self.skip is not None:
            deep = torch.cat([self.skip(x), deep], dim=1)
        return self.up(deep)


class DeepImagePrior(UntrainedNet):
    """Deep image prior "skip" encoder-decoder with a fixed noise input at full resolution.

    Args:
        config: the architecture (and ``reg_noise_std``, used by the fitting engine).
        out_channels: output channels (2 per complex image).
        out_size: output ``(H, W)``, any size with at least 2 pixels per axis at the coarsest level.
        seed: seeds both the weight initialisation and the fixed random input.
    """

    def __init__(
        self,
        config: DeepImagePriorConfig | None = None,
        out_channels: int = 2,
        out_size: Sequence[int] = (320, 320),
        seed: int = 0,
    ):
        super().__init__(out_channels, out_size)
        self.config = cfg = config or DeepImagePriorConfig()
        down = per_layer("channels_down", cfg.channels_down, cfg.levels)
        up = per_layer("channels_up", cfg.channels_up, cfg.levels)
        skip = _skip_widths(cfg.channels_skip, cfg.levels)

        coarsest = self.out_size
        for _ in range(cfg.levels):
            coarsest = tuple(-(-s // 2) for s in coarsest)
        if min(coarsest) < 2:  # BatchNorm and reflection padding need >= 2 pixels per axis
            raise ValueError(
                f"out_size {self.out_size} is too small for {cfg.levels} levels "
                f"(coarsest level {coarsest}); use fewer levels"
            )

        with seeded(seed):
            inner = None
            # Built from the coarsest level outwards; level i reads down[i - 1] channels.
            for i in reversed(range(cfg.levels)):
                c_in = cfg.input_depth if i == 0 else down[i - 1]
                c_inner_out = up[i + 1] if i + 1 < cfg.levels else None
                inner = _SkipLevel(cfg, c_in, down[i], up[i], skip[i], c_inner_out, inner)
            self.body = inner
            self.head = conv2d(up[0], self.out_channels, 1, bias=cfg.bias, padding=cfg.padding)

        self.register_buffer(
            "net_input",
            random_input((1, cfg.input_depth, *self.out_size), seed, "uniform", cfg.input_scale),
        )

    @property
    def reg_noise_std(self) -> float:
        return float(self.config.reg_noise_std)

    def generate(self, z: Tensor) -> Tensor:
        x = self.head(self.body(z))
        return torch.sigmoid(x) if self.config.sigmoid else x
