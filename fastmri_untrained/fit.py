"""The fitting engine: minimise ||A G(theta) - y||^2 over the weights of an un-trained network.

Every reconstructor of the project (MRI, the synthetic theorems, the Lightning modules) fits
through one :class:`Fitter`: a steppable object (``step()`` / ``done()`` / ``result()``, in the
spirit of SigPy's ``Alg``/``App``) that owns the fit's state and every check on it (non-finite
loss, divergence, best iterate, early stopping, history). :func:`fit` steps it to the end;
:class:`lightning.FitModule` drives the same object from ``Trainer.fit``. The engine is
problem-agnostic: it sees a network ``G`` (any module whose ``forward(z=None)`` returns its
output from a fixed input buffer ``net_input``), a ``forward_model`` mapping that output to
predicted measurements, and the measurements ``y``. MRI specifics (data consistency, coil
combination, cropping) live in :mod:`recon`.

Scaling convention of every un-trained fit (defined here only; the classical methods' weights are
relative to another scale, :func:`baselines.normalisation`, which only they use): ``y`` is multiplied by
``scale = ||A G(theta_0)|| / ||y||`` so that the network's initial output and the data have
comparable norms, as the ConvDecoder and deep decoder reference code do; the returned output
is divided by ``scale``, so callers always see the units of ``y``.
"""

from __future__ import annotations

import copy
import dataclasses
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
    """Output of :func:`fit` / :meth:`Fitter.result`. ``output`` is the network output (unscaled, detached)."""

    output: torch.Tensor
    history: dict = field(default_factory=dict)
    iterations: int = 0  # iterations run
    returned_iteration: int = 0  # iteration whose output is returned (0 = initialisation)
    # budget | early-stop | non-finite | diverged | interrupted (stopped from outside, e.g. by a
    # Lightning callback, before the budget: the last weights, as for budget)
    stop_reason: str = "budget"
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
    the network's own ``reg_noise_std`` when the config leaves it None."""
    if config.reg_noise_std is not None:
        return float(config.reg_noise_std)
    return float(getattr(net, "reg_noise_std", 0.0))


def training_network(net: nn.Module, config: FitConfig) -> nn.Module:
    """The module the training steps call: ``net`` itself, or ``torch.compile(net)`` with
    ``config.compile`` (same parameters; no-grad evaluations can keep using ``net``)."""
    return torch.compile(net) if config.compile else net


def network_step_loss(net: nn.Module, forward_model: Callable, measurements: torch.Tensor,
                      input_noise: Optional[torch.Tensor] = None, autocast_dtype: Optional[str] = None):
    """One forward pass and the data-fit loss ||A G(z) - y||^2; returns (loss, output)."""
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


def validation_every(config: FitConfig) -> int:
    """How often (in iterations) a validation function is evaluated: ``early_stop.check_every``,
    else :class:`EarlyStopConfig`'s default. The Lightning module makes this its epoch length."""
    return (config.early_stop or EarlyStopConfig()).check_every


