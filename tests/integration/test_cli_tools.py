"""The operator tools of the `cairn` binary (topics, groups, reset-offsets, produce, consume)
run against a live `cairn serve`, with groups made by real clients (librdkafka through
confluent-kafka, and `cairn consume --group` itself).

The checks read what an operator reads (the tables) and what a script reads (--output json),
and prove that reset-offsets --execute really moves where a real consumer resumes.
"""

import datetime
import json
import os
import pty
import signal
import socket
import subprocess
import threading
import time
import uuid

import pytest
from confluent_kafka import Consumer, KafkaError, TopicPartition

import kutil
from cairn_harness import cairn_bin

OPTIONS = {
    "num.partitions": 4,
    "auto.create.topics.enable": "true",
    "group.initial.rebalance.delay.ms": 0,
}


@pytest.fixture
def b(broker_factory):
    return broker_factory(dict(OPTIONS))


def unique_group(prefix="g"):
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


# --------------------------------------------------------------------------
# running the CLI
# --------------------------------------------------------------------------
def cli_env(extra=None):
    return {**os.environ, "CAIRN_LOG": "warn", "NO_COLOR": "1", **(extra or {})}


def cli(broker, *args, check=True, timeout=60, input=None, env=None):
    """Runs `cairn ARGS --bootstrap-server broker`; returns the CompletedProcess."""
    addr = broker if isinstance(broker, str) else broker.bootstrap
    argv = [str(cairn_bin()), *args, "--bootstrap-server", addr]
    proc = subprocess.run(
        argv,
        capture_output=True,
        text=True,
        timeout=timeout,
        input=input if input is not None else "",
        env=cli_env(env),
    )
    if check:
        assert proc.returncode == 0, (
            f"{' '.join(args)}: exit {proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
        )
    return proc


def cli_json(broker, *args, **kw):
    return json.loads(cli(broker, *args, "--output", "json", **kw).stdout)


def cli_fails(broker, *args, **kw):
    proc = cli(broker, *args, check=False, **kw)
    assert proc.returncode != 0, f"{' '.join(args)} succeeded:\n{proc.stdout}\n{proc.stderr}"
    assert "panicked" not in proc.stderr, proc.stderr
    return proc


def parse_table(text, first_header):
    """Rows of the table whose header line starts with `first_header`, as dicts.

    Columns are cut at the header's column starts (cells are left-aligned and padded)."""
    lines = text.splitlines()
    start = next(i for i, l in enumerate(lines) if l.startswith(first_header))
    header = lines[start]
    # A column starts where a word follows two spaces (headers may hold one space).
    starts = [i for i, ch in enumerate(header) if ch != " " and (i == 0 or header[i - 2 : i] == "  ")]
    names = [header[s : (starts[k + 1] if k + 1 < len(starts) else None)].strip() for k, s in enumerate(starts)]
    rows = []
    for line in lines[start + 1 :]:
        if not line.strip():
            break
        cells = [line[s : (starts[k + 1] if k + 1 < len(starts) else None)].strip() for k, s in enumerate(starts)]
        rows.append(dict(zip(names, cells)))
    return rows


def wait_for(what, predicate, timeout=30, every=0.2):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(every)
    raise AssertionError(f"timed out waiting for {what} (last: {last!r})")


def describe_json(b, group, *extra):
    return cli_json(b, "groups", "describe", group, *extra)


def wait_for_group(b, group, state, members=None, timeout=30):
    def ok():
        d = describe_json(b, group, "--state")
        return d if d["state"] == state and (members is None or d["member_count"] == members) else None

    return wait_for(f"group {group} to be {state}", ok, timeout)


# --------------------------------------------------------------------------
# real clients
# --------------------------------------------------------------------------
def group_consumer(b, group, **extra):
    conf = kutil.base_conf(
        b,
        **{
            "group.id": group,
            "session.timeout.ms": 6000,
            "heartbeat.interval.ms": 500,
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
            "fetch.wait.max.ms": 100,
            "enable.partition.eof": False,
            "topic.metadata.refresh.interval.ms": 1000,
        },
    )
    conf.update(extra)
    return Consumer(conf)


def poll_some(c, count, timeout=30):
    return kutil.poll_n(c, count, timeout)


def consume_and_commit(b, group, topic, count):
    """A librdkafka group member reads `count` records, commits and leaves."""
    c = group_consumer(b, group)
    try:
        c.subscribe([topic])
        got = poll_some(c, count)
        c.commit(asynchronous=False)
        return got
    finally:
        c.close()


