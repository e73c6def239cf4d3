"""DeleteRecords with real clients: confluent-kafka's and kafka-python's admin clients move a
partition's log start; consumers below it reset by their policy; the new start survives a
broker kill -9; bad input gets Kafka's errors; `cairn topics delete-records`."""

import json
import os
import struct
import subprocess

import pytest
from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.admin import AdminClient

import kproto
import kutil
from cairn_harness import cairn_bin

pytestmark = pytest.mark.timeout(120)

ERR_NONE = 0
ERR_OFFSET_OUT_OF_RANGE = 1
ERR_UNKNOWN_TOPIC_OR_PARTITION = 3
ERR_INVALID_TOPIC = 17
ERR_POLICY_VIOLATION = 44
API_DELETE_RECORDS = 21


def produce(broker, topic, n, partitions=1):
    p = kutil.producer(broker)
    for part in range(partitions):
        for i in range(n):
            p.produce(topic, value=f"v{part}-{i}".encode(), partition=part)
    assert p.flush(30) == 0


def earliest(broker, topic, partition=0):
    c = Consumer(kutil.base_conf(broker, **{"group.id": "probe"}))
    try:
        lo, hi = c.get_watermark_offsets(TopicPartition(topic, partition), timeout=10)
        return lo, hi
    finally:
        c.close()


def delete(broker, topic, partition, offset):
    a = AdminClient({"bootstrap.servers": broker.bootstrap})
    [f] = a.delete_records([TopicPartition(topic, partition, offset)]).values()
    return f.result(15)


def raw_delete_records(broker, topics, version=1):
    """DeleteRecords v0/v1 (non-flexible): topics [(name, [(partition, offset)])] ->
    {(name, partition): (low_watermark, error)}."""
    body = struct.pack(">i", len(topics))
    for name, parts in topics:
        body += kproto.string(name) + struct.pack(">i", len(parts))
        for p, off in parts:
            body += struct.pack(">iq", p, off)
    body += struct.pack(">i", 5000)
    c = kproto.Conn(broker.host, broker.port)
    try:
        c.send(kproto.request(API_DELETE_RECORDS, version, 1, body))
        frame = c.read_frame()
    finally:
        c.close()
    r = kproto.Reader(frame)
    assert r.i32() == 1  # correlation id
    r.i32()  # throttle
    out = {}
    for _ in range(r.i32()):
        name = r.string()
        for _ in range(r.i32()):
            p, low, err = r.i32(), r.i64(), r.i16()
            out[(name, p)] = (low, err)
    return out


def test_admin_clients_move_the_log_start_and_consumers_reset(broker_factory):
    b = broker_factory({"num.partitions": 2})
    topic = kutil.create_topic(b, kutil.unique_topic(), partitions=2)
    produce(b, topic, 10, partitions=2)
    # confluent-kafka: partition 0 below offset 4.
    res = delete(b, topic, 0, 4)
    assert res.low_watermark == 4
    assert earliest(b, topic, 0) == (4, 10)
    # kafka-python: partition 1 below 7.
    from kafka import KafkaAdminClient
    from kafka.structs import TopicPartition as KpTP

    ka = KafkaAdminClient(bootstrap_servers=b.bootstrap)
    try:
        out = ka.delete_records({KpTP(topic, 1): 7})
        assert out[KpTP(topic, 1)]["low_watermark"] == 7, out
        # An unknown topic: Kafka's error, after a Metadata answer whose authorized-operations
        # field kafka-python decodes for error entries too.
        from kafka.errors import UnknownTopicOrPartitionError

        with pytest.raises(UnknownTopicOrPartitionError):
            ka.delete_records({KpTP("no-such-topic", 0): 1})
    finally:
        ka.close()
    assert earliest(b, topic, 1) == (7, 10)

    # A group committed offset 2 on partition 0, now below the start: the consumer gets
    # OFFSET_OUT_OF_RANGE and its reset policy applies (earliest: the new start).
    group = f"dr-{topic}"
    c = Consumer(kutil.base_conf(b, **{"group.id": group, "enable.auto.commit": False}))
    c.commit(offsets=[TopicPartition(topic, 0, 2)], asynchronous=False)
    c.close()
    for policy, first in (("earliest", 4), ("latest", None)):
        c = Consumer(kutil.base_conf(b, **{"group.id": group, "enable.auto.commit": False,
                                           "auto.offset.reset": policy}))
        c.assign([TopicPartition(topic, 0)])
        got = []
        try:
            if first is None:
                for _ in range(20):
                    m = c.poll(0.2)
                    assert m is None or m.error() is not None, "latest starts at the end"
                # New records arrive from the end on.
                produce(b, topic, 1)
                while not got:
                    m = c.poll(1)
                    if m is not None and not m.error():
                        got.append(m.offset())
                assert got == [10]
            else:
                while not got:
                    m = c.poll(1)
                    if m is not None and not m.error():
                        got.append(m.offset())
                assert got == [first]
        finally:
            c.close()

    # kafka-python too, through a fetch below the start.
    kc = kutil.kp_consumer(b, auto_offset_reset="earliest")
    try:
        tp = KpTP(topic, 1)
        kc.assign([tp])
        kc.seek(tp, 0)
        recs = kc.poll(timeout_ms=5000).get(tp, [])
        assert recs and recs[0].offset == 7
    finally:
        kc.close()


