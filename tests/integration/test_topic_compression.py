"""Topic compression.type other than `producer`: the broker recompresses client batches into the
topic's codec (as Kafka's LogValidator does), real clients read them back, and the codec levels
(KIP-390) are validated. Also: CreateTopics answers a null error message on success, and the
broker's log carries no colour codes when it is not a terminal.
"""

import struct
import time

import pytest
from confluent_kafka import KafkaException, TopicPartition
from confluent_kafka.admin import NewTopic

import kproto
import kutil

CODEC_IDS = {"none": 0, "gzip": 1, "snappy": 2, "lz4": 3, "zstd": 4}
INVALID_CONFIG = 40
COUNT = 200


def stored_batches(broker, topic, partition=0):
    """Raw Fetch v4 of the whole partition -> list of (base_offset, attributes, producer_id,
    base_sequence, record_count) as the broker stored them."""
    c = kproto.Conn(broker.host, broker.port, timeout=30)
    out = []
    offset = 0
    try:
        for cid in range(1, 50):
            c.send(kproto.fetch_request(cid, topic, partition, offset, max_bytes=8 << 20))
            _cid, parts = kproto.parse_fetch_v4(c.read_frame())
            err, hw, data = parts[(topic, partition)]
            assert err == 0, err
            pos = 0
            while pos + 61 <= len(data):
                base, length = struct.unpack_from(">qi", data, pos)
                if pos + 12 + length > len(data):
                    break
                attributes = struct.unpack_from(">h", data, pos + 21)[0]
                last_delta = struct.unpack_from(">i", data, pos + 23)[0]
                pid, _epoch, seq, count = struct.unpack_from(">qhii", data, pos + 43)
                out.append((base, attributes, pid, seq, count))
                offset = base + last_delta + 1
                pos += 12 + length
            if offset >= hw:
                return out
        raise AssertionError(f"fetch did not reach the high watermark {hw}")
    finally:
        c.close()


def records(n, tag):
    return [(f"k{i}".encode(), f"{tag}-{i}-".encode() * 20, 0, None) for i in range(n)]


def produce(broker, topic, codec, n, tag, **extra):
    p = kutil.producer(broker, **{"compression.type": codec, "linger.ms": 50}, **extra)
    log = kutil.produce_all(p, topic, records(n, tag))
    kutil.assert_no_delivery_errors(log)
    return log


def assert_codec(broker, topic, codec, expect_count):
    batches = stored_batches(broker, topic)
    assert sum(b[4] for b in batches) == expect_count
    codecs = {b[1] & 0x07 for b in batches}
    assert codecs == {CODEC_IDS[codec]}, f"stored codecs {codecs}, expected {codec}: {batches[:5]}"
    return batches


def check_values(values, n, tag):
    assert values == [f"{tag}-{i}-".encode() * 20 for i in range(n)]


@pytest.mark.parametrize("codec", ["gzip", "zstd"])
def test_uncompressed_producer_is_stored_in_topic_codec_and_read_by_clients(broker, codec):
    topic = kutil.create_topic(broker, kutil.unique_topic(codec), config={"compression.type": codec})
    produce(broker, topic, "none", COUNT, "plain")
    assert_codec(broker, topic, codec, COUNT)

    # librdkafka
    msgs = kutil.read_partition(broker, topic, 0)
    check_values([m.value() for m in msgs], COUNT, "plain")
    assert [m.offset() for m in msgs] == list(range(COUNT))
    assert [m.key() for m in msgs] == [f"k{i}".encode() for i in range(COUNT)]

    # kafka-python
    c = kutil.kp_consumer(broker)
    try:
        from kafka.structs import TopicPartition as KpTP

        c.assign([KpTP(topic, 0)])
        got = kutil.kp_consume_exact(c, COUNT)
        check_values([r.value for r in got], COUNT, "plain")
        assert [r.offset for r in got] == list(range(COUNT))
    finally:
        c.close()


