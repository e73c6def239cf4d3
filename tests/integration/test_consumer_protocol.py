"""KIP-848's consumer group protocol with real clients: confluent-kafka consumers with
`group.protocol=consumer` (ConsumerGroupHeartbeat; the broker assigns), the AdminClient's
views of such groups, and a raw ConsumerGroupHeartbeat / ConsumerGroupDescribe /
OffsetCommit v9 client for what librdkafka does not let a test arrange (epochs, a member
that stops heartbeating).

The broker runs with a 500 ms heartbeat interval and a 6 s session timeout so rebalances
and expiries happen within seconds."""

import time
import uuid

import pytest
from confluent_kafka import Consumer, ConsumerGroupState, ConsumerGroupType, KafkaError

import kproto
import kutil
from groups_util import (
    ChildConsumer,
    Member,
    Ownership,
    all_tps,
    committed,
    drive,
    gadmin,
    poll_for,
    produce_values,
    unique_group,
)

pytestmark = pytest.mark.timeout(150)

HEARTBEAT_MS = 500
SESSION_MS = 6000

CG_BROKER_OPTIONS = {
    "num.partitions": 4,
    "auto.create.topics.enable": "true",
    "group.initial.rebalance.delay.ms": 0,
    "group.consumer.heartbeat.interval.ms": HEARTBEAT_MS,
    "group.consumer.min.heartbeat.interval.ms": HEARTBEAT_MS,
    "group.consumer.session.timeout.ms": SESSION_MS,
    "group.consumer.min.session.timeout.ms": SESSION_MS,
}

# Kafka error codes
ERR_NONE = 0
ERR_COORDINATOR_LOAD_IN_PROGRESS = 14
ERR_UNKNOWN_MEMBER_ID = 25
ERR_GROUP_ID_NOT_FOUND = 69
ERR_STALE_MEMBER_EPOCH = 113

API_OFFSET_COMMIT = 8
API_CONSUMER_GROUP_HEARTBEAT = 68
API_CONSUMER_GROUP_DESCRIBE = 69


@pytest.fixture
def cbroker(broker_factory):
    return broker_factory(dict(CG_BROKER_OPTIONS))


def cg_conf(broker, group, **extra):
    """A consumer-protocol consumer. Session timeout, heartbeat interval and the assignor
    strategy are the broker's business in this protocol, so they are not set here."""
    conf = kutil.base_conf(
        broker,
        **{
            "group.id": group,
            "group.protocol": "consumer",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
            "fetch.wait.max.ms": 100,
            "enable.partition.eof": False,
            "topic.metadata.refresh.interval.ms": 1000,
        },
    )
    conf.update(extra)
    return conf


class CMember:
    """A consumer-protocol consumer that records its (incremental) rebalance callbacks,
    messages and errors; `ownership` sees every assign and revoke in callback order."""

    def __init__(self, name, broker, group, topics, ownership=None, commit=None, **conf):
        self.name = name
        self.ownership = ownership if ownership is not None else Ownership()
        self.commit_mode = commit
        self.assigned = set()
        self.events = []  # (monotonic time, "assign"|"revoke"|"lost", sorted [(topic, partition)])
        self.messages = []
        self.errors = []
        self.commit_errors = []
        self.closed = False
        self.c = Consumer(cg_conf(broker, group, **conf))
        self.c.subscribe(list(topics), on_assign=self._on_assign, on_revoke=self._on_revoke,
                         on_lost=self._on_lost)

    def _tps(self, parts):
        return sorted((p.topic, p.partition) for p in parts)

    def _on_assign(self, consumer, parts):
        tps = self._tps(parts)
        self.events.append((time.monotonic(), "assign", tps))
        self.assigned |= set(tps)
        self.ownership.add(self.name, tps)

    def _on_revoke(self, consumer, parts):
        tps = self._tps(parts)
        self.events.append((time.monotonic(), "revoke", tps))
        self.assigned -= set(tps)
        self.ownership.remove(self.name, tps)

    def _on_lost(self, consumer, parts):
        tps = self._tps(parts)
        self.events.append((time.monotonic(), "lost", tps))
        self.assigned -= set(tps)
        self.ownership.remove(self.name, tps, kind="lost")

    def events_since(self, t):
        """Callbacks since `t` that moved something (librdkafka also calls on_assign with an
        empty list after a revocation)."""
        return [(kind, tps) for at, kind, tps in self.events if at >= t and tps]

    def step(self, timeout=0.02):
        if self.closed:
            return None
        m = self.c.poll(timeout)
        if m is None:
            return None
        if m.error():
            self.errors.append(m.error())
            return None
        self.messages.append((m.topic(), m.partition(), m.offset(), m.value()))
        if self.commit_mode is not None:
            try:
                self.c.commit(message=m, asynchronous=False)
            except Exception as e:
                self.commit_errors.append(f"{m.topic()}[{m.partition()}]@{m.offset()}: {e!r}")
        return m

    def close(self):
        if not self.closed:
            self.closed = True
            self.c.close()

    def __repr__(self):
        return (f"<{self.name} assigned={sorted(self.assigned)} msgs={len(self.messages)} "
                f"errors={[str(e) for e in self.errors[:3]]} "
                f"events={[(k, t) for _, k, t in self.events[-4:]]}>")


