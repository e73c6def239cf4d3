"""Helpers for the consumer-group integration tests (test_groups*.py).

Built on the shared harness (conftest.broker_factory, kutil): a broker fixture
with fast group options, consumer-group members that record their rebalance
callbacks, an ownership tracker that fails when one partition is owned by two
members at once, a consumer running in a child process (for SIGKILL), and a
raw group-protocol client (kafka-python's protocol structs over a plain socket,
framed with kproto) for requests no client library sends on purpose.
"""

import json
import os
import select
import signal
import struct
import subprocess
import sys
import time
import uuid

import pytest
from confluent_kafka import Consumer, KafkaError, TopicPartition

import kproto
import kutil

GROUP_BROKER_OPTIONS = {
    "num.partitions": 4,
    "auto.create.topics.enable": "true",
    "group.initial.rebalance.delay.ms": 0,
}

SESSION_TIMEOUT_MS = 6000
HEARTBEAT_MS = 1000


@pytest.fixture
def gbroker(broker_factory):
    """A broker started with -o group.initial.rebalance.delay.ms=0 -o num.partitions=4."""
    return broker_factory(dict(GROUP_BROKER_OPTIONS))


def unique_group(prefix="g"):
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def group_conf(broker, group, **extra):
    conf = kutil.base_conf(
        broker,
        **{
            "group.id": group,
            "session.timeout.ms": SESSION_TIMEOUT_MS,
            "heartbeat.interval.ms": HEARTBEAT_MS,
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
            "fetch.wait.max.ms": 100,
            "enable.partition.eof": False,
            "topic.metadata.refresh.interval.ms": 1000,
        },
    )
    conf.update(extra)
    return conf


def produce_values(broker, topic, per_partition, partitions, prefix="v"):
    """Produce `per_partition` records to each partition; values are b"<prefix>-<p>-<i>".

    Returns the set of (partition, offset, value) acknowledged."""
    p = kutil.producer(broker)
    records = [
        (None, f"{prefix}-{part}-{i}".encode(), part, None)
        for part in range(partitions)
        for i in range(per_partition)
    ]
    log = kutil.produce_all(p, topic, records)
    kutil.assert_no_delivery_errors(log)
    return {(part, off, val) for part, off, _k, val, _ts in log.acked}


# --------------------------------------------------------------------------
# ownership tracking across members
# --------------------------------------------------------------------------
class Ownership:
    """Who owns which (topic, partition), as seen from the members' rebalance callbacks.

    Callbacks are served from poll(), and all members are polled from one thread,
    so the callback order is the observed order. A partition assigned to a member
    while another member still holds it is a violation."""

    def __init__(self):
        self.owner = {}
        self.violations = []
        self.history = []  # (t, member, kind, [(topic, partition)])

    def add(self, member, tps):
        self.history.append((time.monotonic(), member, "assign", sorted(tps)))
        for tp in tps:
            cur = self.owner.get(tp)
            if cur is not None and cur != member:
                self.violations.append(f"{tp} assigned to {member} while {cur} still owns it")
            self.owner[tp] = member

    def remove(self, member, tps, kind="revoke"):
        self.history.append((time.monotonic(), member, kind, sorted(tps)))
        for tp in tps:
            if self.owner.get(tp) == member:
                del self.owner[tp]

    def of(self, member):
        return {tp for tp, m in self.owner.items() if m == member}

    def assert_clean(self):
        assert not self.violations, "partitions owned twice: " + "; ".join(self.violations)


