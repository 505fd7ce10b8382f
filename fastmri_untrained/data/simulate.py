"""Simulated raw MRI data written in fastMRI's exact HDF5 schema.

Each volume is one ``file_sim_<seed>_<i>.h5`` holding what ``fastmri.data.SliceDataset``
reads from a real fastMRI file:

- ``kspace``: complex64, (slices, coils, H, W) for multicoil or (slices, H, W) for singlecoil.
  H is the readout (frequency-encoding) dimension, oversampled 2x: the object occupies the
  central H/2 rows. W is the phase-encoding dimension, the one fastMRI masks undersample.
- ``reconstruction_rss`` (multicoil) / ``reconstruction_esc`` (singlecoil): float32
  (slices, h, w), the RSS (or magnitude) of the fully sampled *noisy* image, centre-cropped to
  (h, w) = (H//2, min(H//2, W)) -- (320, 320) for 640x368 -- as fastMRI's targets are.
- ``ismrmrd_header``: XML with encodedSpace (H, W, 1), reconSpace (h, w, 1) and
  kspace_encoding_step_1 center W//2, maximum W-1 (so SliceDataset's padding is (0, W)).
- attrs ``acquisition``, ``max`` (target max), ``norm`` (L2 norm of the target volume),
  ``patient_id``.

Physics: real MR magnitude slices (``images.mr_images``), a smooth random phase, SigPy
birdcage coil maps normalised to unit root-sum-of-squares, and complex white Gaussian noise.
Scales follow real fastMRI data (target max about 3e-4).

Noise level: ``snr`` is the mean noise-free magnitude over the object (pixels above 10% of
its maximum) divided by the standard deviation ``sigma`` of the complex noise, E|n|^2 =
sigma^2, per k-space sample and per coil. The FFT is orthonormal and the maps have unit RSS,
so ``sigma`` is also the noise std of the optimally coil-combined image: ``snr`` is the SNR of
the fully sampled, coil-combined image. The default, 60, puts the RSS noise floor of the
target's background (about sqrt(coils) * sigma) at about 1.2% of the target maximum, as in
real fastMRI brain targets. Measured with this default on one 640x368 b0 slice, 8 coils, a
4x equispaced mask (8% centre), ESPIRiT maps (sigpy EspiritCalib, calib_width = the 29
centre lines) and fastmri.evaluate.ssim against the 320x320 noisy target: zero-filled 0.82;
SigPy L1-wavelet (lambda 1e-3 at unit image scale, 100 iterations) 0.88 with uncropped maps
(crop=0) and 0.79 with the default crop=0.95, whose exactly-zero background loses on SSIM's
luminance term against the noisy background; unregularised SENSE (30 CG iterations) 0.40-0.46
(noise amplification at the effective R ~ 5). The fully sampled target itself scores 0.93
against the noise-free image. Noise-free birdcage data instead gives SENSE ~0.97-0.998, which
cannot rank methods.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
from pathlib import Path
from typing import NamedTuple, Optional, Sequence

import h5py
import numpy as np
import sigpy.mri
import torch
from tqdm.auto import tqdm

from ..files import atomic_path
from ..operators.fourier import fft2c, ifft2c
from .images import SLAB_SOURCE, SLAB_SOURCES, mr_images
from .readers import TARGET_KEYS

CHALLENGES = ("multicoil", "singlecoil")


def shape_problem(shape: Sequence[int]) -> Optional[str]:
    """Why (H, W) cannot be simulated, or None. H is the 2x oversampled readout (the object fills
    its central H/2 rows), so it must be even; smaller grids leave no room for the object."""
    H, W = shape
    if H < 8 or W < 4 or H % 2:
        return f"must be H W with H even and >= 8 (2x oversampled readout) and W >= 4, got {H} {W}"
    return None


@dataclasses.dataclass(frozen=True)
class SimulationConfig:
    """Every knob of the simulation; ``simulate_dataset``'s keywords fill the common ones.

    Attributes:
        challenge: "multicoil" or "singlecoil".
        num_volumes: number of files (volumes) to write.
        slices: slices per volume.
        coils: receive coils (multicoil only).
        shape: (H, W) = (readout, phase encoding) k-space size; H is 2x oversampled.
        seed: master seed; volume i uses seeds derived from (seed, i).
        snr: mean object magnitude / complex noise std (see the module docstring).
        signal_max: maximum of the noise-free magnitude image (real fastMRI targets are
            about 1e-4..5e-4).
        coil_radius: birdcage radius relative to the object's half-size (SigPy's ``r``).
        phase_amplitude: maximum deviation (radians) of the smooth object phase.
        augment: random flips/rotations/shifts of the source images.
        acquisition: the ``acquisition`` attribute; default "AXT1" (multicoil brain) or
            "CORPD_FBK" (singlecoil).
        sources: indices of the bundled MR slices to draw images from (``images.source_slices``);
            None for all. Train and test splits with disjoint sources share no image.
        contiguous: each volume is a slab of contiguous slices of the 3-D source ``slab_source``
            (``images.mr_images(contiguous=True)``) instead of unrelated slices; ``sources``
            does not apply. Each file records its slices' sources (the attribute ``slice_sources``;
            every simulated file does).
        slab_source: one of ``images.SLAB_SOURCES`` (dipy's b0 volume, 10 slices; the MNI152
            T1 template, 30 slices 3 mm apart).
        slab_starts: with ``contiguous``, the first slice of each volume's slab (one per volume);
            None draws each from the seed. Fixed starts keep test slabs apart from training slabs.
    """

    challenge: str = "multicoil"
    num_volumes: int = 2
    slices: int = 2
    coils: int = 8
    shape: tuple[int, int] = (640, 368)
    seed: int = 0
    snr: float = 60.0
    signal_max: float = 3e-4
    coil_radius: float = 1.5
    phase_amplitude: float = np.pi / 2
    augment: bool = True
    acquisition: Optional[str] = None
    sources: Optional[tuple[int, ...]] = None
    contiguous: bool = False
    slab_source: str = SLAB_SOURCE
    slab_starts: Optional[tuple[int, ...]] = None

    def __post_init__(self):
        if self.challenge not in CHALLENGES:
            raise ValueError(f"challenge must be one of {CHALLENGES}, got {self.challenge!r}")
        problem = shape_problem(self.shape)
        if problem:
            raise ValueError(f"shape {problem}")
        if self.seed < 0:  # numpy's seed sequences take non-negative integers only
            raise ValueError(f"seed must be >= 0, got {self.seed}")
        for name in ("num_volumes", "slices", "coils"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.snr <= 0 or self.signal_max <= 0:
            raise ValueError("snr and signal_max must be positive")
        if self.slab_source not in SLAB_SOURCES:
            raise ValueError(f"slab_source must be one of {', '.join(SLAB_SOURCES)}, got {self.slab_source!r}")
        if self.contiguous and self.sources is not None:
            raise ValueError(f"sources does not apply to contiguous slabs (of {self.slab_source}); leave it None")
        depth = SLAB_SOURCES[self.slab_source]
        if self.contiguous and self.slices > depth:
            raise ValueError(f"slices must be <= {depth} for contiguous slabs of {self.slab_source}, got {self.slices}")
        if self.slab_starts is not None:
            if not self.contiguous:
                raise ValueError("slab_starts applies to contiguous slabs only (contiguous=True)")
            if len(self.slab_starts) != self.num_volumes:
                raise ValueError(f"slab_starts: one per volume ({self.num_volumes}), got {len(self.slab_starts)}")
            bad = [s for s in self.slab_starts if not 0 <= s <= depth - self.slices]
            if bad:
                raise ValueError(f"slab_starts must be in [0, {depth - self.slices}] for {self.slices} slices of "
                                 f"{self.slab_source}, got {bad}")

    @property
    def recon_size(self) -> tuple[int, int]:
        """(h, w) of the target: the object region, (320, 320) for 640x368."""
        H, W = self.shape
        return H // 2, min(H // 2, W)

    @property
    def multicoil(self) -> bool:
        return self.challenge == "multicoil"

    @property
    def target_key(self) -> str:
        return TARGET_KEYS[self.challenge]


class SimulatedSlice(NamedTuple):
    """One simulated slice.

    Attributes:
        kspace: complex64 (coils, H, W) or (H, W): fully sampled noisy k-space.
        target: float32 (h, w): RSS (or magnitude) of the noisy image, centre-cropped.
        image: complex64 (H, W): the noise-free object, with its phase (ground truth).
        maps: complex64 (coils, H, W) coil maps (unit RSS), or None for singlecoil.
        noise_std: the complex noise std used (per k-space sample and coil).
    """

    kspace: np.ndarray
    target: np.ndarray
    image: np.ndarray
    maps: Optional[np.ndarray]
    noise_std: float


@functools.lru_cache(maxsize=4)
def _birdcage(coils: int, shape: tuple[int, int], coil_radius: float) -> np.ndarray:
    H, W = shape
    # SigPy normalises each axis by its own half-size; with a 2x oversampled readout that
    # would squash the coil ring relative to the object. Compute on a square grid covering
    # the whole FOV, with the radius scaled from object half-size (H/4) to grid half-size,
    # then crop to (H, W). The coils lie inside that grid (in the oversampled air); an odd
    # grid size puts no pixel exactly on a coil, where 1/r would be infinite.
    S = max(H, W) | 1
    r = coil_radius * (H / 4) / (S / 2)
    maps = sigpy.mri.birdcage_maps((coils, S, S), r=r, nzz=coils, dtype=np.complex128)
    top, left = (S - H) // 2, (S - W) // 2
    maps = maps[:, top : top + H, left : left + W]
    # Unit RSS everywhere (SigPy already normalises; keep it explicit): the coil-combined
    # image then is the object itself.
    maps = maps / np.sqrt((np.abs(maps) ** 2).sum(0, keepdims=True))
    if not np.isfinite(maps).all():
        raise ValueError(f"non-finite birdcage maps for {coils} coils, shape {shape}")
    maps = maps.astype(np.complex64)
    maps.setflags(write=False)
    return maps


def coil_maps(coils: int, shape: Sequence[int], coil_radius: float = 1.5) -> np.ndarray:
    """Birdcage coil maps (sigpy.mri.birdcage_maps) for an (H, W) grid with 2x readout
    oversampling, normalised to unit root-sum-of-squares. complex64 (coils, H, W)."""
    return _birdcage(int(coils), (int(shape[0]), int(shape[1])), float(coil_radius)).copy()


def smooth_phase(shape: Sequence[int], rng: np.random.Generator, amplitude: float) -> np.ndarray:
    """A random quadratic phase map (radians) over (H, W), coordinates scaled to the object.

    Real receive/B0 phase is smooth over the object; a 2nd-order polynomial with random
    coefficients captures that and keeps the image far from real-valued.
    """
    H, W = shape
    y = (np.arange(H) - H / 2) / (H / 4)  # the object spans [-1, 1] in both directions
    x = (np.arange(W) - W / 2) / (min(H / 2, W) / 2)
    yy, xx = np.meshgrid(y, x, indexing="ij")
    c = rng.uniform(-1, 1, size=6)
    p = c[0] * xx + c[1] * yy + c[2] * xx * yy + c[3] * xx**2 + c[4] * yy**2
    inside = (np.abs(yy) <= 1) & (np.abs(xx) <= 1)
    p = p - p[inside].mean()
    p = p * amplitude / max(np.abs(p[inside]).max(), 1e-12)
    return p + np.pi * c[5]  # plus a random global phase


def embed_object(magnitude: np.ndarray, shape: Sequence[int]) -> np.ndarray:
    """Place an (h, w) object at the centre of an (H, W) zero image (H = 2x oversampled)."""
    H, W = shape
    h, w = magnitude.shape
    if h > H or w > W:
        raise ValueError(f"object {magnitude.shape} larger than the grid {tuple(shape)}")
    out = np.zeros((H, W), dtype=magnitude.dtype)
    top, left = (H - h) // 2, (W - w) // 2
    out[top : top + h, left : left + w] = magnitude
    return out


def center_crop_np(x: np.ndarray, size: Sequence[int]) -> np.ndarray:
    """Centre crop of the last two dims, with fastMRI's convention (start = (n - m) // 2)."""
    H, W = x.shape[-2:]
    h, w = size
    top, left = (H - h) // 2, (W - w) // 2
    return x[..., top : top + h, left : left + w]


