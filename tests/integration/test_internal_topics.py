"""Internal topics (`__consumer_offsets`) are the group coordinator's own log: clients may read
them, but appends, CreatePartitions, DeleteTopics (by name and by id) and CreateTopics are
refused with Kafka's error codes, Metadata flags them internal and auto-creates them only with
the offsets topic's own settings, and a changed offsets.topic.num.partitions never re-hashes
groups that are already stored."""

import struct
import subprocess

import pytest
from confluent_kafka import KafkaError, KafkaException, TopicCollection
from confluent_kafka.admin import NewPartitions, NewTopic

import kproto
import kutil
from cairn_harness import cairn_bin
from groups_util import RawGroupClient, committed, gadmin, unique_group
from test_groups_offsets import java_partition_for

pytestmark = pytest.mark.timeout(120)

OFFSETS = "__consumer_offsets"
ERR_INVALID_TOPIC = 17
ERR_TOPIC_ALREADY_EXISTS = 36
ERR_INVALID_REQUEST = 42

OPTIONS = {
    "num.partitions": 4,
    "auto.create.topics.enable": "true",
    "group.initial.rebalance.delay.ms": 0,
    "offsets.topic.num.partitions": 3,
}


@pytest.fixture
def ibroker(broker_factory):
    return broker_factory(dict(OPTIONS))


def make_offsets_topic(broker):
    """FindCoordinator creates the offsets topic, as in Kafka."""
    c = RawGroupClient(broker)
    try:
        assert c.find_coordinator(unique_group()).error_code == 0
    finally:
        c.close()


def offsets_partitions(broker):
    md = kutil.admin(broker).list_topics(topic=OFFSETS, timeout=10)
    t = md.topics[OFFSETS]
    assert t.error is None, t.error
    return len(t.partitions)


def commit(broker, group, offsets):
    c = RawGroupClient(broker)
    try:
        assert c.find_coordinator(group).error_code == 0
        errs = c.commit(group, {tp: (off, "") for tp, off in offsets.items()})
        assert set(errs.values()) == {0}, errs
    finally:
        c.close()


def raw_call(broker, api_key, version, body, header_version=1):
    """One request on a fresh connection; returns the response frame after the correlation id
    (and, for flexible responses, still before the header's tagged fields)."""
    conn = kproto.Conn(broker.host, broker.port, timeout=15)
    try:
        conn.send(kproto.request(api_key, version, 1, body, client_id="internal-test",
                                 header_version=header_version))
        frame = conn.closed_or_response(1, timeout=15)
        assert frame != "closed", f"broker closed the connection on api {api_key} v{version}"
        return frame[4:]
    finally:
        conn.close()


def compact_nullable_string(r):
    n = r.uvarint()
    return None if n == 0 else r.take(n - 1).decode()


def end_offsets(broker, partitions):
    """{partition: end offset} of the offsets topic, through one consumer."""
    from confluent_kafka import TopicPartition

    c = kutil.consumer(broker)
    try:
        return {p: c.get_watermark_offsets(TopicPartition(OFFSETS, p), timeout=10, cached=False)[1]
                for p in range(partitions)}
    finally:
        c.close()


def cli(broker, *args):
    return subprocess.run([str(cairn_bin()), *args, "--bootstrap-server", broker.bootstrap],
                          capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)


# --------------------------------------------------------------------------
# CreatePartitions
# --------------------------------------------------------------------------
@pytest.mark.parametrize("validate_only", [False, True], ids=["create", "validate-only"])
def test_create_partitions_on_offsets_topic_is_refused(ibroker, validate_only):
    make_offsets_topic(ibroker)
    assert offsets_partitions(ibroker) == 3
    fs = kutil.admin(ibroker).create_partitions([NewPartitions(OFFSETS, 8)], validate_only=validate_only,
                                                request_timeout=15)
    with pytest.raises(KafkaException) as ei:
        fs[OFFSETS].result(timeout=20)
    err = ei.value.args[0]
    assert err.code() == KafkaError.TOPIC_EXCEPTION, err
    assert "Cannot add partitions to internal topic __consumer_offsets" in err.str(), err
    assert offsets_partitions(ibroker) == 3


