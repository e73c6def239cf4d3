"""Consumer groups (KIP-848) as operators see them: librdkafka consumers with
`group.protocol=consumer` against the real broker, checked through /api/groups, the group page
JSON and /metrics: the group's type, group and assignment epochs, each member's epoch, state,
current and target assignment, lag per partition against the committed offsets, and the epoch
bumps in the rebalance history with how long reconciliation took.
"""

import pytest
from confluent_kafka import Consumer, TopicPartition

import kutil
from cairn_harness import HttpBroker
from conftest import OUTPUT_DIR, _safe_name
from test_observability import get_json, metric, metric_lines, produce, wait_group, wait_until

REFRESH_MS = 200
PARTITIONS = 4
PER_PARTITION = 10


@pytest.fixture
def hbroker(request, tmp_path):
    b = HttpBroker(
        data_dir=tmp_path / "data",
        log_path=OUTPUT_DIR / f"{_safe_name(request.node.nodeid)}.log",
        options={
            "num.partitions": 3,
            "group.initial.rebalance.delay.ms": 0,
            "cairn.lag.refresh.ms": REFRESH_MS,
            # Members reconcile at their heartbeats: short ones keep the test short.
            "group.consumer.min.heartbeat.interval.ms": 100,
            "group.consumer.heartbeat.interval.ms": 300,
        },
    )
    b.start()
    wait_until(lambda: get_json(b, "/health")[0] == 200, 10, "/health 200")
    yield b
    b.stop()


def new_consumer(broker, group, client_id):
    return Consumer(
        kutil.base_conf(
            broker,
            **{
                "group.id": group,
                "group.protocol": "consumer",
                "client.id": client_id,
                "enable.auto.commit": False,
                "auto.offset.reset": "earliest",
                "enable.partition.eof": False,
            },
        )
    )


def owned(detail):
    """member id -> sorted partitions it owns, from the group page."""
    return {
        m["member_id"]: sorted(p for a in m["assignment"] for p in a["partitions"])
        for m in detail["member_list"]
    }


def reconciled(detail, members):
    """Every member stable at the assignment epoch, and every partition owned exactly once."""
    ms = detail["member_list"]
    if detail["state"] != "Stable" or len(ms) != members:
        return False
    if not all(
        m["member_state"] == "stable"
        and m["member_epoch"] == detail["assignment_epoch"]
        and m["assignment"] == m["target_assignment"]
        and not m["pending_assignment"]
        and not m["pending_revocation"]
        for m in ms
    ):
        return False
    parts = sorted(p for ps in owned(detail).values() for p in ps)
    return parts == list(range(PARTITIONS))