def test_the_new_start_survives_kill9(broker_factory):
    b = broker_factory({"num.partitions": 1, "log.segment.bytes": 1024})
    topic = kutil.create_topic(b, kutil.unique_topic(), partitions=1)
    p = kutil.producer(b)
    for i in range(200):
        p.produce(topic, value=b"x" * 100, partition=0)
        if i % 20 == 19:
            assert p.flush(30) == 0  # one batch each: several segments
    assert delete(b, topic, 0, 150).low_watermark == 150
    b.kill9()
    b.start()
    assert earliest(b, topic, 0) == (150, 200)
    # Whole segments below the start are gone from disk: the first one left holds offset 150.
    [part_dir] = [d for d in b.data_dir.rglob(f"{topic}*") if d.is_dir()] or [None]
    logs = sorted(int(p.stem) for p in part_dir.rglob("*.log"))
    assert 0 < logs[0] <= 150, logs


def test_bad_input_gets_kafkas_errors(broker_factory):
    b = broker_factory({"num.partitions": 1})
    topic = kutil.create_topic(b, kutil.unique_topic(), partitions=1)
    compacted = kutil.create_topic(b, kutil.unique_topic(), partitions=1,
                                   config={"cleanup.policy": "compact"})
    produce(b, topic, 5)
    for version in (0, 1):
        out = raw_delete_records(b, [
            (topic, [(0, 99), (0, -5), (7, 1)]),
            ("no-such-topic", [(0, 1)]),
            (compacted, [(0, 0)]),
            ("__consumer_offsets", [(0, 0)]),
        ], version)
        # One answer per (topic, partition); repeated partitions answer once, as a map.
        assert out[(topic, 7)] == (-1, ERR_UNKNOWN_TOPIC_OR_PARTITION)
        assert out[("no-such-topic", 0)] == (-1, ERR_UNKNOWN_TOPIC_OR_PARTITION)
        assert out[(compacted, 0)] == (-1, ERR_POLICY_VIOLATION)
        assert out[("__consumer_offsets", 0)] == (-1, ERR_INVALID_TOPIC)
        assert out[(topic, 0)][1] == ERR_OFFSET_OUT_OF_RANGE
    # -1 is the high watermark; nothing below the start moves it back.
    assert raw_delete_records(b, [(topic, [(0, -1)])]) == {(topic, 0): (5, ERR_NONE)}
    assert raw_delete_records(b, [(topic, [(0, 2)])]) == {(topic, 0): (5, ERR_NONE)}
    assert earliest(b, topic, 0) == (5, 5)


def cli(broker, *args, check=True):
    argv = [str(cairn_bin()), *args, "--bootstrap-server", broker.bootstrap]
    env = {**os.environ, "CAIRN_LOG": "warn", "NO_COLOR": "1"}
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=60, input="", env=env)
    if check:
        assert proc.returncode == 0, f"{args}: {proc.stdout}\n{proc.stderr}"
    return proc


def test_cli_delete_records(broker_factory, tmp_path):
    b = broker_factory({"num.partitions": 2})
    topic = kutil.create_topic(b, kutil.unique_topic(), partitions=2)
    produce(b, topic, 10, partitions=2)
    # A dry run says what would go and changes nothing.
    dry = json.loads(cli(b, "topics", "delete-records", topic, "--partition", "0", "--before", "3",
                         "--dry-run", "--output", "json").stdout)
    assert dry == [{"topic": topic, "partition": 0, "low_watermark_before": 0, "low_watermark": 3,
                    "records_deleted": 3, "dry_run": True}]
    assert earliest(b, topic, 0) == (0, 10)
    out = cli(b, "topics", "delete-records", topic, "--partition", "0", "--before", "3").stdout
    assert "RECORDS-DELETED" in out and earliest(b, topic, 0) == (3, 10)
    # kafka-delete-records.sh's file.
    f = tmp_path / "offsets.json"
    f.write_text(json.dumps({"version": 1, "partitions": [
        {"topic": topic, "partition": 0, "offset": 6}, {"topic": topic, "partition": 1, "offset": -1}]}))
    done = json.loads(cli(b, "topics", "delete-records", "--offset-json-file", str(f),
                          "--output", "json").stdout)
    assert [(d["partition"], d["low_watermark"], d["records_deleted"]) for d in done] == [(0, 6, 3), (1, 10, 10)]
    # Clear errors.
    bad = cli(b, "topics", "delete-records", topic, "--partition", "0", "--before", "99", check=False)
    assert bad.returncode != 0 and "past the high watermark" in bad.stderr
    bad = cli(b, "topics", "delete-records", "nope", "--partition", "0", "--before", "1", check=False)
    assert bad.returncode != 0 and "does not exist" in bad.stderr
    bad = cli(b, "topics", "delete-records", topic, "--partition", "5", "--before", "1", check=False)
    assert bad.returncode != 0 and "no partition 5" in bad.stderr
