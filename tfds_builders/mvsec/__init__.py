"""TFDS builder of MVSEC as released processed by E2Depth."""
