"""Transactions with real clients (librdkafka through confluent-kafka): commits and aborts,
read_committed against read_uncommitted, consume-transform-produce with offsets committed in
the transaction, zombie fencing, an open transaction holding read_committed readers at the
last stable offset, the broker aborting a timed-out transaction, and kill -9 in the middle of
a transaction."""

import time
import uuid

import pytest
from confluent_kafka import (
    OFFSET_BEGINNING,
    Consumer,
    KafkaError,
    KafkaException,
    Producer,
    TopicPartition,
)

from kutil import base_conf, create_topic, producer, unique_topic

TIMEOUT = 30


def txn_producer(broker, tid=None, **extra):
    conf = base_conf(
        broker,
        **{
            "transactional.id": tid or "tx-" + uuid.uuid4().hex[:8],
            "linger.ms": 5,
            "transaction.timeout.ms": 60000,
        },
    )
    conf.update(extra)
    p = Producer(conf)
    p.init_transactions(TIMEOUT)
    return p


def reader(broker, isolation, group=None, **extra):
    conf = base_conf(
        broker,
        **{
            "group.id": group or "r-" + uuid.uuid4().hex[:8],
            "isolation.level": isolation,
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            "fetch.wait.max.ms": 100,
            "enable.partition.eof": True,
        },
    )
    conf.update(extra)
    return Consumer(conf)


def read_values(broker, topic, partitions, isolation, settle=1.5, timeout=TIMEOUT):
    """Every value readable under `isolation`, once each partition reached its end and stayed
    there for `settle` seconds."""
    c = reader(broker, isolation)
    c.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(partitions)])
    values = []
    at_end = {}
    deadline = time.time() + timeout
    try:
        while time.time() < deadline:
            m = c.poll(0.2)
            if m is None:
                if len(at_end) == partitions and time.time() - max(at_end.values()) > settle:
                    break
                continue
            if m.error():
                if m.error().code() == KafkaError._PARTITION_EOF:
                    at_end[m.partition()] = time.time()
                    continue
                raise KafkaException(m.error())
            at_end.pop(m.partition(), None)
            values.append(m.value().decode())
        return values
    finally:
        c.close()


def test_committed_and_aborted_transactions(broker):
    topic = unique_topic("tx")
    create_topic(broker, topic, partitions=2)
    p = txn_producer(broker)
    for n, (count, commit) in enumerate([(10, True), (5, False), (3, True)]):
        p.begin_transaction()
        for i in range(count):
            p.produce(topic, value=f"t{n}-{i}", partition=i % 2)
        if commit:
            p.commit_transaction(TIMEOUT)
        else:
            # Delivered first: an abort purges what is still queued in the client.
            p.flush(TIMEOUT)
            p.abort_transaction(TIMEOUT)
    committed = read_values(broker, topic, 2, "read_committed")
    assert sorted(committed) == sorted([f"t0-{i}" for i in range(10)] + [f"t2-{i}" for i in range(3)])
    everything = read_values(broker, topic, 2, "read_uncommitted")
    # read_uncommitted sees the aborted records too, never the markers.
    assert len(everything) == 18


def test_open_transaction_holds_readers_at_the_last_stable_offset(broker):
    topic = unique_topic("lso")
    create_topic(broker, topic, partitions=1)
    p = txn_producer(broker)
    p.begin_transaction()
    for i in range(5):
        p.produce(topic, value=f"open-{i}")
    p.flush(TIMEOUT)
    # Plain records after the open transaction's are held back too.
    plain = producer(broker)
    plain.produce(topic, value="plain")
    plain.flush(TIMEOUT)
    assert read_values(broker, topic, 1, "read_committed", settle=1.0) == []
    assert len(read_values(broker, topic, 1, "read_uncommitted", settle=1.0)) == 6
    # ListOffsets latest: the last stable offset (0) under read_committed, the end under
    # read_uncommitted.
    for isolation, want in (("read_committed", 0), ("read_uncommitted", 6)):
        c = reader(broker, isolation)
        assert c.get_watermark_offsets(TopicPartition(topic, 0), timeout=10)[1] == want, isolation
        c.close()
    p.commit_transaction(TIMEOUT)
    values = read_values(broker, topic, 1, "read_committed")
    assert values == [f"open-{i}" for i in range(5)] + ["plain"]