def first_offsets(b, group, topic, partitions=1, count=1):
    """Where a new member of `group` resumes: the offsets of its first `count` records."""
    c = group_consumer(b, group)
    try:
        c.subscribe([topic])
        got = poll_some(c, count)
        return sorted((m.partition(), m.offset()) for m in got)
    finally:
        c.close()


def produce_n(b, topic, n, partition=0, timestamps=None):
    p = kutil.producer(b)
    records = [
        (None, f"v{i}".encode(), partition, None if timestamps is None else timestamps[i]) for i in range(n)
    ]
    log = kutil.produce_all(p, topic, records)
    kutil.assert_no_delivery_errors(log)
    return log


def committed(b, group, topic, partitions):
    c = group_consumer(b, group)
    try:
        tps = c.committed([TopicPartition(topic, p) for p in partitions], timeout=10)
        return {tp.partition: tp.offset for tp in tps}
    finally:
        c.close()


def group_with_commit(b, n=100, partitions=1):
    """A topic with n records per partition and an Empty group that has read them all."""
    topic = kutil.create_topic(b, kutil.unique_topic("cli"), partitions)
    for p in range(partitions):
        produce_n(b, topic, n, partition=p)
    group = unique_group()
    consume_and_commit(b, group, topic, n * partitions)
    wait_for_group(b, group, "Empty")
    return topic, group


# --------------------------------------------------------------------------
# topics
# --------------------------------------------------------------------------
def test_topics_create_list_describe_alter_delete(b):
    topic = kutil.unique_topic("tools")
    out = cli(b, "topics", "create", topic, "--partitions", "3", "--config", "retention.ms=3600000").stdout
    assert f"Created topic {topic} with 3 partition(s)." in out

    assert topic in cli(b, "topics", "list").stdout.split()
    listed = {t["name"]: t for t in cli_json(b, "topics", "list")}
    assert listed[topic]["partitions"] == 3 and listed[topic]["internal"] is False

    text = cli(b, "topics", "describe", topic).stdout
    first = text.splitlines()[0]
    assert first.startswith(f"Topic: {topic}\tTopicId: ")
    assert "\tPartitionCount: 3\tReplicationFactor: 1\tConfigs: retention.ms=3600000" in first
    assert f"\tTopic: {topic}\tPartition: 2\tLeader: 1\tReplicas: 1\tIsr: 1" in text

    [d] = cli_json(b, "topics", "describe", topic)
    assert d["partition_count"] == 3 and d["configs"] == {"retention.ms": "3600000"}
    assert [p["partition"] for p in d["partitions"]] == [0, 1, 2]

    cli(b, "topics", "alter", topic, "--partitions", "5")
    kutil.wait_for_topic(b, topic, 5)

    proc = cli_fails(b, "topics", "create", topic, "--partitions", "1")
    assert f"topic '{topic}' already exists" in proc.stderr

    cli(b, "topics", "delete", topic)
    wait_for("topic gone", lambda: topic not in kutil.admin(b).list_topics(timeout=10).topics)
    proc = cli_fails(b, "topics", "describe", topic)
    assert f"topic '{topic}' does not exist" in proc.stderr


def test_topics_bad_input(b):
    assert "bad --config" in cli_fails(b, "topics", "create", "x", "--config", "novalue").stderr
    assert "does not exist" in cli_fails(b, "topics", "alter", "missing-topic", "--partitions", "3").stderr
    assert "does not exist" in cli_fails(b, "topics", "delete", "missing-topic").stderr