def test_idempotent_batches_keep_producer_fields_when_rewritten(broker):
    topic = kutil.create_topic(broker, kutil.unique_topic("idem"), config={"compression.type": "gzip"})
    produce(broker, topic, "lz4", 50, "idem", **{"enable.idempotence": True})
    batches = assert_codec(broker, topic, "gzip", 50)
    assert all(b[2] >= 0 for b in batches), "producer id lost in the rewrite"
    # Sequences stay dense across the rewritten batches: the producer state still checks them.
    expect = 0
    for _base, _attrs, _pid, seq, count in batches:
        assert seq == expect
        expect += count
    # A second round from a new idempotent producer is accepted too.
    produce(broker, topic, "none", 10, "again", **{"enable.idempotence": True})
    assert_codec(broker, topic, "gzip", 60)


@pytest.mark.parametrize("topic_codec,producer_codec", [("gzip", "lz4"), ("zstd", "gzip"), ("snappy", "zstd"), ("lz4", "snappy"), ("uncompressed", "zstd")])
def test_a_batch_in_another_codec_is_rewritten(broker, topic_codec, producer_codec):
    topic = kutil.create_topic(broker, kutil.unique_topic("rw"), config={"compression.type": topic_codec})
    produce(broker, topic, producer_codec, COUNT, "rw")
    assert_codec(broker, topic, "none" if topic_codec == "uncompressed" else topic_codec, COUNT)
    msgs = kutil.read_partition(broker, topic, 0)
    check_values([m.value() for m in msgs], COUNT, "rw")


def test_producer_keeps_the_producers_codec(broker):
    topic = kutil.create_topic(broker, kutil.unique_topic("keep"), config={"compression.type": "producer"})
    produce(broker, topic, "lz4", 50, "a")
    produce(broker, topic, "zstd", 50, "b")
    batches = stored_batches(broker, topic)
    assert {b[1] & 7 for b in batches if b[0] < 50} == {CODEC_IDS["lz4"]}
    assert {b[1] & 7 for b in batches if b[0] >= 50} == {CODEC_IDS["zstd"]}


def test_broker_compression_type_is_the_topics_default(broker_factory):
    b = broker_factory(options={"compression.type": "zstd", "compression.zstd.level": "10"})
    topic = kutil.create_topic(b, kutil.unique_topic("brk"))
    produce(b, topic, "none", 20, "brk")
    assert_codec(b, topic, "zstd", 20)
    # A topic override wins over the broker's default.
    t2 = kutil.create_topic(b, kutil.unique_topic("ovr"), config={"compression.type": "producer"})
    produce(b, t2, "none", 20, "ovr")
    assert_codec(b, t2, "none", 20)


def test_create_time_and_log_append_time_survive_the_rewrite(broker):
    topic = kutil.create_topic(broker, kutil.unique_topic("ts"), config={"compression.type": "gzip"})
    p = kutil.producer(broker, **{"compression.type": "none"})
    log = kutil.produce_all(p, topic, [(b"k", f"v{i}".encode(), 0, 1_600_000_000_000 + i) for i in range(10)])
    kutil.assert_no_delivery_errors(log)
    msgs = kutil.read_partition(broker, topic, 0)
    assert [m.timestamp()[1] for m in msgs] == [1_600_000_000_000 + i for i in range(10)]

    t2 = kutil.create_topic(
        broker, kutil.unique_topic("lat"), config={"compression.type": "zstd", "message.timestamp.type": "LogAppendTime"}
    )
    before = int(time.time() * 1000)
    log = kutil.produce_all(p, t2, [(b"k", b"v", 0, 1_000) for _ in range(5)])
    kutil.assert_no_delivery_errors(log)
    msgs = kutil.read_partition(broker, t2, 0)
    assert all(m.timestamp()[1] >= before - 1000 for m in msgs), [m.timestamp() for m in msgs]
    assert_codec(broker, t2, "zstd", 5)


