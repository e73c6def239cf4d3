"""Bad group and offset requests get the Kafka error codes, and the broker keeps serving:
empty group id, commits to unknown topics/partitions, stale generations, unknown members,
oversized offset metadata, bad session timeouts, incompatible protocols."""

import pytest
from confluent_kafka import KafkaError, KafkaException, TopicPartition
from kafka.protocol.group import JoinGroupResponse, SyncGroupRequest, SyncGroupResponse

import kutil
from groups_util import (  # noqa: F401  (gbroker is a fixture)
    API_SYNC_GROUP,
    ERR_ILLEGAL_GENERATION,
    ERR_INCONSISTENT_GROUP_PROTOCOL,
    ERR_INVALID_GROUP_ID,
    ERR_INVALID_SESSION_TIMEOUT,
    ERR_MEMBER_ID_REQUIRED,
    ERR_NONE,
    ERR_OFFSET_METADATA_TOO_LARGE,
    ERR_UNKNOWN_MEMBER_ID,
    ERR_UNKNOWN_TOPIC_OR_PARTITION,
    Member,
    RawGroupClient,
    committed,
    drive,
    gbroker,
    group_conf,
    parse_assignment,
    produce_values,
    unique_group,
)

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def raw(gbroker):
    c = RawGroupClient(gbroker)
    yield c
    c.close()


def still_serving(broker):
    """A fresh group on a fresh topic joins, consumes and commits."""
    topic = kutil.create_topic(broker, kutil.unique_topic("alive"), partitions=2)
    produced = produce_values(broker, topic, 3, 2)
    group = unique_group("alive")
    m = Member("alive", broker, group, [topic])
    try:
        drive([m], lambda: len(m.messages) >= 6, 30, "a new group to consume 6 records")
        assert {(p, o, v) for _t, p, o, v in m.messages} == produced
        assert not m.commit_errors, m.commit_errors
        assert committed(broker, group, [(topic, 0), (topic, 1)]) == {(topic, 0): 3, (topic, 1): 3}
    finally:
        m.close()


def joined_member(raw, group, topic):
    """Join and sync a single raw member owning every partition; returns the JoinGroup reply."""
    j = raw.join_full(group, topics=[topic])
    assert j.error_code == ERR_NONE, j
    s = raw.sync(group, j.generation_id, j.member_id, {j.member_id: {topic: [0, 1, 2, 3]}})
    assert s.error_code == ERR_NONE, s
    return j


def test_empty_group_id(gbroker, raw):
    topic = kutil.create_topic(gbroker, kutil.unique_topic(), partitions=4)
    r = raw.join("", topics=[topic])
    assert (r.error_code, r.generation_id) == (ERR_INVALID_GROUP_ID, -1)
    r = raw.join("", member_id="some-member", topics=[topic])
    assert r.error_code == ERR_INVALID_GROUP_ID
    assert raw.commit("", {(topic, 0): (1, "")}) == {(topic, 0): ERR_INVALID_GROUP_ID}
    still_serving(gbroker)


