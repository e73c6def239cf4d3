"""ListOffsets: watermarks, offsets_for_times, earliest/latest, out-of-range resets."""

import time

import pytest
from confluent_kafka import OFFSET_BEGINNING, OFFSET_END, KafkaError, TopicPartition
from kafka.structs import TopicPartition as KpTopicPartition

import kutil


def produce_one_batch(broker, topic, partition, timestamps):
    """Produce records with explicit CreateTime timestamps in a single batch."""
    p = kutil.producer(broker, **{"linger.ms": 200, "batch.num.messages": 10000})
    records = [(None, f"ts-{ts}".encode(), partition, ts) for ts in timestamps]
    log = kutil.produce_all(p, topic, records)
    kutil.assert_no_delivery_errors(log)
    assert [off for _p, off, *_ in log.acked] == list(range(len(timestamps)))
    return log


def test_watermarks_empty_and_after_produce(broker):
    topic = kutil.create_topic(broker, kutil.unique_topic(), partitions=2)
    assert kutil.watermarks(broker, topic, 0) == (0, 0)
    assert kutil.watermarks(broker, topic, 1) == (0, 0)
    p = kutil.producer(broker)
    kutil.assert_no_delivery_errors(
        kutil.produce_all(p, topic, [(None, b"x", 1, None) for _ in range(17)])
    )
    assert kutil.watermarks(broker, topic, 0) == (0, 0)
    assert kutil.watermarks(broker, topic, 1) == (0, 17)


def test_offsets_for_times_exact_first_at_or_after(broker):
    topic = kutil.create_topic(broker, kutil.unique_topic(), partitions=1)
    produce_one_batch(broker, topic, 0, [1000, 2000, 3000, 4000, 5000])
    c = kutil.consumer(broker)
    try:
        cases = {
            0: 0,  # before everything -> first record
            1000: 0,  # exact match
            1001: 1,
            2500: 2,  # -> the 3000 record
            3000: 2,
            4999: 4,
            5000: 4,
        }
        for ts, want in cases.items():
            got = c.offsets_for_times([TopicPartition(topic, 0, ts)], timeout=10)
            assert got[0].error is None, f"ts={ts}: {got[0].error}"
            assert got[0].offset == want, f"offsets_for_times({ts}) = {got[0].offset}, want {want}"
        # After the last timestamp: no such record -> -1 (OFFSET_END in librdkafka).
        got = c.offsets_for_times([TopicPartition(topic, 0, 5001)], timeout=10)
        assert got[0].offset == -1
        # The earliest/latest specials.
        got = c.offsets_for_times([TopicPartition(topic, 0, OFFSET_BEGINNING)], timeout=10)
        assert got[0].offset == 0
        got = c.offsets_for_times([TopicPartition(topic, 0, OFFSET_END)], timeout=10)
        assert got[0].offset == 5
    finally:
        c.close()


def test_offsets_for_times_kafka_python_returns_record_timestamp(broker):
    topic = kutil.create_topic(broker, kutil.unique_topic(), partitions=1)
    produce_one_batch(broker, topic, 0, [1000, 2000, 3000])
    c = kutil.kp_consumer(broker)
    try:
        tp = KpTopicPartition(topic, 0)
        res = c.offsets_for_times({tp: 2500})
        assert res[tp] is not None
        assert (res[tp].offset, res[tp].timestamp) == (2, 3000)
        res = c.offsets_for_times({tp: 999})
        assert (res[tp].offset, res[tp].timestamp) == (0, 1000)
        assert c.offsets_for_times({tp: 3001})[tp] is None
        assert c.beginning_offsets([tp]) == {tp: 0}
        assert c.end_offsets([tp]) == {tp: 3}
    finally:
        c.close()


def test_offsets_for_times_non_monotonic_timestamps(broker):
    """Kafka returns the FIRST offset whose timestamp >= target, even if timestamps go back."""
    topic = kutil.create_topic(broker, kutil.unique_topic(), partitions=1)
    produce_one_batch(broker, topic, 0, [1000, 3000, 2000, 4000])
    c = kutil.consumer(broker)
    try:
        for ts, want in {1500: 1, 2000: 1, 2500: 1, 3000: 1, 3500: 3, 4000: 3}.items():
            got = c.offsets_for_times([TopicPartition(topic, 0, ts)], timeout=10)
            assert got[0].offset == want, f"offsets_for_times({ts}) = {got[0].offset}, want {want}"
    finally:
        c.close()


