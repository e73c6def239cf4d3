"""A group whose state record does not fit __consumer_offsets (60 members with ~20 KB of
subscription metadata each: a ~1.2 MB record against the 1 MB max.message.bytes) fails its
SyncGroup round the way Kafka does: every member gets UNKNOWN_SERVER_ERROR, the group goes back
to PreparingRebalance, DescribeGroups never reports the unwritten generation as Stable, the
broker keeps serving other groups, and after a restart the group is what was written."""

import time

import pytest
from kafka.protocol.admin import DescribeGroupsRequest, DescribeGroupsResponse, ListGroupsRequest, ListGroupsResponse
from kafka.protocol.group import JoinGroupRequest, JoinGroupResponse, SyncGroupRequest, SyncGroupResponse

import kproto
from groups_util import (
    API_JOIN_GROUP,
    API_SYNC_GROUP,
    ERR_MEMBER_ID_REQUIRED,
    ERR_NONE,
    RawGroupClient,
    consumer_assignment,
    unique_group,
)
from test_groups_bad_input import still_serving

pytestmark = pytest.mark.timeout(180)

MEMBERS = 60
USER_DATA = 20_000
ERR_UNKNOWN_SERVER_ERROR = -1
API_DESCRIBE_GROUPS = 15
API_LIST_GROUPS = 16


def fat_subscription(topic, n):
    """ConsumerProtocol subscription v0 for [topic] with USER_DATA bytes of user data."""
    body = kproto.i16(0) + kproto.i32(1) + kproto.string(topic)
    return body + kproto.nbytes(bytes([n % 251]) * USER_DATA)


def describe(client, group):
    """(state, [(member_id, assignment bytes)]) from DescribeGroups v1."""
    r = client.call(API_DESCRIBE_GROUPS, 1, DescribeGroupsRequest[1]([group]), DescribeGroupsResponse[1])
    err, gid, state, _ptype, _proto, members = r.groups[0]
    assert (err, gid) == (ERR_NONE, group), r
    return state, [(m[0], m[4]) for m in members]


def listed_state(client, group):
    r = client.call(API_LIST_GROUPS, 0, ListGroupsRequest[0](), ListGroupsResponse[0])
    assert r.error_code == ERR_NONE
    # v0 carries no state; the group must at least be listed.
    return [g for g in r.groups if g[0] == group]


