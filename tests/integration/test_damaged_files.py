"""Damaged data files: the broker starts, says loudly what was lost, and serves everything intact.

Each test writes a topic with small segments, stops the broker cleanly, damages one file the way
a bad disk or a stray write would, and restarts. Every intact record must then be read by real
clients (confluent-kafka and kafka-python) at its own offset and with its value; the damaged
batch's offsets are a gap the consumers step over (as after compaction), never renumbered, and
nobody is stuck. `cairn check` reports the damage with exit code 1 and a clean directory with 0.
"""

import json
import struct
import subprocess
import time

import pytest
from confluent_kafka import Consumer, TopicPartition

import kutil
from cairn_harness import cairn_bin

SEGMENT_BYTES = 4096
RECORDS = 400
OPTIONS = {
    "num.partitions": 1,
    "auto.create.topics.enable": "true",
    "log.segment.bytes": SEGMENT_BYTES,
    "offsets.topic.num.partitions": 1,
    "offsets.topic.segment.bytes": 2048,
}


def batches(path):
    """(position, base offset, next offset, size) of every batch in a segment file."""
    data = path.read_bytes()
    out = []
    pos = 0
    while pos + 61 <= len(data):
        base, length = struct.unpack(">qi", data[pos : pos + 12])
        (last_delta,) = struct.unpack(">i", data[pos + 23 : pos + 27])
        out.append((pos, base, base + last_delta + 1, 12 + length))
        pos += 12 + length
    return out


def segments(part_dir):
    return sorted(part_dir.glob("*.log"))


def patch(path, at, data):
    raw = bytearray(path.read_bytes())
    raw[at : at + len(data)] = data
    path.write_bytes(bytes(raw))


def run_check(data_dir, *extra):
    return subprocess.run(
        [str(cairn_bin()), "check", str(data_dir), *extra],
        capture_output=True,
        text=True,
        timeout=60,
    )


def write_topic(broker, topic):
    """RECORDS records in small batches; returns {offset: value}."""
    kutil.create_topic(broker, topic, 1)
    p = kutil.producer(broker, **{"linger.ms": 0, "batch.num.messages": 4})
    log = kutil.produce_all(
        p, topic, [(None, f"v{i:05d}-".encode() + b"x" * 40, 0, None) for i in range(RECORDS)]
    )
    kutil.assert_no_delivery_errors(log)
    return {off: value for _, off, _, value, _ in log.acked}


def read_confluent(broker, topic, expected_count):
    c = kutil.consumer(broker)
    try:
        msgs = kutil.consume_exact(c, [TopicPartition(topic, 0, 0)], expected_count, timeout=30)
        extra = kutil.consume_nothing_more(c, 1.0)
        assert not extra, f"unexpected extra records at {[m.offset() for m in extra]}"
        return {m.offset(): m.value() for m in msgs}
    finally:
        c.close()


def read_kafka_python(broker, topic, expected_count):
    from kafka import TopicPartition as KTP

    c = kutil.kp_consumer(broker)
    try:
        tp = KTP(topic, 0)
        c.assign([tp])
        c.seek_to_beginning(tp)
        recs = kutil.kp_consume_exact(c, expected_count, timeout=30)
        return {r.offset: r.value for r in recs}
    finally:
        c.close()


def damage_and_restart(broker, topic, damage):
    """Stops cleanly, applies `damage(part_dir) -> lost offsets (range)`, restarts."""
    broker.stop()
    clean = run_check(broker.data_dir)
    assert clean.returncode == 0, clean.stdout + clean.stderr
    lost = damage(broker.data_dir / f"{topic}-0")
    broker.start()
    return lost


def assert_served_without(broker, topic, written, lost):
    want = {o: v for o, v in written.items() if o not in lost}
    got = read_confluent(broker, topic, len(want))
    assert got == want
    got = read_kafka_python(broker, topic, len(want))
    assert got == want
    # No fetch ever failed: consumers were never answered with an error at the hole.
    assert "fetch failed" not in broker.log_text()


def assert_damage_logged(broker, lost):
    text = broker.log_text()
    line = next((l for l in text.splitlines() if "damaged data in segment" in l), None)
    assert line is not None, "no damage line in the broker log"
    assert f"offsets_lost={lost.start}..{lost.stop}" in line, line


def assert_check_reports(data_dir, lost):
    r = run_check(data_dir, "--output", "json")
    assert r.returncode == 1, r.stdout + r.stderr
    report = json.loads(r.stdout)
    found = [
        (d["first_offset"], d["end_offset"])
        for p in report["partitions"]
        if p["check"]
        for d in p["check"]["damage"]
    ]
    assert (lost.start, lost.stop) in found, found


