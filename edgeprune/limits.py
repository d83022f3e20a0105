"""Ranges shared by the recipe schema and the command line (kept import-light for the CLI)."""

SEED_MAX = 2**32 - 1   # NumPy's and TensorFlow's seeds are 32-bit unsigned integers
EPOCHS_MAX = 10_000    # a typo such as 1e9 epochs would otherwise run for ever