def test_commit_to_unknown_topic_and_partition(gbroker, raw):
    topic = kutil.create_topic(gbroker, kutil.unique_topic(), partitions=4)
    group = unique_group()
    raw.find_coordinator(group)
    errs = raw.commit(group, {
        (topic, 0): (5, ""),
        (topic, 4): (5, ""),  # one past the last partition
        ("no-such-topic", 0): (5, ""),
    })
    assert errs == {
        (topic, 0): ERR_NONE,
        (topic, 4): ERR_UNKNOWN_TOPIC_OR_PARTITION,
        ("no-such-topic", 0): ERR_UNKNOWN_TOPIC_OR_PARTITION,
    }
    got, top = raw.fetch(group, [(topic, 0), (topic, 1)])
    assert top == ERR_NONE
    assert {tp: v[0] for tp, v in got.items()} == {(topic, 0): 5, (topic, 1): -1}
    # The same through librdkafka.
    from confluent_kafka import Consumer

    c = Consumer(group_conf(gbroker, group))
    try:
        res = c.commit(offsets=[TopicPartition("no-such-topic", 0, 7), TopicPartition(topic, 1, 7)],
                       asynchronous=False)
        by = {(tp.topic, tp.partition): tp.error for tp in res}
        assert by[(topic, 1)] is None
        assert by[("no-such-topic", 0)].code() == KafkaError.UNKNOWN_TOPIC_OR_PART, by
    except KafkaException as e:
        # librdkafka may raise for the request when a partition failed.
        assert e.args[0].code() == KafkaError.UNKNOWN_TOPIC_OR_PART, e
    finally:
        c.close()
    assert committed(gbroker, group, [(topic, 0), (topic, 1)])[(topic, 0)] == 5
    still_serving(gbroker)


def test_stale_and_unknown_generation_and_member(gbroker, raw):
    topic = kutil.create_topic(gbroker, kutil.unique_topic(), partitions=4)
    group = unique_group()
    j1 = joined_member(raw, group, topic)
    gen1 = j1.generation_id
    assert raw.commit(group, {(topic, 0): (1, "")}, gen1, j1.member_id) == {(topic, 0): ERR_NONE}
    assert raw.commit(group, {(topic, 0): (2, "")}, gen1 + 1, j1.member_id) == {(topic, 0): ERR_ILLEGAL_GENERATION}
    assert raw.commit(group, {(topic, 0): (2, "")}, gen1, "not-a-member") == {(topic, 0): ERR_UNKNOWN_MEMBER_ID}
    assert raw.heartbeat(group, gen1 + 1, j1.member_id) == ERR_ILLEGAL_GENERATION
    assert raw.heartbeat(group, gen1, "not-a-member") == ERR_UNKNOWN_MEMBER_ID

    # A second member joins: the group moves to a new generation once the first rejoins.
    other = RawGroupClient(gbroker)
    try:
        other.find_coordinator(group)
        first = other.join(group, topics=[topic])
        assert first.error_code == ERR_MEMBER_ID_REQUIRED
        cid = other.join(group, member_id=first.member_id, topics=[topic], wait=False)
        rejoin = raw.join(group, member_id=j1.member_id, topics=[topic])
        j2 = other.recv(cid, JoinGroupResponse[5])
        assert rejoin.error_code == ERR_NONE and j2.error_code == ERR_NONE
        gen2 = rejoin.generation_id
        assert gen2 == j2.generation_id == gen1 + 1
        # The old generation is refused now; the new one is accepted.
        assert raw.commit(group, {(topic, 0): (3, "")}, gen1, j1.member_id) == {(topic, 0): ERR_ILLEGAL_GENERATION}
        assert raw.heartbeat(group, gen1, j1.member_id) == ERR_ILLEGAL_GENERATION
        assert raw.sync(group, gen1, j1.member_id, {}).error_code == ERR_ILLEGAL_GENERATION
        assert rejoin.leader_id == j2.leader_id
        members = {j1.member_id: raw, j2.member_id: other}
        leader_id = rejoin.leader_id
        follower_id = next(m for m in members if m != leader_id)
        cid = members[follower_id].send(
            API_SYNC_GROUP, 3, SyncGroupRequest[3](group, gen2, follower_id, None, []))
        plan = {j1.member_id: {topic: [0, 1]}, j2.member_id: {topic: [2, 3]}}
        s = members[leader_id].sync(group, gen2, leader_id, plan)
        s_f = members[follower_id].recv(cid, SyncGroupResponse[3])
        assert s.error_code == ERR_NONE and s_f.error_code == ERR_NONE
        assert parse_assignment(s.member_assignment) == plan[leader_id]
        assert parse_assignment(s_f.member_assignment) == plan[follower_id]
        assert raw.commit(group, {(topic, 0): (4, "")}, gen2, j1.member_id) == {(topic, 0): ERR_NONE}
    finally:
        other.close()
    got, _ = raw.fetch(group, [(topic, 0)])
    assert got[(topic, 0)][0] == 4
    still_serving(gbroker)


