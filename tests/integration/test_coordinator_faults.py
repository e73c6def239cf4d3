"""A coordinator write that fails changes nothing (issue 8, items 2 and 3), end to end.

The data directory is a small tmpfs that a producer fills. Commits then fail with Kafka's answer
to a failed coordinator write (NOT_COORDINATOR), and every read keeps answering the last durable
state: OffsetFetch the last acknowledged offset, ListGroups no group the failed write would have
created, DescribeGroups and the lag snapshot (HTTP API) no commit and no generation whose record
was never written. A restart on the still full disk loads the same state; once DeleteTopics has
given the filler's space back, commits and rebalances work again and survive a restart. Run in
both durability modes.

Mounting the tmpfs needs root (CI runs as root); the test is skipped otherwise.
"""

import os
import sys
import time

import pytest
from confluent_kafka import KafkaError, KafkaException, TopicPartition
from kafka.protocol.admin import DescribeGroupsRequest, DescribeGroupsResponse, ListGroupsRequest, ListGroupsResponse

import kproto
import kutil
from cairn_harness import HttpBroker
from conftest import OUTPUT_DIR, SMALL_DISK_BYTES, _safe_name
from groups_util import ERR_NONE, RawGroupClient, consumer_assignment, unique_group

pytestmark = pytest.mark.timeout(120)

RESERVE_BYTES = 64 << 10
# tmpfs hands out whole pages: a write fails only once it needs a page that is not there.
PAGE = os.sysconf("SC_PAGE_SIZE")
ERR_NOT_COORDINATOR = 16
ERR_KAFKA_STORAGE_ERROR = 56
API_DESCRIBE_GROUPS = 15
API_LIST_GROUPS = 16
# Long enough that no member expires and no rebalance times out while the test runs: an expiry
# would be one more group write, on a full disk.
SESSION_MS = 60_000
REBALANCE_MS = 60_000
LAG_REFRESH_MS = 200


@pytest.fixture
def disk_broker(request, small_disk):
    """Starts the one broker of the test on the small tmpfs; stops it at the end (before the
    unmount) and prints its log if the test failed."""
    brokers = []

    def start(options):
        log_path = OUTPUT_DIR / f"{_safe_name(request.node.nodeid)}.log"
        if log_path.exists():
            log_path.unlink()
        b = HttpBroker(data_dir=small_disk, log_path=log_path, options=options)
        brokers.append(b)
        return b.start()

    yield start
    failed = any(getattr(request.node, "rep_" + w, None) is not None and getattr(request.node, "rep_" + w).failed
                 for w in ("setup", "call"))
    for b in brokers:
        code = b.stop()
        if failed or code not in (None, 0, -15):
            sys.stderr.write(f"\n----- cairn stderr ({b.log_path}, exit {code}) -----\n{b.log_tail()}\n")


def lag_view(broker, group, after_ms, timeout=10):
    """/api/groups/{group} from a lag snapshot taken after `after_ms`: (status, detail or None)."""
    deadline = time.monotonic() + timeout
    while True:
        _status, health = broker.get_json("/health")
        if health and (health.get("lag_snapshot_ms") or 0) > after_ms:
            status, detail = broker.get_json(f"/api/groups/{group}")
            if detail is None or (detail.get("snapshot_ms") or 0) > after_ms:
                return status, detail
        assert time.monotonic() < deadline, f"no lag snapshot taken after {after_ms} within {timeout}s"
        time.sleep(0.05)


def free_bytes(path):
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize


# --------------------------------------------------------------------------
# raw requests whose exact error codes the test asserts
# --------------------------------------------------------------------------
def raw_produce(broker, topic, value):
    """Produce v3 of one record to partition 0 -> (error code, base offset)."""
    conn = kproto.Conn(broker.host, broker.port, timeout=15)
    try:
        conn.send(kproto.produce_request(1, topic, 0, kproto.record_batch([(None, value)])))
        _cid, out = kproto.parse_produce_v3(conn.read_frame())
        return out[(topic, 0)]
    finally:
        conn.close()


def raw_fetch(broker, topic, offset):
    """Fetch v4 of partition 0 at `offset` -> (error code, high watermark, [(offset, key, value)])."""
    conn = kproto.Conn(broker.host, broker.port, timeout=15)
    try:
        conn.send(kproto.fetch_request(1, topic, 0, offset))
        _cid, out = kproto.parse_fetch_v4(conn.read_frame())
        err, hw, data = out[(topic, 0)]
        return err, hw, kproto.parse_record_batches(data or b"")
    finally:
        conn.close()


