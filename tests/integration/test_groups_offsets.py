"""Committed offsets with librdkafka: manual sync/async commits, auto commit, resuming from
the committed offset, auto.offset.reset earliest/latest/error, and offsets surviving a
broker restart (SIGTERM and SIGKILL)."""

import time

import pytest
from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition

import kutil
from groups_util import (  # noqa: F401  (gbroker is a fixture)
    GROUP_BROKER_OPTIONS,
    ERR_MEMBER_ID_REQUIRED,
    Member,
    Ownership,
    RawGroupClient,
    all_tps,
    committed,
    describe,
    drive,
    gadmin,
    gbroker,
    group_conf,
    poll_for,
    produce_values,
    unique_group,
)

pytestmark = pytest.mark.timeout(150)

# Small __consumer_offsets segments and a cleaner pass every 300 ms.
GROUP_OPTIONS_FAST_CLEANER = {
    **GROUP_BROKER_OPTIONS,
    "offsets.topic.segment.bytes": 4096,
    "log.retention.check.interval.ms": 300,
}


def group_consumer(broker, group, topic, **conf):
    c = Consumer(group_conf(broker, group, **conf))
    c.subscribe([topic])
    return c


def poll_messages(c, count, timeout=30):
    """Poll until `count` messages; fail on errors or timeout."""
    got = []
    deadline = time.monotonic() + timeout
    while len(got) < count and time.monotonic() < deadline:
        m = c.poll(0.1)
        if m is None:
            continue
        if m.error():
            raise AssertionError(f"consumer error: {m.error()}")
        got.append(m)
    assert len(got) == count, f"got {len(got)} of {count} messages within {timeout}s"
    return got


def wait_assigned(c, n, timeout=30):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        m = c.poll(0.1)
        assert m is None or m.error() is None, f"error while joining: {m.error()}"
        if m is not None:
            raise AssertionError(f"unexpected message while joining: {m.offset()}")
        if len(c.assignment()) == n:
            return
    raise AssertionError(f"no assignment of {n} partitions within {timeout}s: {c.assignment()}")


def committed_of(c, topic, partitions, timeout=10):
    res = c.committed([TopicPartition(topic, p) for p in partitions], timeout=timeout)
    for tp in res:
        assert tp.error is None, f"{tp}: {tp.error}"
    return {tp.partition: tp.offset for tp in res}


# --------------------------------------------------------------------------
# 8. commits
# --------------------------------------------------------------------------
def test_manual_sync_commit_is_next_offset_and_consumer_resumes_there(gbroker):
    topic = kutil.create_topic(gbroker, kutil.unique_topic(), partitions=1)
    produce_values(gbroker, topic, 20, 1)
    group = unique_group()
    c = group_consumer(gbroker, group, topic)
    try:
        msgs = poll_messages(c, 7)
        assert [m.offset() for m in msgs] == list(range(7))
        res = c.commit(message=msgs[-1], asynchronous=False)
        assert [(tp.partition, tp.offset, tp.error) for tp in res] == [(0, 7, None)]
        assert committed_of(c, topic, [0]) == {0: 7}
        # An explicit offset, lower than the position, with metadata.
        res = c.commit(offsets=[TopicPartition(topic, 0, 5, metadata="meta-5")], asynchronous=False)
        assert [(tp.offset, tp.error) for tp in res] == [(5, None)]
        got = c.committed([TopicPartition(topic, 0)], timeout=10)[0]
        assert (got.offset, got.metadata) == (5, "meta-5")
    finally:
        c.close()
    c2 = group_consumer(gbroker, group, topic)
    try:
        msgs = poll_messages(c2, 15)
        assert [m.offset() for m in msgs] == list(range(5, 20))
        assert c2.position([TopicPartition(topic, 0)])[0].offset == 20
        # commit() without arguments commits the position.
        res = c2.commit(asynchronous=False)
        assert [(tp.partition, tp.offset) for tp in res] == [(0, 20)]
        assert committed(gbroker, group, [(topic, 0)]) == {(topic, 0): 20}
    finally:
        c2.close()


