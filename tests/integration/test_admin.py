"""Admin API: CreateTopics, DeleteTopics, CreatePartitions, DescribeConfigs, auto-creation."""

import time

import pytest
from confluent_kafka import KafkaError, KafkaException, TopicPartition
from confluent_kafka.admin import ConfigResource, ConfigSource, NewPartitions, NewTopic, ResourceType

import kutil

# Kafka protocol error codes
UNKNOWN_TOPIC_OR_PARTITION = 3
INVALID_TOPIC_EXCEPTION = 17
TOPIC_ALREADY_EXISTS = 36
INVALID_PARTITIONS = 37
INVALID_REPLICATION_FACTOR = 38
INVALID_CONFIG = 40

OP_TIMEOUT = 20


def create(a, topics, validate_only=False):
    return a.create_topics(
        topics, operation_timeout=OP_TIMEOUT, request_timeout=OP_TIMEOUT, validate_only=validate_only
    )


def error_code_of(future):
    """Run a future that must fail; return its Kafka error code."""
    with pytest.raises(KafkaException) as exc:
        future.result(timeout=OP_TIMEOUT)
    return kutil.kafka_error_code(exc.value)


def topic_names(broker):
    md = kutil.admin(broker).list_topics(timeout=10)
    return {name for name, t in md.topics.items() if t.error is None}


@pytest.fixture
def noauto_broker(broker_factory):
    return broker_factory({"num.partitions": 4, "auto.create.topics.enable": "false"})


def test_create_topic_with_partitions_and_config(noauto_broker):
    b = noauto_broker
    topic = kutil.unique_topic()
    fs = create(
        kutil.admin(b),
        [NewTopic(topic, num_partitions=3, replication_factor=1, config={"retention.ms": "123456"})],
    )
    assert fs[topic].result(timeout=OP_TIMEOUT) is None
    md = kutil.wait_for_topic(b, topic, 3)
    t = md.topics[topic]
    assert sorted(t.partitions) == [0, 1, 2]
    broker_ids = set(md.brokers)
    assert len(broker_ids) == 1
    for p in t.partitions.values():
        assert p.leader in broker_ids
        assert p.replicas == [p.leader]
        assert p.isrs == [p.leader]
    for part in range(3):
        assert kutil.watermarks(b, topic, part) == (0, 0)


def test_create_topic_broker_default_partitions(noauto_broker):
    b = noauto_broker
    topic = kutil.unique_topic()
    fs = create(kutil.admin(b), [NewTopic(topic, num_partitions=-1, replication_factor=-1)])
    fs[topic].result(timeout=OP_TIMEOUT)
    kutil.wait_for_topic(b, topic, 4)  # num.partitions=4


def test_create_topic_validate_only_creates_nothing(noauto_broker):
    b = noauto_broker
    topic = kutil.unique_topic()
    fs = create(kutil.admin(b), [NewTopic(topic, num_partitions=2, replication_factor=1)], validate_only=True)
    assert fs[topic].result(timeout=OP_TIMEOUT) is None
    time.sleep(0.5)
    assert topic not in topic_names(b)
    # validate_only still reports errors
    fs = create(kutil.admin(b), [NewTopic("bad/name", num_partitions=1, replication_factor=1)], validate_only=True)
    assert error_code_of(fs["bad/name"]) == INVALID_TOPIC_EXCEPTION
    # ...and then the real creation works
    fs = create(kutil.admin(b), [NewTopic(topic, num_partitions=2, replication_factor=1)])
    fs[topic].result(timeout=OP_TIMEOUT)
    kutil.wait_for_topic(b, topic, 2)


@pytest.mark.parametrize(
    "name",
    ["bad/name", "", "x" * 250, ".", "..", "has space", "uml\u00e4ut", "a:b"],
    ids=["slash", "empty", "250chars", "dot", "dotdot", "space", "non-ascii", "colon"],
)
def test_create_topic_invalid_name(noauto_broker, name):
    fs = create(kutil.admin(noauto_broker), [NewTopic(name, num_partitions=1, replication_factor=1)])
    assert error_code_of(fs[name]) == INVALID_TOPIC_EXCEPTION
    assert name not in topic_names(noauto_broker)


