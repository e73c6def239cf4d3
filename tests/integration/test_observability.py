"""The broker's HTTP listener with real librdkafka groups: /health, /metrics, the JSON API.

Lag is checked against the truth the Kafka API gives (committed offsets, watermarks); never-
committed partitions, caught-up partitions, a group in the middle of a rebalance and a rebalance
storm in the history. Brokers here are started with `--http` on a free port.
"""

import json
import time
import urllib.error
import urllib.request

import pytest
from confluent_kafka import Consumer, TopicPartition

import kutil
from cairn_harness import HttpBroker
from conftest import OUTPUT_DIR, _safe_name

REFRESH_MS = 200


@pytest.fixture
def hbroker(request, tmp_path):
    b = HttpBroker(
        data_dir=tmp_path / "data",
        log_path=OUTPUT_DIR / f"{_safe_name(request.node.nodeid)}.log",
        options={
            "num.partitions": 3,
            "group.initial.rebalance.delay.ms": 0,
            "cairn.lag.refresh.ms": REFRESH_MS,
        },
    )
    b.start()
    wait_until(lambda: get(b, "/health")[0] == 200, 10, "/health 200")
    yield b
    b.stop()


def get(broker, path):
    try:
        with urllib.request.urlopen(broker.url(path), timeout=5) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()
    except OSError:
        return None, ""


def get_json(broker, path):
    status, body = get(broker, path)
    return status, (json.loads(body) if body else None)


