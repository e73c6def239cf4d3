"""Record handling: compression, large messages, LogAppendTime, fetch long-poll."""

import threading
import time

import pytest
from confluent_kafka import KafkaError, TopicPartition
from confluent_kafka import TIMESTAMP_CREATE_TIME, TIMESTAMP_LOG_APPEND_TIME
from kafka.structs import TopicPartition as KpTopicPartition

import kutil

CODECS = ["gzip", "snappy", "lz4", "zstd"]


def compressible_values(n, tag):
    return [(f"{tag}-{i:05d}-" + "abcdefghij" * (5 + i % 40)).encode() for i in range(n)]


@pytest.mark.parametrize("codec", CODECS)
def test_compression_confluent_producer(broker, codec):
    topic = kutil.create_topic(broker, kutil.unique_topic(codec), partitions=2)
    values = compressible_values(300, codec)
    p = kutil.producer(broker, **{"compression.type": codec, "linger.ms": 50, "acks": "all"})
    log = kutil.produce_all(p, topic, [(f"k{i}".encode(), v, i % 2, None) for i, v in enumerate(values)])
    kutil.assert_no_delivery_errors(log)
    assert sorted((pt, off) for pt, off, *_ in log.acked) == sorted(
        [(0, i) for i in range(150)] + [(1, i) for i in range(150)]
    )

    # confluent-kafka consumer
    for part in (0, 1):
        msgs = kutil.read_partition(broker, topic, part)
        assert [m.value() for m in msgs] == values[part::2]
        assert [m.key() for m in msgs] == [f"k{i}".encode() for i in range(part, 300, 2)]
        assert [m.offset() for m in msgs] == list(range(150))

    # kafka-python consumer (decompresses with its own codecs)
    c = kutil.kp_consumer(broker)
    try:
        c.assign([KpTopicPartition(topic, 0), KpTopicPartition(topic, 1)])
        c.seek_to_beginning()
        recs = kutil.kp_consume_exact(c, 300)
        for part in (0, 1):
            got = [(r.offset, r.value) for r in recs if r.partition == part]
            assert got == list(enumerate(values[part::2]))
    finally:
        c.close()


@pytest.mark.parametrize("codec", CODECS)
def test_compression_kafka_python_producer(broker, codec):
    topic = kutil.create_topic(broker, kutil.unique_topic(codec), partitions=1)
    values = compressible_values(200, codec)
    p = kutil.kp_producer(broker, compression_type=codec, linger_ms=50, acks="all")
    futs = [p.send(topic, key=b"k", value=v, partition=0) for v in values]
    p.flush(timeout=30)
    offsets = [f.get(timeout=30).offset for f in futs]
    p.close(timeout=10)
    assert offsets == list(range(200))
    msgs = kutil.read_partition(broker, topic, 0)
    assert [m.value() for m in msgs] == values
    c = kutil.kp_consumer(broker)
    try:
        c.assign([KpTopicPartition(topic, 0)])
        c.seek_to_beginning()
        recs = kutil.kp_consume_exact(c, 200)
        assert [r.value for r in recs] == values
    finally:
        c.close()


def test_mixed_compression_in_one_partition(broker):
    topic = kutil.create_topic(broker, kutil.unique_topic("mixed"), partitions=1)
    expected = []
    for codec in ["none"] + CODECS + ["none"]:
        values = compressible_values(20, codec)
        p = kutil.producer(broker, **{"compression.type": codec, "linger.ms": 20})
        kutil.assert_no_delivery_errors(kutil.produce_all(p, topic, [(None, v, 0, None) for v in values]))
        expected += values
    msgs = kutil.read_partition(broker, topic, 0)
    assert [m.value() for m in msgs] == expected
    assert [m.offset() for m in msgs] == list(range(len(expected)))


