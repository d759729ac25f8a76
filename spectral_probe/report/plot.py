"""Pictures (``--plot PATH.png``), with matplotlib, an optional extra: ``pip install 'spectral-probe[plot]'``.

matplotlib is imported inside the functions (Agg backend, no display needed), so ``--help`` and every
run without ``--plot`` never import it. Both functions draw only what the records hold:

* :func:`plot_spectrum` (``scan``): the computed eigenvalues of ``M = I + eps J_F`` against the unit
  circle, and those of ``J_F`` against the imaginary axis with the disk ``|1 + eps mu| < 1`` of the
  current step; the leading eigenvalue of ``M``, the rightmost of ``J_F`` (``alpha``) and the one that
  sets ``eps_max`` are marked.
* :func:`plot_run` (``audit``): rho, alpha and omega over the checkpoints (by step where every
  checkpoint has one), the worst over each checkpoint's fixed points, with the crossings of
  ``rho = 1`` and ``alpha = 0`` marked.
"""

from __future__ import annotations

import importlib.util
import math
import os
from collections.abc import Sequence
from typing import Any

from spectral_probe.results import FixedPointResult

INSTALL_HINT = "--plot needs matplotlib: pip install 'spectral-probe[plot]' (or pip install matplotlib)"


def matplotlib_available() -> bool:
    """Whether matplotlib can be imported (checked without importing it; the CLI says INSTALL_HINT)."""
    return importlib.util.find_spec("matplotlib") is not None


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _hollow(
    ax: Any, x: float | None, y: float | None, marker: str, size: float, colour: str, label: str | None
) -> None:
    """One hollow marker at ``x + i y``, above the computed eigenvalues."""
    ax.scatter([x], [y], marker=marker, s=size, facecolor="none", edgecolor=colour, zorder=6, label=label)


def plot_spectrum(results: Sequence[FixedPointResult], path: str | os.PathLike[str]) -> None:
    """The eigenvalue picture of ``scan`` (one colour per fixed point) written to ``path`` (PNG)."""
    plt = _pyplot()
    fig, (ax_m, ax_j) = plt.subplots(1, 2, figsize=(11, 6))
    theta = [2 * math.pi * i / 400 for i in range(401)]
    ax_m.plot([math.cos(t) for t in theta], [math.sin(t) for t in theta], color="0.4", lw=1, label="|lambda| = 1")
    ax_j.axvline(0.0, color="0.4", lw=1, label="Re mu = 0")
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, r in enumerate(results):
        colour = colours[i % len(colours)]
        tag = f"#{r.index}" if len(results) > 1 else ""
        mu = [complex(re, im) for re, im in (r.eigenvalues_jf or [])]
        if r.alpha is not None and r.mu_lead_real is not None:
            mu += [complex(r.alpha, s * r.alpha_imag) for s in (1, -1)]
            mu += [complex(r.mu_lead_real, s * r.mu_lead_imag) for s in (1, -1)]
        lam = [1 + r.eps * m for m in mu]
        ax_m.scatter([v.real for v in lam], [v.imag for v in lam], s=12, color=colour, label=f"computed {tag}")
        ax_j.scatter([v.real for v in mu], [v.imag for v in mu], s=12, color=colour, label=f"computed {tag}")
        if i == 0:
            radius = 1 / r.eps  # |1 + eps mu| < 1 is the disk of centre -1/eps and radius 1/eps
            ax_j.plot(
                [-radius + radius * math.cos(t) for t in theta],
                [radius * math.sin(t) for t in theta],
                color="0.6",
                ls="--",
                lw=1,
                label=f"|1 + eps mu| = 1 (eps = {r.eps:g})",
            )
        if r.lead_real is not None:
            lead_label = "lead (largest |lambda|)" if i == 0 else None
            ax_m.scatter([r.lead_real], [r.lead_imag], marker="*", s=220, color="red", zorder=5, label=lead_label)
            ax_j.scatter([r.mu_lead_real], [r.mu_lead_imag], marker="*", s=220, color="red", zorder=5)
        if r.alpha is not None:
            _hollow(ax_j, r.alpha, r.alpha_imag, "D", 70, "black", "alpha (rightmost)" if i == 0 else None)
        if r.eps_max_mu_real is not None and r.eps_max:
            label = f"sets eps_max = {r.eps_max:.4g} {tag}" if len(results) <= 2 else None
            _hollow(ax_j, r.eps_max_mu_real, r.eps_max_mu_imag, "s", 90, "purple", label)
    first = results[0]
    ax_m.set_title(f"eigenvalues of M = I + eps J_F   (rho = {_num(first.rho)})")
    ax_j.set_title(f"eigenvalues of J_F   (alpha = {_num(first.alpha)})")
    for ax, name in ((ax_m, "lambda"), (ax_j, "mu")):
        ax.set_xlabel(f"Re {name}")
        ax.set_ylabel(f"Im {name}")
        ax.set_aspect("equal", adjustable="datalim")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(0.0, -0.14), ncol=3, frameon=False)
    fig.suptitle(f"{first.checkpoint}: {first.verdict}", fontsize=10)
    fig.tight_layout()
    _save(fig, path)
    plt.close(fig)


