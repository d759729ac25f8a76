"""Memory: an audit of 500 small checkpoints stays flat (resident set measured in a subprocess).

The subprocess probes 500 real checkpoints (n = 64, the dense path) with the journal on, and samples
its resident set size after every checkpoint. Between the 100th and the 500th checkpoint it may grow
by the result records it keeps (a few KB each), not by what a probe allocates (the matrix alone is
32 KiB). A control run in the same process keeps 64 KiB per checkpoint on purpose, to show that the
measurement sees a leak of that size.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CHECKPOINTS = 500
#: Allowed growth of the resident set from the 100th to the last checkpoint.
FLAT_BYTES = 8 << 20

SCRIPT = r"""
import json, os, sys
from pathlib import Path
import torch
from safetensors.torch import save_file
from spectral_probe.audit import run_audit
from spectral_probe.config import ProbeOptions
from spectral_probe.probe import probe_checkpoint

folder, count, n = Path(sys.argv[1]), int(sys.argv[2]), 64
folder.mkdir(parents=True)
generator = torch.Generator().manual_seed(0)
for k in range(count):
    a = 0.3 * torch.randn(n, n, generator=generator, dtype=torch.float64) / n**0.5
    tensors = {"A": a, "z_star": torch.zeros(n, dtype=torch.float64)}
    save_file(tensors, str(folder / f"step_{k}.safetensors"), {"spectral_probe.operator": "linear"})
page = os.sysconf("SC_PAGE_SIZE")

def rss():
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * page

def sampled(keep):
    samples, kept = [], []
    def probe(path, options, *, warm=None, use_warm=True):
        out = probe_checkpoint(path, options, warm=warm, use_warm=use_warm)
        if keep:
            kept.append(bytearray(os.urandom(keep)))  # the control: a leak of `keep` bytes per checkpoint
        samples.append(rss())
        return out
    return samples, probe

samples, probe = sampled(0)
report = run_audit(str(folder), ProbeOptions(jsonl=str(folder.parent / "a.jsonl")), probe_fn=probe)
control, leaky = sampled(64 << 10)
run_audit(str(folder), ProbeOptions(), probe_fn=leaky)
print(json.dumps({"samples": samples, "control": control, "rows": len(report.results)}))
"""


@pytest.mark.skipif(not Path("/proc/self/statm").exists(), reason="needs /proc to read the resident set")
def test_an_audit_of_500_checkpoints_stays_flat(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(tmp_path / "run"), str(CHECKPOINTS)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert done.returncode == 0, done.stderr
    measured = json.loads(done.stdout.splitlines()[-1])
    assert measured["rows"] == CHECKPOINTS
    samples, control = measured["samples"], measured["control"]
    growth = max(samples[100:]) - samples[100]
    assert growth < FLAT_BYTES, f"grew {growth / 2**20:.1f} MiB over checkpoints 100..{CHECKPOINTS}"
    leaked = max(control[100:]) - control[100]
    assert leaked > FLAT_BYTES, f"the control leak of 25 MiB was seen as {leaked / 2**20:.1f} MiB"
