"""The benchmark harness still runs end to end, on a tiny load.

Only completion, zero loss and the JSON report are checked here: speed is
reported by `python -m bench`, never asserted in tests (timings on a shared
CI machine mean nothing).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
SMOKE_ARGS = [
    "--clients", "200", "--hold-max", "200", "--duration", "0.5", "--rate", "100",
    "--broadcasts", "2", "--callers", "4", "--connect-concurrency", "50", "--pairs", "1", "--slice-seconds", "0.5",
]


@pytest.mark.timeout(240)
def test_harness_runs_both_targets_without_loss_and_writes_json(tmp_path):
    run = subprocess.run(
        [sys.executable, "-m", "bench", *SMOKE_ARGS, "--out", str(tmp_path)],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=220,
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert "ours/base" in run.stdout
    report = json.loads((tmp_path / "latest.json").read_text())
    for kind in ("ours", "baseline"):
        figures = report["results"][kind]
        for hold in ("hold_max", "hold"):
            assert figures[hold]["connected"] == 200 and figures[hold]["failures"] == 0
        for unicast in ("unicast_max", "unicast_fixed"):
            assert figures[unicast]["calls"] > 0
            assert figures[unicast]["call_errors"] == 0
            assert figures[unicast]["lost"] == 0
        assert figures["broadcast"]["deliveries"] == 2 * 200
        for row in ("hold_max", "hold", "unicast_max", "unicast_fixed", "broadcast"):
            assert figures[row]["load_collections"] == 0, row
        assert figures["broadcast"]["missing"] == 0
    assert {verdict["target"] for verdict in report["targets"]}
    for kind in ("ours", "baseline"):
        assert all(us > 0 for us in report["machine"]["host_write_us_by_target"][kind])
    assert "host speed, CPU us per loopback write" in run.stdout
    paired = report["paired_unicast"]
    assert [row["kind"] for row in paired["slices"]] == ["ours", "baseline"]
    assert paired["summary"]["lost"] == 0 and paired["summary"]["call_errors"] == 0
    assert "same spells (median of pairs)" in run.stdout and "ours/baseline per pair" in run.stdout


@pytest.mark.timeout(120)
def test_http_floor_runs_calls_and_holds_on_a_tiny_load():
    run = subprocess.run(
        [sys.executable, "-m", "bench.http_floor", "--duration", "0.5", "--clients", "50", "--connect-concurrency", "10"],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=100,
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert "us server CPU per call" in run.stdout
    assert "50 of 50 opened" in run.stdout


@pytest.mark.timeout(120)
def test_app_cost_calls_the_app_in_process_and_every_call_and_stream_is_answered():
    run = subprocess.run(
        [sys.executable, "-m", "bench.app_cost", "--calls", "200", "--connects", "100"],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=100,
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert "200 calls:" in run.stdout
    assert "100 streams:" in run.stdout


@pytest.mark.timeout(120)
def test_paired_unicast_alternates_both_targets_without_loss(tmp_path):
    run = subprocess.run(
        [sys.executable, "-m", "bench.paired_unicast", "--clients", "100", "--pairs", "2", "--slice-seconds", "0.5",
         "--callers", "4", "--connect-concurrency", "50", "--out", str(tmp_path)],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=100,
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    report = json.loads(next(tmp_path.glob("paired-*.json")).read_text())
    assert [row["kind"] for row in report["slices"]] == ["ours", "baseline", "baseline", "ours"]
    assert all(row["calls"] > 0 and row["call_errors"] == 0 and row["lost"] == 0 for row in report["slices"])
    assert len(report["summary"]["pair_ratios"]) == 2
    assert "ours/baseline per pair" in run.stdout