def test_offsets_for_times_across_batches(broker):
    topic = kutil.create_topic(broker, kutil.unique_topic(), partitions=1)
    for base in (10_000, 20_000, 30_000):
        # three separate batches of 3 records
        produce_one_batch_at = [base, base + 1, base + 2]
        p = kutil.producer(broker, **{"linger.ms": 100})
        kutil.assert_no_delivery_errors(
            kutil.produce_all(p, topic, [(None, b"v", 0, ts) for ts in produce_one_batch_at])
        )
    c = kutil.consumer(broker)
    try:
        for ts, want in {0: 0, 10_002: 2, 10_003: 3, 20_001: 4, 25_000: 6, 30_002: 8}.items():
            got = c.offsets_for_times([TopicPartition(topic, 0, ts)], timeout=10)
            assert got[0].offset == want, f"offsets_for_times({ts}) = {got[0].offset}, want {want}"
        got = c.offsets_for_times([TopicPartition(topic, 0, 30_003)], timeout=10)
        assert got[0].offset == -1
    finally:
        c.close()


def test_consume_from_beginning_and_end_specials(broker):
    topic = kutil.create_topic(broker, kutil.unique_topic(), partitions=1)
    p = kutil.producer(broker)
    kutil.assert_no_delivery_errors(
        kutil.produce_all(p, topic, [(None, f"old{i}".encode(), 0, None) for i in range(5)])
    )
    c = kutil.consumer(broker)
    try:
        msgs = kutil.consume_exact(c, [TopicPartition(topic, 0, OFFSET_BEGINNING)], 5)
        assert [m.offset() for m in msgs] == [0, 1, 2, 3, 4]
    finally:
        c.close()

    c = kutil.consumer(broker)
    try:
        c.assign([TopicPartition(topic, 0, OFFSET_END)])
        assert kutil.consume_nothing_more(c, 1.5) == []
        kutil.assert_no_delivery_errors(kutil.produce_all(p, topic, [(None, b"new", 0, None)]))
        msgs = kutil.poll_n(c, 1)
        assert (msgs[0].offset(), msgs[0].value()) == (5, b"new")
    finally:
        c.close()


@pytest.mark.parametrize("reset", ["earliest", "latest"])
def test_out_of_range_offset_resets(broker, reset):
    topic = kutil.create_topic(broker, kutil.unique_topic(), partitions=1)
    p = kutil.producer(broker)
    kutil.assert_no_delivery_errors(
        kutil.produce_all(p, topic, [(None, f"r{i}".encode(), 0, None) for i in range(10)])
    )
    c = kutil.consumer(broker, **{"auto.offset.reset": reset})
    try:
        c.assign([TopicPartition(topic, 0, 1000)])  # beyond the log end (10)
        if reset == "earliest":
            msgs = kutil.consume_exact(c, [TopicPartition(topic, 0, 1000)], 10)
            assert [m.offset() for m in msgs] == list(range(10))
        else:
            assert kutil.consume_nothing_more(c, 2.0) == []
            kutil.assert_no_delivery_errors(kutil.produce_all(p, topic, [(None, b"later", 0, None)]))
            got = kutil.poll_n(c, 1, 15)
            assert [(m.offset(), m.value()) for m in got] == [(10, b"later")]
    finally:
        c.close()


def test_out_of_range_offset_with_reset_error_reports_error(broker):
    topic = kutil.create_topic(broker, kutil.unique_topic(), partitions=1)
    p = kutil.producer(broker)
    kutil.assert_no_delivery_errors(kutil.produce_all(p, topic, [(None, b"r", 0, None) for _ in range(3)]))
    c = kutil.consumer(broker, **{"auto.offset.reset": "error"})
    try:
        c.assign([TopicPartition(topic, 0, 50)])
        deadline = time.monotonic() + 15
        err = None
        while err is None and time.monotonic() < deadline:
            m = c.poll(0.2)
            if m is not None:
                assert m.error() is not None, f"unexpected record at offset {m.offset()}"
                err = m.error()
        assert err is not None, "no error for an out-of-range fetch with auto.offset.reset=error"
        assert err.code() == KafkaError._AUTO_OFFSET_RESET, str(err)
    finally:
        c.close()


def test_kafka_python_out_of_range_resets_to_earliest(broker):
    topic = kutil.create_topic(broker, kutil.unique_topic(), partitions=1)
    p = kutil.producer(broker)
    kutil.assert_no_delivery_errors(
        kutil.produce_all(p, topic, [(None, f"r{i}".encode(), 0, None) for i in range(4)])
    )
    c = kutil.kp_consumer(broker, auto_offset_reset="earliest")
    try:
        tp = KpTopicPartition(topic, 0)
        c.assign([tp])
        c.seek(tp, 99)
        recs = kutil.kp_consume_exact(c, 4)
        assert [r.offset for r in recs] == [0, 1, 2, 3]
    finally:
        c.close()