@pytest.mark.parametrize(
    "key,value",
    [
        ("compression.type", "brotli"),
        ("compression.type", "GZIP"),
        ("compression.gzip.level", "0"),
        ("compression.gzip.level", "10"),
        ("compression.gzip.level", "-2"),
        ("compression.lz4.level", "0"),
        ("compression.lz4.level", "18"),
        ("compression.zstd.level", "23"),
        ("compression.zstd.level", "-131073"),
        ("compression.zstd.level", "fast"),
    ],
)
def test_bad_compression_configs_are_refused(broker, key, value):
    a = kutil.admin(broker)
    topic = kutil.unique_topic("bad")
    fs = a.create_topics([NewTopic(topic, 1, 1, config={key: value})], request_timeout=15)
    with pytest.raises(KafkaException) as e:
        fs[topic].result(timeout=15)
    assert kutil.kafka_error_code(e.value) == INVALID_CONFIG


@pytest.mark.parametrize(
    "key,value",
    [
        ("compression.gzip.level", "-1"),
        ("compression.gzip.level", "9"),
        ("compression.lz4.level", "17"),
        ("compression.zstd.level", "-131072"),
        ("compression.zstd.level", "22"),
    ],
)
def test_levels_at_the_edges_are_accepted_and_used(broker, key, value):
    codec = key.split(".")[1]
    topic = kutil.create_topic(broker, kutil.unique_topic("lvl"), config={"compression.type": codec, key: value})
    produce(broker, topic, "none", 30, "lvl")
    assert_codec(broker, topic, codec, 30)
    check_values([m.value() for m in kutil.read_partition(broker, topic, 0)], 30, "lvl")


def test_recompressed_batch_larger_than_max_message_bytes_is_refused(broker):
    # 64 KiB of zeros compresses to almost nothing but is stored uncompressed here.
    topic = kutil.create_topic(
        broker, kutil.unique_topic("big"), config={"compression.type": "uncompressed", "max.message.bytes": "20000"}
    )
    p = kutil.producer(broker, **{"compression.type": "zstd", "message.max.bytes": 1000000})
    log = kutil.produce_all(p, topic, [(None, bytes(65536), 0, None)])
    assert log.errors and log.errors[0][0].code() == 10, log.errors  # MESSAGE_TOO_LARGE
    assert kutil.watermarks(broker, topic, 0) == (0, 0)
    produce(broker, topic, "zstd", 5, "small")
    assert_codec(broker, topic, "none", 5)


def test_create_topics_answers_a_null_error_message_on_success(broker):
    from kafka.admin import KafkaAdminClient
    from kafka.admin import NewTopic as KpNewTopic

    a = KafkaAdminClient(bootstrap_servers=broker.bootstrap, request_timeout_ms=15000)
    try:
        topic = kutil.unique_topic("null")
        resp = a.create_topics([KpNewTopic(topic, 1, 1, topic_configs={"compression.type": "gzip"})])
        # kafka-python decodes a nullable string: None for null, "" for an empty string.
        entries = resp.topic_errors if hasattr(resp, "topic_errors") else resp.topics
        (entry,) = [e for e in entries if e[0] == topic]
        assert entry[1] == 0
        assert entry[2] is None, f"error message {entry[2]!r}"
        # CreatePartitions and DeleteTopics answer null on success too.
        from kafka.admin import NewPartitions

        resp = a.create_partitions({topic: NewPartitions(2)})
        (entry,) = [e for e in resp.topic_errors if e[0] == topic]
        assert (entry[1], entry[2]) == (0, None), entry
        resp = a.delete_topics([topic])
        (entry,) = [e for e in resp.topic_error_codes if e[0] == topic]
        assert entry[1] == 0 and (len(entry) < 3 or entry[2] is None), entry
    finally:
        a.close()


