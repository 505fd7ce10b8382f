"""The fitting engine: minimise ||A G(theta) - y||^2 over the weights of an un-trained network.

Every reconstructor of the project (MRI, the synthetic theorems, the Lightning modules) fits
through :func:`fit`. The engine is problem-agnostic: it sees a network ``G`` (any module whose
``forward(z=None)`` returns its output from a fixed input buffer ``net_input``), a
``forward_model`` mapping that output to predicted measurements, and the measurements ``y``.
MRI specifics (data consistency, coil combination, cropping) live in :mod:`recon`.

Scaling convention (the one place it is defined): before fitting, ``y`` is multiplied by
``scale = ||A G(theta_0)|| / ||y||`` so that the network's initial output and the data have
comparable norms, as the ConvDecoder and deep decoder reference code do; the returned output
is divided by ``scale``, so callers always see the units of ``y``.
"""

from __future__ import annotations

import math
import time
import warnings
from dataclasses import dataclass, field
from typing import Callable, Optional

import torch
from torch import nn
from tqdm.auto import tqdm

OPTIMIZERS = ("adam", "sgd", "gd")
# A loss this many times its first value means the fit diverged (too large a step): the data are
# scaled so that the first loss is about ||y||^2, and a working fit only lowers it; Adam's early
# overshoots stay within a few times the start.
DIVERGENCE_FACTOR = 1e4
SCHEDULES = ("constant", "cosine", "step")


@dataclass
class EarlyStopConfig:
    """Stop at the minimum of a validation loss (e.g. held-out k-space residual).

    The validation function is evaluated every ``check_every`` iterations; the fit stops when it
    has not improved by a relative ``min_delta`` for ``patience`` iterations, and the iterate at
    its minimum is returned.
    """

    check_every: int = 10
    patience: int = 300
    min_delta: float = 1e-4


@dataclass
class FitConfig:
    """How to fit: optimiser, learning rate and schedule, budget, what to return."""

    iterations: int = 2000
    optimizer: str = "adam"  # adam | sgd (with momentum) | gd (plain gradient descent)
    lr: float = 0.008
    momentum: float = 0.9  # sgd only
    weight_decay: float = 0.0
    lr_schedule: str = "constant"  # constant | cosine (to lr * lr_min_factor) | step
    lr_min_factor: float = 0.0
    lr_step_size: int = 1000
    lr_gamma: float = 0.5
    return_iterate: str = "last"  # last | best (lowest training loss)
    scale_data: bool = True
    # DIP's input-noise regularisation: std of the noise added to the network input each step.
    # None: the network's own value (``net.reg_noise_std``: 1/30 for DIP, 0 for the decoders).
    reg_noise_std: Optional[float] = None
    seed: int = 0
    show_progress: bool = True
    track_every: int = 1  # ground-truth error / monitor every N iterations
    autocast_dtype: Optional[str] = None  # e.g. "bfloat16" on GPU
    # torch.compile the network for the training steps: fuses BatchNorm, ReLU and resizing around
    # the convolutions (CPU: ~15% less time per iteration for a ConvDecoder, see README) at a
    # one-off compilation cost of tens of seconds; needs a C++ compiler on CPU.
    compile: bool = False
    early_stop: Optional[EarlyStopConfig] = None

    def __post_init__(self):
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"optimizer must be one of {OPTIMIZERS}, got {self.optimizer!r}")
        if self.lr_schedule not in SCHEDULES:
            raise ValueError(f"lr_schedule must be one of {SCHEDULES}, got {self.lr_schedule!r}")
        if self.return_iterate not in ("last", "best"):
            raise ValueError(f"return_iterate must be 'last' or 'best', got {self.return_iterate!r}")
        if self.iterations < 0:
            raise ValueError(f"iterations must be >= 0, got {self.iterations}")
        if not (self.lr > 0 and math.isfinite(self.lr)):
            raise ValueError(f"lr must be a finite number > 0, got {self.lr}")
        if self.reg_noise_std is not None and not (self.reg_noise_std >= 0 and math.isfinite(self.reg_noise_std)):
            raise ValueError(f"reg_noise_std must be a finite number >= 0 (or None), got {self.reg_noise_std}")


@dataclass
class FitResult:
    """Output of :func:`fit`. ``output`` is the network output (unscaled, detached)."""

    output: torch.Tensor
    history: dict = field(default_factory=dict)
    iterations: int = 0  # iterations run
    returned_iteration: int = 0  # iteration whose output is returned (0 = initialisation)
    stop_reason: str = "budget"  # budget | early-stop | non-finite | diverged
    scale: float = 1.0
    seconds: float = 0.0


def make_optimizer(params, config: FitConfig) -> torch.optim.Optimizer:
    if config.optimizer == "adam":
        return torch.optim.Adam(params, lr=config.lr, weight_decay=config.weight_decay)
    momentum = config.momentum if config.optimizer == "sgd" else 0.0
    return torch.optim.SGD(params, lr=config.lr, momentum=momentum, weight_decay=config.weight_decay)


