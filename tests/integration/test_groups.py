"""Consumer groups with librdkafka: assignors, exactly-once consumption with manual commits,
cooperative (incremental) rebalancing, several groups, more members than partitions,
partitions added to a subscribed topic."""

import pytest
from confluent_kafka.admin import NewPartitions

import kutil
from groups_util import (  # noqa: F401  (gbroker is a fixture)
    Member,
    Ownership,
    all_tps,
    assignment_of,
    committed,
    describe,
    drive,
    gbroker,
    owned_exactly_once,
    poll_for,
    produce_values,
    unique_group,
)

pytestmark = pytest.mark.timeout(150)


def consumed_once(members, produced, topic):
    """Every produced record consumed exactly once across `members` (values and offsets)."""
    got = [(p, off, val) for m in members for (t, p, off, val) in m.messages if t == topic]
    dupes = sorted({x for x in got if got.count(x) > 1})
    assert not dupes, f"records consumed more than once: {dupes[:10]}"
    missing = sorted(produced - set(got))
    extra = sorted(set(got) - produced)
    assert not missing and not extra, f"missing {missing[:10]}, unexpected {extra[:10]}"


def assert_no_errors(members):
    for m in members:
        assert not m.errors, f"{m.name} poll errors: {[str(e) for e in m.errors]}"
        assert not m.commit_errors, f"{m.name} commit errors: {m.commit_errors[:5]}"


def close_all(members):
    for m in members:
        try:
            m.close()
        except Exception:
            pass


# --------------------------------------------------------------------------
# 1. eager assignors
# --------------------------------------------------------------------------
# Expected split of 4 partitions over 3 members, members sorted by member id
# (both assignors order members by id).
EXPECTED_SPLIT = {
    "range": [[0, 1], [2], [3]],
    "roundrobin": [[0, 3], [1], [2]],
}


@pytest.mark.parametrize("strategy", ["range", "roundrobin"])
def test_eager_assignor_three_members_exactly_once(gbroker, strategy):
    topic = kutil.create_topic(gbroker, kutil.unique_topic(), partitions=4)
    group = unique_group()
    own = Ownership()
    conf = {"partition.assignment.strategy": strategy}
    members = [Member(f"m{i}", gbroker, group, [topic], own, **conf) for i in range(3)]
    tps = all_tps(topic, 4)
    try:
        drive(
            members,
            lambda: owned_exactly_once(members, tps) and all(m.assigned for m in members),
            60,
            "3 members to share 4 partitions",
        )
        # The broker's view matches the members' callbacks.
        desc = describe(gbroker, group)
        assert desc.state.name == "STABLE"
        assert desc.partition_assignor == strategy
        by_id = assignment_of(desc)
        assert sorted(by_id) == sorted(m.c.memberid() for m in members)
        for m in members:
            assert by_id[m.c.memberid()] == sorted(m.assigned), m.name
        ordered = sorted(members, key=lambda m: m.c.memberid())
        assert [sorted(p for _t, p in m.assigned) for m in ordered] == EXPECTED_SPLIT[strategy]

        # Consume 100 records, committing each; then a member leaves mid-stream and the
        # survivors resume its partitions from its commits: still exactly once.
        produced = produce_values(gbroker, topic, 25, 4, prefix="a")
        drive(members, lambda: sum(len(m.messages) for m in members) >= 100, 60, "100 records")
        consumed_once(members, produced, topic)
        assert committed(gbroker, group, tps) == {tp: 25 for tp in tps}

        produced |= produce_values(gbroker, topic, 25, 4, prefix="b")
        drive(members, lambda: sum(len(m.messages) for m in members) >= 140, 60, "40 more records")
        leaving = ordered[0]
        leaving.close()
        survivors = [m for m in members if m is not leaving]
        drive(
            survivors,
            lambda: owned_exactly_once(survivors, tps) and sum(len(m.messages) for m in members) >= 200,
            60,
            "survivors to take over and finish 200 records",
        )
        poll_for(survivors, 1.0)
        consumed_once(members, produced, topic)
        assert committed(gbroker, group, tps) == {tp: 50 for tp in tps}
        desc = describe(gbroker, group)
        assert desc.state.name == "STABLE" and len(desc.members) == 2
        assert_no_errors(members)
        own.assert_clean()
    finally:
        close_all(members)


