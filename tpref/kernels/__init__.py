"""Fast twins of the NumPy reference (Numba), each tested by equality with it."""