def test_create_topic_name_of_249_chars_is_valid(noauto_broker):
    name = "a" * 240 + "-._" + "b" * 6
    assert len(name) == 249
    fs = create(kutil.admin(noauto_broker), [NewTopic(name, num_partitions=1, replication_factor=1)])
    fs[name].result(timeout=OP_TIMEOUT)
    kutil.wait_for_topic(noauto_broker, name, 1)


def test_create_topic_replication_factor_3(noauto_broker):
    topic = kutil.unique_topic()
    fs = create(kutil.admin(noauto_broker), [NewTopic(topic, num_partitions=1, replication_factor=3)])
    assert error_code_of(fs[topic]) == INVALID_REPLICATION_FACTOR
    assert topic not in topic_names(noauto_broker)


def test_create_topic_zero_partitions(noauto_broker):
    topic = kutil.unique_topic()
    fs = create(kutil.admin(noauto_broker), [NewTopic(topic, num_partitions=0, replication_factor=1)])
    assert error_code_of(fs[topic]) == INVALID_PARTITIONS


@pytest.mark.parametrize(
    "config",
    [{"cleanup.policy": "bogus"}, {"no.such.topic.config": "1"}, {"retention.ms": "not-a-number"}],
    ids=["bad-enum", "unknown-key", "bad-number"],
)
def test_create_topic_invalid_config(noauto_broker, config):
    topic = kutil.unique_topic()
    fs = create(
        kutil.admin(noauto_broker), [NewTopic(topic, num_partitions=1, replication_factor=1, config=config)]
    )
    assert error_code_of(fs[topic]) == INVALID_CONFIG
    assert topic not in topic_names(noauto_broker)


def test_create_topic_duplicate(noauto_broker):
    b = noauto_broker
    topic = kutil.create_topic(b, kutil.unique_topic(), partitions=2)
    fs = create(kutil.admin(b), [NewTopic(topic, num_partitions=5, replication_factor=1)])
    assert error_code_of(fs[topic]) == TOPIC_ALREADY_EXISTS
    kutil.wait_for_topic(b, topic, 2)  # unchanged


def test_create_several_topics_mixed_results(noauto_broker):
    b = noauto_broker
    good, dup = kutil.unique_topic(), kutil.create_topic(b, kutil.unique_topic(), partitions=1)
    fs = create(
        kutil.admin(b),
        [
            NewTopic(good, num_partitions=2, replication_factor=1),
            NewTopic(dup, num_partitions=1, replication_factor=1),
            NewTopic("bad/one", num_partitions=1, replication_factor=1),
        ],
    )
    assert fs[good].result(timeout=OP_TIMEOUT) is None
    assert error_code_of(fs[dup]) == TOPIC_ALREADY_EXISTS
    assert error_code_of(fs["bad/one"]) == INVALID_TOPIC_EXCEPTION
    kutil.wait_for_topic(b, good, 2)


def test_delete_topic_then_recreate_empty(noauto_broker):
    b = noauto_broker
    topic = kutil.create_topic(b, kutil.unique_topic(), partitions=2)
    p = kutil.producer(b)
    kutil.assert_no_delivery_errors(kutil.produce_all(p, topic, [(None, b"old", i % 2, None) for i in range(10)]))
    assert kutil.watermarks(b, topic, 0) == (0, 5)

    fs = kutil.admin(b).delete_topics([topic], operation_timeout=OP_TIMEOUT, request_timeout=OP_TIMEOUT)
    assert fs[topic].result(timeout=OP_TIMEOUT) is None
    assert topic not in topic_names(b)
    md = kutil.admin(b).list_topics(topic=topic, timeout=10)
    assert md.topics[topic].error is not None
    assert md.topics[topic].error.code() == KafkaError.UNKNOWN_TOPIC_OR_PART

    # Deleting again -> UNKNOWN_TOPIC_OR_PARTITION
    fs = kutil.admin(b).delete_topics([topic], operation_timeout=OP_TIMEOUT, request_timeout=OP_TIMEOUT)
    assert error_code_of(fs[topic]) == UNKNOWN_TOPIC_OR_PARTITION

    # Re-create: empty, offsets start at 0 again, old data gone
    fs = create(kutil.admin(b), [NewTopic(topic, num_partitions=3, replication_factor=1)])
    fs[topic].result(timeout=OP_TIMEOUT)
    kutil.wait_for_topic(b, topic, 3)
    for part in range(3):
        assert kutil.watermarks(b, topic, part) == (0, 0)
    log = kutil.produce_all(kutil.producer(b), topic, [(None, b"new", 0, None)])
    kutil.assert_no_delivery_errors(log)
    assert [(pt, off) for pt, off, *_ in log.acked] == [(0, 0)]
    msgs = kutil.read_partition(b, topic, 0)
    assert [m.value() for m in msgs] == [b"new"]


