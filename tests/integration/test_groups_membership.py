"""Group membership over time: static members (group.instance.id) restarting and being
fenced, a member killed with SIGKILL, a member that stops polling (max.poll.interval.ms),
and a member that never rejoins a rebalance (the broker's rebalance timeout)."""

import time

import pytest
from confluent_kafka import KafkaError

import kutil
from groups_util import (  # noqa: F401  (gbroker is a fixture)
    ERR_NONE,
    ERR_REBALANCE_IN_PROGRESS,
    ERR_UNKNOWN_MEMBER_ID,
    ChildConsumer,
    Member,
    Ownership,
    RawGroupClient,
    all_tps,
    assignment_of,
    committed,
    describe,
    drive,
    gbroker,
    owned_exactly_once,
    parse_assignment,
    poll_for,
    produce_values,
    unique_group,
)

pytestmark = pytest.mark.timeout(150)


def close_all(members):
    for m in members:
        try:
            m.close()
        except Exception:
            pass


# --------------------------------------------------------------------------
# 2. static membership
# --------------------------------------------------------------------------
def test_static_member_restart_keeps_assignment_without_rebalance(gbroker):
    topic = kutil.create_topic(gbroker, kutil.unique_topic(), partitions=4)
    tps = all_tps(topic, 4)
    group = unique_group()
    own = Ownership()
    a = Member("a", gbroker, group, [topic], own, **{"group.instance.id": "inst-a"})
    b = Member("b", gbroker, group, [topic], own, **{"group.instance.id": "inst-b"})
    members = [a, b]
    try:
        drive(members, lambda: owned_exactly_once(members, tps) and a.assigned and b.assigned,
              60, "a and b to share the partitions")
        produced = produce_values(gbroker, topic, 5, 4, prefix="s")
        drive(members, lambda: len(a.messages) + len(b.messages) >= 20, 30, "20 records")
        poll_for(members, 1.5)
        desc = describe(gbroker, group)
        before = assignment_of(desc)
        instances = {m.member_id: m.group_instance_id for m in desc.members}
        assert sorted(instances.values()) == ["inst-a", "inst-b"]
        a_parts, b_events = set(a.assigned), list(b.events)
        b_id = b.c.memberid()
        b_before = len(b.messages)
        assert {(p, o, v) for m in members for _t, p, o, v in m.messages} == produced

        # A static member's close() does not leave the group; restart within the session.
        a.close()
        time.sleep(1.0)
        a2 = Member("a2", gbroker, group, [topic], own, **{"group.instance.id": "inst-a"})
        members = [a2, b]
        drive(members, lambda: a2.assigned == a_parts, 30, "the restarted static member to get its partitions")
        produced_after = produce_values(gbroker, topic, 3, 4, prefix="t")
        drive(members, lambda: len(a2.messages) + len(b.messages) - b_before >= 12,
              30, "the 12 records produced after the restart")
        poll_for(members, 2.0)
        assert b.events == b_events, f"b saw a rebalance: {b.events[len(b_events):]}"
        assert b.c.memberid() == b_id
        desc = describe(gbroker, group)
        assert desc.state.name == "STABLE"
        after = assignment_of(desc)
        assert after[b_id] == before[b_id]
        a2_id = a2.c.memberid()
        assert a2_id in after and after[a2_id] == sorted(a_parts)
        assert {m.member_id: m.group_instance_id for m in desc.members}[a2_id] == "inst-a"
        # a2 resumed from a's commits: it read only the new records of its partitions.
        a_new = {(p, off) for _t, p, off, _v in a2.messages}
        want = {(p, off) for p, off, _v in produced_after if (topic, p) in a_parts}
        assert a_new == want
        assert committed(gbroker, group, tps) == {tp: 8 for tp in tps}
        assert not a2.errors and not b.errors, (a2.errors, b.errors)
        own.assert_clean()
    finally:
        close_all(members + [a])


