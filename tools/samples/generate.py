"""Every sample written, checked against its dense truth and listed in ``expected.json``."""

from __future__ import annotations

import contextlib
import ctypes
import json
import math
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from .closed_form import batched, closed_form_2d
from .files import probe_metadata, write_safetensors
from .grid import BAND, COMPLEX_TOL, MARGIN, MAX_BYTES
from .plugin import plugin_example
from .sample import Sample
from .schur import contractive, flip, hopf, neimark_sacker, saddle, stable_nonnormal
from .truth import assert_region, spectral_numbers, truth_of_file

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_OUT = REPO_ROOT / "sample_checkpoints"
#: The numbers a designed spectrum fixes (compared with the dense truth of the stored file).
DESIGN_KEYS = ("alpha", "alpha_imag", "rho", "lead_real", "lead_imag")

SAMPLES: tuple[Callable[[], Sample], ...] = (
    contractive,
    stable_nonnormal,
    hopf,
    saddle,
    flip,
    neimark_sacker,
    batched,
    plugin_example,
    closed_form_2d,
)


@contextlib.contextmanager
def single_threaded_blas() -> Iterator[None]:
    """Run dense LAPACK single-threaded, then restore the previous thread count.

    On a couple of shared cores a threaded OpenBLAS ``dgeev`` of n = 512 is several times SLOWER than a
    single-threaded one (oversubscription). This is what ``threadpoolctl`` does; it is used when present,
    otherwise the OpenBLAS libraries already loaded in the process are asked through ctypes. Best effort:
    it never fails, it only leaves the thread count alone.
    """
    try:
        from threadpoolctl import threadpool_limits  # type: ignore[import-not-found]
    except ImportError:
        threadpool_limits = None
    if threadpool_limits is not None:
        with threadpool_limits(limits=1, user_api="blas"):
            yield
        return
    restore: list[tuple[Any, int]] = []
    try:
        maps = Path("/proc/self/maps").read_text()
    except OSError:
        maps = ""
    libs = sorted({ln.split()[-1] for ln in maps.splitlines() if "openblas" in ln.rsplit("/", 1)[-1]})
    for lib_path in libs:
        try:
            lib = ctypes.CDLL(lib_path)
        except OSError:
            continue
        for prefix in ("scipy_openblas", "openblas"):
            for suffix in ("64_", ""):
                getter = getattr(lib, f"{prefix}_get_num_threads{suffix}", None)
                setter = getattr(lib, f"{prefix}_set_num_threads{suffix}", None)
                if getter is not None and setter is not None:
                    restore.append((setter, int(getter())))
                    setter(1)
                    break
            else:
                continue
            break
    try:
        yield
    finally:
        for setter, count in restore:
            setter(count)


def _clean(value: Any) -> Any:
    """JSON-safe copy (numpy scalars to Python, inf to None)."""
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _write_and_check(sample: Sample, out_dir: Path) -> tuple[int, list[dict[str, Any]], dict[str, Any] | None]:
    """Write ``sample`` and check it from the stored file: ``(bytes, dense truth rows, design numbers)``.

    Every row must sit inside its verdict region with ``MARGIN`` and be a fixed point (``||F|| / ||z*||
    <= 1e-6``); a Schur-designed sample must reproduce the eigenvalues built into it.
    """
    path = out_dir / sample.name
    path.parent.mkdir(parents=True, exist_ok=True)
    write_safetensors(path, sample.tensors, probe_metadata(sample.operator, sample.c, sample.eps, sample.options))
    size = path.stat().st_size
    assert size <= MAX_BYTES, (sample.name, size)
    rows = truth_of_file(path, sample.truth_operator)
    assert len(rows) == len(sample.verdicts), sample.name
    for row, expected in zip(rows, sample.verdicts, strict=True):
        assert_region(row, expected, sample.name)
        rel = row["residual_rel"]
        assert (rel if rel is not None else row["residual_norm"]) <= 1e-6, (sample.name, row)
    if sample.extra_checks is not None:
        sample.extra_checks(rows)
    if sample.design_eigs is None:
        return size, rows, None
    design = spectral_numbers(sample.design_eigs, sample.eps)
    # rounding W to float32 moves these well-conditioned eigenvalues by < 1e-6 (seen: 3e-7)
    tol = 1e-5 if sample.tensors["z_star"].dtype == np.float32 else 1e-9
    for key in DESIGN_KEYS:
        assert abs(rows[0][key] - design[key]) <= tol, (sample.name, key, rows[0][key], design[key])
    return size, rows, design


def _entry(sample: Sample, size: int, rows: list[dict[str, Any]], design: dict[str, Any] | None) -> dict[str, Any]:
    """The manifest entry of one sample (JSON-safe)."""
    z = sample.tensors["z_star"]
    entry = {
        "description": sample.description,
        "operator": sample.operator,
        "operator_arg": sample.manifest_extra.get("operator_arg"),
        "options": sample.options,
        "c": sample.c,
        "eps": sample.eps,
        "n": int(z.shape[-1]),
        "batch": int(z.shape[0]) if z.ndim == 2 else None,
        "dtype": str(z.dtype),
        "bytes": size,
        "expected_verdicts": sample.verdicts,
        "results": rows,
    }
    if design is not None:
        entry["design"] = {
            "note": "numbers of the eigenvalues built into the Schur form, before storage rounding",
            **{k: design[k] for k in DESIGN_KEYS},
        }
    entry.update({k: v for k, v in sample.manifest_extra.items() if k != "operator_arg"})
    return _clean(entry)


def main(out_dir: Path = DEFAULT_OUT) -> dict[str, Any]:
    """Write every sample and ``expected.json`` into ``out_dir``; return the manifest."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    manifest: dict[str, Any] = {
        "version": 1,
        "generator": "python -m tools.make_samples",
        "band": BAND,
        "margin": MARGIN,
        "complex_rule": f"lead is complex iff |Im lead| > {COMPLEX_TOL} * max(1, rho)",
        "truth": "numpy.linalg float64 dense, from the stored tensors (independent of spectral_probe)",
        "samples": {},
    }
    with single_threaded_blas():
        for build in SAMPLES:
            sample = build()
            manifest["samples"][sample.name] = _entry(sample, *_write_and_check(sample, out_dir))
    (out_dir / "expected.json").write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest
