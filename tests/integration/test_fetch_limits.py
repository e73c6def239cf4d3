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


# --------------------------------------------------------------------------
# KIP-74 across partitions, the total cap, and duplicate partitions
# --------------------------------------------------------------------------
INT32_MAX = 2**31 - 1


def fetch_v4(correlation_id, topics, max_bytes, max_wait_ms=0, min_bytes=0):
    """topics: [(name, [(partition, offset, partition_max_bytes), ...]), ...], names may repeat."""
    body = (
        kproto.i32(-1)
        + kproto.i32(max_wait_ms)
        + kproto.i32(min_bytes)
        + kproto.i32(max_bytes)
        + kproto.i8(0)
        + kproto.array(
            [
                kproto.string(name)
                + kproto.array([kproto.i32(p) + kproto.i64(o) + kproto.i32(m) for p, o, m in parts])
                for name, parts in topics
            ]
        )
    )
    return kproto.request(kproto.API_FETCH, 4, correlation_id, body)


def parse_fetch_v4_list(frame):
    """-> [(topic, partition, error, records_bytes)] in response order, duplicates kept."""
    r = kproto.Reader(frame)
    r.i32()  # correlation id
    r.i32()  # throttle
    out = []
    for _ in range(r.i32()):
        topic = r.string()
        for _ in range(r.i32()):
            part, err, _hw, _lso = r.i32(), r.i16(), r.i64(), r.i64()
            for _ in range(max(r.i32(), 0)):
                r.i64()
                r.i64()
            out.append((topic, part, err, r.nbytes() or b""))
    return out


def fetch_list(broker, request):
    c = kproto.Conn(broker.host, broker.port, timeout=30)
    try:
        c.send(request)
        frame = c.read_frame()
        assert frame is not None, "connection closed"
        return len(frame), parse_fetch_v4_list(frame)
    finally:
        c.close()


def test_duplicate_partitions_cannot_amplify_a_fetch(broker):
    topic = kutil.create_topic(broker, kutil.unique_topic("dup"), partitions=2)
    values = produce_big(broker, topic, 5, 100_000)  # ~500 KB in partition 0
    # One partition listed 100 times (in one topic entry and again in repeated topic entries),
    # each time with the largest limits: a few hundred bytes of request.
    entries = [(topic, [(0, 0, INT32_MAX)] * 50), (topic, [(1, 0, INT32_MAX)]), (topic, [(0, 0, INT32_MAX)] * 50)]
    request = fetch_v4(1, entries, max_bytes=INT32_MAX)
    assert len(request) < 4096
    size, parts = fetch_list(broker, request)
    # Like Kafka: one answer per partition, in order of first appearance.
    assert [(t, p) for t, p, _e, _r in parts] == [(topic, 0), (topic, 1)]
    assert all(e == 0 for _t, _p, e, _r in parts)
    got = kproto.parse_record_batches(parts[0][3])
    assert [v for _o, _k, v in got] == values
    assert size < 2 * 5 * 100_000, f"{size} bytes answered to a {len(request)}-byte fetch"

    # The later duplicate wins (Kafka overwrites the entry in place): offset 3, not 0.
    request = fetch_v4(2, [(topic, [(0, 0, INT32_MAX), (1, 0, INT32_MAX), (0, 3, INT32_MAX)])], INT32_MAX)
    _size, parts = fetch_list(broker, request)
    assert [(t, p) for t, p, _e, _r in parts] == [(topic, 0), (topic, 1)]
    assert [o for o, _k, _v in kproto.parse_record_batches(parts[0][3])] == [3, 4]


def test_max_bytes_zero_or_negative_still_bounds_the_response(broker):
    topic = kutil.create_topic(broker, kutil.unique_topic("zero"), partitions=2)
    produce_big(broker, topic, 5, 100_000)
    for max_bytes in (0, -1, -(2**31)):
        entries = [(topic, [(0, 0, INT32_MAX), (1, 0, INT32_MAX)])]
        _size, parts = fetch_list(broker, fetch_v4(3, entries, max_bytes=max_bytes))
        assert [e for _t, _p, e, _r in parts] == [0, 0]
        # Only the first batch of the first partition with data (KIP-74's one exception).
        got = kproto.parse_record_batches(parts[0][3])
        assert [o for o, _k, _v in got] == [0], f"max_bytes={max_bytes}"
        assert parts[1][3] == b""


