"""Idempotent producers: InitProducerId, sequence checks and deduplication of retries.

Real clients (librdkafka via confluent-kafka, kafka-python) with idempotence on, and raw wire
requests for what clients do not do on demand: resend the very same batch, skip a sequence,
fall back to an old epoch, ask for a transactional id.
"""

import struct
import time
from collections import Counter

from kafka.record.util import calc_crc32c

from kproto import (
    API_PRODUCE,
    Conn,
    Reader,
    array,
    i8,
    i16,
    i32,
    i64,
    nbytes,
    parse_produce_v3,
    request,
    string,
    uvarint,
    varint,
)
from kutil import (
    assert_no_delivery_errors,
    create_topic,
    kp_consume_exact,
    kp_consumer,
    kp_producer,
    produce_all,
    producer,
    read_partition,
    unique_topic,
    watermarks,
)

API_INIT_PRODUCER_ID = 22
OUT_OF_ORDER_SEQUENCE_NUMBER = 45
INVALID_PRODUCER_EPOCH = 47


# --------------------------------------------------------------------------
# raw wire helpers
# --------------------------------------------------------------------------
def init_producer_id(conn, cid, transactional_id=None):
    """InitProducerId v0 -> (error, producer_id, epoch)."""
    body = string(transactional_id) + i32(60000)
    conn.send(request(API_INIT_PRODUCER_ID, 0, cid, body))
    r = Reader(conn.read_frame())
    assert r.i32() == cid
    r.i32()  # throttle
    return r.i16(), r.i64(), r.i16()


def idempotent_batch(pid, epoch, seq, values):
    """An uncompressed v2 batch from producer `pid`/`epoch` with sequences seq.."""
    ts = int(time.time() * 1000)
    body = bytearray()
    for i, value in enumerate(values):
        key = f"k{i}".encode()
        rec = i8(0) + varint(0) + varint(i)
        rec += varint(len(key)) + key + varint(len(value)) + value + uvarint(0)
        body += varint(len(rec)) + rec
    after_crc = (
        i16(0)
        + i32(len(values) - 1)
        + i64(ts)
        + i64(ts)
        + i64(pid)
        + i16(epoch)
        + i32(seq)
        + i32(len(values))
        + bytes(body)
    )
    after_length = i32(-1) + i8(2) + struct.pack(">I", calc_crc32c(after_crc)) + after_crc
    return i64(0) + i32(len(after_length)) + after_length


def produce(conn, cid, topic, batch):
    """Produce v3 with acks=-1 -> (error, base_offset) of partition 0."""
    body = string(None) + i16(-1) + i32(10000) + array([string(topic) + array([i32(0) + nbytes(batch)])])
    conn.send(request(API_PRODUCE, 3, cid, body))
    got_cid, parts = parse_produce_v3(conn.read_frame())
    assert got_cid == cid
    return parts[(topic, 0)]


# --------------------------------------------------------------------------
# real clients
# --------------------------------------------------------------------------
def test_librdkafka_idempotent_producer_delivers_each_record_once(broker_factory):
    broker = broker_factory()
    topic = unique_topic("idem")
    create_topic(broker, topic, partitions=3)
    n = 3000
    p = producer(
        broker,
        **{
            "enable.idempotence": True,
            "acks": "all",
            "max.in.flight.requests.per.connection": 5,
            "batch.num.messages": 50,
        },
    )
    records = [(f"key-{i % 97}".encode(), f"value-{i}".encode(), None, None) for i in range(n)]
    log = produce_all(p, topic, records)
    assert_no_delivery_errors(log)
    assert len(log.acked) == n

    seen = Counter()
    total = 0
    for part in range(3):
        msgs = read_partition(broker, topic, part)
        offsets = [m.offset() for m in msgs]
        assert offsets == list(range(len(offsets))), f"partition {part} offsets not dense"
        seen.update(m.value() for m in msgs)
        total += len(msgs)
        # Per key order is kept: values of one key appear in production order.
        by_key = {}
        for m in msgs:
            i = int(m.value().split(b"-")[1])
            assert by_key.get(m.key(), -1) < i, f"key {m.key()} out of order"
            by_key[m.key()] = i
    assert total == n
    assert all(c == 1 for c in seen.values()), "duplicated records"
    acked_offsets = sorted((pt, off) for pt, off, *_ in log.acked)
    assert len(set(acked_offsets)) == n


