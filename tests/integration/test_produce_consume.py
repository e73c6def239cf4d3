"""Produce/consume round trips: keys, partitions, order, dense offsets, acks, headers."""

from collections import defaultdict

import pytest
from confluent_kafka import TopicPartition
from kafka.partitioner.default import murmur2
from kafka.structs import TopicPartition as KpTopicPartition

import kutil


def java_partition(key, partitions):
    """The Java client's (and librdkafka murmur2_random's) partition for a key."""
    return (murmur2(key) & 0x7FFFFFFF) % partitions


def test_keyed_roundtrip_order_and_dense_offsets(broker):
    topic = kutil.create_topic(broker, kutil.unique_topic(), partitions=4)
    keys = [f"key-{i}".encode() for i in range(12)]
    records = [(keys[i % len(keys)], f"value-{i}".encode(), None, None) for i in range(600)]

    p = kutil.producer(broker, **{"partitioner": "murmur2_random", "acks": "all"})
    log = kutil.produce_all(p, topic, records)
    kutil.assert_no_delivery_errors(log)
    assert len(log.acked) == len(records)

    # Keyed records land in the partition the key hashes to, always the same one.
    by_key = defaultdict(set)
    for part, _off, key, _val, _ts in log.acked:
        by_key[key].add(part)
    for key, parts in by_key.items():
        assert parts == {java_partition(key, 4)}, f"key {key!r} landed in {parts}"

    # Offsets are dense from 0 in every partition and follow production order.
    per_part = defaultdict(list)
    for part, off, key, val, _ts in log.acked:
        per_part[part].append((off, key, val))
    assert len(per_part) >= 2, "expected the keys to spread over several partitions"
    for part, entries in per_part.items():
        offsets = [o for o, _, _ in entries]
        assert offsets == list(range(len(entries))), f"partition {part} offsets {offsets[:20]}..."

    # Consume every partition from the beginning: same keys, values, offsets, order.
    for part, entries in per_part.items():
        msgs = kutil.read_partition(broker, topic, part)
        got = [(m.offset(), m.key(), m.value()) for m in msgs]
        assert got == entries, f"partition {part} differs"
        assert kutil.watermarks(broker, topic, part) == (0, len(entries))
    for part in set(range(4)) - set(per_part):
        assert kutil.watermarks(broker, topic, part) == (0, 0)


def test_explicit_partitions_headers_null_key_and_value(broker):
    topic = kutil.create_topic(broker, kutil.unique_topic(), partitions=3)
    p = kutil.producer(broker)
    log = kutil.DeliveryLog()
    p.produce(topic, value=b"v0", partition=2, on_delivery=log)
    p.produce(topic, key=b"k1", value=None, partition=2, on_delivery=log)  # null value (tombstone)
    p.produce(topic, key=b"", value=b"", partition=2, on_delivery=log)  # empty, not null
    p.produce(
        topic,
        key=b"k3",
        value=b"v3",
        partition=2,
        headers=[("h1", b"a"), ("h2", None), ("h1", b"b")],
        on_delivery=log,
    )
    assert p.flush(30) == 0
    kutil.assert_no_delivery_errors(log)
    assert [(pt, off) for pt, off, *_ in log.acked] == [(2, 0), (2, 1), (2, 2), (2, 3)]

    msgs = kutil.read_partition(broker, topic, 2)
    assert [(m.offset(), m.key(), m.value()) for m in msgs] == [
        (0, None, b"v0"),
        (1, b"k1", None),
        (2, b"", b""),
        (3, b"k3", b"v3"),
    ]
    assert msgs[3].headers() == [("h1", b"a"), ("h2", None), ("h1", b"b")]
    assert msgs[0].headers() is None
    for part in (0, 1):
        assert kutil.watermarks(broker, topic, part) == (0, 0)


