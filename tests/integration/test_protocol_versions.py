"""Version sweep: every version of the foundation APIs that the broker advertises
(and kafka-python can encode) gets a well-formed request; the response must
decode exactly (no missing or extra bytes) and carry the expected values.

Different clients use different versions (kafkajs uses old ones such as
ListOffsets v3, librdkafka new ones), so each advertised version must work.
"""

import io
import struct

import pytest
from kafka.protocol.admin import (
    CreatePartitionsRequest,
    CreateTopicsRequest,
    DeleteTopicsRequest,
    DescribeConfigsRequest,
)
from kafka.protocol.api_versions import ApiVersionsRequest
from kafka.protocol.fetch import FetchRequest
from kafka.protocol.list_offsets import ListOffsetsRequest
from kafka.protocol.metadata import MetadataRequest
from kafka.protocol.produce import ProduceRequest
from kafka.protocol.types import Array, Schema

import kproto
import kutil


def fill(schema, values):
    """Build the positional tuple for `schema` from a name->value dict (recursively)."""
    out = []
    for name, field in zip(schema.names, schema.fields):
        if name == "_tagged_fields":
            out.append({})
            continue
        assert name in values, f"no value for field {name!r}"
        v = values[name]
        if isinstance(field, Array) and isinstance(field.array_of, Schema) and v is not None:
            v = [fill(field.array_of, item) for item in v]
        elif isinstance(field, Schema):
            v = fill(field, v)
        out.append(v)
    return tuple(out)


def make_request(cls, values):
    return cls(*fill(cls.SCHEMA, values))


class Session:
    def __init__(self, broker):
        self.conn = kproto.Conn(broker.host, broker.port)
        self.cid = 1000

    def call(self, req):
        """Send `req`; return the decoded response or raise AssertionError."""
        self.cid += 1
        header = req.build_header(self.cid, "sweep")
        payload = header.encode() + req.encode()
        self.conn.send(struct.pack(">i", len(payload)) + payload)
        frame = self.conn.read_frame()
        assert frame is not None, "broker closed the connection instead of answering"
        buf = io.BytesIO(frame)
        resp_cls = req.RESPONSE_TYPE
        if resp_cls.API_KEY == kproto.API_API_VERSIONS:
            (cid,) = struct.unpack(">i", buf.read(4))  # ApiVersions always answers with header v0
        else:
            cid = resp_cls.parse_header(buf).correlation_id
        assert cid == self.cid, f"correlation id {cid}, expected {self.cid}"
        resp = resp_cls.decode(buf)
        left = len(frame) - buf.tell()
        assert left == 0, f"{left} undecoded bytes at the end of the response"
        return resp

    def close(self):
        self.conn.close()


def advertised(broker):
    c = kproto.Conn(broker.host, broker.port)
    try:
        c.send(kproto.api_versions_request(1, 0))
        _cid, err, apis = kproto.parse_api_versions_v0(c.read_frame())
        assert err == 0
        return apis
    finally:
        c.close()


def versions_to_test(apis, request_family):
    key = request_family[0].API_KEY
    assert key in apis, f"api {key} not advertised"
    lo, hi = apis[key]
    return [v for v in range(lo, hi + 1) if v < len(request_family)]


def sweep(broker, family, check, min_version=0):
    """Run check(session, version, request_class) for every testable version; report all failures."""
    apis = advertised(broker)
    versions = [v for v in versions_to_test(apis, family) if v >= min_version]
    assert versions, f"no testable versions of api {family[0].API_KEY} (broker: {apis.get(family[0].API_KEY)})"
    failures = []
    for v in versions:
        s = Session(broker)
        try:
            check(s, v, family[v])
        except Exception as e:  # collect every broken version, not just the first
            failures.append(f"v{v}: {type(e).__name__}: {e}")
        finally:
            s.close()
    assert not failures, f"{family[0].__name__[:-3]} versions failing:\n  " + "\n  ".join(failures)


@pytest.fixture
def seeded(broker):
    topic = kutil.create_topic(broker, kutil.unique_topic("sweep"), partitions=2)
    p = kutil.producer(broker)
    log = kutil.produce_all(p, topic, [(b"k", f"v{i}".encode(), 0, 1000 * (i + 1)) for i in range(5)])
    kutil.assert_no_delivery_errors(log)
    return broker, topic


