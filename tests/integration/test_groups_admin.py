"""Group administration with the AdminClient (librdkafka): list, describe, delete groups,
alter and list committed offsets, and OffsetDelete (raw: no Python client sends it);
deletions and alterations must also hold after a broker restart."""

import pytest
from confluent_kafka import (
    ConsumerGroupState,
    ConsumerGroupTopicPartitions,
    ConsumerGroupType,
    KafkaException,
    TopicPartition,
)

import kutil
from groups_util import (  # noqa: F401  (gbroker is a fixture)
    ERR_GROUP_ID_NOT_FOUND,
    ERR_GROUP_SUBSCRIBED_TO_TOPIC,
    ERR_NONE,
    ERR_UNKNOWN_TOPIC_OR_PARTITION,
    Member,
    all_tps,
    assignment_of,
    committed,
    describe,
    drive,
    gadmin,
    gbroker,
    offset_delete,
    poll_for,
    produce_values,
    unique_group,
)

pytestmark = pytest.mark.timeout(150)

INVALID = -1001  # librdkafka's OFFSET_INVALID: no committed offset


def alter(broker, group, offsets):
    """alter_consumer_group_offsets; returns {(topic, partition): (offset, error or None)}."""
    a = gadmin(broker)
    req = ConsumerGroupTopicPartitions(group, [TopicPartition(t, p, o) for (t, p), o in offsets.items()])
    res = a.alter_consumer_group_offsets([req], request_timeout=10)[group].result(timeout=15)
    return {(tp.topic, tp.partition): (tp.offset, tp.error) for tp in res.topic_partitions}


def list_all_offsets(broker, group):
    """list_consumer_group_offsets without partitions: every committed offset of the group."""
    a = gadmin(broker)
    res = a.list_consumer_group_offsets([ConsumerGroupTopicPartitions(group)], request_timeout=10)
    got = res[group].result(timeout=15)
    return {(tp.topic, tp.partition): tp.offset for tp in got.topic_partitions}


def delete_group(broker, group):
    """None on success, else the KafkaError code."""
    a = gadmin(broker)
    try:
        a.delete_consumer_groups([group], request_timeout=10)[group].result(timeout=15)
        return None
    except KafkaException as e:
        return e.args[0].code()


def listed(broker, **kw):
    a = gadmin(broker)
    res = a.list_consumer_groups(request_timeout=10, **kw).result(timeout=15)
    assert not res.errors, res.errors
    return {g.group_id: g for g in res.valid}


@pytest.fixture
def live_and_empty(gbroker):
    """A topic with 10 records per partition, a live group (one member, all partitions,
    committed 10 each) and an empty group (committed {0: 4, 1: 6}, member gone)."""
    topic = kutil.create_topic(gbroker, kutil.unique_topic(), partitions=4)
    produce_values(gbroker, topic, 10, 4)
    live_g, empty_g = unique_group("live"), unique_group("empty")
    live = Member("live", gbroker, live_g, [topic], **{"client.id": "client-live"})
    drive([live], lambda: len(live.messages) >= 40, 30, "the live member to read 40 records")
    poll_for([live], 0.5)
    e = Member("e", gbroker, empty_g, [topic], commit=None)
    drive([e], lambda: len(e.assigned) == 4, 30, "the empty group's member to join")
    e.c.commit(offsets=[TopicPartition(topic, 0, 4), TopicPartition(topic, 1, 6)], asynchronous=False)
    e.close()
    yield topic, live_g, empty_g, live
    live.close()


def test_list_and_describe_groups(gbroker, live_and_empty):
    topic, live_g, empty_g, live = live_and_empty
    groups = listed(gbroker)
    assert groups[live_g].state == ConsumerGroupState.STABLE
    assert groups[empty_g].state == ConsumerGroupState.EMPTY
    assert groups[live_g].type == ConsumerGroupType.CLASSIC
    assert groups[live_g].is_simple_consumer_group is False
    # The states filter is applied by the broker (ListGroups v4+).
    assert set(listed(gbroker, states={ConsumerGroupState.STABLE})) >= {live_g}
    assert empty_g not in listed(gbroker, states={ConsumerGroupState.STABLE})
    assert empty_g in listed(gbroker, states={ConsumerGroupState.EMPTY})
    assert live_g not in listed(gbroker, states={ConsumerGroupState.EMPTY})
    # The type filter (ListGroups v5): every group here is a classic one.
    assert {live_g, empty_g} <= set(listed(gbroker, types={ConsumerGroupType.CLASSIC}))
    assert not {live_g, empty_g} & set(listed(gbroker, types={ConsumerGroupType.CONSUMER}))

    d = describe(gbroker, live_g)
    assert d.group_id == live_g
    assert d.state == ConsumerGroupState.STABLE
    assert d.partition_assignor == "range"
    assert d.coordinator.port == gbroker.port
    assert len(d.members) == 1
    m = d.members[0]
    assert m.member_id == live.c.memberid()
    assert m.client_id == "client-live"
    assert m.host == "/127.0.0.1"
    assert m.group_instance_id is None
    assert assignment_of(d) == {live.c.memberid(): sorted(all_tps(topic, 4))}

    d = describe(gbroker, empty_g)
    assert d.state == ConsumerGroupState.EMPTY and d.members == []