# --------------------------------------------------------------------------
# groups list / describe with librdkafka members
# --------------------------------------------------------------------------
def test_describe_offsets_of_a_live_librdkafka_group(b):
    topic = kutil.create_topic(b, kutil.unique_topic("desc"), 3)
    other = kutil.create_topic(b, kutil.unique_topic("other"), 1)
    for p in range(3):
        produce_n(b, topic, 10 * (p + 1), partition=p)
    produce_n(b, other, 5)
    group = unique_group()

    c = group_consumer(b, group)
    try:
        c.subscribe([topic])
        got = poll_some(c, 60)
        # Commit partitions 0 and 1 only; partition 2 stays assigned but uncommitted.
        c.commit(offsets=[TopicPartition(topic, 0, 4), TopicPartition(topic, 1, 20)], asynchronous=False)
        # A commit for a topic the member is not subscribed to: committed but not assigned.
        c.commit(offsets=[TopicPartition(other, 0, 2)], asynchronous=False)
        assert len(got) == 60
        member_id = c.memberid()

        proc = cli(b, "groups", "describe", group)
        assert (
            f"Consumer group '{group}': state Stable, assignor range, coordinator {b.bootstrap} (1), 1 member(s)"
            in proc.stdout
        )
        rows = {(r["TOPIC"], r["PARTITION"]): r for r in parse_table(proc.stdout, "GROUP")}
        assert set(rows) == {(topic, "0"), (topic, "1"), (topic, "2"), (other, "0")}
        r0 = rows[(topic, "0")]
        assert (r0["CURRENT-OFFSET"], r0["LOG-END-OFFSET"], r0["LAG"]) == ("4", "10", "6")
        assert r0["CONSUMER-ID"] == member_id and r0["HOST"].endswith("127.0.0.1") and r0["CLIENT-ID"] == "rdkafka"
        r1 = rows[(topic, "1")]
        assert (r1["CURRENT-OFFSET"], r1["LOG-END-OFFSET"], r1["LAG"]) == ("20", "20", "0")
        r2 = rows[(topic, "2")]  # assigned, never committed
        assert (r2["CURRENT-OFFSET"], r2["LOG-END-OFFSET"], r2["LAG"]) == ("-", "30", "-")
        assert r2["CONSUMER-ID"] == member_id
        ro = rows[(other, "0")]  # committed, not assigned
        assert (ro["CURRENT-OFFSET"], ro["LAG"], ro["CONSUMER-ID"], ro["HOST"], ro["CLIENT-ID"]) == ("2", "3", "-", "-", "-")

        d = describe_json(b, group)
        assert d["group"] == group and d["state"] == "Stable" and d["assignor"] == "range"
        assert d["protocol_type"] == "consumer" and d["member_count"] == 1
        assert d["coordinator"] == {"id": 1, "host": "127.0.0.1", "port": b.port}
        by = {(o["topic"], o["partition"]): o for o in d["offsets"]}
        assert by[(topic, 2)]["current_offset"] is None and by[(topic, 2)]["lag"] is None
        assert by[(topic, 2)]["log_end_offset"] == 30
        assert by[(topic, 0)]["lag"] == 6 and by[(topic, 0)]["consumer_id"] == member_id
        assert by[(other, 0)]["consumer_id"] is None
        [m] = d["members"]
        assert m["consumer_id"] == member_id
        assert m["assignment"] == [{"topic": topic, "partitions": [0, 1, 2]}]
    finally:
        c.close()

    wait_for_group(b, group, "Empty")
    proc = cli(b, "groups", "describe", group)
    assert f"Consumer group '{group}' has no active members." in proc.stdout
    rows = parse_table(proc.stdout, "GROUP")
    assert {r["CONSUMER-ID"] for r in rows} == {"-"}
    # Partition 2 was never committed, so with no member it is gone from the view.
    assert sorted((r["TOPIC"], r["PARTITION"]) for r in rows) == sorted([(topic, "0"), (topic, "1"), (other, "0")])


def test_describe_members_and_state_of_two_members(b):
    topic = kutil.create_topic(b, kutil.unique_topic("mem"), 4)
    group = unique_group()
    c1, c2 = group_consumer(b, group), group_consumer(b, group)
    try:
        c1.subscribe([topic])
        c2.subscribe([topic])

        def both_assigned():
            for c in (c1, c2):
                c.poll(0.1)
            return len(c1.assignment()) + len(c2.assignment()) == 4 and c1.assignment() and c2.assignment()

        wait_for("both members assigned", both_assigned)
        wait_for_group(b, group, "Stable", members=2)

        proc = cli(b, "groups", "describe", group, "--members")
        rows = parse_table(proc.stdout, "GROUP")
        assert {r["CONSUMER-ID"] for r in rows} == {c1.memberid(), c2.memberid()}
        assert sorted(int(r["#PARTITIONS"]) for r in rows) == [2, 2]
        assert all(r["GROUP-INSTANCE-ID"] == "-" for r in rows)

        proc = cli(b, "groups", "describe", group, "--members", "--verbose")
        rows = {r["CONSUMER-ID"]: r for r in parse_table(proc.stdout, "GROUP")}
        for c in (c1, c2):
            parts = ",".join(str(tp.partition) for tp in sorted(c.assignment(), key=lambda tp: tp.partition))
            assert rows[c.memberid()]["ASSIGNMENT"] == f"{topic}({parts})"

        proc = cli(b, "groups", "describe", group, "--state")
        [row] = parse_table(proc.stdout, "GROUP")
        assert row == {
            "GROUP": group,
            "COORDINATOR (ID)": f"{b.bootstrap} (1)",
            "ASSIGNMENT-STRATEGY": "range",
            "STATE": "Stable",
            "#MEMBERS": "2",
        }
    finally:
        c1.close()
        c2.close()