def simulate_slice(
    magnitude: np.ndarray, config: SimulationConfig, rng: np.random.Generator
) -> SimulatedSlice:
    """Simulate one fully sampled noisy slice from a magnitude image.

    Args:
        magnitude: (h, w) object magnitude with maximum ~1, h, w <= config.recon_size
            (it is zero-padded to the full oversampled (H, W) grid).
        config: the simulation settings (shape, coils, snr, scale, ...).
        rng: numpy Generator for phase and noise.
    """
    H, W = config.shape
    mag = embed_object(np.asarray(magnitude, dtype=np.float64), (H, W))
    mag = mag * (config.signal_max / max(mag.max(), 1e-12))
    image = mag * np.exp(1j * smooth_phase((H, W), rng, config.phase_amplitude))

    fg = mag > 0.1 * mag.max()
    noise_std = float(mag[fg].mean() / config.snr)

    if config.multicoil:
        maps = coil_maps(config.coils, (H, W), config.coil_radius)
        coil_images = maps * image[None]
    else:
        maps = None
        coil_images = image
    clean = fft2c(torch.from_numpy(np.ascontiguousarray(coil_images).astype(np.complex64)))
    noise = rng.standard_normal((2,) + tuple(clean.shape)) * (noise_std / np.sqrt(2))
    kspace = clean + torch.from_numpy((noise[0] + 1j * noise[1]).astype(np.complex64))

    # The target, as fastMRI's: RSS (or magnitude) of the fully sampled *noisy* image.
    full = ifft2c(kspace).abs()
    if config.multicoil:
        full = torch.sqrt((full**2).sum(0))
    target = center_crop_np(full.numpy(), config.recon_size).astype(np.float32)
    return SimulatedSlice(
        kspace=kspace.numpy(),
        target=np.ascontiguousarray(target),
        image=image.astype(np.complex64),
        maps=maps,
        noise_std=noise_std,
    )