def test_create_partitions_on_offsets_topic_is_refused_kafka_python(ibroker):
    from kafka.admin import KafkaAdminClient
    from kafka.admin import NewPartitions as KpNewPartitions
    from kafka.errors import InvalidTopicError

    make_offsets_topic(ibroker)
    a = KafkaAdminClient(bootstrap_servers=ibroker.bootstrap, client_id="internal-kp", request_timeout_ms=15000)
    try:
        with pytest.raises(InvalidTopicError):
            a.create_partitions({OFFSETS: KpNewPartitions(total_count=6)})
    finally:
        a.close()
    assert offsets_partitions(ibroker) == 3


# --------------------------------------------------------------------------
# DeleteTopics
# --------------------------------------------------------------------------
def delete_topics_v6(broker, name=None, topic_id=b"\0" * 16):
    """DeleteTopics v6 for one topic by name or by id -> (name, id, error code, message)."""
    name_field = kproto.uvarint(0) if name is None else kproto.compact_string(name)
    body = (kproto.uvarint(2) + name_field + topic_id + kproto.uvarint(0)
            + kproto.i32(10000) + kproto.uvarint(0))
    r = kproto.Reader(raw_call(broker, kproto.API_DELETE_TOPICS, 6, body, header_version=2))
    r.uvarint()  # response header tagged fields
    r.i32()  # throttle
    assert r.uvarint() == 2
    return compact_nullable_string(r), r.take(16), r.i16(), compact_nullable_string(r)


def test_delete_offsets_topic_by_name_is_refused(ibroker):
    make_offsets_topic(ibroker)
    fs = gadmin(ibroker).delete_topics([OFFSETS], operation_timeout=10, request_timeout=10)
    with pytest.raises(KafkaException) as ei:
        fs[OFFSETS].result(timeout=15)
    assert ei.value.args[0].code() == KafkaError.TOPIC_EXCEPTION
    # librdkafka does not pass the message on; v6 carries it.
    name, _id, code, msg = delete_topics_v6(ibroker, name=OFFSETS)
    assert (name, code) == (OFFSETS, ERR_INVALID_TOPIC), (code, msg)
    assert msg and msg.startswith("Cannot delete internal topic __consumer_offsets"), msg
    assert offsets_partitions(ibroker) == 3


def test_delete_offsets_topic_by_id_is_refused(ibroker):
    """DeleteTopics v6 naming the topic by id only (no Python client sends that)."""
    make_offsets_topic(ibroker)
    [desc] = kutil.admin(ibroker).describe_topics(TopicCollection([OFFSETS]), request_timeout=10).values()
    desc = desc.result(timeout=15)
    assert desc.is_internal
    tid = struct.pack(">qq", desc.topic_id.get_most_significant_bits(),
                      desc.topic_id.get_least_significant_bits())
    name, got_id, code, msg = delete_topics_v6(ibroker, topic_id=tid)
    assert (name, got_id) == (OFFSETS, tid)
    assert code == ERR_INVALID_TOPIC, (code, msg)
    assert msg and msg.startswith("Cannot delete internal topic __consumer_offsets"), msg
    assert offsets_partitions(ibroker) == 3


# --------------------------------------------------------------------------
# CreateTopics and Metadata
# --------------------------------------------------------------------------
def test_create_topics_of_offsets_topic(ibroker):
    """Before the broker made it: INVALID_REQUEST (Kafka's answer for creating a reserved internal
    topic), and nothing is created; after: TOPIC_ALREADY_EXISTS."""
    a = kutil.admin(ibroker)
    for validate_only in (True, False):
        fs = a.create_topics([NewTopic(OFFSETS, num_partitions=7, replication_factor=1)],
                             validate_only=validate_only, request_timeout=15)
        with pytest.raises(KafkaException) as ei:
            fs[OFFSETS].result(timeout=20)
        err = ei.value.args[0]
        assert err.code() == KafkaError.INVALID_REQUEST, err
        assert "Creation of internal topic __consumer_offsets is prohibited" in err.str(), err
    assert OFFSETS not in a.list_topics(timeout=10).topics
    make_offsets_topic(ibroker)
    assert offsets_partitions(ibroker) == 3
    fs = a.create_topics([NewTopic(OFFSETS, num_partitions=7, replication_factor=1)], request_timeout=15)
    with pytest.raises(KafkaException) as ei:
        fs[OFFSETS].result(timeout=20)
    assert ei.value.args[0].code() == KafkaError.TOPIC_ALREADY_EXISTS
    assert offsets_partitions(ibroker) == 3


