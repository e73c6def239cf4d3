"""The replica-placement admin APIs of a single broker, with real admin clients: DescribeLogDirs
(sizes per partition, the filesystem's total and usable bytes), ElectLeaders (nothing to elect)
and the partition reassignment APIs (no move is needed; moves to brokers that do not exist are
refused), plus their bad input."""

import struct

import pytest
from confluent_kafka import TopicPartition
from confluent_kafka.admin import AdminClient
from confluent_kafka import ElectionType

import kproto
import kutil

pytestmark = pytest.mark.timeout(120)

ERR_NONE = 0
ERR_UNKNOWN_TOPIC_OR_PARTITION = 3
ERR_ELECTION_NOT_NEEDED = 84
ERR_NO_REASSIGNMENT_IN_PROGRESS = 85
ERR_INVALID_REPLICA_ASSIGNMENT = 39


def produce(broker, topic, n, partition=0, size=100):
    p = kutil.producer(broker)
    for _ in range(n):
        p.produce(topic, value=b"x" * size, partition=partition)
    assert p.flush(30) == 0


def flexible_call(broker, api_key, version, body):
    """A request with header v2 (flexible versions); returns a Reader past the header."""
    c = kproto.Conn(broker.host, broker.port)
    try:
        c.send(kproto.request(api_key, version, 7, body, header_version=2))
        frame = c.read_frame()
    finally:
        c.close()
    r = kproto.Reader(frame)
    assert r.i32() == 7
    r.uvarint()  # response header tags
    return r


def cstr(s):
    return kproto.compact_string(s)


def test_describe_log_dirs_reports_sizes_and_the_filesystem(broker_factory):
    b = broker_factory({"num.partitions": 2})
    topic = kutil.create_topic(b, kutil.unique_topic(), partitions=2)
    produce(b, topic, 50, partition=1)
    # v1 (non-flexible), every topic (null): one dir, sizes per partition.
    c = kproto.Conn(b.host, b.port)
    try:
        c.send(kproto.request(35, 1, 3, struct.pack(">i", -1)))
        r = kproto.Reader(c.read_frame())
    finally:
        c.close()
    assert r.i32() == 3
    r.i32()  # throttle
    assert r.i32() == 1
    assert r.i16() == ERR_NONE
    assert r.string()  # the data directory
    sizes = {}
    for _ in range(r.i32()):
        name = r.string()
        for _ in range(r.i32()):
            part, size, lag, future = r.i32(), r.i64(), r.i64(), r.i8()
            assert (lag, future) == (0, 0)
            if name == topic:
                sizes[part] = size
    assert sizes[0] == 0 and sizes[1] > 50 * 100, sizes
    # kafka-python's describe_log_dirs sends v0, which Kafka 4 no longer serves either.
    from kafka import KafkaAdminClient

    a = KafkaAdminClient(bootstrap_servers=b.bootstrap)
    try:
        with pytest.raises(Exception):
            a.describe_log_dirs()
    finally:
        a.close()
    # v4 by hand: a chosen topic and partition, with the filesystem's bytes.
    body = kproto.uvarint(2) + cstr(topic) + kproto.uvarint(2) + struct.pack(">i", 1) + b"\x00" + b"\x00"
    r = flexible_call(b, 35, 4, body)
    r.i32()  # throttle
    assert r.i16() == ERR_NONE
    assert r.uvarint() - 1 == 1
    assert r.i16() == ERR_NONE
    r.take(r.uvarint() - 1)  # log dir
    assert r.uvarint() - 1 == 1
    assert r.take(r.uvarint() - 1).decode() == topic
    assert r.uvarint() - 1 == 1
    part, size, lag, future = r.i32(), r.i64(), r.i64(), r.i8()
    assert (part, lag, future) == (1, 0, 0) and size == sizes[1]
    r.uvarint()
    r.uvarint()
    total, usable = r.i64(), r.i64()
    assert total > 0 and 0 <= usable <= total


def test_elect_leaders_finds_nothing_to_elect(broker_factory):
    b = broker_factory({"num.partitions": 2})
    topic = kutil.create_topic(b, kutil.unique_topic(), partitions=2)
    a = AdminClient({"bootstrap.servers": b.bootstrap})
    # Named partitions: ELECTION_NOT_NEEDED each (this broker leads them all); an unknown one
    # is UNKNOWN_TOPIC_OR_PARTITION.
    res = a.elect_leaders(ElectionType.PREFERRED,
                          [TopicPartition(topic, 0), TopicPartition(topic, 1), TopicPartition(topic, 9)]
                          ).result(15)
    codes = {tp.partition: (e.code() if e is not None else 0) for tp, e in res.items()}
    assert codes == {0: ERR_ELECTION_NOT_NEEDED, 1: ERR_ELECTION_NOT_NEEDED,
                     9: ERR_UNKNOWN_TOPIC_OR_PARTITION}, codes
    # Every partition: Kafka leaves out those already led by their preferred replica.
    assert a.elect_leaders(ElectionType.PREFERRED, None).result(15) == {}
    from kafka import KafkaAdminClient

    k = KafkaAdminClient(bootstrap_servers=b.bootstrap)
    try:
        resp = k.perform_leader_election(1, {topic: [0]})
        [(name, parts)] = [(t[0], t[1]) for t in resp.replication_election_results]
        assert name == topic and [p[1] for p in parts] == [ERR_ELECTION_NOT_NEEDED]
    finally:
        k.close()