def test_static_member_old_instance_is_fenced(gbroker):
    topic = kutil.create_topic(gbroker, kutil.unique_topic(), partitions=4)
    tps = all_tps(topic, 4)
    group = unique_group()
    old = Member("old", gbroker, group, [topic], Ownership(), **{"group.instance.id": "inst-x"})
    new = None
    try:
        drive([old], lambda: old.assigned == tps, 30, "old to own all partitions")
        old_id = old.c.memberid()
        new = Member("new", gbroker, group, [topic], Ownership(), **{"group.instance.id": "inst-x"})
        drive([new], lambda: new.assigned == tps, 30, "the new instance to take over the partitions")
        # The old instance's next heartbeat (1 s interval) or commit is refused as fenced.
        drive([old], lambda: any(e.fatal() or "fenced" in str(e).lower() for e in old.errors), 15,
              "the old instance to report it was fenced")
        fenced = [e for e in old.errors if e.fatal() or "fenced" in str(e).lower()]
        # librdkafka raises FENCED_INSTANCE_ID as a fatal consumer error.
        assert fenced[0].code() == KafkaError._FATAL, str(fenced[0])
        assert "Static consumer fenced by other consumer with same group.instance.id" in str(fenced[0])
        desc = describe(gbroker, group)
        assert [m.group_instance_id for m in desc.members] == ["inst-x"]
        assert desc.members[0].member_id == new.c.memberid() != old_id
        poll_for([new], 1.0)
        assert not new.errors, new.errors
    finally:
        close_all([old] + ([new] if new else []))


def test_static_member_fenced_on_raw_protocol(gbroker):
    """The same instance id joining with a new member id fences the old member id:
    its Heartbeat, OffsetCommit and SyncGroup get FENCED_INSTANCE_ID (82)."""
    topic = kutil.create_topic(gbroker, kutil.unique_topic(), partitions=4)
    group = unique_group()
    c1, c2 = RawGroupClient(gbroker), RawGroupClient(gbroker)
    try:
        j1 = c1.join_full(group, instance_id="inst-r", topics=[topic])
        assert j1.error_code == ERR_NONE
        assignment = {j1.member_id: {topic: [0, 1, 2, 3]}}
        s1 = c1.sync(group, j1.generation_id, j1.member_id, assignment, instance_id="inst-r")
        assert s1.error_code == ERR_NONE
        assert parse_assignment(s1.member_assignment) == {topic: [0, 1, 2, 3]}
        j2 = c2.join_full(group, instance_id="inst-r", topics=[topic])
        assert j2.error_code == ERR_NONE
        assert j2.member_id != j1.member_id
        # Static rejoin of a stable group with unchanged metadata: no new generation.
        assert j2.generation_id == j1.generation_id
        s2 = c2.sync(group, j2.generation_id, j2.member_id, {}, instance_id="inst-r")
        assert s2.error_code == ERR_NONE
        assert parse_assignment(s2.member_assignment) == {topic: [0, 1, 2, 3]}
        assert c1.heartbeat(group, j1.generation_id, j1.member_id, "inst-r") == 82
        errs = c1.commit(group, {(topic, 0): (1, "")}, j1.generation_id, j1.member_id, "inst-r")
        assert errs == {(topic, 0): 82}
        assert c2.heartbeat(group, j2.generation_id, j2.member_id, "inst-r") == ERR_NONE
        errs = c2.commit(group, {(topic, 0): (1, "")}, j2.generation_id, j2.member_id, "inst-r")
        assert errs == {(topic, 0): ERR_NONE}
    finally:
        c1.close()
        c2.close()


