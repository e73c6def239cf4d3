"""IncrementalAlterConfigs / AlterConfigs / DescribeConfigs with real admin clients and the CLI:
topic overrides that act on live partitions, dynamic broker configs that survive a restart,
and Kafka's error codes for bad input."""

import json
import os
import subprocess
import time

import pytest
from confluent_kafka import KafkaException, TopicPartition
from confluent_kafka.admin import AlterConfigOpType, ConfigEntry, ConfigResource, ConfigSource, ResourceType

import kutil
from cairn_harness import cairn_bin

UNKNOWN_TOPIC_OR_PARTITION = 3
INVALID_CONFIG = 40
INVALID_REQUEST = 42
OP_TIMEOUT = 20


def op(name, value, kind=AlterConfigOpType.SET):
    return ConfigEntry(name, value, incremental_operation=kind)


def inc_alter(a, resource_type, name, entries, validate_only=False):
    res = ConfigResource(resource_type, name, incremental_configs=entries)
    fs = a.incremental_alter_configs([res], request_timeout=OP_TIMEOUT, validate_only=validate_only)
    return fs[res].result(timeout=OP_TIMEOUT)


def inc_alter_code(a, resource_type, name, entries, validate_only=False):
    with pytest.raises(KafkaException) as exc:
        inc_alter(a, resource_type, name, entries, validate_only)
    return kutil.kafka_error_code(exc.value), str(exc.value)


def describe(a, resource_type, name):
    res = ConfigResource(resource_type, name)
    fs = a.describe_configs([res], request_timeout=OP_TIMEOUT)
    return fs[res].result(timeout=OP_TIMEOUT)


def wait_for(what, predicate, timeout=30, every=0.2):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture
def b(broker_factory):
    # Retention runs often so that a lowered retention.ms acts within the test.
    return broker_factory({"num.partitions": 1, "log.retention.check.interval.ms": 200})


def test_incremental_alter_topic_set_append_delete(b):
    a = kutil.admin(b)
    topic = kutil.create_topic(b, kutil.unique_topic(), partitions=1)
    assert inc_alter(a, ResourceType.TOPIC, topic, [
        op("retention.ms", "3600000"),
        op("cleanup.policy", "compact", AlterConfigOpType.APPEND),
    ]) is None
    e = describe(a, ResourceType.TOPIC, topic)
    assert e["retention.ms"].value == "3600000"
    assert e["retention.ms"].source == ConfigSource.DYNAMIC_TOPIC_CONFIG.value
    assert e["cleanup.policy"].value == "delete,compact"
    assert e["retention.ms"].is_read_only is False
    # The synonym chain: the override, then the broker's default behind it.
    syn = [(s.name, s.source) for s in e["retention.ms"].synonyms.values()]
    assert syn[0] == ("retention.ms", ConfigSource.DYNAMIC_TOPIC_CONFIG.value)
    assert ("log.retention.hours", ConfigSource.DEFAULT_CONFIG.value) in syn

    inc_alter(a, ResourceType.TOPIC, topic, [
        op("retention.ms", None, AlterConfigOpType.DELETE),
        op("cleanup.policy", "delete", AlterConfigOpType.SUBTRACT),
    ])
    e = describe(a, ResourceType.TOPIC, topic)
    assert e["retention.ms"].value == "604800000"
    assert e["retention.ms"].source == ConfigSource.DEFAULT_CONFIG.value
    assert e["cleanup.policy"].value == "compact"


def test_topic_bad_input_gets_kafkas_codes(b):
    a = kutil.admin(b)
    topic = kutil.create_topic(b, kutil.unique_topic(), partitions=1)
    code, _ = inc_alter_code(a, ResourceType.TOPIC, kutil.unique_topic("missing"), [op("retention.ms", "1")])
    assert code == UNKNOWN_TOPIC_OR_PARTITION
    code, text = inc_alter_code(a, ResourceType.TOPIC, topic, [op("no.such.config", "1")])
    assert code == INVALID_CONFIG and "no.such.config" in text
    for bad in (
        [op("retention.ms", "soon")],
        [op("retention.ms", "-5")],
        [op("segment.bytes", "10")],
        [op("message.timestamp.type", "Whenever")],
        [op("retention.ms", "5", AlterConfigOpType.APPEND)],
    ):
        code, text = inc_alter_code(a, ResourceType.TOPIC, topic, bad)
        assert code == INVALID_CONFIG, (bad, text)
    # validate_only checks and changes nothing.
    assert inc_alter(a, ResourceType.TOPIC, topic, [op("retention.ms", "1234")], validate_only=True) is None
    assert describe(a, ResourceType.TOPIC, topic)["retention.ms"].value == "604800000"
    # Internal topics are refused.
    kutil.consumer(b, **{"group.id": "g-cfg"}).list_topics(timeout=10)
    code, _ = inc_alter_code(a, ResourceType.TOPIC, "__consumer_offsets", [op("retention.ms", "1")])
    assert code != 0