def test_large_message_within_default_limit(broker):
    topic = kutil.create_topic(broker, kutil.unique_topic("big"), partitions=1)
    value = bytes(range(256)) * (900 * 1024 // 256)  # 900 KiB, incompressible pattern is fine
    assert len(value) == 900 * 1024
    p = kutil.producer(broker, **{"message.max.bytes": 2_000_000})
    log = kutil.produce_all(p, topic, [(b"big", value, 0, None), (b"small", b"s", 0, None)])
    kutil.assert_no_delivery_errors(log)
    assert [off for _p, off, *_ in log.acked] == [0, 1]
    msgs = kutil.read_partition(broker, topic, 0)
    assert len(msgs[0].value()) == len(value) and msgs[0].value() == value
    assert msgs[1].value() == b"s"

    c = kutil.kp_consumer(broker)
    try:
        c.assign([KpTopicPartition(topic, 0)])
        c.seek_to_beginning()
        recs = kutil.kp_consume_exact(c, 2)
        assert recs[0].value == value
    finally:
        c.close()


def test_message_over_broker_message_max_bytes_rejected(broker_factory):
    b = broker_factory({"num.partitions": 1, "message.max.bytes": 100_000})
    topic = kutil.create_topic(b, kutil.unique_topic("toolarge"), partitions=1)
    # The client allows it, so the broker must reject it.
    p = kutil.producer(b, **{"message.max.bytes": 10_000_000, "linger.ms": 0})
    log = kutil.produce_all(p, topic, [(None, b"x" * 200_000, 0, None)])
    assert not log.acked
    assert [e.code() for e, *_ in log.errors] == [KafkaError.MSG_SIZE_TOO_LARGE], str(log.errors)
    # The partition is untouched and still accepts normal records.
    assert kutil.watermarks(b, topic, 0) == (0, 0)
    log = kutil.produce_all(p, topic, [(None, b"ok", 0, None)])
    kutil.assert_no_delivery_errors(log)
    assert [off for _p, off, *_ in log.acked] == [0]


def test_message_over_topic_max_message_bytes_rejected(broker):
    topic = kutil.create_topic(
        broker, kutil.unique_topic("toolarge"), partitions=1, config={"max.message.bytes": "50000"}
    )
    p = kutil.producer(broker, **{"message.max.bytes": 10_000_000, "linger.ms": 0})
    log = kutil.produce_all(p, topic, [(None, b"y" * 60_000, 0, None)])
    assert [e.code() for e, *_ in log.errors] == [KafkaError.MSG_SIZE_TOO_LARGE], str(log.errors)
    log = kutil.produce_all(p, topic, [(None, b"y" * 40_000, 0, None)])
    kutil.assert_no_delivery_errors(log)
    assert [off for _p, off, *_ in log.acked] == [0]


def test_log_append_time_topic(broker):
    topic = kutil.create_topic(
        broker, kutil.unique_topic("lat"), partitions=1, config={"message.timestamp.type": "LogAppendTime"}
    )
    before = int(time.time() * 1000)
    p = kutil.producer(broker)
    log = kutil.produce_all(p, topic, [(None, f"v{i}".encode(), 0, 1000 + i) for i in range(5)])
    after = int(time.time() * 1000)
    kutil.assert_no_delivery_errors(log)

    msgs = kutil.read_partition(broker, topic, 0)
    assert len(msgs) == 5
    for m in msgs:
        ts_type, ts = m.timestamp()
        assert ts_type == TIMESTAMP_LOG_APPEND_TIME, f"timestamp type {ts_type}"
        assert before - 1000 <= ts <= after + 1000, f"broker time {ts} not in [{before}, {after}]"

    c = kutil.kp_consumer(broker)
    try:
        c.assign([KpTopicPartition(topic, 0)])
        c.seek_to_beginning()
        recs = kutil.kp_consume_exact(c, 5)
        for r in recs:
            assert r.timestamp_type == 1
            assert before - 1000 <= r.timestamp <= after + 1000
    finally:
        c.close()


def test_create_time_topic_keeps_client_timestamps(broker):
    topic = kutil.create_topic(broker, kutil.unique_topic("ct"), partitions=1)
    p = kutil.producer(broker)
    kutil.assert_no_delivery_errors(kutil.produce_all(p, topic, [(None, b"v", 0, 1_600_000_000_123)]))
    (m,) = kutil.read_partition(broker, topic, 0)
    assert m.timestamp() == (TIMESTAMP_CREATE_TIME, 1_600_000_000_123)


def _produce_later(broker, topic, delay_s, out):
    time.sleep(delay_s)
    p = kutil.producer(broker, **{"linger.ms": 0})
    log = kutil.produce_all(p, topic, [(None, b"late", 0, None)])
    out["acked_at"] = time.monotonic()
    out["log"] = log


def test_fetch_long_poll_delivers_promptly(broker):
    """A consumer blocked in a long fetch (max wait 10 s) gets a new record right away."""
    topic = kutil.create_topic(broker, kutil.unique_topic("lp"), partitions=1)
    c = kutil.consumer(broker, **{"fetch.wait.max.ms": 10000, "fetch.min.bytes": 1})
    try:
        c.assign([TopicPartition(topic, 0, 0)])
        assert kutil.consume_nothing_more(c, 2.0) == []  # fetches are now parked on the broker
        out = {}
        t = threading.Thread(target=_produce_later, args=(broker, topic, 0.5, out), daemon=True)
        t.start()
        (m,) = kutil.poll_n(c, 1, 15)
        received_at = time.monotonic()
        t.join(15)
        kutil.assert_no_delivery_errors(out["log"])
        assert (m.offset(), m.value()) == (0, b"late")
        lag = received_at - out["acked_at"]
        assert lag < 3.0, f"record reached the waiting consumer {lag:.2f}s after it was acked"
    finally:
        c.close()


def test_fetch_long_poll_kafka_python(broker):
    topic = kutil.create_topic(broker, kutil.unique_topic("lp"), partitions=1)
    c = kutil.kp_consumer(broker, fetch_max_wait_ms=10000, request_timeout_ms=30000)
    try:
        tp = KpTopicPartition(topic, 0)
        c.assign([tp])
        c.seek(tp, 0)
        assert c.poll(timeout_ms=1500) == {}
        out = {}
        t = threading.Thread(target=_produce_later, args=(broker, topic, 0.5, out), daemon=True)
        t.start()
        recs = kutil.kp_consume_exact(c, 1, 15)
        received_at = time.monotonic()
        t.join(15)
        assert (recs[0].offset, recs[0].value) == (0, b"late")
        assert received_at - out["acked_at"] < 3.0
    finally:
        c.close()