def test_groups_list_and_all_groups(b):
    topic, empty_group = group_with_commit(b, n=5)
    live = unique_group()
    c = group_consumer(b, live)
    try:
        c.subscribe([topic])
        wait_for("assignment", lambda: c.poll(0.1) is not None or c.assignment())
        wait_for_group(b, live, "Stable")

        names = cli(b, "groups", "list").stdout.split()
        assert empty_group in names and live in names

        rows = {r["GROUP"]: r["STATE"] for r in parse_table(cli(b, "groups", "list", "--state").stdout, "GROUP")}
        assert rows[empty_group] == "Empty" and rows[live] == "Stable"

        only_empty = cli(b, "groups", "list", "--state", "empty").stdout
        assert empty_group in only_empty and live not in only_empty
        listed = {g["group"]: g for g in cli_json(b, "groups", "list", "--state", "Stable")}
        assert live in listed and empty_group not in listed
        assert listed[live] == {"group": live, "state": "Stable", "protocol_type": "consumer", "group_type": "classic"}

        assert "unknown group state" in cli_fails(b, "groups", "list", "--state", "Running").stderr

        everything = cli_json(b, "groups", "describe", "--all-groups")
        by = {g["group"]: g for g in everything}
        assert by[live]["state"] == "Stable" and by[empty_group]["state"] == "Empty"
        assert by[empty_group]["offsets"][0]["current_offset"] == 5

        text = cli(b, "groups", "describe", "--all-groups", "--state").stdout
        states = {r["GROUP"]: r["STATE"] for r in parse_table(text, "GROUP")}
        assert states[live] == "Stable" and states[empty_group] == "Empty"
    finally:
        c.close()


def test_progress_is_shown_on_a_terminal_only(b):
    topic = kutil.create_topic(b, kutil.unique_topic("prog"), 1)
    produce_n(b, topic, 3)
    groups = [unique_group("many") for _ in range(5)]
    for g in groups:
        cli(b, "groups", "reset-offsets", "--group", g, "--topic", topic, "--to-earliest", "--execute")

    argv = [str(cairn_bin()), "groups", "describe", "--all-groups", "--state", "-b", b.bootstrap]
    master, slave = pty.openpty()
    proc = subprocess.Popen(
        argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=slave, env=cli_env({"CAIRN_PROGRESS": "always"})
    )
    os.close(slave)
    err = b""
    while True:
        try:
            chunk = os.read(master, 4096)
        except OSError:
            break
        if not chunk:
            break
        err += chunk
    os.close(master)
    out = proc.stdout.read().decode()
    assert proc.wait(timeout=30) == 0
    assert b"describing groups: 5/5" in err, err
    assert all(g in out for g in groups)
    # Not a terminal: no progress at all, even when asked to show it always.
    proc = cli(b, "groups", "describe", "--all-groups", "--state", env={"CAIRN_PROGRESS": "always"})
    assert "describing groups" not in proc.stderr


# --------------------------------------------------------------------------
# reset-offsets
# --------------------------------------------------------------------------
def test_reset_to_earliest_moves_where_a_consumer_resumes(b):
    topic, group = group_with_commit(b, n=100)

    plan = cli(b, "groups", "reset-offsets", "--group", group, "--topic", topic, "--to-earliest")
    [row] = parse_table(plan.stdout, "GROUP")
    assert row == {"GROUP": group, "TOPIC": topic, "PARTITION": "0", "CURRENT-OFFSET": "100", "NEW-OFFSET": "0"}
    assert "Dry run" in plan.stderr
    assert committed(b, group, topic, [0]) == {0: 100}, "a dry run changed the offsets"

    proc = cli(b, "groups", "reset-offsets", "--group", group, "--topic", topic, "--to-earliest", "--execute")
    assert "Dry run" not in proc.stderr
    assert committed(b, group, topic, [0]) == {0: 0}
    assert first_offsets(b, group, topic, count=100)[0] == (0, 0)


