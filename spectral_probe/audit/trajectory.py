"""The training-trajectory view of an audit (``Report.trajectory``): series, sparklines, bifurcation.

Per-checkpoint series of rho, alpha and omega in audit order, and the first loss of stability,
classified from the leading eigenvalue on both sides of the crossing.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from spectral_probe.audit.outcome import Outcome
from spectral_probe.report.sparkline import sparkline
from spectral_probe.verdict import (
    CONTRACTIVE,
    FLIP,
    HOPF,
    INCONCLUSIVE,
    MARGINAL,
    NEIMARK_SACKER,
    SADDLE,
    STABLE,
    UNSTABLE,
    record_is_complex,
)

#: A trajectory view needs at least this many probed checkpoints to say anything about a trend.
MIN_TRAJECTORY = 3


def _finite(value: float | None) -> bool:
    return value is not None and math.isfinite(value)


def _worst(values: Sequence[float | None]) -> float | None:
    finite = [v for v in values if _finite(v)]
    return max(finite) if finite else None


def _safe(value: Any) -> Any:
    # The trajectory goes into the JSON report, which refuses NaN (allow_nan=False).
    return value if not isinstance(value, float) or math.isfinite(value) else None


def _label(path: str, directory: str | os.PathLike[str]) -> str:
    """The checkpoint as a person names it: its path below the audited folder, without the suffix."""
    try:
        relative = Path(path).relative_to(Path(directory))
    except ValueError:
        relative = Path(path)
    return relative.with_suffix("").as_posix()


def _point(index: int, outcome: Outcome, directory: str | os.PathLike[str]) -> dict[str, Any]:
    """One checkpoint of the series: the worst over its fixed points.

    rho, alpha and omega are each the largest over the fixed points; the leading eigenvalue and the
    verdict are those of the fixed point with the largest rho (the one a bifurcation is read from),
    except that any inconclusive fixed point makes the checkpoint inconclusive.
    """
    results = outcome.results
    with_rho = [r for r in results if _finite(r.rho)]
    worst = max(with_rho, key=lambda r: r.rho) if with_rho else results[0]
    verdict = INCONCLUSIVE if any(r.verdict == INCONCLUSIVE for r in results) else worst.verdict
    step = results[0].step
    label = _label(outcome.path, directory)
    if step is not None and str(step) not in label:
        label += f" (step {step})"
    return {
        "index": index,
        "step": step,
        "checkpoint": outcome.path,
        "label": label,
        "fixed_points": len(results),
        "rho": _safe(_worst([r.rho for r in results])),
        "alpha": _safe(_worst([r.alpha for r in results])),
        "omega": _safe(_worst([r.omega for r in results])),
        "verdict": verdict,
        "lead_real": _safe(worst.lead_real),
        "lead_imag": _safe(worst.lead_imag),
        "mu_lead_real": _safe(worst.mu_lead_real),
        "lead_is_complex": worst.lead_is_complex,
    }


def build_trajectory(outcomes: Sequence[Outcome], directory: str | os.PathLike[str]) -> dict[str, Any] | None:
    """The trajectory view over the probed checkpoints in order, or None below three of them.

    Checkpoints that could not be read have no numbers and are left out of the series (they are in
    the report's errors).
    """
    points = [_point(i, o, directory) for i, o in enumerate(o for o in outcomes if o.results)]
    if len(points) < MIN_TRAJECTORY:
        return None
    by_step = all(p["step"] is not None for p in points)
    numbered = all(re.search(r"\d", Path(o.path).stem) for o in outcomes if o.results)
    if not (by_step or numbered):  # a folder of unrelated checkpoints is no training run
        return None
    quantities = ("rho", "alpha", "omega")
    ranges = {}
    for q in quantities:
        finite = [p[q] for p in points if _finite(p[q])]
        ranges[q] = [min(finite), max(finite)] if finite else None
    return {
        "x": "step" if by_step else "index",
        "series": points,
        "sparklines": {q: sparkline([p[q] for p in points]) for q in quantities},
        "ranges": ranges,
        "transitions": _transitions(points),
        "bifurcation": _first_bifurcation(points, by_step),
    }


_STABLE_SIDE = frozenset({CONTRACTIVE, STABLE, MARGINAL})


def _transitions(points: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every change of verdict between consecutive checkpoints (for the JSON; the view shows the first)."""
    changes = []
    for before, after in zip(points, points[1:], strict=False):
        if before["verdict"] != after["verdict"]:
            changes.append({"from": before["verdict"], "to": after["verdict"], "at": after["label"]})
    return changes


def _is_complex(point: dict[str, Any]) -> bool:
    """Whether the leading eigenvalue is one of a complex pair, as the probe decided it (the one rule,
    :func:`spectral_probe.verdict.record_is_complex`; the verdict where that is ambiguous)."""
    decided = record_is_complex(point)
    if decided is not None:
        return decided
    return point["verdict"] in (HOPF, NEIMARK_SACKER)


def _first_bifurcation(points: Sequence[dict[str, Any]], by_step: bool) -> dict[str, Any] | None:
    """The first crossing from stable/contractive/marginal to unstable, classified.

    As continuation software (MatCont, AUTO) classifies a loss of stability of the map ``M``: by
    which eigenvalues left the unit circle between the two checkpoints and where. Only the leading
    eigenvalue is known on each side, so the count of unstable eigenvalues goes from 0 to 2 for a
    complex pair and from 0 to 1 for a real one:

    * a complex pair with ``Re(mu) > 0``: ``hopf`` (the continuous flow itself lost stability);
    * a complex pair with ``Re(mu) <= 0``: ``neimark-sacker`` (the step ``eps`` is too large);
    * a real eigenvalue through ``+1``: ``saddle`` (fold or branch point);
    * a real eigenvalue through ``-1``: ``flip`` (period doubling).

    Inconclusive checkpoints are skipped: a crossing is only claimed between two trusted verdicts.
    """
    before = None
    for point in points:
        if point["verdict"] == INCONCLUSIVE:
            continue
        if before is not None and before["verdict"] in _STABLE_SIDE and point["verdict"] in UNSTABLE:
            return _classify_crossing(before, point, by_step)
        before = point
    return None


def _classify_crossing(before: dict[str, Any], after: dict[str, Any], by_step: bool) -> dict[str, Any]:
    complex_before, complex_after = _is_complex(before), _is_complex(after)
    if complex_after:
        kind = HOPF if (after["mu_lead_real"] or 0.0) > 0 else NEIMARK_SACKER
    else:
        kind = SADDLE if (after["lead_real"] or 0.0) > 0 else FLIP
    rho0, rho1 = before["rho"], after["rho"]
    x0, x1 = (before["step"], after["step"]) if by_step else (before["index"], after["index"])
    crossing = None
    if _finite(rho0) and _finite(rho1) and rho1 > rho0:
        # Linear interpolation of rho to 1: where between the two checkpoints the crossing happened.
        fraction = min(1.0, max(0.0, (1.0 - rho0) / (rho1 - rho0)))
        crossing = x0 + fraction * (x1 - x0)
    notes = []
    if complex_after and not complex_before:
        notes.append("the leading eigenvalue was real before: two real eigenvalues met and left as a pair")
    if complex_before and not complex_after:
        notes.append("the leading eigenvalue was complex before: a pair met on the real axis, then crossed")
    if kind != after["verdict"]:
        notes.append(f"the checkpoint's own verdict is {after['verdict']}")
    rho_text = _pair_text(rho0, rho1)
    summary = f"{kind} between {before['label']} and {after['label']} (rho {rho_text})"
    out: dict[str, Any] = {
        "type": kind,
        "before": before["label"],
        "after": after["label"],
        "checkpoint_before": before["checkpoint"],
        "checkpoint_after": after["checkpoint"],
        "step_before": before["step"],
        "step_after": after["step"],
        "index_before": before["index"],
        "index_after": after["index"],
        "rho_before": rho0,
        "rho_after": rho1,
        "lead_before": [before["lead_real"], before["lead_imag"]],
        "lead_after": [after["lead_real"], after["lead_imag"]],
        "mu_lead_real_after": after["mu_lead_real"],
        "unstable_count_change": [0, 2 if complex_after else 1],
        "complex_lead": [complex_before, complex_after],
        f"estimated_{'step' if by_step else 'index'}": _safe(crossing),
        "notes": notes,
        "summary": summary,
    }
    if complex_after and _finite(after["lead_real"]) and _finite(after["lead_imag"]):
        # The rotation per relaxation step at the crossing: the oscillation a user will see.
        out["angle"] = math.atan2(after["lead_imag"], after["lead_real"])
    return out


def _pair_text(a: float | None, b: float | None) -> str:
    """``0.998 -> 1.004``, with as many digits as it takes to show the two differ."""
    if not (_finite(a) and _finite(b)):
        return f"{a} -> {b}"
    assert a is not None and b is not None
    for digits in range(4, 10):
        left, right = f"{a:.{digits}g}", f"{b:.{digits}g}"
        if left != right:
            break
    return f"{left} -> {right}"
