"""Analyses beyond omega, alpha and rho (issue 11), each from matvecs only.

* :mod:`~spectral_probe.analysis.transient`: ``||M||_2``, lower bounds on ``max_k ||M^k||_2`` and on
  ``sup_t ||exp(t J_F)||_2``, the ``transient`` flag;
* :mod:`~spectral_probe.analysis.margins`: ``c_crit``, ``eps_max`` and the margins of the current ``c``
  and ``eps``;
* :mod:`~spectral_probe.analysis.modes`: the leading eigenvectors of ``M`` and ``Sym(J_F)``;
* :mod:`~spectral_probe.analysis.run`: runs the requested ones for the probe and fills the result fields.

Every function here takes a :class:`~spectral_probe.jacobian.JacobianOperators` (or its matvecs) and
the public solvers of :mod:`spectral_probe.linalg`; none forms a matrix except where it says "dense".
"""
