"""``audit --shard K/N`` and ``merge``: N shards joined equal one audit, nothing lost or counted twice.

The partition is checked as a property (every file in exactly one shard, a file keeps its shard when
others come and go); the merge against a single audit of the same folder, first with the fake probe
(exact equality of results, errors, gate and trajectory), then end to end with N real processes of
the CLI, one of them killed mid-way and rerun with ``--resume``.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from safetensors.torch import save_file
from typer.testing import CliRunner

from spectral_probe.audit import run_audit
from spectral_probe.audit.discovery import Shard, parse_shard, shard_paths
from spectral_probe.audit.merge import merge_journals
from spectral_probe.cli import app
from spectral_probe.config import ProbeOptions
from spectral_probe.errors import UsageError
from spectral_probe.results import Report
from tests.test_audit import HOPF_FP, STABLE, fake_probe, write_fake

ROOT = Path(__file__).resolve().parent.parent
SHARDS = 4

# --------------------------------------------------------------------------------------------------
# The partition


@pytest.mark.parametrize(
    "text", ["4/4", "-1/4", "0/0", "1", "a/b", "1/2/3", "0/10000000", " ", "1.0/4", "\uff11/4", "0/\u0664"]
)
def test_a_bad_shard_is_a_usage_error(text: str) -> None:
    with pytest.raises(UsageError, match="--shard"):
        parse_shard(text)


def test_a_shard_counts_from_zero() -> None:
    assert parse_shard("0/4") == Shard(0, 4) and parse_shard("3/4") == Shard(3, 4) and parse_shard(None) is None


NAMES = st.lists(st.text(st.characters(blacklist_characters="\x00/"), min_size=1, max_size=12), unique=True)


@settings(max_examples=60, deadline=None)
@given(names=NAMES, extra=NAMES, count=st.integers(1, 9))
def test_every_file_is_in_exactly_one_shard_and_keeps_it(names: list[str], extra: list[str], count: int) -> None:
    paths = [f"runs/{name}.pt" for name in names]
    taken = [shard_paths(paths, "runs", Shard(k, count)) for k in range(count)]
    assert sorted(p for part in taken for p in part) == sorted(paths)  # a partition: none lost, none twice
    more = paths + [f"runs/{name}.pt" for name in extra if name not in names]
    for k in range(count):
        # Stable: files added to the folder never move a file to another shard.
        assert [p for p in shard_paths(more, "runs", Shard(k, count)) if p in paths] == taken[k]


def test_the_shard_of_a_file_depends_on_its_path_below_the_folder_only() -> None:
    here = shard_paths(["a/run/x.pt", "a/run/sub/y.pt"], "a/run", Shard(1, 3))
    there = shard_paths(["/abs/b/x.pt", "/abs/b/sub/y.pt"], "/abs/b", Shard(1, 3))
    assert [Path(p).name for p in here] == [Path(p).name for p in there]


# --------------------------------------------------------------------------------------------------
# Merge with the fake probe


@pytest.fixture
def run(tmp_path: Path) -> Path:
    """Twelve steps from stable to a Hopf crossing, a checkpoint with two fixed points, a corrupt file."""
    folder = tmp_path / "run"
    for k in range(12):
        write_fake(folder / f"step_{k}.safetensors", [STABLE if k < 8 else HOPF_FP])
    write_fake(folder / "sub" / "step_20.pt", [STABLE, HOPF_FP])
    (folder / "step_13.safetensors").write_bytes(b"\x00 corrupt")
    return folder


def essential(report: Report) -> dict[str, Any]:
    """What a sharded audit must reproduce: every row, every error, the gate, the trajectory."""
    out = report.to_dict()
    return {key: out.get(key) for key in ("results", "errors", "gate", "trajectory")}


def sharded(run: Path, tmp_path: Path, options: ProbeOptions, **changes: Any) -> list[str]:
    journals = []
    for k in range(SHARDS):
        journal = tmp_path / f"shard_{k}.jsonl"
        shard_options = ProbeOptions(**{**options.__dict__, "shard": f"{k}/{SHARDS}", "jsonl": str(journal)})
        run_audit(str(run), shard_options, probe_fn=fake_probe)
        journals.append(str(journal))
    return journals


def test_four_shards_merged_equal_one_audit(run: Path, tmp_path: Path) -> None:
    options = ProbeOptions(warm_start=False, max_rho=1.0)
    single = run_audit(str(run), options, probe_fn=fake_probe)
    journals = sharded(run, tmp_path, options)
    merged = merge_journals(journals, ProbeOptions(max_rho=1.0))
    assert essential(merged) == essential(single)
    assert merged.trajectory is not None and merged.trajectory["bifurcation"]["type"] == "hopf"
    assert merged.gate.exit_code == single.gate.exit_code == 2  # the corrupt file; the violation too
    assert merged.reproducibility["audit"]["shards"] == SHARDS
    assert sum(m["checkpoints"] for m in merged.reproducibility["audit"]["merged"]) == 14
    # The order of the journals on the command line does not matter.
    assert essential(merge_journals(journals[::-1], ProbeOptions(max_rho=1.0))) == essential(single)


def test_a_shard_rerun_adds_nothing_twice(run: Path, tmp_path: Path) -> None:
    options = ProbeOptions(warm_start=False)
    single = run_audit(str(run), options, probe_fn=fake_probe)
    journals = sharded(run, tmp_path, options)
    sharded(run, tmp_path, options)  # every shard run again, without --resume: each journal holds it twice
    assert essential(merge_journals(journals, ProbeOptions())) == essential(single)


def test_an_unfinished_shard_is_refused_until_it_is_resumed(run: Path, tmp_path: Path) -> None:
    options = ProbeOptions(warm_start=False)
    single = run_audit(str(run), options, probe_fn=fake_probe)
    journals = sharded(run, tmp_path, options)
    victim = next(Path(j) for j in journals if len(Path(j).read_text().splitlines()) > 2)
    lines = victim.read_text().splitlines(keepends=True)
    victim.write_text("".join(lines[:-1]) + lines[-1][:20])  # killed mid-line after its last-but-one line
    with pytest.raises(UsageError, match="unfinished.*rerun that shard with --resume"):
        merge_journals(journals, ProbeOptions())
    k = journals.index(str(victim))
    resumed = ProbeOptions(warm_start=False, shard=f"{k}/{SHARDS}", jsonl=str(victim), resume=True)
    report = run_audit(str(run), resumed, probe_fn=fake_probe)
    assert report.reproducibility["audit"]["resumed"] >= 1
    assert essential(merge_journals(journals, ProbeOptions())) == essential(single)


def test_a_shard_rerun_with_other_options_keeps_none_of_the_old_records(run: Path, tmp_path: Path) -> None:
    """Shard k done with --c 0, then rerun with --c 0.5 and killed after one record: its old records
    answer another question, so the merge must call it unfinished (it took the c = 0 rows as done)."""
    old = sharded(run, tmp_path, ProbeOptions(warm_start=False))
    (tmp_path / "new").mkdir()
    new = sharded(run, tmp_path / "new", ProbeOptions(warm_start=False, c=0.5))
    k = next(k for k, j in enumerate(new) if len(json.loads(Path(j).read_text().splitlines()[0])["checkpoints"]) > 1)
    header, first = Path(new[k]).read_text().splitlines(keepends=True)[:2]
    Path(new[k]).write_text(Path(old[k]).read_text() + header + first)
    with pytest.raises(UsageError, match="unfinished"):
        merge_journals(new, ProbeOptions())


def test_merge_refuses_a_missing_a_doubled_or_a_foreign_shard(run: Path, tmp_path: Path) -> None:
    journals = sharded(run, tmp_path, ProbeOptions(warm_start=False))
    with pytest.raises(UsageError, match=r"shard\(s\) 2/4 missing"):
        merge_journals(journals[:2] + journals[3:], ProbeOptions())
    with pytest.raises(UsageError, match="is also in"):
        merge_journals([*journals, journals[1]], ProbeOptions())
    other = tmp_path / "other"
    other.mkdir()
    foreign = sharded(run, other, ProbeOptions(warm_start=False, c=0.5))  # other numeric options
    with pytest.raises(UsageError, match="of another audit"):
        merge_journals(journals[:3] + foreign[3:], ProbeOptions())
    plain = tmp_path / "plain.jsonl"
    run_audit(str(run), ProbeOptions(jsonl=str(plain)), probe_fn=fake_probe)
    with pytest.raises(UsageError, match="no shard header"):
        merge_journals([*journals, str(plain)], ProbeOptions())
    with pytest.raises(UsageError, match="no such journal"):
        merge_journals([str(tmp_path / "missing.jsonl")], ProbeOptions())


def test_a_shard_needs_a_journal_and_may_be_empty(tmp_path: Path) -> None:
    folder = tmp_path / "one"
    write_fake(folder / "only.pt", [STABLE])
    with pytest.raises(UsageError, match="--shard needs --jsonl"):
        run_audit(str(folder), ProbeOptions(shard="0/2"), probe_fn=fake_probe)
    journals = []
    for k in range(3):  # one file, three shards: two of them are empty, and that is no error
        journal = tmp_path / f"s{k}.jsonl"
        run_audit(str(folder), ProbeOptions(shard=f"{k}/3", jsonl=str(journal)), probe_fn=fake_probe)
        journals.append(str(journal))
    merged = merge_journals(journals, ProbeOptions())
    assert [Path(r.checkpoint).name for r in merged.results] == ["only.pt"]


def test_a_shard_whose_header_would_pass_the_line_limit_is_refused_before_it_starts(
    run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A header longer than the journal's line limit could not be read back by ``--resume`` or ``merge``
    (the shard would be lost): the audit refuses before writing anything and names a shard count
    that fits. The limit is lowered here to what this folder's header passes (the real one is 16 MB)."""
    import spectral_probe.audit.shards as shards

    journal = tmp_path / "s0.jsonl"
    options = ProbeOptions(warm_start=False, shard="0/1", jsonl=str(journal))
    run_audit(
        str(run), ProbeOptions(**{**options.__dict__, "jsonl": str(tmp_path / "fits.jsonl")}), probe_fn=fake_probe
    )
    size = len((tmp_path / "fits.jsonl").read_bytes().splitlines()[0])
    monkeypatch.setattr(shards, "MAX_LINE", size // 2)
    with pytest.raises(
        UsageError, match=r"--shard 0/1: the shard's 14 checkpoints .* more shards \(--shard K/[34] or more\)"
    ):
        run_audit(str(run), options, probe_fn=fake_probe)
    assert not journal.exists() or journal.stat().st_size == 0


# --------------------------------------------------------------------------------------------------
# End to end: N processes of the CLI, one killed and resumed

SLOW_OPERATOR = """
import time

import torch


def factory(params, options):
    time.sleep(float(params["delay"]))  # slow enough for the test to kill a shard after its first line
    w = params["W"]
    return lambda z: w @ torch.tanh(z)
"""


def make_run(root: Path, count: int = 8) -> None:
    """W = 0.15 k I: z* = 0 is contractive below k = 7 and a saddle (rho = 1.05) at k = 7."""
    root.mkdir()
    for k in range(count):
        tensors = {"W": (0.15 * k) * torch.eye(4, dtype=torch.float64), "z_star": torch.zeros(4, dtype=torch.float64)}
        tensors["delay"] = torch.tensor(0.3 if k % 2 else 0.0)
        save_file(tensors, str(root / f"step_{k}.safetensors"))


def cli(tmp_path: Path, *args: str) -> subprocess.Popen:
    command = [sys.executable, "-m", "spectral_probe", *args]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    return subprocess.Popen(command, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def finish(process: subprocess.Popen) -> int:
    _, stderr = process.communicate(timeout=300)
    assert b"Traceback" not in stderr, stderr.decode()
    return process.returncode


def comparable(path: Path) -> dict[str, Any]:
    report = json.loads(path.read_text())
    for row in report["results"]:
        row.pop("seconds")  # wall time is the one field that differs between two runs
    return {key: report.get(key) for key in ("results", "errors", "gate", "trajectory")}


def records(journal: Path) -> list[tuple[str, int]]:
    lines = [json.loads(line) for line in journal.read_text().splitlines()]
    return [(line["checkpoint"], line["index"]) for line in lines if "verdict" in line]


def test_four_cli_shards_one_killed_and_resumed_merge_into_one_audit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    make_run(tmp_path / "run")
    (tmp_path / "slow.py").write_text(SLOW_OPERATOR)
    monkeypatch.chdir(tmp_path)
    common = ["--operator", "slow.py:factory", "--no-warm-start", "--quiet"]
    files = sorted(str(p.relative_to(tmp_path)) for p in (tmp_path / "run").glob("*.safetensors"))
    # The shard to kill: the one with the most checkpoints, so that it is killed with work left.
    victim = max(range(4), key=lambda k: len(shard_paths(files, "run", Shard(k, 4))))
    assert len(shard_paths(files, "run", Shard(victim, 4))) >= 2
    journals = [f"s{k}.jsonl" for k in range(4)]
    shards = [cli(tmp_path, "audit", "run", *common, "--shard", f"{k}/4", "--jsonl", journals[k]) for k in range(4)]

    journal = tmp_path / journals[victim]
    deadline = time.monotonic() + 300
    while not (journal.exists() and records(journal)):
        assert shards[victim].poll() is None and time.monotonic() < deadline, "the shard ended before it was killed"
        time.sleep(0.01)
    shards[victim].send_signal(signal.SIGKILL)
    shards[victim].communicate(timeout=60)
    assert [finish(p) for k, p in enumerate(shards) if k != victim] == [0, 0, 0]
    # The single audit, in this process (it probes the same files the same way).
    single = CliRunner().invoke(app, ["audit", "run", *common, "--max-rho", "1", "--json", "single.json"])
    assert single.exit_code == 1, single.output  # the saddle at step 7 violates the gate

    partial = CliRunner().invoke(app, ["merge", *journals, "--quiet"])
    assert partial.exit_code == 2 and "rerun that shard with --resume" in partial.output
    rerun = cli(tmp_path, "audit", "run", *common, "--shard", f"{victim}/4", "--jsonl", journals[victim], "--resume")
    assert finish(rerun) == 0
    assert len(records(journal)) == len(set(records(journal)))  # resumed: nothing probed twice
    merged = CliRunner().invoke(app, ["merge", *journals, "--max-rho", "1", "--json", "merged.json", "--quiet"])
    assert merged.exit_code == 1, merged.output
    assert comparable(tmp_path / "merged.json") == comparable(tmp_path / "single.json")