# --------------------------------------------------------------------------
# 3. SIGKILLed member
# --------------------------------------------------------------------------
@pytest.mark.slow
def test_sigkilled_member_partitions_move_after_session_timeout(gbroker):
    topic = kutil.create_topic(gbroker, kutil.unique_topic(), partitions=4)
    tps = all_tps(topic, 4)
    group = unique_group()
    produced = produce_values(gbroker, topic, 5, 4, prefix="k")
    child = ChildConsumer(gbroker, group, [topic])
    s = Member("survivor", gbroker, group, [topic], Ownership())
    try:
        drive([s, child], lambda: owned_exactly_once([s, child], tps) and s.assigned and child.assigned,
              60, "the child and the survivor to share the partitions")
        desc = describe(gbroker, group)
        assert len(desc.members) == 2
        child_parts = set(child.assigned)
        poll_for([s], 2.5)  # at least one heartbeat of the child after the sync
        child.kill9()
        killed_at = time.monotonic()
        drive([s], lambda: s.assigned == tps, 30, "the survivor to get every partition")
        took = time.monotonic() - killed_at
        # Nothing moves before the session timeout (6 s, minus at most one 1 s heartbeat gap).
        assert 4.5 <= took <= 16.0, f"partitions moved {took:.1f}s after the SIGKILL"
        drive([s], lambda: len({(p, o) for _t, p, o, _v in s.messages}) >= 20, 30, "all 20 records")
        got = {(p, o, v) for _t, p, o, v in s.messages}
        assert got == produced
        assert {(topic, p) for p, _o, _v in got if (topic, p) in child_parts} == child_parts
        desc = describe(gbroker, group)
        assert desc.state.name == "STABLE"
        assert assignment_of(desc) == {s.c.memberid(): sorted(tps)}
        assert not s.errors and not s.commit_errors, (s.errors, s.commit_errors)
    finally:
        child.kill9()
        s.close()


# --------------------------------------------------------------------------
# 4. max.poll.interval.ms
# --------------------------------------------------------------------------
@pytest.mark.slow
def test_member_that_stops_polling_is_removed(gbroker):
    topic = kutil.create_topic(gbroker, kutil.unique_topic(), partitions=4)
    tps = all_tps(topic, 4)
    group = unique_group()
    # The stuck member cannot run callbacks while it does not poll, so ownership is not
    # tracked across the two here; the broker's view is checked instead.
    conf = {"max.poll.interval.ms": 6000}
    stuck = Member("stuck", gbroker, group, [topic], Ownership(), **conf)
    live = Member("live", gbroker, group, [topic], Ownership(), **conf)
    members = [stuck, live]
    try:
        drive(members, lambda: owned_exactly_once(members, tps) and stuck.assigned and live.assigned,
              60, "two members to share the partitions")
        stuck_parts = set(stuck.assigned)
        stopped_at = time.monotonic()
        drive([live], lambda: live.assigned == tps, 30, "the live member to get every partition")
        took = time.monotonic() - stopped_at
        assert 4.0 <= took <= 20.0, f"reassigned {took:.1f}s after the member stopped polling"
        desc = describe(gbroker, group)
        assert desc.state.name == "STABLE"
        assert assignment_of(desc) == {live.c.memberid(): sorted(tps)}
        produced = produce_values(gbroker, topic, 3, 4, prefix="m")
        drive([live], lambda: len(live.messages) >= 12, 30, "12 records on the live member")
        assert {(p, o, v) for _t, p, o, v in live.messages} == produced
        # The stuck member learns it was dropped when it polls again, then rejoins.
        events_before = len(stuck.events)
        drive([stuck], lambda: stuck.errors, 10, "the stuck member to report max poll exceeded")
        assert stuck.errors[0].code() == KafkaError._MAX_POLL_EXCEEDED, str(stuck.errors[0])
        drive(members, lambda: owned_exactly_once(members, tps) and stuck.assigned and live.assigned,
              60, "the stuck member to rejoin")
        # It gave its old partitions up (revoked or lost) before getting new ones.
        first = stuck.events[events_before]
        assert first[0] in ("revoke", "lost") and set(first[1]) == stuck_parts, stuck.events
        d = describe(gbroker, group)
        assert d.state.name == "STABLE" and len(d.members) == 2
    finally:
        close_all(members)


class RawMember:
    """A raw member that heartbeats every second but never rejoins."""

    def __init__(self, client, group, generation, member_id):
        self.client, self.group = client, group
        self.generation, self.member_id = generation, member_id
        self.codes = []
        self.next_hb = 0.0

    def step(self, timeout=0.02):
        now = time.monotonic()
        if now >= self.next_hb:
            self.codes.append(self.client.heartbeat(self.group, self.generation, self.member_id))
            self.next_hb = now + 1.0
        else:
            time.sleep(timeout)

    def __repr__(self):
        return f"<raw member heartbeats={self.codes[-5:]}>"