# --------------------------------------------------------------------------
# 1b. cooperative-sticky
# --------------------------------------------------------------------------
def test_cooperative_sticky_incremental_rebalance(gbroker):
    topic = kutil.create_topic(gbroker, kutil.unique_topic(), partitions=4)
    group = unique_group()
    own = Ownership()
    conf = {"partition.assignment.strategy": "cooperative-sticky"}
    tps = all_tps(topic, 4)
    a = Member("a", gbroker, group, [topic], own, **conf)
    members = [a]
    try:
        drive([a], lambda: a.assigned == tps, 30, "a to own all 4 partitions")
        produced = produce_values(gbroker, topic, 30, 4, prefix="c")
        drive([a], lambda: len(a.messages) >= 40, 30, "a to consume 40 records")
        events_before = len(a.events)

        b = Member("b", gbroker, group, [topic], own, **conf)
        members.append(b)
        drive(
            members,
            lambda: owned_exactly_once(members, tps) and len(a.assigned) == 2 and len(b.assigned) == 2
            and sum(len(m.messages) for m in members) >= 120,
            60,
            "a and b to own 2 partitions each and consume all 120 records",
        )
        poll_for(members, 1.0)
        # Incremental: a only ever gave partitions up (never everything) and got nothing new.
        held = set(tps)
        for kind, ev_tps in a.events[events_before:]:
            if kind == "assign":
                held |= set(ev_tps)
                assert not ev_tps, f"a was assigned {ev_tps} while b joined"
            else:
                assert kind == "revoke", f"a saw {kind} {ev_tps}"
                held -= set(ev_tps)
                assert held, f"a lost every partition at once: {a.events}"
        revoked = [tp for kind, ev in a.events[events_before:] if kind == "revoke" for tp in ev]
        assert sorted(revoked) == sorted(tps - a.assigned), a.events
        assert sorted(b.assigned) == sorted(revoked)
        consumed_once(members, produced, topic)
        assert committed(gbroker, group, tps) == {tp: 30 for tp in tps}
        desc = describe(gbroker, group)
        assert desc.state.name == "STABLE"
        assert desc.partition_assignor == "cooperative-sticky"
        assert assignment_of(desc) == {
            a.c.memberid(): sorted(a.assigned),
            b.c.memberid(): sorted(b.assigned),
        }
        assert_no_errors(members)
        own.assert_clean()
    finally:
        close_all(members)


# --------------------------------------------------------------------------
# 6. several groups on one topic
# --------------------------------------------------------------------------
def test_several_groups_read_independently(gbroker):
    topic = kutil.create_topic(gbroker, kutil.unique_topic(), partitions=4)
    tps = all_tps(topic, 4)
    produced = produce_values(gbroker, topic, 10, 4, prefix="s")
    g1, g2, g3 = unique_group("ga"), unique_group("gb"), unique_group("gc")
    m1 = [Member(f"g1m{i}", gbroker, g1, [topic]) for i in range(2)]
    m2 = [Member("g2m0", gbroker, g2, [topic])]
    m3 = [Member("g3m0", gbroker, g3, [topic], commit=None)]
    everyone = m1 + m2 + m3
    try:
        drive(
            everyone,
            lambda: all(sum(len(m.messages) for m in ms) >= 40 for ms in (m1, m2, m3)),
            60,
            "each group to read all 40 records",
        )
        poll_for(everyone, 1.0)
        for ms in (m1, m2, m3):
            consumed_once(ms, produced, topic)
        assert committed(gbroker, g1, tps) == {tp: 10 for tp in tps}
        assert committed(gbroker, g2, tps) == {tp: 10 for tp in tps}
        # g3 never committed: no offsets (librdkafka shows OFFSET_INVALID = -1001).
        assert committed(gbroker, g3, tps) == {tp: -1001 for tp in tps}
        for g, n in ((g1, 2), (g2, 1), (g3, 1)):
            d = describe(gbroker, g)
            assert d.state.name == "STABLE" and len(d.members) == n, (g, d.state, len(d.members))
        assert_no_errors(everyone)
    finally:
        close_all(everyone)


