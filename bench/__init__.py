"""The performance benchmark of ``spectral-probe`` against ARPACK, hessian-eigenthings and the dense path.

``make bench`` runs ``python -m bench.run --output BENCHMARKS.md``. Modules, one per concern:

* :mod:`bench.operators`: the benchmark problems (a non-normal ``hopfield`` with a fixed point by
  construction, a large ``conv`` operator) and their reference spectra;
* :mod:`bench.competitors`: every solver behind one record type (ours, SciPy ARPACK on the SAME torch
  matvec, hessian-eigenthings, the dense path), each counting jvp and vjp apart;
* :mod:`bench.measure`: medians of repeated runs, matvec timing, peak memory, true residual checks;
* :mod:`bench.worker`: everything measured on ONE problem, in its own subprocess;
* :mod:`bench.scenarios`: the batched probe, the start-up times and the ``--method auto`` crossover;
* :mod:`bench.report`: the generated ``BENCHMARKS.md`` (never edited by hand);
* :mod:`bench.markers`: each writer rewrites only its own ``<!-- NAME:start -->`` region of it;
* :mod:`bench.run`: the command line.

``python -m bench.full_scan`` (also in ``make bench``): the full trusted scan against three untrusted
runs of SLEPc, ARPACK and PRIMME (issue 12), and ``--method auto`` by interleaved repeats:

* :mod:`bench.full_scan`: the operators, our solvers alone, the full scan, the command line;
* :mod:`bench.product_kinds`: products counted and timed by kind (Krylov ``J v``, vjp, forward jvp);
* :mod:`bench.rivals`: ARPACK, PRIMME and SLEPc (in its own interpreter, :mod:`bench.slepc_worker`);
* :mod:`bench.auto_crossover`: dense / Krylov / auto, interleaved, around ``dense_max_n``;
* :mod:`bench.full_scan_report`: its own regions of ``BENCHMARKS.md`` (``full-scan``, ``method-auto``).

Two measurements print to the terminal instead (no region of ``BENCHMARKS.md``):

* :mod:`bench.solver_report` (``python -m bench.solver_report``): each eigensolver's accuracy against
  dense truth and its matvecs against ARPACK, on the traps (a Markdown table);
* :mod:`bench.warm_start_savings` (``python -m bench.warm_start_savings``): the matvecs warm starts save
  along a generated run crossing a Hopf bifurcation (:mod:`tools.make_trajectory`).
"""
