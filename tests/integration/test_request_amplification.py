"""Small requests must not make large answers or large side effects.

Every request is held to what decoding and answering it will cost (a multiple of its size), a
request can create at most 10,000 partitions (Kafka's controller limit), and a topic asked for
many times in one Metadata request is answered once, as Kafka does.
"""

import kproto
import kutil

API_CREATE_TOPICS = 19
API_CREATE_PARTITIONS = 37
API_DESCRIBE_GROUPS = 15
POLICY_VIOLATION = 44
I32_MAX = 0x7FFFFFFF


def vm_kib(pid, field):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise AssertionError(f"no {field}")


def partition_dirs(b, topic):
    return [p for p in b.data_dir.iterdir() if p.name.startswith(topic + "-")]


def create_topics_v2(corr, topics):
    """topics: [(name, num_partitions)] -> CreateTopics v2 frame."""
    body = kproto.i32(len(topics))
    for name, parts in topics:
        body += kproto.string(name) + kproto.i32(parts) + kproto.i16(1) + kproto.i32(0) + kproto.i32(0)
    body += kproto.i32(30000) + b"\x00"
    return kproto.request(API_CREATE_TOPICS, 2, corr, body)


def parse_create_topics_v2(frame):
    r = kproto.Reader(frame)
    r.i32()  # correlation id
    r.i32()  # throttle
    return [(r.string(), r.i16(), r.string()) for _ in range(r.i32())]


def test_create_topics_asking_two_billion_partitions_is_refused(broker):
    c = kproto.Conn(broker.host, broker.port)
    c.send(create_topics_v2(3, [("boom", I32_MAX), ("small", 1)]))
    results = parse_create_topics_v2(c.closed_or_response(3))
    c.close()
    assert [(n, e) for n, e, _m in results] == [("boom", POLICY_VIOLATION), ("small", POLICY_VIOLATION)]
    assert "Excessively large number of partitions" in results[0][2]
    assert partition_dirs(broker, "boom") == [] and partition_dirs(broker, "small") == []
    # Kafka's limit is on the request's total: 10,000 partitions over several topics pass.
    c = kproto.Conn(broker.host, broker.port)
    c.send(create_topics_v2(4, [("wide-a", 5000), ("wide-b", 5001)]))
    assert [e for _n, e, _m in parse_create_topics_v2(c.closed_or_response(4))] == [POLICY_VIOLATION] * 2
    c.close()
    admin = kutil.admin(broker)
    kutil.create_topic(broker, "fine", partitions=3)
    assert "fine" in admin.list_topics(timeout=10).topics


def test_create_partitions_to_two_billion_is_refused(broker):
    kutil.create_topic(broker, "grow", partitions=1)
    body = kproto.i32(1) + kproto.string("grow") + kproto.i32(I32_MAX) + kproto.i32(-1) + kproto.i32(30000) + b"\x00"
    c = kproto.Conn(broker.host, broker.port)
    c.send(kproto.request(API_CREATE_PARTITIONS, 0, 5, body))
    r = kproto.Reader(c.closed_or_response(5))
    c.close()
    r.i32(), r.i32()
    results = [(r.string(), r.i16(), r.string()) for _ in range(r.i32())]
    assert results[0][:2] == ("grow", POLICY_VIOLATION), results
    assert len(partition_dirs(broker, "grow")) == 1


def test_metadata_repeating_one_topic_answers_it_once(broker_factory):
    b = broker_factory({"num.partitions": 1, "socket.request.max.bytes": 8 << 20})
    topic = "wide-topic-with-a-realistic-name"
    kutil.create_topic(b, topic, partitions=500)
    n = 100_000
    c = kproto.Conn(b.host, b.port, timeout=60)
    c.send(kproto.metadata_request(6, [topic] * n))
    r = kproto.Reader(c.closed_or_response(6, timeout=60))
    c.close()
    r.i32()
    for _ in range(r.i32()):
        r.i32(), r.string(), r.i32(), r.string()
    r.i32()
    assert r.i32() == 1, "the repeated topic was answered more than once"
    # 100,000 x 500 partition entries would be gigabytes; one answer is about 100 KB.
    assert vm_kib(b.proc.pid, "VmHWM") < 256 * 1024


def describe_groups_v5(corr, names):
    body = kproto.uvarint(len(names) + 1)
    for name in names:
        body += kproto.compact_string(name)
    body += b"\x00" + kproto.uvarint(0)
    return kproto.request(API_DESCRIBE_GROUPS, 5, corr, body, header_version=2)


def test_describe_groups_of_a_million_tiny_names_is_refused(broker_factory):
    """3 MB of two-character names would build ~300 bytes of answer each (about 300 MB)."""
    b = broker_factory({"socket.request.max.bytes": 8 << 20})
    c = kproto.Conn(b.host, b.port, timeout=30)
    c.send(describe_groups_v5(7, ["g1"] * 1_000_000))
    assert c.wait_closed(30), "a 3 MB DescribeGroups of tiny names was not refused"
    c.close()
    assert b.is_running()
    assert vm_kib(b.proc.pid, "VmHWM") < 256 * 1024
    assert "refused: decoding would reserve more than" in b.log_text()
    # Ordinary large requests still work: 5,000 groups with realistic names.
    names = [f"billing-consumers-{i:05d}" for i in range(5000)]
    c = kproto.Conn(b.host, b.port, timeout=30)
    c.send(describe_groups_v5(8, names))
    r = kproto.Reader(c.closed_or_response(8, timeout=30))
    c.close()
    r.i32(), r.uvarint(), r.i32()  # correlation id, header tags, throttle
    assert r.uvarint() - 1 == len(names)