def close_all(members):
    for m in members:
        try:
            m.close()
        except Exception:
            pass


def disjoint_cover(members, tps):
    seen = [tp for m in members for tp in m.assigned]
    return len(seen) == len(set(seen)) and set(seen) == set(tps)


def child_member(broker, group, topics, **conf):
    """A consumer-protocol consumer in a child process (to SIGKILL it)."""
    return ChildConsumer(broker, group, topics, conf_of=cg_conf, **conf)


# --------------------------------------------------------------------------
# raw consumer group protocol (flexible versions, request header v2)
# --------------------------------------------------------------------------
def _cstr(s):
    if s is None:
        return kproto.uvarint(0)
    b = s.encode()
    return kproto.uvarint(len(b) + 1) + b


def _carray(items):
    if items is None:
        return kproto.uvarint(0)
    return kproto.uvarint(len(items) + 1) + b"".join(items)


_TAGS = kproto.uvarint(0)


def _rcstr(r):
    n = r.uvarint()
    return None if n == 0 else r.take(n - 1).decode()


def _rcarray(r, item):
    n = r.uvarint()
    return None if n == 0 else [item(r) for _ in range(n - 1)]


def _skip_tags(r):
    for _ in range(r.uvarint()):
        r.uvarint()
        r.take(r.uvarint())


class RawConsumerGroupClient:
    """ConsumerGroupHeartbeat v0, ConsumerGroupDescribe v0 and OffsetCommit v9 on one connection."""

    def __init__(self, broker, client_id="raw-cg-test"):
        self.conn = kproto.Conn(broker.host, broker.port, timeout=15)
        self.client_id = client_id
        self.cid = 0

    def close(self):
        self.conn.close()

    def _call(self, api_key, version, body):
        self.cid += 1
        self.conn.send(kproto.request(api_key, version, self.cid, body, client_id=self.client_id,
                                      header_version=2))
        frame = self.conn.closed_or_response(self.cid, timeout=15)
        assert frame != "closed", f"broker closed the connection on api {api_key} v{version}"
        r = kproto.Reader(frame[4:])
        _skip_tags(r)  # response header v1
        return r

    def heartbeat(self, group, member_id, epoch, topics=None, owned=None, rebalance_ms=30000):
        """owned: None (unchanged) or [(topic_id bytes, [partitions])].
        Returns dict(error, message, member_id, epoch, interval, assignment) where assignment is
        None (unchanged) or {topic_id: sorted partitions}."""
        body = (_cstr(group) + _cstr(member_id) + kproto.i32(epoch) + _cstr(None) + _cstr(None)
                + kproto.i32(rebalance_ms)
                + _carray(None if topics is None else [_cstr(t) for t in topics])
                + _cstr(None)
                + _carray(None if owned is None else [
                    tid + _carray([kproto.i32(p) for p in ps]) + _TAGS for tid, ps in owned])
                + _TAGS)
        r = self._call(API_CONSUMER_GROUP_HEARTBEAT, 0, body)
        r.i32()
        out = {"error": r.i16(), "message": _rcstr(r), "member_id": _rcstr(r), "epoch": r.i32(),
               "interval": r.i32(), "assignment": None}
        if r.i8() >= 0:
            def tp(r):
                tid = r.take(16)
                ps = _rcarray(r, lambda r: r.i32())
                _skip_tags(r)
                return tid, sorted(ps)

            out["assignment"] = dict(_rcarray(r, tp))
            _skip_tags(r)
        return out

    def describe(self, group):
        body = _carray([_cstr(group)]) + b"\x00" + _TAGS
        r = self._call(API_CONSUMER_GROUP_DESCRIBE, 0, body)
        r.i32()

        def assignment(r):
            def tp(r):
                r.take(16)
                name = _rcstr(r)
                ps = _rcarray(r, lambda r: r.i32())
                _skip_tags(r)
                return name, ps

            parts = _rcarray(r, tp)
            _skip_tags(r)
            return sorted((t, p) for t, ps in parts for p in ps)

        def member(r):
            m = {"member_id": _rcstr(r), "instance_id": _rcstr(r), "rack_id": _rcstr(r),
                 "member_epoch": r.i32(), "client_id": _rcstr(r), "client_host": _rcstr(r),
                 "topics": _rcarray(r, _rcstr), "regex": _rcstr(r)}
            m["assignment"] = assignment(r)
            m["target"] = assignment(r)
            _skip_tags(r)
            return m

        def grp(r):
            g = {"error": r.i16(), "message": _rcstr(r), "group_id": _rcstr(r), "state": _rcstr(r),
                 "group_epoch": r.i32(), "assignment_epoch": r.i32(), "assignor": _rcstr(r)}
            g["members"] = _rcarray(r, member)
            r.i32()
            _skip_tags(r)
            return g

        groups = _rcarray(r, grp)
        assert len(groups) == 1
        return groups[0]

    def commit(self, group, offsets, member_epoch, member_id):
        """OffsetCommit v9; offsets {(topic, partition): offset} -> {(topic, partition): error}."""
        by_topic = {}
        for (t, p), off in offsets.items():
            by_topic.setdefault(t, []).append(
                kproto.i32(p) + kproto.i64(off) + kproto.i32(-1) + _cstr("") + _TAGS)
        body = (_cstr(group) + kproto.i32(member_epoch) + _cstr(member_id) + _cstr(None)
                + _carray([_cstr(t) + _carray(ps) + _TAGS for t, ps in by_topic.items()]) + _TAGS)
        r = self._call(API_OFFSET_COMMIT, 9, body)
        r.i32()
        out = {}

        def topic(r):
            t = _rcstr(r)

            def part(r):
                p = r.i32()
                out[(t, p)] = r.i16()
                _skip_tags(r)

            _rcarray(r, part)
            _skip_tags(r)

        _rcarray(r, topic)
        return out


