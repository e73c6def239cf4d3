"""Client quotas (DescribeClientQuotas / AlterClientQuotas) and their enforcement: entities and
their precedence, Kafka's errors for bad input, durability across a restart, the CLI, and real
clients held to their byte rates by the throttle times the broker answers with."""

import json
import threading
import time
import urllib.request

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from kafka import KafkaAdminClient
from kafka.errors import NodeNotReadyError
from kafka.protocol.admin import DescribeClientQuotasRequest
from kafka.protocol.api import Request, Response
from kafka.protocol.metadata import MetadataRequest
from kafka.protocol.types import Array, Boolean, Float64, Int8, Int16, Int32, Schema, String

import kutil
from cairn_harness import HttpBroker
from test_configs_alter import cli

UNSUPPORTED_VERSION = 35
INVALID_REQUEST = 42


# kafka-python has DescribeClientQuotas but no AlterClientQuotas: its v0 schema, written with
# kafka-python's own protocol types.
class AlterClientQuotasResponse_v0(Response):
    API_KEY = 49
    API_VERSION = 0
    SCHEMA = Schema(
        ("throttle_time_ms", Int32),
        ("entries", Array(
            ("error_code", Int16),
            ("error_message", String("utf-8")),
            ("entity", Array(("entity_type", String("utf-8")), ("entity_name", String("utf-8")))))),
    )


class AlterClientQuotasRequest_v0(Request):
    API_KEY = 49
    API_VERSION = 0
    RESPONSE_TYPE = AlterClientQuotasResponse_v0
    SCHEMA = Schema(
        ("entries", Array(
            ("entity", Array(("entity_type", String("utf-8")), ("entity_name", String("utf-8")))),
            ("ops", Array(("key", String("utf-8")), ("value", Float64), ("remove", Boolean))))),
        ("validate_only", Boolean),
    )


def call(admin, request):
    fut = admin._send_request_to_node(admin._client.least_loaded_node(), request)
    admin._wait_for_futures([fut])
    return fut.value


def alter(admin, entries, validate_only=False):
    """entries: [(entity dict, {key: value or None})] → [(error_code, message)]."""
    wire = [
        ([(t, n) for t, n in entity.items()],
         [(k, 0.0 if v is None else float(v), v is None) for k, v in ops.items()])
        for entity, ops in entries
    ]
    resp = call(admin, AlterClientQuotasRequest_v0(entries=wire, validate_only=validate_only))
    return [(e[0], e[1]) for e in resp.entries]


def describe(admin, components, strict=False):
    """components: [(entity_type, match_type, match)] → (error_code, message, {entity: values})."""
    resp = call(admin, DescribeClientQuotasRequest[0](components=components, strict=strict))
    found = {}
    for entity, values in resp.entries or []:
        key = tuple(sorted((t, n) for t, n in entity))
        found[key] = {k: v for k, v in values}
    return resp.error_code, resp.error_message, found


def ent(**parts):
    return {k.replace("_", "-"): v for k, v in parts.items()}


@pytest.fixture
def admin(broker):
    a = KafkaAdminClient(bootstrap_servers=broker.bootstrap, request_timeout_ms=20000)
    yield a
    a.close()


def test_quotas_are_described_by_filter_and_survive_a_restart(broker_factory):
    b = broker_factory()
    a = KafkaAdminClient(bootstrap_servers=b.bootstrap)
    results = alter(a, [
        (ent(user="alice"), {"producer_byte_rate": 1024, "consumer_byte_rate": 2048}),
        (ent(user="alice", client_id="app"), {"request_percentage": 12.5}),
        (ent(user=None), {"producer_byte_rate": 4096}),
        (ent(client_id=None), {"consumer_byte_rate": 8192}),
        (ent(ip="10.1.2.3"), {"connection_creation_rate": 5}),
    ])
    assert results == [(0, None)] * 5

    def check(a):
        code, _, everything = describe(a, [])
        assert code == 0 and len(everything) == 5
        assert everything[(("user", "alice"),)] == {"producer_byte_rate": 1024.0, "consumer_byte_rate": 2048.0}
        # Exact, without strict: every entity naming alice; with strict, alice alone.
        _, _, found = describe(a, [("user", 0, "alice")])
        assert set(found) == {(("user", "alice"),), (("client-id", "app"), ("user", "alice"))}
        _, _, found = describe(a, [("user", 0, "alice")], strict=True)
        assert set(found) == {(("user", "alice"),)}
        # Default, and any entity of a type.
        _, _, found = describe(a, [("user", 1, None)])
        assert found == {(("user", None),): {"producer_byte_rate": 4096.0}}
        _, _, found = describe(a, [("client-id", 2, None)])
        assert set(found) == {(("client-id", None),), (("client-id", "app"), ("user", "alice"))}
        _, _, found = describe(a, [("ip", 2, None)])
        assert found == {(("ip", "10.1.2.3"),): {"connection_creation_rate": 5.0}}

    check(a)
    a.close()
    b.restart()
    a = KafkaAdminClient(bootstrap_servers=b.bootstrap)
    check(a)
    # Removing the last key removes the entity; validate_only changes nothing.
    assert alter(a, [(ent(ip="10.1.2.3"), {"connection_creation_rate": None})]) == [(0, None)]
    assert alter(a, [(ent(user=None), {"producer_byte_rate": None})], validate_only=True) == [(0, None)]
    _, _, everything = describe(a, [])
    assert len(everything) == 4 and (("user", None),) in everything
    a.close()