def parse_metadata_v1_internal(frame):
    """{topic: (error, is_internal, partition count)} from a Metadata v1 response."""
    r = kproto.Reader(frame)
    r.i32()  # correlation id
    for _ in range(r.i32()):
        r.i32(), r.string(), r.i32(), r.string()
    r.i32()
    out = {}
    for _ in range(r.i32()):
        err, name, internal = r.i16(), r.string(), r.i8()
        n = r.i32()
        for _ in range(n):
            r.i16(), r.i32(), r.i32()
            [r.i32() for _ in range(r.i32())]
            [r.i32() for _ in range(r.i32())]
        out[name] = (err, bool(internal), n)
    return out


def test_metadata_auto_creates_offsets_topic_with_its_own_settings(ibroker):
    """Metadata v1 (which always asks for auto-creation) for __consumer_offsets on a fresh broker:
    created as the coordinator creates it (offsets.topic.num.partitions, compacted), not with
    num.partitions, and flagged internal."""
    conn = kproto.Conn(ibroker.host, ibroker.port, timeout=15)
    try:
        conn.send(kproto.metadata_request(1, [OFFSETS]))
        got = parse_metadata_v1_internal(conn.read_frame())
    finally:
        conn.close()
    assert got[OFFSETS] == (0, True, 3), got
    assert offsets_partitions(ibroker) == 3
    [desc] = kutil.admin(ibroker).describe_topics(TopicCollection([OFFSETS]), request_timeout=10).values()
    assert desc.result(timeout=15).is_internal
    from confluent_kafka.admin import ConfigResource

    [fut] = kutil.admin(ibroker).describe_configs([ConfigResource("topic", OFFSETS)]).values()
    assert fut.result(timeout=15)["cleanup.policy"].value == "compact"
    # The coordinator adopted that topic: groups work and land on its partitions.
    topic = kutil.create_topic(ibroker, kutil.unique_topic(), partitions=1)
    group = "my-group"
    commit(ibroker, group, {(topic, 0): 5})
    assert committed(ibroker, group, [(topic, 0)]) == {(topic, 0): 5}
    ends = end_offsets(ibroker, 3)
    assert [p for p, end in ends.items() if end > 0] == [java_partition_for(group, 3)], ends


# --------------------------------------------------------------------------
# Produce
# --------------------------------------------------------------------------
def test_produce_to_offsets_topic_is_refused_with_kafkas_message(ibroker):
    """Produce v8 (the first with an error message): INVALID_TOPIC_EXCEPTION and Kafka's text;
    an unknown partition of the topic is UNKNOWN_TOPIC_OR_PARTITION first, as in Kafka."""
    make_offsets_topic(ibroker)
    batch = kproto.record_batch([(b"\x00\x01junk", b"\xff" * 8)])
    body = (kproto.string(None) + kproto.i16(1) + kproto.i32(10000)
            + kproto.array([kproto.string(OFFSETS) + kproto.array(
                [kproto.i32(0) + kproto.nbytes(batch), kproto.i32(99) + kproto.nbytes(batch)])]))
    r = kproto.Reader(raw_call(ibroker, kproto.API_PRODUCE, 8, body))
    out = {}
    for _ in range(r.i32()):
        r.string()
        for _ in range(r.i32()):
            part, err, _base, _lat, _lso = r.i32(), r.i16(), r.i64(), r.i64(), r.i64()
            for _ in range(r.i32()):
                r.i32(), r.string()
            out[part] = (err, r.string())
    assert out[0] == (ERR_INVALID_TOPIC, "Cannot append to internal topic __consumer_offsets"), out
    assert out[99][0] == kproto.UNKNOWN_TOPIC_OR_PARTITION, out
    assert end_offsets(ibroker, 3) == {0: 0, 1: 0, 2: 0}