def raw_describe(broker, group):
    c = RawConsumerGroupClient(broker, client_id="raw-cg-describe")
    try:
        return c.describe(group)
    finally:
        c.close()


def admin_describe(broker, group, timeout=10):
    a = gadmin(broker)
    return a.describe_consumer_groups([group], request_timeout=timeout)[group].result(timeout=timeout)


def described_assignments(desc):
    return {m.member_id: sorted((tp.topic, tp.partition) for tp in m.assignment.topic_partitions)
            for m in desc.members}


def wait_stable(broker, group, timeout=30):
    """Poll ConsumerGroupDescribe until the group is stable (every member reconciled)."""
    deadline = time.monotonic() + timeout
    while True:
        d = raw_describe(broker, group)
        if d["error"] == ERR_NONE and d["state"] == "Stable":
            return d
        if time.monotonic() >= deadline:
            raise AssertionError(f"group {group} not stable after {timeout}s: {d}")
        time.sleep(0.2)


def drive_until_stable(broker, group, members, timeout, what):
    """Poll the members until ConsumerGroupDescribe says Stable and the members' callbacks
    agree with the broker's assignments."""
    state = {}

    def done():
        d = raw_describe(broker, group)
        state["last"] = d
        if d["error"] != ERR_NONE or d["state"] != "Stable":
            return False
        by_id = {m["member_id"]: m["assignment"] for m in d["members"]}
        mine = {m.c.memberid(): sorted(m.assigned) for m in members if not m.closed}
        return by_id == mine

    try:
        drive(members, done, timeout, what, check_every=0.3)
    except AssertionError as e:
        raise AssertionError(f"{e}; last describe: {state.get('last')}") from None
    return state["last"]


# --------------------------------------------------------------------------
# 1. join and leave move only what they must
# --------------------------------------------------------------------------
def test_join_and_leave_move_only_what_they_must(cbroker):
    topic = kutil.create_topic(cbroker, kutil.unique_topic(), partitions=12)
    tps = all_tps(topic, 12)
    group = unique_group("cg")
    own = Ownership()
    a, b, c = (CMember(n, cbroker, group, [topic], own) for n in "abc")
    members = [a, b, c]
    d = None
    try:
        drive_until_stable(cbroker, group, members, 60, "three members to share 12 partitions")
        assert disjoint_cover(members, tps)
        assert sorted(len(m.assigned) for m in members) == [4, 4, 4]
        before = {m.name: set(m.assigned) for m in members}

        # A fourth member joins: only the three partitions it takes move.
        t_join = time.monotonic()
        d = CMember("d", cbroker, group, [topic], own)
        members.append(d)
        desc = drive_until_stable(cbroker, group, members, 60, "the fourth member to reconcile")
        join_s = time.monotonic() - t_join
        assert disjoint_cover(members, tps)
        assert sorted(len(m.assigned) for m in members) == [3, 3, 3, 3]
        for m in (a, b, c):
            assert m.assigned <= before[m.name], f"{m.name} gained partitions when d joined"
            assert len(before[m.name] - m.assigned) == 1, f"{m.name} lost more than one partition"
            # Incremental: the old members are only told what they give up.
            assert all(kind == "revoke" for kind, _ in m.events_since(t_join)), m.events_since(t_join)
        moved = set().union(*(before[m.name] - m.assigned for m in (a, b, c)))
        assert d.assigned == moved
        # The newcomer only gains (in one or more steps: each partition once its owner released it).
        assert all(kind == "assign" for kind, _ in d.events_since(t_join)), d.events_since(t_join)
        assert desc["group_epoch"] == desc["assignment_epoch"]
        assert all(m["member_epoch"] == desc["group_epoch"] for m in desc["members"])

        # b leaves: only its partitions move, and the others are only told what they gain.
        mid = {m.name: set(m.assigned) for m in members}
        t_leave = time.monotonic()
        b.close()
        rest = [a, c, d]
        drive_until_stable(cbroker, group, rest, 60, "the three remaining members to reconcile")
        leave_s = time.monotonic() - t_leave
        assert disjoint_cover(rest, tps)
        assert sorted(len(m.assigned) for m in rest) == [4, 4, 4]
        for m in rest:
            assert m.assigned >= mid[m.name], f"{m.name} lost partitions when b left"
            assert all(kind == "assign" for kind, _ in m.events_since(t_leave)), m.events_since(t_leave)
        assert set().union(*(m.assigned - mid[m.name] for m in rest)) == mid["b"]
        own.assert_clean()
        assert not any(m.errors for m in members), [m.errors for m in members]
        print(f"reconciled after a join in {join_s:.2f}s, after a leave in {leave_s:.2f}s")
    finally:
        close_all(members)


