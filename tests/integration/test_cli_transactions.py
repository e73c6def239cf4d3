"""`cairn transactions` (the jobs of kafka-transactions.sh) against a live `cairn serve`, with
transactions opened and committed by a real transactional producer (librdkafka through
confluent-kafka).

One transaction is left open: `list`, `describe` and `describe-producers` must show it as the
coordinator and the partition leader see it, `find-hanging` must not call it hanging, and
`abort --start-offset` must end it on the partition so that a read_committed consumer reads past
it (the last stable offset moved) without seeing its records. A committed transaction then shows
under `list --state CompleteCommit`.
"""

import json
import time
import uuid

from confluent_kafka import Producer, TopicPartition

import kutil
from test_cli_tools import cli, cli_json

OPTIONS = {
    "num.partitions": 1,
    "auto.create.topics.enable": "true",
}

PLAIN_BEFORE = 3
IN_TRANSACTION = 5
TIMEOUT_S = 30


def transactional_producer(broker, transactional_id):
    p = Producer(
        kutil.base_conf(
            broker,
            **{
                "transactional.id": transactional_id,
                # Long enough that the broker does not abort it during the test.
                "transaction.timeout.ms": 300000,
                "message.timeout.ms": 20000,
                "linger.ms": 5,
            },
        )
    )
    p.init_transactions(TIMEOUT_S)
    return p


def read_committed(broker, topic, wait_for, timeout=TIMEOUT_S):
    """Values a read_committed consumer reads from partition 0, polling until `wait_for` of them
    arrived (then one more second, to catch anything that should not be there)."""
    c = kutil.consumer(broker, **{"isolation.level": "read_committed"})
    try:
        c.assign([TopicPartition(topic, 0, 0)])
        got = [m.value().decode() for m in kutil.poll_n(c, wait_for, timeout)]
        got += [m.value().decode() for m in kutil.consume_nothing_more(c, 1.0)]
        return got
    finally:
        c.close()


def by_id(listing):
    return {t["transactional_id"]: t for t in listing}


