"""Consumer groups with kafka-python, and offsets shared between kafka-python and
librdkafka (each reads what the other committed)."""

import time

import pytest
from confluent_kafka import Consumer, TopicPartition
from kafka.errors import NoOffsetForPartitionError
from kafka.structs import OffsetAndMetadata
from kafka.structs import TopicPartition as KpTP

import kutil
from groups_util import (  # noqa: F401  (gbroker is a fixture)
    all_tps,
    committed,
    describe,
    gbroker,
    group_conf,
    produce_values,
    unique_group,
)

pytestmark = pytest.mark.timeout(150)


def kp_group_consumer(broker, group, topics=(), **extra):
    conf = dict(
        group_id=group,
        session_timeout_ms=6000,
        heartbeat_interval_ms=1000,
        max_poll_interval_ms=30000,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    conf.update(extra)
    c = kutil.kp_consumer(broker, **conf)
    if topics:
        c.subscribe(list(topics))
    return c


def kp_poll(consumers, until, timeout, what):
    """Poll kafka-python consumers round-robin; returns {consumer index: [records]}."""
    got = {i: [] for i in range(len(consumers))}
    deadline = time.monotonic() + timeout
    while not until(got):
        assert time.monotonic() < deadline, f"timed out after {timeout}s waiting for {what}: " + str(
            {i: len(v) for i, v in got.items()})
        for i, c in enumerate(consumers):
            for records in c.poll(timeout_ms=100).values():
                got[i].extend(records)
    return got


def test_kafka_python_group_consume_and_commit(gbroker):
    topic = kutil.create_topic(gbroker, kutil.unique_topic(), partitions=4)
    group = unique_group("kp")
    c1 = kp_group_consumer(gbroker, group, [topic])
    c2 = kp_group_consumer(gbroker, group, [topic])
    try:
        def both_assigned(_got):
            a1, a2 = c1.assignment(), c2.assignment()
            return len(a1) == 2 and len(a2) == 2 and not (a1 & a2)
        kp_poll([c1, c2], both_assigned, 60, "both kafka-python consumers to get 2 partitions")
        produced = produce_values(gbroker, topic, 10, 4)
        got = kp_poll([c1, c2], lambda g: len(g[0]) + len(g[1]) >= 40, 60, "40 records")
        recs = [(r.partition, r.offset, r.value) for v in got.values() for r in v]
        assert sorted(recs) == sorted(produced)
        for i, c in enumerate((c1, c2)):
            mine = {KpTP(topic, r.partition) for r in got[i]}
            assert mine == c.assignment()
            c.commit()
        for c in (c1, c2):
            for tp in c.assignment():
                assert c.committed(tp) == 10
        assert committed(gbroker, group, all_tps(topic, 4)) == {tp: 10 for tp in all_tps(topic, 4)}
        d = describe(gbroker, group)
        assert d.state.name == "STABLE" and len(d.members) == 2
        assert d.partition_assignor == "range"
    finally:
        c1.close()
        c2.close()
    # After both left, a new kafka-python member resumes from the commits: nothing to read.
    produce_values(gbroker, topic, 1, 4, prefix="late")
    c3 = kp_group_consumer(gbroker, group, [topic])
    try:
        got = kp_poll([c3], lambda g: len(g[0]) >= 4, 30, "the 4 new records")
        assert sorted((r.partition, r.offset) for r in got[0]) == [(p, 10) for p in range(4)]
    finally:
        c3.close()


def test_kafka_python_offset_reset_none_raises(gbroker):
    topic = kutil.create_topic(gbroker, kutil.unique_topic(), partitions=1)
    produce_values(gbroker, topic, 3, 1)
    c = kp_group_consumer(gbroker, unique_group("kpnone"), [topic], auto_offset_reset="none")
    try:
        with pytest.raises(NoOffsetForPartitionError):
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                c.poll(timeout_ms=200)
    finally:
        c.close()


def test_offsets_cross_kafka_python_and_librdkafka(gbroker):
    topic = kutil.create_topic(gbroker, kutil.unique_topic(), partitions=2)
    produce_values(gbroker, topic, 10, 2)
    g_kp, g_rd = unique_group("from-kp"), unique_group("from-rd")

    # kafka-python commits (manual assignment, no membership) -> librdkafka reads.
    kp = kp_group_consumer(gbroker, g_kp)
    try:
        kp.assign([KpTP(topic, 0), KpTP(topic, 1)])
        kp.commit({
            KpTP(topic, 0): OffsetAndMetadata(4, "kp-meta", -1),
            KpTP(topic, 1): OffsetAndMetadata(7, "", -1),
        })
        assert kp.committed(KpTP(topic, 0)) == 4
    finally:
        kp.close()
    rd = Consumer(group_conf(gbroker, g_kp))
    try:
        res = rd.committed([TopicPartition(topic, 0), TopicPartition(topic, 1)], timeout=10)
        assert [(tp.offset, tp.metadata, tp.error) for tp in res] == [(4, "kp-meta", None), (7, None, None)] \
            or [(tp.offset, tp.metadata, tp.error) for tp in res] == [(4, "kp-meta", None), (7, "", None)]
        rd.subscribe([topic])
        got = []
        deadline = time.monotonic() + 30
        while len(got) < 9 and time.monotonic() < deadline:
            m = rd.poll(0.1)
            if m is not None and not m.error():
                got.append((m.partition(), m.offset()))
        assert sorted(got) == [(0, o) for o in range(4, 10)] + [(1, o) for o in range(7, 10)]
    finally:
        rd.close()

    # librdkafka commits -> kafka-python reads and resumes.
    rd = Consumer(group_conf(gbroker, g_rd))
    try:
        res = rd.commit(offsets=[TopicPartition(topic, 0, 2, metadata="rd-meta"), TopicPartition(topic, 1, 8)],
                        asynchronous=False)
        assert all(tp.error is None for tp in res), res
    finally:
        rd.close()
    kp = kp_group_consumer(gbroker, g_rd, [topic])
    try:
        got = kp_poll([kp], lambda g: len(g[0]) >= 10, 30, "10 records from the librdkafka commits")
        assert sorted((r.partition, r.offset) for r in got[0]) == (
            [(0, o) for o in range(2, 10)] + [(1, o) for o in range(8, 10)])
        assert kp.committed(KpTP(topic, 0)) == 2
        # confluent-kafka sends its metadata string with the C terminator (client side).
        assert kp.committed(KpTP(topic, 0), metadata=True).metadata in ("rd-meta", "rd-meta\x00")
    finally:
        kp.close()


def test_kafka_python_admin_group_calls(gbroker):
    from kafka import KafkaAdminClient

    topic = kutil.create_topic(gbroker, kutil.unique_topic(), partitions=2)
    produce_values(gbroker, topic, 3, 2)
    live_g, empty_g = unique_group("kpa-live"), unique_group("kpa-empty")
    c = kp_group_consumer(gbroker, live_g, [topic], client_id="kp-live-client")
    e = kp_group_consumer(gbroker, empty_g)
    a = KafkaAdminClient(bootstrap_servers=gbroker.bootstrap, request_timeout_ms=15000)
    try:
        kp_poll([c], lambda g: len(g[0]) >= 6, 30, "6 records")
        c.commit()
        e.assign([KpTP(topic, 0)])
        e.commit({KpTP(topic, 0): OffsetAndMetadata(2, "", -1)})
        e.close()
        listed = dict(a.list_consumer_groups())
        assert listed.get(live_g) == "consumer"
        assert empty_g in listed
        # Without an authorizer the broker reports every operation a group supports, as Kafka
        # does (kafka-python decodes the bitfield and would refuse Kafka's "not computed").
        [desc] = a.describe_consumer_groups([live_g], include_authorized_operations=True)
        assert desc.group == live_g and desc.state == "Stable" and len(desc.members) == 1
        assert {"READ", "DESCRIBE", "DELETE"} <= set(desc.authorized_operations or []), desc
        offsets = a.list_consumer_group_offsets(live_g)
        assert {tp.partition: om.offset for tp, om in offsets.items()} == {0: 3, 1: 3}
        assert {tp.partition: om.offset for tp, om in a.list_consumer_group_offsets(empty_g).items()} == {0: 2}
        res = dict(a.delete_consumer_groups([empty_g]))
        assert res[empty_g].__name__ == "NoError", res
        assert a.list_consumer_group_offsets(empty_g) == {}
        res = dict(a.delete_consumer_groups([live_g]))
        assert res[live_g].__name__ == "NonEmptyGroupError", res
    finally:
        c.close()
        a.close()