class Member:
    """A confluent-kafka group consumer that records callbacks, messages and errors.

    commit: None (no commits), "sync" or "async" (commit each message after it is
    handled, with offset = message offset + 1)."""

    def __init__(self, name, broker, group, topics, ownership=None, commit="sync",
                 on_assign_hook=None, **conf):
        self.name = name
        self.ownership = ownership if ownership is not None else Ownership()
        self.commit_mode = commit
        self.assigned = set()
        self.events = []  # ("assign"|"revoke"|"lost", sorted [(topic, partition)])
        self.messages = []  # (topic, partition, offset, value)
        self.errors = []  # KafkaError from poll()
        self.commit_errors = []
        self.on_assign_hook = on_assign_hook
        self.closed = False
        self.c = Consumer(group_conf(broker, group, **conf))
        self.c.subscribe(
            list(topics), on_assign=self._on_assign, on_revoke=self._on_revoke, on_lost=self._on_lost
        )

    # callbacks (run inside poll)
    def _on_assign(self, consumer, parts):
        tps = [(p.topic, p.partition) for p in parts]
        self.events.append(("assign", sorted(tps)))
        self.assigned |= set(tps)
        self.ownership.add(self.name, tps)
        if self.on_assign_hook:
            self.on_assign_hook(self, consumer, parts)

    def _on_revoke(self, consumer, parts):
        tps = [(p.topic, p.partition) for p in parts]
        self.events.append(("revoke", sorted(tps)))
        self.assigned -= set(tps)
        self.ownership.remove(self.name, tps)

    def _on_lost(self, consumer, parts):
        tps = [(p.topic, p.partition) for p in parts]
        self.events.append(("lost", sorted(tps)))
        self.assigned -= set(tps)
        self.ownership.remove(self.name, tps, kind="lost")

    def step(self, timeout=0.02):
        if self.closed:
            return None
        m = self.c.poll(timeout)
        if m is None:
            return None
        if m.error():
            if m.error().code() != KafkaError._PARTITION_EOF:
                self.errors.append(m.error())
            return None
        self.messages.append((m.topic(), m.partition(), m.offset(), m.value()))
        if self.commit_mode is not None:
            try:
                self.c.commit(message=m, asynchronous=(self.commit_mode == "async"))
            except Exception as e:  # recorded, asserted by the tests
                self.commit_errors.append(f"{m.topic()}[{m.partition()}]@{m.offset()}: {e!r}")
        return m

    def close(self):
        if not self.closed:
            self.closed = True
            self.c.close()

    def __repr__(self):
        return (f"<{self.name} assigned={sorted(self.assigned)} msgs={len(self.messages)} "
                f"errors={[str(e) for e in self.errors[:3]]} events={self.events[-4:]}>")


def drive(members, until, timeout, what, check_every=0.25):
    """Poll every (open) member round-robin until `until()` is true; fail after `timeout` s."""
    deadline = time.monotonic() + timeout
    next_check = 0.0
    while True:
        now = time.monotonic()
        if now >= next_check:
            if until():
                return
            next_check = now + check_every
        if now >= deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}; members: {members}")
        for m in members:
            m.step(0.02)


def poll_for(members, seconds):
    """Poll all members for `seconds` (no condition)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        for m in members:
            m.step(0.02)


def all_tps(topic, partitions):
    return {(topic, p) for p in range(partitions)}


def owned_exactly_once(members, tps):
    """True if the members' assignments are disjoint and cover exactly `tps`."""
    seen = []
    for m in members:
        seen.extend(m.assigned)
    return len(seen) == len(set(seen)) and set(seen) == set(tps)


# --------------------------------------------------------------------------
# AdminClient views of a group
# --------------------------------------------------------------------------
def gadmin(broker):
    """An AdminClient for the broker's current run: a new one after each (re)start.

    librdkafka's admin client re-bootstraps after its only broker went away and may then
    time out group requests for a group it had looked up before (client side: a new
    client answers at once), so a restarted broker gets a new client. Old clients are
    kept alive (a collected AdminClient fails its pending futures)."""
    clients = broker.__dict__.setdefault("_groups_admins", {})
    if broker.starts not in clients:
        clients[broker.starts] = kutil.admin(broker, **{"client.id": f"groups-admin-{broker.starts}"})
    return clients[broker.starts]


def describe(broker, group, timeout=10):
    a = gadmin(broker)
    return a.describe_consumer_groups([group], request_timeout=timeout)[group].result(timeout=timeout)


