"""Heckel & Soltanolkotabi's experiments on deep networks (deep decoder, DIP, Appendix-B nets).

Every fit goes through :func:`fastmri_untrained.fit.fit`. Images come from the shared data folder
``<repo>/../shared/data/images`` or from scikit-image; they are read, never copied. ``device``
arguments say where the networks and their targets live; networks are initialised on the CPU
first, so a seed gives the same initial weights on every device.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from ...fit import FitConfig, fit
from ...nets import build_appendix_b, build_net, width_for_overparameterization
from ...nets.deep_decoder import DeepDecoder, DeepDecoderConfig

REPO = Path(__file__).resolve().parents[3]
SHARED_IMAGES = REPO.parent / "shared" / "data" / "images"


# --------------------------------------------------------------------------- images
def shared_images_dir() -> Path:
    """The shared image folder; a clear error when the ../shared checkout is absent."""
    if not SHARED_IMAGES.is_dir():
        raise FileNotFoundError(
            f"shared images not found at {SHARED_IMAGES}: check out the shared data beside the repo "
            "(<repo>/../shared/data/images)")
    return SHARED_IMAGES


def load_gray(name: str, size: int, crop: int | None = None) -> np.ndarray:
    """A grayscale image in [0, 1], (size, size): ``name`` is a file of the shared folder or
    ``skimage:<fn>`` (e.g. ``skimage:camera``). A centre square crop (of ``crop`` pixels, default
    the largest square) is resized to ``size``; the result is divided by its max (the CS paper's
    protocol: 256x256 centre crop, divided by max).
    """
    from skimage import color, data, io, transform

    if name.startswith("skimage:"):
        img = getattr(data, name.split(":", 1)[1])()
    else:
        img = io.imread(shared_images_dir() / name)
    img = np.asarray(img, dtype=np.float64)
    if img.ndim == 3:
        img = color.rgb2gray(img[..., :3] / (255.0 if img.max() > 1 else 1.0))
    elif img.max() > 1:
        img = img / 255.0
    h, w = img.shape
    s = min(h, w, crop or min(h, w))
    img = img[(h - s) // 2:(h - s) // 2 + s, (w - s) // 2:(w - s) // 2 + s]
    img = transform.resize(img, (size, size), anti_aliasing=True, preserve_range=True)
    return img / img.max()


def to_tensor(img: np.ndarray, device: str = "cpu") -> torch.Tensor:
    return torch.as_tensor(img, dtype=torch.float32)[None, None].to(device)


def noise_like(img: np.ndarray, seed: int = 0) -> np.ndarray:
    """Gaussian noise with the same norm as ``img`` (so that 'fit' thresholds compare)."""
    z = np.random.default_rng(seed).standard_normal(img.shape)
    return z * np.linalg.norm(img) / np.linalg.norm(z)


def psnr(x: np.ndarray, ref: np.ndarray, peak: float = 1.0) -> float:
    return float(10 * np.log10(peak**2 / np.mean((np.asarray(x) - ref) ** 2)))


def iterations_to_fit(rel_residual: list, threshold: float) -> float:
    """First iteration whose relative residual ||G - y|| / ||y|| <= threshold (inf if never)."""
    hits = np.nonzero(np.asarray(rel_residual) <= threshold)[0]
    return float(hits[0]) if len(hits) else math.inf


# --------------------------------------------------------------------------- Figs. 4 / 8
def fit_curve(net, target: np.ndarray, iterations: int, lr: float, optimizer: str = "adam",
              callback=None, show_progress: bool = False, description: str = "fit", device: str = "cpu"):
    """Fit ``net`` to ``target`` (denoising operator A = I) on ``device``; returns the FitResult."""
    # Plain fits of the paper's curves: no DIP input noise (reg_noise_std=0), whatever the network.
    cfg = FitConfig(iterations=iterations, optimizer=optimizer, lr=lr, show_progress=show_progress, reg_noise_std=0.0)
    return fit(net, lambda out: out, to_tensor(target, device), cfg, callback=callback, description=description)


def architecture_speeds(image: np.ndarray, factors=(1, 4, 16), archs=("i", "ii", "iii", "iv"),
                        layers: int = 5, iterations: int = 1000, lr: float = 0.005,
                        threshold: float = 0.05, seed: int = 0, show_progress: bool = True,
                        device: str = "cpu") -> dict:
    """Appendix B (Figs. 4, 8): loss curves of architectures (i)-(iv) on an image and on noise.

    Returns per (arch, factor): width k, over-parameterisation, relative-residual curves for
    image and noise, and the iterations each needs to reach ``threshold``.
    """
    size = image.shape
    noise = noise_like(image, seed + 1)
    out = {}
    runs = [(a, f) for a in archs for f in factors]
    for arch, factor in tqdm(runs, desc="architectures", disable=not show_progress):
        k = width_for_overparameterization(arch, size, factor, layers=layers)
        row = {"k": k}
        for name, target in (("image", image), ("noise", noise)):
            net = build_appendix_b(arch, size, channels=k, layers=layers, seed=seed)
            row["params"] = net.num_parameters()
            res = fit_curve(net, target, iterations, lr, show_progress=show_progress,
                            description=f"arch ({arch}) x{factor:g} {name}", device=device)
            row[name] = res.history["relative_residual"]
            row[f"{name}_iters"] = iterations_to_fit(res.history["relative_residual"], threshold)
        row["overparameterization"] = row["params"] / (size[0] * size[1])
        out[f"{arch}/{factor}"] = row
    return out


# --------------------------------------------------------------------------- Fig. 9
def weight_movement(image: np.ndarray, arch: str = "i", factor: float = 4, layers: int = 5,
                    iterations: int = 500, lr: float = 0.005, seed: int = 0, show_progress: bool = True,
                    device: str = "cpu") -> dict:
    """||C_i^t - C_i^0|| / ||C_i^0|| per layer (the 1x1 / k x k convolutions) for image and noise.

    Also the movement needed to reach the same fit: at the first iteration where each target's
    relative residual falls to the level the noise reaches at the end of the budget.
    """
    size = image.shape
    k = width_for_overparameterization(arch, size, factor, layers=layers)
    result = {"k": k}
    for name, target in (("image", image), ("noise", noise_like(image, seed + 1))):
        # on the device before the initial weights are copied, so both sides of C_t - C_0 live there
        net = build_appendix_b(arch, size, channels=k, layers=layers, seed=seed).to(device)
        weights = [(n, p) for n, p in net.named_parameters() if p.dim() == 4]
        init = [p.detach().clone() for _, p in weights]
        curves = {n: [0.0] for n, _ in weights}

        def callback(it, net, output):
            for (n, p), p0 in zip(weights, init):
                curves[n].append(float((p.detach() - p0).norm() / p0.norm()))

        res = fit_curve(net, target, iterations, lr, callback=callback, show_progress=show_progress,
                        description=f"weight movement, {name}", device=device)
        result[name] = {"layers": curves, "residual": res.history["relative_residual"]}
    level = result["noise"]["residual"][-1]
    result["common_level"] = level
    for name in ("image", "noise"):
        t = int(iterations_to_fit(result[name]["residual"], level * (1 + 1e-9)))
        result[name]["iteration_at_level"] = t
        result[name]["movement_at_level"] = {n: c[min(t, len(c) - 1)] for n, c in result[name]["layers"].items()}
    return result


# --------------------------------------------------------------------------- Fig. 12
def jacobian_alignment(image: np.ndarray, net_name: str = "deep-decoder", inits: int = 10,
                       seed: int = 0, device: str = "cpu", **overrides) -> dict:
    """||J^T(C_0) y|| for y = image and y = noise of equal norm, over random initialisations.

    J^T y is the gradient of <G(theta), y> at theta_0: one backward pass, no Jacobian formed.
    """
    noise = noise_like(image, seed + 1000)
    vals = {"image": [], "noise": []}
    for s in range(inits):
        net = build_net(net_name, 1, image.shape, seed=seed + s, **overrides).to(device)
        for name, target in (("image", image), ("noise", noise)):
            net.zero_grad()
            (net() * to_tensor(target, device)).sum().backward()
            g2 = sum(float((p.grad**2).sum()) for p in net.parameters() if p.grad is not None)
            vals[name].append(math.sqrt(g2))
    return vals


# --------------------------------------------------------------------------- Figs. 7 (ICLR) / 4 (ICML)
def deep_decoder_1d(n: int = 512, layers: int = 4, channels: int = 64, seed: int = 0) -> DeepDecoder:
    """A 1-D deep decoder: height-1 images, so bilinear upsampling is linear interpolation in 1-D."""
    cfg = DeepDecoderConfig(layers=layers, channels=channels, in_size=(1, n // 2 ** (layers - 1)),
                            upsample="bilinear", bias=False, channel_norm=True)
    return DeepDecoder(cfg, out_channels=1, out_size=(1, n), seed=seed)


def network_jacobian(net) -> torch.Tensor:
    """The full Jacobian d net() / d theta, (outputs x parameters), via torch.func."""
    from torch.func import functional_call, jacrev

    names = [n for n, p in net.named_parameters() if p.requires_grad]
    params = {n: p.detach() for n, p in net.named_parameters() if p.requires_grad}
    buffers = dict(net.named_buffers())

    def f(p):
        return functional_call(net, (p, buffers), ()).reshape(-1)

    jac = jacrev(f)(params)
    return torch.cat([jac[n].reshape(jac[n].shape[0], -1) for n in names], dim=1)


def low_frequency_energy(vectors: np.ndarray, n_freq: int) -> np.ndarray:
    """Fraction of each column's energy in its ``n_freq`` lowest DCT-II frequencies.

    The deep decoder's upsampling is not circular (no wrap-around), so its low-frequency singular
    functions are cosines of the DCT rather than of the periodic trigonometric basis.
    """
    from scipy.fft import dct

    spec = dct(vectors, axis=0, norm="ortho") ** 2
    return spec[:n_freq].sum(0) / spec.sum(0)


def jacobian_spectrum_during_fit(target: np.ndarray, record_at=(0, 50, 3500), layers: int = 4,
                                 channels: int = 64, lr: float = 0.005, optimizer: str = "adam",
                                 n_vectors=(1, 2, 3, 4, 5, 20, 50, 100, 150), seed: int = 0,
                                 show_progress: bool = True, device: str = "cpu") -> dict:
    """Singular values and leading left singular vectors of the Jacobian of a 1-D deep decoder,
    at initialisation and at the iterations ``record_at`` of fitting ``target`` (length n)."""
    n = len(target)
    net = deep_decoder_1d(n, layers, channels, seed).to(device)
    snaps = {}

    def snap(it):
        J = network_jacobian(net).double().cpu().numpy()
        u, s, _ = np.linalg.svd(J, full_matrices=False)
        idx = [i - 1 for i in n_vectors if i <= len(s)]
        snaps[int(it)] = {"singular_values": s.tolist(), "vectors": u[:, idx].T.tolist(),
                          "vector_index": [i + 1 for i in idx],
                          "low_freq_energy": low_frequency_energy(u[:, :10], 12).tolist()}

    if 0 in record_at:
        snap(0)

    def callback(it, net_, output):
        if it in record_at:
            snap(it)

    res = fit_curve(net, target[None, :], max(record_at), lr, optimizer=optimizer, callback=callback,
                    show_progress=show_progress, description="1-D deep decoder", device=device)
    return {"params": net.num_parameters(), "snapshots": snaps, "loss": res.history["relative_residual"]}


# --------------------------------------------------------------------------- Fig. 1 / Table 1
def denoise_curves(image: np.ndarray, noisy: np.ndarray, net_name: str, iterations: int, lr: float,
                   seed: int = 0, track_every: int = 10, show_progress: bool = False, device: str = "cpu",
                   **overrides) -> dict:
    """Fit ``net_name`` to the noisy image, the clean image and pure noise (Fig. 1).

    MSE against the clean image for the noisy fit, against the fitted target otherwise.
    """
    noise = noisy - image
    out = {}
    for name, target in (("noisy", noisy), ("clean", image), ("noise", noise)):
        net = build_net(name=net_name, out_channels=1, out_size=image.shape, seed=seed, **overrides)
        ref = image if name == "noisy" else target
        cfg = FitConfig(iterations=iterations, lr=lr, track_every=track_every, show_progress=show_progress,
                        scale_data=False)
        res = fit(net, lambda o: o, to_tensor(target, device), cfg, ground_truth=to_tensor(ref, device),
                  description=f"{net_name}:{name}")
        # history "error" is relative; convert to MSE for the figure.
        rel = np.asarray(res.history["error"])
        out[name] = {"iterations": res.history["error_iteration"],
                     "mse": (rel**2 * np.mean(ref**2)).tolist()}
    return out


def denoise(noisy: np.ndarray, net_name: str, iterations: int, lr: float, seed: int = 0,
            show_progress: bool = False, device: str = "cpu", **overrides) -> np.ndarray:
    """Fit ``net_name`` to ``noisy`` for exactly ``iterations`` Adam steps; returns the last output."""
    net = build_net(net_name, 1, noisy.shape, seed=seed, **overrides)
    cfg = FitConfig(iterations=iterations, lr=lr, show_progress=show_progress, scale_data=False)
    res = fit(net, lambda o: o, to_tensor(noisy, device), cfg, description=net_name)
    return res.output[0, 0].cpu().numpy().astype(np.float64)


def bm3d_denoise(noisy: np.ndarray, sigma: float) -> np.ndarray:
    import bm3d

    return np.asarray(bm3d.bm3d(noisy, sigma_psd=sigma), dtype=np.float64)


# --------------------------------------------------------------------------- CS Fig. 1
def cs_fit(image: np.ndarray, operator, layers: int, channels: int, iterations: int, lr: float,
           seed: int = 0, track_every: int = 10, show_progress: bool = False, device: str = "cpu") -> dict:
    """Fit a deep decoder through ``operator`` (acting on the flattened image) to y = A x*.

    Returns the training loss 1/2||A G - y||^2 and the true error ||G - x*||^2 over iterations.
    ``operator`` (a module) is moved to ``device``.
    """
    x = to_tensor(image, device)
    operator = operator.to(device)
    shape = x.shape
    with torch.no_grad():
        y = operator(x.reshape(1, -1))
    net = build_net("deep-decoder", 1, image.shape, seed=seed, layers=layers, channels=channels,
                    in_size=tuple(max(1, s // 2 ** (layers - 1)) for s in image.shape))
    forward = lambda out: operator(out.reshape(1, -1))  # noqa: E731
    cfg = FitConfig(iterations=iterations, lr=lr, track_every=track_every, show_progress=show_progress,
                    scale_data=False)
    res = fit(net, forward, y, cfg, ground_truth=x, description="cs deep decoder")
    rel = np.asarray(res.history["error"])
    x2 = float((x**2).sum())
    return {"loss": [0.5 * v for v in res.history["loss"]],
            "error_iterations": res.history["error_iteration"],
            "error": (rel**2 * x2).tolist(), "relative_error": rel.tolist(),
            "final_relative_error": float(rel[-1]), "best_relative_error": float(rel.min()),
            "params": net.num_parameters(), "shape": list(shape)}


def mri_fit_curve(shape: tuple, coils: int, layers: int, channels: int, iterations: int, lr: float,
                  acceleration: int = 8, center_fraction: float = 0.04, track_every: int = 50,
                  seed: int = 0, device: str = "cpu") -> dict:
    """MSE to the target over iterations of one deep-decoder fit to undersampled multi-coil k-space.

    One slice is simulated (k-space ``shape``, ``coils`` coils, noisy RSS target as in fastMRI),
    masked with ``equispaced_fraction``; the deep decoder (SENSE forward model with ESPIRiT maps) is
    fitted with Adam at a constant step for ``iterations`` steps, no early stopping. The tracked image
    is the network's own (no data consistency), as in the paper's Fig. 5; zero-filled is the reference.
    """
    from ...baselines import ZeroFilled
    from ...evaluate import slice_ssim
    from ...pipeline import MaskSpec, simulated_samples
    from ...recon import UntrainedConfig, UntrainedReconstructor

    mask = MaskSpec("equispaced_fraction", (acceleration,), (center_fraction,))
    sample = simulated_samples(mask, shape, coils, seed=seed + 11)[0]
    target = sample.target
    t2 = float((target**2).sum())

    def mse(img):
        return float(((img - target) ** 2).sum()) / t2

    cfg = UntrainedConfig(method="deep-decoder", forward_model="sense", ensemble=1, seed=seed, device=device,
                          data_consistency=False, net=dict(layers=layers, channels=channels, in_size=(8, 8)),
                          fit=FitConfig(iterations=iterations, lr=lr, lr_schedule="constant",
                                        track_every=track_every, seed=seed))
    recon = UntrainedReconstructor(cfg, show_progress=True)
    recon(sample, monitor=lambda img: {"mse": mse(img), "ssim": slice_ssim(target, img)})
    hist = recon.last_fit.history
    errs = np.asarray(hist["mse"])
    best = int(errs.argmin())
    # 2 output channels (one complex image through the SENSE maps); a deep decoder's parameter
    # count does not depend on the output size.
    params = build_net("deep-decoder", 2, target.shape, **cfg.net_overrides(target.shape)).num_parameters()
    zero_filled = ZeroFilled()(sample).image
    return {"loss": [r**2 for r in hist["relative_residual"]], "monitor_iteration": hist["monitor_iteration"],
            "mse": errs.tolist(), "ssim": hist["ssim"], "best_iteration": int(hist["monitor_iteration"][best]),
            "best_mse": float(errs[best]), "final_mse": float(errs[-1]), "best_ssim": float(max(hist["ssim"])),
            "final_ssim": float(hist["ssim"][-1]), "zero_filled_mse": mse(zero_filled),
            "zero_filled_ssim": slice_ssim(target, zero_filled), "params": params,
            "target_shape": list(target.shape), "coils": coils, "acceleration": acceleration,
            "seconds": recon.last_fit.seconds}