def test_async_commit_reports_through_on_commit(gbroker):
    topic = kutil.create_topic(gbroker, kutil.unique_topic(), partitions=4)
    produce_values(gbroker, topic, 5, 4)
    group = unique_group()
    reports = []
    c = group_consumer(gbroker, group, topic, on_commit=lambda err, parts: reports.append((err, parts)))
    try:
        msgs = poll_messages(c, 20)
        last = {}
        for m in msgs:
            last[m.partition()] = m.offset()
        assert last == {0: 4, 1: 4, 2: 4, 3: 4}
        assert c.commit(asynchronous=True) is None
        deadline = time.monotonic() + 10
        while not reports and time.monotonic() < deadline:
            c.poll(0.1)
        assert len(reports) == 1, reports
        err, parts = reports[0]
        assert err is None, err
        assert sorted((tp.partition, tp.offset, tp.error) for tp in parts) == [
            (p, 5, None) for p in range(4)
        ]
        assert committed_of(c, topic, range(4)) == {p: 5 for p in range(4)}
    finally:
        c.close()


def test_auto_commit_commits_position_and_restart_resumes(gbroker):
    topic = kutil.create_topic(gbroker, kutil.unique_topic(), partitions=1)
    produce_values(gbroker, topic, 10, 1)
    group = unique_group()
    conf = {"enable.auto.commit": True, "auto.commit.interval.ms": 300}
    c = group_consumer(gbroker, group, topic, **conf)
    try:
        assert [m.offset() for m in poll_messages(c, 10)] == list(range(10))
        deadline = time.monotonic() + 10
        seen = None
        while time.monotonic() < deadline:
            c.poll(0.1)
            seen = committed(gbroker, group, [(topic, 0)])[(topic, 0)]
            if seen == 10:
                break
        assert seen == 10, f"auto commit reached {seen}, want 10"
    finally:
        c.close()
    produce_values(gbroker, topic, 5, 1, prefix="later")
    c2 = group_consumer(gbroker, group, topic, **conf)
    try:
        msgs = poll_messages(c2, 5)
        assert [(m.offset(), m.value()) for m in msgs] == [(10 + i, f"later-0-{i}".encode()) for i in range(5)]
        assert kutil.consume_nothing_more(c2, 1.0) == []
    finally:
        c2.close()  # commits the final position on close
    assert committed(gbroker, group, [(topic, 0)]) == {(topic, 0): 15}


def test_auto_offset_reset_earliest_and_latest(gbroker):
    topic = kutil.create_topic(gbroker, kutil.unique_topic(), partitions=1)
    produce_values(gbroker, topic, 10, 1)
    early = group_consumer(gbroker, unique_group(), topic, **{"auto.offset.reset": "earliest"})
    late = group_consumer(gbroker, unique_group(), topic, **{"auto.offset.reset": "latest"})
    try:
        assert [m.offset() for m in poll_messages(early, 10)] == list(range(10))
        wait_assigned(late, 1)
        # position() stays unset until a record is consumed; give the reset to "latest"
        # (a ListOffsets right after the assignment) ample time, taking no record.
        deadline = time.monotonic() + 2.0
        while time.monotonic() < deadline:
            m = late.poll(0.1)
            assert m is None, f"latest consumer got {m.offset() if m and not m.error() else m.error()}"
        produce_values(gbroker, topic, 3, 1, prefix="new")
        assert [m.offset() for m in poll_messages(late, 3)] == [10, 11, 12]
        assert [m.offset() for m in poll_messages(early, 3)] == [10, 11, 12]
    finally:
        early.close()
        late.close()