# --------------------------------------------------------------------------
# 2. a kill -9'd member's partitions move after the session timeout
# --------------------------------------------------------------------------
def test_killed_member_partitions_move_after_session_timeout(cbroker):
    topic = kutil.create_topic(cbroker, kutil.unique_topic(), partitions=6)
    tps = all_tps(topic, 6)
    group = unique_group("cg")
    own = Ownership()
    a = CMember("a", cbroker, group, [topic], own)
    b = CMember("b", cbroker, group, [topic], own)
    child = child_member(cbroker, group, [topic])
    everyone = [a, b, child]
    try:
        drive(everyone, lambda: disjoint_cover(everyone, tps) and all(len(m.assigned) == 2 for m in everyone)
              and raw_describe(cbroker, group)["state"] == "Stable",
              60, "a, b and the child to own two partitions each")
        before = {m: set(m.assigned) for m in (a, b)}
        victim = set(child.assigned)
        child.kill9()
        t_kill = time.monotonic()
        drive([a, b], lambda: disjoint_cover([a, b], tps), SESSION_MS / 1000 + 20,
              "a and b to take over the killed member's partitions")
        moved_after = time.monotonic() - t_kill
        # Not before the session timeout (the last heartbeat was at most one interval before
        # the kill), and not much after it.
        assert moved_after >= (SESSION_MS - HEARTBEAT_MS) / 1000 - 0.3, moved_after
        assert moved_after <= SESSION_MS / 1000 + 10, moved_after
        for m in (a, b):
            assert m.assigned >= before[m], f"{m.name} lost partitions"
        assert (a.assigned - before[a]) | (b.assigned - before[b]) == victim
        d = wait_stable(cbroker, group)
        assert len(d["members"]) == 2
        own.assert_clean()
        print(f"killed member's partitions moved after {moved_after:.2f}s (session {SESSION_MS} ms)")
    finally:
        child.kill9()
        close_all([a, b])


# --------------------------------------------------------------------------
# 3. a regex subscription picks up a topic created later
# --------------------------------------------------------------------------
def test_regex_subscription_picks_up_new_topic(cbroker):
    prefix = f"rx{uuid.uuid4().hex[:8]}"
    first = kutil.create_topic(cbroker, f"{prefix}-one", partitions=2)
    other = kutil.create_topic(cbroker, f"x{prefix}-nomatch", partitions=2)
    group = unique_group("cg")
    m = CMember("m", cbroker, group, [f"^{prefix}-.*"])
    try:
        drive([m], lambda: m.assigned == all_tps(first, 2), 30, "the regex's first topic")
        second = kutil.create_topic(cbroker, f"{prefix}-two", partitions=3)
        t0 = time.monotonic()
        drive([m], lambda: m.assigned == all_tps(first, 2) | all_tps(second, 3), 30,
              "the topic created after subscribing")
        picked_up = time.monotonic() - t0
        produced = produce_values(cbroker, second, 2, 3, prefix="rx")
        drive([m], lambda: len([x for x in m.messages if x[0] == second]) >= 6, 30, "records of the new topic")
        assert {(p, o, v) for t, p, o, v in m.messages if t == second} == produced
        assert not any(tp[0] == other for tp in m.assigned)
        d = raw_describe(cbroker, group)
        assert d["members"][0]["regex"] is not None
        assert sorted(d["members"][0]["assignment"]) == sorted(m.assigned)
        assert not m.errors, m.errors
        print(f"regex picked up the new topic in {picked_up:.2f}s")
    finally:
        m.close()


