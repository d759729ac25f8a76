"""Regenerate the sample checkpoints: ``python -m tools.make_samples [OUT_DIR]`` (default ``sample_checkpoints/``).

The generator and its design are in :mod:`tools.samples`; ``tests/test_samples_manifest.py`` re-runs it
into a temporary folder and compares every file byte for byte.
"""

from __future__ import annotations

import sys
from pathlib import Path

from tools.samples.generate import DEFAULT_OUT, main, single_threaded_blas

__all__ = ["DEFAULT_OUT", "main", "single_threaded_blas"]


def _cli() -> None:
    """Write the samples into ``argv[1]`` (default ``sample_checkpoints/``) and print their numbers."""
    result = main(Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT_OUT)
    for fname, info in result["samples"].items():
        for r in info["results"]:
            print(
                f"{fname:30s} [{r['index']}] omega={r['omega']:+.4f} alpha={r['alpha']:+.4f} "
                f"rho={r['rho']:.4f} lead={r['lead_real']:+.4f}{r['lead_imag']:+.4f}i "
                f"resid={r['residual_norm']:.1e} -> {r['verdict']}"
            )


if __name__ == "__main__":
    _cli()