def test_log_file_has_no_colour_codes(tmp_path):
    # Started by hand: the harness sets NO_COLOR, which would hide the terminal check.
    import os
    import subprocess

    from cairn_harness import cairn_bin, free_port

    port = free_port()
    log_path = tmp_path / "broker.log"
    env = {k: v for k, v in os.environ.items() if k != "NO_COLOR"}
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [str(cairn_bin()), "serve", "--listen", f"127.0.0.1:{port}", "--data-dir", str(tmp_path / "data"), "--http", "off"],
            stdout=subprocess.DEVNULL,
            stderr=log,
            env=env,
        )
    try:
        deadline = time.monotonic() + 30
        while b"listener bound" not in log_path.read_bytes() and time.monotonic() < deadline:
            assert proc.poll() is None, log_path.read_text(errors="replace")
            time.sleep(0.05)
        text = log_path.read_bytes()
        assert b"listener bound" in text, text[-2000:]
        assert b"\x1b[" not in text, "ANSI escape codes in a log written to a file"
    finally:
        proc.terminate()
        proc.wait(timeout=30)


@pytest.mark.parametrize(
    "api_key,version",
    [
        # Produce v0-2 are not here: Kafka 4 answers them UNSUPPORTED_VERSION per partition
        # (test_protocol_versions.py checks that).
        (kproto.API_FETCH, 3),
        (kproto.API_LIST_OFFSETS, 0),
        (kproto.API_CREATE_TOPICS, 1),
        (kproto.API_METADATA, 14),
    ],
)
def test_versions_outside_the_served_range_close_the_connection(broker, api_key, version):
    # Kafka's SocketServer refuses a header whose version its ApiVersionManager does not enable
    # with InvalidRequestException, which closes the connection; only ApiVersions is answered.
    c = kproto.Conn(broker.host, broker.port, timeout=10)
    try:
        c.send(kproto.request(api_key, version, 7, kproto.i32(-1) + bytes(32)))
        assert c.closed_or_response(7) == "closed"
    finally:
        c.close()
    # ApiVersions one past its newest version: a v0 UNSUPPORTED_VERSION answer with the api list.
    c = kproto.Conn(broker.host, broker.port, timeout=10)
    try:
        c.send(kproto.api_versions_request(8, version=5))
        cid, err, apis = kproto.parse_api_versions_v0(c.read_frame())
        assert (cid, err) == (8, kproto.UNSUPPORTED_VERSION)
        lo, hi = apis[api_key]
        assert not lo <= version <= hi, (lo, hi)
    finally:
        c.close()


# --------------------------------------------------------------------------
# Produce v13 and Fetch v18 (the newest the broker serves): topics named by id
# --------------------------------------------------------------------------
UNKNOWN_TOPIC_ID = 100


def topic_id_of(broker, topic):
    from confluent_kafka import TopicCollection

    [f] = kutil.admin(broker).describe_topics(TopicCollection([topic]), request_timeout=10).values()
    d = f.result(timeout=15)
    return struct.pack(">qq", d.topic_id.get_most_significant_bits(), d.topic_id.get_least_significant_bits())


def skip_tags(r):
    for _ in range(r.uvarint()):
        r.uvarint()
        r.take(r.uvarint())


def produce_v13(broker, topic_id, batch, cid=31):
    body = (
        kproto.uvarint(0)  # null transactional id
        + kproto.i16(1)
        + kproto.i32(10000)
        + kproto.uvarint(2)
        + topic_id
        + kproto.uvarint(2)
        + kproto.i32(0)
        + kproto.uvarint(len(batch) + 1)
        + batch
        + kproto.uvarint(0)
        + kproto.uvarint(0)
        + kproto.uvarint(0)
    )
    c = kproto.Conn(broker.host, broker.port, timeout=15)
    try:
        c.send(kproto.request(kproto.API_PRODUCE, 13, cid, body, header_version=2))
        r = kproto.Reader(c.read_frame())
    finally:
        c.close()
    assert r.i32() == cid
    skip_tags(r)
    (n_topics,) = (r.uvarint() - 1,)
    assert n_topics == 1
    got_id = r.take(16)
    assert r.uvarint() - 1 == 1
    index, err, base = r.i32(), r.i16(), r.i64()
    assert index == 0
    return got_id, err, base