def test_legacy_alter_configs_replaces_the_whole_set(b):
    a = kutil.admin(b)
    topic = kutil.create_topic(b, kutil.unique_topic(), partitions=1,
                               config={"retention.ms": "3600000", "max.message.bytes": "5000"})
    res = ConfigResource(ResourceType.TOPIC, topic, set_config={"segment.bytes": "2000000"})
    a.alter_configs([res], request_timeout=OP_TIMEOUT)[res].result(timeout=OP_TIMEOUT)
    e = describe(a, ResourceType.TOPIC, topic)
    assert e["segment.bytes"].value == "2000000"
    assert e["retention.ms"].source == ConfigSource.DEFAULT_CONFIG.value
    assert e["max.message.bytes"].source == ConfigSource.DEFAULT_CONFIG.value


def test_kafka_python_alter_and_describe(b):
    from kafka.admin import ConfigResource as KpConfigResource
    from kafka.admin import ConfigResourceType, KafkaAdminClient

    topic = kutil.create_topic(b, kutil.unique_topic(), partitions=1)
    ka = KafkaAdminClient(bootstrap_servers=b.bootstrap, request_timeout_ms=15000)
    try:
        resp = ka.alter_configs([KpConfigResource(ConfigResourceType.TOPIC, topic,
                                                  configs={"retention.bytes": "1000000"})])
        codes = [r[0] for r in resp.resources]
        assert codes == [0], resp
        resp = ka.alter_configs([KpConfigResource(ConfigResourceType.TOPIC, topic,
                                                  configs={"retention.bytes": "lots"})])
        assert [r[0] for r in resp.resources] == [INVALID_CONFIG]
        responses = ka.describe_configs([KpConfigResource(ConfigResourceType.TOPIC, topic)])
        resp = responses[0] if isinstance(responses, list) else responses
        (res,) = resp.resources
        by_name = {c[0]: c for c in res[4]}
        assert by_name["retention.bytes"][1] == "1000000"
    finally:
        ka.close()


def test_lowered_retention_moves_the_log_start_and_consumers_reset(b):
    a = kutil.admin(b)
    topic = kutil.create_topic(b, kutil.unique_topic(), partitions=1)
    # Small segments from now on, on the live topic.
    inc_alter(a, ResourceType.TOPIC, topic, [op("segment.bytes", "1024")])
    p = kutil.producer(b, **{"linger.ms": 0})
    for i in range(60):
        p.produce(topic, value=b"x" * 100, key=str(i).encode())
        p.flush(10)
    low, high = kutil.watermarks(b, topic, 0)
    assert (low, high) == (0, 60)
    time.sleep(0.5)  # every record is older than the retention about to be set
    inc_alter(a, ResourceType.TOPIC, topic, [op("retention.ms", "100")])
    low = wait_for("the log start to move", lambda: kutil.watermarks(b, topic, 0)[0] or None)
    assert 0 < low < 60, low
    assert kutil.watermarks(b, topic, 0)[1] == 60
    # A consumer positioned below the log start is reset to it by its reset policy.
    c = kutil.consumer(b, **{"group.id": kutil.unique_topic("g"), "auto.offset.reset": "earliest"})
    try:
        c.assign([TopicPartition(topic, 0, 0)])
        first = kutil.poll_n(c, 1)[0]
        assert first.offset() == kutil.watermarks(b, topic, 0)[0]
    finally:
        c.close()


def test_timestamp_type_and_size_limit_act_on_the_live_topic(b):
    a = kutil.admin(b)
    topic = kutil.create_topic(b, kutil.unique_topic(), partitions=1)
    inc_alter(a, ResourceType.TOPIC, topic, [op("message.timestamp.type", "LogAppendTime"),
                                             op("max.message.bytes", "2000")])
    p = kutil.producer(b, **{"linger.ms": 0, "compression.type": "none"})
    log = kutil.produce_all(p, topic, [(b"k", b"v", None, 1000)])
    kutil.assert_no_delivery_errors(log)
    log = kutil.produce_all(p, topic, [(b"k", b"z" * 5000, None, None)])
    assert not log.acked and log.errors, "a record over max.message.bytes was accepted"
    (m,) = kutil.read_partition(b, topic, 0, count=1)
    ts_type, ts = m.timestamp()
    assert ts_type == 2 and ts > 1_000_000, (ts_type, ts)  # LogAppendTime, the broker's clock


