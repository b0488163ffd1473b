"""Embedded default dataset: a seeded procedural street, ray-cast RGB + metric depth, ESIM events."""

from .esim import EventSimulator, concatenate_events, log_intensity, simulate_events
from .generate import generate_dataset, generate_sequence, sequence_seed, to_srgb8
from .render import Camera, Renderer, Trajectory, luminance, render_frame
from .scene import Box, Ground, Scene, Sphere, Texture, make_scene

__all__ = [
    "Box",
    "Camera",
    "EventSimulator",
    "Ground",
    "Renderer",
    "Scene",
    "Sphere",
    "Texture",
    "Trajectory",
    "concatenate_events",
    "generate_dataset",
    "generate_sequence",
    "log_intensity",
    "luminance",
    "make_scene",
    "render_frame",
    "sequence_seed",
    "simulate_events",
    "to_srgb8",
]
