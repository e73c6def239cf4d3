"""`cairn bench transactions` runs end to end with tiny sizes against the broker it starts:
the report names every measurement and the bars, and the JSON summary carries the numbers.
The bars themselves are not checked here (too small and too noisy to mean anything)."""

import json
import os
import subprocess

from cairn_harness import cairn_bin


def test_bench_transactions_reports_every_measurement():
    argv = [
        str(cairn_bin()),
        "bench",
        "transactions",
        "--bytes",
        "1MiB",
        "--batch-size",
        "16KiB",
        "--partitions",
        "2",
        "--commit-interval-ms",
        "1",
        "--repeat",
        "2",
        "--json",
    ]
    env = {**os.environ, "CAIRN_LOG": "warn", "NO_COLOR": "1"}
    proc = subprocess.run(
        argv, capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL, env=env
    )
    assert proc.returncode == 0, f"exit {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    out = proc.stdout
    for needle in [
        "run 1/2:",
        "run 2/2:",
        "produce  idempotent",
        "transactional",
        "ratio transactional/idempotent",
        "EndTxn   p50",
        "read_uncommitted",
        "ratio read_committed/read_uncommitted",
        "bar >= 0.95",
        "loadavg at start",
    ]:
        assert needle in out, f"{needle!r} missing from:\n{out}"

    summary = json.loads(out.strip().splitlines()[-1])
    assert summary["suite"] == "transactions"
    assert summary["bar"] == 0.95
    records = summary["config"]["records"]
    assert records == 1024, summary["config"]
    produce, consume, end_txn = summary["produce"], summary["consume"], summary["end_txn"]
    assert len(produce["transactional_runs"]) == len(produce["idempotent_runs"]) == 2
    for key in ["idempotent_mb_per_s", "transactional_mb_per_s", "ratio"]:
        assert produce[key] > 0, produce
    for key in ["read_uncommitted_mb_per_s", "read_committed_mb_per_s", "ratio"]:
        assert consume[key] > 0, consume
    assert isinstance(produce["met"], bool) and isinstance(consume["met"], bool)
    # A 1 ms commit interval means several transactions per run, each timed.
    for run in produce["transactional_runs"]:
        assert run["commits"] >= 2, run
        assert run["end_txn_p50_ms"] > 0 and run["end_txn_p99_ms"] >= run["end_txn_p50_ms"]
        assert run["add_partitions_calls"] == run["commits"], run
    for run in produce["idempotent_runs"]:
        assert run["commits"] == 0 and run["add_partitions_calls"] == 0, run
    assert end_txn["p50_ms"] > 0 and end_txn["p99_ms"] >= end_txn["p50_ms"]