# --------------------------------------------------------------------------
# 4. range and uniform, chosen by the client
# --------------------------------------------------------------------------
def test_range_assignor_gives_contiguous_co_partitioned_ranges(cbroker):
    t1 = kutil.create_topic(cbroker, kutil.unique_topic("r1"), partitions=6)
    t2 = kutil.create_topic(cbroker, kutil.unique_topic("r2"), partitions=6)
    group = unique_group("cg")
    own = Ownership()
    members = [CMember(n, cbroker, group, [t1, t2], own, **{"group.remote.assignor": "range"})
               for n in "abc"]
    try:
        drive_until_stable(cbroker, group, members, 60, "three range members to reconcile")
        assert disjoint_cover(members, all_tps(t1, 6) | all_tps(t2, 6))
        for m in members:
            p1 = sorted(p for t, p in m.assigned if t == t1)
            p2 = sorted(p for t, p in m.assigned if t == t2)
            assert len(p1) == 2 and p1 == list(range(p1[0], p1[0] + 2)), f"{m.name}: {p1} not a range"
            assert p1 == p2, f"{m.name}: not co-partitioned: {p1} vs {p2}"
        desc = admin_describe(cbroker, group)
        assert desc.type == ConsumerGroupType.CONSUMER
        assert desc.partition_assignor == "range"
        assert desc.state == ConsumerGroupState.STABLE
        assert described_assignments(desc) == {m.c.memberid(): sorted(m.assigned) for m in members}
        for md in desc.members:
            target = sorted((tp.topic, tp.partition) for tp in md.target_assignment.topic_partitions)
            assert target == sorted((tp.topic, tp.partition) for tp in md.assignment.topic_partitions)
        own.assert_clean()
    finally:
        close_all(members)


def test_uniform_assignor_balances_and_is_described(cbroker):
    t1 = kutil.create_topic(cbroker, kutil.unique_topic("u1"), partitions=5)
    t2 = kutil.create_topic(cbroker, kutil.unique_topic("u2"), partitions=7)
    group = unique_group("cg")
    own = Ownership()
    members = [CMember(n, cbroker, group, [t1, t2], own, **{"group.remote.assignor": "uniform"})
               for n in "abc"]
    try:
        drive_until_stable(cbroker, group, members, 60, "three uniform members to reconcile")
        assert disjoint_cover(members, all_tps(t1, 5) | all_tps(t2, 7))
        assert sorted(len(m.assigned) for m in members) == [4, 4, 4]
        desc = admin_describe(cbroker, group)
        assert desc.type == ConsumerGroupType.CONSUMER
        assert desc.partition_assignor == "uniform"
        assert desc.state == ConsumerGroupState.STABLE
        assert described_assignments(desc) == {m.c.memberid(): sorted(m.assigned) for m in members}
        own.assert_clean()
    finally:
        close_all(members)


# --------------------------------------------------------------------------
# 5. static members
# --------------------------------------------------------------------------
def test_static_member_restart_keeps_partitions_and_others_do_not_move(cbroker):
    topic = kutil.create_topic(cbroker, kutil.unique_topic(), partitions=6)
    tps = all_tps(topic, 6)
    group = unique_group("cg")
    own = Ownership()
    a, b, c = (CMember(n, cbroker, group, [topic], own, **{"group.instance.id": f"inst-{n}"})
               for n in "abc")
    members = [a, b, c]
    a2 = None
    try:
        d0 = drive_until_stable(cbroker, group, members, 60, "three static members to reconcile")
        assert disjoint_cover(members, tps)
        assert sorted(m["instance_id"] for m in d0["members"]) == ["inst-a", "inst-b", "inst-c"]
        a_parts = set(a.assigned)
        t_restart = time.monotonic()
        a.close()  # a static member's close is a temporary leave (epoch -2)
        poll_for([b, c], 1.0)
        a2 = CMember("a2", cbroker, group, [topic], own, **{"group.instance.id": "inst-a"})
        members = [a2, b, c]
        drive(members, lambda: a2.assigned == a_parts, 30, "the restarted static member's partitions")
        assert time.monotonic() - t_restart < SESSION_MS / 1000, "came back after the session timeout"
        d1 = drive_until_stable(cbroker, group, members, 30, "the group to be stable again")
        poll_for(members, 2 * HEARTBEAT_MS / 1000)
        for m in (b, c):
            assert m.events_since(t_restart) == [], f"{m.name} moved: {m.events_since(t_restart)}"
        # The same instance took its place: no new group epoch, no reassignment.
        assert d1["group_epoch"] == d0["group_epoch"], (d0, d1)
        by_instance = {m["instance_id"]: m for m in d1["members"]}
        assert sorted(by_instance) == ["inst-a", "inst-b", "inst-c"]
        assert by_instance["inst-a"]["member_id"] == a2.c.memberid()
        assert sorted(by_instance["inst-a"]["assignment"]) == sorted(a_parts)
        own.assert_clean()
    finally:
        close_all(members + [a])


