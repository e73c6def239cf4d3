"""Client helpers shared by the integration tests (confluent-kafka and kafka-python).

Consumer groups are not implemented by the broker yet, so every consumer here
uses manual partition assignment and never commits.
"""

import time
import uuid

from confluent_kafka import (
    OFFSET_BEGINNING,
    Consumer,
    KafkaError,
    KafkaException,
    Producer,
    TopicPartition,
)
from confluent_kafka.admin import AdminClient, NewTopic

CLIENT_TIMEOUT_S = 30


def unique_topic(prefix="t"):
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


# --------------------------------------------------------------------------
# confluent-kafka (librdkafka)
# --------------------------------------------------------------------------
def base_conf(broker, **extra):
    conf = {
        "bootstrap.servers": broker.bootstrap,
        "broker.address.family": "v4",
        "socket.timeout.ms": 10000,
        "reconnect.backoff.ms": 50,
        "reconnect.backoff.max.ms": 500,
    }
    conf.update(extra)
    return conf


def admin(broker, **extra):
    """An AdminClient for `broker`. The default one is cached on the broker object:
    an AdminClient that is garbage-collected fails its pending futures (_DESTROY)."""
    if extra:
        return AdminClient(base_conf(broker, **extra))
    cached = getattr(broker, "_admin_client", None)
    if cached is None:
        cached = AdminClient(base_conf(broker))
        broker._admin_client = cached
    return cached


def producer(broker, **extra):
    conf = base_conf(broker, **{"message.timeout.ms": 20000, "linger.ms": 5})
    conf.update(extra)
    return Producer(conf)


def consumer(broker, **extra):
    conf = base_conf(
        broker,
        **{
            # Required by the client; unused: partitions are assigned manually.
            "group.id": "unused-" + uuid.uuid4().hex[:8],
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            "auto.offset.reset": "earliest",
            "fetch.wait.max.ms": 100,
            "enable.partition.eof": False,
        },
    )
    conf.update(extra)
    return Consumer(conf)


def create_topic(broker, topic, partitions=1, config=None, timeout=CLIENT_TIMEOUT_S):
    a = admin(broker)
    fs = a.create_topics(
        [NewTopic(topic, num_partitions=partitions, replication_factor=1, config=config or {})],
        operation_timeout=timeout,
        request_timeout=timeout,
    )
    fs[topic].result(timeout=timeout)
    wait_for_topic(broker, topic, partitions)
    return topic


def wait_for_topic(broker, topic, partitions, timeout=CLIENT_TIMEOUT_S):
    """Wait until metadata shows `topic` with `partitions` partitions, each with a leader."""
    a = admin(broker)
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        md = a.list_topics(timeout=10)
        t = md.topics.get(topic)
        if t is not None and t.error is None and len(t.partitions) == partitions:
            if all(p.leader >= 0 and p.error is None for p in t.partitions.values()):
                return md
        last = t
        time.sleep(0.1)
    raise AssertionError(f"topic {topic} not ready with {partitions} partitions: {last}")


class DeliveryLog:
    """Collects delivery reports from a confluent-kafka producer."""

    def __init__(self):
        self.acked = []  # (partition, offset, key, value, timestamp)
        self.errors = []  # (KafkaError, key, value)

    def __call__(self, err, msg):
        if err is not None:
            self.errors.append((err, msg.key(), msg.value()))
        else:
            self.acked.append((msg.partition(), msg.offset(), msg.key(), msg.value(), msg.timestamp()))


def produce_all(p, topic, records, timeout=CLIENT_TIMEOUT_S):
    """Produce records [(key, value, partition|None, timestamp|None)], flush, return DeliveryLog.

    Records are delivered in order; asserts the producer queue drained.
    """
    log = DeliveryLog()
    for key, value, partition, ts in records:
        kwargs = {"key": key, "value": value, "on_delivery": log}
        if partition is not None:
            kwargs["partition"] = partition
        if ts is not None:
            kwargs["timestamp"] = ts
        while True:
            try:
                p.produce(topic, **kwargs)
                break
            except BufferError:
                p.poll(0.1)
        p.poll(0)
    remaining = p.flush(timeout)
    assert remaining == 0, f"{remaining} messages still queued after flush({timeout})"
    return log


