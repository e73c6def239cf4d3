import re
import sys
from pathlib import Path

import pytest

from cairn_harness import Broker, mount_tmpfs, unmount

OUTPUT_DIR = Path(__file__).resolve().parent / "test-output"

# The data directory of the full-disk tests.
SMALL_DISK_BYTES = 16 << 20


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    setattr(item, "rep_" + rep.when, rep)


def _safe_name(nodeid):
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", nodeid)[-150:]


@pytest.fixture
def broker_factory(request, tmp_path):
    """Returns start(options=None, broker_class=Broker, **kw) -> a running broker.

    All brokers started by a test are stopped (SIGTERM, then SIGKILL) at the
    end of the test; if the test failed, their stderr is printed.
    """
    brokers = []
    base_log = OUTPUT_DIR / _safe_name(request.node.nodeid)

    def start(options=None, broker_class=Broker, **kwargs):
        n = len(brokers)
        log_path = Path(f"{base_log}.{n}.log")
        if log_path.exists():
            log_path.unlink()  # left over from an earlier run
        broker = broker_class(
            data_dir=tmp_path / f"data{n}",
            log_path=log_path,
            options=options,
            **kwargs,
        )
        brokers.append(broker)
        broker.start()
        return broker

    yield start

    failed = any(
        getattr(request.node, "rep_" + when, None) is not None
        and getattr(request.node, "rep_" + when).failed
        for when in ("setup", "call")
    )
    for broker in brokers:
        code = broker.stop()
        if code not in (None, 0, -15):
            failed = True
            sys.stderr.write(f"broker {broker.bootstrap} exited with code {code} on SIGTERM\n")
    if failed:
        for broker in brokers:
            sys.stderr.write(
                f"\n----- cairn stderr ({broker.bootstrap}, {broker.log_path}) -----\n"
                f"{broker.log_tail()}\n"
            )


DEFAULT_OPTIONS = {
    "num.partitions": 4,
    "auto.create.topics.enable": "true",
}


@pytest.fixture
def broker(broker_factory):
    """A broker with default test options (num.partitions=4, auto-create on)."""
    return broker_factory(dict(DEFAULT_OPTIONS))


@pytest.fixture
def small_disk(tmp_path):
    """tmp_path/data0 (the first broker's data dir) as a 16 MiB tmpfs, unmounted at the end;
    skipped where a tmpfs cannot be mounted (it needs root)."""
    mnt = tmp_path / "data0"
    mnt.mkdir()
    try:
        mount_tmpfs(mnt, SMALL_DISK_BYTES)
    except OSError as e:
        pytest.skip(f"cannot mount a tmpfs for the data dir (needs root): {e}")
    try:
        yield mnt
    finally:
        unmount(mnt)


@pytest.fixture(scope="session")
def certs(tmp_path_factory):
    """Test certificates (see tls_certs.make_certs), made once per session."""
    import tls_certs

    return tls_certs.make_certs(tmp_path_factory.mktemp("certs"))