def raw_metadata(broker, topics):
    conn = kproto.Conn(broker.host, broker.port, timeout=15)
    try:
        conn.send(kproto.metadata_request(1, topics))
        _cid, _brokers, _ctrl, out = kproto.parse_metadata_v1(conn.read_frame())
        return {name: err for name, (err, _parts) in out.items()}
    finally:
        conn.close()


def describe(client, group):
    """(state, {member_id: assignment bytes}) from DescribeGroups v1."""
    r = client.call(API_DESCRIBE_GROUPS, 1, DescribeGroupsRequest[1]([group]), DescribeGroupsResponse[1])
    err, gid, state, _ptype, _proto, members = r.groups[0]
    assert (err, gid) == (ERR_NONE, group), r
    return state, {m[0]: m[4] for m in members}


def listed(client):
    r = client.call(API_LIST_GROUPS, 0, ListGroupsRequest[0](), ListGroupsResponse[0])
    assert r.error_code == ERR_NONE, r
    return {g[0] for g in r.groups}


def lag_committed(view, tp):
    status, detail = view
    assert status == 200, view
    got = [p["committed_offset"] for p in detail["partition_list"] if (p["topic"], p["partition"]) == tp]
    return got[0] if got else None


def fetched(client, group, tp):
    offsets, err = client.fetch(group, [tp])
    off, _meta, perr = offsets[tp]
    assert (err, perr) == (ERR_NONE, ERR_NONE), (group, err, perr)
    return off


def client_committed(broker, group, tp):
    """The group's committed offset as librdkafka reads it (OffsetFetch)."""
    c = kutil.consumer(broker, **{"group.id": group})
    try:
        return c.committed([TopicPartition(tp[0], tp[1])], timeout=15)[0].offset
    finally:
        c.close()


def client_commit(broker, group, tp, offset):
    """A librdkafka simple commit (no subscription); returns None or the KafkaError."""
    c = kutil.consumer(broker, **{"group.id": group})
    try:
        c.commit(offsets=[TopicPartition(tp[0], tp[1], offset)], asynchronous=False)
        return None
    except KafkaException as e:
        return e.args[0]
    finally:
        c.close()


# --------------------------------------------------------------------------
# filling the disk with a real producer
# --------------------------------------------------------------------------
def fill(broker, topic, mnt, deadline_s=30):
    """Produce to `topic` until the broker refuses for lack of space, ever smaller records so that
    no free page is left at the end. Returns the last acknowledged offset."""
    last = -1
    deadline = time.monotonic() + deadline_s
    # (value size, records per flush, linger.ms): big batches first; the last size is small
    # enough that it fails only when not one page is free.
    for size, chunk, linger in ((256 << 10, 8, 5), (16 << 10, 4, 0), (1 << 10, 1, 0), (200, 1, 0)):
        p = kutil.producer(broker, **{"retries": 0, "linger.ms": linger, "message.timeout.ms": 15000,
                                      "batch.size": 512 << 10, "acks": 1})
        while True:
            assert time.monotonic() < deadline, f"the disk did not fill within {deadline_s}s"
            log = kutil.produce_all(p, topic, [(None, b"f" * size, 0, None)] * chunk, timeout=20)
            if log.acked:
                last = max(last, max(off for _p, off, _k, _v, _ts in log.acked))
            if log.errors:
                codes = {e.code() for e, _k, _v in log.errors}
                assert codes == {KafkaError.KAFKA_STORAGE_ERROR}, f"{size}-byte records refused with {codes}"
                break
    assert free_bytes(mnt) < 2 * PAGE, f"{free_bytes(mnt)} bytes still free after the fill"
    return last