def test_consume_transform_produce_with_offsets_in_the_transaction(broker):
    src, dst = unique_topic("in"), unique_topic("out")
    create_topic(broker, src, partitions=1)
    create_topic(broker, dst, partitions=1)
    plain = producer(broker)
    for i in range(30):
        plain.produce(src, value=f"m{i}")
    plain.flush(TIMEOUT)
    group = "ctp-" + uuid.uuid4().hex[:6]
    c = reader(broker, "read_committed", group=group, **{"enable.partition.eof": False})
    c.assign([TopicPartition(src, 0, OFFSET_BEGINNING)])
    p = txn_producer(broker)

    def process(n, commit):
        p.begin_transaction()
        got = 0
        while got < n:
            m = c.poll(1.0)
            if m is None or m.error():
                continue
            p.produce(dst, value=m.value().upper())
            got += 1
        p.send_offsets_to_transaction(c.position(c.assignment()), c.consumer_group_metadata(), TIMEOUT)
        if commit:
            p.commit_transaction(TIMEOUT)
        else:
            p.abort_transaction(TIMEOUT)

    process(10, True)
    p.flush(TIMEOUT)
    process(10, False)
    c.close()
    # The aborted transaction's offsets were discarded: the group resumes at 10.
    check = reader(broker, "read_committed", group=group)
    committed = check.committed([TopicPartition(src, 0)], timeout=TIMEOUT)
    assert committed[0].offset == 10
    check.close()
    out = read_values(broker, dst, 1, "read_committed")
    assert out == [f"M{i}" for i in range(10)]
    # Offsets survive a restart: they were written with their marker.
    broker.restart()
    check = reader(broker, "read_committed", group=group)
    assert check.committed([TopicPartition(src, 0)], timeout=TIMEOUT)[0].offset == 10
    check.close()


def test_a_new_producer_instance_fences_the_old_one(broker):
    topic = unique_topic("zombie")
    create_topic(broker, topic, partitions=1)
    tid = "zombie-" + uuid.uuid4().hex[:6]
    old = txn_producer(broker, tid)
    old.begin_transaction()
    old.produce(topic, value="zombie")
    old.flush(TIMEOUT)
    new = txn_producer(broker, tid)
    new.begin_transaction()
    new.produce(topic, value="fresh")
    new.commit_transaction(TIMEOUT)
    with pytest.raises(KafkaException) as e:
        old.commit_transaction(TIMEOUT)
    err = e.value.args[0]
    assert err.fatal() or err.code() in (KafkaError._FENCED, KafkaError.PRODUCER_FENCED, KafkaError.INVALID_PRODUCER_EPOCH)
    assert read_values(broker, topic, 1, "read_committed") == ["fresh"]


def test_the_broker_aborts_a_transaction_past_its_timeout(broker_factory):
    broker = broker_factory(
        {
            "num.partitions": 1,
            "transaction.abort.timed.out.transaction.cleanup.interval.ms": 300,
        }
    )
    topic = unique_topic("timeout")
    create_topic(broker, topic, partitions=1)
    p = txn_producer(broker, **{"transaction.timeout.ms": 3000, "socket.timeout.ms": 2500})
    p.begin_transaction()
    p.produce(topic, value="late")
    p.flush(TIMEOUT)
    time.sleep(5)
    plain = producer(broker)
    plain.produce(topic, value="after")
    plain.flush(TIMEOUT)
    # The abort marker moved the last stable offset past the abandoned records.
    assert read_values(broker, topic, 1, "read_committed") == ["after"]
    with pytest.raises(KafkaException):
        p.commit_transaction(TIMEOUT)
    assert "aborting a transaction open longer than its timeout" in broker.log_text()


def test_kill9_in_the_middle_of_a_transaction(broker):
    topic = unique_topic("crash")
    create_topic(broker, topic, partitions=2)
    tid = "crash-" + uuid.uuid4().hex[:6]
    p = txn_producer(broker, tid)
    p.begin_transaction()
    for i in range(4):
        p.produce(topic, value=f"kept-{i}", partition=i % 2)
    p.commit_transaction(TIMEOUT)
    p.begin_transaction()
    for i in range(4):
        p.produce(topic, value=f"lost-{i}", partition=i % 2)
    p.flush(TIMEOUT)
    broker.kill9()
    broker.start()
    # The next instance of the producer aborts what the crashed one left open.
    p2 = txn_producer(broker, tid)
    p2.begin_transaction()
    p2.produce(topic, value="next", partition=0)
    p2.commit_transaction(TIMEOUT)
    values = read_values(broker, topic, 2, "read_committed")
    assert sorted(values) == sorted([f"kept-{i}" for i in range(4)] + ["next"])


