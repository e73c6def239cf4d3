"""Compressed batches are inflated under a bound: a decompression bomb is refused with
MESSAGE_TOO_LARGE, the broker's memory stays small, and real clients keep working with every codec.
"""

import struct
import zlib

import lz4.frame
import pytest
import zstandard
from kafka.record.util import calc_crc32c
from kafka.structs import TopicPartition as KpTopicPartition

import kproto
import kutil

MESSAGE_TOO_LARGE = 10
CODEC_IDS = {"gzip": 1, "snappy": 2, "lz4": 3, "zstd": 4}
PEAK_RSS_LIMIT = 256 * 1024 * 1024
MIB = 1024 * 1024


def peak_rss(broker):
    """The broker process's peak resident set size (VmHWM), in bytes."""
    with open(f"/proc/{broker.proc.pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmHWM in /proc/PID/status")


def zero_records(count, value_len):
    """Yields the uncompressed records region piece by piece: `count` records with a null key and
    `value_len` zero bytes each, so gigabytes can be compressed without holding them."""
    zeros = bytes(min(value_len, MIB))
    for i in range(count):
        body_head = kproto.i8(0) + kproto.varint(0) + kproto.varint(i) + kproto.varint(-1) + kproto.varint(value_len)
        body_len = len(body_head) + value_len + 1
        yield kproto.varint(body_len) + body_head
        left = value_len
        while left:
            n = min(left, len(zeros))
            yield zeros[:n]
            left -= n
        yield kproto.uvarint(0)  # no headers


def compress_stream(codec, pieces):
    if codec == "zstd":
        c = zstandard.ZstdCompressor(level=3).compressobj()
        return b"".join(c.compress(p) for p in pieces) + c.flush()
    if codec == "gzip":
        c = zlib.compressobj(6, zlib.DEFLATED, 31)
        return b"".join(c.compress(p) for p in pieces) + c.flush()
    if codec == "lz4":
        c = lz4.frame.LZ4FrameCompressor()
        return c.begin() + b"".join(c.compress(p) for p in pieces) + c.flush()
    raise ValueError(codec)


def compressed_batch(codec, count, region):
    """A valid v2 batch (correct CRC and counts) around an already compressed records region."""
    after_crc = (
        kproto.i16(CODEC_IDS[codec])
        + kproto.i32(count - 1)
        + kproto.i64(1000)
        + kproto.i64(1000)
        + kproto.i64(-1)
        + kproto.i16(-1)
        + kproto.i32(-1)
        + kproto.i32(count)
        + region
    )
    crc = calc_crc32c(after_crc)
    after_length = kproto.i32(-1) + kproto.i8(2) + struct.pack(">I", crc) + after_crc
    return kproto.i64(0) + kproto.i32(len(after_length)) + after_length


def bomb(codec, count, value_len):
    return compressed_batch(codec, count, compress_stream(codec, zero_records(count, value_len)))


def produce_raw(broker, topic, batch, cid):
    c = kproto.Conn(broker.host, broker.port, timeout=60)
    try:
        c.send(kproto.produce_request(cid, topic, 0, batch, acks=1, timeout_ms=30000))
        frame = c.read_frame()
        assert frame is not None, f"connection closed; broker log:\n{broker.log_tail()}"
        _cid, parts = kproto.parse_produce_v3(frame)
        return parts[(topic, 0)]
    finally:
        c.close()