def test_broker_defaults_reach_topics_without_overrides(b):
    topic = kutil.create_topic(b, kutil.unique_topic(), partitions=1)
    cli(b, "configs", "alter", "--entity-type", "brokers", "--entity-default",
        "--add-config", "log.segment.bytes=1024")
    p = kutil.producer(b, **{"linger.ms": 0})
    for i in range(40):
        p.produce(topic, value=b"x" * 100)
        p.flush(10)
    time.sleep(0.5)
    assert kutil.watermarks(b, topic, 0) == (0, 40)
    cli(b, "configs", "alter", "--entity-type", "brokers", "--entity-name", "1",
        "--add-config", "log.retention.ms=100")
    low = wait_for("the log start to move", lambda: kutil.watermarks(b, topic, 0)[0] or None)
    assert 0 < low < 40


def broker_id(a):
    md = a.list_topics(timeout=10)
    (bid,) = md.brokers.keys()
    return str(bid)


def test_dynamic_broker_configs_act_and_survive_a_restart(broker_factory):
    b = broker_factory({"num.partitions": 1, "message.max.bytes": 100000})
    a = kutil.admin(b)
    bid = broker_id(a)
    topic = kutil.create_topic(b, kutil.unique_topic(), partitions=1)

    code, text = inc_alter_code(a, ResourceType.BROKER, bid, [op("advertised.listeners", "PLAINTEXT://x:1")])
    assert code == INVALID_REQUEST and "Cannot update these configs dynamically" in text
    code, text = inc_alter_code(a, ResourceType.BROKER, bid, [op("num.partitions", "3")])
    assert code == INVALID_REQUEST
    code, _ = inc_alter_code(a, ResourceType.BROKER, bid, [op("message.max.bytes", "huge")])
    assert code == INVALID_REQUEST
    code, _ = inc_alter_code(a, ResourceType.BROKER, bid, [op("no.such.config", "1")])
    assert code == INVALID_CONFIG

    # librdkafka cannot name the cluster-default resource (an empty name); the CLI can.
    cli(b, "configs", "alter", "--entity-type", "brokers", "--entity-default", "--add-config", "log.retention.ms=7200000")
    inc_alter(a, ResourceType.BROKER, bid, [op("message.max.bytes", "3000")])

    def check(broker):
        adm = kutil.admin(broker)
        e = describe(adm, ResourceType.BROKER, bid)
        assert e["message.max.bytes"].value == "3000"
        assert e["message.max.bytes"].source == ConfigSource.DYNAMIC_BROKER_CONFIG.value
        # The Python binding keys synonyms by name (all alike here): read the chain via the CLI.
        every = json.loads(cli(broker, "configs", "describe", "--entity-type", "brokers", "--entity-name", bid,
                               "--all", "--output", "json").stdout)
        (mmb,) = [c for c in every["configs"] if c["name"] == "message.max.bytes"]
        assert [(x["value"], x["source"]) for x in mmb["synonyms"]] == [
            ("3000", "DYNAMIC_BROKER_CONFIG"), ("100000", "STATIC_BROKER_CONFIG"), ("1048588", "DEFAULT_CONFIG")]
        assert e["log.retention.ms"].value == "7200000"
        assert e["log.retention.ms"].source == ConfigSource.DYNAMIC_DEFAULT_BROKER_CONFIG.value
        assert e["advertised.listeners"].is_read_only is True
        assert e["message.max.bytes"].is_read_only is False
        t = describe(adm, ResourceType.TOPIC, topic)
        assert t["retention.ms"].value == "7200000"
        assert t["retention.ms"].source == ConfigSource.DYNAMIC_DEFAULT_BROKER_CONFIG.value
        # The topic follows the new limit: a 5000-byte record is refused.
        p = kutil.producer(broker, **{"linger.ms": 0, "compression.type": "none"})
        log = kutil.produce_all(p, topic, [(None, b"y" * 5000, None, None)])
        assert not log.acked and log.errors, log.errors

    check(b)
    b.restart()
    check(b)
    assert os.path.exists(b.data_dir / "broker-configs.json")


def test_a_damaged_broker_config_file_stops_the_start(broker_factory):
    b = broker_factory({"num.partitions": 1})
    a = kutil.admin(b)
    inc_alter(a, ResourceType.BROKER, broker_id(a), [op("log.retention.ms", "7200000")])
    b.stop()
    (b.data_dir / "broker-configs.json").write_text("{ not json")
    argv = [str(cairn_bin()), "serve", "--listen", "127.0.0.1:1", "--data-dir", str(b.data_dir), "--http", "off"]
    proc = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, timeout=20)
    assert proc.returncode != 0
    assert b"broker-configs.json" in proc.stderr, proc.stderr[-2000:]
    assert b"panicked" not in proc.stderr