def test_bad_quota_requests_get_kafkas_errors(admin):
    bad = [
        (ent(group="g"), {"producer_byte_rate": 1}, "Unhandled client quota entity type: group"),
        (ent(user=""), {"producer_byte_rate": 1}, "Empty user not supported"),
        (ent(user="u1"), {"no_such_quota": 1}, "Invalid configuration key no_such_quota"),
        (ent(user="u2"), {"producer_byte_rate": -5}, "Quota producer_byte_rate must be greater than 0"),
        (ent(user="u3"), {"producer_byte_rate": 10.5}, "producer_byte_rate cannot be a fractional value."),
        (ent(user="u4"), {"connection_creation_rate": 1}, "Invalid configuration key connection_creation_rate"),
        (ent(user="u1"), {"producer_byte_rate": 1}, "Ignoring duplicate entity user=u1"),
        (ent(ip="not-an-address"), {"connection_creation_rate": 1}, "is not a valid IP"),
        (ent(ip="10.0.0.1", user="u"), {"connection_creation_rate": 1}, "IP entity should not be combined"),
        ({}, {"producer_byte_rate": 1}, "Invalid empty client quota entity"),
    ]
    results = alter(admin, [(e, ops) for e, ops, _ in bad])
    for (code, msg), (_, _, want) in zip(results, bad):
        assert code == INVALID_REQUEST and want in msg, (code, msg, want)
    # A refused entry does not stop the good one beside it.
    results = alter(admin, [(ent(user="u"), {"nope": 1}), (ent(user="v"), {"producer_byte_rate": 100})])
    assert results[0][0] == INVALID_REQUEST and results[1] == (0, None)
    _, _, everything = describe(admin, [])
    assert everything == {(("user", "v"),): {"producer_byte_rate": 100.0}}

    code, msg, _ = describe(admin, [("group", 2, None)])
    assert code == UNSUPPORTED_VERSION and "group" in msg
    for components, want in [
        ([("user", 0, None)], "MATCH_TYPE_EXACT"),
        ([("user", 1, "x")], "MATCH_TYPE_DEFAULT"),
        ([("user", 2, "x")], "MATCH_TYPE_SPECIFIED"),
        ([("user", 9, None)], "Unknown match type 9"),
        ([("user", 2, None), ("user", 1, None)], "cannot appear more than once"),
        ([("ip", 2, None), ("user", 2, None)], "IP filter component"),
        ([("", 2, None)], "Invalid empty entity type."),
    ]:
        code, msg, _ = describe(admin, components)
        assert code == INVALID_REQUEST and want in msg, (components, code, msg)


def test_cli_alters_and_describes_quotas_as_kafka_configs_does(broker, admin):
    out = cli(broker, "configs", "alter", "--entity-type", "users", "--entity-name", "alice",
              "--add-config", "producer_byte_rate=1024,consumer_byte_rate=2048").stdout
    assert "Completed updating quotas for user-principal 'alice'." in out
    cli(broker, "configs", "alter", "--user", "alice", "--client-defaults",
        "--add-config", "request_percentage=50")
    cli(broker, "configs", "alter", "--client", "app", "--add-config", "producer_byte_rate=10")
    out = cli(broker, "configs", "describe", "--entity-type", "users", "--entity-name", "alice").stdout
    assert out == "Quota configs for user-principal 'alice' are consumer_byte_rate=2048.0, producer_byte_rate=1024.0\n"
    out = cli(broker, "configs", "describe", "--user", "alice", "--client-defaults").stdout
    assert "user-principal 'alice', client-id '<default>' are request_percentage=50.0" in out
    listed = json.loads(cli(broker, "configs", "describe", "--entity-type", "clients", "--output", "json").stdout)
    assert listed == [{"entity": {"client-id": "app"}, "quotas": {"producer_byte_rate": 10.0}}]

    # Dry run, delete, and the broker's own words for what it refuses.
    out = cli(broker, "configs", "alter", "--client", "app", "--delete-config", "producer_byte_rate",
              "--dry-run").stdout
    assert "Validated" in out
    assert describe(admin, [("client-id", 0, "app")], strict=True)[2]
    cli(broker, "configs", "alter", "--client", "app", "--delete-config", "producer_byte_rate")
    assert describe(admin, [("client-id", 0, "app")], strict=True)[2] == {}
    err = cli(broker, "configs", "alter", "--user", "bob", "--add-config", "producer_byte_rate=1.5",
              check=False).stderr
    assert "cannot be a fractional value" in err
    err = cli(broker, "configs", "alter", "--entity-type", "users", "--add-config", "producer_byte_rate=1",
              check=False).stderr
    assert "--entity-name or --entity-default" in err