def assignment_of(desc):
    """{member_id: sorted [(topic, partition)]} from a ConsumerGroupDescription."""
    out = {}
    for m in desc.members:
        tps = m.assignment.topic_partitions if m.assignment else []
        out[m.member_id] = sorted((tp.topic, tp.partition) for tp in tps)
    return out


def committed(broker, group, tps, timeout=10):
    """{(topic, partition): offset} via AdminClient.list_consumer_group_offsets."""
    from confluent_kafka import ConsumerGroupTopicPartitions

    a = gadmin(broker)
    req = ConsumerGroupTopicPartitions(group, [TopicPartition(t, p) for t, p in tps])
    res = a.list_consumer_group_offsets([req], request_timeout=timeout)[group].result(timeout=timeout)
    out = {}
    for tp in res.topic_partitions:
        assert tp.error is None, f"{tp}: {tp.error}"
        out[(tp.topic, tp.partition)] = tp.offset
    return out


# --------------------------------------------------------------------------
# a consumer in a child process (to SIGKILL it)
# --------------------------------------------------------------------------
CHILD_CONSUMER = r"""
import json, sys
from confluent_kafka import Consumer
conf = json.loads(sys.argv[1]); topics = json.loads(sys.argv[2])
def say(**kw):
    sys.stdout.write(json.dumps(kw) + "\n"); sys.stdout.flush()
def on_assign(c, ps): say(ev="assign", tps=[[p.topic, p.partition] for p in ps])
def on_revoke(c, ps): say(ev="revoke", tps=[[p.topic, p.partition] for p in ps])
c = Consumer(conf)
c.subscribe(topics, on_assign=on_assign, on_revoke=on_revoke)
say(ev="started")
while True:
    m = c.poll(0.1)
    if m is not None and not m.error():
        say(ev="msg", tp=[m.topic(), m.partition()], offset=m.offset())
"""


class ChildConsumer:
    """`conf_of(broker, group, **conf)` builds the consumer's configuration (default: a classic
    group member's)."""

    def __init__(self, broker, group, topics, conf_of=None, **conf):
        full = (conf_of or group_conf)(broker, group, **conf)
        self.proc = subprocess.Popen(
            [sys.executable, "-c", CHILD_CONSUMER, json.dumps(full), json.dumps(list(topics))],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
        )
        self.assigned = set()
        self.events = []
        self._buf = b""

    def pump(self, timeout=0.0):
        """Read whatever the child printed (waiting up to `timeout` s for the first bytes)."""
        fd = self.proc.stdout.fileno()
        r, _, _ = select.select([fd], [], [], timeout)
        while r:
            chunk = os.read(fd, 65536)
            if not chunk:
                break
            self._buf += chunk
            r, _, _ = select.select([fd], [], [], 0)
        while b"\n" in self._buf:
            line, self._buf = self._buf.split(b"\n", 1)
            ev = json.loads(line)
            self.events.append(ev)
            if ev["ev"] == "assign":
                self.assigned |= {tuple(x) for x in ev["tps"]}
            elif ev["ev"] == "revoke":
                self.assigned -= {tuple(x) for x in ev["tps"]}

    def step(self, timeout=0.02):
        if self.proc.poll() is None:
            self.pump(timeout)
        else:
            time.sleep(timeout)

    def kill9(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)

    def __repr__(self):
        return f"<child pid={self.proc.pid} rc={self.proc.poll()} assigned={sorted(self.assigned)}>"


# --------------------------------------------------------------------------
# raw group protocol (kafka-python structs, kproto framing)
# --------------------------------------------------------------------------
API_OFFSET_COMMIT = 8
API_OFFSET_FETCH = 9
API_FIND_COORDINATOR = 10
API_JOIN_GROUP = 11
API_HEARTBEAT = 12
API_LEAVE_GROUP = 13
API_SYNC_GROUP = 14