def pick(part_dir, segment_index, batch_index):
    seg = segments(part_dir)[segment_index]
    return seg, batches(seg)[batch_index]


def test_corrupt_length_in_an_older_segment(broker_factory):
    broker = broker_factory(dict(OPTIONS))
    topic = kutil.unique_topic("dmg-len")
    written = write_topic(broker, topic)

    def damage(part_dir):
        assert len(segments(part_dir)) >= 4
        seg, (pos, base, nxt, _) = pick(part_dir, 1, 3)
        patch(seg, pos + 8, struct.pack(">i", 0x7FFF0000))
        return range(base, nxt)

    lost = damage_and_restart(broker, topic, damage)
    assert_damage_logged(broker, lost)
    assert_served_without(broker, topic, written, lost)
    assert_check_reports(broker.data_dir, lost)
    # A consumer positioned inside the hole gets the next intact record, at its own offset.
    c = kutil.consumer(broker)
    try:
        m = kutil.consume_exact(c, [TopicPartition(topic, 0, lost.start + 1)], 1)[0]
        assert (m.offset(), m.value()) == (lost.stop, written[lost.stop])
    finally:
        c.close()
    from kafka import TopicPartition as KTP

    kc = kutil.kp_consumer(broker)
    try:
        tp = KTP(topic, 0)
        kc.assign([tp])
        kc.seek(tp, lost.start)
        r = next(iter(kc))
        assert (r.offset, r.value) == (lost.stop, written[lost.stop])
    finally:
        kc.close()
    # The partition keeps taking writes after the hole.
    p = kutil.producer(broker)
    log = kutil.produce_all(p, topic, [(None, b"after", 0, None)])
    kutil.assert_no_delivery_errors(log)
    assert log.acked[0][1] == max(written) + 1


def test_corrupt_base_offset_is_not_served_at_a_wrong_offset(broker_factory):
    broker = broker_factory(dict(OPTIONS))
    topic = kutil.unique_topic("dmg-base")
    written = write_topic(broker, topic)

    def damage(part_dir):
        seg, (pos, base, nxt, _) = pick(part_dir, 0, 5)
        patch(seg, pos, struct.pack(">q", base + 50))
        return range(base, nxt)

    lost = damage_and_restart(broker, topic, damage)
    assert_damage_logged(broker, lost)
    assert_served_without(broker, topic, written, lost)
    assert_check_reports(broker.data_dir, lost)


