"""`cairn bench groups --only consumer` runs end to end with small sizes and a short heartbeat
against the broker it starts: consumer-protocol members settle, the topic grows, and every member
reconciles at a new group epoch without being fenced, commits with its member epoch and leaves;
once with topic names, once with a regular expression the broker resolves. The time itself is only checked against a
loose bound (one heartbeat interval plus slack), since a test machine is noisy."""

import json
import os
import subprocess

import pytest

from cairn_harness import cairn_bin

HEARTBEAT_MS = 300


@pytest.mark.parametrize("regex", [False, True], ids=["names", "regex"])
def test_bench_groups_consumer_protocol_reconciles(regex):
    argv = [
        str(cairn_bin()),
        "bench",
        "groups",
        "--only",
        "consumer",
        "--consumer-members",
        "4",
        "--consumer-partitions",
        "4",
        "--consumer-added",
        "60",
        "--repeat",
        "2",
        "--broker-opt",
        f"group.consumer.heartbeat.interval.ms={HEARTBEAT_MS}",
        "--broker-opt",
        f"group.consumer.min.heartbeat.interval.ms={HEARTBEAT_MS}",
        "--json",
        *(["--consumer-regex"] if regex else []),
    ]
    env = {**os.environ, "CAIRN_LOG": "warn", "NO_COLOR": "1"}
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL, env=env)
    assert proc.returncode == 0, f"exit {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    out = proc.stdout
    for needle in ["consumer protocol (KIP-848)", "run 1/2:", "run 2/2:", "median:", "loadavg at start"]:
        assert needle in out, f"{needle!r} missing from:\n{out}"

    summary = json.loads(out.strip().splitlines()[-1])
    c = summary["consumer"]
    assert c["regex"] is regex
    assert (c["members"], c["partitions_before"], c["partitions_added"]) == (4, 4, 60)
    assert c["heartbeat_interval_ms"] == HEARTBEAT_MS
    assert len(c["runs"]) == 2
    for r in c["runs"]:
        assert r["group_epoch_after"] > r["group_epoch_before"] >= 1, r
        assert r["rejoins"] == 0, r
        assert r["first_assigned_ms"] is not None and r["first_assigned_ms"] <= r["reconciled_ms"], r
        assert r["reconciled_ms"] < HEARTBEAT_MS + 5000, r