def fetch_v18(broker, topic_id, offset, cid=41):
    body = (
        kproto.i32(100)  # max wait
        + kproto.i32(1)
        + kproto.i32(1 << 20)
        + kproto.i8(0)
        + kproto.i32(0)  # session id
        + kproto.i32(-1)  # session epoch: no session
        + kproto.uvarint(2)
        + topic_id
        + kproto.uvarint(2)
        + kproto.i32(0)  # partition
        + kproto.i32(-1)  # current leader epoch
        + kproto.i64(offset)
        + kproto.i32(-1)  # last fetched epoch
        + kproto.i64(-1)  # log start offset
        + kproto.i32(1 << 20)
        + kproto.uvarint(0)
        + kproto.uvarint(0)
        + kproto.uvarint(1)  # no forgotten topics
        + kproto.uvarint(1)  # rack id ""
        + kproto.uvarint(0)
    )
    c = kproto.Conn(broker.host, broker.port, timeout=15)
    try:
        c.send(kproto.request(kproto.API_FETCH, 18, cid, body, header_version=2))
        r = kproto.Reader(c.read_frame())
    finally:
        c.close()
    assert r.i32() == cid
    skip_tags(r)
    r.i32()  # throttle
    assert r.i16() == 0
    r.i32()  # session id
    assert r.uvarint() - 1 == 1
    got_id = r.take(16)
    assert r.uvarint() - 1 == 1
    index, err, hw = r.i32(), r.i16(), r.i64()
    assert index == 0
    r.i64()
    r.i64()
    n_aborted = r.uvarint() - 1
    for _ in range(max(n_aborted, 0)):
        r.i64()
        r.i64()
    r.i32()  # preferred read replica
    n = r.uvarint() - 1
    records = r.take(n) if n > 0 else b""
    return got_id, err, hw, records


def test_produce_v13_and_fetch_v18_name_topics_by_id(broker):
    topic = kutil.create_topic(broker, kutil.unique_topic("v13"), config={"compression.type": "zstd"})
    tid = topic_id_of(broker, topic)
    got_id, err, base = produce_v13(broker, tid, kproto.record_batch([(b"a", b"one"), (b"b", b"two")]))
    assert (got_id, err, base) == (tid, 0, 0)
    got_id, err, base = produce_v13(broker, tid, kproto.record_batch([(b"c", b"three")]))
    assert (got_id, err, base) == (tid, 0, 2)
    got_id, err, hw, records = fetch_v18(broker, tid, 0)
    assert (got_id, err, hw) == (tid, 0, 3)
    assert records[21:23] and struct.unpack(">h", records[21:23])[0] & 7 == CODEC_IDS["zstd"]
    # The same records through the name-based path, read by librdkafka.
    assert [m.value() for m in kutil.read_partition(broker, topic, 0)] == [b"one", b"two", b"three"]

    unknown = bytes(range(1, 17))
    got_id, err, base = produce_v13(broker, unknown, kproto.record_batch([(None, b"x")]))
    assert (got_id, err, base) == (unknown, UNKNOWN_TOPIC_ID, -1)
    got_id, err, _hw, _records = fetch_v18(broker, unknown, 0)
    assert (got_id, err) == (unknown, UNKNOWN_TOPIC_ID)
    assert kutil.watermarks(broker, topic, 0) == (0, 3)