def test_auto_offset_reset_error_without_commit(gbroker):
    """librdkafka's auto.offset.reset=error (Java's "none"): no committed offset -> an
    _AUTO_OFFSET_RESET error from poll(); with a committed offset it resumes there."""
    topic = kutil.create_topic(gbroker, kutil.unique_topic(), partitions=1)
    produce_values(gbroker, topic, 10, 1)
    group = unique_group()
    c = group_consumer(gbroker, group, topic, **{"auto.offset.reset": "error"})
    try:
        err = None
        deadline = time.monotonic() + 20
        while err is None and time.monotonic() < deadline:
            m = c.poll(0.1)
            if m is not None:
                assert m.error() is not None, f"got a record at offset {m.offset()} without a commit"
                err = m.error()
        assert err is not None, "no error within 20s"
        assert err.code() == KafkaError._AUTO_OFFSET_RESET, str(err)
    finally:
        c.close()
    admin_commit = RawGroupClient(gbroker)
    try:
        admin_commit.find_coordinator(group)
        assert admin_commit.commit(group, {(topic, 0): (6, "")}) == {(topic, 0): 0}
    finally:
        admin_commit.close()
    c = group_consumer(gbroker, group, topic, **{"auto.offset.reset": "error"})
    try:
        assert [m.offset() for m in poll_messages(c, 4)] == [6, 7, 8, 9]
    finally:
        c.close()


# --------------------------------------------------------------------------
# 9. broker restart
# --------------------------------------------------------------------------
COMMITS = {0: 3, 1: 7, 2: 10, 3: 0}


@pytest.mark.slow
@pytest.mark.parametrize("graceful", [True, False], ids=["sigterm", "sigkill"])
def test_committed_offsets_survive_broker_restart(gbroker, graceful):
    topic = kutil.create_topic(gbroker, kutil.unique_topic(), partitions=4)
    produced = produce_values(gbroker, topic, 10, 4)
    group, other = unique_group("keep"), unique_group("other")
    c = group_consumer(gbroker, group, topic)
    try:
        poll_messages(c, 40)
        # Several commits per partition: the last one must win after replay.
        c.commit(offsets=[TopicPartition(topic, p, 9) for p in range(4)], asynchronous=False)
        res = c.commit(
            offsets=[TopicPartition(topic, p, off, metadata=f"m{p}") for p, off in COMMITS.items()],
            asynchronous=False,
        )
        assert all(tp.error is None for tp in res), res
    finally:
        c.close()
    o = group_consumer(gbroker, other, topic)
    try:
        poll_messages(o, 40)
        o.commit(asynchronous=False)
    finally:
        o.close()
    tps = all_tps(topic, 4)
    assert committed(gbroker, group, tps) == {(topic, p): off for p, off in COMMITS.items()}

    gbroker.restart(graceful=graceful)

    assert committed(gbroker, group, tps) == {(topic, p): off for p, off in COMMITS.items()}
    assert committed(gbroker, other, tps) == {tp: 10 for tp in tps}
    c = group_consumer(gbroker, group, topic)
    try:
        got = committed_of(c, topic, range(4))
        assert got == COMMITS
        meta = {tp.partition: tp.metadata for tp in c.committed([TopicPartition(topic, p) for p in range(4)], timeout=10)}
        assert meta == {p: f"m{p}" for p in range(4)}
        want = {(p, off, v) for p, off, v in produced if off >= COMMITS[p]}
        msgs = poll_messages(c, len(want))
        assert {(m.partition(), m.offset(), m.value()) for m in msgs} == want
        assert kutil.consume_nothing_more(c, 1.0) == []
    finally:
        c.close()


