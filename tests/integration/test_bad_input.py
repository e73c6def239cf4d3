"""Raw-socket tests: malformed frames and requests must not hurt the broker.

After every bad input the broker must still serve a normal client round trip,
and the records written before are intact.
"""

import socket
import struct
import time

import pytest

import kproto
import kutil

REQUEST_MAX = 1048576

FOUNDATION_APIS = {
    kproto.API_PRODUCE: "Produce",
    kproto.API_FETCH: "Fetch",
    kproto.API_LIST_OFFSETS: "ListOffsets",
    kproto.API_METADATA: "Metadata",
    kproto.API_API_VERSIONS: "ApiVersions",
    kproto.API_CREATE_TOPICS: "CreateTopics",
    kproto.API_DELETE_TOPICS: "DeleteTopics",
    kproto.API_DESCRIBE_CONFIGS: "DescribeConfigs",
    kproto.API_CREATE_PARTITIONS: "CreatePartitions",
}


@pytest.fixture
def seeded(broker_factory):
    """A broker (socket.request.max.bytes=1 MiB) with a topic holding 5 known records."""
    b = broker_factory(
        {"num.partitions": 1, "auto.create.topics.enable": "false", "socket.request.max.bytes": REQUEST_MAX}
    )
    topic = kutil.create_topic(b, kutil.unique_topic("seed"), partitions=1)
    values = [f"before-{i}".encode() for i in range(5)]
    log = kutil.produce_all(kutil.producer(b), topic, [(None, v, 0, None) for v in values])
    kutil.assert_no_delivery_errors(log)
    return b, topic, values


def assert_healthy(b, topic, values):
    """The broker is alive, old records are intact and a new round trip works."""
    assert b.is_running(), f"broker died; stderr:\n{b.log_tail()}"
    log = kutil.produce_all(kutil.producer(b), topic, [(None, b"after", 0, None)])
    kutil.assert_no_delivery_errors(log)
    assert [off for _p, off, *_ in log.acked] == [len(values)]
    msgs = kutil.read_partition(b, topic, 0)
    assert [m.value() for m in msgs] == values + [b"after"]
    values.append(b"after")


def connect(b):
    return kproto.Conn(b.host, b.port)


def test_negative_frame_size_closes_connection(seeded):
    b, topic, values = seeded
    c = connect(b)
    c.send(struct.pack(">i", -1) + b"\x00" * 16)
    assert c.wait_closed(10), "connection not closed after a negative frame size"
    c.close()
    c = connect(b)
    c.send(struct.pack(">i", -(2**31)))
    assert c.wait_closed(10), "connection not closed after frame size -2^31"
    c.close()
    assert_healthy(b, topic, values)


def test_huge_frame_size_closes_connection(seeded):
    b, topic, values = seeded
    c = connect(b)
    c.send(struct.pack(">i", 200 * 1024 * 1024) + b"\x00" * 64)
    assert c.wait_closed(10), "connection not closed after a 200 MB frame size (limit 1 MiB)"
    c.close()
    # Just over the configured limit is also refused.
    c = connect(b)
    c.send(struct.pack(">i", REQUEST_MAX + 1) + b"\x00" * 64)
    assert c.wait_closed(10), "connection not closed after a frame of socket.request.max.bytes + 1"
    c.close()
    assert_healthy(b, topic, values)


def test_zero_and_tiny_frames(seeded):
    b, topic, values = seeded
    for frame in (struct.pack(">i", 0), struct.pack(">i", 3) + b"\x00\x12\x00"):
        c = connect(b)
        c.send(frame)
        assert c.wait_closed(10), f"connection not closed after frame {frame!r}"
        c.close()
    assert_healthy(b, topic, values)