# --------------------------------------------------------------------------
# 6. offsets and epochs across a broker kill -9
# --------------------------------------------------------------------------
@pytest.mark.slow
def test_offsets_and_group_epoch_survive_broker_kill9(cbroker):
    topic = kutil.create_topic(cbroker, kutil.unique_topic(), partitions=4)
    tps = all_tps(topic, 4)
    group = unique_group("cg")
    produced = produce_values(cbroker, topic, 10, 4, prefix="k")
    c1 = CMember("c1", cbroker, group, [topic], commit="sync")
    c2 = None
    try:
        drive([c1], lambda: len(c1.messages) >= 40, 60, "40 records")
        assert {(p, o, v) for _t, p, o, v in c1.messages} == produced
        assert not c1.commit_errors, c1.commit_errors
        assert committed(cbroker, group, tps) == {tp: 10 for tp in tps}
        before = wait_stable(cbroker, group)
        assert before["group_epoch"] >= 1

        cbroker.kill9()
        cbroker.start()
        deadline = time.monotonic() + 30
        after = raw_describe(cbroker, group)
        while after["error"] == ERR_COORDINATOR_LOAD_IN_PROGRESS and time.monotonic() < deadline:
            time.sleep(0.1)
            after = raw_describe(cbroker, group)
        assert after["error"] == ERR_NONE, after
        assert after["group_epoch"] == before["group_epoch"], (before, after)
        assert after["assignment_epoch"] == before["assignment_epoch"], (before, after)
        assert [(m["member_id"], m["member_epoch"], m["assignment"]) for m in after["members"]] == \
            [(m["member_id"], m["member_epoch"], m["assignment"]) for m in before["members"]]
        assert committed(cbroker, group, tps) == {tp: 10 for tp in tps}

        # The member carries on across the restart (its session restarted with the load).
        more = produce_values(cbroker, topic, 2, 4, prefix="m")
        drive([c1], lambda: len(c1.messages) >= 48, 60, "the records produced after the restart")
        assert {(p, o, v) for _t, p, o, v in c1.messages[40:]} == more
        c1.close()
        empty = wait_for_state(cbroker, group, "Empty")
        assert empty["group_epoch"] > before["group_epoch"]

        # A new consumer in the group resumes from the committed offsets.
        last = produce_values(cbroker, topic, 3, 4, prefix="n")
        c2 = CMember("c2", cbroker, group, [topic], commit="sync")
        drive([c2], lambda: len(c2.messages) >= 12, 60, "the records after the committed offsets")
        poll_for([c2], 1.0)
        assert {(p, o, v) for _t, p, o, v in c2.messages} == last
        assert raw_describe(cbroker, group)["group_epoch"] > empty["group_epoch"]
        assert committed(cbroker, group, tps) == {tp: 15 for tp in tps}
    finally:
        close_all([c1] + ([c2] if c2 else []))


def wait_for_state(broker, group, state, timeout=30):
    deadline = time.monotonic() + timeout
    while True:
        d = raw_describe(broker, group)
        if d["state"] == state:
            return d
        if time.monotonic() >= deadline:
            raise AssertionError(f"group {group} not {state} after {timeout}s: {d}")
        time.sleep(0.2)


# --------------------------------------------------------------------------
# 7. commits are fenced by member and epoch
# --------------------------------------------------------------------------
def test_commits_are_fenced_by_member_epoch(cbroker):
    topic = kutil.create_topic(cbroker, kutil.unique_topic(), partitions=2)
    tps = all_tps(topic, 2)
    group = unique_group("cg")
    c = RawConsumerGroupClient(cbroker)
    try:
        r = c.heartbeat(group, "", 0, topics=[topic], owned=[])
        assert r["error"] == ERR_NONE, r
        assert r["interval"] == HEARTBEAT_MS
        member, epoch = r["member_id"], r["epoch"]
        assert member and epoch >= 1
        owned = r["assignment"]
        deadline = time.monotonic() + 15
        while not owned or sum(len(ps) for ps in owned.values()) < 2:
            assert time.monotonic() < deadline, f"no assignment: {r}"
            time.sleep(HEARTBEAT_MS / 1000)
            r = c.heartbeat(group, member, epoch, owned=list((owned or {}).items()))
            assert r["error"] == ERR_NONE, r
            epoch = r["epoch"]
            if r["assignment"] is not None:
                owned = r["assignment"]
        offsets = {tp: 5 for tp in tps}
        assert c.commit(group, offsets, epoch, member) == {tp: ERR_NONE for tp in tps}
        # An epoch the member does not have (Kafka answers any mismatch of a commit with
        # STALE_MEMBER_EPOCH, not FENCED_MEMBER_EPOCH), and a member the group does not know.
        assert c.commit(group, offsets, epoch + 1, member) == {tp: ERR_STALE_MEMBER_EPOCH for tp in tps}
        assert c.commit(group, offsets, epoch, "no-such-member") == {tp: ERR_UNKNOWN_MEMBER_ID for tp in tps}
        # An older epoch for partitions the member did not hold then.
        assert c.commit(group, offsets, 0, member) == {tp: ERR_STALE_MEMBER_EPOCH for tp in tps}
        assert committed(cbroker, group, tps) == {tp: 5 for tp in tps}

        # The member stops heartbeating; after the session timeout it is removed and its
        # commits are refused.
        time.sleep(SESSION_MS / 1000 + 2)
        d = raw_describe(cbroker, group)
        assert d["members"] == [], d
        assert c.commit(group, {tp: 7 for tp in tps}, epoch, member) == \
            {tp: ERR_UNKNOWN_MEMBER_ID for tp in tps}
        assert committed(cbroker, group, tps) == {tp: 5 for tp in tps}
        # Its heartbeat is refused too, and it must rejoin.
        r = c.heartbeat(group, member, epoch)
        assert r["error"] == ERR_UNKNOWN_MEMBER_ID, r
    finally:
        c.close()


