"""The `cairn serve` command line: --config properties file, -o overrides, bad values."""

import subprocess
import time

import pytest

import kutil
from cairn_harness import cairn_bin, free_port


def auto_created_partitions(b):
    topic = kutil.unique_topic("auto")
    log = kutil.produce_all(kutil.producer(b), topic, [(None, b"x", None, None)])
    kutil.assert_no_delivery_errors(log)
    md = kutil.admin(b).list_topics(timeout=10)
    return len(md.topics[topic].partitions)


def test_config_file(broker_factory, tmp_path):
    props = tmp_path / "server.properties"
    props.write_text("# test config\nnum.partitions = 2\nauto.create.topics.enable=true\n")
    b = broker_factory(config_file=props)
    assert auto_created_partitions(b) == 2


def test_override_beats_config_file(broker_factory, tmp_path):
    props = tmp_path / "server.properties"
    props.write_text("num.partitions=2\nauto.create.topics.enable=true\n")
    b = broker_factory({"num.partitions": 5}, config_file=props)
    assert auto_created_partitions(b) == 5


@pytest.mark.parametrize(
    "option",
    ["num.partitions=abc", "num.partitions=0", "message.max.bytes=-5", "auto.create.topics.enable=maybe"],
)
def test_invalid_option_value_refuses_to_start(tmp_path, option):
    port = 1  # never used: the broker must exit before listening
    argv = [str(cairn_bin()), "serve", "--listen", f"127.0.0.1:{port}", "--data-dir", str(tmp_path / "d"),
            "-o", option]
    proc = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, timeout=20)
    assert proc.returncode != 0, f"broker accepted -o {option}"
    key = option.split("=")[0]
    assert key.encode() in proc.stderr, f"error output does not name {key}: {proc.stderr[-2000:]!r}"


def test_malformed_override_refuses_to_start(tmp_path):
    argv = [str(cairn_bin()), "serve", "--listen", "127.0.0.1:1", "--data-dir", str(tmp_path / "d"),
            "-o", "no-equals-sign"]
    proc = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, timeout=20)
    assert proc.returncode != 0


def run_to_exit(argv, timeout=8):
    """Run a broker that is expected to refuse to start; returns (exit code, stderr)."""
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        _out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate(timeout=10)
        raise AssertionError(f"second broker still running after {timeout}s: {argv}")
    return proc.returncode, err


def test_port_in_use_refuses_to_start(broker_factory, tmp_path):
    b = broker_factory({"num.partitions": 1})
    code, err = run_to_exit(
        [str(cairn_bin()), "serve", "--listen", b.bootstrap, "--data-dir", str(tmp_path / "other")]
    )
    assert code != 0, err[-2000:]
    assert b.is_running()
    assert auto_created_partitions(b) == 1


def test_data_dir_in_use_refuses_to_start(broker_factory):
    """Two brokers on one data dir would corrupt the logs (Kafka locks the dir)."""
    b = broker_factory({"num.partitions": 1})
    other_port = free_port()
    code, err = run_to_exit(
        [str(cairn_bin()), "serve", "--listen", f"127.0.0.1:{other_port}", "--data-dir", str(b.data_dir)]
    )
    assert code != 0, err[-2000:]
    assert b.is_running()
    assert auto_created_partitions(b) == 1


def test_startup_is_fast(broker_factory):
    start = time.monotonic()
    broker_factory({"num.partitions": 1})
    assert time.monotonic() - start < 10