def test_transactions_list_describe_abort_and_states(broker_factory):
    b = broker_factory(dict(OPTIONS))
    topic = kutil.create_topic(b, kutil.unique_topic("tx"))
    plain = kutil.producer(b)
    kutil.assert_no_delivery_errors(
        kutil.produce_all(plain, topic, [(None, f"plain-{i}".encode(), 0, None) for i in range(PLAIN_BEFORE)])
    )

    # An open transaction: begun, produced, flushed, never committed.
    open_id = f"open-{uuid.uuid4().hex[:8]}"
    open_p = transactional_producer(b, open_id)
    open_p.begin_transaction()
    for i in range(IN_TRANSACTION):
        open_p.produce(topic, value=f"open-{i}".encode(), partition=0)
    assert open_p.flush(TIMEOUT_S) == 0

    # list: the coordinator reports it Ongoing.
    listed = by_id(cli_json(b, "transactions", "list"))
    assert open_id in listed, listed
    assert listed[open_id]["state"] == "Ongoing"
    producer_id = listed[open_id]["producer_id"]
    assert producer_id >= 0
    table = cli(b, "transactions", "list").stdout
    assert table.splitlines()[0].split() == ["TransactionalId", "Coordinator", "ProducerId", "TransactionState"]
    assert any(line.split()[0] == open_id and line.split()[3] == "Ongoing" for line in table.splitlines()[1:]), table

    # Filters are applied by the broker.
    assert open_id in by_id(cli_json(b, "transactions", "list", "--state", "Ongoing"))
    assert open_id not in by_id(cli_json(b, "transactions", "list", "--state", "CompleteCommit"))
    assert open_id in by_id(cli_json(b, "transactions", "list", "--producer-id", str(producer_id)))
    assert open_id not in by_id(cli_json(b, "transactions", "list", "--producer-id", str(producer_id + 1000)))
    assert open_id in by_id(cli_json(b, "transactions", "list", "--min-duration-ms", "0"))
    assert open_id not in by_id(cli_json(b, "transactions", "list", "--min-duration-ms", "3600000"))

    # describe: the partitions of the transaction and its producer, at the coordinator.
    d = cli_json(b, "transactions", "describe", "--transactional-id", open_id)
    assert d["transactional_id"] == open_id
    assert d["state"] == "Ongoing"
    assert d["producer_id"] == producer_id
    assert d["producer_epoch"] >= 0
    assert d["timeout_ms"] == 300000
    assert d["partitions"] == [{"topic": topic, "partition": 0}]
    assert d["start_time_ms"] is not None and d["duration_ms"] >= 0
    table = cli(b, "transactions", "describe", "--transactional-id", open_id).stdout
    header, row = table.splitlines()
    assert header.split()[0] == "CoordinatorId" and header.split()[-1] == "TopicPartitions"
    assert row.split()[-1] == f"{topic}-0", table

    missing = cli(b, "transactions", "describe", "--transactional-id", "no-such-id", check=False)
    assert missing.returncode == 1, missing
    assert "TRANSACTIONAL_ID_NOT_FOUND" in missing.stderr and "transactional id not found" in missing.stderr, missing.stderr

    # describe-producers: the leader knows where the open transaction starts.
    producers = cli_json(b, "transactions", "describe-producers", "--topic", topic, "--partition", "0")
    mine = [p for p in producers if p["producer_id"] == producer_id]
    assert len(mine) == 1, producers
    assert mine[0]["current_transaction_start_offset"] == PLAIN_BEFORE
    assert mine[0]["producer_epoch"] == d["producer_epoch"]
    table = cli(b, "transactions", "describe-producers", "--topic", topic, "--partition", "0").stdout
    assert "CurrentTransactionStartOffset" in table.splitlines()[0]

    # The open transaction holds read_committed readers at its start.
    assert read_committed(b, topic, PLAIN_BEFORE) == [f"plain-{i}" for i in range(PLAIN_BEFORE)]

    # find-hanging: open, but its coordinator still counts the partition in: not hanging.
    time.sleep(0.05)
    hanging = cli_json(
        b, "transactions", "find-hanging", "--topic", topic, "--max-transaction-timeout-minutes", "0"
    )
    assert hanging == [], hanging
    assert "No hanging transactions." in cli(b, "transactions", "find-hanging", "--topic", topic).stdout

    # abort: a start offset with no transaction is refused; the right one is aborted.
    wrong = cli(
        b, "transactions", "abort", "--topic", topic, "--partition", "0", "--start-offset", "999", check=False
    )
    assert wrong.returncode == 1, wrong
    assert "could not find any open transaction starting at offset 999" in wrong.stderr, wrong.stderr
    aborted = cli_json(
        b, "transactions", "abort", "--topic", topic, "--partition", "0", "--start-offset", str(PLAIN_BEFORE)
    )
    assert aborted["producer_id"] == producer_id and aborted["partition"] == 0, aborted
    producers = cli_json(b, "transactions", "describe-producers", "--topic", topic, "--partition", "0")
    assert not [
        p for p in producers if p["producer_id"] == producer_id and p["current_transaction_start_offset"] is not None
    ], producers

    # The last stable offset moved past the aborted transaction: later records are readable, the
    # aborted ones never are.
    kutil.assert_no_delivery_errors(
        kutil.produce_all(plain, topic, [(None, f"after-{i}".encode(), 0, None) for i in range(2)])
    )
    got = read_committed(b, topic, PLAIN_BEFORE + 2)
    assert got == [f"plain-{i}" for i in range(PLAIN_BEFORE)] + ["after-0", "after-1"], got

    # A committed transaction is listed as CompleteCommit.
    done_id = f"done-{uuid.uuid4().hex[:8]}"
    done_p = transactional_producer(b, done_id)
    done_p.begin_transaction()
    done_p.produce(topic, value=b"committed", partition=0)
    done_p.commit_transaction(TIMEOUT_S)
    deadline = time.monotonic() + TIMEOUT_S
    while True:
        committed = by_id(cli_json(b, "transactions", "list", "--state", "CompleteCommit"))
        if done_id in committed or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert done_id in committed, committed
    assert open_id not in committed
    assert done_id not in by_id(cli_json(b, "transactions", "list", "--state", "Ongoing"))
    done = cli_json(b, "transactions", "describe", "--transactional-id", done_id)
    assert done["state"] == "CompleteCommit" and done["partitions"] == [], done
    assert "committed" in read_committed(b, topic, PLAIN_BEFORE + 3)