def test_api_versions_all_versions(seeded):
    b, _topic = seeded

    def check(s, v, cls):
        values = {"client_software_name": "sweep", "client_software_version": "1.0"}
        resp = s.call(make_request(cls, values))
        assert resp.error_code == 0
        keys = {entry[0] for entry in resp.api_versions}
        assert {0, 1, 2, 3, 18} <= keys

    sweep(b, ApiVersionsRequest, check)


def test_metadata_all_versions(seeded):
    b, topic = seeded

    def check(s, v, cls):
        values = {
            "topics": [topic],
            "allow_auto_topic_creation": False,
            "include_cluster_authorized_operations": False,
            "include_topic_authorized_operations": False,
        }
        resp = s.call(make_request(cls, values))
        obj = resp.to_object()
        assert len(obj["brokers"]) == 1
        assert obj["brokers"][0]["port"] == b.port
        (t,) = [t for t in obj["topics"] if t["topic"] == topic]
        assert t["error_code"] == 0
        assert sorted(p["partition"] for p in t["partitions"]) == [0, 1]
        if v >= 1:
            assert obj["controller_id"] == obj["brokers"][0]["node_id"]

    sweep(b, MetadataRequest, check)


def test_list_offsets_all_versions(seeded):
    b, topic = seeded

    def check(s, v, cls):
        for ts, want_offset in ((-1, 5), (-2, 0), (2500, 2)):
            values = {
                "replica_id": -1,
                "isolation_level": 0,
                "topics": [
                    {
                        "topic": topic,
                        "partitions": [
                            {"partition": 0, "timestamp": ts, "max_offsets": 1, "current_leader_epoch": -1}
                        ],
                    }
                ],
            }
            if v == 0 and ts == 2500:
                continue  # v0 answers with segment-based offsets, not timestamp lookups
            obj = s.call(make_request(cls, values)).to_object()
            (t,) = obj["topics"]
            (p,) = t["partitions"]
            assert p["error_code"] == 0, f"timestamp {ts}: error {p['error_code']}"
            got = p["offsets"][0] if v == 0 else p["offset"]
            assert got == want_offset, f"timestamp {ts}: offset {got}, want {want_offset}"
            if v >= 1 and ts == 2500:
                assert p["timestamp"] == 3000

    sweep(b, ListOffsetsRequest, check)


def test_produce_all_versions(seeded):
    b, _topic = seeded
    topic = kutil.create_topic(b, kutil.unique_topic("sweep-produce"), partitions=1)
    expected = {"next": 0}

    def check(s, v, cls):
        batch = kproto.record_batch([(b"k", f"produce-v{v}".encode())])
        values = {
            "transactional_id": None,
            "required_acks": 1,
            "timeout": 10000,
            "topics": [{"topic": topic, "partitions": [{"partition": 0, "records": batch}]}],
        }
        obj = s.call(make_request(cls, values)).to_object()
        (t,) = obj["topics"]
        (p,) = t["partitions"]
        assert p["error_code"] == 0, f"error {p['error_code']}"
        assert p["offset"] == expected["next"], f"base offset {p['offset']}, want {expected['next']}"
        expected["next"] += 1

    # Like Kafka 4 (KAFKA-18659), Produce v0-v2 may be advertised for librdkafka's
    # sake without being served: only v3+ (record batches, magic 2) is swept.
    sweep(b, ProduceRequest, check, min_version=3)
    # Whatever version wrote them, all records read back with their values, in order.
    msgs = kutil.read_partition(b, topic, 0)
    assert [m.offset() for m in msgs] == list(range(expected["next"]))
    assert all(m.value().startswith(b"produce-v") for m in msgs)


def test_produce_v0_to_v2_are_answered_unsupported_version(seeded):
    """Kafka 4 keeps Produce v0-v2 parsable so that it can answer them with UNSUPPORTED_VERSION
    for every partition (KAFKA-18659) instead of dropping the connection; so does Cairn. Nothing
    is appended."""
    b, _topic = seeded
    topic = kutil.create_topic(b, kutil.unique_topic("old-produce"), partitions=2)

    def check(s, v, cls):
        values = {
            "required_acks": 1,
            "timeout": 10000,
            "topics": [{"topic": topic, "partitions": [
                {"partition": p, "records": b"not a message set"} for p in (0, 1)]}],
        }
        obj = s.call(make_request(cls, values)).to_object()
        (t,) = obj["topics"]
        assert t["topic"] == topic
        assert [(p["partition"], p["error_code"]) for p in t["partitions"]] == [(0, 35), (1, 35)]

    sweep(b, ProduceRequest[:3], check)
    assert kutil.watermarks(b, topic, 0) == (0, 0)

    # kafka-python told to speak to a 0.10 broker produces with v2 and hears why it failed.
    from kafka import KafkaProducer
    from kafka.errors import UnsupportedVersionError

    p = KafkaProducer(bootstrap_servers=b.bootstrap, api_version=(0, 10, 1), retries=0)
    with pytest.raises(UnsupportedVersionError):
        p.send(topic, b"old", partition=0).get(timeout=20)
    p.close()


