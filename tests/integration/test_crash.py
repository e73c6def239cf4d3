"""Crash safety: kill -9 the broker while a producer streams; every acknowledged record survives.

After each crash the broker restarts on the same port and data dir, and the
whole topic is read back from the beginning: every delivery-acknowledged record
is at its acknowledged offset with its value, and offsets are dense in every
partition (no gaps, no holes before the high watermark).
"""

import threading
import time
from collections import defaultdict

import pytest
from confluent_kafka import TopicPartition

import kproto
import kutil

PARTITIONS = 4
PADDING = b"p" * 200  # ~220-byte values: every partition rolls several 64 KiB segments


class StreamingProducer(threading.Thread):
    """Produces continuously (acks as given) and records every acknowledged record."""

    def __init__(self, broker, topic, acks, tag):
        super().__init__(daemon=True)
        self.topic = topic
        self.tag = tag
        self.stop_flag = threading.Event()
        self.lock = threading.Lock()
        self.acked = {}  # (partition, offset) -> value
        self.errors = 0
        self.duplicates = []
        self.sent = 0
        self.p = kutil.producer(
            broker,
            **{
                "acks": acks,
                "linger.ms": 2,
                "batch.num.messages": 50,
                "message.timeout.ms": 10000,
                "retries": 0,  # an unacked record is simply not counted
                "enable.idempotence": False,
                "socket.timeout.ms": 5000,
            },
        )

    def _on_delivery(self, err, msg):
        with self.lock:
            if err is None:
                key = (msg.partition(), msg.offset())
                if key in self.acked:
                    self.duplicates.append(key)
                self.acked[key] = msg.value()
            else:
                self.errors += 1

    def run(self):
        i = 0
        while not self.stop_flag.is_set():
            value = f"{self.tag}-{i:07d}-".encode() + PADDING
            try:
                self.p.produce(self.topic, value=value, partition=i % PARTITIONS, on_delivery=self._on_delivery)
                self.sent += 1
                i += 1
            except BufferError:
                pass
            self.p.poll(0.001 if i % 20 == 0 else 0)
        # Drop what was never sent; in-flight requests complete or fail, and
        # their delivery callbacks still count.
        self.p.purge(in_queue=True, in_flight=False)
        self.p.flush(15)

    def acked_count(self):
        with self.lock:
            return len(self.acked)

    def finish(self):
        self.stop_flag.set()
        self.join(40)
        assert not self.is_alive(), "producer thread did not stop"
        assert not self.duplicates, f"offsets acknowledged twice: {self.duplicates[:5]}"
        with self.lock:
            return dict(self.acked)


def wait_for_acks(sp, target, timeout):
    deadline = time.monotonic() + timeout
    while sp.acked_count() < target and time.monotonic() < deadline:
        time.sleep(0.02)
    assert sp.acked_count() >= target, f"only {sp.acked_count()} records acknowledged in {timeout}s"


def verify_all(broker, topic, acked):
    """Read every partition from 0 and check acked records and dense offsets."""
    per_part = defaultdict(dict)
    for (part, off), value in acked.items():
        per_part[part][off] = value
    c = kutil.consumer(broker, **{"fetch.wait.max.ms": 50})
    try:
        for part in range(PARTITIONS):
            lo, hi = c.get_watermark_offsets(TopicPartition(topic, part), timeout=10, cached=False)
            assert lo == 0, f"partition {part}: log start offset {lo}"
            want = per_part.get(part, {})
            if want:
                assert hi >= max(want) + 1, (
                    f"partition {part}: high watermark {hi} but offset {max(want)} was acknowledged"
                )
            if hi == 0:
                continue
            msgs = kutil.consume_exact(c, [TopicPartition(topic, part, 0)], hi, timeout=60)
            offsets = [m.offset() for m in msgs]
            assert offsets == list(range(hi)), f"partition {part}: offsets not dense: first gap near " + str(
                next((i for i, o in enumerate(offsets) if o != i), None)
            )
            got = {m.offset(): m.value() for m in msgs}
            lost = [off for off, v in want.items() if got.get(off) != v]
            assert not lost, (
                f"partition {part}: {len(lost)} acknowledged records missing or changed, first offsets "
                f"{sorted(lost)[:5]} (expected {want[sorted(lost)[0]]!r}, got {got.get(sorted(lost)[0])!r})"
            )
            c.unassign()
    finally:
        c.close()