def test_reset_shift_by_and_to_current(b):
    topic, group = group_with_commit(b, n=100)
    cli(b, "groups", "reset-offsets", "--group", group, "--topic", f"{topic}:0", "--shift-by", "-10", "--execute")
    got = first_offsets(b, group, topic, count=10)
    assert got == [(0, o) for o in range(90, 100)]

    # The consumer above did not commit; the offset is still 90, and --to-current keeps it.
    out = cli_json(b, "groups", "reset-offsets", "--group", group, "--all-topics", "--to-current")
    assert out == {
        "group": group,
        "executed": False,
        "partitions": [{"topic": topic, "partition": 0, "current_offset": 90, "new_offset": 90}],
    }
    # Shifting beyond either end is clamped to the log.
    out = cli_json(b, "groups", "reset-offsets", "--group", group, "--all-topics", "--shift-by", "-1000")
    assert out["partitions"][0]["new_offset"] == 0


def test_reset_to_offset_is_clamped_into_the_log(b):
    topic, group = group_with_commit(b, n=100)
    cli(b, "groups", "reset-offsets", "--group", group, "--topic", topic, "--to-offset", "50", "--execute")
    assert committed(b, group, topic, [0]) == {0: 50}
    out = cli_json(b, "groups", "reset-offsets", "--group", group, "--topic", topic, "--to-offset", "100000", "--execute")
    assert out["executed"] is True and out["partitions"][0]["new_offset"] == 100
    assert committed(b, group, topic, [0]) == {0: 100}
    out = cli_json(b, "groups", "reset-offsets", "--group", group, "--topic", topic, "--to-offset", "-5")
    assert out["partitions"][0]["new_offset"] == 0


def utc_text(ms, tz=None):
    dt = datetime.datetime.fromtimestamp(ms / 1000, datetime.timezone.utc)
    if tz is not None:
        dt = dt.astimezone(tz)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond // 1000:03d}"


def test_reset_to_datetime_and_by_duration(b):
    topic = kutil.create_topic(b, kutil.unique_topic("time"), 1)
    base = 1_704_067_200_000  # 2024-01-01T00:00:00Z
    produce_n(b, topic, 100, timestamps=[base + i * 1000 for i in range(100)])
    group = unique_group()
    consume_and_commit(b, group, topic, 100)
    wait_for_group(b, group, "Empty")

    def new_offset(*how):
        out = cli_json(b, "groups", "reset-offsets", "--group", group, "--topic", topic, *how)
        return out["partitions"][0]["new_offset"]

    # Local time (no zone) is UTC; Z and offsets name the same instant.
    assert new_offset("--to-datetime", utc_text(base + 40_000)) == 40
    assert new_offset("--to-datetime", utc_text(base + 40_000) + "Z") == 40
    plus_one = datetime.timezone(datetime.timedelta(hours=1))
    assert new_offset("--to-datetime", utc_text(base + 40_500, plus_one) + "+01:00") == 41
    assert new_offset("--to-datetime", "2023-06-01T00:00:00.000") == 0
    # After the last record: the log end.
    assert new_offset("--to-datetime", "2030-01-01T00:00:00.000") == 100
    # 2024 is long ago: a day back from now is after every record.
    assert new_offset("--by-duration", "P1D") == 100
    assert new_offset("--by-duration", "PT876000H") == 0  # about 100 years

    cli(b, "groups", "reset-offsets", "--group", group, "--topic", topic, "--to-datetime", utc_text(base + 70_000), "--execute")
    assert first_offsets(b, group, topic)[0] == (0, 70)

    # by-duration with records of known recent times.
    recent = kutil.create_topic(b, kutil.unique_topic("recent"), 1)
    now = int(time.time() * 1000)
    stamps = [now - 7_200_000] * 50 + [now - 60_000] * 50
    produce_n(b, recent, 100, timestamps=stamps)
    out = cli_json(b, "groups", "reset-offsets", "--group", group, "--topic", recent, "--by-duration", "PT1H", "--execute")
    assert out["partitions"][0]["new_offset"] == 50
    assert committed(b, group, recent, [0]) == {0: 50}