def test_corrupt_crc_in_the_middle_of_a_segment(broker_factory):
    broker = broker_factory(dict(OPTIONS))
    topic = kutil.unique_topic("dmg-crc")
    written = write_topic(broker, topic)

    def damage(part_dir):
        seg = segments(part_dir)[1]
        bs = batches(seg)
        pos, base, nxt, size = bs[len(bs) // 2]
        raw = seg.read_bytes()
        patch(seg, pos + size - 5, bytes([raw[pos + size - 5] ^ 0xFF]))
        return range(base, nxt)

    lost = damage_and_restart(broker, topic, damage)
    assert_damage_logged(broker, lost)
    assert_served_without(broker, topic, written, lost)
    assert_check_reports(broker.data_dir, lost)


def test_truncated_and_garbage_index_files(broker_factory):
    broker = broker_factory(dict(OPTIONS))
    topic = kutil.unique_topic("dmg-idx")
    written = write_topic(broker, topic)

    def damage(part_dir):
        for i, idx in enumerate(sorted(part_dir.glob("*.index"))):
            idx.write_bytes(b"\x00\x00\x00" if i % 2 else b"\xff" * 21)
        for t in sorted(part_dir.glob("*.timeindex")):
            t.write_bytes(t.read_bytes()[:7] + b"garbage")
        return range(0)

    damage_and_restart(broker, topic, damage)
    assert_served_without(broker, topic, written, range(0))
    # Time lookups use the rebuilt index.
    c = kutil.consumer(broker)
    try:
        ts = c.offsets_for_times([TopicPartition(topic, 0, 0)], timeout=10)
        assert ts[0].offset == 0
    finally:
        c.close()
    assert run_check(broker.data_dir).returncode == 0


def test_damaged_end_after_a_clean_shutdown_does_not_reuse_offsets(broker_factory):
    broker = broker_factory(dict(OPTIONS))
    topic = kutil.unique_topic("dmg-end")
    written = write_topic(broker, topic)

    def damage(part_dir):
        seg = segments(part_dir)[-1]
        pos, base, nxt, size = batches(seg)[-1]
        patch(seg, pos + size - 2, b"\x00\x00")
        return range(base, nxt)

    lost = damage_and_restart(broker, topic, damage)
    assert f"offsets_lost={lost.start}..{lost.stop}" in broker.log_text()
    assert kutil.watermarks(broker, topic, 0) == (0, RECORDS)
    want = {o: v for o, v in written.items() if o not in lost}
    assert read_confluent(broker, topic, len(want)) == want
    # The next record gets the next offset, not one a consumer may already have seen.
    p = kutil.producer(broker)
    log = kutil.produce_all(p, topic, [(None, b"after", 0, None)])
    kutil.assert_no_delivery_errors(log)
    assert log.acked[0][1] == RECORDS
    c = kutil.consumer(broker)
    try:
        m = kutil.consume_exact(c, [TopicPartition(topic, 0, lost.start)], 1)[0]
        assert (m.offset(), m.value()) == (RECORDS, b"after")
    finally:
        c.close()


def commit(broker, group, topic, offset):
    c = kutil.consumer(broker, **{"group.id": group})
    try:
        c.commit(offsets=[TopicPartition(topic, 0, offset)], asynchronous=False)
    finally:
        c.close()


def committed(broker, group, topic):
    c = kutil.consumer(broker, **{"group.id": group})
    try:
        return c.committed([TopicPartition(topic, 0)], timeout=10)[0].offset
    finally:
        c.close()


def test_corrupt_consumer_offsets_after_a_clean_shutdown(broker_factory):
    broker = broker_factory(dict(OPTIONS))
    topic = kutil.unique_topic("dmg-grp")
    written = write_topic(broker, topic)
    commit(broker, "victim", topic, 111)
    for i in range(40):  # rolls several offsets-topic segments
        commit(broker, "filler", topic, i + 1)
    commit(broker, "survivor", topic, 222)
    assert committed(broker, "victim", topic) == 111
    broker.stop()

    part = broker.data_dir / "__consumer_offsets-0"
    assert len(segments(part)) >= 3
    # The batch holding the victim group's commit, in the oldest segment.
    seg = segments(part)[0]
    raw = seg.read_bytes()
    hit = [(pos, base, nxt, size) for pos, base, nxt, size in batches(seg) if b"victim" in raw[pos : pos + size]]
    assert len(hit) == 1, hit
    pos, base, nxt, size = hit[0]
    patch(seg, pos + size - 3, b"\xde\xad\xbe")
    broker.start()

    text = broker.log_text()
    assert "__consumer_offsets is damaged" in text
    assert f"offsets_lost={base}..{nxt}" in text
    # The lost commit is gone; everything else loaded and the broker serves groups as usual.
    assert committed(broker, "victim", topic) < 0
    assert committed(broker, "survivor", topic) == 222
    assert committed(broker, "filler", topic) == 40
    commit(broker, "victim", topic, 333)
    assert committed(broker, "victim", topic) == 333
    assert len(read_confluent(broker, topic, len(written))) == len(written)
    r = run_check(broker.data_dir)
    assert r.returncode == 1, r.stdout
    assert "__consumer_offsets" in r.stdout and "DAMAGED" in r.stdout


def test_check_exit_codes(broker_factory, tmp_path):
    broker = broker_factory(dict(OPTIONS))
    topic = kutil.unique_topic("chk")
    write_topic(broker, topic)
    # While the broker runs the directory is checked all the same (read-only), and says so.
    r = run_check(broker.data_dir, "--output", "json")
    assert r.returncode == 0, r.stdout + r.stderr
    report = json.loads(r.stdout)
    assert report["broker_running"] is True
    part = next(p for p in report["partitions"] if p["topic"] == topic)
    assert part["check"]["log_end"] == RECORDS
    assert sum(s["batches"] for s in part["check"]["segments"]) >= RECORDS // 4
    broker.stop()
    r = run_check(broker.data_dir)
    assert r.returncode == 0 and "0 damaged" in r.stdout, r.stdout
    # Not a data directory at all.
    empty = tmp_path / "empty"
    empty.mkdir()
    assert run_check(empty).returncode == 2
    # Damage: garbage over the middle of the first segment.
    seg = segments(broker.data_dir / f"{topic}-0")[0]
    bs = batches(seg)
    patch(seg, bs[2][0], b"\x00" * (bs[4][0] - bs[2][0]))
    r = run_check(broker.data_dir)
    assert r.returncode == 1, r.stdout
    assert f"offsets lost {bs[2][1]}..{bs[4][1]}" in r.stdout, r.stdout
    # The check changed nothing: the same result again.
    assert run_check(broker.data_dir).stdout == r.stdout
