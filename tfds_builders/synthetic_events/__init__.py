"""TFDS builder of the procedural synthetic event world (no download)."""
