"""Shared pieces of the un-trained networks: the common base class, seeding, sizes, layers.

Every network in :mod:`fastmri_untrained.nets` is an :class:`UntrainedNet`: it owns a fixed
random input (the buffer ``net_input``), maps it to one image of shape
``(1, out_channels, H, W)`` and is built deterministically from a ``seed``.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator, Sequence
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

Size2d = tuple[int, int]
PaddingMode = Literal["zeros", "reflection"]
InputNoise = Literal["uniform", "normal"]


# --------------------------------------------------------------------------- base class
class UntrainedNet(nn.Module):
    """Base class: a generator ``G(z)`` fitted from a random start to one image.

    Subclasses register ``net_input`` (shape ``(1, C_in, h0, w0)``) and implement
    :meth:`generate`. ``forward(None)`` uses the stored input; the fitting engine passes
    ``net_input + noise`` for DIP-style input-noise regularisation.
    """

    net_input: Tensor

    def __init__(self, out_channels: int, out_size: Sequence[int]):
        super().__init__()
        self.out_channels = check_positive_int("out_channels", out_channels)
        self.out_size = as_size2d("out_size", out_size)

    @property
    def reg_noise_std(self) -> float:
        """Std of the noise the fitting engine adds to ``net_input`` each step (0: none)."""
        return 0.0

    def forward(self, z: Tensor | None = None) -> Tensor:
        """Return the generated image ``(1, out_channels, H, W)`` for input ``z`` (default: ``net_input``)."""
        x = self.net_input if z is None else z
        if x.shape[1:] != self.net_input.shape[1:]:
            raise ValueError(
                f"input of shape {tuple(x.shape)} does not match net_input {tuple(self.net_input.shape)}"
            )
        return self.generate(x)

    def generate(self, z: Tensor) -> Tensor:
        raise NotImplementedError

    def num_parameters(self) -> int:
        """Number of trainable parameters (fixed kernels and the input are buffers, not counted)."""
        return sum(p.numel() for p in self.parameters() if p.requires_grad)


def overparameterization(net: UntrainedNet) -> float:
    """Trainable parameters per output value: ``num_parameters / (out_channels * H * W)``."""
    h, w = net.out_size
    return net.num_parameters() / (net.out_channels * h * w)


# --------------------------------------------------------------------------- seeding / input
@contextlib.contextmanager
def seeded(seed: int) -> Iterator[None]:
    """Run the block (e.g. layer construction with PyTorch's default init) under ``seed``.

    The global CPU RNG is forked, so the block is deterministic whatever the global state is,
    and the caller's RNG stream is left untouched.
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


def random_input(
    shape: Sequence[int], seed: int, kind: InputNoise = "uniform", scale: float = 0.1
) -> Tensor:
    """Fixed random network input from a local generator: ``U[0, scale)`` or ``scale * N(0, 1)``."""
    # A separate stream from the weights (seed offset) so that input and weights are not
    # built from the very same random numbers.
    gen = torch.Generator().manual_seed(int(seed) + 1_000_003)
    if kind == "uniform":
        z = torch.rand(*shape, generator=gen)
    elif kind == "normal":
        z = torch.randn(*shape, generator=gen)
    else:
        raise ValueError(f"input noise kind must be 'uniform' or 'normal', got {kind!r}")
    return z * scale


# --------------------------------------------------------------------------- validation
def check_positive_int(name: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return value


def as_size2d(name: str, value) -> Size2d:
    """Validate a (height, width) pair of positive ints; an int means a square."""
    if isinstance(value, int) and not isinstance(value, bool):
        value = (value, value)
    try:
        h, w = value
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a pair (height, width), got {value!r}") from None
    return check_positive_int(f"{name}[0]", h), check_positive_int(f"{name}[1]", w)


def per_layer(name: str, value, layers: int) -> tuple[int, ...]:
    """An int (same for every layer) or a sequence with one positive int per layer."""
    if isinstance(value, int) and not isinstance(value, bool):
        return (check_positive_int(name, value),) * layers
    values = tuple(value)
    if len(values) != layers:
        raise ValueError(f"{name} has {len(values)} entries but there are {layers} layers")
    return tuple(check_positive_int(f"{name}[{i}]", v) for i, v in enumerate(values))


def check_choice(name: str, value, choices: Sequence[str]) -> str:
    if value not in choices:
        raise ValueError(f"{name} must be one of {list(choices)}, got {value!r}")
    return value


# --------------------------------------------------------------------------- sizes
def geometric_sizes(in_size: Size2d, out_size: Size2d, steps: int) -> list[Size2d]:
    """``steps + 1`` sizes growing geometrically from ``in_size`` to exactly ``out_size``.

    Size ``j`` is ``ceil(in * (out / in) ** (j / steps))`` per axis (as in the ConvDecoder
    code), so any output size is reached, including non-powers of two.
    """
    if steps == 0:
        return [tuple(out_size)]
    sizes = []
    for j in range(steps + 1):
        size = []
        for a, b in zip(in_size, out_size):
            s = a * (b / a) ** (j / steps)
            size.append(max(1, math.ceil(s - 1e-6)))  # tolerance: 32.0000001 must stay 32
        sizes.append(tuple(size))
    sizes[-1] = tuple(out_size)
    return sizes


def center_crop(x: Tensor, size: Size2d) -> Tensor:
    """Crop the last two axes of ``x`` around the centre to ``size`` (must not be larger)."""
    h, w = x.shape[-2:]
    th, tw = size
    if th > h or tw > w:
        raise ValueError(f"cannot crop {(h, w)} to larger size {(th, tw)}")
    top, left = (h - th) // 2, (w - tw) // 2
    return x[..., top : top + th, left : left + tw]


# --------------------------------------------------------------------------- layers
def channel_norm(channels: int, affine: bool = True) -> nn.BatchNorm2d:
    """Channel normalisation ``cn``: each channel to mean 0, variance 1, then an affine map.

    BatchNorm with batch size 1 normalises each channel over its pixels. Running statistics
    are not tracked, so the output depends only on the parameters and the input, in
    ``train()`` and ``eval()`` mode alike (the fitted image must not change on ``eval()``).
    """
    return nn.BatchNorm2d(channels, affine=affine, track_running_stats=False)


class Conv1x1(nn.Conv2d):
    """A 1x1 convolution computed as one matrix product over all pixels.

    Same parameters and initialisation as ``nn.Conv2d(in, out, 1)``; on CPU PyTorch runs a 1x1
    ``conv2d`` through its generic im2col path, about 2x slower than this matmul (forward and
    backward, 128 channels at 256x256), and the deep decoder is made of little else.
    """

    def __init__(self, in_channels: int, out_channels: int, bias: bool = False):
        super().__init__(in_channels, out_channels, kernel_size=1, bias=bias)

    def forward(self, x: Tensor) -> Tensor:
        n, c, h, w = x.shape
        y = torch.matmul(self.weight.view(self.out_channels, c), x.reshape(n, c, h * w))
        if self.bias is not None:
            y = y + self.bias.view(1, -1, 1)
        return y.view(n, self.out_channels, h, w)


def conv2d(
    in_channels: int,
    out_channels: int,
    kernel_size: int,
    *,
    stride: int = 1,
    bias: bool = False,
    padding: PaddingMode = "zeros",
) -> nn.Conv2d:
    """A 'same' convolution for odd kernels (output size ``ceil(n / stride)``) with zero or reflection padding."""
    check_choice("padding", padding, ("zeros", "reflection"))
    if kernel_size == 1 and stride == 1:
        return Conv1x1(in_channels, out_channels, bias=bias)
    return nn.Conv2d(
        in_channels,
        out_channels,
        kernel_size,
        stride=stride,
        padding=(kernel_size - 1) // 2,
        padding_mode="reflect" if padding == "reflection" else "zeros",
        bias=bias,
    )


def bilinear_kernel_1d() -> Tensor:
    """The triangular kernel ``[1, 3, 3, 1] / 4`` of 2x linear upsampling (align_corners=False)."""
    return torch.tensor([1.0, 3.0, 3.0, 1.0]) / 4.0


def bilinear_kernel_2d() -> Tensor:
    """The 4x4 kernel ``[[1,3,3,1],[3,9,9,3],[3,9,9,3],[1,3,3,1]] / 16`` of 2x bilinear upsampling."""
    k = bilinear_kernel_1d()
    return torch.outer(k, k)


class Resize(nn.Module):
    """Fixed (parameter-free) resizing to a target size by interpolation.

    ``"bilinear"`` is a convolution with a triangular kernel (``align_corners=False``);
    ``"nearest"`` repeats pixels. An identity when the input already has the target size.
    """

    def __init__(self, size: Size2d, mode: Literal["bilinear", "nearest"]):
        super().__init__()
        self.size = tuple(size)
        self.mode = check_choice("mode", mode, ("bilinear", "nearest"))

    def forward(self, x: Tensor) -> Tensor:
        if tuple(x.shape[-2:]) == self.size:
            return x
        if self.mode == "bilinear":
            return F.interpolate(x, size=self.size, mode="bilinear", align_corners=False)
        return F.interpolate(x, size=self.size, mode="nearest")

    def extra_repr(self) -> str:
        return f"size={self.size}, mode={self.mode!r}"


class LearnedUpsample(nn.Module):
    """A learned per-channel (depthwise) transposed convolution to a target size.

    Stride ``s = ceil(target / input)`` per axis and kernel ``2s`` (``4`` for a factor 2, as in
    the bilinear kernel it replaces); the result is centre-cropped to the target size.
    """

    def __init__(self, channels: int, in_size: Size2d, size: Size2d, bias: bool = False):
        super().__init__()
        self.size = tuple(size)
        stride = tuple(max(1, math.ceil(o / i)) for i, o in zip(in_size, size))
        self.conv = nn.ConvTranspose2d(
            channels,
            channels,
            kernel_size=tuple(2 * s for s in stride),
            stride=stride,
            padding=tuple(s // 2 for s in stride),  # output = in * s + (s mod 2) >= target
            groups=channels,
            bias=bias,
        )

    def forward(self, x: Tensor) -> Tensor:
        return center_crop(self.conv(x), self.size)


class FixedInterpolationConv(nn.Module):
    """Depthwise convolution of every channel with the fixed 4x4 bilinear kernel, no upsampling.

    The kernel is a buffer (not trainable). The even kernel is zero-padded by 1 before and
    2 after on each axis so that the spatial size is kept.
    """

    kernel: Tensor

    def __init__(self, channels: int):
        super().__init__()
        self.channels = channels
        self.register_buffer("kernel", bilinear_kernel_2d().expand(channels, 1, 4, 4).clone())

    def forward(self, x: Tensor) -> Tensor:
        return F.conv2d(F.pad(x, (1, 2, 1, 2)), self.kernel, groups=self.channels)
