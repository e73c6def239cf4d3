"""A whole group lifecycle at each non-flexible version of the group APIs (the versions
kafka-python can encode): FindCoordinator, JoinGroup, SyncGroup, Heartbeat, OffsetCommit,
OffsetFetch, DescribeGroups, ListGroups, LeaveGroup, DeleteGroups; every field checked."""

import time

import pytest
from kafka.protocol import admin as kadmin
from kafka.protocol import commit as kcommit
from kafka.protocol import find_coordinator as kfind
from kafka.protocol import group as kgroup

import kproto
import kutil
from groups_util import (  # noqa: F401  (gbroker is a fixture)
    API_FIND_COORDINATOR,
    API_HEARTBEAT,
    API_JOIN_GROUP,
    API_LEAVE_GROUP,
    API_OFFSET_COMMIT,
    API_OFFSET_FETCH,
    API_SYNC_GROUP,
    ERR_ILLEGAL_GENERATION,
    ERR_MEMBER_ID_REQUIRED,
    ERR_NONE,
    ERR_REBALANCE_IN_PROGRESS,
    ERR_UNKNOWN_MEMBER_ID,
    RawGroupClient,
    consumer_assignment,
    consumer_subscription,
    gbroker,
    parse_assignment,
    unique_group,
)

pytestmark = pytest.mark.timeout(60)

API_DESCRIBE_GROUPS = 15
API_LIST_GROUPS = 16
API_DELETE_GROUPS = 42

# (FindCoordinator, JoinGroup, SyncGroup, Heartbeat, LeaveGroup, OffsetCommit, OffsetFetch,
#  DescribeGroups, ListGroups, DeleteGroups)
VERSION_SETS = [
    (0, 0, 0, 0, 0, 2, 1, 0, 0, 0),
    (1, 1, 1, 1, 1, 3, 2, 1, 1, 0),
    (1, 2, 1, 1, 1, 4, 3, 1, 1, 1),
    (2, 3, 2, 2, 2, 5, 4, 2, 2, 1),
    (2, 4, 3, 3, 3, 6, 5, 3, 2, 1),
    (2, 5, 3, 3, 3, 7, 5, 3, 2, 1),
]