# --------------------------------------------------------------------------
# 8. ListGroups shows the groups' types
# --------------------------------------------------------------------------
def test_list_groups_shows_and_filters_types(cbroker):
    topic = kutil.create_topic(cbroker, kutil.unique_topic(), partitions=2)
    cgroup, kgroup = unique_group("cg"), unique_group("classic")
    new = CMember("new", cbroker, cgroup, [topic])
    old = Consumer(kutil.base_conf(cbroker, **{
        "group.id": kgroup, "session.timeout.ms": 6000, "heartbeat.interval.ms": 1000,
        "auto.offset.reset": "earliest", "enable.auto.commit": False}))
    old.subscribe([topic])
    try:
        deadline = time.monotonic() + 30
        while not (new.assigned and old.assignment()):
            assert time.monotonic() < deadline, "both groups to get an assignment"
            new.step(0.05)
            old.poll(0.05)
        a = gadmin(cbroker)

        def listing(**kw):
            res = a.list_consumer_groups(request_timeout=10, **kw).result(timeout=10)
            assert not res.errors, res.errors
            return {g.group_id: g for g in res.valid if g.group_id in (cgroup, kgroup)}

        every = listing()
        assert set(every) == {cgroup, kgroup}
        assert every[cgroup].type == ConsumerGroupType.CONSUMER
        assert every[kgroup].type == ConsumerGroupType.CLASSIC
        assert set(listing(types={ConsumerGroupType.CONSUMER})) == {cgroup}
        assert set(listing(types={ConsumerGroupType.CLASSIC})) == {kgroup}
        assert set(listing(types={ConsumerGroupType.CONSUMER},
                           states={ConsumerGroupState.EMPTY})) == set()
        # DescribeGroups (classic) and ConsumerGroupDescribe each answer for their own type.
        descs = a.describe_consumer_groups([cgroup, kgroup], request_timeout=10)
        assert descs[cgroup].result(timeout=10).type == ConsumerGroupType.CONSUMER
        assert descs[kgroup].result(timeout=10).type == ConsumerGroupType.CLASSIC
    finally:
        new.close()
        old.close()


# --------------------------------------------------------------------------
# 9. online migration: a live classic group upgraded in place while consuming, and back
# --------------------------------------------------------------------------
@pytest.mark.parametrize("strategy", ["cooperative-sticky", "range"])
def test_classic_group_upgraded_in_place_while_consuming(cbroker, strategy):
    partitions = 6
    topic = kutil.create_topic(cbroker, kutil.unique_topic(), partitions=partitions)
    tps = all_tps(topic, partitions)
    group = unique_group("migrate")
    own = Ownership()
    produced = {v for _p, _o, v in produce_values(cbroker, topic, 20, partitions, prefix="a")}
    classic = [Member(f"old{i}", cbroker, group, [topic], ownership=own,
                      **{"partition.assignment.strategy": strategy}) for i in range(2)]
    new = None
    seen = lambda: {v for m in classic + ([new] if new else []) for _t, _p, _o, v in m.messages}
    try:
        drive(classic, lambda: disjoint_cover(classic, tps) and produced <= seen(), 40,
              "the classic group to consume the first batch")
        before = gadmin(cbroker).describe_consumer_groups([group], request_timeout=10)[group] \
            .result(timeout=10)
        assert before.type == ConsumerGroupType.CLASSIC

        # A consumer-protocol member joins the live group: the group becomes a consumer group
        # and the classic members go on consuming through JoinGroup/SyncGroup/Heartbeat.
        t0 = time.monotonic()
        new = CMember("new", cbroker, group, [topic], ownership=own, commit="sync")
        produced |= {v for _p, _o, v in produce_values(cbroker, topic, 20, partitions, prefix="b")}
        members = classic + [new]
        d = drive_until_stable(cbroker, group, members, 60, "the upgraded group to settle")
        took = time.monotonic() - t0
        assert len(d["members"]) == 3
        assert disjoint_cover(members, tps), members
        assert len(new.assigned) == 2, f"a third of the partitions: {new}"
        drive(members, lambda: produced <= seen(), 30, "every record of both batches consumed")
        desc = admin_describe(cbroker, group)
        assert desc.type == ConsumerGroupType.CONSUMER
        assert desc.state == ConsumerGroupState.STABLE
        own.assert_clean()
        print(f"{strategy}: upgraded and settled in {took:.2f}s")

        # The consumer-protocol member leaves: the group turns classic again and the two
        # classic members share everything.
        new.close()
        produced |= {v for _p, _o, v in produce_values(cbroker, topic, 20, partitions, prefix="c")}
        drive(classic, lambda: disjoint_cover(classic, tps) and produced <= seen(), 60,
              "the downgraded classic group to take everything and consume the last batch")
        desc = admin_describe(cbroker, group)
        assert desc.type == ConsumerGroupType.CLASSIC, desc
        own.assert_clean()
        # Every record was committed as it was handled (by the classic members, and by the
        # consumer-protocol member while it was there): what was committed through all three phases is where the log ends.
        ends = {tp: 60 for tp in tps}
        assert committed(cbroker, group, sorted(tps)) == ends
        assert not [e for m in classic + [new] for e in m.errors], classic + [new]
    finally:
        close_all(classic + ([new] if new else []))