def test_kafka_python_idempotent_producer(broker_factory):
    broker = broker_factory()
    topic = unique_topic("idem-kp")
    create_topic(broker, topic, partitions=2)
    p = kp_producer(broker, enable_idempotence=True, acks="all")
    n = 500
    futures = [p.send(topic, key=f"k{i % 10}".encode(), value=f"v{i}".encode()) for i in range(n)]
    p.flush(timeout=30)
    metas = [f.get(timeout=30) for f in futures]
    assert len({(m.partition, m.offset) for m in metas}) == n
    p.close()
    c = kp_consumer(broker)
    from kafka import TopicPartition as KTP

    c.assign([KTP(topic, 0), KTP(topic, 1)])
    got = kp_consume_exact(c, n)
    c.close()
    assert sorted(r.value for r in got) == sorted(f"v{i}".encode() for i in range(n))
    for part in range(2):
        offsets = sorted(r.offset for r in got if r.partition == part)
        assert offsets == list(range(len(offsets)))


# --------------------------------------------------------------------------
# raw wire: retries, gaps, epochs
# --------------------------------------------------------------------------
def test_resent_batch_is_acknowledged_with_original_offset_once(broker_factory):
    broker = broker_factory()
    topic = unique_topic("idem-raw")
    create_topic(broker, topic, partitions=1)
    conn = Conn(broker.host, broker.port)
    try:
        err, pid, epoch = init_producer_id(conn, 1)
        assert (err, epoch) == (0, 0) and pid >= 0
        err2, pid2, _ = init_producer_id(conn, 2)
        assert err2 == 0 and pid2 != pid

        first = idempotent_batch(pid, 0, 0, [b"a", b"b", b"c"])
        assert produce(conn, 3, topic, first) == (0, 0)
        assert produce(conn, 4, topic, idempotent_batch(pid, 0, 3, [b"d"])) == (0, 3)
        # The client lost the ack of the first batch and sends it again.
        assert produce(conn, 5, topic, first) == (0, 0)
        assert watermarks(broker, topic, 0)[1] == 4

        # A gap in the sequence and an old epoch are refused and write nothing.
        assert produce(conn, 6, topic, idempotent_batch(pid, 0, 9, [b"x"]))[0] == OUT_OF_ORDER_SEQUENCE_NUMBER
        assert produce(conn, 7, topic, idempotent_batch(pid, 1, 0, [b"e"])) == (0, 4)
        assert produce(conn, 8, topic, idempotent_batch(pid, 0, 4, [b"x"]))[0] == INVALID_PRODUCER_EPOCH
        assert watermarks(broker, topic, 0)[1] == 5
        values = [m.value() for m in read_partition(broker, topic, 0)]
        assert values == [b"a", b"b", b"c", b"d", b"e"]
    finally:
        conn.close()


def test_retry_after_restart_is_deduplicated_and_ids_do_not_repeat(broker_factory):
    broker = broker_factory()
    topic = unique_topic("idem-restart")
    create_topic(broker, topic, partitions=1)
    conn = Conn(broker.host, broker.port)
    _, pid, _ = init_producer_id(conn, 1)
    batch = idempotent_batch(pid, 0, 0, [b"only-once"])
    assert produce(conn, 2, topic, batch) == (0, 0)
    conn.close()

    for graceful in (True, False):
        broker.restart(graceful=graceful)
        conn = Conn(broker.host, broker.port)
        try:
            assert produce(conn, 3, topic, batch) == (0, 0)
            err, new_pid, _ = init_producer_id(conn, 4)
            assert err == 0 and new_pid > pid
        finally:
            conn.close()
    assert watermarks(broker, topic, 0)[1] == 1


def test_a_transactional_id_keeps_its_producer_id_and_bumps_the_epoch(broker_factory):
    broker = broker_factory()
    conn = Conn(broker.host, broker.port)
    try:
        err, pid, epoch = init_producer_id(conn, 1, transactional_id="txn-1")
        assert (err, epoch) == (0, 0) and pid >= 0
        assert init_producer_id(conn, 2, transactional_id="txn-1") == (0, pid, 1)
        err, other, _ = init_producer_id(conn, 3, transactional_id="txn-2")
        assert err == 0 and other != pid
    finally:
        conn.close()
    # The producer id and epoch are durable: a restart continues from them.
    broker.restart(graceful=False)
    conn = Conn(broker.host, broker.port)
    try:
        assert init_producer_id(conn, 4, transactional_id="txn-1") == (0, pid, 2)
    finally:
        conn.close()