def test_decompression_bombs_are_refused_with_bounded_memory(broker):
    topic = kutil.create_topic(broker, kutil.unique_topic("bomb"), partitions=1)

    # ~1.1 GB of zero records in a few tens of KB of zstd: the batch is well under
    # message.max.bytes, so only the inflation bound can stop it.
    big = bomb("zstd", 1100, MIB)
    assert len(big) < 100 * 1024, f"zstd bomb is {len(big)} bytes"
    err, _base = produce_raw(broker, topic, big, 1)
    assert err == MESSAGE_TOO_LARGE
    rss = peak_rss(broker)
    assert rss < PEAK_RSS_LIMIT, f"peak RSS {rss / MIB:.0f} MiB after a zstd bomb"

    # gzip and lz4 cannot reach a gigabyte inside 1 MB, but 100 MB is past the bound (64 MiB).
    for i, codec in enumerate(["gzip", "lz4"]):
        b = bomb(codec, 100, MIB)
        assert len(b) < 1_000_000, f"{codec} bomb is {len(b)} bytes"
        err, _base = produce_raw(broker, topic, b, 2 + i)
        assert err == MESSAGE_TOO_LARGE, codec

    # Two batches that each fit the bound but not together, in one append (and one request).
    half = bomb("zstd", 40, MIB)
    err, _base = produce_raw(broker, topic, half + half, 5)
    assert err == MESSAGE_TOO_LARGE
    # A highly compressible batch under the bound is legitimate and accepted.
    err, base = produce_raw(broker, topic, half, 6)
    assert (err, base) == (0, 0)

    rss = peak_rss(broker)
    assert rss < PEAK_RSS_LIMIT, f"peak RSS {rss / MIB:.0f} MiB after the bombs"
    assert broker.is_running()
    assert kutil.watermarks(broker, topic, 0) == (0, 40), "refused batches must write nothing"


def test_inflation_budget_is_shared_by_a_requests_partitions(broker):
    topic = kutil.create_topic(broker, kutil.unique_topic("spread"), partitions=3)
    half = bomb("zstd", 40, MIB)  # 40 MiB inflated: under the bound alone
    plain = kproto.record_batch([(None, b"plain")])
    body = (
        kproto.string(None)
        + kproto.i16(1)
        + kproto.i32(30000)
        + kproto.array(
            [kproto.string(topic) + kproto.array([kproto.i32(p) + kproto.nbytes(b) for p, b in [(0, half), (1, half), (2, plain)]])]
        )
    )
    c = kproto.Conn(broker.host, broker.port, timeout=60)
    try:
        c.send(kproto.request(kproto.API_PRODUCE, 3, 7, body))
        _cid, parts = kproto.parse_produce_v3(c.read_frame())
    finally:
        c.close()
    # The request is a few KB, so it may inflate to the floor of 64 MiB in all: the second bomb
    # finds the budget spent; the uncompressed batch never draws on it.
    assert parts == {(topic, 0): (0, 0), (topic, 1): (MESSAGE_TOO_LARGE, -1), (topic, 2): (0, 0)}
    assert peak_rss(broker) < PEAK_RSS_LIMIT


CODECS = ["gzip", "snappy", "lz4", "zstd"]


def test_real_clients_with_every_codec_after_bombs(broker):
    topic = kutil.create_topic(broker, kutil.unique_topic("afterbomb"), partitions=1)
    err, _base = produce_raw(broker, topic, bomb("zstd", 1100, MIB), 1)
    assert err == MESSAGE_TOO_LARGE

    expected = []
    for codec in CODECS:
        values = [f"{codec}-confluent-{i}-".encode() + b"x" * (i % 300) for i in range(100)]
        p = kutil.producer(broker, **{"compression.type": codec, "linger.ms": 20})
        log = kutil.produce_all(p, topic, [(None, v, 0, None) for v in values])
        kutil.assert_no_delivery_errors(log)
        expected += values

        values = [f"{codec}-kafka-python-{i}-".encode() + b"y" * (i % 300) for i in range(100)]
        kp = kutil.kp_producer(broker, compression_type=codec, linger_ms=20)
        futs = [kp.send(topic, value=v, partition=0) for v in values]
        kp.flush(timeout=30)
        for f in futs:
            f.get(timeout=30)
        kp.close(timeout=10)
        expected += values

    msgs = kutil.read_partition(broker, topic, 0)
    assert [m.value() for m in msgs] == expected
    c = kutil.kp_consumer(broker)
    try:
        c.assign([KpTopicPartition(topic, 0)])
        c.seek_to_beginning()
        recs = kutil.kp_consume_exact(c, len(expected))
        assert [r.value for r in recs] == expected
    finally:
        c.close()
    assert peak_rss(broker) < PEAK_RSS_LIMIT