def test_kafka_python_members_work_inside_a_consumer_group(cbroker):
    """kafka-python (classic protocol only) as the classic members of a migrated group."""
    partitions = 4
    topic = kutil.create_topic(cbroker, kutil.unique_topic(), partitions=partitions)
    group = unique_group("migrate-kp")
    kps = [kutil.kp_consumer(cbroker, group_id=group, session_timeout_ms=6000,
                             heartbeat_interval_ms=500, max_poll_interval_ms=30000,
                             enable_auto_commit=False, auto_offset_reset="earliest")
           for _ in range(2)]
    for c in kps:
        c.subscribe([topic])
    new = None
    seen = set()

    def poll_all(extra=()):
        for c in kps:
            for records in c.poll(timeout_ms=50).values():
                seen.update(r.value for r in records)
                c.commit()
        for m in extra:
            m.step(0.02)

    def owned(c):
        return {tp.partition for tp in c.assignment()}

    def wait(cond, timeout, what, extra=()):
        deadline = time.monotonic() + timeout
        while not cond():
            assert time.monotonic() < deadline, f"timed out waiting for {what}: " + \
                str([sorted(owned(c)) for c in kps]) + f" {new}"
            poll_all(extra)

    try:
        first = {v for _p, _o, v in produce_values(cbroker, topic, 5, partitions, prefix="a")}
        wait(lambda: len(owned(kps[0]) | owned(kps[1])) == 4 and first <= seen, 60,
             "the kafka-python group to read the first batch")
        new = CMember("new", cbroker, group, [topic], commit="sync")
        second = {v for _p, _o, v in produce_values(cbroker, topic, 5, partitions, prefix="b")}

        def upgraded():
            mine = [owned(c) for c in kps] + [set(p for _t, p in new.assigned)]
            every = [p for m in mine for p in m]
            return (len(new.assigned) >= 1 and len(every) == 4 and len(set(every)) == 4
                    and second <= seen | {m[3] for m in new.messages})
        wait(upgraded, 60, "the upgraded group to share the partitions with the newcomer", [new])
        d = raw_describe(cbroker, group)
        assert d["error"] == ERR_NONE and len(d["members"]) == 3, d
        new.close()
        third = {v for _p, _o, v in produce_values(cbroker, topic, 5, partitions, prefix="c")}
        wait(lambda: len(owned(kps[0]) | owned(kps[1])) == 4 and third <= seen, 60,
             "the downgraded group to read the third batch")
        assert admin_describe(cbroker, group).type == ConsumerGroupType.CLASSIC
    finally:
        if new:
            new.close()
        for c in kps:
            c.close()


def test_upgrade_refused_when_the_policy_forbids_it(broker_factory):
    """With `group.consumer.migration.policy=downgrade` a consumer-protocol member cannot
    join a live classic group: its heartbeat is refused with GROUP_ID_NOT_FOUND, which
    librdkafka raises as a fatal error at once (no hang), and the classic member goes on."""
    b = broker_factory(dict(CG_BROKER_OPTIONS, **{"group.consumer.migration.policy": "downgrade"}))
    topic = kutil.create_topic(b, kutil.unique_topic(), partitions=2)
    group = unique_group("mixed")
    old = Consumer(kutil.base_conf(b, **{
        "group.id": group, "session.timeout.ms": 6000, "heartbeat.interval.ms": 1000,
        "auto.offset.reset": "earliest", "enable.auto.commit": False}))
    old.subscribe([topic])
    new = None
    try:
        deadline = time.monotonic() + 30
        while len(old.assignment()) < 2:
            assert time.monotonic() < deadline, "the classic member to own both partitions"
            old.poll(0.05)
        new = CMember("new", b, group, [topic])
        t0 = time.monotonic()
        while not new.errors:
            assert time.monotonic() - t0 < 20, f"no error surfaced to the consumer-protocol member: {new}"
            new.step(0.05)
            old.poll(0.01)
        err = new.errors[0]
        assert err.code() == KafkaError._FATAL, str(err)
        assert "ConsumerGroupHeartbeat" in str(err) and "group id does not exist" in str(err), str(err)
        assert not new.assigned
        assert len(old.assignment()) == 2
    finally:
        if new:
            new.close()
        old.close()