def reassign(broker, topic, partition, replicas, version=0):
    """AlterPartitionReassignments; replicas None cancels. Returns (top error, {partition: (code, msg)})."""
    reps = b"\x00" if replicas is None else kproto.uvarint(len(replicas) + 1) + b"".join(
        struct.pack(">i", r) for r in replicas)
    body = struct.pack(">i", 5000)
    if version >= 1:
        body += b"\x01"
    body += (kproto.uvarint(2) + cstr(topic) + kproto.uvarint(2) + struct.pack(">i", partition)
             + reps + b"\x00" + b"\x00" + b"\x00")
    r = flexible_call(broker, 45, version, body)
    r.i32()
    if version >= 1:
        r.i8()
    top = r.i16()
    n = r.uvarint()
    if n:
        r.take(n - 1)
    out = {}
    for _ in range(r.uvarint() - 1):
        r.take(r.uvarint() - 1)
        for _ in range(r.uvarint() - 1):
            p, code = r.i32(), r.i16()
            n = r.uvarint()
            out[p] = (code, r.take(n - 1).decode() if n else None)
            r.uvarint()
        r.uvarint()
    return top, out


def test_reassignments_move_nothing_and_refuse_unknown_brokers(broker_factory):
    b = broker_factory({"num.partitions": 1, "node.id": 1})
    topic = kutil.create_topic(b, kutil.unique_topic(), partitions=1)
    for version in (0, 1):
        assert reassign(b, topic, 0, [1], version) == (ERR_NONE, {0: (ERR_NONE, None)})
        top, out = reassign(b, topic, 0, [2], version)
        assert out[0][0] == ERR_INVALID_REPLICA_ASSIGNMENT
        assert "broker 2, but no such broker is registered" in out[0][1]
        assert reassign(b, topic, 0, [1, 1], version)[1][0][0] == ERR_INVALID_REPLICA_ASSIGNMENT
        assert reassign(b, topic, 0, [], version)[1][0][0] == ERR_INVALID_REPLICA_ASSIGNMENT
        assert reassign(b, topic, 0, None, version)[1][0][0] == ERR_NO_REASSIGNMENT_IN_PROGRESS
        assert reassign(b, topic, 5, [1], version)[1][5][0] == ERR_UNKNOWN_TOPIC_OR_PARTITION
        assert reassign(b, "no-such", 0, [1], version)[1][0][0] == ERR_UNKNOWN_TOPIC_OR_PARTITION
    # ListPartitionReassignments: nothing in progress, for all topics (null) or named ones.
    for topics in (b"\x00", kproto.uvarint(2) + cstr(topic) + kproto.uvarint(2) + struct.pack(">i", 0) + b"\x00"):
        r = flexible_call(b, 46, 0, struct.pack(">i", 5000) + topics + b"\x00")
        r.i32()
        assert r.i16() == ERR_NONE
        r.uvarint()  # null message
        assert r.uvarint() - 1 == 0


def describe_partitions(broker, topics, limit, cursor=None):
    """DescribeTopicPartitions v0: -> ([(error, name, [partition...])], next cursor or None)."""
    body = kproto.uvarint(len(topics) + 1) + b"".join(cstr(t) + b"\x00" for t in topics)
    body += struct.pack(">i", limit)
    body += b"\xff" if cursor is None else b"\x01" + cstr(cursor[0]) + struct.pack(">i", cursor[1]) + b"\x00"
    body += b"\x00"
    r = flexible_call(broker, 75, 0, body)
    r.i32()
    out = []
    for _ in range(r.uvarint() - 1):
        err = r.i16()
        n = r.uvarint()
        name = r.take(n - 1).decode() if n else None
        r.take(16)  # topic id
        r.i8()  # internal
        parts = []
        for _ in range(r.uvarint() - 1):
            r.i16()
            parts.append(r.i32())
            r.i32(), r.i32()  # leader, epoch
            for _ in range(3):  # replicas, isr, elr
                n = r.uvarint()
                for _ in range(max(n - 1, 0)):
                    r.i32()
            for _ in range(2):  # last known elr, offline
                n = r.uvarint()
                for _ in range(max(n - 1, 0)):
                    r.i32()
            r.uvarint()
        r.i32()  # authorized operations
        r.uvarint()
        out.append((err, name, parts))
    nxt = None
    if r.i8() >= 0:
        n = r.uvarint()
        nxt = (r.take(n - 1).decode(), r.i32())
        r.uvarint()
    return out, nxt