def test_recompression_memory_stays_bounded(broker):
    """Highly compressible batches near the inflation bound, rewritten at zstd's highest level
    and into gzip: the broker inflates and deflates as streams, so its peak RSS stays small."""
    from test_decompression import MIB, PEAK_RSS_LIMIT, bomb, peak_rss, produce_raw

    zstd22 = kutil.create_topic(
        broker, kutil.unique_topic("z22"), config={"compression.type": "zstd", "compression.zstd.level": "22"}
    )
    gz = kutil.create_topic(broker, kutil.unique_topic("gz"), config={"compression.type": "gzip", "compression.gzip.level": "9"})
    for i, topic in enumerate([zstd22, gz]):
        # 40 MiB of zero records in a small lz4 batch: under the bound, accepted and rewritten.
        err, base = produce_raw(broker, topic, bomb("lz4", 40, MIB), 100 + i)
        assert (err, base) == (0, 0), err
        assert_codec(broker, topic, "zstd" if topic == zstd22 else "gzip", 40)
    rss = peak_rss(broker)
    assert rss < PEAK_RSS_LIMIT, f"peak RSS {rss / MIB:.0f} MiB after recompressing"
    # Into an uncompressed topic the same batch would be 40 MiB: refused, nothing written.
    plain = kutil.create_topic(broker, kutil.unique_topic("pl"), config={"compression.type": "uncompressed"})
    err, _ = produce_raw(broker, plain, bomb("lz4", 40, MIB), 200)
    assert err == 10  # MESSAGE_TOO_LARGE
    assert kutil.watermarks(broker, plain, 0) == (0, 0)
    rss = peak_rss(broker)
    assert rss < PEAK_RSS_LIMIT, f"peak RSS {rss / MIB:.0f} MiB"
    print(f"peak RSS {rss / MIB:.1f} MiB")


def test_describe_configs_reports_codec_and_levels(broker_factory):
    from confluent_kafka.admin import ConfigResource, ConfigSource

    b = broker_factory(options={"compression.lz4.level": "5"})
    topic = kutil.create_topic(b, kutil.unique_topic("desc"), config={"compression.type": "lz4"})
    res = ConfigResource(ConfigResource.Type.TOPIC, topic)
    entries = kutil.admin(b).describe_configs([res])[res].result(timeout=15)
    assert entries["compression.type"].value == "lz4"
    assert entries["compression.type"].source == ConfigSource.DYNAMIC_TOPIC_CONFIG.value
    assert entries["compression.lz4.level"].value == "5"
    assert entries["compression.lz4.level"].source == ConfigSource.STATIC_BROKER_CONFIG.value
    assert entries["compression.gzip.level"].value == "-1"
    assert entries["compression.zstd.level"].value == "3"
    assert entries["compression.zstd.level"].source == ConfigSource.DEFAULT_CONFIG.value


def test_transactional_batches_are_rewritten_and_stay_transactional(broker):
    topic = kutil.create_topic(broker, kutil.unique_topic("txn"), config={"compression.type": "zstd"})
    p = kutil.producer(broker, **{"transactional.id": kutil.unique_topic("tx"), "compression.type": "gzip"})
    p.init_transactions(15)
    for commit, tag in [(False, "aborted"), (True, "committed")]:
        p.begin_transaction()
        for i in range(10):
            p.produce(topic, key=b"k", value=f"{tag}-{i}".encode(), partition=0)
        p.flush(15)
        if commit:
            p.commit_transaction(15)
        else:
            p.abort_transaction(15)
    batches = stored_batches(broker, topic)
    data = [b for b in batches if not b[1] & 0x20]  # control (marker) batches aside
    markers = [b for b in batches if b[1] & 0x20]
    assert {b[1] & 7 for b in data} == {CODEC_IDS["zstd"]}
    assert all(b[1] & 0x10 for b in data), "transactional flag lost in the rewrite"
    assert len(markers) == 2 and {b[1] & 7 for b in markers} == {0}, "markers stay uncompressed"
    c = kutil.consumer(broker, **{"isolation.level": "read_committed"})
    try:
        got = kutil.consume_exact(c, [TopicPartition(topic, 0, 0)], 10)
        assert [m.value() for m in got] == [f"committed-{i}".encode() for i in range(10)]
    finally:
        c.close()