def plot_run(results: Sequence[FixedPointResult], path: str | os.PathLike[str]) -> None:
    """rho, alpha and omega over the checkpoints of an ``audit`` (in the order probed) to ``path``."""
    plt = _pyplot()
    points = _per_checkpoint(results)
    by_step = all(p["step"] is not None for p in points)
    xs = [p["step"] if by_step else i for i, p in enumerate(points)]
    fig, axes = plt.subplots(3, 1, figsize=(9, 8), sharex=True)
    for ax, (quantity, level) in zip(axes, (("rho", 1.0), ("alpha", 0.0), ("omega", 0.0)), strict=True):
        ys = [p[quantity] for p in points]
        ax.plot(xs, [math.nan if y is None else y for y in ys], marker="o", ms=3, lw=1.2)
        ax.axhline(level, color="0.4", lw=1, ls="--")
        ax.set_ylabel(quantity)
        ax.grid(alpha=0.3)
        if quantity != "omega":  # omega crossing 0 is no loss of stability (docs/SPEC.md section 1)
            for x in _crossings(xs, ys, level):
                for marked in axes:
                    marked.axvline(x, color="red", lw=1, alpha=0.6)
                ax.annotate(
                    f"{quantity} = {level:g}\nat {x:.4g}",
                    (x, level),
                    fontsize=7,
                    color="red",
                    xytext=(4, 4),
                    textcoords="offset points",
                )
    axes[-1].set_xlabel("step" if by_step else "checkpoint (order probed)")
    if not by_step:
        axes[-1].set_xticks(xs, [p["label"] for p in points], rotation=30, ha="right", fontsize=7)
    axes[0].set_title("spectral-probe audit: worst over the fixed points of each checkpoint")
    fig.tight_layout()
    _save(fig, path)
    plt.close(fig)


def _save(fig, path: str | os.PathLike[str]) -> None:
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig.savefig(os.fspath(path), dpi=110, format="png")  # exactly PATH: no ".png" appended


def _per_checkpoint(results: Sequence[FixedPointResult]) -> list[dict]:
    points: dict[str, dict] = {}
    for r in results:
        point = points.setdefault(
            r.checkpoint,
            {"step": r.step, "label": os.path.basename(r.checkpoint), "rho": None, "alpha": None, "omega": None},
        )
        for quantity in ("rho", "alpha", "omega"):
            value = getattr(r, quantity)
            if value is not None and math.isfinite(value):
                point[quantity] = value if point[quantity] is None else max(point[quantity], value)
    return list(points.values())


def _crossings(xs: Sequence[float], ys: Sequence[float | None], level: float) -> list[float]:
    """Where the piecewise-linear series crosses ``level`` (linear interpolation between points)."""
    out = []
    for (x0, y0), (x1, y1) in zip(zip(xs, ys, strict=True), zip(xs[1:], ys[1:], strict=True), strict=False):
        if y0 is None or y1 is None or (y0 - level) * (y1 - level) > 0 or y0 == y1:
            continue
        out.append(x0 + (level - y0) * (x1 - x0) / (y1 - y0))
    return out


def _num(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.6g}"