# --------------------------------------------------------------------------
# 7. more members than partitions
# --------------------------------------------------------------------------
def test_more_members_than_partitions(gbroker):
    topic = kutil.create_topic(gbroker, kutil.unique_topic(), partitions=4)
    tps = all_tps(topic, 4)
    group = unique_group()
    own = Ownership()
    members = [Member(f"m{i}", gbroker, group, [topic], own) for i in range(6)]
    try:
        def settled():
            if not owned_exactly_once(members, tps):
                return False
            d = describe(gbroker, group)
            return d.state.name == "STABLE" and len(d.members) == 6
        drive(members, settled, 60, "6 members to be in the group with 4 partitions owned once")
        sizes = sorted(len(m.assigned) for m in members)
        assert sizes == [0, 0, 1, 1, 1, 1]
        d = describe(gbroker, group)
        assert sorted(len(v) for v in assignment_of(d).values()) == [0, 0, 1, 1, 1, 1]
        produced = produce_values(gbroker, topic, 10, 4, prefix="x")
        drive(members, lambda: sum(len(m.messages) for m in members) >= 40, 60, "40 records")
        poll_for(members, 1.0)
        consumed_once(members, produced, topic)
        idle = [m for m in members if not m.assigned]
        assert all(not m.messages for m in idle)
        assert_no_errors(members)
        own.assert_clean()
    finally:
        close_all(members)


# --------------------------------------------------------------------------
# 5. partitions added to a subscribed topic
# --------------------------------------------------------------------------
def test_partitions_added_are_assigned_and_consumed(gbroker):
    topic = kutil.create_topic(gbroker, kutil.unique_topic(), partitions=2)
    group = unique_group()
    own = Ownership()
    members = [Member(f"m{i}", gbroker, group, [topic], own) for i in range(2)]
    try:
        drive(members, lambda: owned_exactly_once(members, all_tps(topic, 2)) and all(m.assigned for m in members),
              60, "2 members to own 2 partitions")
        produced = produce_values(gbroker, topic, 5, 2, prefix="p")
        drive(members, lambda: sum(len(m.messages) for m in members) >= 10, 30, "10 records")

        # The members keep polling while the topic grows: the broker starts a rebalance at once,
        # and an eager librdkafka member whose revoke waits unserved in its queue rejoins without
        # it when its own metadata refresh sees the new partitions, so its callbacks would show
        # it owning a partition already given to the other member.
        fs = kutil.admin(gbroker).create_partitions([NewPartitions(topic, 4)], request_timeout=15)
        drive(members, fs[topic].done, 15, "the partitions to be added")
        fs[topic].result(timeout=1)
        drive(members, lambda: owned_exactly_once(members, all_tps(topic, 4)), 60,
              "the 4 partitions to be owned once after growing the topic")
        assert sorted(len(m.assigned) for m in members) == [2, 2]
        produced |= produce_values(gbroker, topic, 5, 4, prefix="q")
        drive(members, lambda: sum(len(m.messages) for m in members) >= 30, 60, "30 records")
        poll_for(members, 1.0)
        consumed_once(members, produced, topic)
        tps = all_tps(topic, 4)
        assert committed(gbroker, group, tps) == {
            (topic, 0): 10, (topic, 1): 10, (topic, 2): 5, (topic, 3): 5
        }
        assert_no_errors(members)
        own.assert_clean()
    finally:
        close_all(members)