def make_scheduler(optimizer, config: FitConfig):
    if config.lr_schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(
            optimizer, T_max=max(config.iterations, 1), eta_min=config.lr * config.lr_min_factor)
    if config.lr_schedule == "step":
        return torch.optim.lr_scheduler.StepLR(optimizer, step_size=config.lr_step_size, gamma=config.lr_gamma)
    return None


def squared_norm(x: torch.Tensor) -> torch.Tensor:
    return torch.sum(x.real ** 2 + x.imag ** 2) if torch.is_complex(x) else torch.sum(x ** 2)


def data_scale(net: nn.Module, forward_model: Callable, measurements: torch.Tensor) -> float:
    """``||A G(theta_0)|| / ||y||``: the factor that puts y on the scale of the network output."""
    with torch.no_grad():
        predicted = forward_model(net())
        num = math.sqrt(float(squared_norm(predicted)))
        den = math.sqrt(float(squared_norm(measurements)))
    if den == 0:
        raise ValueError("the measurements are all zero; nothing to fit")
    if num == 0 or not math.isfinite(num):
        return 1.0
    return num / den


def input_noise_std(net: nn.Module, config: FitConfig) -> float:
    """The std of the noise added to the network input each step: ``config.reg_noise_std``, or
    the network's own ``reg_noise_std`` when the config leaves it None. The one place that
    decides it (:func:`fit` and the Lightning training loop both ask here)."""
    if config.reg_noise_std is not None:
        return float(config.reg_noise_std)
    return float(getattr(net, "reg_noise_std", 0.0))


def training_network(net: nn.Module, config: FitConfig) -> nn.Module:
    """The module the training steps call: ``net`` itself, or ``torch.compile(net)`` with
    ``config.compile`` (same parameters; no-grad evaluations can keep using ``net``).
    Shared with the Lightning training loop."""
    return torch.compile(net) if config.compile else net


def network_step_loss(net: nn.Module, forward_model: Callable, measurements: torch.Tensor,
                      input_noise: Optional[torch.Tensor] = None, autocast_dtype: Optional[str] = None):
    """One forward pass and the data-fit loss ||A G(z) - y||^2; returns (loss, output).

    Shared with the Lightning training loop so that both optimise exactly the same objective.
    """
    z = None if input_noise is None else net.net_input + input_noise
    device_type = measurements.device.type
    if autocast_dtype is not None:
        with torch.autocast(device_type=device_type, dtype=getattr(torch, autocast_dtype)):
            output = net(z)
        output = output.float()
    else:
        output = net(z)
    residual = forward_model(output) - measurements
    return squared_norm(residual), output