@pytest.mark.slow
def test_member_not_rejoining_is_removed_after_rebalance_timeout(gbroker):
    topic = kutil.create_topic(gbroker, kutil.unique_topic(), partitions=4)
    tps = all_tps(topic, 4)
    group = unique_group()
    raw = RawGroupClient(gbroker)
    m = None
    try:
        j = raw.join_full(group, topics=[topic], session_ms=6000, rebalance_ms=6000)
        assert j.error_code == ERR_NONE and j.leader_id == j.member_id
        s = raw.sync(group, j.generation_id, j.member_id, {j.member_id: {topic: [0, 1, 2, 3]}})
        assert s.error_code == ERR_NONE
        r = RawMember(raw, group, j.generation_id, j.member_id)
        r.step()
        assert r.codes == [ERR_NONE]
        # The group's rebalance timeout is the largest of its members' (librdkafka sends
        # max.poll.interval.ms), so both ask for 6 s.
        m = Member("m", gbroker, group, [topic], Ownership(), **{"max.poll.interval.ms": 6000})
        started = time.monotonic()
        drive([m, r], lambda: m.assigned == tps, 30, "the new member to get every partition")
        took = time.monotonic() - started
        assert ERR_REBALANCE_IN_PROGRESS in r.codes, r.codes
        assert 4.0 <= took <= 16.0, f"rebalance completed {took:.1f}s after it began"
        time.sleep(1.0)
        assert raw.heartbeat(group, j.generation_id, j.member_id) == ERR_UNKNOWN_MEMBER_ID
        desc = describe(gbroker, group)
        assert assignment_of(desc) == {m.c.memberid(): sorted(tps)}
    finally:
        raw.close()
        if m:
            m.close()


@pytest.mark.slow
def test_static_member_that_never_returns_expires_after_session_timeout(gbroker):
    topic = kutil.create_topic(gbroker, kutil.unique_topic(), partitions=4)
    tps = all_tps(topic, 4)
    group = unique_group()
    own = Ownership()
    a = Member("a", gbroker, group, [topic], own, **{"group.instance.id": "inst-gone"})
    b = Member("b", gbroker, group, [topic], own, **{"group.instance.id": "inst-stays"})
    try:
        drive([a, b], lambda: owned_exactly_once([a, b], tps) and a.assigned and b.assigned,
              60, "a and b to share the partitions")
        a_parts = set(a.assigned)
        a.close()  # a static member's close sends no LeaveGroup
        closed_at = time.monotonic()
        poll_for([b], 3.0)
        assert b.assigned == tps - a_parts, "b got a's partitions before a's session expired"
        drive([b], lambda: b.assigned == tps, 30, "b to get every partition")
        took = time.monotonic() - closed_at
        assert 4.5 <= took <= 16.0, f"reassigned {took:.1f}s after the static member went away"
        d = describe(gbroker, group)
        assert d.state.name == "STABLE"
        assert [(m.group_instance_id, m.member_id) for m in d.members] == [("inst-stays", b.c.memberid())]
    finally:
        a.close()
        b.close()


def test_group_max_size(broker_factory):
    from groups_util import GROUP_BROKER_OPTIONS

    b = broker_factory({**GROUP_BROKER_OPTIONS, "group.max.size": 2})
    topic = kutil.create_topic(b, kutil.unique_topic(), partitions=4)
    group = unique_group()
    r1, r2, r3 = RawGroupClient(b), RawGroupClient(b), RawGroupClient(b)
    try:
        j1 = r1.join_full(group, topics=[topic])
        assert j1.error_code == ERR_NONE
        assert r1.sync(group, j1.generation_id, j1.member_id, {j1.member_id: {topic: [0, 1, 2, 3]}}).error_code == 0
        # The second member parks until the first rejoins.
        r2.find_coordinator(group)
        first = r2.join(group, topics=[topic])
        cid = r2.join(group, member_id=first.member_id, topics=[topic], wait=False)
        rj = r1.join(group, member_id=j1.member_id, topics=[topic])
        from kafka.protocol.group import JoinGroupResponse

        j2 = r2.recv(cid, JoinGroupResponse[5])
        assert (rj.error_code, j2.error_code) == (ERR_NONE, ERR_NONE)
        # A third member is one too many: GROUP_MAX_SIZE_REACHED (81).
        r3.find_coordinator(group)
        j3 = r3.join(group, topics=[topic])
        if j3.error_code == 79:  # MEMBER_ID_REQUIRED first, then refused
            j3 = r3.join(group, member_id=j3.member_id, topics=[topic])
        assert j3.error_code == 81, j3
    finally:
        for r in (r1, r2, r3):
            r.close()


