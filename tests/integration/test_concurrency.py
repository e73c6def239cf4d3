"""Concurrent producers and consumers on one broker."""

import threading
from collections import defaultdict

from confluent_kafka import TopicPartition

import kutil


def test_concurrent_producers_same_partition(broker):
    """Several producers append to one partition at once: offsets stay dense, nothing lost or
    duplicated, and each producer's records keep their relative order."""
    topic = kutil.create_topic(broker, kutil.unique_topic("conc"), partitions=2)
    n_producers, per_producer = 4, 500
    logs = [None] * n_producers

    def run(i):
        p = kutil.producer(broker, **{"linger.ms": 1, "batch.num.messages": 25, "acks": "all"})
        records = [(f"p{i}".encode(), f"p{i}-{j:04d}".encode(), j % 2, None) for j in range(per_producer)]
        logs[i] = kutil.produce_all(p, topic, records, timeout=60)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n_producers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(90)
    assert all(not t.is_alive() for t in threads)

    acked = {}
    for log in logs:
        kutil.assert_no_delivery_errors(log)
        for part, off, _k, val, _ts in log.acked:
            assert (part, off) not in acked, f"offset {(part, off)} acknowledged to two records"
            acked[(part, off)] = val
    assert len(acked) == n_producers * per_producer

    for part in (0, 1):
        msgs = kutil.read_partition(broker, topic, part)
        assert [m.offset() for m in msgs] == list(range(n_producers * per_producer // 2))
        by_producer = defaultdict(list)
        for m in msgs:
            assert acked[(part, m.offset())] == m.value()
            by_producer[m.key()].append(m.value())
        for i in range(n_producers):
            want = [f"p{i}-{j:04d}".encode() for j in range(part, per_producer, 2)]
            assert by_producer[f"p{i}".encode()] == want


def test_consumers_tail_while_producing(broker):
    """Three consumers follow a partition while a producer writes; all see every record in order."""
    topic = kutil.create_topic(broker, kutil.unique_topic("tail"), partitions=1)
    total = 1000
    results = [None] * 3
    errors = []

    def consume(i):
        c = kutil.consumer(broker, **{"fetch.wait.max.ms": 200})
        try:
            msgs = kutil.consume_exact(c, [TopicPartition(topic, 0, 0)], total, timeout=60)
            results[i] = [(m.offset(), m.value()) for m in msgs]
        except Exception as e:  # reported below
            errors.append(e)
        finally:
            c.close()

    threads = [threading.Thread(target=consume, args=(i,)) for i in range(3)]
    for t in threads:
        t.start()
    p = kutil.producer(broker, **{"linger.ms": 2, "batch.num.messages": 10})
    log = kutil.produce_all(p, topic, [(None, f"r{i}".encode(), 0, None) for i in range(total)])
    kutil.assert_no_delivery_errors(log)
    for t in threads:
        t.join(90)
    assert not errors, errors
    want = [(i, f"r{i}".encode()) for i in range(total)]
    for r in results:
        assert r == want


def test_many_topics_and_partitions(broker):
    """50 topics x 4 partitions; one record each; metadata lists them all."""
    topics = [kutil.unique_topic(f"many{i}") for i in range(50)]
    from confluent_kafka.admin import NewTopic

    a = kutil.admin(broker)
    fs = a.create_topics([NewTopic(t, num_partitions=4, replication_factor=1) for t in topics],
                         operation_timeout=30, request_timeout=30)
    for t in topics:
        fs[t].result(timeout=30)
    p = kutil.producer(broker)
    log = kutil.DeliveryLog()
    for t in topics:
        for part in range(4):
            p.produce(t, value=f"{t}/{part}".encode(), partition=part, on_delivery=log)
    assert p.flush(30) == 0
    kutil.assert_no_delivery_errors(log)
    assert sorted(off for _p, off, *_ in log.acked) == [0] * 200
    md = a.list_topics(timeout=10)
    for t in topics:
        assert len(md.topics[t].partitions) == 4
    broker.restart()
    md = kutil.admin(broker).list_topics(timeout=10)
    assert set(topics) <= set(md.topics)
    assert [m.value() for m in kutil.read_partition(broker, topics[17], 3)] == [f"{topics[17]}/3".encode()]
