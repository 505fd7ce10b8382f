"""Data: real MR ground-truth images, fastMRI-schema simulation, k-space readers/checks."""

from .images import MRSlice, fit_to_size, mr_images, source_slices
from .readers import (
    FastMRIFileInfo,
    check_kspace_array,
    check_maps_match,
    load_kspace,
    read_cfl,
    read_npy_kspace,
    sampling_mask_from_kspace,
    validate_fastmri_file,
    write_cfl,
)
from .simulate import (
    SimulatedSlice,
    SimulationConfig,
    coil_maps,
    simulate_dataset,
    simulate_slice,
    simulate_volume,
)
