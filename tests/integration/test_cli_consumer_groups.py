"""`cairn groups list/describe` on groups of the consumer protocol (KIP-848), driven by
confluent-kafka with group.protocol=consumer, beside a classic group on the same topic.

What an operator reads (the tables) and what a script reads (--output json): the group type,
the group and member epochs, current against target assignments and nothing left reconciling
once the group is stable; the offsets view works as for classic groups.
"""

import json
import os
import subprocess
import time
import uuid

import pytest
from confluent_kafka import Consumer, TopicPartition

import kutil
from cairn_harness import cairn_bin

OPTIONS = {
    "num.partitions": 4,
    "group.initial.rebalance.delay.ms": 0,
    # A short heartbeat so that the group settles in a second, not in several.
    "group.consumer.heartbeat.interval.ms": 500,
    "group.consumer.min.heartbeat.interval.ms": 500,
}


@pytest.fixture
def b(broker_factory):
    return broker_factory(dict(OPTIONS))


def unique_group(prefix="g"):
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def cli(broker, *args, check=True, timeout=60):
    argv = [str(cairn_bin()), *args, "--bootstrap-server", broker.bootstrap]
    env = {**os.environ, "CAIRN_LOG": "warn", "NO_COLOR": "1"}
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, input="", env=env)
    if check:
        assert proc.returncode == 0, (
            f"{' '.join(args)}: exit {proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
        )
    return proc


def cli_json(broker, *args):
    return json.loads(cli(broker, *args, "--output", "json").stdout)


def parse_table(text, first_header):
    """Rows of the table whose header line starts with `first_header`, as dicts."""
    lines = text.splitlines()
    start = next(i for i, l in enumerate(lines) if l.startswith(first_header))
    header = lines[start]
    starts = [i for i, ch in enumerate(header) if ch != " " and (i == 0 or header[i - 2 : i] == "  ")]
    names = [header[s : (starts[k + 1] if k + 1 < len(starts) else None)].strip() for k, s in enumerate(starts)]
    rows = []
    for line in lines[start + 1 :]:
        if not line.strip():
            break
        cells = [line[s : (starts[k + 1] if k + 1 < len(starts) else None)].strip() for k, s in enumerate(starts)]
        rows.append(dict(zip(names, cells)))
    return rows


def wait_for(what, predicate, timeout=60, every=0.2):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(every)
    raise AssertionError(f"timed out waiting for {what} (last: {last!r})")


def consumer(b, group, **extra):
    conf = kutil.base_conf(
        b,
        **{
            "group.id": group,
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
            "fetch.wait.max.ms": 100,
            "enable.partition.eof": False,
        },
    )
    conf.update(extra)
    return Consumer(conf)


def new_protocol_consumer(b, group):
    # Session and heartbeat settings are the broker's in this protocol.
    return consumer(b, group, **{"group.protocol": "consumer"})


def classic_consumer(b, group):
    return consumer(b, group, **{"session.timeout.ms": 6000, "heartbeat.interval.ms": 500})