# --------------------------------------------------------------------------
# enforcement
# --------------------------------------------------------------------------
def produce_flat_out(conf, topic, seconds, value_size=1000):
    """Produces as fast as the client is let for `seconds`; (send time, delivered bytes) per
    delivery, and the throttle times librdkafka reported."""
    delivered = []
    throttles = []
    lock = threading.Lock()

    def on_delivery(err, msg):
        assert err is None, err
        with lock:
            delivered.append((time.monotonic(), len(msg.value())))

    def on_throttle(ev):
        throttles.append(ev.throttle_time)

    p = Producer({
        **conf, "linger.ms": 5, "batch.size": 16384,
        "throttle_cb": on_throttle, "queue.buffering.max.kbytes": 512,
        # The broker holds each throttled connection's next request back: a deep pipeline
        # would queue behind those waits past the request timeout.
        "max.in.flight.requests.per.connection": 5,
    })
    value = b"x" * value_size
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        try:
            p.produce(topic, value, on_delivery=on_delivery)
        except BufferError:
            p.poll(0.05)
        p.poll(0)
    p.flush(30)
    return delivered, throttles


def rate_between(events, start, end):
    return sum(n for t, n in events if start <= t < end) / (end - start)


def metric(broker, name, labels):
    text = urllib.request.urlopen(broker.url("/metrics"), timeout=5).read().decode()
    for line in text.splitlines():
        if line.startswith(name + "{") and labels in line:
            return float(line.rsplit(" ", 1)[1])
    return 0.0


# Rates sampled over 2 windows of 1 s rather than Kafka's default 11: the same rules, but the
# allowance a fresh client may burst (all windows but one) is one second's worth, so the
# measured rate settles within the test's time.
WINDOWS = {"quota.window.num": 2, "quota.window.size.seconds": 1}


def test_a_producer_is_held_to_its_byte_rate(broker_factory):
    b = broker_factory(WINDOWS, broker_class=HttpBroker)
    topic = kutil.create_topic(b, kutil.unique_topic(), partitions=1)
    quota = 200_000
    a = KafkaAdminClient(bootstrap_servers=b.bootstrap)
    assert alter(a, [(ent(client_id="throttled"), {"producer_byte_rate": quota})]) == [(0, None)]
    a.close()
    started = time.monotonic()
    delivered, throttles = produce_flat_out(kutil.base_conf(b, **{"client.id": "throttled"}), topic, 16)
    assert throttles and max(throttles) > 0, "librdkafka saw no throttle time"
    rate = rate_between(delivered, started + 2, started + 16)
    print(f"producer: {rate:.0f} B/s against a quota of {quota}")
    assert abs(rate - quota) / quota < 0.10, rate
    assert metric(b, "cairn_client_quota_throttles_total", 'quota="produce"') > 0

    # Another client id is not held back: its rate is far above the quota.
    started = time.monotonic()
    delivered, throttles = produce_flat_out(kutil.base_conf(b, **{"client.id": "free"}), topic, 3)
    assert rate_between(delivered, started, started + 3) > 3 * quota
    assert not throttles