# --------------------------------------------------------------------------
# initial rebalance delay, subscription changes
# --------------------------------------------------------------------------
def test_initial_rebalance_delay_gathers_early_members(broker_factory):
    """With group.initial.rebalance.delay.ms=3000 (Kafka's default), members joining a new
    group within the delay get their first assignment together: one generation, no revoke."""
    b = broker_factory({"num.partitions": 4, "group.initial.rebalance.delay.ms": 3000})
    topic = kutil.create_topic(b, kutil.unique_topic(), partitions=4)
    tps = all_tps(topic, 4)
    group = unique_group()
    own = Ownership()
    import time

    started = time.monotonic()
    members = [Member(f"m{i}", b, group, [topic], own) for i in range(2)]
    first_assign = {}
    try:
        def both():
            for m in members:
                if m.events and m.name not in first_assign:
                    first_assign[m.name] = time.monotonic() - started
            return owned_exactly_once(members, tps) and all(m.assigned for m in members)
        drive(members, both, 30, "both members to be assigned")
        poll_for(members, 1.0)
        for m in members:
            assert [k for k, _ in m.events] == ["assign"], f"{m.name}: {m.events}"
        assert min(first_assign.values()) >= 2.5, f"first assignment after {first_assign}s, before the delay"
        d = describe(b, group)
        assert d.state.name == "STABLE" and len(d.members) == 2
        own.assert_clean()
    finally:
        close_all(members)


def test_subscription_change_rebalances(gbroker):
    t1 = kutil.create_topic(gbroker, kutil.unique_topic(), partitions=2)
    t2 = kutil.create_topic(gbroker, kutil.unique_topic(), partitions=2)
    group = unique_group()
    own = Ownership()
    a = Member("a", gbroker, group, [t1], own)
    b = Member("b", gbroker, group, [t1], own)
    members = [a, b]
    try:
        drive(members, lambda: owned_exactly_once(members, all_tps(t1, 2)) and a.assigned and b.assigned,
              60, "a and b to share t1")
        # a now also subscribes to t2: only a may own t2's partitions.
        a.c.subscribe([t1, t2], on_assign=a._on_assign, on_revoke=a._on_revoke, on_lost=a._on_lost)
        everything = all_tps(t1, 2) | all_tps(t2, 2)
        drive(members, lambda: owned_exactly_once(members, everything) and all_tps(t2, 2) <= a.assigned,
              60, "t2's partitions to be assigned to a")
        assert not (b.assigned & all_tps(t2, 2))
        assert b.assigned and b.assigned <= all_tps(t1, 2)
        produced = produce_values(gbroker, t2, 3, 2, prefix="t2")
        drive(members, lambda: sum(1 for m in a.messages if m[0] == t2) >= 6, 30, "a to read t2")
        assert {(p, o, v) for t, p, o, v in a.messages if t == t2} == produced
        d = describe(gbroker, group)
        assert assignment_of(d) == {a.c.memberid(): sorted(a.assigned), b.c.memberid(): sorted(b.assigned)}
        assert_no_errors(members)
        own.assert_clean()
    finally:
        close_all(members)


def test_cooperative_sticky_member_leaving_moves_only_its_partitions(gbroker):
    topic = kutil.create_topic(gbroker, kutil.unique_topic(), partitions=4)
    tps = all_tps(topic, 4)
    group = unique_group()
    own = Ownership()
    conf = {"partition.assignment.strategy": "cooperative-sticky"}
    members = [Member(f"m{i}", gbroker, group, [topic], own, **conf) for i in range(3)]
    try:
        drive(members, lambda: owned_exactly_once(members, tps) and all(m.assigned for m in members),
              60, "3 members to share 4 partitions")
        before = {m.name: set(m.assigned) for m in members}
        counts = {m.name: len(m.events) for m in members}
        leaver = max(members, key=lambda m: len(m.assigned))  # the one with 2 partitions
        leaver.close()
        stay = [m for m in members if m is not leaver]
        drive(stay, lambda: owned_exactly_once(stay, tps), 60, "the others to take the leaver's partitions")
        poll_for(stay, 1.0)
        for m in stay:
            assert before[m.name] <= m.assigned, f"{m.name} lost {before[m.name] - m.assigned}"
            new_events = m.events[counts[m.name]:]
            assert all(kind == "assign" for kind, _ in new_events), f"{m.name} gave something up: {new_events}"
        gained = set().union(*(m.assigned - before[m.name] for m in stay))
        assert gained == before[leaver.name]
        assert sorted(len(m.assigned) for m in stay) == [2, 2]
        own.assert_clean()
        assert_no_errors(stay)
    finally:
        close_all(members)


