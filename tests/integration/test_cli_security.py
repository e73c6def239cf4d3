"""The operator tools against a secured broker: `--command-config` with Kafka's client properties,
`cairn users` (SCRAM credentials) and `cairn acls` (kafka-acls.sh's jobs), end to end."""

import json

import pytest

from test_cli_tools import cli, cli_fails
from test_security import admin_of, consumer_of, producer_of, start_sasl
import kutil


def props(tmp_path, name, certs, lines):
    p = tmp_path / name
    base = [
        "security.protocol=SASL_SSL",
        f"ssl.ca.location={certs['ca']}",
    ]
    p.write_text("\n".join(base + lines) + "\n")
    return str(p)


def test_users_and_acls_through_the_cli(broker_factory, certs, tmp_path):
    b = start_sasl(broker_factory, certs, authorizer=True)
    boot = b.bootstrap_for("SASL_SSL")
    admin = props(tmp_path, "admin.properties", certs, [
        "sasl.mechanism=PLAIN",
        'sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required username="admin" password="admin-secret";',
    ])
    wrong = props(tmp_path, "wrong.properties", certs, [
        "sasl.mechanism=PLAIN", "sasl.username=admin", "sasl.password=nope",
    ])
    carol = props(tmp_path, "carol.properties", certs, [
        "sasl.mechanism=SCRAM-SHA-512", "sasl.username=carol", "sasl.password=carol-secret",
    ])

    # A wrong password is a clear error, not a hang.
    p = cli_fails(boot, "topics", "list", "--command-config", wrong)
    assert "SASL_AUTHENTICATION_FAILED" in p.stderr, p.stderr

    # A SCRAM user made with the CLI (salted on the client), listed, then used.
    cli(boot, "users", "add", "--user", "carol", "--mechanism", "SCRAM-SHA-512",
        "--command-config", admin, input="carol-secret\n")
    listed = json.loads(cli(boot, "users", "list", "--output", "json", "--command-config", admin).stdout)
    text = json.dumps(listed)
    assert "carol" in text and "SCRAM-SHA-512" in text and "carol-secret" not in text, listed

    topic = kutil.unique_topic("cli-acl")
    cli(boot, "topics", "create", topic, "--partitions", "1", "--command-config", admin)
    # Without ACLs carol sees nothing.
    out = cli(boot, "topics", "list", "--command-config", carol).stdout
    assert topic not in out

    # kafka-acls.sh's --consumer shortcut: READ and DESCRIBE on the topic, READ on the group.
    cli(boot, "acls", "add", "--allow-principal", "User:carol", "--consumer", "--topic", topic,
        "--group", "cli-g", "--command-config", admin)
    acls = json.loads(cli(boot, "acls", "list", "--topic", topic, "--output", "json",
                          "--command-config", admin).stdout)
    assert "carol" in json.dumps(acls) and "READ" in json.dumps(acls).upper(), acls
    assert topic in cli(boot, "topics", "list", "--command-config", carol).stdout

    # carol may not administer ACLs.
    p = cli_fails(boot, "acls", "add", "--allow-principal", "User:carol", "--operation", "Write",
                  "--topic", topic, "--command-config", carol)
    assert "CLUSTER_AUTHORIZATION_FAILED" in p.stderr, p.stderr

    # A real client with carol's SCRAM login reads in her group.
    pr = producer_of(b, certs, "admin", "admin-secret")
    pr.produce(topic, b"hello")
    assert pr.flush(15) == 0
    c = consumer_of(b, certs, "carol", "carol-secret", "cli-g", mechanism="SCRAM-SHA-512")
    try:
        c.subscribe([topic])
        got = kutil.poll_n(c, 1, timeout=30)
        assert [m.value() for m in got] == [b"hello"]
    finally:
        c.close()

    # Removing the ACLs (dry run first) and the user.
    dry = cli(boot, "acls", "remove", "--allow-principal", "User:carol", "--consumer", "--topic",
              topic, "--group", "cli-g", "--dry-run", "--command-config", admin).stdout
    assert "carol" in dry
    assert topic in cli(boot, "topics", "list", "--command-config", carol).stdout
    cli(boot, "acls", "remove", "--allow-principal", "User:carol", "--consumer", "--topic", topic,
        "--group", "cli-g", "--command-config", admin)
    assert topic not in cli(boot, "topics", "list", "--command-config", carol).stdout
    cli(boot, "users", "remove", "--user", "carol", "--mechanism", "SCRAM-SHA-512",
        "--command-config", admin)
    p = cli_fails(boot, "topics", "list", "--command-config", carol)
    assert "SASL_AUTHENTICATION_FAILED" in p.stderr, p.stderr