@pytest.mark.slow
@pytest.mark.timeout(420)
@pytest.mark.parametrize(
    "acks,flush_every_message",
    [("1", False), ("all", False), ("all", True)],
    ids=["acks1", "acksall", "acksall-fsync-each-message"],
)
def test_kill9_mid_stream_keeps_acknowledged_records(broker_factory, acks, flush_every_message):
    options = {
        "num.partitions": PARTITIONS,
        "auto.create.topics.enable": "false",
        # small segments so that recovery crosses segment boundaries
        "log.segment.bytes": 64 * 1024,
    }
    if flush_every_message:
        options["log.flush.interval.messages"] = 1
    b = broker_factory(options)
    topic = kutil.create_topic(b, kutil.unique_topic("crash"), partitions=PARTITIONS)

    all_acked = {}
    rounds = 3
    per_round = 800 if flush_every_message else 3000
    for rnd in range(rounds):
        sp = StreamingProducer(b, topic, acks, tag=f"r{rnd}")
        sp.start()
        wait_for_acks(sp, per_round, timeout=90)
        b.kill9()  # mid-stream: the producer is still sending
        sent_at_kill, acked_at_kill = sp.sent, sp.acked_count()
        acked = sp.finish()
        print(
            f"round {rnd}: sent {sent_at_kill} / acked {acked_at_kill} at the kill; "
            f"finally acked {len(acked)}, failed {sp.errors}"
        )
        overlap = set(acked) & set(all_acked)
        assert not overlap, f"offsets acknowledged again after a restart: {sorted(overlap)[:5]}"
        all_acked.update(acked)
        b.start()
        verify_all(b, topic, all_acked)

    # A final graceful restart changes nothing.
    b.restart()
    verify_all(b, topic, all_acked)
    assert len(all_acked) >= rounds * per_round
    # The recovered logs spanned several segments (white-box, Kafka-style layout).
    for part in range(PARTITIONS):
        d = b.data_dir / f"{topic}-{part}"
        if d.is_dir():
            assert len(list(d.glob("*.log"))) >= 2, f"partition {part}: expected rolled segments"


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_kill9_while_idle_after_acks(broker_factory):
    """Records acknowledged long before the crash (no fsync) survive a process kill."""
    b = broker_factory({"num.partitions": PARTITIONS, "auto.create.topics.enable": "false"})
    topic = kutil.create_topic(b, kutil.unique_topic("crash"), partitions=PARTITIONS)
    p = kutil.producer(b, acks="1")
    log = kutil.produce_all(p, topic, [(None, f"v{i}".encode(), i % PARTITIONS, None) for i in range(2000)])
    kutil.assert_no_delivery_errors(log)
    b.kill9()
    b.start()
    verify_all(b, topic, {(pt, off): v for pt, off, _k, v, _ts in log.acked})
    for part in range(PARTITIONS):
        assert kutil.watermarks(b, topic, part) == (0, 500)


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_kill9_after_admin_operations_keeps_metadata(broker_factory):
    """Acknowledged CreateTopics / CreatePartitions / DeleteTopics survive a crash."""
    from confluent_kafka.admin import ConfigResource, NewPartitions, ResourceType

    b = broker_factory({"num.partitions": 1, "auto.create.topics.enable": "false"})
    keep = kutil.create_topic(b, kutil.unique_topic("keep"), partitions=2, config={"retention.ms": "7200000"})
    gone = kutil.create_topic(b, kutil.unique_topic("gone"), partitions=1)
    a = kutil.admin(b)
    a.create_partitions([NewPartitions(keep, 5)], request_timeout=20)[keep].result(timeout=20)
    a.delete_topics([gone], request_timeout=20)[gone].result(timeout=20)
    log = kutil.produce_all(kutil.producer(b), keep, [(None, b"in-p4", 4, None)])
    kutil.assert_no_delivery_errors(log)
    b.kill9()
    b.start()
    kutil.wait_for_topic(b, keep, 5)
    md = kutil.admin(b).list_topics(timeout=10)
    assert gone not in md.topics or md.topics[gone].error is not None
    res = ConfigResource(ResourceType.TOPIC, keep)
    entries = kutil.admin(b).describe_configs([res], request_timeout=20)[res].result(timeout=20)
    assert entries["retention.ms"].value == "7200000"
    assert [m.value() for m in kutil.read_partition(b, keep, 4)] == [b"in-p4"]


