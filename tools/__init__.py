"""Developer tools beside the package (not installed with it): what builds the committed data and what the docs quote.

* :mod:`tools.make_samples` (``python -m tools.make_samples``): the sample checkpoints of
  ``sample_checkpoints/`` and their dense truth ``expected.json``, built by :mod:`tools.samples`;
* :mod:`tools.make_trajectory` (``python -m tools.make_trajectory OUT_DIR``): a synthetic training run whose
  fixed point loses stability through a Hopf bifurcation (the audit's trajectory tests, docs/ci.md);
* :mod:`tools.why_exact` (``python -m tools.why_exact``): the fixed-subspace Rayleigh-Ritz gradient
  against the exact eigenvalue derivative (quoted by docs/your-model.md).

Measurements (speed, matvecs, accuracy against rivals) live in ``bench/``.
"""