def test_reset_export_and_from_file(b, tmp_path):
    topic, group = group_with_commit(b, n=20, partitions=3)
    csv = cli(b, "groups", "reset-offsets", "--group", group, "--all-topics", "--shift-by", "-5", "--export").stdout
    assert csv.splitlines() == [f"{topic},0,15", f"{topic},1,15", f"{topic},2,15"]
    plan = tmp_path / "plan.csv"
    plan.write_text(csv.replace(f"{topic},1,15", f"{topic},1,3"))
    out = cli_json(b, "groups", "reset-offsets", "--group", group, "--from-file", str(plan), "--execute")
    assert [p["new_offset"] for p in out["partitions"]] == [15, 3, 15]
    assert committed(b, group, topic, [0, 1, 2]) == {0: 15, 1: 3, 2: 15}

    bad = tmp_path / "bad.csv"
    bad.write_text(f"{topic};0;1\n")
    assert "line 1" in cli_fails(b, "groups", "reset-offsets", "--group", group, "--from-file", str(bad)).stderr


def test_reset_refuses_a_live_group(b):
    topic = kutil.create_topic(b, kutil.unique_topic("live"), 1)
    produce_n(b, topic, 10)
    group = unique_group()
    c = group_consumer(b, group)
    try:
        c.subscribe([topic])
        poll_some(c, 10)
        c.commit(asynchronous=False)
        wait_for_group(b, group, "Stable")
        for mode in ([], ["--execute"]):
            proc = cli_fails(b, "groups", "reset-offsets", "--group", group, "--topic", topic, "--to-earliest", *mode)
            assert f"cannot reset offsets of group '{group}': it is Stable with 1 active member(s)" in proc.stderr
        assert committed(b, group, topic, [0]) == {0: 10}
    finally:
        c.close()


def test_reset_bad_input(b):
    topic, group = group_with_commit(b, n=5)
    args = ["groups", "reset-offsets", "--group", group, "--topic", topic]
    for bad in ["yesterday", "2024-01-01", "2024-13-01T00:00:00.000", "2024-01-01T00:00:00.000+1"]:
        proc = cli_fails(b, *args, "--to-datetime", bad)
        assert f"bad --to-datetime '{bad}'" in proc.stderr
    assert "bad --by-duration" in cli_fails(b, *args, "--by-duration", "1h").stderr
    assert "--topic" in cli_fails(b, "groups", "reset-offsets", "--group", group, "--to-earliest").stderr
    # Two scenarios at once, or none, is a usage error.
    cli_fails(b, *args, "--to-earliest", "--to-latest")
    cli_fails(b, *args)
    assert "has no partition 7" in cli_fails(b, "groups", "reset-offsets", "--group", group, "--topic", f"{topic}:7", "--to-earliest").stderr
    assert "does not exist" in cli_fails(b, "groups", "reset-offsets", "--group", group, "--topic", "nope-topic", "--to-earliest").stderr


def test_reset_seeds_a_new_group(b):
    """Like Kafka's tool: offsets can be set before a group ever ran."""
    topic = kutil.create_topic(b, kutil.unique_topic("seed"), 1)
    produce_n(b, topic, 30)
    group = unique_group("fresh")
    cli(b, "groups", "reset-offsets", "--group", group, "--topic", topic, "--to-offset", "25", "--execute")
    assert first_offsets(b, group, topic, count=5) == [(0, o) for o in range(25, 30)]


# --------------------------------------------------------------------------
# delete, delete-offsets, errors
# --------------------------------------------------------------------------
def test_delete_offsets_and_delete_group(b):
    topic, group = group_with_commit(b, n=10, partitions=2)
    proc = cli(b, "groups", "delete-offsets", "--group", group, "--topic", f"{topic}:1")
    assert parse_table(proc.stdout, "TOPIC") == [{"TOPIC": topic, "PARTITION": "1", "STATUS": "Successful"}]
    assert committed(b, group, topic, [0, 1]) == {0: 10, 1: -1001}

    proc = cli(b, "groups", "delete", "--group", group)
    assert f"Deletion of requested consumer groups ('{group}') was successful." in proc.stdout
    assert group not in cli(b, "groups", "list").stdout.split()
    assert f"consumer group '{group}' does not exist" in cli_fails(b, "groups", "delete", "--group", group).stderr
    assert f"consumer group '{group}' does not exist" in cli_fails(
        b, "groups", "delete-offsets", "--group", group, "--topic", topic
    ).stderr