# --------------------------------------------------------------------------
# A different partition count never re-hashes stored groups
# --------------------------------------------------------------------------
@pytest.mark.parametrize("restart_partitions", [2, 7])
def test_offsets_partition_count_never_changes_under_stored_groups(broker_factory, restart_partitions):
    """offsets.topic.num.partitions=5, commits for several groups; CreatePartitions on the offsets
    topic is refused; a restart with another setting keeps 5 partitions, every group's offsets,
    the coordinator and the partition each group's records go to."""
    b = broker_factory({**OPTIONS, "offsets.topic.num.partitions": 5})
    topic = kutil.create_topic(b, kutil.unique_topic(), partitions=2)
    groups = [f"rehash-{i}" for i in range(8)]
    old = {g: java_partition_for(g, 5) for g in groups}
    # Most of these groups would move under the new count, so a re-hash cannot go unnoticed.
    assert len(set(old.values())) == 5
    assert sum(java_partition_for(g, restart_partitions) != old[g] for g in groups) >= 5
    for i, g in enumerate(groups):
        commit(b, g, {(topic, 0): 10 + i, (topic, 1): 20 + i})
    ends = end_offsets(b, 5)
    assert {p for p, e in ends.items() if e > 0} == set(old.values()), ends

    fs = kutil.admin(b).create_partitions([NewPartitions(OFFSETS, 10)], request_timeout=15)
    with pytest.raises(KafkaException) as ei:
        fs[OFFSETS].result(timeout=20)
    assert ei.value.args[0].code() == KafkaError.TOPIC_EXCEPTION

    c = RawGroupClient(b)
    before = c.find_coordinator(groups[0])
    c.close()
    b.stop()
    b.options["offsets.topic.num.partitions"] = restart_partitions
    b.start()
    assert offsets_partitions(b) == 5
    c = RawGroupClient(b)
    try:
        for g in groups:
            after = c.find_coordinator(g)
            assert (after.error_code, after.coordinator_id, after.port) == (0, before.coordinator_id, before.port)
    finally:
        c.close()
    for i, g in enumerate(groups):
        assert committed(b, g, [(topic, 0), (topic, 1)]) == {(topic, 0): 10 + i, (topic, 1): 20 + i}, g
    # New records of each group still go to the partition its stored state is in.
    for i, g in enumerate(groups):
        before_end = end_offsets(b, 5)
        commit(b, g, {(topic, 0): 100 + i})
        after_end = end_offsets(b, 5)
        grown = [p for p in range(5) if after_end[p] > before_end[p]]
        assert grown == [old[g]], (g, grown)
    b.restart(graceful=False)
    for i, g in enumerate(groups):
        assert committed(b, g, [(topic, 0), (topic, 1)]) == {(topic, 0): 100 + i, (topic, 1): 20 + i}, g


# --------------------------------------------------------------------------
# The CLI shows the broker's refusal
# --------------------------------------------------------------------------
def test_cli_shows_the_refusals(ibroker):
    make_offsets_topic(ibroker)
    alter = cli(ibroker, "topics", "alter", OFFSETS, "--partitions", "9")
    assert alter.returncode != 0, alter
    assert "Cannot add partitions to internal topic __consumer_offsets" in alter.stderr, alter.stderr
    delete = cli(ibroker, "topics", "delete", OFFSETS)
    assert delete.returncode != 0, delete
    assert "Cannot delete internal topic __consumer_offsets" in delete.stderr, delete.stderr
    create = cli(ibroker, "topics", "create", OFFSETS, "--partitions", "9")
    assert create.returncode != 0, create
    assert "topic '__consumer_offsets' already exists" in create.stderr, create.stderr
    assert offsets_partitions(ibroker) == 3