def test_consumer_group_in_api_and_metrics(hbroker):
    topic = kutil.unique_topic("cgv")
    group = kutil.unique_topic("cg")
    classic = kutil.unique_topic("classic")
    kutil.create_topic(hbroker, topic, partitions=PARTITIONS)
    produce(hbroker, topic, PER_PARTITION, PARTITIONS)

    # A commit-only group beside it stays classic.
    c0 = kutil.consumer(hbroker, **{"group.id": classic})
    c0.commit(offsets=[TopicPartition(topic, 0, 1)], asynchronous=False)
    c0.close()

    c1 = new_consumer(hbroker, group, "views-1")
    c2 = None
    try:
        c1.subscribe([topic])
        d = wait_group(hbroker, group, lambda d: reconciled(d, 1), timeout=30, consumers=[c1])
        assert d["type"] == "consumer" and d["protocol_type"] == "consumer"
        assert d["assignor"] == "uniform"
        assert d["group_epoch"] == d["generation"] == d["assignment_epoch"] >= 1
        assert d["leader"] is None
        m1 = d["member_list"][0]
        assert m1["client_id"] == "views-1"
        assert m1["subscribed_topics"] == [topic]
        assert owned(d) == {m1["member_id"]: list(range(PARTITIONS))}
        epoch1 = d["group_epoch"]

        # Commit as the member: p0 behind by 6, p1 caught up, p2 and p3 never committed.
        c1.commit(offsets=[TopicPartition(topic, 0, 4), TopicPartition(topic, 1, PER_PARTITION)], asynchronous=False)
        committed = {tp.partition: tp.offset for tp in c1.committed([TopicPartition(topic, p) for p in range(PARTITIONS)], timeout=10)}
        assert committed[0] == 4 and committed[1] == PER_PARTITION
        d = wait_group(hbroker, group, lambda d: d["total_lag"] == 6, consumers=[c1])
        ps = {p["partition"]: p for p in d["partition_list"]}
        assert sorted(ps) == list(range(PARTITIONS)), "assigned partitions are listed, committed or not"
        assert (ps[0]["committed_offset"], ps[0]["lag"]) == (4, 6)
        assert (ps[1]["committed_offset"], ps[1]["lag"]) == (PER_PARTITION, 0)
        assert ps[2]["committed_offset"] is None and ps[2]["lag"] is None
        assert all(p["owner"] == p["target_owner"] == m1["member_id"] for p in ps.values())
        assert d["uncommitted_partitions"] == 2

        # A second member: a new group epoch, half the partitions move once the first gives
        # them up; the history records the bump and its reconciliation.
        c2 = new_consumer(hbroker, group, "views-2")
        c2.subscribe([topic])
        d = wait_group(
            hbroker, group,
            lambda d: reconciled(d, 2) and d["group_epoch"] > epoch1,
            timeout=30, consumers=[c1, c2],
        )
        sizes = sorted(len(ps) for ps in owned(d).values())
        assert sizes == [2, 2], owned(d)
        epoch2 = d["group_epoch"]
        ps = {p["partition"]: p for p in d["partition_list"]}
        assert all(p["owner"] == p["target_owner"] for p in ps.values())
        assert {p["owner"] for p in ps.values()} == {m["member_id"] for m in d["member_list"]}

        d = wait_group(
            hbroker, group,
            lambda d: any(r["generation"] == epoch2 and r["outcome"] == "stable" for r in d["rebalances"]),
            consumers=[c1, c2],
        )
        bump = next(r for r in d["rebalances"] if r["generation"] == epoch2)
        assert bump["cause"] == "member_joined"
        assert bump["reconciliation_ms"] is not None and bump["reconciliation_ms"] >= 0
        assert bump["reconciliation_ms"] == bump["completing_ms"]
        assert bump["members_after"] == 2

        status, page = get_json(hbroker, "/api/groups")
        assert status == 200
        rows = {r["group"]: r for r in page["groups"]}
        assert rows[group]["type"] == "consumer"
        assert rows[group]["group_epoch"] == epoch2
        assert rows[classic]["type"] == "classic" and rows[classic]["group_epoch"] is None

        status, r = get_json(hbroker, f"/api/groups/{group}/rebalances")
        assert status == 200 and any(x["reconciliation_ms"] is not None for x in r["rebalances"])

        wait_until(
            lambda: metric(metric_lines(hbroker), "cairn_consumer_group_epoch", group=group) == epoch2,
            10, "the group epoch in /metrics",
        )
        lines = metric_lines(hbroker)
        assert metric(lines, "cairn_consumer_group_assignment_epoch", group=group) == epoch2
        assert metric(lines, "cairn_consumer_group_reconciling_partitions", group=group) == 0
        assert metric(lines, "cairn_group_generation", group=group) == epoch2
        assert metric(lines, "cairn_group_members", group=group) == 2
        assert metric(lines, "cairn_group_state", group=group, state="Stable") == 1
        assert metric(lines, "cairn_group_state", group=group, state="Reconciling") == 0
        assert metric(lines, "cairn_groups", type="consumer", state="Stable") >= 1
        assert metric(lines, "cairn_groups", type="classic", state="Empty") >= 1
        assert metric(lines, "kafka_consumergroup_group_lag", group=group, topic=topic, partition=0) == 6
        assert metric(lines, "kafka_consumergroup_group_sum_lag", group=group) == 6
        assert metric(lines, "cairn_group_partition_uncommitted", group=group, topic=topic, partition=2) == 1
        assert metric(lines, "cairn_group_rebalances_total", cause="member_joined") >= 2
        assert metric(lines, "cairn_consumer_group_epoch", group=classic) is None

        # The second member leaves: another bump, the first owns everything again.
        c2.close()
        c2 = None
        d = wait_group(
            hbroker, group,
            lambda d: reconciled(d, 1) and d["group_epoch"] > epoch2,
            timeout=30, consumers=[c1],
        )
        assert any(r["cause"] == "member_left" and r["generation"] == d["group_epoch"] for r in d["rebalances"])
    finally:
        if c2 is not None:
            c2.close()
        c1.close()

    # Everyone gone: Empty, with the lag kept and nobody consuming.
    d = wait_group(hbroker, group, lambda d: d["state"] == "Empty", timeout=20)
    assert d["type"] == "consumer" and d["members"] == 0
    assert d["total_lag"] == 6 and d["status"] == "stopped"
    wait_until(
        lambda: metric(metric_lines(hbroker), "cairn_group_state", group=group, state="Empty") == 1,
        10, "Empty in /metrics",
    )
