"""A full disk: writes are refused with KAFKA_STORAGE_ERROR, reads go on, the broker restarts on
the full disk, and writing resumes by itself once space is freed.

The data directory is a small tmpfs (mounting needs root; the test is skipped otherwise). A filler
file in the same tmpfs is what the test deletes to give space back.
"""

import os
import time

from confluent_kafka import KafkaError, KafkaException, TopicPartition

import kutil

VALUE = b"f" * 16_000


def produce_one(broker, topic, value, timeout=15):
    """Produces one record (no retries); returns (error code or None, offset)."""
    p = kutil.producer(broker, **{"retries": 0, "message.timeout.ms": timeout * 1000, "linger.ms": 0})
    log = kutil.produce_all(p, topic, [(None, value, 0, None)], timeout=timeout + 5)
    if log.errors:
        return log.errors[0][0].code(), None
    return None, log.acked[0][1]


def commit(broker, group, topic, offset):
    c = kutil.consumer(broker, **{"group.id": group})
    try:
        c.commit(offsets=[TopicPartition(topic, 0, offset)], asynchronous=False)
    finally:
        c.close()


def test_full_disk(small_disk, broker_factory):
    filler = small_disk / "filler"
    filler.write_bytes(b"\0" * (4 << 20))
    broker = broker_factory(
        {"num.partitions": 1, "log.segment.bytes": 1 << 20, "offsets.topic.num.partitions": 1}
    )
    topic = kutil.unique_topic("full")
    kutil.create_topic(broker, topic, 1)
    commit(broker, "g", topic, 0)  # the offsets topic exists before the disk fills

    acked = {}
    code = None
    for i in range(2000):
        code, offset = produce_one(broker, topic, b"%06d" % i + VALUE)
        if code is not None:
            break
        acked[offset] = b"%06d" % i + VALUE
    assert code == KafkaError.KAFKA_STORAGE_ERROR, f"produce ended with {code} after {len(acked)} records"
    assert len(acked) > 100
    # Still refused, not crashed; reads are served.
    assert produce_one(broker, topic, VALUE)[0] == KafkaError.KAFKA_STORAGE_ERROR
    assert broker.is_running()
    got = kutil.read_partition(broker, topic, 0)
    assert {m.offset(): m.value() for m in got} == acked
    # Commits fill what is left of the offsets topic's last page, then fail the way Kafka fails
    # a coordinator write on a storage fault (NOT_COORDINATOR, which clients retry).
    c = kutil.consumer(broker, **{"group.id": "g"})
    try:
        error = None
        deadline = time.monotonic() + 60
        for i in range(1, 400):
            assert time.monotonic() < deadline
            try:
                c.commit(offsets=[TopicPartition(topic, 0, i)], asynchronous=False)
            except KafkaException as e:
                error = e.args[0]
                break
        assert error is not None, "commits never failed on a full disk"
        assert error.code() in (KafkaError.NOT_COORDINATOR, KafkaError._TIMED_OUT), error
    finally:
        c.close()
    assert broker.is_running()

    # A restart on the full disk: the broker starts and serves what it has.
    assert broker.stop() == 0, broker.log_tail()
    broker.start()
    got = kutil.read_partition(broker, topic, 0)
    assert {m.offset(): m.value() for m in got} == acked
    assert produce_one(broker, topic, VALUE)[0] == KafkaError.KAFKA_STORAGE_ERROR

    # Space comes back: writes resume without a restart, at the next offset.
    os.unlink(filler)
    code, offset = produce_one(broker, topic, b"back")
    assert code is None and offset == max(acked) + 1
    commit(broker, "g", topic, offset + 1)
    c = kutil.consumer(broker, **{"group.id": "g"})
    try:
        assert c.committed([TopicPartition(topic, 0)], timeout=10)[0].offset == offset + 1
    finally:
        c.close()
    assert broker.stop() == 0
