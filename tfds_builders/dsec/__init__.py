"""TFDS builder of the DSEC train release (the paper tests on its validation sequences)."""