def test_delete_topic_survives_restart(noauto_broker):
    b = noauto_broker
    topic = kutil.create_topic(b, kutil.unique_topic(), partitions=1)
    keep = kutil.create_topic(b, kutil.unique_topic(), partitions=1)
    fs = kutil.admin(b).delete_topics([topic], operation_timeout=OP_TIMEOUT, request_timeout=OP_TIMEOUT)
    fs[topic].result(timeout=OP_TIMEOUT)
    b.restart()
    names = topic_names(b)
    assert topic not in names
    assert keep in names


def test_create_partitions_grow(noauto_broker):
    b = noauto_broker
    topic = kutil.create_topic(b, kutil.unique_topic(), partitions=2)
    p = kutil.producer(b)
    kutil.assert_no_delivery_errors(kutil.produce_all(p, topic, [(None, b"a", 1, None)]))
    fs = kutil.admin(b).create_partitions(
        [NewPartitions(topic, 6)], operation_timeout=OP_TIMEOUT, request_timeout=OP_TIMEOUT
    )
    assert fs[topic].result(timeout=OP_TIMEOUT) is None
    kutil.wait_for_topic(b, topic, 6)
    assert kutil.watermarks(b, topic, 1) == (0, 1)  # existing data untouched
    p2 = kutil.producer(b, **{"topic.metadata.refresh.interval.ms": 500})
    log = kutil.produce_all(p2, topic, [(None, b"new", 5, None)])
    kutil.assert_no_delivery_errors(log)
    assert [(pt, off) for pt, off, *_ in log.acked] == [(5, 0)]
    # Survives a restart
    b.restart()
    kutil.wait_for_topic(b, topic, 6)
    assert kutil.watermarks(b, topic, 5) == (0, 1)


def test_create_partitions_validate_only_and_errors(noauto_broker):
    b = noauto_broker
    topic = kutil.create_topic(b, kutil.unique_topic(), partitions=3)
    a = kutil.admin(b)

    fs = a.create_partitions([NewPartitions(topic, 5)], validate_only=True, request_timeout=OP_TIMEOUT)
    assert fs[topic].result(timeout=OP_TIMEOUT) is None
    time.sleep(0.3)
    kutil.wait_for_topic(b, topic, 3)

    for count in (3, 2):  # same or fewer partitions
        fs = a.create_partitions([NewPartitions(topic, count)], request_timeout=OP_TIMEOUT)
        assert error_code_of(fs[topic]) == INVALID_PARTITIONS, f"new_total_count={count}"

    missing = kutil.unique_topic()
    fs = a.create_partitions([NewPartitions(missing, 4)], request_timeout=OP_TIMEOUT)
    assert error_code_of(fs[missing]) == UNKNOWN_TOPIC_OR_PARTITION
    kutil.wait_for_topic(b, topic, 3)


# ---------------------------------------------------------------------------
# DescribeConfigs
# ---------------------------------------------------------------------------
TOPIC_CONFIG_DEFAULTS = {
    "cleanup.policy": "delete",
    "compression.type": "producer",
    "message.timestamp.type": "CreateTime",
    "max.message.bytes": "1048588",
    "retention.ms": "604800000",
    "retention.bytes": "-1",
    "segment.bytes": "1073741824",
    "min.insync.replicas": "1",
}