@pytest.mark.slow
def test_members_lost_with_the_broker_expire_after_restart(gbroker):
    """The broker and its only member both die; after the restart the replayed member is
    expired after its session timeout and the group becomes Empty with its offsets kept."""
    topic = kutil.create_topic(gbroker, kutil.unique_topic(), partitions=4)
    produce_values(gbroker, topic, 2, 4)
    group = unique_group()
    child = ChildConsumer(gbroker, group, [topic], **{"enable.auto.commit": True, "auto.commit.interval.ms": 200})
    try:
        drive([child], lambda: len(child.assigned) == 4 and
              sum(1 for e in child.events if e["ev"] == "msg") >= 8, 30, "the child to read 8 records")
        time.sleep(1.0)  # auto commit
        assert committed(gbroker, group, all_tps(topic, 4)) == {tp: 2 for tp in all_tps(topic, 4)}
        d = describe(gbroker, group)
        assert d.state.name == "STABLE" and len(d.members) == 1
        gbroker.kill9()
        child.kill9()
        gbroker.start()
        restarted = time.monotonic()
        d = describe(gbroker, group)
        assert d.state.name == "STABLE" and len(d.members) == 1, (d.state, len(d.members))
        while time.monotonic() - restarted < 20:
            d = describe(gbroker, group)
            if d.state.name == "EMPTY":
                break
            time.sleep(0.25)
        took = time.monotonic() - restarted
        assert d.state.name == "EMPTY" and d.members == [], (d.state, d.members)
        assert 4.5 <= took <= 12.0, f"the replayed member expired {took:.1f}s after the restart"
        assert committed(gbroker, group, all_tps(topic, 4)) == {tp: 2 for tp in all_tps(topic, 4)}
    finally:
        child.kill9()


# --------------------------------------------------------------------------
# raw rebalance edge cases: leader gone before SyncGroup, missing SyncGroup, admin leave
# --------------------------------------------------------------------------
def two_member_generation(gbroker, group, topic, rebalance_ms=6000):
    """Raw members a (leader) and b in CompletingRebalance of generation 2.
    Returns (a client, b client, a's join, b's join)."""
    from kafka.protocol.group import JoinGroupResponse

    a, b = RawGroupClient(gbroker, client_id="a"), RawGroupClient(gbroker, client_id="b")
    ja = a.join_full(group, topics=[topic], rebalance_ms=rebalance_ms)
    assert ja.error_code == ERR_NONE
    assert a.sync(group, ja.generation_id, ja.member_id, {ja.member_id: {topic: [0, 1, 2, 3]}}).error_code == 0
    b.find_coordinator(group)
    first = b.join(group, topics=[topic], rebalance_ms=rebalance_ms)
    cid = b.join(group, member_id=first.member_id, topics=[topic], rebalance_ms=rebalance_ms, wait=False)
    ja2 = a.join(group, member_id=ja.member_id, topics=[topic], rebalance_ms=rebalance_ms)
    jb = b.recv(cid, JoinGroupResponse[5])
    assert (ja2.error_code, jb.error_code) == (ERR_NONE, ERR_NONE)
    assert ja2.leader_id == ja.member_id and ja2.generation_id == jb.generation_id == ja.generation_id + 1
    return a, b, ja2, jb


