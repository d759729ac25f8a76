"""Price of the issue-11 analyses (margins, transient growth, modes) on the bundled samples.

Writes only its own region of BENCHMARKS.md (``<!-- beyond:start -->`` .. ``<!-- beyond:end -->``):

    OMP_NUM_THREADS=1 PYTHONPATH=. python -m bench.beyond            # all samples (a few minutes)
    OMP_NUM_THREADS=1 PYTHONPATH=. python -m bench.beyond --print    # print, write nothing

Matvecs are per fixed point, from ``matvecs_by_kind`` (the probe counts them); seconds are wall-clock
of one run, single-threaded, so read them as a ratio to the probe alone, not as absolute numbers.
"""

from __future__ import annotations

import argparse
import platform
import time
from pathlib import Path

import torch

from bench.markers import write_region
from spectral_probe.config import ProbeOptions
from spectral_probe.probe import probe_checkpoint

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ("contractive", "stable_nonnormal", "hopf", "saddle", "flip", "neimark_sacker", "closed_form_2d")
CONFIGS = {
    "probe only (default)": {},
    "+ margins": {"margins": True},
    "+ modes": {"modes": True},
    "+ transient": {"transient": True},
}


def measure(sample: str, method: str) -> list[str]:
    rows = []
    base_matvecs = base_seconds = None
    for label, extra in CONFIGS.items():
        options = ProbeOptions(method=method, **extra)
        started = time.perf_counter()
        result = probe_checkpoint(str(ROOT / "sample_checkpoints" / f"{sample}.safetensors"), options).results[0]
        seconds = time.perf_counter() - started
        kinds = result.matvecs_by_kind
        own = sum(kinds.get(k, 0) for k in ("margins", "transient", "modes"))
        if base_matvecs is None:
            base_matvecs, base_seconds = result.matvecs, seconds
        rows.append(
            f"| {sample} (n {result.n}) | {method} | {label} | {result.matvecs} | {own} | "
            f"{result.matvecs / base_matvecs:.2f} | {seconds:.2f} | {seconds / base_seconds:.2f} |"
        )
    return rows


def report() -> str:
    lines = [
        "## Beyond the three numbers: what the analyses cost (bench/beyond.py)",
        "",
        f"torch {torch.__version__}, {platform.machine()}, 1 thread, float64 unless the sample is float32. "
        "`own` = matvecs of the analyses (`matvecs_by_kind` margins + transient + modes); the ratios are "
        "to the probe alone. All three run on request only (docs/beyond.md).",
        "",
        "| sample | path | analyses | matvecs | own | x probe | seconds | x probe |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for sample in SAMPLES:
        for method in ("dense", "krylov"):
            lines += measure(sample, method)
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--print", action="store_true", help="print the table, write nothing")
    args = parser.parse_args()
    torch.set_num_threads(1)
    text = report()
    print(text)
    if not args.print:
        write_region(ROOT / "BENCHMARKS.md", "beyond", text)


if __name__ == "__main__":
    main()