def test_fetch_all_versions(seeded):
    b, topic = seeded

    def check(s, v, cls):
        values = {
            "replica_id": -1,
            "max_wait_time": 100,
            "min_bytes": 1,
            "max_bytes": 1 << 20,
            "isolation_level": 0,
            "session_id": 0,
            "session_epoch": -1,
            "topics": [
                {
                    "topic": topic,
                    "partitions": [
                        {
                            "partition": 0,
                            "offset": 2,
                            "fetch_offset": 2,
                            "current_leader_epoch": -1,
                            "log_start_offset": -1,
                            "max_bytes": 1 << 20,
                        }
                    ],
                }
            ],
            "forgotten_topics_data": [],
            "rack_id": "",
        }
        resp = s.call(make_request(cls, values))
        (t,) = resp.topics
        assert t[0] == topic
        (p,) = t[1]
        partition, error_code, high_watermark = p[0], p[1], p[2]
        assert (partition, error_code, high_watermark) == (0, 0, 5)
        records = p[-1]
        got = [(o, v_) for o, _k, v_ in kproto.parse_record_batches(records) if o >= 2]
        assert got == [(2, b"v2"), (3, b"v3"), (4, b"v4")], got

    # Fetch v4+ carries magic-2 batches; lower versions are for message sets v0/v1.
    sweep(b, FetchRequest, check, min_version=4)


def test_create_delete_topics_all_versions(seeded):
    b, _topic = seeded

    def check_create(s, v, cls):
        name = kutil.unique_topic(f"sweep-create-v{v}")
        values = {
            "create_topic_requests": [
                {
                    "topic": name,
                    "num_partitions": 2,
                    "replication_factor": 1,
                    "replica_assignment": [],
                    "configs": [{"config_key": "retention.ms", "config_value": "60000"}],
                }
            ],
            "timeout": 10000,
            "validate_only": False,
        }
        obj = s.call(make_request(cls, values)).to_object()
        (t,) = obj["topic_errors"]
        assert (t["topic"], t["error_code"]) == (name, 0)
        kutil.wait_for_topic(b, name, 2, timeout=10)

    sweep(b, CreateTopicsRequest, check_create)

    def check_delete(s, v, cls):
        name = kutil.create_topic(b, kutil.unique_topic(f"sweep-delete-v{v}"), partitions=1)
        obj = s.call(make_request(cls, {"topics": [name], "timeout": 10000})).to_object()
        (t,) = obj["topic_error_codes"]
        assert (t["topic"], t["error_code"]) == (name, 0)

    sweep(b, DeleteTopicsRequest, check_delete)


def test_describe_configs_all_versions(seeded):
    b, topic = seeded

    def check(s, v, cls):
        values = {
            "resources": [{"resource_type": 2, "resource_name": topic, "config_names": None}],
            "include_synonyms": False,
        }
        obj = s.call(make_request(cls, values)).to_object()
        (r,) = obj["resources"]
        assert r["error_code"] == 0
        names = {e["config_names"] for e in r["config_entries"]}
        assert {"cleanup.policy", "retention.ms"} <= names

    sweep(b, DescribeConfigsRequest, check)


def test_create_partitions_all_versions(seeded):
    b, _topic = seeded

    def check(s, v, cls):
        name = kutil.create_topic(b, kutil.unique_topic(f"sweep-cp-v{v}"), partitions=1)
        values = {
            "topic_partitions": [{"topic": name, "new_partitions": {"count": 3, "assignment": None}}],
            "timeout": 10000,
            "validate_only": False,
        }
        obj = s.call(make_request(cls, values)).to_object()
        (r,) = obj["topic_errors"]
        assert (r["topic"], r["error_code"]) == (name, 0)
        kutil.wait_for_topic(b, name, 3, timeout=10)

    sweep(b, CreatePartitionsRequest, check)