def test_leader_leaving_before_sync_releases_parked_followers(gbroker):
    from kafka.protocol.group import SyncGroupRequest, SyncGroupResponse

    from groups_util import API_SYNC_GROUP

    topic = kutil.create_topic(gbroker, kutil.unique_topic(), partitions=4)
    group = unique_group()
    a, b, ja, jb = two_member_generation(gbroker, group, topic)
    try:
        cid = b.send(API_SYNC_GROUP, 3, SyncGroupRequest[3](group, jb.generation_id, jb.member_id, None, []))
        time.sleep(0.3)
        lr = a.leave(group, ja.member_id)
        assert lr.error_code == ERR_NONE
        sb = b.recv(cid, SyncGroupResponse[3], timeout=10)
        assert sb.error_code == ERR_REBALANCE_IN_PROGRESS
        # b rejoins alone and leads the next generation.
        j = b.join(group, member_id=jb.member_id, topics=[topic])
        assert (j.error_code, j.leader_id, j.generation_id) == (ERR_NONE, jb.member_id, jb.generation_id + 1)
        s = b.sync(group, j.generation_id, jb.member_id, {jb.member_id: {topic: [0, 1, 2, 3]}})
        assert s.error_code == ERR_NONE and parse_assignment(s.member_assignment) == {topic: [0, 1, 2, 3]}
    finally:
        a.close()
        b.close()


@pytest.mark.slow
def test_leader_that_never_syncs_is_removed_after_rebalance_timeout(gbroker):
    from kafka.protocol.group import SyncGroupRequest, SyncGroupResponse

    from groups_util import API_SYNC_GROUP

    topic = kutil.create_topic(gbroker, kutil.unique_topic(), partitions=4)
    group = unique_group()
    a, b, ja, jb = two_member_generation(gbroker, group, topic, rebalance_ms=6000)
    try:
        started = time.monotonic()
        cid = b.send(API_SYNC_GROUP, 3, SyncGroupRequest[3](group, jb.generation_id, jb.member_id, None, []))
        sb = b.recv(cid, SyncGroupResponse[3], timeout=20)
        took = time.monotonic() - started
        assert sb.error_code == ERR_REBALANCE_IN_PROGRESS
        assert 4.5 <= took <= 12.0, f"parked SyncGroup released after {took:.1f}s"
        # The leader was removed: its heartbeat is refused.
        assert a.heartbeat(group, ja.generation_id, ja.member_id) == ERR_UNKNOWN_MEMBER_ID
        # b rejoins well within its 6 s session: it is still a member and leads alone.
        time.sleep(0.5)
        j = b.join(group, member_id=jb.member_id, topics=[topic])
        assert (j.error_code, j.leader_id) == (ERR_NONE, jb.member_id)
        assert j.generation_id == jb.generation_id + 1
    finally:
        a.close()
        b.close()


def test_admin_leave_by_instance_id(gbroker):
    """LeaveGroup v3 with an empty member id and a group.instance.id removes that static member
    (what AdminClient.removeMembersFromConsumerGroup sends); a wrong member id for an
    instance is FENCED_INSTANCE_ID; an unknown instance is UNKNOWN_MEMBER_ID."""
    topic = kutil.create_topic(gbroker, kutil.unique_topic(), partitions=4)
    group = unique_group()
    s = RawGroupClient(gbroker)
    admin_c = RawGroupClient(gbroker)
    try:
        j = s.join_full(group, instance_id="inst-admin", topics=[topic])
        assert j.error_code == ERR_NONE
        assert s.sync(group, j.generation_id, j.member_id, {j.member_id: {topic: [0, 1, 2, 3]}},
                      instance_id="inst-admin").error_code == 0
        admin_c.find_coordinator(group)
        from kafka.protocol.group import LeaveGroupRequest, LeaveGroupResponse

        from groups_util import API_LEAVE_GROUP

        req = LeaveGroupRequest[3](group, [("wrong-member", "inst-admin"), ("", "inst-unknown")])
        r = admin_c.call(API_LEAVE_GROUP, 3, req, LeaveGroupResponse[3])
        assert r.error_code == ERR_NONE
        assert [(m[1], m[2]) for m in r.members] == [("inst-admin", 82), ("inst-unknown", ERR_UNKNOWN_MEMBER_ID)]
        assert s.heartbeat(group, j.generation_id, j.member_id, "inst-admin") == ERR_NONE
        req = LeaveGroupRequest[3](group, [("", "inst-admin")])
        r = admin_c.call(API_LEAVE_GROUP, 3, req, LeaveGroupResponse[3])
        assert r.error_code == ERR_NONE and [(m[1], m[2]) for m in r.members] == [("inst-admin", ERR_NONE)]
        assert s.heartbeat(group, j.generation_id, j.member_id, "inst-admin") == ERR_UNKNOWN_MEMBER_ID
        d = describe(gbroker, group)
        assert d.state.name == "EMPTY" and d.members == []
    finally:
        s.close()
        admin_c.close()