def test_broker_fetch_max_bytes_caps_every_response(broker_factory):
    b = broker_factory({"num.partitions": 1, "fetch.max.bytes": 250_000})
    topic = kutil.create_topic(b, kutil.unique_topic("cap"), partitions=1)
    produce_big(b, topic, 5, 100_000)
    _size, parts = fetch_list(b, fetch_v4(4, [(topic, [(0, 0, INT32_MAX)])], max_bytes=INT32_MAX))
    got = kproto.parse_record_batches(parts[0][3])
    assert len(parts[0][3]) <= 250_000
    assert [o for o, _k, _v in got] == [0, 1]


def test_only_the_first_partition_may_exceed_max_bytes(broker):
    """librdkafka's 0082 case: 900 KiB batches in several partitions, max_bytes=1000000."""
    topic = kutil.create_topic(broker, kutil.unique_topic("kip74p"), partitions=3)
    size = 900 * 1024
    p = kutil.producer(broker, **{"linger.ms": 0, "batch.num.messages": 1})
    log = kutil.produce_all(p, topic, [(None, bytes([65 + i]) * size, i % 3, None) for i in range(6)])
    kutil.assert_no_delivery_errors(log)
    entries = [(topic, [(0, 0, 20_000_000), (1, 0, 20_000_000), (2, 0, 20_000_000)])]
    frame_size, parts = fetch_list(broker, fetch_v4(5, entries, max_bytes=1_000_000))
    batches = [kproto.parse_record_batches(r) for _t, _p, _e, r in parts]
    assert [len(b) for b in batches] == [1, 0, 0], "one batch beyond the limit, and only one"
    assert frame_size < 1_000_512, "what librdkafka's receive.message.max.bytes=1000512 accepts"
    # With room for two batches (one per partition), the second partition's batch fits too.
    one_each = [(topic, [(0, 0, size + 1000), (1, 0, size + 1000), (2, 0, size + 1000)])]
    frame_size, parts = fetch_list(broker, fetch_v4(6, one_each, max_bytes=2 * size + 1000))
    assert [len(kproto.parse_record_batches(r)) for _t, _p, _e, r in parts] == [1, 1, 0]
    # partition_max_bytes is a limit too, except for the first partition with data.
    small = [(topic, [(0, 0, 1000), (1, 0, 1000), (2, 0, 20_000_000)])]
    _size, parts = fetch_list(broker, fetch_v4(7, small, max_bytes=10_000_000))
    assert [len(kproto.parse_record_batches(r)) for _t, _p, _e, r in parts] == [1, 0, 2]


def test_librdkafka_consumer_with_fetch_max_bytes_below_two_batches(broker):
    """Mirrors librdkafka's 0082_fetch_max_bytes: 900 KiB messages in 3 partitions, a group
    consumer with fetch.max.bytes=1000000 and receive.message.max.bytes=1000512 gets them all."""
    topic = kutil.create_topic(broker, kutil.unique_topic("rd0082"), partitions=3)
    size = 900 * 1024
    p = kutil.producer(broker, **{"linger.ms": 0, "batch.num.messages": 1})
    records = [(None, f"{i:04d}".encode() + b"z" * (size - 4), i % 3, None) for i in range(15)]
    log = kutil.produce_all(p, topic, records)
    kutil.assert_no_delivery_errors(log)
    c = kutil.consumer(
        broker,
        **{
            "group.id": kutil.unique_topic("g0082"),
            "auto.offset.reset": "earliest",
            "max.partition.fetch.bytes": 20_000_000,
            "fetch.max.bytes": 1_000_000,
            "receive.message.max.bytes": 1_000_512,
        },
    )
    try:
        c.subscribe([topic])
        msgs = kutil.poll_n(c, 15, timeout=60)
        assert sorted(m.value()[:4] for m in msgs) == [f"{i:04d}".encode() for i in range(15)]
    finally:
        c.close()