ERR_NONE = 0
ERR_UNKNOWN_TOPIC_OR_PARTITION = 3
ERR_OFFSET_METADATA_TOO_LARGE = 12
ERR_ILLEGAL_GENERATION = 22
ERR_INCONSISTENT_GROUP_PROTOCOL = 23
ERR_INVALID_GROUP_ID = 24
ERR_UNKNOWN_MEMBER_ID = 25
ERR_INVALID_SESSION_TIMEOUT = 26
ERR_REBALANCE_IN_PROGRESS = 27
ERR_FENCED_INSTANCE_ID = 82
ERR_MEMBER_ID_REQUIRED = 79


def consumer_subscription(topics):
    """ConsumerProtocol subscription v0 bytes."""
    body = kproto.i16(0) + kproto.i32(len(topics))
    for t in topics:
        body += kproto.string(t)
    return body + kproto.nbytes(b"")


def consumer_assignment(assignment):
    """ConsumerProtocol assignment v0 bytes for {topic: [partitions]}."""
    body = kproto.i16(0) + kproto.i32(len(assignment))
    for t, parts in assignment.items():
        body += kproto.string(t) + kproto.i32(len(parts)) + b"".join(kproto.i32(p) for p in parts)
    return body + kproto.nbytes(b"")


def parse_assignment(data):
    """{topic: [partitions]} from ConsumerProtocol assignment bytes ({} for empty)."""
    if not data:
        return {}
    r = kproto.Reader(data)
    r.i16()
    out = {}
    for _ in range(r.i32()):
        t = r.string()
        out[t] = [r.i32() for _ in range(r.i32())]
    return out