def test_group_whose_record_does_not_fit_fails_the_round_and_keeps_only_written_state(broker_factory):
    broker = broker_factory({
        "num.partitions": 1,
        "auto.create.topics.enable": "true",
        # Every member is in before the first join round completes.
        "group.initial.rebalance.delay.ms": 3000,
    })
    group = unique_group("fat")
    topic = "fat-topic"
    clients = [RawGroupClient(broker, client_id=f"fat-{i}", timeout=60.0) for i in range(MEMBERS)]
    watcher = RawGroupClient(broker, client_id="watcher")
    try:
        assert clients[0].find_coordinator(group).error_code == ERR_NONE
        # Join: v5 with no member id earns MEMBER_ID_REQUIRED, then the join parks.
        cids = []
        for i, c in enumerate(clients):
            protocols = [("range", fat_subscription(topic, i))]
            r = c.call(API_JOIN_GROUP, 5, JoinGroupRequest[5](group, 10_000, 20_000, "", None, "consumer", protocols),
                       JoinGroupResponse[5])
            assert r.error_code == ERR_MEMBER_ID_REQUIRED, r
            cids.append(c.send(API_JOIN_GROUP, 5,
                               JoinGroupRequest[5](group, 10_000, 20_000, r.member_id, None, "consumer", protocols)))
        joins = [c.recv(cid, JoinGroupResponse[5], timeout=60) for c, cid in zip(clients, cids)]
        assert {j.error_code for j in joins} == {ERR_NONE}
        generation = joins[0].generation_id
        assert {j.generation_id for j in joins} == {generation}
        leader = joins[0].leader_id
        leader_idx = next(i for i, j in enumerate(joins) if j.member_id == leader)
        assert len(joins[leader_idx].members) == MEMBERS

        # Followers sync first and park; then the leader brings a (small) assignment.
        sync_cids = {}
        for i, (c, j) in enumerate(zip(clients, joins)):
            if i != leader_idx:
                sync_cids[i] = c.send(API_SYNC_GROUP, 3, SyncGroupRequest[3](group, generation, j.member_id, None, []))
        time.sleep(0.3)
        state, _ = describe(watcher, group)
        assert state == "CompletingRebalance"
        plan = [(j.member_id, consumer_assignment({topic: [0]} if k == 0 else {})) for k, j in enumerate(joins)]
        sync_cids[leader_idx] = clients[leader_idx].send(
            API_SYNC_GROUP, 3, SyncGroupRequest[3](group, generation, leader, None, plan))
        syncs = {i: clients[i].recv(cid, SyncGroupResponse[3], timeout=60) for i, cid in sync_cids.items()}

        # Every member gets the same error for the round, with no assignment.
        codes = sorted({s.error_code for s in syncs.values()})
        assert codes == [ERR_UNKNOWN_SERVER_ERROR], codes
        assert all(s.member_assignment == b"" for s in syncs.values())

        # The group is rebalancing again, holding no assignment it could not write.
        state, members = describe(watcher, group)
        assert state == "PreparingRebalance", state
        assert all(a == b"" for _m, a in members)
        assert listed_state(watcher, group)
        # Members that send SyncGroup again are told to rejoin, never handed the unwritten state.
        c0 = next(i for i in range(MEMBERS) if i != leader_idx)
        r = clients[c0].call(API_SYNC_GROUP, 3, SyncGroupRequest[3](group, generation, joins[c0].member_id, None, []),
                             SyncGroupResponse[3])
        assert r.error_code == 27, r  # REBALANCE_IN_PROGRESS
        assert describe(watcher, group)[0] != "Stable"
    finally:
        for c in clients:
            c.close()
        watcher.close()

    # The broker keeps serving: a normal client group on the same broker works.
    still_serving(broker)

    # After a restart the group is what was written: its creation record (Empty, no members),
    # never the generation whose record did not fit.
    broker.restart()
    watcher = RawGroupClient(broker, client_id="watcher-2")
    try:
        assert watcher.find_coordinator(group).error_code == ERR_NONE
        state, members = describe(watcher, group)
        assert (state, members) == ("Empty", []), (state, members)
    finally:
        watcher.close()
    assert "panicked" not in broker.log_text()


ERR_OFFSET_METADATA_TOO_LARGE = 12
ERR_INVALID_COMMIT_OFFSET_SIZE = 28


def test_commit_whose_records_do_not_fit_is_refused_whole(broker_factory):
    """260 partitions x 4 KB of metadata is a ~1.1 MB write: Kafka refuses it with
    INVALID_COMMIT_OFFSET_SIZE; nothing of it may be served or survive a restart."""
    import kutil

    broker = broker_factory({"num.partitions": 1, "auto.create.topics.enable": "true"})
    topic = kutil.create_topic(broker, kutil.unique_topic("wide"), partitions=260)
    group = unique_group("wide")
    c = RawGroupClient(broker, client_id="wide")
    try:
        assert c.find_coordinator(group).error_code == ERR_NONE
        offsets = {(topic, p): (100 + p, "m" * 4000) for p in range(260)}
        offsets[(topic, 0)] = (100, "m" * 5000)  # over offset.metadata.max.bytes on its own
        res = c.commit(group, offsets)
        assert res[(topic, 0)] == ERR_OFFSET_METADATA_TOO_LARGE
        assert {e for tp, e in res.items() if tp != (topic, 0)} == {ERR_INVALID_COMMIT_OFFSET_SIZE}
        fetched, err = c.fetch(group, [(topic, p) for p in range(260)])
        assert err == ERR_NONE
        assert {off for off, _m, _e in fetched.values()} == {-1}
        # A commit that fits still works.
        small = {(topic, p): (7, "") for p in range(3)}
        assert set(c.commit(group, small).values()) == {ERR_NONE}
    finally:
        c.close()
    broker.restart()
    c = RawGroupClient(broker, client_id="wide-2")
    try:
        assert c.find_coordinator(group).error_code == ERR_NONE
        fetched, _ = c.fetch(group, [(topic, p) for p in range(260)])
        assert {tp for tp, (off, _m, _e) in fetched.items() if off != -1} == {(topic, p) for p in range(3)}
    finally:
        c.close()
