"""Event representations and time-window slicing."""

from dae_jax.events.representations import (
    binary_polarity,
    get_representation,
    histogram,
    histogram_from_voxels,
    tencode,
    tencode_from_voxels,
    voxel_grid,
    voxel_grid_from_voxels,
)
from dae_jax.events.slicing import dsec_window, nearest_index, normalize_timestamps, window_indices

__all__ = [
    "binary_polarity",
    "dsec_window",
    "get_representation",
    "histogram",
    "histogram_from_voxels",
    "nearest_index",
    "normalize_timestamps",
    "tencode",
    "tencode_from_voxels",
    "voxel_grid",
    "voxel_grid_from_voxels",
    "window_indices",
]