class RawGroupClient:
    """One connection speaking JoinGroup v5, SyncGroup v3, Heartbeat v3, OffsetCommit v7,
    OffsetFetch v5, LeaveGroup v3 (non-flexible versions kafka-python can encode)."""

    def __init__(self, broker, client_id="raw-group-test", timeout=15.0):
        self.conn = kproto.Conn(broker.host, broker.port, timeout=timeout)
        self.client_id = client_id
        self.cid = 0

    def close(self):
        self.conn.close()

    def send(self, api_key, version, req):
        """Send a request without reading the response; returns its correlation id."""
        self.cid += 1
        self.conn.send(kproto.request(api_key, version, self.cid, req.encode(), client_id=self.client_id))
        return self.cid

    def raw_call(self, api_key, version, body, timeout=15.0):
        """Send an already-encoded request body; returns the response body (after the header)."""
        self.cid += 1
        self.conn.send(kproto.request(api_key, version, self.cid, body, client_id=self.client_id))
        frame = self.conn.closed_or_response(self.cid, timeout=timeout)
        assert frame != "closed", f"broker closed the connection on api {api_key} v{version}"
        return frame[4:]

    def recv(self, cid, resp_cls, timeout=30.0):
        """Read the response to a request sent with wait=False / send()."""
        frame = self.conn.closed_or_response(cid, timeout=timeout)
        assert frame != "closed", "broker closed the connection"
        return resp_cls.decode(frame[4:])

    def call(self, api_key, version, req, resp_cls, timeout=15.0):
        self.send(api_key, version, req)
        frame = self.conn.closed_or_response(self.cid, timeout=timeout)
        assert frame != "closed", f"broker closed the connection on api {api_key} v{version}"
        return resp_cls.decode(frame[4:])

    def find_coordinator(self, group):
        from kafka.protocol.find_coordinator import FindCoordinatorRequest, FindCoordinatorResponse

        return self.call(API_FIND_COORDINATOR, 1, FindCoordinatorRequest[1](group, 0),
                         FindCoordinatorResponse[1])

    def join(self, group, member_id="", instance_id=None, topics=("t",), session_ms=SESSION_TIMEOUT_MS,
             rebalance_ms=SESSION_TIMEOUT_MS, protocol="range", timeout=30.0, wait=True):
        """JoinGroup v5; with wait=False only sends it and returns the correlation id."""
        from kafka.protocol.group import JoinGroupRequest, JoinGroupResponse

        req = JoinGroupRequest[5](group, session_ms, rebalance_ms, member_id, instance_id, "consumer",
                                  [(protocol, consumer_subscription(list(topics)))])
        if not wait:
            return self.send(API_JOIN_GROUP, 5, req)
        return self.call(API_JOIN_GROUP, 5, req, JoinGroupResponse[5], timeout=timeout)

    def join_full(self, group, instance_id=None, **kw):
        """FindCoordinator, then JoinGroup, retrying once with the member id on MEMBER_ID_REQUIRED."""
        fc = self.find_coordinator(group)
        assert fc.error_code == ERR_NONE, f"FindCoordinator: {fc}"
        r = self.join(group, instance_id=instance_id, **kw)
        if r.error_code == ERR_MEMBER_ID_REQUIRED:
            r = self.join(group, member_id=r.member_id, instance_id=instance_id, **kw)
        return r

    def sync(self, group, generation, member_id, assignments=None, instance_id=None, timeout=30.0):
        from kafka.protocol.group import SyncGroupRequest, SyncGroupResponse

        items = [(mid, consumer_assignment(a)) for mid, a in (assignments or {}).items()]
        req = SyncGroupRequest[3](group, generation, member_id, instance_id, items)
        return self.call(API_SYNC_GROUP, 3, req, SyncGroupResponse[3], timeout=timeout)

    def heartbeat(self, group, generation, member_id, instance_id=None):
        from kafka.protocol.group import HeartbeatRequest, HeartbeatResponse

        req = HeartbeatRequest[3](group, generation, member_id, instance_id)
        return self.call(API_HEARTBEAT, 3, req, HeartbeatResponse[3]).error_code

    def leave(self, group, member_id, instance_id=None):
        from kafka.protocol.group import LeaveGroupRequest, LeaveGroupResponse

        req = LeaveGroupRequest[3](group, [(member_id, instance_id)])
        return self.call(API_LEAVE_GROUP, 3, req, LeaveGroupResponse[3])

    def commit(self, group, offsets, generation=-1, member_id="", instance_id=None):
        """offsets: {(topic, partition): (offset, metadata)} -> {(topic, partition): error_code}."""
        from kafka.protocol.commit import OffsetCommitRequest, OffsetCommitResponse

        by_topic = {}
        for (t, p), (off, meta) in offsets.items():
            by_topic.setdefault(t, []).append((p, off, -1, meta))
        req = OffsetCommitRequest[7](group, generation, member_id, instance_id, list(by_topic.items()))
        resp = self.call(API_OFFSET_COMMIT, 7, req, OffsetCommitResponse[7])
        return {(t, p): err for t, parts in resp.topics for p, err in parts}

    def fetch(self, group, tps):
        """{(topic, partition): (offset, metadata, error)} and the top-level error code."""
        from kafka.protocol.commit import OffsetFetchRequest, OffsetFetchResponse

        by_topic = {}
        for t, p in tps:
            by_topic.setdefault(t, []).append(p)
        req = OffsetFetchRequest[5](group, list(by_topic.items()))
        resp = self.call(API_OFFSET_FETCH, 5, req, OffsetFetchResponse[5])
        out = {}
        for t, parts in resp.topics:
            for p, off, _epoch, meta, err in parts:
                out[(t, p)] = (off, meta, err)
        return out, resp.error_code


API_OFFSET_DELETE = 47
ERR_NON_EMPTY_GROUP = 68
ERR_GROUP_ID_NOT_FOUND = 69
ERR_GROUP_SUBSCRIBED_TO_TOPIC = 86