def test_static_member_replaced_while_its_join_is_parked(gbroker):
    """A static member's JoinGroup is parked in a rebalance when a new process with the same
    group.instance.id joins: the parked join is answered FENCED_INSTANCE_ID, the newcomer
    takes its place and the rebalance completes with it."""
    from kafka.protocol.group import JoinGroupResponse

    topic = kutil.create_topic(gbroker, kutil.unique_topic(), partitions=4)
    group = unique_group()
    a, c = RawGroupClient(gbroker, client_id="a"), RawGroupClient(gbroker, client_id="c")
    b, a2 = RawGroupClient(gbroker, client_id="b"), RawGroupClient(gbroker, client_id="a2")
    try:
        # Generation 2: static a (leader) and dynamic c.
        ja = a.join_full(group, instance_id="inst-p", topics=[topic])
        assert ja.error_code == ERR_NONE
        assert a.sync(group, ja.generation_id, ja.member_id, {ja.member_id: {topic: [0, 1, 2, 3]}},
                      instance_id="inst-p").error_code == 0
        c.find_coordinator(group)
        fc = c.join(group, topics=[topic])
        cid_c = c.join(group, member_id=fc.member_id, topics=[topic], wait=False)
        ja_2 = a.join(group, member_id=ja.member_id, instance_id="inst-p", topics=[topic])
        jc = c.recv(cid_c, JoinGroupResponse[5])
        gen = ja_2.generation_id
        assert (ja_2.error_code, jc.error_code, jc.generation_id) == (0, 0, gen)
        plan = {ja.member_id: {topic: [0, 1]}, jc.member_id: {topic: [2, 3]}}
        from kafka.protocol.group import SyncGroupRequest, SyncGroupResponse

        from groups_util import API_SYNC_GROUP

        cid_sc = c.send(API_SYNC_GROUP, 3, SyncGroupRequest[3](group, gen, jc.member_id, None, []))
        assert a.sync(group, gen, ja.member_id, plan, instance_id="inst-p").error_code == 0
        assert c.recv(cid_sc, SyncGroupResponse[3]).error_code == 0

        # b joins: rebalance. a rejoins and is parked (c has not rejoined yet).
        b.find_coordinator(group)
        fb = b.join(group, topics=[topic])
        cid_b = b.join(group, member_id=fb.member_id, topics=[topic], wait=False)
        time.sleep(0.2)
        cid_a = a.join(group, member_id=ja.member_id, instance_id="inst-p", topics=[topic], wait=False)
        time.sleep(0.2)
        # A new process with a's instance id: the parked join of the old one is fenced.
        a2.find_coordinator(group)
        cid_a2 = a2.join(group, instance_id="inst-p", topics=[topic], wait=False)
        old = a.recv(cid_a, JoinGroupResponse[5], timeout=10)
        assert old.error_code == 82, old  # FENCED_INSTANCE_ID
        # c rejoins: the round completes with a2, b and c.
        jc2 = c.join(group, member_id=jc.member_id, topics=[topic])
        j2 = a2.recv(cid_a2, JoinGroupResponse[5], timeout=10)
        jb = b.recv(cid_b, JoinGroupResponse[5], timeout=10)
        assert (j2.error_code, jb.error_code, jc2.error_code) == (0, 0, 0), (j2, jb, jc2)
        assert j2.generation_id == jb.generation_id == jc2.generation_id == gen + 1
        assert j2.member_id not in (ja.member_id, jb.member_id, jc.member_id)
        leader_view = next(j for j in (j2, jb, jc2) if j.members)
        assert sorted(m[0] for m in leader_view.members) == sorted([j2.member_id, jb.member_id, jc.member_id])
        assert {m[0]: m[1] for m in leader_view.members}[j2.member_id] == "inst-p"
        assert a.heartbeat(group, gen, ja.member_id, "inst-p") == 82
    finally:
        for x in (a, b, c, a2):
            x.close()