def test_offset_metadata_too_large(gbroker, raw):
    topic = kutil.create_topic(gbroker, kutil.unique_topic(), partitions=4)
    group = unique_group()
    raw.find_coordinator(group)
    assert raw.commit(group, {(topic, 0): (3, "m" * 4096)}) == {(topic, 0): ERR_NONE}
    errs = raw.commit(group, {(topic, 0): (9, "m" * 4097), (topic, 1): (9, "ok")})
    # Kafka refuses only the partition whose metadata is too long.
    assert errs == {(topic, 0): ERR_OFFSET_METADATA_TOO_LARGE, (topic, 1): ERR_NONE}
    got, _ = raw.fetch(group, [(topic, 0), (topic, 1)])
    assert got[(topic, 0)][:2] == (3, "m" * 4096)
    assert got[(topic, 1)][:2] == (9, "ok")
    # Through librdkafka.
    from confluent_kafka import Consumer

    c = Consumer(group_conf(gbroker, group))
    try:
        try:
            res = c.commit(offsets=[TopicPartition(topic, 2, 5, metadata="x" * 5000)], asynchronous=False)
            err = res[0].error
        except KafkaException as e:
            err = e.args[0]
        assert err is not None and err.code() == KafkaError.OFFSET_METADATA_TOO_LARGE, err
    finally:
        c.close()
    got, _ = raw.fetch(group, [(topic, 2)])
    assert got[(topic, 2)][0] == -1
    still_serving(gbroker)


def test_session_timeout_out_of_range(gbroker, raw):
    topic = kutil.create_topic(gbroker, kutil.unique_topic(), partitions=4)
    group = unique_group()
    raw.find_coordinator(group)
    # group.min.session.timeout.ms defaults to 6000, the max to 1800000.
    assert raw.join(group, topics=[topic], session_ms=5999).error_code == ERR_INVALID_SESSION_TIMEOUT
    assert raw.join(group, topics=[topic], session_ms=1800001).error_code == ERR_INVALID_SESSION_TIMEOUT
    j = raw.join_full(group, topics=[topic], session_ms=6000)
    assert j.error_code == ERR_NONE
    still_serving(gbroker)


def test_incompatible_assignment_protocols(gbroker, raw):
    topic = kutil.create_topic(gbroker, kutil.unique_topic(), partitions=4)
    group = unique_group()
    joined_member(raw, group, topic)  # speaks only "range"
    other = RawGroupClient(gbroker)
    try:
        other.find_coordinator(group)
        r = other.join(group, topics=[topic], protocol="roundrobin")
        if r.error_code == ERR_MEMBER_ID_REQUIRED:
            r = other.join(group, member_id=r.member_id, topics=[topic], protocol="roundrobin")
        assert r.error_code == ERR_INCONSISTENT_GROUP_PROTOCOL
    finally:
        other.close()
    still_serving(gbroker)


def test_internal_offsets_topic_is_protected(gbroker, raw):
    """Clients may not produce to or delete __consumer_offsets (INVALID_TOPIC_EXCEPTION, as in
    Kafka); group state is untouched and survives a restart."""
    topic = kutil.create_topic(gbroker, kutil.unique_topic(), partitions=1)
    group = unique_group()
    raw.find_coordinator(group)
    assert raw.commit(group, {(topic, 0): (5, "")}) == {(topic, 0): ERR_NONE}
    p = kutil.producer(gbroker, **{"message.timeout.ms": 5000})
    log = kutil.produce_all(p, "__consumer_offsets", [(b"\x00\x01junk", b"\xff" * 8, 0, None)])
    assert [e.code() for e, _k, _v in log.errors] == [KafkaError.TOPIC_EXCEPTION]
    from groups_util import gadmin

    fs = gadmin(gbroker).delete_topics(["__consumer_offsets"], operation_timeout=10, request_timeout=10)
    with pytest.raises(KafkaException) as ei:
        fs["__consumer_offsets"].result(timeout=15)
    assert ei.value.args[0].code() == KafkaError.TOPIC_EXCEPTION
    gbroker.restart(graceful=False)
    assert committed(gbroker, group, [(topic, 0)]) == {(topic, 0): 5}
    still_serving(gbroker)