@pytest.mark.slow
@pytest.mark.parametrize("graceful", [True, False], ids=["sigterm", "sigkill"])
def test_running_group_continues_across_broker_restart(gbroker, graceful):
    """Members keep running while the broker restarts: afterwards the group is stable again,
    every record is consumed exactly once (each record committed synchronously)."""
    topic = kutil.create_topic(gbroker, kutil.unique_topic(), partitions=4)
    tps = all_tps(topic, 4)
    group = unique_group()
    own = Ownership()
    members = [Member(f"m{i}", gbroker, group, [topic], own) for i in range(2)]
    try:
        drive(members, lambda: sum(len(m.assigned) for m in members) == 4 and all(m.assigned for m in members),
              60, "two members to share the partitions")
        produced = produce_values(gbroker, topic, 5, 4, prefix="before")
        drive(members, lambda: sum(len(m.messages) for m in members) >= 20, 30, "20 records")
        poll_for(members, 0.5)
        events_before = [list(m.events) for m in members]
        ids_before = [m.c.memberid() for m in members]
        gbroker.restart(graceful=graceful)
        produced |= produce_values(gbroker, topic, 5, 4, prefix="after")
        drive(members, lambda: sum(len(m.messages) for m in members) >= 40, 60, "40 records after the restart")
        poll_for(members, 2.0)
        got = [(p, o, v) for m in members for _t, p, o, v in m.messages]
        assert sorted(got) == sorted(produced), "records lost or consumed twice across the restart"
        assert committed(gbroker, group, tps) == {tp: 10 for tp in tps}
        d = describe(gbroker, group)
        assert d.state.name == "STABLE" and len(d.members) == 2
        for m in members:
            assert not m.commit_errors, m.commit_errors
        own.assert_clean()
    finally:
        for m in members:
            m.close()


@pytest.mark.slow
def test_sigterm_with_a_rebalance_in_progress_stops_promptly(gbroker):
    """A JoinGroup parked in a rebalance must not hold up a graceful shutdown."""
    topic = kutil.create_topic(gbroker, kutil.unique_topic(), partitions=4)
    group = unique_group()
    r1, r2 = RawGroupClient(gbroker), RawGroupClient(gbroker)
    try:
        j1 = r1.join_full(group, topics=[topic], session_ms=30000, rebalance_ms=60000)
        assert j1.error_code == 0
        assert r1.sync(group, j1.generation_id, j1.member_id, {j1.member_id: {topic: [0, 1, 2, 3]}}).error_code == 0
        # A second member's JoinGroup waits for r1 to rejoin (up to 60 s).
        r2.find_coordinator(group)
        j2 = r2.join(group, topics=[topic], session_ms=30000, rebalance_ms=60000)
        assert j2.error_code == ERR_MEMBER_ID_REQUIRED
        r2.join(group, member_id=j2.member_id, topics=[topic], session_ms=30000, rebalance_ms=60000, wait=False)
        time.sleep(1.0)
        started = time.monotonic()
        code = gbroker.stop(timeout=30)
        took = time.monotonic() - started
        assert code == 0, f"exit code {code}"
        assert took < 5.0, f"SIGTERM took {took:.1f}s with a JoinGroup parked"
    finally:
        r1.close()
        r2.close()


# --------------------------------------------------------------------------
# compaction of __consumer_offsets, fsync-before-ack mode
# --------------------------------------------------------------------------
def commit_raw(broker, group, offsets):
    c = RawGroupClient(broker)
    try:
        c.find_coordinator(group)
        errs = c.commit(group, {tp: (off, meta) for tp, (off, meta) in offsets.items()})
        assert set(errs.values()) == {0}, errs
    finally:
        c.close()