def assert_no_delivery_errors(log):
    assert not log.errors, f"delivery errors: {[(str(e), k) for e, k, _ in log.errors[:5]]}"


def consume_exact(c, tps, count, timeout=CLIENT_TIMEOUT_S):
    """Assign `tps` (TopicPartition list) and poll until `count` messages arrived.

    Fails on consumer errors and on timeout; returns the list of Message.
    """
    c.assign(tps)
    return poll_n(c, count, timeout)


def poll_n(c, count, timeout=CLIENT_TIMEOUT_S):
    """Poll an already-assigned consumer until `count` messages arrived (fails otherwise)."""
    got = []
    deadline = time.monotonic() + timeout
    while len(got) < count and time.monotonic() < deadline:
        m = c.poll(0.2)
        if m is None:
            continue
        if m.error():
            if m.error().code() == KafkaError._PARTITION_EOF:
                continue
            raise AssertionError(f"consumer error: {m.error()}")
        got.append(m)
    assert len(got) == count, f"consumed {len(got)} of {count} messages within {timeout}s"
    return got


def consume_nothing_more(c, wait_s=1.0):
    """Poll for wait_s seconds and return any extra messages (should be [])."""
    extra = []
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        m = c.poll(0.1)
        if m is not None and not m.error():
            extra.append(m)
    return extra


def read_partition(broker, topic, partition, start=OFFSET_BEGINNING, count=None, timeout=CLIENT_TIMEOUT_S):
    """Read `count` messages (default: up to the high watermark) from one partition."""
    c = consumer(broker)
    try:
        if count is None:
            lo, hi = c.get_watermark_offsets(TopicPartition(topic, partition), timeout=10)
            begin = lo if start == OFFSET_BEGINNING else start
            count = max(0, hi - begin)
        if count == 0:
            return []
        return consume_exact(c, [TopicPartition(topic, partition, start)], count, timeout)
    finally:
        c.close()


def watermarks(broker, topic, partition):
    c = consumer(broker)
    try:
        return c.get_watermark_offsets(TopicPartition(topic, partition), timeout=10, cached=False)
    finally:
        c.close()


def kafka_error_code(exc):
    """The KafkaError code inside a KafkaException (or the exception's args)."""
    if isinstance(exc, KafkaException):
        return exc.args[0].code()
    raise AssertionError(f"not a KafkaException: {exc!r}")


# --------------------------------------------------------------------------
# kafka-python
# --------------------------------------------------------------------------
def kp_producer(broker, **extra):
    from kafka import KafkaProducer

    conf = dict(
        bootstrap_servers=broker.bootstrap,
        api_version=None,  # infer from ApiVersions
        request_timeout_ms=15000,
        max_block_ms=15000,
        linger_ms=5,
    )
    conf.update(extra)
    return KafkaProducer(**conf)


def kp_consumer(broker, **extra):
    from kafka import KafkaConsumer

    conf = dict(
        bootstrap_servers=broker.bootstrap,
        api_version=None,
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        request_timeout_ms=15000,
        fetch_max_wait_ms=100,
        consumer_timeout_ms=30000,
    )
    conf.update(extra)
    return KafkaConsumer(**conf)


def kp_consume_exact(c, count, timeout=CLIENT_TIMEOUT_S):
    got = []
    deadline = time.monotonic() + timeout
    while len(got) < count and time.monotonic() < deadline:
        batches = c.poll(timeout_ms=200)
        for records in batches.values():
            got.extend(records)
    assert len(got) == count, f"kafka-python consumed {len(got)} of {count} within {timeout}s"
    return got