def test_a_consumer_is_held_to_its_byte_rate(broker_factory):
    b = broker_factory(WINDOWS)
    topic = kutil.create_topic(b, kutil.unique_topic(), partitions=1)
    # Batches well under what the quota allows per window: a fetch answers at least one whole
    # batch, and one larger than the allowance would be throttled (and answered empty) each time.
    p = kutil.producer(b, **{"linger.ms": 20, "batch.size": 16384})
    kutil.produce_all(p, topic, [(None, b"y" * 1000, 0, None)] * 6000)
    quota = 300_000
    a = KafkaAdminClient(bootstrap_servers=b.bootstrap)
    assert alter(a, [(ent(client_id="slow-reader"), {"consumer_byte_rate": quota})]) == [(0, None)]
    a.close()
    c = Consumer(kutil.base_conf(b, **{
        "client.id": "slow-reader", "group.id": "q-" + topic, "auto.offset.reset": "earliest",
        "enable.auto.commit": False,
    }))
    c.assign([TopicPartition(topic, 0, 0)])
    got = []
    started = time.monotonic()
    while time.monotonic() - started < 12:
        for m in c.consume(500, timeout=0.2):
            assert m.error() is None, m.error()
            got.append((time.monotonic(), len(m.value())))
    c.close()
    rate = rate_between(got, started + 2, started + 12)
    print(f"consumer: {rate:.0f} B/s against a quota of {quota}")
    # Never above the quota. Below it by as much as a third: an answer that would pass the quota
    # is thrown away and the consumer waits (Kafka's rule), and answers are counted whole
    # (framing, batch headers) where only values are counted here.
    assert 0.6 * quota < rate < 1.05 * quota, rate


def test_request_percentage_throttles_a_busy_client(broker_factory):
    b = broker_factory(WINDOWS)
    a = KafkaAdminClient(bootstrap_servers=b.bootstrap, client_id="busy")
    # A tiny share of a handler's time: a burst of metadata requests passes it.
    assert alter(a, [(ent(client_id="busy"), {"request_percentage": 0.01})]) == [(0, None)]
    throttle = 0
    held_back = False
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and not (throttle or held_back):
        try:
            throttle = call(a, MetadataRequest[5](topics=None, allow_auto_topic_creation=False)).throttle_time_ms
        except NodeNotReadyError:
            # kafka-python saw a throttle time (on one of its own requests) and now holds its
            # requests to that broker back, as KIP-219 asks of clients.
            held_back = True
    # A request quota's wait is at most one window.
    assert held_back or 0 < throttle <= 1000, throttle
    # Another client id is not throttled.
    other = KafkaAdminClient(bootstrap_servers=b.bootstrap, client_id="calm")
    resp = call(other, MetadataRequest[5](topics=None, allow_auto_topic_creation=False))
    assert resp.throttle_time_ms == 0
    a.close()
    other.close()


def test_a_user_quota_follows_the_authenticated_principal(broker_factory, certs):
    from test_security import sasl_conf, start_sasl

    b = start_sasl(broker_factory, certs, **{k: str(v) for k, v in WINDOWS.items()})
    plain = b.bootstrap_for("PLAINTEXT")
    topic = kutil.unique_topic()
    a = KafkaAdminClient(bootstrap_servers=plain)
    a.create_topics([__import__("kafka.admin", fromlist=["NewTopic"]).NewTopic(topic, 1, 1)])
    # alice is throttled whatever her client id; ANONYMOUS (the plaintext listener) is not.
    assert alter(a, [(ent(user="alice"), {"producer_byte_rate": 100_000})]) == [(0, None)]
    a.close()

    started = time.monotonic()
    conf = sasl_conf(b, certs, "alice", "alice-secret", **{"client.id": "any"})
    delivered, throttles = produce_flat_out(conf, topic, 6)
    assert throttles
    rate = rate_between(delivered, started + 2, started + 6)
    # Held near the quota (the precise rate is the tests above' business).
    assert 0.75 * 100_000 < rate < 1.25 * 100_000, rate
    started = time.monotonic()
    delivered, throttles = produce_flat_out({"bootstrap.servers": plain, "client.id": "any"}, topic, 2)
    assert not throttles and rate_between(delivered, started, started + 2) > 300_000


def test_connection_creation_rate_holds_and_closes_extra_connections(broker_factory):
    b = broker_factory(WINDOWS, broker_class=HttpBroker)
    a = KafkaAdminClient(bootstrap_servers=b.bootstrap)
    # One connection a second from 127.0.0.1 (a 1 s window: the allowance is one connection).
    assert alter(a, [(ent(ip="127.0.0.1"), {"connection_creation_rate": 1})]) == [(0, None)]
    a.close()
    time.sleep(2.5)  # the admin client's own connections leave the window

    import socket
    import struct

    def api_versions_answered():
        s = socket.create_connection((b.host, b.port), timeout=5)
        try:
            s.sendall(struct.pack(">ihhi", 4 + 2 + 2 + 2, 18, 0, 1) + struct.pack(">h", -1))
            s.settimeout(5)
            return len(s.recv(4)) == 4
        except (ConnectionError, socket.timeout):
            return False
        finally:
            s.close()

    answered = [api_versions_answered() for _ in range(6)]
    # The first is served; the ones right after it are held (up to a window) and closed unserved.
    assert answered[0] and answered.count(False) >= 3, answered
    assert metric(b, "cairn_client_quota_throttles_total", 'quota="connection"') >= 3
    time.sleep(2.5)
    assert api_versions_answered()