def offset_delete(broker, group, tps, timeout=15.0):
    """OffsetDelete v0 (no Python client sends it). Returns (top-level error,
    {(topic, partition): error})."""
    by_topic = {}
    for t, p in tps:
        by_topic.setdefault(t, []).append(p)
    body = kproto.string(group) + kproto.array(
        [kproto.string(t) + kproto.array([kproto.i32(p) for p in ps]) for t, ps in by_topic.items()]
    )
    c = RawGroupClient(broker, client_id="raw-offset-delete", timeout=timeout)
    try:
        assert c.find_coordinator(group).error_code == ERR_NONE
        r = kproto.Reader(c.raw_call(API_OFFSET_DELETE, 0, body, timeout=timeout))
    finally:
        c.close()
    top = r.i16()
    r.i32()  # throttle
    out = {}
    for _ in range(r.i32()):
        t = r.string()
        for _ in range(r.i32()):
            p = r.i32()
            out[(t, p)] = r.i16()
    return top, out


# --------------------------------------------------------------------------
# flexible (compact) encodings for OffsetCommit v8 / OffsetFetch v6, which carry strings
# longer than the 16-bit lengths of the older versions
# --------------------------------------------------------------------------
def _cstr(s):
    b = s.encode() if isinstance(s, str) else s
    return kproto.uvarint(len(b) + 1) + b


def _carray(items):
    return kproto.uvarint(len(items) + 1) + b"".join(items)


_TAGS = kproto.uvarint(0)


def _read_cstr(r):
    n = r.uvarint()
    return None if n == 0 else r.take(n - 1).decode()


def offset_commit_v8(client, group, offsets, generation=-1, member_id=""):
    """OffsetCommit v8 on a RawGroupClient; offsets {(topic, partition): (offset, metadata)}."""
    by_topic = {}
    for (t, p), (off, meta) in offsets.items():
        by_topic.setdefault(t, []).append(
            kproto.i32(p) + kproto.i64(off) + kproto.i32(-1) + _cstr(meta) + _TAGS)
    body = (_cstr(group) + kproto.i32(generation) + _cstr(member_id) + kproto.uvarint(0)
            + _carray([_cstr(t) + _carray(ps) + _TAGS for t, ps in by_topic.items()]) + _TAGS)
    client.cid += 1
    client.conn.send(kproto.request(API_OFFSET_COMMIT, 8, client.cid, body,
                                    client_id=client.client_id, header_version=2))
    frame = client.conn.closed_or_response(client.cid, timeout=15)
    assert frame != "closed", "broker closed the connection on OffsetCommit v8"
    r = kproto.Reader(frame[4:])
    r.uvarint()  # response header tags
    r.i32()  # throttle
    out = {}
    for _ in range(r.uvarint() - 1):
        t = _read_cstr(r)
        for _ in range(r.uvarint() - 1):
            p = r.i32()
            out[(t, p)] = r.i16()
            r.uvarint()
        r.uvarint()
    return out


def offset_fetch_v6(client, group, tps):
    """OffsetFetch v6 on a RawGroupClient -> ({(topic, partition): (offset, metadata, error)}, error)."""
    by_topic = {}
    for t, p in tps:
        by_topic.setdefault(t, []).append(kproto.i32(p))
    body = _cstr(group) + _carray([_cstr(t) + _carray(ps) + _TAGS for t, ps in by_topic.items()]) + _TAGS
    client.cid += 1
    client.conn.send(kproto.request(API_OFFSET_FETCH, 6, client.cid, body,
                                    client_id=client.client_id, header_version=2))
    frame = client.conn.closed_or_response(client.cid, timeout=15)
    assert frame != "closed", "broker closed the connection on OffsetFetch v6"
    r = kproto.Reader(frame[4:])
    r.uvarint()
    r.i32()
    out = {}
    for _ in range(r.uvarint() - 1):
        t = _read_cstr(r)
        for _ in range(r.uvarint() - 1):
            p, off, _epoch = r.i32(), r.i64(), r.i32()
            meta = _read_cstr(r)
            out[(t, p)] = (off, meta, r.i16())
            r.uvarint()
        r.uvarint()
    top = r.i16()
    return out, top