def test_delete_refuses_a_live_group(b):
    topic = kutil.create_topic(b, kutil.unique_topic("dl"), 1)
    produce_n(b, topic, 3)
    group = unique_group()
    c = group_consumer(b, group)
    try:
        c.subscribe([topic])
        poll_some(c, 3)
        c.commit(asynchronous=False)
        wait_for_group(b, group, "Stable")
        proc = cli_fails(b, "groups", "delete", "--group", group)
        assert "still has active members" in proc.stderr and "NON_EMPTY_GROUP" in proc.stderr
        out = cli(b, "groups", "delete", "--group", group, "--output", "json", check=False)
        assert out.returncode != 0
        assert json.loads(out.stdout) == [{"group": group, "deleted": False, "error": "NON_EMPTY_GROUP"}]
        proc = cli_fails(b, "groups", "delete-offsets", "--group", group, "--topic", topic)
        assert "GROUP_SUBSCRIBED_TO_TOPIC" in proc.stdout
    finally:
        c.close()


def test_unknown_group(b):
    for view in ([], ["--members"], ["--state"], ["--offsets"]):
        proc = cli_fails(b, "groups", "describe", "no-such-group", *view)
        assert "consumer group 'no-such-group' does not exist" in proc.stderr


def test_unreachable_broker(b):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed = f"127.0.0.1:{s.getsockname()[1]}"
    for args in (["groups", "list"], ["topics", "list"], ["groups", "describe", "g"]):
        proc = cli_fails(closed, *args)
        assert f"cannot reach a broker at {closed}" in proc.stderr

    # A peer that accepts but never answers: the connect timeout ends it.
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    held = []
    stop = threading.Event()

    def hold():
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(listener.accept()[0])
            except OSError:
                pass

    t = threading.Thread(target=hold, daemon=True)
    t.start()
    try:
        mute = f"127.0.0.1:{listener.getsockname()[1]}"
        started = time.monotonic()
        proc = cli_fails(mute, "groups", "list", "--connect-timeout-ms", "500")
        assert time.monotonic() - started < 10
        assert f"cannot reach a broker at {mute}" in proc.stderr and "no answer within" in proc.stderr
    finally:
        stop.set()
        t.join()
        for s in held:
            s.close()
        listener.close()


# --------------------------------------------------------------------------
# produce / consume
# --------------------------------------------------------------------------
def test_produce_and_consume_directly(b):
    topic = kutil.create_topic(b, kutil.unique_topic("pc"), 2)
    lines = "".join(f"key{i}:value {i}\n" for i in range(40))
    out = cli_json(b, "produce", topic, "--key-separator", ":", input=lines)
    assert out["records"] == 40 and sum(out["partitions"].values()) == 40

    got = cli(b, "consume", topic, "--from-beginning", "--max-messages", "40", "--print-key", "--timeout-ms", "20000")
    pairs = [l.split("\t") for l in got.stdout.splitlines()]
    assert sorted(pairs) == sorted([f"key{i}", f"value {i}"] for i in range(40))
    assert "Processed a total of 40 messages" in got.stderr

    # One partition from an offset; JSON lines carry the coordinates.
    log = kutil.read_partition(b, topic, 1)
    got = cli(b, "consume", topic, "--partition", "1", "--offset", "2", "--max-messages", "3", "--output", "json")
    records = [json.loads(l) for l in got.stdout.splitlines()]
    assert [r["offset"] for r in records] == [2, 3, 4]
    assert [r["value"].encode() for r in records] == [m.value() for m in log[2:5]]
    assert all(r["partition"] == 1 and r["topic"] == topic for r in records)

    # Idle timeout with nothing new: exits cleanly with nothing printed.
    got = cli(b, "consume", topic, "--timeout-ms", "700")
    assert got.stdout == "" and "Processed a total of 0 messages" in got.stderr

    cli(b, "produce", topic, "--partition", "0", input="x\ny\n")
    assert "has no partition 9" in cli_fails(b, "produce", topic, "--partition", "9", input="x\n").stderr
    assert "no key separator" in cli_fails(b, "produce", topic, "--key-separator", "|", input="nokey\n").stderr
    assert "does not exist" in cli_fails(b, "consume", "never-made-topic", "--timeout-ms", "100").stderr