class V:
    """Encodes each API at the version chosen for this run."""

    def __init__(self, raw, versions):
        (self.fc, self.join, self.sync, self.hb, self.leave, self.commit, self.fetch,
         self.describe, self.list, self.delete) = versions
        self.raw = raw

    def find_coordinator(self, group):
        req = kfind.FindCoordinatorRequest[self.fc](*((group,) if self.fc == 0 else (group, 0)))
        return self.raw.call(API_FIND_COORDINATOR, self.fc, req, kfind.FindCoordinatorResponse[self.fc])

    def join_request(self, group, member_id, topics, metadata_tag):
        # Subscription v0 with the tag as user data (so each member's metadata is distinct).
        meta = consumer_subscription(topics)[:-4] + kproto.nbytes(metadata_tag)
        protocols = [("range", meta)]
        v = self.join
        if v == 0:
            args = (group, 6000, member_id, "consumer", protocols)
        elif v < 5:
            args = (group, 6000, 8000, member_id, "consumer", protocols)
        else:
            args = (group, 6000, 8000, member_id, None, "consumer", protocols)
        return kgroup.JoinGroupRequest[v](*args), meta

    def join_send(self, group, member_id, topics, tag):
        req, meta = self.join_request(group, member_id, topics, tag)
        return self.raw.send(API_JOIN_GROUP, self.join, req), meta

    def join_recv(self, cid):
        return self.raw.recv(cid, kgroup.JoinGroupResponse[self.join])

    def join_full(self, group, topics, tag):
        cid, meta = self.join_send(group, "", topics, tag)
        r = self.join_recv(cid)
        if self.join >= 4:
            assert r.error_code == ERR_MEMBER_ID_REQUIRED, r
            assert r.member_id, r
            cid, meta = self.join_send(group, r.member_id, topics, tag)
            r = self.join_recv(cid)
        return r, meta

    def sync_send(self, group, generation, member_id, plan):
        items = [(m, consumer_assignment(a)) for m, a in plan.items()]
        args = (group, generation, member_id) + ((None,) if self.sync >= 3 else ()) + (items,)
        return self.raw.send(API_SYNC_GROUP, self.sync, kgroup.SyncGroupRequest[self.sync](*args))

    def sync_recv(self, cid):
        return self.raw.recv(cid, kgroup.SyncGroupResponse[self.sync])

    def heartbeat(self, group, generation, member_id):
        args = (group, generation, member_id) + ((None,) if self.hb >= 3 else ())
        req = kgroup.HeartbeatRequest[self.hb](*args)
        return self.raw.call(API_HEARTBEAT, self.hb, req, kgroup.HeartbeatResponse[self.hb]).error_code

    def leave_(self, group, member_id):
        if self.leave >= 3:
            req = kgroup.LeaveGroupRequest[self.leave](group, [(member_id, None)])
        else:
            req = kgroup.LeaveGroupRequest[self.leave](group, member_id)
        return self.raw.call(API_LEAVE_GROUP, self.leave, req, kgroup.LeaveGroupResponse[self.leave])

    def commit_(self, group, generation, member_id, offsets):
        """offsets {(topic, partition): (offset, metadata)} -> {(topic, partition): error}."""
        v = self.commit
        by_topic = {}
        for (t, p), (off, meta) in offsets.items():
            part = (p, off, -1, meta) if v >= 6 else (p, off, meta)
            by_topic.setdefault(t, []).append(part)
        topics = list(by_topic.items())
        if v <= 4:
            args = (group, generation, member_id, -1, topics)
        elif v <= 6:
            args = (group, generation, member_id, topics)
        else:
            args = (group, generation, member_id, None, topics)
        resp = self.raw.call(API_OFFSET_COMMIT, v, kcommit.OffsetCommitRequest[v](*args),
                             kcommit.OffsetCommitResponse[v])
        return {(t, p): e for t, parts in resp.topics for p, e in parts}

    def fetch_(self, group, tps):
        v = self.fetch
        by_topic = {}
        for t, p in tps:
            by_topic.setdefault(t, []).append(p)
        resp = self.raw.call(API_OFFSET_FETCH, v, kcommit.OffsetFetchRequest[v](group, list(by_topic.items())),
                             kcommit.OffsetFetchResponse[v])
        out = {}
        for t, parts in resp.topics:
            for part in parts:
                p, off = part[0], part[1]
                meta, err = part[-2], part[-1]
                out[(t, p)] = (off, meta, err)
        return out, (resp.error_code if v >= 2 else 0)

    def describe_(self, group):
        v = self.describe
        req = kadmin.DescribeGroupsRequest[v](*(([group],) if v < 3 else ([group], False)))
        resp = self.raw.call(API_DESCRIBE_GROUPS, v, req, kadmin.DescribeGroupsResponse[v])
        assert len(resp.groups) == 1
        g = resp.groups[0]
        return type("Described", (), dict(zip(
            ("error_code", "group", "state", "protocol_type", "protocol", "members"), g[:6])))

    def list_(self):
        v = self.list
        resp = self.raw.call(API_LIST_GROUPS, v, kadmin.ListGroupsRequest[v](), kadmin.ListGroupsResponse[v])
        assert resp.error_code == ERR_NONE
        return dict(resp.groups)

    def delete_(self, group):
        v = self.delete
        resp = self.raw.call(API_DELETE_GROUPS, v, kadmin.DeleteGroupsRequest[v]([group]),
                             kadmin.DeleteGroupsResponse[v])
        return dict(resp.results)