def poll_until(consumers, done, timeout=60):
    """Polls every consumer (they heartbeat from poll) until done() holds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for c in consumers:
            m = c.poll(0.05)
            assert m is None or m.error() is None, m.error()
        if done():
            return
    raise AssertionError("timed out")


def stable_view(b, group, members, partitions):
    """The JSON members view once every member is at the group epoch and owns its target."""
    proc = cli(b, "groups", "describe", group, "--members", "--output", "json", check=False)
    if proc.returncode != 0:
        # Not created yet: the members' first heartbeats are on their way.
        assert "does not exist" in proc.stderr, proc.stderr
        return None
    d = json.loads(proc.stdout)
    ms = d["members"]
    if d["state"] != "Stable" or len(ms) != members:
        return None
    if any(m["member_epoch"] != d["group_epoch"] or m["assigning"] or m["revoking"] for m in ms):
        return None
    owned = sorted(p for m in ms for a in m["assignment"] for p in a["partitions"])
    return d if owned == list(range(partitions)) else None


def test_list_and_describe_a_consumer_protocol_group(b):
    topic = kutil.create_topic(b, kutil.unique_topic("kip848"), 4)
    p = kutil.producer(b)
    kutil.assert_no_delivery_errors(
        kutil.produce_all(p, topic, [(None, f"v{i}".encode(), i % 4, None) for i in range(40)])
    )
    group = unique_group("kip848")
    classic = unique_group("classic")

    old = classic_consumer(b, classic)
    members = [new_protocol_consumer(b, group), new_protocol_consumer(b, group)]
    try:
        old.subscribe([topic])
        for c in members:
            c.subscribe([topic])
        state = {}
        poll_until(members + [old], lambda: state.update(v=stable_view(b, group, 2, 4)) or state["v"])
        view = state["v"]
        ids = {c.memberid() for c in members}
        assert {m["consumer_id"] for m in view["members"]} == ids
        assert view["group_type"] == "consumer" and view["protocol_type"] == "consumer"
        assert view["assignor"] == "uniform"
        assert view["group_epoch"] >= 1 and view["assignment_epoch"] == view["group_epoch"]
        for m in view["members"]:
            assert m["member_type"] in ("consumer", None)
            assert m["subscribed_topics"] == [topic]
            assert m["target_assignment"] == m["assignment"]
            assert m["client_id"] == "rdkafka" and m["host"].endswith("127.0.0.1")
        # The classic member must be in too before the listings are read.
        wait_for("the classic group", lambda: (old.poll(0.1), old.assignment())[1])

        # Commit from one member with its member epoch (librdkafka uses OffsetCommit v9).
        c0 = members[0]
        # The broker may call the group reconciled before the client has applied the answer
        # that says so (it does on its next poll).
        wait_for("the member's own assignment", lambda: (c0.poll(0.1), c0.assignment())[1])
        mine = c0.assignment()
        assert mine
        c0.commit(offsets=[TopicPartition(topic, tp.partition, 3) for tp in mine], asynchronous=False)

        # ---- list
        rows = {r["GROUP"]: r for r in parse_table(cli(b, "groups", "list", "--type").stdout, "GROUP")}
        assert rows[group]["TYPE"] == "consumer" and rows[classic]["TYPE"] == "classic"
        only = cli(b, "groups", "list", "--type", "consumer").stdout
        assert group in only and classic not in only
        only = cli(b, "groups", "list", "--type", "classic").stdout
        assert classic in only and group not in only
        listed = {g["group"]: g for g in cli_json(b, "groups", "list", "--type", "consumer")}
        assert set(listed) >= {group} and classic not in listed
        assert listed[group]["group_type"] == "consumer" and listed[group]["state"] == "Stable"
        rows = parse_table(cli(b, "groups", "list", "--state", "--type").stdout, "GROUP")
        assert {(r["GROUP"], r["STATE"], r["TYPE"]) for r in rows if r["GROUP"] == group} == {
            (group, "Stable", "consumer")
        }
        assert "unknown group type" in cli(b, "groups", "list", "--type", "share", check=False).stderr

        # ---- describe: offsets
        epoch = view["group_epoch"]
        out = cli(b, "groups", "describe", group).stdout
        assert (
            f"Consumer group '{group}': state Stable, assignor uniform, group epoch {epoch}, "
            f"assignment epoch {epoch}, coordinator {b.bootstrap} (1), 2 member(s)"
        ) in out, out
        rows = {int(r["PARTITION"]): r for r in parse_table(out, "GROUP") if r["TOPIC"] == topic}
        assert set(rows) == {0, 1, 2, 3}
        assert {r["CONSUMER-ID"] for r in rows.values()} == ids
        for tp in mine:
            r = rows[tp.partition]
            assert (r["CURRENT-OFFSET"], r["LOG-END-OFFSET"], r["LAG"]) == ("3", "10", "7")
            assert r["CONSUMER-ID"] == c0.memberid()

        # ---- describe: members
        out = cli(b, "groups", "describe", group, "--members", "--verbose").stdout
        rows = parse_table(out, "GROUP")
        assert {r["CONSUMER-ID"] for r in rows} == ids
        for r in rows:
            assert r["MEMBER-EPOCH"] == str(epoch) and r["TARGET-EPOCH"] == str(epoch)
            assert r["RECONCILING"] == "-"
            assert r["ASSIGNMENT"] == r["TARGET-ASSIGNMENT"] and r["ASSIGNMENT"].startswith(topic)
        assert sum(int(r["#PARTITIONS"]) for r in rows) == 4

        # ---- describe: state
        [r] = parse_table(cli(b, "groups", "describe", group, "--state").stdout, "GROUP")
        assert (r["STATE"], r["TYPE"], r["GROUP-EPOCH"], r["ASSIGNMENT-STRATEGY"]) == (
            "Stable",
            "consumer",
            str(epoch),
            "uniform",
        )

        # The classic group still describes as before, through DescribeGroups.
        d = cli_json(b, "groups", "describe", classic, "--members")
        assert d["group_type"] == "classic" and d["assignor"] == "range"
        assert "group_epoch" not in d and "member_epoch" not in d["members"][0]
    finally:
        for c in members:
            c.close()
        old.close()

    # Both members left: the group stays, empty, with its offsets.
    d = wait_for(
        "the consumer group to empty",
        lambda: (lambda d: d if d["state"] == "Empty" else None)(cli_json(b, "groups", "describe", group)),
        timeout=30,
    )
    assert d["member_count"] == 0 and d["group_type"] == "consumer"
    assert {(o["partition"], o["current_offset"]) for o in d["offsets"]} == {(tp.partition, 3) for tp in mine}