# --------------------------------------------------------------------------
# the CLI
# --------------------------------------------------------------------------
def cli(broker, *args, check=True):
    argv = [str(cairn_bin()), *args, "--bootstrap-server", broker.bootstrap]
    env = {**os.environ, "CAIRN_LOG": "warn", "NO_COLOR": "1"}
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=60, input="", env=env)
    if check:
        assert proc.returncode == 0, f"{args}: {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    else:
        assert proc.returncode != 0, f"{args} succeeded: {proc.stdout}"
        assert "panicked" not in proc.stderr
    return proc


def test_cli_topics_alter_and_configs_commands(b):
    topic = kutil.create_topic(b, kutil.unique_topic(), partitions=1, config={"retention.bytes": "5000000"})
    out = cli(b, "topics", "alter", topic, "--config", "retention.ms=3600000",
              "--config", "cleanup.policy=compact,delete", "--delete-config", "retention.bytes").stdout
    assert f"Completed updating config for topic {topic}." in out
    desc = json.loads(cli(b, "configs", "describe", "--entity-type", "topics", "--entity-name", topic,
                          "--output", "json").stdout)
    got = {c["name"]: c["value"] for c in desc["configs"]}
    assert got == {"retention.ms": "3600000", "cleanup.policy": "compact,delete"}
    assert all(c["source"] == "DYNAMIC_TOPIC_CONFIG" for c in desc["configs"])

    # --dry-run validates only.
    out = cli(b, "topics", "alter", topic, "--config", "retention.ms=1", "--dry-run").stdout
    assert "Validated" in out
    text = cli(b, "configs", "describe", "--entity-type", "topics", "--entity-name", topic).stdout
    assert "retention.ms=3600000" in text and "synonyms={DYNAMIC_TOPIC_CONFIG:retention.ms=3600000" in text

    # Broker configs: the cluster default and one broker, as kafka-configs.sh.
    cli(b, "configs", "alter", "--entity-type", "brokers", "--entity-default",
        "--add-config", "log.retention.ms=7200000,log.cleanup.policy=[delete,compact]")
    desc = json.loads(cli(b, "configs", "describe", "--entity-type", "brokers", "--entity-default",
                          "--output", "json").stdout)
    got = {c["name"]: (c["value"], c["source"]) for c in desc["configs"]}
    assert got == {"log.retention.ms": ("7200000", "DYNAMIC_DEFAULT_BROKER_CONFIG"),
                   "log.cleanup.policy": ("delete,compact", "DYNAMIC_DEFAULT_BROKER_CONFIG")}
    cli(b, "configs", "alter", "--entity-type", "brokers", "--entity-name", "1",
        "--add-config", "message.max.bytes=2000000")
    every = json.loads(cli(b, "configs", "describe", "--entity-type", "brokers", "--entity-name", "1", "--all",
                           "--output", "json").stdout)
    by = {c["name"]: c for c in every["configs"]}
    assert by["message.max.bytes"]["source"] == "DYNAMIC_BROKER_CONFIG"
    assert by["advertised.listeners"]["read_only"] is True
    cli(b, "configs", "alter", "--entity-type", "brokers", "--entity-default", "--delete-config",
        "log.retention.ms,log.cleanup.policy")
    desc = json.loads(cli(b, "configs", "describe", "--entity-type", "brokers", "--entity-default",
                          "--output", "json").stdout)
    assert desc["configs"] == []

    # Clear errors, non-zero exits.
    err = cli(b, "configs", "alter", "--entity-type", "topics", "--entity-name", topic,
              "--add-config", "no.such=1", check=False).stderr
    assert "INVALID_CONFIG" in err and "no.such" in err
    err = cli(b, "configs", "alter", "--entity-type", "brokers", "--entity-name", "1",
              "--add-config", "num.partitions=3", check=False).stderr
    assert "Cannot update these configs dynamically" in err
    err = cli(b, "topics", "alter", "missing-topic", "--config", "retention.ms=1", check=False).stderr
    assert "does not exist" in err
    err = cli(b, "configs", "describe", "--entity-type", "brokers", check=False).stderr
    assert "--entity-default" in err
    err = cli(b, "configs", "alter", "--entity-type", "topics", "--entity-name", topic, check=False).stderr
    assert "nothing to change" in err
