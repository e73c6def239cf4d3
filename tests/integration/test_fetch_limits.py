"""Fetch size limits: a fetch always makes progress (KIP-74), limits are otherwise honoured."""

from confluent_kafka import TopicPartition

import kproto
import kutil


def produce_big(broker, topic, n, size):
    p = kutil.producer(broker, **{"linger.ms": 0, "batch.num.messages": 1})
    values = [bytes([65 + i]) * size for i in range(n)]
    log = kutil.produce_all(p, topic, [(None, v, 0, None) for v in values])
    kutil.assert_no_delivery_errors(log)
    return values


def test_fetch_returns_first_batch_even_if_larger_than_max_bytes(broker):
    topic = kutil.create_topic(broker, kutil.unique_topic("kip74"), partitions=1)
    values = produce_big(broker, topic, 3, 5000)
    c = kproto.Conn(broker.host, broker.port)
    try:
        c.send(kproto.fetch_request(1, topic, 0, 0, max_wait_ms=100, max_bytes=100))
        _cid, parts = kproto.parse_fetch_v4(c.read_frame())
        err, hw, records = parts[(topic, 0)]
        assert (err, hw) == (0, 3)
        got = kproto.parse_record_batches(records or b"")
        assert got and got[0] == (0, None, values[0]), "no complete first batch despite KIP-74"
        # ...but not everything: the limit still applies after the first batch.
        assert len(records) < 2 * 5000, f"{len(records)} bytes returned for max_bytes=100"
    finally:
        c.close()


def test_fetch_max_bytes_limits_response_size(broker):
    topic = kutil.create_topic(broker, kutil.unique_topic("maxb"), partitions=1)
    values = produce_big(broker, topic, 20, 10_000)
    c = kproto.Conn(broker.host, broker.port)
    try:
        c.send(kproto.fetch_request(2, topic, 0, 0, max_wait_ms=100, max_bytes=50_000))
        _cid, parts = kproto.parse_fetch_v4(c.read_frame())
        err, hw, records = parts[(topic, 0)]
        assert (err, hw) == (0, 20)
        assert len(records) <= 60_000, f"{len(records)} bytes returned for max_bytes=50000"
        got = kproto.parse_record_batches(records)
        assert 1 <= len(got) < 20
        assert [o for o, _k, _v in got] == list(range(len(got)))
        assert [v for _o, _k, v in got] == values[: len(got)]
    finally:
        c.close()


def test_fetch_from_offset_inside_batch_returns_that_batch(broker):
    topic = kutil.create_topic(broker, kutil.unique_topic("mid"), partitions=1)
    p = kutil.producer(broker, **{"linger.ms": 100})
    log = kutil.produce_all(p, topic, [(None, f"m{i}".encode(), 0, None) for i in range(10)])
    kutil.assert_no_delivery_errors(log)
    c = kproto.Conn(broker.host, broker.port)
    try:
        c.send(kproto.fetch_request(3, topic, 0, 7))
        _cid, parts = kproto.parse_fetch_v4(c.read_frame())
        err, hw, records = parts[(topic, 0)]
        assert (err, hw) == (0, 10)
        got = kproto.parse_record_batches(records)
        # Kafka returns whole batches; the batch holding offset 7 may start earlier.
        assert [(o, v) for o, _k, v in got if o >= 7] == [(7, b"m7"), (8, b"m8"), (9, b"m9")]
    finally:
        c.close()


def test_librdkafka_consumer_with_tiny_fetch_limits_progresses(broker):
    topic = kutil.create_topic(broker, kutil.unique_topic("tiny"), partitions=1)
    values = produce_big(broker, topic, 5, 50_000)
    c = kutil.consumer(broker, **{"fetch.max.bytes": 1024, "fetch.message.max.bytes": 1024, "message.max.bytes": 1000,
                                  "receive.message.max.bytes": 1_000_000})
    try:
        msgs = kutil.consume_exact(c, [TopicPartition(topic, 0, 0)], 5)
        assert [m.value() for m in msgs] == values
    finally:
        c.close()