class Fitter:
    """The fit as a steppable object (in the spirit of SigPy's ``Alg``/``App``): it owns the
    state -- network, scaled measurements, optimizer and schedule, input-noise generator,
    history, best iterate, early-stopping state, ``stop_reason`` -- and every check on it.

        fitter = Fitter(net, forward_model, y, config)
        while not fitter.done():
            fitter.step()
        result = fitter.result()

    :func:`fit` is that loop with a progress bar. A driver that owns the optimizer step (the
    Lightning module) calls the two halves of :meth:`step` instead: :meth:`loss_and_output`
    (forward pass and checks), then, unless :attr:`stopped`, backward, optimizer and scheduler
    steps, then :meth:`after_step`. Arguments as :func:`fit`.
    """

    def __init__(self, net: nn.Module, forward_model: Callable[[torch.Tensor], torch.Tensor],
                 measurements: torch.Tensor, config: Optional[FitConfig] = None, *,
                 ground_truth: Optional[torch.Tensor] = None,
                 output_to_image: Optional[Callable[[torch.Tensor], torch.Tensor]] = None,
                 monitor: Optional[Callable[[torch.Tensor], dict]] = None,
                 validation: Optional[Callable[[torch.Tensor], float]] = None,
                 callback: Optional[Callable[[int, nn.Module, torch.Tensor], None]] = None,
                 description: str = "fit"):
        config = config or FitConfig()
        self.config, self.forward_model, self.description = config, forward_model, description
        self.ground_truth, self.monitor, self.validation, self.callback = ground_truth, monitor, validation, callback
        self.to_image = output_to_image or (lambda out: out)
        self.device = measurements.device
        self.net = net.to(self.device)
        self.net.train()
        self.noise_gen = torch.Generator(device="cpu").manual_seed(config.seed)

        self.scale = data_scale(self.net, forward_model, measurements) if config.scale_data else 1.0
        self.y = measurements * self.scale
        self.y_norm2 = float(squared_norm(self.y))

        self.step_net = training_network(self.net, config)  # the few no-grad evaluations stay eager
        self.noise_std = input_noise_std(self.net, config)
        self.optimizer = make_optimizer([p for p in self.net.parameters() if p.requires_grad], config)
        self.scheduler = make_scheduler(self.optimizer, config)
        self.check_every = validation_every(config)
        # Per forward pass of the training steps (result() adds the final weights' evaluation).
        self.history: dict[str, list] = {"loss": [], "relative_residual": []}
        if ground_truth is not None:
            self.history["error"], self.history["error_iteration"] = [], []
        if validation is not None:
            self.history["validation"], self.history["validation_iteration"] = [], []

        with torch.no_grad():
            self.best_output = self.net().detach().clone()  # scaled, as every stored output
        self.best_loss, self.best_iteration = math.inf, 0
        # The minimum of the validation function (relative min_delta), returned on early stopping.
        self.es_best, self.es_output, self.es_iteration = math.inf, self.best_output, 0
        self.first_loss: Optional[float] = None
        self.iteration = 0  # optimizer steps taken; the next forward pass sees these weights
        self.stop_reason: Optional[str] = None  # non-finite | diverged | early-stop, once stopped
        self.last_validation: Optional[float] = None  # the validation value of the last forward pass
        self._output: Optional[torch.Tensor] = None
        self._start = time.perf_counter()

    @property
    def stopped(self) -> bool:
        """Whether a check ended the fit (see ``stop_reason``)."""
        return self.stop_reason is not None

    def done(self) -> bool:
        """The budget is spent or a check ended the fit."""
        return self.stopped or self.iteration >= self.config.iterations

    def _stop(self, reason: str, message: Optional[str] = None):
        if message is not None:
            warnings.warn(f"{self.description}: {message}", RuntimeWarning)
        self.stop_reason = reason

    def _track(self, history: dict, iteration: int, output: torch.Tensor):
        image = self.to_image(output.detach() / self.scale)
        if self.ground_truth is not None:
            gt = self.ground_truth
            history["error"].append(float(torch.linalg.vector_norm(image - gt) / torch.linalg.vector_norm(gt)))
            history["error_iteration"].append(iteration)
        if self.monitor is not None:
            for key, value in self.monitor(image).items():
                history.setdefault(key, []).append(float(value))
            history.setdefault("monitor_iteration", []).append(iteration)

    def loss_and_output(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The forward pass of the next iteration and every check on it: returns (loss, output).

        The loss and output belong to the current weights (iteration ``self.iteration``): they
        are recorded in the history, the best iterate and, every ``check_every`` iterations, the
        validation. A non-finite or diverged loss, or early stopping, sets ``stop_reason``;
        then no optimizer step may follow (the fit returns a stored iterate).
        """
        if self.done():
            raise RuntimeError(f"{self.description}: the fit is done; no step is left")
        loss, output = network_step_loss(self.step_net, self.forward_model, self.y, self.input_noise(),
                                         self.config.autocast_dtype)
        self.record(loss, output)
        return loss, output

    def input_noise(self) -> Optional[torch.Tensor]:
        """This iteration's input noise (None without): drawn from the fit's own generator, so a
        fit gets the same noise whether it runs alone or in a :class:`BatchedFitter`."""
        if self.noise_std <= 0:
            return None
        return self.noise_std * torch.randn(self.net.net_input.shape, generator=self.noise_gen).to(self.device)

    def record(self, loss: torch.Tensor, output: torch.Tensor) -> None:
        """Every check on the forward pass of the current weights (:meth:`loss_and_output`)."""
        cfg, it = self.config, self.iteration
        self.last_validation, self._output = None, None
        value = float(loss.detach())
        if not math.isfinite(value):
            self._stop("non-finite", f"loss became non-finite at iteration {it + 1}; "
                       f"returning the best iterate so far (iteration {self.best_iteration})")
            return
        if self.first_loss is None:
            self.first_loss = value
        elif self.first_loss > 0 and value > DIVERGENCE_FACTOR * self.first_loss:
            self._stop("diverged", f"the fit diverged (loss {value / self.first_loss:.3g} times its start at "
                       f"iteration {it + 1}; lower the learning rate); returning the best iterate so far "
                       f"(iteration {self.best_iteration})")
            return
        if value < self.best_loss:
            self.best_loss, self.best_iteration = value, it
            self.best_output = output.detach().clone()
        self.history["loss"].append(value)
        self.history["relative_residual"].append(math.sqrt(value / self.y_norm2))
        if (self.ground_truth is not None or self.monitor is not None) and it % cfg.track_every == 0:
            self._track(self.history, it, output)
        if self.validation is not None and it % self.check_every == 0:
            val = self.last_validation = float(self.validation(output.detach() / self.scale))
            self.history["validation"].append(val)
            self.history["validation_iteration"].append(it)
            es = cfg.early_stop or EarlyStopConfig()
            if val < self.es_best * (1 - es.min_delta):
                self.es_best, self.es_output, self.es_iteration = val, output.detach().clone(), it
            elif cfg.early_stop is not None and it - self.es_iteration >= es.patience:
                self._stop("early-stop")
                return
        self._output = output

    def after_step(self):
        """After the optimizer (and scheduler) step of :meth:`loss_and_output`'s loss: count it."""
        self.iteration += 1
        if self.callback is not None:
            self.callback(self.iteration, self.net, self._output.detach())

    def step(self) -> float:
        """One iteration: forward pass and checks, then (unless they stopped the fit) backward,
        optimizer and scheduler steps. Returns the loss of the forward pass (scaled data)."""
        self.optimizer.zero_grad(set_to_none=True)
        loss, _ = self.loss_and_output()
        if not self.stopped:
            loss.backward()
            self.optimizer.step()
            if self.scheduler is not None:
                self.scheduler.step()
            self.after_step()
        return float(loss.detach())

    @property
    def validation_output(self) -> Optional[torch.Tensor]:
        """The output (in the units of y) at the minimum of the validation function so far, or
        None before the first validation."""
        if not self.history.get("validation"):
            return None
        return self.es_output / self.scale

    def result(self) -> FitResult:
        """The :class:`FitResult` of the fit so far; the fitter itself is left unchanged.

        Unless a check stopped the fit, the final weights are evaluated once more (the last
        forward pass saw the weights before its step). Returned: the validation minimum on early
        stopping, the best iterate on a non-finite or diverged loss (or ``return_iterate="best"``,
        or no step taken), else the last iterate. A fit stopped from outside before its budget
        (e.g. by a Lightning callback) reports ``stop_reason="interrupted"``.
        """
        cfg, it = self.config, self.iteration
        history = {key: list(values) for key, values in self.history.items()}
        best_output, best_iteration, best_loss = self.best_output, self.best_iteration, self.best_loss
        stop_reason = self.stop_reason or ("budget" if it >= cfg.iterations else "interrupted")
        if not self.stopped and it > 0:
            with torch.no_grad():
                final_output = self.net().detach()
                final_loss = float(squared_norm(self.forward_model(final_output) - self.y))
            if math.isfinite(final_loss):
                if final_loss < best_loss:
                    best_output, best_iteration = final_output.clone(), it
                history["loss"].append(final_loss)
                history["relative_residual"].append(math.sqrt(final_loss / self.y_norm2))
                if self.ground_truth is not None or self.monitor is not None:
                    self._track(history, it, final_output)
                last_output, last_iteration = final_output, it
            else:
                warnings.warn(f"{self.description}: final loss is non-finite; returning the best iterate",
                              RuntimeWarning)
                stop_reason = "non-finite"
        if stop_reason == "early-stop":
            returned, returned_iteration = self.es_output, self.es_iteration
        elif stop_reason in ("non-finite", "diverged") or cfg.return_iterate == "best" or it == 0:
            returned, returned_iteration = best_output, best_iteration
        else:
            returned, returned_iteration = last_output, last_iteration
        if not bool(torch.isfinite(returned).all()):
            raise FloatingPointError(f"{self.description}: no finite iterate to return")
        return FitResult(output=returned / self.scale, history=history, iterations=it,
                         returned_iteration=returned_iteration, stop_reason=stop_reason, scale=self.scale,
                         seconds=time.perf_counter() - self._start)


class BatchedFitter:
    """K independent fits of one architecture stepped as one pass (in the spirit of SigPy's ``Alg``).

    Each member is an ordinary :class:`Fitter` -- its own network, measurements, data scale,
    input-noise generator, history, checks and early stopping -- whose forward pass and optimizer
    step are shared: the members' weights are stacked (``torch.func.stack_module_state``), the
    network is mapped over them (``vmap`` of ``functional_call``; a convolution over stacked
    weights becomes one grouped convolution), the loss is the sum of the members' losses (so each
    member's gradient is its own) and one optimizer steps the stacked weights (Adam and SGD act
    elementwise: each member moves as it would alone). A member that a check stops (early stop,
    non-finite, diverged) leaves the sum and its weights are frozen; the others go on. So each
    member's result equals its fit alone with the same seed, up to floating-point order.

        fitter = BatchedFitter(nets, forward_models, measurements, configs)
        while not fitter.done():
            fitter.step()
        results = fitter.results()

    Whether this is faster than fitting the members one after another depends on the device
    (``scripts/bench_batched.py``): on a GPU many small networks fill it better as one; on a
    2-core CPU the grouped convolutions are slower (docs/benchmarks.md).
    """

    def __init__(self, nets: list[nn.Module], forward_models: list[Callable], measurements: list[torch.Tensor],
                 configs: list[FitConfig], *, validations: Optional[list[Optional[Callable]]] = None,
                 descriptions: Optional[list[str]] = None):
        from torch.func import functional_call, stack_module_state

        k = len(nets)
        if k < 1 or not (len(forward_models) == len(measurements) == len(configs) == k):
            raise ValueError(f"nets, forward_models, measurements and configs must have one entry per member "
                             f"(got {len(nets)}, {len(forward_models)}, {len(measurements)}, {len(configs)})")
        shapes = [{n: tuple(t.shape) for n, t in net.state_dict().items()} for net in nets]
        if any(shape != shapes[0] for shape in shapes[1:]):
            raise ValueError("nets: the members must share one architecture (state_dict shapes differ)")
        common = dataclasses.replace(configs[0], seed=0)
        if any(dataclasses.replace(c, seed=0) != common for c in configs[1:]):
            raise ValueError("configs: the members may differ in their seed only (one optimizer steps them all)")
        if common.compile:
            raise ValueError("configs: compile is not supported for batched fits")
        validations = validations or [None] * k
        descriptions = descriptions or [f"fit [{i + 1}/{k}]" for i in range(k)]
        self.members = [Fitter(net, fm, y, cfg, validation=v, description=d)
                        for net, fm, y, cfg, v, d in zip(nets, forward_models, measurements, configs, validations,
                                                          descriptions)]
        self.config = configs[0]
        params, buffers = stack_module_state([m.net for m in self.members])
        self.params = {name: nn.Parameter(value) for name, value in params.items()}
        self.buffers = buffers
        template = copy.deepcopy(self.members[0].net).to("meta")  # the architecture, without storage
        self._forward = torch.func.vmap(lambda p, b, z: functional_call(template, (p, b), (z,)))
        self.optimizer = make_optimizer(list(self.params.values()), self.config)
        self.scheduler = make_scheduler(self.optimizer, self.config)
        self._frozen: dict[int, dict] = {}  # member -> its weights when a check stopped it

    def done(self) -> bool:
        return all(m.done() for m in self.members)

    def step(self) -> list[Optional[float]]:
        """One iteration of every running member; returns each member's loss (None once done)."""
        running = [i for i, m in enumerate(self.members) if not m.done()]
        if not running:
            raise RuntimeError("the batched fit is done; no step is left")
        self.optimizer.zero_grad(set_to_none=True)
        z = torch.stack([self._input(m) for m in self.members])
        if self.config.autocast_dtype is not None:
            device_type = self.members[0].device.type
            with torch.autocast(device_type=device_type, dtype=getattr(torch, self.config.autocast_dtype)):
                outputs = self._forward(self.params, self.buffers, z)
            outputs = outputs.float()
        else:
            outputs = self._forward(self.params, self.buffers, z)
        losses: list[Optional[float]] = [None] * len(self.members)
        total = None
        for i in running:
            member = self.members[i]
            loss = squared_norm(member.forward_model(outputs[i]) - member.y)
            member.record(loss, outputs[i])
            losses[i] = float(loss.detach())
            if member.stopped:
                self._frozen[i] = {name: p.detach()[i].clone() for name, p in self.params.items()}
            else:
                total = loss if total is None else total + loss
        if total is not None:
            total.backward()
            self.optimizer.step()
            if self.scheduler is not None:
                self.scheduler.step()
            with torch.no_grad():  # stopped members keep their weights (Adam's momentum would move them)
                for i, weights in self._frozen.items():
                    for name, p in self.params.items():
                        p[i] = weights[name]
            for i in running:
                if not self.members[i].stopped:
                    self.members[i].after_step()
        return losses

    def _input(self, member: Fitter) -> torch.Tensor:
        noise = member.input_noise()  # drawn for every member each step, as each would alone
        return member.net.net_input if noise is None else member.net.net_input + noise

    def nets(self) -> list[nn.Module]:
        """The members' networks, holding their current (stacked) weights."""
        with torch.no_grad():
            for i, member in enumerate(self.members):
                for name, p in member.net.named_parameters():
                    p.copy_(self.params[name][i])
        return [m.net for m in self.members]

    def results(self) -> list[FitResult]:
        """Each member's :meth:`Fitter.result` (its network first given its fitted weights)."""
        self.nets()
        return [m.result() for m in self.members]


def fit_batched(nets: list[nn.Module], forward_models: list[Callable], measurements: list[torch.Tensor],
                configs: list[FitConfig], *, validations: Optional[list[Optional[Callable]]] = None,
                descriptions: Optional[list[str]] = None, description: str = "batched fit") -> list[FitResult]:
    """:func:`fit` for K members in one pass (:class:`BatchedFitter`), with one progress bar;
    returns one :class:`FitResult` per member, in order."""
    fitter = BatchedFitter(nets, forward_models, measurements, configs, validations=validations,
                           descriptions=descriptions)
    total = fitter.config.iterations
    bar = tqdm(total=total, desc=f"{description} x{len(nets)}", disable=not fitter.config.show_progress, leave=False)
    done_steps = 0
    while not fitter.done():
        fitter.step()
        steps = max(m.iteration for m in fitter.members)
        if steps - done_steps >= 10 or fitter.done():
            bar.update(steps - done_steps)
            done_steps = steps
    bar.close()
    return fitter.results()


def fit(net: nn.Module, forward_model: Callable[[torch.Tensor], torch.Tensor], measurements: torch.Tensor,
        config: Optional[FitConfig] = None, *, ground_truth: Optional[torch.Tensor] = None,
        output_to_image: Optional[Callable[[torch.Tensor], torch.Tensor]] = None,
        monitor: Optional[Callable[[torch.Tensor], dict]] = None,
        validation: Optional[Callable[[torch.Tensor], float]] = None,
        callback: Optional[Callable[[int, nn.Module, torch.Tensor], None]] = None,
        description: str = "fit") -> FitResult:
    """Fit ``net`` so that ``forward_model(net())`` matches ``measurements``: a :class:`Fitter`
    stepped to the end, with a progress bar.

    Args:
        net: un-trained network with ``net_input`` buffer and ``forward(z=None)``.
        forward_model: maps the network output to predicted measurements (differentiable).
        measurements: y, in any units (the engine rescales internally, see module docstring).
        config: :class:`FitConfig`.
        ground_truth: when given, the relative error ||x - x*|| / ||x*|| of
            ``output_to_image(output)`` (default: the output itself) is tracked as "error".
        monitor: called on the (unscaled) image every ``track_every`` iterations; its dict of
            floats is appended to the history (e.g. SSIM against a target).
        validation: called on the unscaled output every ``early_stop.check_every`` iterations
            (10 without ``early_stop``) and recorded in the history; with ``config.early_stop``
            the fit stops at its minimum (patience) and returns it.
        callback: ``callback(iteration, net, output)`` after every step (scaled output).

    Returns:
        :class:`FitResult`. A loss that turns non-finite stops the fit with a warning and the
        best iterate so far; the returned output is never NaN.
    """
    fitter = Fitter(net, forward_model, measurements, config, ground_truth=ground_truth,
                    output_to_image=output_to_image, monitor=monitor, validation=validation, callback=callback,
                    description=description)
    total = fitter.config.iterations
    bar = tqdm(total=total, desc=description, disable=not fitter.config.show_progress, leave=False)
    while not fitter.done():
        loss = fitter.step()
        it = fitter.iteration
        if not fitter.stopped and (it % 10 == 0 or it == total):
            bar.set_postfix(loss=f"{loss:.3e}")
            bar.update(10 if it % 10 == 0 else it % 10)
    bar.close()
    return fitter.result()
