"""Generate the sample checkpoints in ``sample_checkpoints/`` and their dense ground truth.

Run ``python -m tools.make_samples [OUT_DIR]`` (or :func:`tools.samples.generate.main`). Every file is
rebuilt from fixed seeds and is byte-identical from run to run; ``tests/test_samples_manifest.py`` checks that.

The math (docs/SPEC.md section 1): an operator gives ``nc_force``; the vector field is
``F(z) = nc_force(z) - (1 + c) z`` with Jacobian ``J_F = J_nc - (1 + c) I`` at the fixed point ``z*``, and
the Euler relaxation ``z <- z + eps F(z)`` has the forward map ``M = I + eps J_F``. The probed numbers are

* ``omega = lambda_max((J_F + J_F^T) / 2)`` (numerical abscissa),
* ``alpha = max Re lambda(J_F)`` (spectral abscissa) and ``alpha_imag`` (abs imag of that eigenvalue),
* ``rho = max |lambda(M)|`` with ``lead`` the eigenvalue of ``M`` that attains it (im >= 0) and
  ``mu_lead = (lead - 1) / eps``.

How each sample is designed. Every Jacobian is chosen first, then the weights are solved for, then the
bias is solved for so that ``z*`` is a fixed point by construction:

1. A quasi-upper-triangular (real Schur) matrix ``T`` carries the designed spectrum of ``J_F`` on its
   diagonal: 1x1 blocks ``a`` and 2x2 blocks ``[[a, q], [-q, a]]`` (eigenvalues ``a +- i q``), plus a
   strictly upper "coupling" part that adds non-normality without moving any eigenvalue.
2. ``J_F = Q T Q^T`` in a dense orthogonal basis ``Q = H D1 P H D2 / n`` (``H`` a Sylvester Hadamard
   matrix, ``D`` random signs, ``P`` a random permutation). ``Q`` is integer up to the factor ``1/n`` and
   ``T`` lives on a dyadic grid, so ``Q T Q^T`` is computed EXACTLY in float64: no BLAS summation order
   (which differs between CPUs) can change a bit of the output.
3. ``hopfield`` (``W act(z) + b``): ``J_nc = W diag(act'(z*))``, so ``W = J_nc diag(act'(z*))^-1`` and
   ``b = (1 + c) z* - W act(z*)``. ``rnn`` (``act(W z + b)``): ``J_nc = diag(act'(u*)) W`` with
   ``act(u*) = (1 + c) z*``, so ``W = diag(act'(u*))^-1 J_nc`` and ``b = u* - W z*``. ``linear``:
   ``A = J_nc`` and ``b = (1 + c) z* - A z*``. Activation values are chosen on a dyadic grid
   (``tanh(z*) = t``) so that ``act'(z*) = 1 - t^2`` is exact.
4. Matrix-vector products that feed a stored bias are summed with ``math.fsum`` (one rounding, no
   dependence on the BLAS) and scalar transcendental functions come from ``math`` (libm), not from
   numpy's CPU-dispatched SIMD loops. The safetensors files are written by hand with a fixed header order
   (the ``safetensors`` package serializes its metadata from a hash map, in a different order every run).

After writing, the script re-reads every file with ``safetensors.numpy``, rebuilds ``J_F`` densely with
numpy in float64 from the STORED tensors (independent of the ``spectral_probe`` package), computes the
numbers above with ``numpy.linalg`` and asserts that each sample sits inside its verdict region with a
margin of at least ``MARGIN`` (and that the leading eigenvalue is isolated where the verdict depends on
it). The truth goes to ``expected.json``.

Modules, one job each:

* :mod:`tools.samples.grid`: the constants and the deterministic building blocks (dyadic grid, Hadamard
  mixing basis, exact conjugation, designed Schur spectra, ``fsum`` dot products, libm functions);
* :mod:`tools.samples.files`: the deterministic safetensors writer, the metadata, the reader;
* :mod:`tools.samples.weights`: operator weights from a designed Jacobian (hopfield, rnn, linear);
* :mod:`tools.samples.truth`: the dense float64 truth from the stored tensors and the margin check;
* :mod:`tools.samples.sample`: the record of one generated file;
* :mod:`tools.samples.schur`: the Schur-designed samples, one per verdict;
* :mod:`tools.samples.closed_form`: the samples whose numbers are known in closed form (batched, 2-D);
* :mod:`tools.samples.plugin`: the user-plugin sample;
* :mod:`tools.samples.generate`: every sample written, checked and listed in ``expected.json``.
"""