def test_transactions_bad_arguments_exit_nonzero(broker_factory):
    b = broker_factory(dict(OPTIONS))
    for args, needle in [
        (["transactions", "list", "--state", "Committed"], "unknown transaction state"),
        (["transactions", "abort", "--topic", "t", "--partition", "0"], "--start-offset"),
        (
            ["transactions", "abort", "--topic", "t", "--partition", "0", "--start-offset", "1", "--producer-id", "1"],
            "cannot be used with",
        ),
    ]:
        proc = cli(b, *args, check=False)
        assert proc.returncode == 2, (args, proc)
        assert needle in proc.stderr, (args, proc.stderr)
    # A partition that does not exist is an error from the broker, named.
    topic = kutil.create_topic(b, kutil.unique_topic("tx"))
    proc = cli(b, "transactions", "describe-producers", "--topic", topic, "--partition", "7", check=False)
    assert proc.returncode == 1, proc
    assert "7" in proc.stderr, proc.stderr


def test_abort_needs_cluster_action(broker_factory, certs, tmp_path):
    """With ACLs on, `abort` (WriteTxnMarkers) is refused without CLUSTER_ACTION on the cluster, with
    an error that names it, and works once it is granted."""
    from test_cli_security import props
    from test_security import producer_of, start_sasl

    b = start_sasl(broker_factory, certs, authorizer=True)
    boot = b.bootstrap_for("SASL_SSL")
    admin = props(tmp_path, "admin.properties", certs, [
        "sasl.mechanism=PLAIN",
        'sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required username="admin" password="admin-secret";',
    ])
    carol = props(tmp_path, "carol.properties", certs, [
        "sasl.mechanism=SCRAM-SHA-512", "sasl.username=carol", "sasl.password=carol-secret",
    ])
    cli(boot, "users", "add", "--user", "carol", "--mechanism", "SCRAM-SHA-512",
        "--command-config", admin, input="carol-secret\n")
    topic = kutil.unique_topic("tx-acl")
    cli(boot, "topics", "create", topic, "--partitions", "1", "--command-config", admin)
    # carol may read the topic (what DescribeProducers asks), not act as a broker.
    cli(boot, "acls", "add", "--allow-principal", "User:carol", "--operation", "Read",
        "--operation", "Describe", "--topic", topic, "--command-config", admin)

    p = producer_of(b, certs, "admin", "admin-secret", **{"transactional.id": "acl-tx"})
    p.init_transactions(TIMEOUT_S)
    p.begin_transaction()
    p.produce(topic, value=b"pending", partition=0)
    assert p.flush(TIMEOUT_S) == 0

    abort = ["transactions", "abort", "--topic", topic, "--partition", "0", "--start-offset", "0"]
    refused = cli(boot, *abort, "--command-config", carol, check=False)
    assert refused.returncode == 1, refused
    assert "CLUSTER_AUTHORIZATION_FAILED" in refused.stderr and "CLUSTER_ACTION" in refused.stderr, refused.stderr
    still_open = json.loads(cli(boot, "transactions", "describe-producers", "--topic", topic, "--partition", "0",
                                "--output", "json", "--command-config", carol).stdout)
    assert [x["current_transaction_start_offset"] for x in still_open] == [0], still_open

    cli(boot, "acls", "add", "--allow-principal", "User:carol", "--operation", "ClusterAction", "--cluster",
        "--command-config", admin)
    cli(boot, *abort, "--command-config", carol)
    after = json.loads(cli(boot, "transactions", "describe-producers", "--topic", topic, "--partition", "0",
                           "--output", "json", "--command-config", carol).stdout)
    assert not [x for x in after if x["current_transaction_start_offset"] is not None], after