def fit(net: nn.Module, forward_model: Callable[[torch.Tensor], torch.Tensor], measurements: torch.Tensor,
        config: Optional[FitConfig] = None, *, ground_truth: Optional[torch.Tensor] = None,
        output_to_image: Optional[Callable[[torch.Tensor], torch.Tensor]] = None,
        monitor: Optional[Callable[[torch.Tensor], dict]] = None,
        validation: Optional[Callable[[torch.Tensor], float]] = None,
        callback: Optional[Callable[[int, nn.Module, torch.Tensor], None]] = None,
        description: str = "fit") -> FitResult:
    """Fit ``net`` so that ``forward_model(net())`` matches ``measurements``.

    Args:
        net: un-trained network with ``net_input`` buffer and ``forward(z=None)``.
        forward_model: maps the network output to predicted measurements (differentiable).
        measurements: y, in any units (the engine rescales internally, see module docstring).
        config: :class:`FitConfig`.
        ground_truth: when given, the relative error ||x - x*|| / ||x*|| of
            ``output_to_image(output)`` (default: the output itself) is tracked as "error".
        monitor: called on the (unscaled) image every ``track_every`` iterations; its dict of
            floats is appended to the history (e.g. SSIM against a target).
        validation: called on the unscaled output every ``early_stop.check_every`` iterations;
            with ``config.early_stop`` the fit stops at its minimum (patience) and returns it.
        callback: ``callback(iteration, net, output)`` after every step (scaled output).

    Returns:
        :class:`FitResult`. A loss that turns non-finite stops the fit with a warning and the
        best iterate so far; the returned output is never NaN.
    """
    config = config or FitConfig()
    to_image = output_to_image or (lambda out: out)
    device = measurements.device
    net = net.to(device)
    net.train()
    noise_gen = torch.Generator(device="cpu").manual_seed(config.seed)

    scale = data_scale(net, forward_model, measurements) if config.scale_data else 1.0
    y = measurements * scale
    y_norm2 = float(squared_norm(y))

    step_net = training_network(net, config)  # the few no-grad evaluations below stay eager
    noise_std = input_noise_std(net, config)
    optimizer = make_optimizer([p for p in net.parameters() if p.requires_grad], config)
    scheduler = make_scheduler(optimizer, config)
    history: dict[str, list] = {"loss": [], "relative_residual": []}
    if ground_truth is not None:
        history["error"], history["error_iteration"] = [], []
    if validation is not None:
        history["validation"], history["validation_iteration"] = [], []

    with torch.no_grad():
        best_output = net().detach().clone()
    best_loss, best_iter = math.inf, 0
    es = config.early_stop if validation is not None else None
    es_best, es_output, es_iter = math.inf, best_output, 0
    stop_reason, it = "budget", 0
    start = time.perf_counter()

    def track(iteration: int, output: torch.Tensor):
        image = to_image(output.detach() / scale)
        if ground_truth is not None:
            err = torch.linalg.vector_norm(image - ground_truth) / torch.linalg.vector_norm(ground_truth)
            history["error"].append(float(err))
            history["error_iteration"].append(iteration)
        if monitor is not None:
            for key, value in monitor(image).items():
                history.setdefault(key, []).append(float(value))
            history.setdefault("monitor_iteration", []).append(iteration)

    bar = tqdm(total=config.iterations, desc=description, disable=not config.show_progress, leave=False)
    for it in range(1, config.iterations + 1):
        optimizer.zero_grad(set_to_none=True)
        noise = None
        if noise_std > 0:
            noise = noise_std * torch.randn(net.net_input.shape, generator=noise_gen).to(device)
        loss, output = network_step_loss(step_net, forward_model, y, noise, config.autocast_dtype)
        loss_value = float(loss.detach())
        if not math.isfinite(loss_value):
            warnings.warn(f"{description}: loss became non-finite at iteration {it}; "
                          f"returning the best iterate so far (iteration {best_iter})", RuntimeWarning)
            stop_reason, it = "non-finite", it - 1
            break
        if it == 1:
            first_loss = loss_value
        elif first_loss > 0 and loss_value > DIVERGENCE_FACTOR * first_loss:
            warnings.warn(f"{description}: the fit diverged (loss {loss_value / first_loss:.3g} times its start at "
                          f"iteration {it}; lower the learning rate); returning the best iterate so far "
                          f"(iteration {best_iter})", RuntimeWarning)
            stop_reason, it = "diverged", it - 1
            break
        # The output of this forward pass belongs to the weights before this step.
        if loss_value < best_loss:
            best_loss, best_iter = loss_value, it - 1
            best_output = output.detach().clone()
        history["loss"].append(loss_value)
        history["relative_residual"].append(math.sqrt(loss_value / y_norm2))
        if (ground_truth is not None or monitor is not None) and (it - 1) % config.track_every == 0:
            track(it - 1, output)
        if es is not None and (it - 1) % es.check_every == 0:
            val = float(validation(output.detach() / scale))
            history["validation"].append(val)
            history["validation_iteration"].append(it - 1)
            if val < es_best * (1 - es.min_delta):
                es_best, es_output, es_iter = val, output.detach().clone(), it - 1
            elif it - 1 - es_iter >= es.patience:
                stop_reason, it = "early-stop", it - 1
                break
        loss.backward()
        optimizer.step()
        if scheduler is not None:
            scheduler.step()
        if callback is not None:
            callback(it, net, output.detach())
        if it % 10 == 0 or it == config.iterations:
            bar.set_postfix(loss=f"{loss_value:.3e}")
            bar.update(10 if it % 10 == 0 else it % 10)
    bar.close()

    if stop_reason == "budget" and config.iterations > 0:
        # Evaluate the final weights once more: the last loop pass saw the weights before its step.
        with torch.no_grad():
            final_output = net().detach()
            final_loss = float(squared_norm(forward_model(final_output) - y))
        if math.isfinite(final_loss):
            if final_loss < best_loss:
                best_loss, best_iter = final_loss, it
                best_output = final_output.clone()
            history["loss"].append(final_loss)
            history["relative_residual"].append(math.sqrt(final_loss / y_norm2))
            if ground_truth is not None or monitor is not None:
                track(it, final_output)
            last_output, last_iter = final_output, it
        else:
            warnings.warn(f"{description}: final loss is non-finite; returning the best iterate", RuntimeWarning)
            stop_reason = "non-finite"
    if stop_reason == "early-stop":
        returned, returned_iter = es_output, es_iter
    elif stop_reason in ("non-finite", "diverged") or config.return_iterate == "best" or config.iterations == 0:
        returned, returned_iter = best_output, best_iter
    else:
        returned, returned_iter = last_output, last_iter
    if not bool(torch.isfinite(returned).all()):
        raise FloatingPointError(f"{description}: no finite iterate to return")
    return FitResult(output=returned / scale, history=history, iterations=it, returned_iteration=returned_iter,
                     stop_reason=stop_reason, scale=scale, seconds=time.perf_counter() - start)