def test_describe_topic_partitions_pages_by_partition(broker_factory):
    b = broker_factory({"num.partitions": 1})
    big = kutil.create_topic(b, "dtp-a-" + kutil.unique_topic(), partitions=5)
    small = kutil.create_topic(b, "dtp-b-" + kutil.unique_topic(), partitions=1)
    # librdkafka's describe_topics (it asks with Metadata) still works beside the new API.
    from confluent_kafka import TopicCollection

    a = AdminClient({"bootstrap.servers": b.bootstrap})
    futures = a.describe_topics(TopicCollection([big]))  # kept: the binding answers through it
    d = futures[big].result(15)
    assert d.name == big and len(d.partitions) == 5 and not d.is_internal
    # Three pages of two partitions, the cursor moving on to the next topic.
    seen, cursor, pages = [], None, 0
    while True:
        out, cursor = describe_partitions(b, [small, big], 2, cursor)
        pages += 1
        seen += [(name, p) for err, name, parts in out for p in parts if err == 0]
        if cursor is None:
            break
    assert seen == [(big, p) for p in range(5)] + [(small, 0)]
    assert pages == 3
    # Every topic (an empty list), an unknown topic, a cursor not in the list, a bad index.
    out, _ = describe_partitions(b, [], 100)
    assert {name for _, name, _ in out} >= {big, small}
    out, _ = describe_partitions(b, ["no-such-topic"], 10)
    assert out == [(ERR_UNKNOWN_TOPIC_OR_PARTITION, "no-such-topic", [])]
    out, _ = describe_partitions(b, [big], 10, cursor=(small, 0))
    assert out[0][0] == 42  # INVALID_REQUEST
    out, _ = describe_partitions(b, [big], 10, cursor=(big, -1))
    assert out[0][0] == 42


def test_cli_log_dirs_describe(broker_factory):
    import json
    import os
    import subprocess

    from cairn_harness import cairn_bin

    b = broker_factory({"num.partitions": 2})
    topic = kutil.create_topic(b, kutil.unique_topic(), partitions=2)
    produce(b, topic, 20, partition=0)

    def cli(*args):
        argv = [str(cairn_bin()), "log-dirs", *args, "--bootstrap-server", b.bootstrap]
        env = {**os.environ, "CAIRN_LOG": "warn", "NO_COLOR": "1"}
        return subprocess.run(argv, capture_output=True, text=True, timeout=60, input="", env=env)

    p = cli("describe", "--topic", topic, "--output", "json")
    assert p.returncode == 0, p.stderr
    [d] = json.loads(p.stdout)
    assert d["broker"] == 1 and d["total_bytes"] > 0 and 0 <= d["usable_bytes"] <= d["total_bytes"]
    sizes = {x["partition"]: x["size"] for x in d["partitions"]}
    assert set(sizes) == {0, 1} and sizes[0] > 20 * 100 and sizes[1] == 0
    assert all(x["topic"] == topic and x["offset_lag"] == 0 for x in d["partitions"])
    table = cli("describe").stdout
    assert "usable" in table and topic in table
    bad = cli("describe", "--topic", "no-such-topic")
    assert bad.returncode != 0 and "does not exist" in bad.stderr


def test_cli_elect_leaders_and_reassign(broker_factory, tmp_path):
    import json
    import os
    import subprocess

    from cairn_harness import cairn_bin

    b = broker_factory({"num.partitions": 2})
    topic = kutil.create_topic(b, kutil.unique_topic(), partitions=2)

    def cli(*args):
        argv = [str(cairn_bin()), "topics", *args, "--bootstrap-server", b.bootstrap]
        env = {**os.environ, "CAIRN_LOG": "warn", "NO_COLOR": "1"}
        return subprocess.run(argv, capture_output=True, text=True, timeout=60, input="", env=env)

    p = cli("elect-leaders", "--topic", topic, "--partition", "0", "--partition", "1", "--output", "json")
    assert p.returncode == 0, p.stderr
    assert [(r["partition"], r["result"]) for r in json.loads(p.stdout)] == [
        (0, "already the leader"), (1, "already the leader")]
    p = cli("elect-leaders")
    assert p.returncode == 0 and "Nothing to do" in p.stdout
    p = cli("elect-leaders", "--election-type", "sideways")
    assert p.returncode != 0 and "preferred or unclean" in p.stderr

    plan = tmp_path / "plan.json"
    plan.write_text(json.dumps({"version": 1, "partitions": [
        {"topic": topic, "partition": 0, "replicas": [1]}]}))
    p = cli("reassign", "--reassignment-json-file", str(plan), "--output", "json")
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout) == [{"topic": topic, "partition": 0, "result": "reassigned"}]
    plan.write_text(json.dumps({"partitions": [{"topic": topic, "partition": 1, "replicas": [1, 7]}]}))
    p = cli("reassign", "--reassignment-json-file", str(plan))
    assert p.returncode != 0 and "broker 7, but no such broker is registered" in p.stdout
    p = cli("reassign", "--reassignment-json-file", str(plan), "--cancel")
    assert p.returncode != 0 and "No partition reassignment is in progress" in p.stdout