def describe(a, resource):
    fs = a.describe_configs([resource], request_timeout=OP_TIMEOUT)
    return fs[resource].result(timeout=OP_TIMEOUT)


def test_describe_topic_configs_defaults_and_override(noauto_broker):
    b = noauto_broker
    topic = kutil.create_topic(
        b, kutil.unique_topic(), partitions=1, config={"retention.ms": "3600000", "cleanup.policy": "compact"}
    )
    entries = describe(kutil.admin(b), ConfigResource(ResourceType.TOPIC, topic))
    missing = set(TOPIC_CONFIG_DEFAULTS) - set(entries)
    assert not missing, f"topic configs missing from DescribeConfigs: {sorted(missing)}"
    for name, e in entries.items():
        assert e.name == name
        assert e.value is not None or e.is_sensitive, f"{name} has no value"
        assert isinstance(e.is_default, bool)

    assert entries["retention.ms"].value == "3600000"
    assert entries["retention.ms"].is_default is False
    assert entries["retention.ms"].source == ConfigSource.DYNAMIC_TOPIC_CONFIG.value
    assert entries["cleanup.policy"].value == "compact"
    assert entries["cleanup.policy"].is_default is False

    for name in ("compression.type", "message.timestamp.type", "max.message.bytes", "segment.bytes"):
        assert entries[name].value == TOPIC_CONFIG_DEFAULTS[name], name
        assert entries[name].is_default is True, name
        assert entries[name].source == ConfigSource.DEFAULT_CONFIG.value, name


def test_describe_topic_config_inherits_broker_override(broker_factory):
    b = broker_factory({"log.segment.bytes": 1048576, "message.max.bytes": 2000000})
    topic = kutil.create_topic(b, kutil.unique_topic(), partitions=1)
    entries = describe(kutil.admin(b), ConfigResource(ResourceType.TOPIC, topic))
    assert entries["segment.bytes"].value == "1048576"
    assert entries["max.message.bytes"].value == "2000000"
    # Not a topic override: the value comes from the broker's static config.
    assert entries["segment.bytes"].source == ConfigSource.STATIC_BROKER_CONFIG.value
    assert entries["segment.bytes"].is_default is False


def test_describe_unknown_topic_configs(noauto_broker):
    missing = kutil.unique_topic()
    fs = kutil.admin(noauto_broker).describe_configs(
        [ConfigResource(ResourceType.TOPIC, missing)], request_timeout=OP_TIMEOUT
    )
    with pytest.raises(KafkaException) as exc:
        list(fs.values())[0].result(timeout=OP_TIMEOUT)
    assert kutil.kafka_error_code(exc.value) == UNKNOWN_TOPIC_OR_PARTITION


def test_describe_broker_configs(broker_factory):
    b = broker_factory({"num.partitions": 4, "auto.create.topics.enable": "true"})
    a = kutil.admin(b)
    md = a.list_topics(timeout=10)
    (broker_id,) = md.brokers.keys()
    entries = describe(a, ConfigResource(ResourceType.BROKER, str(broker_id)))
    for name in ("num.partitions", "message.max.bytes", "log.segment.bytes", "auto.create.topics.enable",
                 "log.retention.hours", "log.flush.interval.messages", "socket.request.max.bytes"):
        assert name in entries, f"broker config {name} missing"
        assert entries[name].value is not None, f"{name} has no value"
    assert entries["num.partitions"].value == "4"
    assert entries["num.partitions"].is_default is False
    assert entries["num.partitions"].source == ConfigSource.STATIC_BROKER_CONFIG.value
    assert entries["message.max.bytes"].value == "1048588"
    assert entries["message.max.bytes"].is_default is True
    assert entries["message.max.bytes"].source == ConfigSource.DEFAULT_CONFIG.value
    for name, e in entries.items():
        assert isinstance(e.is_default, bool), name