def test_group_writes_before_any_find_coordinator_are_durable(gbroker, raw):
    """A client that skips FindCoordinator on a fresh broker: the offsets topic is created on
    demand, so what is acknowledged is also what survives a crash (nothing lives only in memory)."""
    topic = kutil.create_topic(gbroker, kutil.unique_topic(), partitions=1)
    # No FindCoordinator has been sent to this broker yet.
    errs = raw.commit("early-commit", {(topic, 0): (5, "")})
    assert errs[(topic, 0)] == ERR_NONE, errs
    j = raw.join("early-join", topics=[topic])
    assert j.error_code in (ERR_NONE, 79), j  # MEMBER_ID_REQUIRED for a v4+ dynamic member
    gbroker.restart(graceful=False)
    assert committed(gbroker, "early-commit", [(topic, 0)]) == {(topic, 0): 5}
    still_serving(gbroker)


# --------------------------------------------------------------------------
# group ids longer than a 16-bit string length (only flexible versions can carry them)
# --------------------------------------------------------------------------
def test_commit_with_a_group_id_too_long_for_the_offsets_log(gbroker, raw):
    from groups_util import offset_commit_v8, offset_fetch_v6

    topic = kutil.create_topic(gbroker, kutil.unique_topic(), partitions=1)
    group = "L" * 40000
    raw.find_coordinator("short")
    errs = offset_commit_v8(raw, group, {(topic, 0): (7, "")})
    if errs[(topic, 0)] != ERR_NONE:
        return  # refused: acceptable (Kafka cannot store it either)
    assert offset_fetch_v6(raw, group, [(topic, 0)])[0][(topic, 0)][0] == 7
    gbroker.restart(graceful=True)
    c = RawGroupClient(gbroker)
    try:
        c.find_coordinator("short")
        got, _ = offset_fetch_v6(c, group, [(topic, 0)])
        assert got[(topic, 0)][0] == 7, "an acknowledged commit was lost by the restart"
    finally:
        c.close()


def test_long_group_id_cannot_rewrite_another_groups_offsets(gbroker, raw):
    import struct

    from groups_util import offset_commit_v8
    from test_groups_offsets import java_partition_for

    topic = kutil.create_topic(gbroker, kutil.unique_topic(), partitions=1)
    victim = "victim"
    prefix = victim + struct.pack(">h", len(topic)).decode() + topic + "\x00" * 4
    # Pad to 65536 + len(victim) bytes (the length wraps to len(victim)), choosing the pad
    # character so the crafted group's offsets partition is replayed after the victim's.
    for ch in "abcdefghijklmnopqrstuvwxyz":
        crafted = prefix + ch * (65536 + len(victim) - len(prefix))
        if java_partition_for(crafted, 50) >= java_partition_for(victim, 50):
            break
    raw.find_coordinator(victim)
    assert raw.commit(victim, {(topic, 0): (5, "")}) == {(topic, 0): ERR_NONE}
    errs = offset_commit_v8(raw, crafted, {(topic, 0): (999, "")})
    assert raw.fetch(victim, [(topic, 0)])[0][(topic, 0)][0] == 5
    gbroker.restart(graceful=True)
    assert committed(gbroker, victim, [(topic, 0)]) == {(topic, 0): 5}, f"crafted commit answered {errs}"
