"""Un-trained generator networks: deep decoder, ConvDecoder, deep image prior, Appendix-B nets.

Every network is an :class:`UntrainedNet`: built as ``Net(config, out_channels, out_size,
seed)``, it holds its fixed random input in the buffer ``net_input`` and ``net()`` (or
``net(net_input + noise)``) returns an image of shape ``(1, out_channels, H, W)``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from .appendix_b import (
    ARCHS,
    AppendixBConfig,
    ConvGenerator,
    appendix_b_num_parameters,
    build_appendix_b,
    width_for_overparameterization,
)
from .common import UntrainedNet, overparameterization
from .conv_decoder import ConvDecoder, ConvDecoderConfig
from .deep_decoder import DeepDecoder, DeepDecoderConfig
from .dip import DeepImagePrior, DeepImagePriorConfig

#: Network names accepted by :func:`build_net`, with their class and config class.
NETWORKS: dict[str, tuple[type[UntrainedNet], type]] = {
    "deep-decoder": (DeepDecoder, DeepDecoderConfig),
    "conv-decoder": (ConvDecoder, ConvDecoderConfig),
    "dip": (DeepImagePrior, DeepImagePriorConfig),
}


def build_net(
    name: str, out_channels: int, out_size: Sequence[int], seed: int = 0, **overrides
) -> UntrainedNet:
    """Build network ``name`` ("deep-decoder", "conv-decoder" or "dip") with its default
    configuration, changed by ``overrides`` (config field names, e.g. ``channels=64``).

    Args:
        name: the architecture.
        out_channels: channels of the output (2 per complex image: real, imaginary).
        out_size: (H, W) of the output.
        seed: seeds the weights and the fixed random input ``net_input``.
        overrides: fields of the network's config dataclass.

    Returns:
        A module whose ``forward(z=None)`` maps its input (default ``net_input``) to a float32
        tensor of shape (1, out_channels, H, W).

    Raises:
        ValueError: for an unknown network name or config field (named in the message), or
            an invalid value.
    """
    if name not in NETWORKS:
        raise ValueError(f"unknown network {name!r}; choose one of {sorted(NETWORKS)}")
    net_cls, config_cls = NETWORKS[name]
    fields = {f.name for f in dataclasses.fields(config_cls)}
    unknown = sorted(set(overrides) - fields)
    if unknown:
        raise ValueError(
            f"unknown config field(s) {unknown} for network {name!r}; valid fields: {sorted(fields)}"
        )
    # Lists (e.g. from JSON/CLI) are fine where a sequence is expected; sizes become tuples.
    overrides = {k: tuple(v) if isinstance(v, list) else v for k, v in overrides.items()}
    return net_cls(config_cls(**overrides), out_channels=out_channels, out_size=out_size, seed=seed)


__all__ = [
    "ARCHS",
    "NETWORKS",
    "AppendixBConfig",
    "ConvDecoder",
    "ConvDecoderConfig",
    "ConvGenerator",
    "DeepDecoder",
    "DeepDecoderConfig",
    "DeepImagePrior",
    "DeepImagePriorConfig",
    "UntrainedNet",
    "appendix_b_num_parameters",
    "build_appendix_b",
    "build_net",
    "overparameterization",
    "width_for_overparameterization",
]