def test_describe_configs_kafka_python(noauto_broker):
    from kafka.admin import ConfigResource as KpConfigResource
    from kafka.admin import ConfigResourceType, KafkaAdminClient

    b = noauto_broker
    topic = kutil.create_topic(b, kutil.unique_topic(), partitions=1, config={"retention.bytes": "1000000"})
    ka = KafkaAdminClient(bootstrap_servers=b.bootstrap, request_timeout_ms=15000)
    try:
        responses = ka.describe_configs([KpConfigResource(ConfigResourceType.TOPIC, topic)])
        resp = responses[0] if isinstance(responses, list) else responses
        (res,) = resp.resources
        error_code, _msg, _rtype, rname, configs = res[:5]
        assert (error_code, rname) == (0, topic)
        by_name = {c[0]: c for c in configs}
        assert by_name["retention.bytes"][1] == "1000000"
        assert by_name["cleanup.policy"][1] == "delete"
    finally:
        ka.close()


# ---------------------------------------------------------------------------
# Auto-creation
# ---------------------------------------------------------------------------
def test_auto_create_on_produce(broker_factory):
    b = broker_factory({"num.partitions": 4, "auto.create.topics.enable": "true"})
    topic = kutil.unique_topic("auto")
    p = kutil.producer(b)
    log = kutil.produce_all(p, topic, [(b"k", b"v", None, None)])
    kutil.assert_no_delivery_errors(log)
    assert len(log.acked) == 1 and log.acked[0][1] == 0
    kutil.wait_for_topic(b, topic, 4)
    entries = describe(kutil.admin(b), ConfigResource(ResourceType.TOPIC, topic))
    assert entries["cleanup.policy"].value == "delete"


def test_auto_create_on_metadata_respects_num_partitions(broker_factory):
    b = broker_factory({"num.partitions": 3, "auto.create.topics.enable": "true"})
    topic = kutil.unique_topic("auto")
    p = kutil.producer(b)  # producers ask for auto-creation in Metadata requests
    deadline = time.monotonic() + 20
    last = None
    while time.monotonic() < deadline:
        md = p.list_topics(topic=topic, timeout=10)
        last = md.topics[topic]
        if last.error is None and len(last.partitions) == 3:
            break
        time.sleep(0.2)
    assert last is not None and last.error is None, f"metadata error {last.error if last else None}"
    assert sorted(last.partitions) == [0, 1, 2]


def test_kafka_python_auto_create_on_send(broker_factory):
    b = broker_factory({"num.partitions": 2, "auto.create.topics.enable": "true"})
    topic = kutil.unique_topic("auto")
    p = kutil.kp_producer(b)
    md = p.send(topic, value=b"x", partition=1).get(timeout=30)
    p.close(timeout=10)
    assert (md.partition, md.offset) == (1, 0)
    kutil.wait_for_topic(b, topic, 2)


def test_auto_create_disabled(noauto_broker):
    b = noauto_broker
    topic = kutil.unique_topic("noauto")
    p = kutil.producer(b, **{"message.timeout.ms": 5000})
    md = p.list_topics(topic=topic, timeout=10)
    assert md.topics[topic].error is not None
    assert md.topics[topic].error.code() == KafkaError.UNKNOWN_TOPIC_OR_PART

    log = kutil.DeliveryLog()
    p.produce(topic, value=b"v", on_delivery=log)
    p.flush(20)
    assert not log.acked
    assert len(log.errors) == 1
    assert log.errors[0][0].code() in (
        KafkaError.UNKNOWN_TOPIC_OR_PART,
        KafkaError._UNKNOWN_TOPIC,
        KafkaError._MSG_TIMED_OUT,
    ), str(log.errors[0][0])
    assert topic not in topic_names(b)

    # A consumer fetching it gets no records and the topic is still not created.
    c = kutil.consumer(b)
    try:
        c.assign([TopicPartition(topic, 0, 0)])
        extra = kutil.consume_nothing_more(c, 1.0)
        assert extra == []
    finally:
        c.close()
    assert topic not in topic_names(b)
