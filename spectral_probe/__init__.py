"""spectral-probe: matrix-free stability of the fixed points of dynamical neural models.

Importing this package must stay cheap (no torch): ``spectral-probe --help`` depends on it.
"""

__version__ = "0.1.0"