def test_delete_groups(gbroker, live_and_empty):
    topic, live_g, empty_g, _live = live_and_empty
    tps = all_tps(topic, 4)
    assert delete_group(gbroker, live_g) == 68  # NON_EMPTY_GROUP
    assert committed(gbroker, live_g, tps) == {tp: 10 for tp in tps}
    assert delete_group(gbroker, empty_g) is None
    assert committed(gbroker, empty_g, tps) == {tp: INVALID for tp in tps}
    assert list_all_offsets(gbroker, empty_g) == {}
    assert empty_g not in listed(gbroker)
    assert describe(gbroker, empty_g).state == ConsumerGroupState.DEAD
    assert delete_group(gbroker, empty_g) == ERR_GROUP_ID_NOT_FOUND
    assert delete_group(gbroker, unique_group("never")) == ERR_GROUP_ID_NOT_FOUND
    assert live_g in listed(gbroker)


def test_alter_and_list_offsets(gbroker, live_and_empty):
    topic, live_g, empty_g, live = live_and_empty
    tps = all_tps(topic, 4)
    assert list_all_offsets(gbroker, empty_g) == {(topic, 0): 4, (topic, 1): 6}
    assert committed(gbroker, empty_g, tps) == {
        (topic, 0): 4, (topic, 1): 6, (topic, 2): INVALID, (topic, 3): INVALID
    }
    got = alter(gbroker, empty_g, {(topic, 1): 2, (topic, 3): 9})
    assert got == {(topic, 1): (2, None), (topic, 3): (9, None)}
    assert list_all_offsets(gbroker, empty_g) == {(topic, 0): 4, (topic, 1): 2, (topic, 3): 9}
    # A new group can be created by altering its offsets.
    fresh = unique_group("fresh")
    assert alter(gbroker, fresh, {(topic, 2): 7}) == {(topic, 2): (7, None)}
    assert list_all_offsets(gbroker, fresh) == {(topic, 2): 7}
    # A live group refuses offsets from outside: UNKNOWN_MEMBER_ID, nothing changes.
    got = alter(gbroker, live_g, {(topic, 0): 1})
    assert got[(topic, 0)][1] is not None and got[(topic, 0)][1].code() == 25, got
    assert committed(gbroker, live_g, tps) == {tp: 10 for tp in tps}
    # A consumer of the altered group starts where the offsets say.
    c = Member("c", gbroker, empty_g, [topic], commit=None)
    try:
        drive([c], lambda: len(c.messages) >= 6 + 8 + 10 + 1, 30, "25 records")
        poll_for([c], 1.0)
        firsts = {}
        for _t, p, off, _v in c.messages:
            firsts.setdefault(p, off)
        assert firsts == {0: 4, 1: 2, 2: 0, 3: 9}
        assert len(c.messages) == 25
    finally:
        c.close()


def test_offset_delete(gbroker, live_and_empty):
    topic, live_g, empty_g, _live = live_and_empty
    tps = all_tps(topic, 4)
    top, parts = offset_delete(gbroker, empty_g, [(topic, 0), ("no-such-topic", 0)])
    assert top == ERR_NONE
    assert parts == {(topic, 0): ERR_NONE, ("no-such-topic", 0): ERR_UNKNOWN_TOPIC_OR_PARTITION}
    assert list_all_offsets(gbroker, empty_g) == {(topic, 1): 6}
    # A group consuming the topic keeps its offsets.
    top, parts = offset_delete(gbroker, live_g, [(topic, 0), (topic, 1)])
    assert top == ERR_NONE
    assert parts == {(topic, 0): ERR_GROUP_SUBSCRIBED_TO_TOPIC, (topic, 1): ERR_GROUP_SUBSCRIBED_TO_TOPIC}
    assert committed(gbroker, live_g, tps) == {tp: 10 for tp in tps}
    top, _parts = offset_delete(gbroker, unique_group("never"), [(topic, 0)])
    assert top == ERR_GROUP_ID_NOT_FOUND


@pytest.mark.slow
@pytest.mark.parametrize("graceful", [True, False], ids=["sigterm", "sigkill"])
def test_deletions_and_alterations_survive_restart(gbroker, live_and_empty, graceful):
    topic, live_g, empty_g, live = live_and_empty
    tps = all_tps(topic, 4)
    gone = unique_group("gone")
    assert alter(gbroker, gone, {(topic, 0): 3}) == {(topic, 0): (3, None)}
    assert delete_group(gbroker, gone) is None
    assert offset_delete(gbroker, empty_g, [(topic, 0)]) == (ERR_NONE, {(topic, 0): ERR_NONE})
    assert alter(gbroker, empty_g, {(topic, 2): 5}) == {(topic, 2): (5, None)}
    live.close()
    gbroker.restart(graceful=graceful)
    assert list_all_offsets(gbroker, empty_g) == {(topic, 1): 6, (topic, 2): 5}
    assert list_all_offsets(gbroker, gone) == {}
    assert committed(gbroker, live_g, tps) == {tp: 10 for tp in tps}
    groups = listed(gbroker)
    assert gone not in groups
    assert groups[empty_g].state == ConsumerGroupState.EMPTY
    # The live member closed (left) before the restart: its group is empty now.
    assert groups[live_g].state == ConsumerGroupState.EMPTY
    assert describe(gbroker, live_g).members == []