def wait_until(cond, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def wait_group(broker, group, cond, timeout=15, consumers=()):
    """Polls /api/groups/{group} (and the consumers, to keep them alive) until cond(detail)."""
    seen = {}

    def check():
        for c in consumers:
            c.poll(0.05)
        status, body = get_json(broker, f"/api/groups/{group}")
        seen["last"] = body
        return status == 200 and cond(body)

    try:
        wait_until(check, timeout, f"group {group}")
    except AssertionError:
        raise AssertionError(f"group {group} never matched; last: {seen.get('last')}")
    return seen["last"]


def parts(detail):
    return {p["partition"]: p for p in detail["partition_list"]}


def metric_lines(broker):
    status, text = get(broker, "/metrics")
    assert status == 200
    return text.splitlines()


def metric(lines, name, **labels):
    want = ",".join(f'{k}="{v}"' for k, v in labels.items())
    prefix = f"{name}{{{want}}} " if labels else f"{name} "
    for line in lines:
        if line.startswith(prefix):
            return float(line[len(prefix):])
    return None


def consumer(broker, group, **extra):
    return kutil.consumer(
        broker,
        **{
            "group.id": group,
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            "session.timeout.ms": 6000,
            "heartbeat.interval.ms": 500,
            "enable.partition.eof": False,
            **extra,
        },
    )


def produce(broker, topic, per_partition, partitions):
    p = kutil.producer(broker)
    records = [(None, f"v{part}-{i}".encode(), part, None) for part in range(partitions) for i in range(per_partition)]
    kutil.assert_no_delivery_errors(kutil.produce_all(p, topic, records))


def test_health_topics_and_broker_metrics(hbroker):
    status, health = get_json(hbroker, "/health")
    assert status == 200
    assert health["serving"] and health["stores_loaded"] and health["lag_snapshot_ms"]

    topic = kutil.unique_topic("obs")
    kutil.create_topic(hbroker, topic, partitions=2)
    produce(hbroker, topic, 5, 2)
    c = consumer(hbroker, kutil.unique_topic("g"))
    kutil.consume_exact(c, [TopicPartition(topic, 0, 0)], 5)
    c.close()

    status, topics = get_json(hbroker, "/api/topics")
    assert status == 200
    t = next(t for t in topics["topics"] if t["topic"] == topic)
    assert [p["log_end_offset"] for p in t["partitions"]] == [5, 5]
    assert not t["internal"] and all(p["size_bytes"] > 0 for p in t["partitions"])

    # Partition offsets come from the lag snapshot, refreshed every REFRESH_MS.
    wait_until(
        lambda: metric(metric_lines(hbroker), "kafka_partition_latest_offset", topic=topic, partition=1) == 5,
        10,
        "partition offsets in /metrics",
    )
    lines = metric_lines(hbroker)
    assert metric(lines, "cairn_requests_total", api="Produce") >= 1
    assert metric(lines, "cairn_request_duration_seconds_count", api="Fetch") >= 1
    assert metric(lines, "cairn_topic_bytes_in_total", topic=topic) > 0
    assert metric(lines, "cairn_topic_bytes_out_total", topic=topic) > 0
    assert metric(lines, "cairn_connections_accepted_total") >= 2
    assert metric(lines, "kafka_partition_latest_offset", topic=topic, partition=1) == 5
    assert metric(lines, "kafka_partition_earliest_offset", topic=topic, partition=1) == 0
    assert lines[-1] == "# EOF"

    status, body = get_json(hbroker, "/api/groups/no-such-group")
    assert status == 404 and body["error"] == "unknown group"
    status, page = get(hbroker, "/")
    assert status == 200 and "<html" in page


def test_lag_matches_committed_and_end_offsets(hbroker):
    topic = kutil.unique_topic("lag")
    group = kutil.unique_topic("g")
    kutil.create_topic(hbroker, topic, partitions=3)
    produce(hbroker, topic, 10, 3)

    # Behind by 6 on p0, caught up on p1, p2 never committed.
    c = consumer(hbroker, group)
    c.commit(offsets=[TopicPartition(topic, 0, 4), TopicPartition(topic, 1, 10)], asynchronous=False)
    committed = {tp.partition: tp.offset for tp in c.committed([TopicPartition(topic, p) for p in range(3)], timeout=10)}
    ends = {p: kutil.watermarks(hbroker, topic, p)[1] for p in range(3)}
    c.close()

    g = wait_group(hbroker, group, lambda d: d["total_lag"] == 6)
    ps = parts(g)
    for p in (0, 1):
        assert ps[p]["committed_offset"] == committed[p]
        assert ps[p]["log_end_offset"] == ends[p]
        assert ps[p]["lag"] == ends[p] - committed[p]
    assert 2 not in ps, "a partition never committed nor assigned is not reported"
    assert ps[0]["lag_seconds"] > 0
    assert ps[1]["lag_seconds"] == 0
    assert g["state"] == "Empty" and g["members"] == 0
    assert g["max_lag"] == 6 and g["status"] == "stopped"

    status, page = get_json(hbroker, "/api/groups")
    assert status == 200
    row = next(r for r in page["groups"] if r["group"] == group)
    assert (row["total_lag"], row["max_lag"], row["uncommitted_partitions"]) == (6, 6, 0)

    lines = metric_lines(hbroker)
    assert metric(lines, "kafka_consumergroup_group_lag", group=group, topic=topic, partition=0) == 6
    assert metric(lines, "kafka_consumergroup_group_lag", group=group, topic=topic, partition=1) == 0
    assert metric(lines, "kafka_consumergroup_group_offset", group=group, topic=topic, partition=0) == 4
    assert metric(lines, "kafka_consumergroup_group_lag_seconds", group=group, topic=topic, partition=1) == 0
    assert metric(lines, "kafka_consumergroup_group_sum_lag", group=group) == 6
    assert metric(lines, "kafka_consumergroup_group_topic_sum_lag", group=group, topic=topic) == 6
    assert metric(lines, "cairn_group_status", group=group, status="stopped") == 1
    assert metric(lines, "kafka_consumergroup_group_lag", group=group, topic=topic, partition=2) is None
    assert metric(lines, "cairn_offset_commits_total") >= 2


def test_never_committed_then_mid_rebalance(hbroker):
    topic = kutil.unique_topic("reb")
    group = kutil.unique_topic("g")
    kutil.create_topic(hbroker, topic, partitions=3)
    produce(hbroker, topic, 4, 3)

    c1 = consumer(hbroker, group)
    c1.subscribe([topic])
    g = wait_group(hbroker, group, lambda d: d["state"] == "Stable" and len(d["partition_list"]) == 3, consumers=[c1])
    # Assigned, never committed: no lag invented.
    assert all(p["committed_offset"] is None and p["lag"] is None for p in g["partition_list"])
    assert g["uncommitted_partitions"] == 3 and g["total_lag"] == 0
    assert g["assignor"] and g["member_list"][0]["assignment"][0]["topic"] == topic
    lines = metric_lines(hbroker)
    assert metric(lines, "cairn_group_partition_uncommitted", group=group, topic=topic, partition=0) == 1
    assert metric(lines, "kafka_consumergroup_group_lag", group=group, topic=topic, partition=0) is None

    c1.commit(offsets=[TopicPartition(topic, 0, 1)], asynchronous=False)
    wait_group(hbroker, group, lambda d: d["total_lag"] == 3, consumers=[c1])

    # A second member joins while the first stops polling: the group waits in PreparingRebalance
    # for it, and its lag is still reported beside that state.
    c2 = consumer(hbroker, group)
    c2.subscribe([topic])
    g = wait_group(hbroker, group, lambda d: d["state"] in ("PreparingRebalance", "CompletingRebalance"), consumers=[c2])
    assert g["total_lag"] == 3 and parts(g)[0]["lag"] == 3
    assert len(g["partition_list"]) == 3
    lines = metric_lines(hbroker)
    assert metric(lines, "kafka_consumergroup_group_lag", group=group, topic=topic, partition=0) == 3
    assert metric(lines, "cairn_group_state", group=group, state=g["state"]) == 1
    status, hist = get_json(hbroker, f"/api/groups/{group}/rebalances")
    assert status == 200 and hist["rebalances"][-1]["outcome"] == "in_progress"

    g = wait_group(hbroker, group, lambda d: d["state"] == "Stable" and d["members"] == 2, consumers=[c1, c2])
    status, hist = get_json(hbroker, f"/api/groups/{group}/rebalances")
    last = hist["rebalances"][-1]
    assert last["outcome"] == "stable" and last["cause"] == "member_joined"
    assert last["generation"] == g["generation"] and last["members_after"] == 2
    assert last["preparing_ms"] is not None and last["total_ms"] >= last["preparing_ms"]
    c1.close()
    c2.close()


def test_rebalance_storm_in_history_and_metrics(hbroker):
    topic = kutil.unique_topic("storm")
    group = kutil.unique_topic("g")
    kutil.create_topic(hbroker, topic, partitions=3)
    stayer = consumer(hbroker, group)
    stayer.subscribe([topic])
    wait_group(hbroker, group, lambda d: d["state"] == "Stable", consumers=[stayer])
    for _ in range(3):
        extra = consumer(hbroker, group)
        extra.subscribe([topic])
        wait_group(hbroker, group, lambda d: d["state"] == "Stable" and d["members"] == 2, consumers=[stayer, extra])
        extra.close()  # LeaveGroup
        wait_group(hbroker, group, lambda d: d["state"] == "Stable" and d["members"] == 1, consumers=[stayer])

    status, hist = get_json(hbroker, f"/api/groups/{group}/rebalances")
    assert status == 200
    causes = [r["cause"] for r in hist["rebalances"]]
    assert causes.count("member_left") >= 3, causes
    assert causes.count("member_joined") >= 4, causes
    seqs = [r["seq"] for r in hist["rebalances"]]
    assert seqs == sorted(seqs)
    assert all(r["outcome"] in ("stable", "superseded") for r in hist["rebalances"])
    moved = [r["partitions_moved"] for r in hist["rebalances"] if r["outcome"] == "stable" and r["cause"] == "member_left"]
    assert moved and all(m is not None and m > 0 for m in moved), hist

    status, detail = get_json(hbroker, f"/api/groups/{group}")
    assert detail["rebalances"] == hist["rebalances"]
    lines = metric_lines(hbroker)
    assert metric(lines, "cairn_group_rebalances_total", cause="member_left") >= 3
    assert metric(lines, "cairn_group_rebalances_total", cause="member_joined") >= 4
    assert metric(lines, "cairn_group_rebalance_duration_seconds_count", phase="total") >= 7
    stayer.close()