@pytest.mark.slow
@pytest.mark.parametrize("graceful", [True, False], ids=["sigterm", "sigkill"])
def test_offsets_survive_compaction_and_restart(broker_factory, graceful):
    """Tiny __consumer_offsets segments and a fast cleaner: many superseded commits, a deleted
    group and deleted offsets are compacted away; after a restart the replay gives exactly the
    last state (last commit wins, deletions stay deleted)."""
    opts = dict(GROUP_OPTIONS_FAST_CLEANER)
    b = broker_factory(opts)
    topic = kutil.create_topic(b, kutil.unique_topic(), partitions=4)
    tps = sorted(all_tps(topic, 4))
    keep, gone, trimmed = unique_group("keep"), unique_group("gone"), unique_group("trim")
    c = RawGroupClient(b)
    try:
        for g in (keep, gone, trimmed):
            c.find_coordinator(g)
        for i in range(1, 151):
            errs = c.commit(keep, {tp: (i * 10 + tp[1], f"round-{i}") for tp in tps})
            assert set(errs.values()) == {0}, errs
            if i <= 20:
                assert set(c.commit(gone, {tp: (i, "") for tp in tps}).values()) == {0}
                assert set(c.commit(trimmed, {tp: (i, "") for tp in tps}).values()) == {0}
    finally:
        c.close()
    from groups_util import offset_delete

    assert offset_delete(b, trimmed, [(topic, 0), (topic, 1)])[0] == 0
    a = gadmin(b)
    a.delete_consumer_groups([gone], request_timeout=10)[gone].result(timeout=15)
    want_keep = {tp: 1500 + tp[1] for tp in tps}
    want_trim = {(topic, 0): -1001, (topic, 1): -1001, (topic, 2): 20, (topic, 3): 20}
    assert committed(b, keep, tps) == want_keep
    # Wait for the cleaner to have removed superseded records.
    deadline = time.monotonic() + 30
    while "compaction removed records" not in b.log_text() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert "compaction removed records" in b.log_text(), "the cleaner never compacted"
    b.restart(graceful=graceful)
    assert committed(b, keep, tps) == want_keep
    assert committed(b, trimmed, tps) == want_trim
    assert committed(b, gone, tps) == {tp: -1001 for tp in tps}
    groups = {g.group_id for g in gadmin(b).list_consumer_groups(request_timeout=10).result(timeout=15).valid}
    assert keep in groups and trimmed in groups and gone not in groups
    r = RawGroupClient(b)
    try:
        got, _ = r.fetch(keep, [(topic, 0)])
        assert got[(topic, 0)][:2] == (1500, "round-150")
    finally:
        r.close()
    # A second restart replays the compacted log the same way.
    b.restart(graceful=True)
    assert committed(b, keep, tps) == want_keep
    assert committed(b, trimmed, tps) == want_trim


@pytest.mark.slow
def test_group_commits_with_fsync_before_ack(broker_factory):
    """log.flush.interval.messages=1: group writes go through the fsync path; a group consumes,
    commits, and a SIGKILL + restart keeps every commit."""
    b = broker_factory({**GROUP_BROKER_OPTIONS, "log.flush.interval.messages": 1})
    topic = kutil.create_topic(b, kutil.unique_topic(), partitions=4)
    produced = produce_values(b, topic, 5, 4)
    group = unique_group()
    members = [Member(f"m{i}", b, group, [topic]) for i in range(2)]
    try:
        drive(members, lambda: sum(len(m.messages) for m in members) >= 20, 60, "20 records")
        poll_for(members, 0.5)
        got = {(p, o, v) for m in members for _t, p, o, v in m.messages}
        assert got == produced
        for m in members:
            assert not m.commit_errors, m.commit_errors
    finally:
        for m in members:
            m.close()
    b.restart(graceful=False)
    assert committed(b, group, all_tps(topic, 4)) == {tp: 5 for tp in all_tps(topic, 4)}


# --------------------------------------------------------------------------
# retention and deleted topics
# --------------------------------------------------------------------------
@pytest.mark.slow
def test_commit_retention_time_expires_offsets(broker_factory):
    """OffsetCommit v2-v4 carry a retention time: such an offset is removed once it passes
    (checked every offsets.retention.check.interval.ms); one without keeps the default."""
    from kafka.protocol.commit import OffsetCommitRequest, OffsetCommitResponse

    b = broker_factory({**GROUP_BROKER_OPTIONS, "offsets.retention.check.interval.ms": 300})
    topic = kutil.create_topic(b, kutil.unique_topic(), partitions=2)
    group = unique_group("retention")
    c = RawGroupClient(b)
    try:
        c.find_coordinator(group)
        req = OffsetCommitRequest[2](group, -1, "", 1500, [(topic, [(0, 5, "short")])])
        resp = c.call(8, 2, req, OffsetCommitResponse[2])
        assert resp.topics == [(topic, [(0, 0)])]
        req = OffsetCommitRequest[2](group, -1, "", -1, [(topic, [(1, 7, "default")])])
        assert c.call(8, 2, req, OffsetCommitResponse[2]).topics == [(topic, [(1, 0)])]
        got, _ = c.fetch(group, [(topic, 0), (topic, 1)])
        assert {tp: v[0] for tp, v in got.items()} == {(topic, 0): 5, (topic, 1): 7}
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            got, _ = c.fetch(group, [(topic, 0), (topic, 1)])
            if got[(topic, 0)][0] == -1:
                break
            time.sleep(0.2)
        assert {tp: v[0] for tp, v in got.items()} == {(topic, 0): -1, (topic, 1): 7}
    finally:
        c.close()
    b.restart(graceful=False)
    assert committed(b, group, [(topic, 0), (topic, 1)]) == {(topic, 0): -1001, (topic, 1): 7}