def test_kafka_python_transactional_producer(broker):
    from kafka import TopicPartition as KTP
    from kafka.structs import OffsetAndMetadata

    from kutil import kp_consumer, kp_producer

    topic = unique_topic("kp-tx")
    create_topic(broker, topic, partitions=1)
    src = unique_topic("kp-src")
    create_topic(broker, src, partitions=1)
    group = "kp-g-" + uuid.uuid4().hex[:6]
    p = kp_producer(broker, transactional_id="kp-" + uuid.uuid4().hex[:6], enable_idempotence=True)
    p.init_transactions()
    p.begin_transaction()
    p.send(topic, b"one")
    p.send(topic, b"two")
    p.send_offsets_to_transaction({KTP(src, 0): OffsetAndMetadata(7, "", -1)}, group)
    p.commit_transaction()
    p.begin_transaction()
    p.send(topic, b"dropped")
    # Delivered first: kafka-python 2.3.3 loops forever when an abort finds a batch it has not
    # sent yet (abort_undrained_batches raises on every pass of its sender).
    p.flush()
    p.send_offsets_to_transaction({KTP(src, 0): OffsetAndMetadata(9, "", -1)}, group)
    p.abort_transaction()
    p.close()
    c = kp_consumer(broker, isolation_level="read_committed", consumer_timeout_ms=3000)
    c.assign([KTP(topic, 0)])
    c.seek_to_beginning()
    assert [r.value for r in c] == [b"one", b"two"]
    c.close()
    c = kp_consumer(broker, isolation_level="read_uncommitted", consumer_timeout_ms=3000)
    c.assign([KTP(topic, 0)])
    c.seek_to_beginning()
    assert [r.value for r in c] == [b"one", b"two", b"dropped"]
    c.close()
    g = kp_consumer(broker, group_id=group)
    assert g.committed(KTP(src, 0)) == 7
    g.close()


def test_lag_metrics_and_topic_view_with_transactions(request, tmp_path):
    """A group that committed, inside transactions, everything that was committed has no
    lag, though markers and an aborted transaction sit in the log; the transaction counters
    and the topics API see the transactions."""
    import json
    import urllib.error
    import urllib.request

    from cairn_harness import HttpBroker
    from conftest import OUTPUT_DIR, _safe_name

    b = HttpBroker(
        data_dir=tmp_path / "data",
        log_path=OUTPUT_DIR / f"{_safe_name(request.node.nodeid)}.log",
        options={"num.partitions": 1, "cairn.lag.refresh.ms": 200},
    )
    b.start()
    try:
        def api(path):
            with urllib.request.urlopen(b.url(path), timeout=5) as r:
                body = r.read().decode()
            return json.loads(body) if path.startswith("/api") else body

        topic = unique_topic("lagtx")
        create_topic(b, topic, partitions=1)
        p = txn_producer(b)
        group = "lag-" + uuid.uuid4().hex[:6]
        c = reader(b, "read_committed", group=group, **{"enable.partition.eof": False})
        c.assign([TopicPartition(topic, 0, OFFSET_BEGINNING)])
        # Two committed transactions and an aborted one, each followed by its marker.
        for n, commit in enumerate([True, False, True]):
            p.begin_transaction()
            for i in range(3):
                p.produce(topic, value=f"{n}-{i}")
            p.flush(TIMEOUT)
            if commit:
                p.commit_transaction(TIMEOUT)
            else:
                p.abort_transaction(TIMEOUT)
        got = []
        deadline = time.time() + TIMEOUT
        while len(got) < 6 and time.time() < deadline:
            m = c.poll(0.5)
            if m is not None and not m.error():
                got.append(m)
        assert len(got) == 6
        # The group commits the position after the last record it was given.
        last = got[-1]
        c.commit(offsets=[TopicPartition(topic, 0, last.offset() + 1)], asynchronous=False)
        c.close()
        end = c_end = None
        deadline = time.time() + TIMEOUT
        while time.time() < deadline:
            try:
                detail = api(f"/api/groups/{group}")
            except urllib.error.HTTPError:
                # Not in a lag snapshot yet.
                time.sleep(0.2)
                continue
            parts = detail.get("partition_list") or []
            if parts and parts[0].get("committed_offset") == last.offset() + 1:
                end, c_end = parts[0].get("log_end_offset"), parts[0].get("lag")
                if c_end is not None:
                    break
            time.sleep(0.2)
        # 9 records and 3 markers: the last marker follows the last record given out.
        assert end == last.offset() + 2
        assert c_end == 0
        text = api("/metrics")
        assert 'cairn_transactions_total{outcome="committed"} 2' in text
        assert 'cairn_transactions_total{outcome="aborted"} 1' in text
        assert "cairn_transactions_open 0" in text
        topics = {t["topic"]: t for t in api("/api/topics")["topics"]}
        part = topics[topic]["partitions"][0]
        assert part["last_stable_offset"] == part["log_end_offset"]
        assert part["open_transactions"] == 0
    finally:
        b.stop()