def test_regex_subscription_picks_up_a_new_topic(gbroker):
    prefix = kutil.unique_topic("rx")
    t1 = kutil.create_topic(gbroker, prefix + "-one", partitions=2)
    group = unique_group()
    own = Ownership()
    members = [Member(f"m{i}", gbroker, group, [f"^{prefix}-.*"], own) for i in range(2)]
    try:
        drive(members, lambda: owned_exactly_once(members, all_tps(t1, 2)) and all(m.assigned for m in members),
              60, "two members to share the first topic")
        t2 = kutil.create_topic(gbroker, prefix + "-two", partitions=2)
        everything = all_tps(t1, 2) | all_tps(t2, 2)
        drive(members, lambda: owned_exactly_once(members, everything), 60, "the new topic to be assigned")
        produced = produce_values(gbroker, t2, 2, 2, prefix="rx")
        drive(members, lambda: sum(1 for m in members for x in m.messages if x[0] == t2) >= 4, 30, "t2 records")
        assert {(p, o, v) for m in members for t, p, o, v in m.messages if t == t2} == produced
        own.assert_clean()
        assert_no_errors(members)
    finally:
        close_all(members)


@pytest.mark.slow
@pytest.mark.parametrize("strategy", ["range", "cooperative-sticky"])
def test_membership_churn_while_consuming(gbroker, strategy):
    """Members come and go while records keep arriving: with each record committed before
    the next poll, eager rebalancing never hands out a record twice; cooperative rebalancing
    never lets two members own a partition. Every record is consumed."""
    import time

    topic = kutil.create_topic(gbroker, kutil.unique_topic(), partitions=8)
    tps = all_tps(topic, 8)
    group = unique_group("churn")
    own = Ownership()
    conf = {"partition.assignment.strategy": strategy}
    counter = iter(range(100))

    def new_member():
        return Member(f"m{next(counter)}", gbroker, group, [topic], own, **conf)

    live = [new_member() for _ in range(3)]
    gone = []
    p = kutil.producer(gbroker)
    produced = set()
    log = kutil.DeliveryLog()
    schedule = {40: "leave", 80: "join", 120: "join", 160: "leave", 200: "leave", 240: "join"}
    try:
        drive(live, lambda: owned_exactly_once(live, tps), 60, "3 members to share 8 partitions")
        for i in range(300):
            p.produce(topic, value=f"c-{i}".encode(), partition=i % 8, on_delivery=log)
            p.poll(0)
            for m in live:
                m.step(0.005)
            action = schedule.get(i)
            if action == "leave":
                m = live.pop(0)
                m.close()
                gone.append(m)
            elif action == "join":
                live.append(new_member())
            time.sleep(0.01)
        assert p.flush(20) == 0
        kutil.assert_no_delivery_errors(log)
        produced = {(pp, off, val) for pp, off, _k, val, _ts in log.acked}
        everyone = gone + live
        drive(live, lambda: owned_exactly_once(live, tps) and
              len({(pp, o) for m in everyone for _t, pp, o, _v in m.messages}) >= 300,
              60, "the remaining members to consume all 300 records")
        poll_for(live, 1.0)
        got = [(pp, o, v) for m in everyone for _t, pp, o, v in m.messages]
        assert set(got) == produced
        if strategy == "range":
            dupes = sorted({x for x in got if got.count(x) > 1})
            assert not dupes, f"records consumed twice: {dupes[:10]}"
            for m in everyone:
                assert not m.commit_errors, f"{m.name}: {m.commit_errors[:3]}"
            ends = {(topic, pp): 1 + max(o for q, o, _v in produced if q == pp) for pp in range(8)}
            assert committed(gbroker, group, tps) == ends
        d = describe(gbroker, group)
        assert d.state.name == "STABLE" and len(d.members) == len(live)
        own.assert_clean()
    finally:
        close_all(live + gone)