def ismrmrd_header(config: SimulationConfig, voxel_mm: float = 0.7, thickness_mm: float = 5.0) -> str:
    """The ISMRMRD XML header that fastmri.data.SliceDataset parses for this geometry.

    Sizes: encodedSpace (H, W, 1), reconSpace (h, w, 1); kspace_encoding_step_1 center W//2
    and maximum W-1 (SliceDataset then pads nothing: padding_left 0, padding_right W).
    """
    H, W = config.shape
    h, w = config.recon_size
    S = config.slices

    def limit(name, maximum, center):
        return (
            f"      <{name}><minimum>0</minimum><maximum>{maximum}</maximum>"
            f"<center>{center}</center></{name}>\n"
        )

    return (
        '<?xml version="1.0" encoding="utf-8"?>\n'
        '<ismrmrdHeader xmlns="http://www.ismrm.org/ISMRMRD" '
        'xmlns:xs="http://www.w3.org/2001/XMLSchema" '
        'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" '
        'xsi:schemaLocation="http://www.ismrm.org/ISMRMRD ismrmrd.xsd">\n'
        "  <measurementInformation><patientPosition>HFS</patientPosition>"
        f"<protocolName>{_acquisition(config)}</protocolName></measurementInformation>\n"
        "  <acquisitionSystemInformation><systemVendor>fastmri_untrained simulation"
        "</systemVendor><systemFieldStrength_T>3.0</systemFieldStrength_T>"
        f"<receiverChannels>{config.coils if config.multicoil else 1}</receiverChannels>"
        "</acquisitionSystemInformation>\n"
        "  <experimentalConditions><H1resonanceFrequency_Hz>127730000"
        "</H1resonanceFrequency_Hz></experimentalConditions>\n"
        "  <encoding>\n"
        "    <encodedSpace>\n"
        f"      <matrixSize><x>{H}</x><y>{W}</y><z>1</z></matrixSize>\n"
        f"      <fieldOfView_mm><x>{H * voxel_mm:g}</x><y>{W * voxel_mm:g}</y>"
        f"<z>{thickness_mm:g}</z></fieldOfView_mm>\n"
        "    </encodedSpace>\n"
        "    <reconSpace>\n"
        f"      <matrixSize><x>{h}</x><y>{w}</y><z>1</z></matrixSize>\n"
        f"      <fieldOfView_mm><x>{h * voxel_mm:g}</x><y>{w * voxel_mm:g}</y>"
        f"<z>{thickness_mm:g}</z></fieldOfView_mm>\n"
        "    </reconSpace>\n"
        "    <trajectory>cartesian</trajectory>\n"
        "    <encodingLimits>\n"
        + limit("kspace_encoding_step_1", W - 1, W // 2)
        + limit("kspace_encoding_step_2", 0, 0)
        + limit("average", 0, 0)
        + limit("slice", S - 1, S // 2)
        + limit("contrast", 0, 0)
        + limit("phase", 0, 0)
        + limit("repetition", 0, 0)
        + limit("set", 0, 0)
        + limit("segment", 0, 0)
        + "    </encodingLimits>\n"
        "  </encoding>\n"
        "</ismrmrdHeader>\n"
    )


def _acquisition(config: SimulationConfig) -> str:
    if config.acquisition is not None:
        return config.acquisition
    return "AXT1" if config.multicoil else "CORPD_FBK"


def volume_path(out_dir: Path | str, seed: int, index: int) -> Path:
    """Where volume ``index`` of a dataset simulated with ``seed`` is written."""
    return Path(out_dir) / f"file_sim_{seed}_{index}.h5"


def simulate_volume(
    path: Path | str, config: SimulationConfig, index: int, progress: Optional[tqdm] = None
) -> Path:
    """Simulate volume ``index`` of ``config`` and write it atomically to ``path``."""
    H, W = config.shape
    h, w = config.recon_size
    S = config.slices
    # Separate streams for image choice and for phase/noise, both fixed by (seed, index).
    images, names = mr_images(S, (h, w), seed=(config.seed, index, 0), augment=config.augment,
                              sources=config.sources, return_sources=True, contiguous=config.contiguous,
                              slab_source=config.slab_source,
                              slab_start=None if config.slab_starts is None else config.slab_starts[index])
    rng = np.random.default_rng((config.seed, index, 1))
    kshape = (S, config.coils, H, W) if config.multicoil else (S, H, W)
    path = Path(path)
    with atomic_path(path) as tmp:
        with h5py.File(tmp, "w") as hf:
            kspace = hf.create_dataset("kspace", shape=kshape, dtype=np.complex64)
            target = hf.create_dataset(config.target_key, shape=(S, h, w), dtype=np.float32)
            # Slice by slice: a 640x368x8 volume of many slices need not fit in memory twice.
            for s in range(S):
                sl = simulate_slice(images[s], config, rng)
                kspace[s] = sl.kspace
                target[s] = sl.target
                if progress is not None:
                    progress.update(1)
            tgt = target[()]
            hf.create_dataset("ismrmrd_header", data=np.bytes_(ismrmrd_header(config).encode()))
            # An attribute, not a dataset: the file keeps fastMRI's exact set of datasets.
            hf.attrs.create("slice_sources", np.array(names, dtype=h5py.string_dtype()))
            hf.attrs["acquisition"] = _acquisition(config)
            hf.attrs["max"] = float(tgt.max())
            hf.attrs["norm"] = float(np.linalg.norm(tgt.astype(np.float64)))
            hf.attrs["patient_id"] = hashlib.sha256(
                f"fastmri_untrained-sim-{config.seed}-{index}".encode()
            ).hexdigest()
    return path


def simulate_dataset(
    out_dir: Path | str,
    challenge: str = "multicoil",
    num_volumes: int = 2,
    slices: int = 2,
    coils: int = 8,
    shape: Sequence[int] = (640, 368),
    seed: int = 0,
    show_progress: bool = True,
    config: Optional[SimulationConfig] = None,
    contiguous: bool = False,
    slab_source: str = SLAB_SOURCE,
) -> list[Path]:
    """Write ``num_volumes`` simulated volumes in fastMRI's HDF5 schema into ``out_dir``.

    Files are ``file_sim_<seed>_<i>.h5``, each written atomically (no partial file remains
    if simulation or writing fails). Output is deterministic under ``seed``.

    Args:
        out_dir: directory to write into (created if needed).
        challenge: "multicoil" or "singlecoil".
        num_volumes, slices, coils, shape, seed, contiguous, slab_source: see ``SimulationConfig``.
        show_progress: show a tqdm progress bar over slices.
        config: a full ``SimulationConfig``; when given, it is used instead of the
            keyword arguments above (for snr, signal scale, coil radius, ...).

    Returns:
        The paths written, in volume order.
    """
    if config is None:
        config = SimulationConfig(
            challenge=challenge,
            num_volumes=num_volumes,
            slices=slices,
            coils=coils,
            shape=(int(shape[0]), int(shape[1])),
            seed=seed,
            contiguous=contiguous,
            slab_source=slab_source,
        )
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    with tqdm(
        total=config.num_volumes * config.slices,
        desc=f"simulating {config.challenge}",
        unit="slice",
        disable=not show_progress,
    ) as bar:
        for i in range(config.num_volumes):
            paths.append(simulate_volume(volume_path(out_dir, config.seed, i), config, i, bar))
    return paths