def partition_dir(broker, topic, partition):
    d = broker.data_dir / f"{topic}-{partition}"
    if not d.is_dir():
        pytest.skip(f"white-box test: no Kafka-style partition directory {d.name} in the data dir")
    return d


def last_segment(d):
    logs = sorted(d.glob("*.log"))
    assert logs, f"no segment files in {d}"
    return logs[-1]


TORN_TAILS = {
    # random bytes after the last complete batch
    "garbage": lambda good: bytes((i * 37 + 11) % 256 for i in range(100)),
    # the first half of a valid batch (length field promises more than exists)
    "half-batch": lambda good: good[: len(good) // 2],
    # a complete batch whose CRC does not match
    "bad-crc-batch": lambda good: kproto.corrupt_payload(good),
    # only a few bytes of a batch header
    "header-fragment": lambda good: good[:7],
}


@pytest.mark.slow
@pytest.mark.timeout(180)
@pytest.mark.parametrize("tail", sorted(TORN_TAILS))
def test_torn_write_at_segment_tail_is_truncated_on_recovery(broker_factory, tail):
    """Simulates a power loss mid-write: the last segment ends in a torn batch.
    After restart all complete records are intact and appends continue densely."""
    b = broker_factory({"num.partitions": 1, "auto.create.topics.enable": "false"})
    topic = kutil.create_topic(b, kutil.unique_topic("torn"), partitions=1)
    values = [f"intact-{i}".encode() for i in range(50)]
    log = kutil.produce_all(kutil.producer(b, acks="all"), topic, [(None, v, 0, None) for v in values])
    kutil.assert_no_delivery_errors(log)
    b.kill9()

    seg = last_segment(partition_dir(b, topic, 0))
    good = kproto.record_batch([(None, b"torn-" + bytes(40))], base_offset=len(values))
    with open(seg, "ab") as f:
        f.write(TORN_TAILS[tail](good))

    b.start()
    assert kutil.watermarks(b, topic, 0) == (0, len(values))
    assert [m.value() for m in kutil.read_partition(b, topic, 0)] == values
    log = kutil.produce_all(kutil.producer(b), topic, [(None, b"after-recovery", 0, None)])
    kutil.assert_no_delivery_errors(log)
    assert [off for _p, off, *_ in log.acked] == [len(values)]
    msgs = kutil.read_partition(b, topic, 0)
    assert [m.value() for m in msgs] == values + [b"after-recovery"]
    assert [m.offset() for m in msgs] == list(range(len(values) + 1))


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_missing_index_files_are_rebuilt(broker_factory):
    b = broker_factory({"num.partitions": 1, "auto.create.topics.enable": "false", "log.segment.bytes": 16384})
    topic = kutil.create_topic(b, kutil.unique_topic("idx"), partitions=1)
    n = 600
    records = [(None, f"rec-{i:04d}-".encode() + bytes(64), 0, 10_000 + 10 * i) for i in range(n)]
    log = kutil.produce_all(kutil.producer(b, **{"linger.ms": 20, "batch.num.messages": 20}), topic, records)
    kutil.assert_no_delivery_errors(log)
    b.kill9()
    d = partition_dir(b, topic, 0)
    assert len(list(d.glob("*.log"))) >= 3, "expected several segments (log.segment.bytes=16384)"
    removed = [p for p in list(d.glob("*.index")) + list(d.glob("*.timeindex"))]
    for p in removed:
        p.unlink()
    b.start()
    assert kutil.watermarks(b, topic, 0) == (0, n)
    c = kutil.consumer(b)
    try:
        for ts, want in {10_000: 0, 10_005: 1, 13_000: 300, 15_990: 599}.items():
            got = c.offsets_for_times([TopicPartition(topic, 0, ts)], timeout=10)
            assert got[0].offset == want, f"offsets_for_times({ts}) = {got[0].offset}, want {want}"
        msgs = kutil.consume_exact(c, [TopicPartition(topic, 0, 451)], 10)
        assert [m.offset() for m in msgs] == list(range(451, 461))
        assert msgs[0].value().startswith(b"rec-0451-")
    finally:
        c.close()