@pytest.mark.parametrize("acks", ["0", "1", "all"])
def test_acks_modes(broker, acks):
    topic = kutil.create_topic(broker, kutil.unique_topic(), partitions=2)
    n = 200
    records = [(None, f"m{i}".encode(), i % 2, None) for i in range(n)]
    p = kutil.producer(broker, acks=acks)
    log = kutil.produce_all(p, topic, records)
    kutil.assert_no_delivery_errors(log)
    assert len(log.acked) == n
    if acks != "0":
        offsets = sorted((pt, off) for pt, off, *_ in log.acked)
        assert offsets == sorted([(0, i) for i in range(n // 2)] + [(1, i) for i in range(n // 2)])
    # acks=0 gets no offsets back; the records must still all be there, in order.
    for part in (0, 1):
        assert kutil.watermarks(broker, topic, part) == (0, n // 2)
        msgs = kutil.read_partition(broker, topic, part)
        assert [m.value() for m in msgs] == [f"m{i}".encode() for i in range(part, n, 2)]
        assert [m.offset() for m in msgs] == list(range(n // 2))


def test_kafka_python_roundtrip(broker):
    topic = kutil.create_topic(broker, kutil.unique_topic(), partitions=4)
    p = kutil.kp_producer(broker, acks="all")
    futures = []
    for i in range(300):
        key = f"user-{i % 7}".encode()
        futures.append((key, f"payload-{i}".encode(), p.send(topic, key=key, value=f"payload-{i}".encode())))
    p.flush(timeout=30)
    per_part = defaultdict(list)
    for key, value, fut in futures:
        md = fut.get(timeout=30)
        assert md.partition == java_partition(key, 4)
        per_part[md.partition].append((md.offset, key, value))
    p.close(timeout=10)
    for part, entries in per_part.items():
        assert [o for o, _, _ in entries] == list(range(len(entries)))

    c = kutil.kp_consumer(broker)
    try:
        tps = [KpTopicPartition(topic, part) for part in range(4)]
        c.assign(tps)
        c.seek_to_beginning()
        recs = kutil.kp_consume_exact(c, 300)
        got = defaultdict(list)
        for r in recs:
            got[r.partition].append((r.offset, r.key, r.value))
        assert dict(got) == dict(per_part)
        assert c.end_offsets(tps) == {tp: len(per_part.get(tp.partition, [])) for tp in tps}
        assert c.beginning_offsets(tps) == {tp: 0 for tp in tps}
    finally:
        c.close()


def test_cross_client_confluent_to_kafka_python_and_back(broker):
    topic = kutil.create_topic(broker, kutil.unique_topic(), partitions=1)
    p = kutil.producer(broker)
    log = kutil.produce_all(p, topic, [(b"a", b"from-librdkafka", 0, 1234567)])
    kutil.assert_no_delivery_errors(log)
    kp = kutil.kp_producer(broker)
    md = kp.send(topic, key=b"b", value=b"from-kafka-python", partition=0, timestamp_ms=7654321).get(timeout=30)
    kp.close(timeout=10)
    assert (md.partition, md.offset) == (0, 1)

    c = kutil.kp_consumer(broker)
    try:
        c.assign([KpTopicPartition(topic, 0)])
        c.seek_to_beginning()
        recs = kutil.kp_consume_exact(c, 2)
        assert [(r.offset, r.key, r.value, r.timestamp) for r in recs] == [
            (0, b"a", b"from-librdkafka", 1234567),
            (1, b"b", b"from-kafka-python", 7654321),
        ]
    finally:
        c.close()
    msgs = kutil.read_partition(broker, topic, 0)
    assert [(m.offset(), m.value(), m.timestamp()[1]) for m in msgs] == [
        (0, b"from-librdkafka", 1234567),
        (1, b"from-kafka-python", 7654321),
    ]


def test_consume_from_middle_offset(broker):
    topic = kutil.create_topic(broker, kutil.unique_topic(), partitions=1)
    p = kutil.producer(broker)
    log = kutil.produce_all(p, topic, [(None, f"r{i}".encode(), 0, None) for i in range(50)])
    kutil.assert_no_delivery_errors(log)
    c = kutil.consumer(broker)
    try:
        msgs = kutil.consume_exact(c, [TopicPartition(topic, 0, 37)], 13)
        assert [m.offset() for m in msgs] == list(range(37, 50))
        assert [m.value() for m in msgs] == [f"r{i}".encode() for i in range(37, 50)]
        assert kutil.consume_nothing_more(c, 0.5) == []
    finally:
        c.close()


def test_sigterm_then_restart_keeps_data(broker):
    topic = kutil.create_topic(broker, kutil.unique_topic(), partitions=2)
    p = kutil.producer(broker)
    log = kutil.produce_all(p, topic, [(None, f"x{i}".encode(), i % 2, None) for i in range(100)])
    kutil.assert_no_delivery_errors(log)
    code = broker.stop()
    assert code in (0, -15), f"broker exit code after SIGTERM: {code}"
    broker.start()
    for part in (0, 1):
        msgs = kutil.read_partition(broker, topic, part)
        assert [m.value() for m in msgs] == [f"x{i}".encode() for i in range(part, 100, 2)]
    # Appends continue at the next offset after restart.
    log2 = kutil.produce_all(kutil.producer(broker), topic, [(None, b"after", 0, None)])
    kutil.assert_no_delivery_errors(log2)
    assert [(pt, off) for pt, off, *_ in log2.acked] == [(0, 50)]
