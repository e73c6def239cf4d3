"""`cairn groups history GROUP` against a broker's HTTP listener, after a small rebalance storm of
librdkafka consumers joining and leaving: the causes, generations and outcomes in the table and in
the JSON output, the JSON equal to the API's, and the errors (unknown group, no HTTP listener).
"""

import json
import os
import subprocess

import pytest

import kutil
from cairn_harness import cairn_bin, free_port
from conftest import OUTPUT_DIR, _safe_name
from test_observability import HttpBroker, consumer, get_json, wait_group, wait_until, get


@pytest.fixture
def hbroker(request, tmp_path):
    b = HttpBroker(
        data_dir=tmp_path / "data",
        log_path=OUTPUT_DIR / f"{_safe_name(request.node.nodeid)}.log",
        options={"num.partitions": 3, "group.initial.rebalance.delay.ms": 0, "cairn.lag.refresh.ms": 200},
    )
    b.start()
    wait_until(lambda: get(b, "/health")[0] == 200, 10, "/health 200")
    yield b
    b.stop()


def history(broker, *args, check=True):
    http = broker if isinstance(broker, str) else f"127.0.0.1:{broker.http_port}"
    argv = [str(cairn_bin()), "groups", "history", *args, "--http-server", http]
    proc = subprocess.run(
        argv,
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
        env={**os.environ, "CAIRN_LOG": "warn", "NO_COLOR": "1"},
    )
    if check:
        assert proc.returncode == 0, f"{argv}: exit {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    assert "panicked" not in proc.stderr, proc.stderr
    return proc


def test_history_after_a_rebalance_storm(hbroker):
    topic = kutil.unique_topic("hist")
    group = kutil.unique_topic("hist-g")
    kutil.create_topic(hbroker, topic, partitions=3)
    stayer = consumer(hbroker, group)
    stayer.subscribe([topic])
    wait_group(hbroker, group, lambda d: d["state"] == "Stable", consumers=[stayer])
    for _ in range(2):
        extra = consumer(hbroker, group)
        extra.subscribe([topic])
        wait_group(hbroker, group, lambda d: d["state"] == "Stable" and d["members"] == 2, consumers=[stayer, extra])
        extra.close()  # LeaveGroup
        wait_group(hbroker, group, lambda d: d["state"] == "Stable" and d["members"] == 1, consumers=[stayer])

    # JSON: what the API says, as is.
    proc = history(hbroker, group, "--output", "json")
    out = json.loads(proc.stdout)
    status, api = get_json(hbroker, f"/api/groups/{group}/rebalances")
    assert status == 200
    assert out["group"] == group
    assert [r["seq"] for r in out["rebalances"]] == [r["seq"] for r in api["rebalances"]]
    causes = [r["cause"] for r in out["rebalances"]]
    assert causes.count("member_joined") >= 3, causes
    assert causes.count("member_left") >= 2, causes

    # The table: one row per rebalance with its cause, generations and outcome.
    proc = history(hbroker, group)
    lines = proc.stdout.splitlines()
    header = lines[0].split()
    assert header[:3] == ["SEQ", "STARTED", "(UTC)"], lines[0]
    for col in ("CAUSE", "MEMBER/TOPIC", "GEN", "PREPARING-MS", "COMPLETING-MS", "MOVED", "MEMBERS", "OUTCOME"):
        assert col in header, lines[0]
    rows = [line.split() for line in lines[1:]]
    assert len(rows) == len(api["rebalances"]), proc.stdout
    for row, r in zip(rows, api["rebalances"]):
        # SEQ, date, time, CAUSE, MEMBER/TOPIC, GEN, PREPARING, COMPLETING, MOVED, MEMBERS, OUTCOME
        assert len(row) == 11, row
        assert row[0] == str(r["seq"])
        assert row[3] == r["cause"]
        assert row[4] == (r["cause_detail"] or "-")
        assert row[5] == f"{r['from_generation']}->{'-' if r['generation'] is None else r['generation']}"
        assert row[10] == r["outcome"]
    assert {row[3] for row in rows} >= {"member_joined", "member_left"}
    left = [row for row in rows if row[3] == "member_left" and row[10] == "stable"]
    assert left and all(row[8] != "-" and int(row[8]) > 0 for row in left), proc.stdout
    stayer.close()


def test_history_errors(hbroker):
    proc = history(hbroker, "no-such-group", check=False)
    assert proc.returncode != 0
    assert "unknown group 'no-such-group'" in proc.stderr, proc.stderr

    # Nothing listens there: the message names the option to fix.
    proc = history(f"127.0.0.1:{free_port()}", "anything", check=False)
    assert proc.returncode != 0
    assert "--http-server" in proc.stderr, proc.stderr

    # The Kafka port is not an HTTP listener either.
    proc = history(hbroker.bootstrap, "anything", "--connect-timeout-ms", "2000", check=False)
    assert proc.returncode != 0
    assert proc.stderr.strip(), proc.stderr


def test_history_of_a_group_without_rebalances(hbroker):
    # A simple group (commits only) has no generations, so no rebalances.
    topic = kutil.unique_topic("hist-simple")
    group = kutil.unique_topic("hist-simple-g")
    kutil.create_topic(hbroker, topic, partitions=1)
    c = consumer(hbroker, group)
    from confluent_kafka import TopicPartition

    c.commit(offsets=[TopicPartition(topic, 0, 0)], asynchronous=False)
    c.close()
    wait_until(lambda: get(hbroker, f"/api/groups/{group}")[0] == 200, 10, "the group in the snapshot")
    proc = history(hbroker, group)
    assert proc.stdout == ""
    assert "no recorded rebalances" in proc.stderr
    out = json.loads(history(hbroker, group, "--output", "json").stdout)
    assert out == {"group": group, "rebalances": []}