@pytest.mark.parametrize(
    "garbage",
    [b"\xde\xad\xbe\xef" * 8, bytes(range(256)) * 4, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"],
    ids=["deadbeef", "bytes", "http"],
)
def test_garbage_bytes(seeded, garbage):
    b, topic, values = seeded
    c = connect(b)
    c.send(garbage)
    # Either the broker closes the connection or it waits for the rest of a
    # (bogus) frame; it must never answer garbage with a success or crash.
    c.wait_closed(3)
    c.close()
    assert_healthy(b, topic, values)


def test_garbage_frame_with_valid_length(seeded):
    b, topic, values = seeded
    c = connect(b)
    payload = b"\xde\xad\xbe\xef" * 8  # api key 0xdead (negative), version 0xbeef
    c.send(struct.pack(">i", len(payload)) + payload)
    assert c.wait_closed(10), "connection not closed after a garbage request header"
    c.close()
    assert_healthy(b, topic, values)


def test_unknown_api_key(seeded):
    b, topic, values = seeded
    c = connect(b)
    c.send(kproto.request(999, 0, 4242, b""))
    res = c.closed_or_response(4242)
    c.close()
    assert res == "closed" or len(res) >= 4
    assert_healthy(b, topic, values)


def test_truncated_request_then_disconnect(seeded):
    b, topic, values = seeded
    c = connect(b)
    frame = kproto.produce_request(7, topic, 0, kproto.record_batch([(None, b"never")]))
    c.send(frame[: len(frame) // 2])
    c.close()  # peer goes away mid-frame
    time.sleep(0.3)
    assert_healthy(b, topic, values)


def test_truncated_body_in_complete_frame(seeded):
    """A frame whose length is right but whose Produce body ends early."""
    b, topic, values = seeded
    frame = kproto.produce_request(8, topic, 0, kproto.record_batch([(None, b"never")]))
    payload = frame[4:-20]
    c = connect(b)
    c.send(struct.pack(">i", len(payload)) + payload)
    res = c.closed_or_response(8)
    c.close()
    if res != "closed":
        _cid, parts = kproto.parse_produce_v3(res)
        assert all(err != 0 for err, _base in parts.values()), f"truncated produce accepted: {parts}"
    assert_healthy(b, topic, values)


def test_api_versions_v0(seeded):
    b, topic, values = seeded
    c = connect(b)
    c.send(kproto.api_versions_request(11, version=0))
    frame = c.read_frame()
    c.close()
    assert frame is not None, "no ApiVersions v0 response"
    cid, error, apis = kproto.parse_api_versions_v0(frame)
    assert (cid, error) == (11, 0)
    missing = [name for key, name in FOUNDATION_APIS.items() if key not in apis]
    assert not missing, f"ApiVersions lacks {missing}"
    assert apis[kproto.API_API_VERSIONS][1] >= 3
    assert apis[kproto.API_PRODUCE][0] <= 3 <= apis[kproto.API_PRODUCE][1], apis[kproto.API_PRODUCE]
    assert apis[kproto.API_FETCH][0] <= 4 <= apis[kproto.API_FETCH][1], apis[kproto.API_FETCH]
    assert apis[kproto.API_METADATA][0] <= 1 <= apis[kproto.API_METADATA][1], apis[kproto.API_METADATA]
    for key, (lo, hi) in apis.items():
        assert 0 <= lo <= hi, f"api {key}: bad range {lo}..{hi}"


def test_api_versions_unsupported_version(seeded):
    b, topic, values = seeded
    c = connect(b)
    c.send(kproto.api_versions_request(12, version=99))
    frame = c.read_frame()
    assert frame is not None, "connection closed instead of an UNSUPPORTED_VERSION response"
    cid, error, apis = kproto.parse_api_versions_v0(frame)
    assert cid == 12
    assert error == kproto.UNSUPPORTED_VERSION
    assert kproto.API_API_VERSIONS in apis, f"api_keys list missing from the v0 error response: {apis}"
    assert kproto.API_PRODUCE in apis and kproto.API_FETCH in apis
    # The connection stays usable: a v0 request right after works.
    c.send(kproto.api_versions_request(13, version=0))
    frame = c.read_frame()
    c.close()
    assert frame is not None
    assert kproto.parse_api_versions_v0(frame)[:2] == (13, 0)
    assert_healthy(b, topic, values)


def test_unsupported_version_of_other_api(seeded):
    b, topic, values = seeded
    c = connect(b)
    c.send(kproto.request(kproto.API_METADATA, 999, 21, kproto.i32(-1)))
    res = c.closed_or_response(21)
    c.close()
    assert res == "closed" or len(res) >= 4
    assert_healthy(b, topic, values)


def test_pipelined_requests_answered_in_order(seeded):
    b, topic, values = seeded
    c = connect(b)
    c.send(
        kproto.api_versions_request(101, 0)
        + kproto.metadata_request(102, [topic])
        + kproto.fetch_request(103, topic, 0, 0)
        + kproto.api_versions_request(104, 0)
    )
    cids = []
    frames = []
    for _ in range(4):
        f = c.read_frame()
        assert f is not None, f"connection closed after {len(frames)} of 4 pipelined responses"
        frames.append(f)
        cids.append(struct.unpack(">i", f[:4])[0])
    c.close()
    assert cids == [101, 102, 103, 104]
    _cid, brokers, controller, topics = kproto.parse_metadata_v1(frames[1])
    assert len(brokers) == 1 and brokers[0][1] == "127.0.0.1" and brokers[0][2] == b.port
    assert controller == brokers[0][0]
    assert topics[topic][0] == 0 and list(topics[topic][1]) == [0]
    _cid, parts = kproto.parse_fetch_v4(frames[2])
    err, hw, records = parts[(topic, 0)]
    assert (err, hw) == (0, len(values))
    assert [v for _o, _k, v in kproto.parse_record_batches(records)] == values


def test_raw_produce_then_corrupt_crc(seeded):
    b, topic, values = seeded
    c = connect(b)
    # Control: a valid batch built by this test is accepted.
    good = kproto.record_batch([(b"rk", b"raw-good")])
    c.send(kproto.produce_request(31, topic, 0, good))
    cid, parts = kproto.parse_produce_v3(c.read_frame())
    assert (cid, parts) == (31, {(topic, 0): (0, len(values))})
    values.append(b"raw-good")

    for n, bad in enumerate([kproto.corrupt_crc(good), kproto.corrupt_payload(good)]):
        c.send(kproto.produce_request(32 + n, topic, 0, bad))
        frame = c.read_frame()
        assert frame is not None, "connection closed instead of a CORRUPT_MESSAGE response"
        cid, parts = kproto.parse_produce_v3(frame)
        assert cid == 32 + n
        assert parts[(topic, 0)][0] == kproto.CORRUPT_MESSAGE, f"produce with a bad CRC: {parts}"
    c.close()
    assert kutil.watermarks(b, topic, 0) == (0, len(values))
    assert_healthy(b, topic, values)


def test_raw_produce_to_unknown_topic_and_partition(seeded):
    b, topic, values = seeded
    c = connect(b)
    batch = kproto.record_batch([(None, b"x")])
    c.send(kproto.produce_request(41, "no-such-topic", 0, batch))
    _cid, parts = kproto.parse_produce_v3(c.read_frame())
    assert parts[("no-such-topic", 0)][0] == kproto.UNKNOWN_TOPIC_OR_PARTITION
    c.send(kproto.produce_request(42, topic, 7, batch))
    _cid, parts = kproto.parse_produce_v3(c.read_frame())
    assert parts[(topic, 7)][0] == kproto.UNKNOWN_TOPIC_OR_PARTITION
    c.close()
    assert_healthy(b, topic, values)


def test_raw_fetch_out_of_range_and_long_poll(seeded):
    b, topic, values = seeded
    c = kproto.Conn(b.host, b.port, timeout=15)
    c.send(kproto.fetch_request(51, topic, 0, 1000))
    _cid, parts = kproto.parse_fetch_v4(c.read_frame())
    assert parts[(topic, 0)][0] == kproto.OFFSET_OUT_OF_RANGE

    # At the log end with min_bytes=1 the broker waits max_wait_ms before answering empty.
    start = time.monotonic()
    c.send(kproto.fetch_request(52, topic, 0, len(values), max_wait_ms=1500))
    _cid, parts = kproto.parse_fetch_v4(c.read_frame())
    elapsed = time.monotonic() - start
    err, hw, records = parts[(topic, 0)]
    assert (err, hw) == (0, len(values))
    assert not records
    assert 1.2 <= elapsed <= 6.0, f"empty long-poll fetch answered after {elapsed:.2f}s (max wait 1.5s)"

    # min_bytes=0 answers immediately.
    start = time.monotonic()
    c.send(kproto.fetch_request(53, topic, 0, len(values), max_wait_ms=5000, min_bytes=0))
    kproto.parse_fetch_v4(c.read_frame())
    assert time.monotonic() - start < 1.0
    c.close()
    assert_healthy(b, topic, values)


def test_many_connections_opened_and_dropped(seeded):
    b, topic, values = seeded
    socks = []
    for _ in range(200):
        s = socket.create_connection((b.host, b.port), timeout=5)
        socks.append(s)
    for i, s in enumerate(socks):
        if i % 2:
            s.sendall(kproto.api_versions_request(i, 0)[:7])  # partial frame
        s.close()
    assert_healthy(b, topic, values)


# -- array counts far beyond the frame ---------------------------------------------------------
# Each body below stops right after an array count of 2^31-1 (or the compact 2^32-2): a decoder
# that reserves `count x element size` before reading would ask for tens of gigabytes and the
# process would abort. The broker must refuse the frame, close that connection and serve others.

HUGE = kproto.i32(0x7FFFFFFF)
HUGE_COMPACT = b"\xff\xff\xff\xff\x0f"


def _str(s):
    return kproto.string(s)


HUGE_ARRAY_FRAMES = {
    # The 26-byte frame from the report, byte for byte (Metadata v1, client id "fuzz").
    "metadata-v1-26-bytes": bytes.fromhex("00000016000300010000000100046675 7a7a7fffffff0002667a".replace(" ", "")),
    "metadata-v9-compact": kproto.request(kproto.API_METADATA, 9, 1, HUGE_COMPACT, header_version=2),
    "produce-v3": kproto.request(kproto.API_PRODUCE, 3, 1, kproto.i16(-1) + kproto.i16(1) + kproto.i32(1000) + HUGE),
    "fetch-v4": kproto.request(
        kproto.API_FETCH, 4, 1, kproto.i32(-1) + kproto.i32(100) + kproto.i32(1) + kproto.i32(1 << 20) + b"\x00" + HUGE
    ),
    "join-group-v1": kproto.request(
        11, 1, 1, _str("g") + kproto.i32(10000) + kproto.i32(10000) + _str("") + _str("consumer") + HUGE
    ),
    "offset-commit-v2": kproto.request(8, 2, 1, _str("g") + kproto.i32(-1) + _str("") + kproto.i64(-1) + HUGE),
    "offset-fetch-v1": kproto.request(9, 1, 1, _str("g") + HUGE),
    "describe-groups-v0": kproto.request(15, 0, 1, HUGE),
    "describe-groups-v5-compact": kproto.request(15, 5, 1, HUGE_COMPACT, header_version=2),
}


def _vm_hwm_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    raise AssertionError("no VmHWM")


@pytest.mark.parametrize("name", sorted(HUGE_ARRAY_FRAMES))
def test_huge_array_count_is_refused_without_allocating(seeded, name):
    b, topic, values = seeded
    frame = HUGE_ARRAY_FRAMES[name]
    c = connect(b)
    c.send(frame)
    assert c.wait_closed(10), f"connection not closed after {name}"
    c.close()
    assert b.is_running(), f"broker died on {name}; stderr:\n{b.log_tail()}"
    assert _vm_hwm_kib(b.proc.pid) < 256 * 1024, "peak RSS above 256 MiB"
    assert "refused" in b.log_text(), "no log line says the frame was refused"
    assert_healthy(b, topic, values)