def test_keyed_records_land_where_kafkas_partitioner_puts_them(b):
    """cairn produce hashes keys with murmur2 like the Java client; librdkafka's murmur2 agrees."""
    ours = kutil.create_topic(b, kutil.unique_topic("k1"), 5)
    theirs = kutil.create_topic(b, kutil.unique_topic("k2"), 5)
    keys = [f"customer-{i}" for i in range(40)]
    cli(b, "produce", ours, "--key-separator", "=", input="".join(f"{k}=x\n" for k in keys))
    p = kutil.producer(b, partitioner="murmur2_random")
    kutil.assert_no_delivery_errors(kutil.produce_all(p, theirs, [(k.encode(), b"x", None, None) for k in keys]))

    def placement(topic):
        return {m.key().decode(): part for part in range(5) for m in kutil.read_partition(b, topic, part)}

    assert placement(ours) == placement(theirs)
    assert len(set(placement(ours).values())) > 1


def test_cairn_consume_is_a_real_group_member(b):
    topic = kutil.create_topic(b, kutil.unique_topic("member"), 2)
    values = [f"line-{i}" for i in range(20)]
    cli(b, "produce", topic, input="".join(v + "\n" for v in values))
    group = unique_group("console")
    argv = [str(cairn_bin()), "consume", topic, "--group", group, "--from-beginning", "-b", b.bootstrap]
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=cli_env())
    other = None
    try:
        def caught_up():
            proc = cli(b, "groups", "describe", group, "--output", "json", check=False)
            if proc.returncode != 0:  # not joined yet
                return None
            d = json.loads(proc.stdout)
            lags = [o["lag"] for o in d["offsets"]]
            return d if d["state"] == "Stable" and len(lags) == 2 and lags == [0, 0] else None

        d = wait_for("the console consumer to commit everything", caught_up)
        [m] = d["members"]
        assert m["client_id"] == "cairn-console-consumer" and m["consumer_id"].startswith("cairn-console-consumer-")
        assert m["assignment"] == [{"topic": topic, "partitions": [0, 1]}]
        assert d["assignor"] == "range"
        assert {o["consumer_id"] for o in d["offsets"]} == {m["consumer_id"]}

        # A librdkafka member joins: the console consumer rebalances and keeps one partition.
        other = group_consumer(b, group)
        other.subscribe([topic])

        def split():
            other.poll(0.1)
            d = describe_json(b, group, "--members")
            counts = sorted(sum(len(a["partitions"]) for a in mm["assignment"]) for mm in d["members"])
            return d if d["state"] == "Stable" and counts == [1, 1] else None

        wait_for("the partitions split between the two members", split, timeout=60)
        # Both resumed from the committed offsets: nothing is read twice.
        assert kutil.consume_nothing_more(other, 1.0) == []

        cli(b, "produce", topic, "--partition", "0", input="late-0\n")
        cli(b, "produce", topic, "--partition", "1", input="late-1\n")
        extra = []
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not extra:
            m2 = other.poll(0.2)
            if m2 is not None and not m2.error():
                extra.append(m2.value().decode())
        assert len(extra) == 1
        other.commit(asynchronous=False)
    finally:
        if other is not None:
            other.close()
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=20)
    assert proc.returncode == 0, err
    printed = out.splitlines()
    assert sorted(printed) == sorted(values + [v for v in ("late-0", "late-1") if v not in extra])
    assert "Processed a total of" in err

    d = wait_for_group(b, group, "Empty")
    offsets = describe_json(b, group)["offsets"]
    assert [(o["partition"], o["lag"]) for o in offsets] == [(0, 0), (1, 0)]


def test_cairn_consume_with_max_messages_commits_exactly_what_it_printed(b):
    topic = kutil.create_topic(b, kutil.unique_topic("maxm"), 1)
    cli(b, "produce", topic, input="".join(f"r{i}\n" for i in range(30)))
    group = unique_group("maxm")
    got = cli(b, "consume", topic, "--group", group, "--from-beginning", "--max-messages", "12")
    assert got.stdout.splitlines() == [f"r{i}" for i in range(12)]
    assert committed(b, group, topic, [0]) == {0: 12}
    got = cli(b, "consume", topic, "--group", group, "--max-messages", "3")
    assert got.stdout.splitlines() == ["r12", "r13", "r14"]
    d = describe_json(b, group)
    assert d["state"] == "Empty" and d["offsets"][0]["current_offset"] == 15