# --------------------------------------------------------------------------
# the test
# --------------------------------------------------------------------------
@pytest.mark.parametrize("flush", ["default", "fsync"])
def test_failed_coordinator_writes_change_nothing(small_disk, disk_broker, flush):
    options = {
        "num.partitions": 1,
        "auto.create.topics.enable": "false",
        # One offsets partition: every group's records share the page the commits fill up.
        "offsets.topic.num.partitions": 1,
        "group.initial.rebalance.delay.ms": 0,
        "cairn.lag.refresh.ms": LAG_REFRESH_MS,
    }
    if flush == "fsync":
        options["log.flush.interval.messages"] = 1
    reserve = small_disk / "reserve"
    reserve.write_bytes(b"\0" * RESERVE_BYTES)
    broker = disk_broker(options)
    topic = kutil.create_topic(broker, kutil.unique_topic("committed"), 1)
    filler = kutil.create_topic(broker, kutil.unique_topic("filler"), 1)
    tp = (topic, 0)
    simple = unique_group("simple")  # offsets only, generation -1
    member_group = unique_group("member")  # a real classic group with one member
    fresh = unique_group("fresh")  # first seen on the full disk
    x1 = consumer_assignment({topic: [0]})
    x2 = consumer_assignment({topic: [0], "never-written": [0]})

    c = RawGroupClient(broker, client_id="faults")
    try:
        # The offsets topic exists (FindCoordinator creates it) and takes commits.
        assert c.find_coordinator(simple).error_code == ERR_NONE
        assert c.commit(simple, {tp: (10, "")}) == {tp: ERR_NONE}
        assert fetched(c, simple, tp) == 10

        # One member, generation 1, Stable with assignment x1; it commits with its generation.
        j = c.join_full(member_group, topics=[topic], session_ms=SESSION_MS, rebalance_ms=REBALANCE_MS)
        assert j.error_code == ERR_NONE, j
        gen1, member = j.generation_id, j.member_id
        s = c.sync(member_group, gen1, member, {member: {topic: [0]}})
        assert (s.error_code, s.member_assignment) == (ERR_NONE, x1), s
        member_a = 5
        assert c.commit(member_group, {tp: (member_a, "")}, generation=gen1, member_id=member) == {tp: ERR_NONE}
        assert describe(c, member_group) == ("Stable", {member: x1})

        filler_last = fill(broker, filler, small_disk)

        # Commits use up what is left of the offsets segment's last page, then fail the way Kafka
        # fails a coordinator write on a storage fault. `a` is the last acknowledged offset.
        a, b, accepted = 10, None, 0
        for off in range(11, 1011):
            err = c.commit(simple, {tp: (off, "")})[tp]
            if err != ERR_NONE:
                assert err == ERR_NOT_COORDINATOR, f"commit on a full disk answered {err}"
                b = off
                break
            a, accepted = off, accepted + 1
        assert b is not None, "1000 commits succeeded on a full disk"
        # A commit batch is over 64 bytes, so only the offsets segment's last page took these.
        assert accepted < PAGE // 64, f"{accepted} commits fit on a disk said to be full"
        after_b = fetched(c, simple, tp)

        # More writes that cannot be stored: a member commit, a real client's commit, the first
        # commit of a new group, and a rebalance whose SyncGroup record cannot be written. Their
        # records are larger than the simple commit that did not fit (longer metadata), so the
        # bytes left in the page cannot take them either.
        meta = "m" * 32
        assert c.commit(member_group, {tp: (member_a + 100, meta)}, generation=gen1, member_id=member) == {
            tp: ERR_NOT_COORDINATOR}
        assert c.commit(fresh, {tp: (77, meta)}) == {tp: ERR_NOT_COORDINATOR}
        err = client_commit(broker, simple, tp, b + 1)
        assert err is not None, "librdkafka reported a commit on a full disk as successful"
        assert err.code() == KafkaError.NOT_COORDINATOR, err
        j2 = c.join(member_group, member_id=member, topics=[topic], session_ms=SESSION_MS,
                    rebalance_ms=REBALANCE_MS)
        assert j2.error_code == ERR_NONE and j2.generation_id == gen1 + 1, j2
        s2 = c.sync(member_group, j2.generation_id, member, {member: {topic: [0], "never-written": [0]}})
        assert s2.error_code == ERR_NOT_COORDINATOR, s2

        # Reads see only what is durable: the Kafka API and the lag snapshot (HTTP API).
        failed_by_ms = int(time.time() * 1000)
        state, assignments = describe(c, member_group)
        lag_simple = lag_view(broker, simple, failed_by_ms)
        lag_member = lag_view(broker, member_group, failed_by_ms)
        lag_fresh = lag_view(broker, fresh, failed_by_ms)
        seen = {
            "OffsetFetch simple, right after its failed commit B": after_b,
            "OffsetFetch simple": fetched(c, simple, tp),
            "OffsetFetch simple (librdkafka)": client_committed(broker, simple, tp),
            "OffsetFetch member group": fetched(c, member_group, tp),
            "OffsetFetch fresh group": fetched(c, fresh, tp),
            "ListGroups shows fresh group": fresh in listed(c),
            "DescribeGroups Stable with the unwritten assignment":
                state == "Stable" and x2 in assignments.values(),
            "lag snapshot: simple committed": lag_committed(lag_simple, tp),
            "lag snapshot: member group committed": lag_committed(lag_member, tp),
            "lag snapshot: member group Stable at the unwritten generation":
                (lag_member[1]["state"], lag_member[1]["generation"]) == ("Stable", gen1 + 1),
            "lag snapshot: fresh group": lag_fresh[0],
        }
        assert seen == {
            "OffsetFetch simple, right after its failed commit B": a,
            "OffsetFetch simple": a,
            "OffsetFetch simple (librdkafka)": a,
            "OffsetFetch member group": member_a,
            "OffsetFetch fresh group": -1,
            "ListGroups shows fresh group": False,
            "DescribeGroups Stable with the unwritten assignment": False,
            "lag snapshot: simple committed": a,
            "lag snapshot: member group committed": member_a,
            "lag snapshot: member group Stable at the unwritten generation": False,
            "lag snapshot: fresh group": 404,
        }, f"last durable commit A={a}, failed commit B={b}; member group now {state} {assignments}"

        # The broker keeps serving: metadata, reads of the filler; produce is still refused.
        assert raw_metadata(broker, [topic, filler]) == {topic: 0, filler: 0}
        err, hw, records = raw_fetch(broker, filler, filler_last)
        offsets = [o for o, _k, _v in records]
        assert (err, hw) == (0, filler_last + 1) and max(offsets) == filler_last, (err, hw, offsets)
        assert raw_produce(broker, filler, b"x" * 200)[0] == ERR_KAFKA_STORAGE_ERROR
        assert broker.is_running()
    finally:
        c.close()

    # A restart on the full disk loads exactly what was written.
    assert broker.stop() == 0, broker.log_tail()
    broker.start()
    c = RawGroupClient(broker, client_id="faults-2")
    try:
        assert c.find_coordinator(simple).error_code == ERR_NONE
        assert fetched(c, simple, tp) == a
        assert fetched(c, member_group, tp) == member_a
        assert fetched(c, fresh, tp) == -1
        assert fresh not in listed(c)
        assert describe(c, member_group) == ("Stable", {member: x1})
        assert raw_produce(broker, filler, b"x" * 200)[0] == ERR_KAFKA_STORAGE_ERROR
        assert c.commit(simple, {tp: (b, "")}) == {tp: ERR_NOT_COORDINATOR}
        assert fetched(c, simple, tp) == a
    finally:
        c.close()

    # Space comes back. DeleteTopics rewrites the topic registry, which a disk full to its last
    # page refuses (KAFKA_STORAGE_ERROR), so the operator first removes a small file kept for
    # this; deleting the filler topic then gives back most of the disk.
    os.unlink(reserve)
    before = free_bytes(small_disk)
    fs = kutil.admin(broker).delete_topics([filler], operation_timeout=15, request_timeout=15)
    fs[filler].result(timeout=20)
    deadline = time.monotonic() + 15
    while any(e.name.startswith(filler) for e in os.scandir(small_disk)):
        assert time.monotonic() < deadline, f"{filler}'s files still there: {os.listdir(small_disk)}"
        time.sleep(0.1)
    freed = free_bytes(small_disk) - before
    assert freed > SMALL_DISK_BYTES // 2, f"deleting the filler gave back only {freed} bytes"

    # Writes work again, without a restart, and are durable.
    c = RawGroupClient(broker, client_id="faults-3")
    try:
        assert c.find_coordinator(simple).error_code == ERR_NONE
        c_off = b + 100
        assert c.commit(simple, {tp: (c_off, "c")}) == {tp: ERR_NONE}
        assert fetched(c, simple, tp) == c_off
        assert client_commit(broker, simple, tp, c_off + 1) is None
        assert client_committed(broker, simple, tp) == c_off + 1
        j3 = c.join(member_group, member_id=member, topics=[topic], session_ms=SESSION_MS,
                    rebalance_ms=REBALANCE_MS)
        assert j3.error_code == ERR_NONE, j3
        gen3 = j3.generation_id
        s3 = c.sync(member_group, gen3, member, {member: {topic: [0], "never-written": [0]}})
        assert (s3.error_code, s3.member_assignment) == (ERR_NONE, x2), s3
        assert c.commit(member_group, {tp: (member_a + 1, "")}, generation=gen3, member_id=member) == {
            tp: ERR_NONE}
        assert describe(c, member_group) == ("Stable", {member: x2})
    finally:
        c.close()
    assert broker.stop() == 0, broker.log_tail()
    broker.start()
    c = RawGroupClient(broker, client_id="faults-4")
    try:
        assert c.find_coordinator(simple).error_code == ERR_NONE
        assert fetched(c, simple, tp) == c_off + 1
        assert fetched(c, member_group, tp) == member_a + 1
        assert describe(c, member_group) == ("Stable", {member: x2})
    finally:
        c.close()
    assert "panicked" not in broker.log_text()