@pytest.mark.parametrize("versions", VERSION_SETS, ids=lambda vs: "join%d-sync%d-commit%d-fetch%d" % (vs[1], vs[2], vs[5], vs[6]))
def test_group_lifecycle_at_version(gbroker, versions):
    topic = kutil.create_topic(gbroker, kutil.unique_topic(), partitions=4)
    group = unique_group("ver")
    ra, rb = RawGroupClient(gbroker, client_id="client-a"), RawGroupClient(gbroker, client_id="client-b")
    a, b = V(ra, versions), V(rb, versions)
    try:
        fc = a.find_coordinator(group)
        assert fc.error_code == ERR_NONE
        assert (fc.host, fc.port) == ("127.0.0.1", gbroker.port)
        b.find_coordinator(group)

        # a joins alone: leader of generation 1 with itself as the only member.
        ja, meta_a = a.join_full(group, [topic], b"user-a")
        assert ja.error_code == ERR_NONE, ja
        assert ja.generation_id == 1
        assert ja.group_protocol == "range"
        assert ja.leader_id == ja.member_id
        assert [(m[0], m[-1]) for m in ja.members] == [(ja.member_id, meta_a)]
        plan1 = {ja.member_id: {topic: [0, 1, 2, 3]}}
        sa = a.sync_recv(a.sync_send(group, 1, ja.member_id, plan1))
        assert sa.error_code == ERR_NONE
        assert parse_assignment(sa.member_assignment) == plan1[ja.member_id]
        assert a.heartbeat(group, 1, ja.member_id) == ERR_NONE
        errs = a.commit_(group, 1, ja.member_id, {(topic, 0): (11, "a-0"), (topic, 3): (13, "")})
        assert errs == {(topic, 0): ERR_NONE, (topic, 3): ERR_NONE}
        got, top = a.fetch_(group, [(topic, 0), (topic, 1), (topic, 3)])
        assert top == ERR_NONE
        assert got == {(topic, 0): (11, "a-0", 0), (topic, 1): (-1, "", 0), (topic, 3): (13, "", 0)}

        d = a.describe_(group)
        assert (d.error_code, d.group, d.state, d.protocol_type, d.protocol) == (0, group, "Stable", "consumer", "range")
        assert [tuple(m[:3]) for m in d.members] == [(ja.member_id, "client-a", "/127.0.0.1")]
        assert d.members[0][3] == meta_a
        assert parse_assignment(d.members[0][4]) == plan1[ja.member_id]
        assert a.list_().get(group) == "consumer"

        # b joins: its JoinGroup parks until a rejoins; generation 2 with two members.
        if b.join >= 4:
            first = b.join_recv(b.join_send(group, "", [topic], b"user-b")[0])
            assert first.error_code == ERR_MEMBER_ID_REQUIRED
            cid_b, meta_b = b.join_send(group, first.member_id, [topic], b"user-b")
        else:
            cid_b, meta_b = b.join_send(group, "", [topic], b"user-b")
        deadline = time.monotonic() + 10
        while a.heartbeat(group, 1, ja.member_id) != ERR_REBALANCE_IN_PROGRESS:
            assert time.monotonic() < deadline, "a never saw REBALANCE_IN_PROGRESS"
            time.sleep(0.1)
        ja2, _ = a.join_send(group, ja.member_id, [topic], b"user-a")
        ja2 = a.join_recv(ja2)
        jb = b.join_recv(cid_b)
        assert ja2.error_code == ERR_NONE and jb.error_code == ERR_NONE, (ja2, jb)
        assert ja2.generation_id == jb.generation_id == 2
        assert ja2.leader_id == jb.leader_id == ja.member_id
        assert ja2.member_id == ja.member_id
        assert sorted((m[0], m[-1]) for m in ja2.members) == sorted([(ja.member_id, meta_a), (jb.member_id, meta_b)])
        assert jb.members == []
        plan2 = {ja.member_id: {topic: [0, 1]}, jb.member_id: {topic: [2, 3]}}
        cid_sb = b.sync_send(group, 2, jb.member_id, {})
        sa = a.sync_recv(a.sync_send(group, 2, ja.member_id, plan2))
        sb = b.sync_recv(cid_sb)
        assert (sa.error_code, sb.error_code) == (ERR_NONE, ERR_NONE)
        assert parse_assignment(sa.member_assignment) == {topic: [0, 1]}
        assert parse_assignment(sb.member_assignment) == {topic: [2, 3]}
        assert b.commit_(group, 2, jb.member_id, {(topic, 2): (22, "b")}) == {(topic, 2): ERR_NONE}
        assert a.commit_(group, 1, ja.member_id, {(topic, 0): (99, "")}) == {(topic, 0): ERR_ILLEGAL_GENERATION}
        got, _ = b.fetch_(group, [(topic, 0), (topic, 2)])
        assert got == {(topic, 0): (11, "a-0", 0), (topic, 2): (22, "b", 0)}
        d = b.describe_(group)
        assert d.state == "Stable" and sorted(m[0] for m in d.members) == sorted([ja.member_id, jb.member_id])
        by_member = {m[0]: parse_assignment(m[4]) for m in d.members}
        assert by_member == plan2

        # b leaves: a rebalances alone into generation 3.
        lr = b.leave_(group, jb.member_id)
        assert lr.error_code == ERR_NONE
        if b.leave >= 3:
            assert [(m[0], m[2]) for m in lr.members] == [(jb.member_id, ERR_NONE)]
        assert a.heartbeat(group, 2, ja.member_id) == ERR_REBALANCE_IN_PROGRESS
        ja3 = a.join_recv(a.join_send(group, ja.member_id, [topic], b"user-a")[0])
        assert (ja3.error_code, ja3.generation_id) == (ERR_NONE, 3)
        assert a.sync_recv(a.sync_send(group, 3, ja.member_id, plan1)).error_code == ERR_NONE
        assert a.heartbeat(group, 3, ja.member_id) == ERR_NONE

        # a leaves: Empty; the group can be deleted, taking its offsets.
        assert a.leave_(group, ja.member_id).error_code == ERR_NONE
        assert a.heartbeat(group, 3, ja.member_id) == ERR_UNKNOWN_MEMBER_ID
        d = a.describe_(group)
        assert (d.state, d.members) == ("Empty", [])
        assert a.delete_(group) == {group: ERR_NONE}
        got, _ = a.fetch_(group, [(topic, 0), (topic, 2)])
        assert got == {(topic, 0): (-1, "", 0), (topic, 2): (-1, "", 0)}
        d = a.describe_(group)
        assert d.state == "Dead"
        assert group not in a.list_()
    finally:
        ra.close()
        rb.close()