@pytest.mark.slow
def test_deleting_a_topic_deletes_its_committed_offsets(gbroker):
    a_topic = kutil.create_topic(gbroker, kutil.unique_topic(), partitions=2)
    b_topic = kutil.create_topic(gbroker, kutil.unique_topic(), partitions=2)
    group = unique_group()
    commit_raw(gbroker, group, {(a_topic, 0): (3, ""), (a_topic, 1): (4, ""), (b_topic, 0): (5, "")})
    fs = gadmin(gbroker).delete_topics([a_topic], operation_timeout=15, request_timeout=15)
    fs[a_topic].result(timeout=15)
    want = {(a_topic, 0): -1001, (a_topic, 1): -1001, (b_topic, 0): 5}
    r = RawGroupClient(gbroker)
    try:
        got, _ = r.fetch(group, [(a_topic, 0), (a_topic, 1), (b_topic, 0)])
        assert {tp: v[0] for tp, v in got.items()} == {(a_topic, 0): -1, (a_topic, 1): -1, (b_topic, 0): 5}
    finally:
        r.close()
    # Re-created under the same name: still no committed offsets, also after a restart.
    kutil.create_topic(gbroker, a_topic, partitions=2)
    assert committed(gbroker, group, want) == want
    gbroker.restart(graceful=False)
    assert committed(gbroker, group, want) == want


def java_partition_for(group, partitions):
    """Kafka's offsets-topic partition for a group: abs(Java String.hashCode) % partitions."""
    h = 0
    data = group.encode("utf-16-be")
    for i in range(0, len(data), 2):
        h = (h * 31 + int.from_bytes(data[i:i + 2], "big")) & 0xFFFFFFFF
    if h >= 1 << 31:
        h -= 1 << 32
    return 0 if h == -(1 << 31) else abs(h) % partitions


def test_group_records_land_in_the_kafka_partition_of_the_offsets_topic(gbroker):
    """Group records go to __consumer_offsets partition abs(groupId.hashCode) % 50, as in
    Kafka (tools reading the offsets topic rely on it)."""
    topic = kutil.create_topic(gbroker, kutil.unique_topic(), partitions=1)
    group = "my-group"
    assert java_partition_for(group, 50) == 12
    commit_raw(gbroker, group, {(topic, 0): (5, "")})
    ends = {p: kutil.watermarks(gbroker, "__consumer_offsets", p)[1] for p in range(50)}
    assert [p for p, end in ends.items() if end > 0] == [12], ends


@pytest.mark.slow
def test_changing_offsets_topic_partition_count_keeps_latest_commit(broker_factory):
    b = broker_factory(dict(GROUP_BROKER_OPTIONS))
    topic = kutil.create_topic(b, kutil.unique_topic(), partitions=1)
    group = "my-group"  # partition 12 of 50, 2 of 10
    commit_raw(b, group, {(topic, 0): (5, "")})
    b.stop()
    b.options["offsets.topic.num.partitions"] = 10
    b.start()
    assert committed(b, group, [(topic, 0)]) == {(topic, 0): 5}
    commit_raw(b, group, {(topic, 0): (9, "")})
    assert committed(b, group, [(topic, 0)]) == {(topic, 0): 9}
    b.restart(graceful=True)
    assert committed(b, group, [(topic, 0)]) == {(topic, 0): 9}
