"""Connections are bounded: huge and slow frames, idle connections, connection counts, the budget
for buffered request bytes; bad listener settings stop the start; the HTTP listener checks Host
and times out slow and idle clients. Every test starts the real binary and keeps a real client
working around the hostile sockets.
"""

import socket
import struct
import subprocess
import threading
import time

import pytest

from cairn_harness import BrokerError

import kproto
import kutil
from cairn_harness import HttpBroker, cairn_bin, free_port
from conftest import OUTPUT_DIR, _safe_name

MIB = 1024 * 1024


def proc_status(broker):
    """VmRSS, VmHWM and VmData of the broker process, in bytes."""
    out = {}
    with open(f"/proc/{broker.proc.pid}/status") as f:
        for line in f:
            key, _, rest = line.partition(":")
            if key in ("VmRSS", "VmHWM", "VmData"):
                out[key] = int(rest.split()[0]) * 1024
    return out


def connect(b, timeout=10.0):
    return kproto.Conn(b.host, b.port, timeout=timeout)


def api_versions_ok(c, cid):
    c.send(kproto.api_versions_request(cid))
    res = c.closed_or_response(cid, timeout=10)
    assert res != "closed", "broker closed a connection that sent a valid ApiVersions"
    _cid, error, apis = kproto.parse_api_versions_v0(res)
    assert error == 0 and kproto.API_PRODUCE in apis


def wait_closed_after(c, low, high):
    """The peer closes the connection between `low` and `high` seconds from now."""
    start = time.monotonic()
    assert c.wait_closed(high), f"connection still open after {high}s"
    took = time.monotonic() - start
    assert took >= low, f"connection closed after {took:.2f}s, before {low}s"
    return took


def no_answer_within(c, seconds):
    """Neither a byte nor a close from the broker within `seconds`."""
    c.sock.settimeout(seconds)
    try:
        data = c.sock.recv(1)
    except socket.timeout:
        return True
    except (ConnectionResetError, BrokenPipeError):
        return False
    return False


def round_trip(b, n=5):
    """A real client (librdkafka) produces and consumes n records."""
    topic = kutil.create_topic(b, kutil.unique_topic("alongside"), partitions=1)
    values = [f"v-{i}".encode() for i in range(n)]
    log = kutil.produce_all(kutil.producer(b), topic, [(None, v, 0, None) for v in values])
    kutil.assert_no_delivery_errors(log)
    assert [m.value() for m in kutil.read_partition(b, topic, 0)] == values


def send_for(sock, data, seconds):
    """Sends as much of `data` as the peer takes within `seconds`; returns the bytes sent."""
    sock.settimeout(0.05)
    sent, deadline = 0, time.monotonic() + seconds
    view = memoryview(data)
    while sent < len(data) and time.monotonic() < deadline:
        try:
            sent += sock.send(view[sent:sent + 256 * 1024])
        except socket.timeout:
            continue
        except OSError:
            break
    return sent


# --------------------------------------------------------------------------
# frames
# --------------------------------------------------------------------------
def test_declared_100mb_frames_reserve_nothing_and_time_out(broker_factory):
    b = broker_factory({"num.partitions": 1, "cairn.request.read.timeout.ms": 3000})
    round_trip(b)  # warm up: client connections, topic, allocator
    before = proc_status(b)
    conns = []
    for _ in range(20):
        c = connect(b)
        # 100 MB claimed (the default socket.request.max.bytes), a few bytes sent.
        c.send(struct.pack(">i", 100 * MIB) + b"\x00\x00\x00\x12\x00\x00")
        conns.append(c)
    time.sleep(0.5)
    during = proc_status(b)
    # The old framing reserved the claimed size at once: 20 x 100 MB of address space.
    grew_data = during["VmData"] - before["VmData"]
    grew_rss = during["VmRSS"] - before["VmRSS"]
    assert grew_data < 64 * MIB, f"VmData grew by {grew_data / MIB:.1f} MiB for 20 claimed frames"
    assert grew_rss < 16 * MIB, f"VmRSS grew by {grew_rss / MIB:.1f} MiB for 20 claimed frames"
    # A real client is served while they hang.
    round_trip(b)
    for c in conns:
        wait_closed_after(c, 0.0, 8.0)
        c.close()
    assert "cairn.request.read.timeout.ms" in b.log_text()
    round_trip(b)
    assert b.is_running()


def test_trickled_frame_is_closed(broker_factory):
    b = broker_factory({"num.partitions": 1, "cairn.request.read.timeout.ms": 2000})
    c = connect(b)
    frame = kproto.api_versions_request(7)  # a valid request, sent one byte every 150 ms
    start = time.monotonic()
    closed = False
    for i in range(len(frame) * 3):
        try:
            c.sock.send(frame[i % len(frame):i % len(frame) + 1])
        except OSError:
            closed = True
            break
        time.sleep(0.15)
        if time.monotonic() - start > 8:
            break
        c.sock.settimeout(0.001)
        try:
            if c.sock.recv(65536) == b"":
                closed = True
                break
        except socket.timeout:
            pass
        except OSError:
            closed = True
            break
    took = time.monotonic() - start
    assert closed, "a frame trickled in for 8 s was never cut off"
    # Bytes kept coming (never idle), so only the per-frame bound can have closed it.
    assert 1.5 <= took <= 6, f"closed after {took:.2f}s with a 2 s frame bound"
    c.close()
    # A prompt client on the same broker is unaffected.
    c = connect(b)
    api_versions_ok(c, 8)
    c.close()


def test_idle_connections_are_closed(broker_factory):
    b = broker_factory({"num.partitions": 1, "connections.max.idle.ms": 1500})
    busy, quiet, silent = connect(b), connect(b), connect(b)
    api_versions_ok(quiet, 1)
    # The busy one sends a request every 0.5 s for 3 s: never idle, never closed.
    for i in range(6):
        api_versions_ok(busy, 10 + i)
        time.sleep(0.5)
    assert silent.wait_closed(0.1), "a connection that never sent a byte outlived connections.max.idle.ms"
    assert quiet.wait_closed(0.1), "an idle connection outlived connections.max.idle.ms"
    api_versions_ok(busy, 99)
    # Timing of a fresh idle connection: closed after ~1.5 s, not before.
    c = connect(b)
    api_versions_ok(c, 1)
    wait_closed_after(c, 1.2, 5.0)
    for x in (busy, quiet, silent, c):
        x.close()
    round_trip(b)


def test_quiet_connection_is_not_cut_by_the_frame_bound(broker_factory):
    """The frame bound starts with a frame's first byte: a connection that is merely quiet
    between requests lives until connections.max.idle.ms."""
    b = broker_factory({"num.partitions": 1, "cairn.request.read.timeout.ms": 1000})
    c = connect(b)
    api_versions_ok(c, 1)
    assert no_answer_within(c, 2.5), "a quiet connection was closed by the 1 s frame bound"
    api_versions_ok(c, 2)
    c.close()


# --------------------------------------------------------------------------
# connection counts
# --------------------------------------------------------------------------
@pytest.mark.parametrize(
    "options",
    [
        {"max.connections.per.ip": 3},
        {"max.connections.per.ip": 0, "max.connections.per.ip.overrides": "127.0.0.1:3"},
    ],
    ids=["default-limit", "override"],
)
def test_max_connections_per_ip_closes_the_extra_one(broker_factory, options):
    b = broker_factory({"num.partitions": 1, **options})
    time.sleep(0.3)  # the harness's readiness probe has been counted out
    held = [connect(b) for _ in range(3)]
    for i, c in enumerate(held):
        api_versions_ok(c, i)
    extra = connect(b)
    # Kafka closes a connection over its IP's limit at once.
    assert extra.wait_closed(3), "a 4th connection from one IP with max 3 was not closed"
    extra.close()
    for i, c in enumerate(held):
        api_versions_ok(c, 10 + i)
    # A slot freed is a slot usable again.
    held.pop().close()
    time.sleep(0.3)
    again = connect(b)
    api_versions_ok(again, 20)
    assert "max.connections.per.ip" in b.log_text()
    for c in held + [again]:
        c.close()


def test_max_connections_waits_for_a_free_slot(broker_factory):
    b = broker_factory({"num.partitions": 1, "max.connections": 2})
    time.sleep(0.3)
    first, second = connect(b), connect(b)
    api_versions_ok(first, 1)
    api_versions_ok(second, 2)
    # The third is not refused: the broker stops accepting until a slot frees (Kafka's acceptor
    # blocks), so its request waits.
    third = connect(b)
    third.send(kproto.api_versions_request(3))
    assert no_answer_within(third, 1.5), "a connection over max.connections was served or closed"
    first.close()
    res = third.closed_or_response(3, timeout=5)
    assert res != "closed", "the waiting connection was closed instead of served"
    api_versions_ok(second, 4)
    assert "max.connections reached" in b.log_text()
    for c in (second, third):
        c.close()


# --------------------------------------------------------------------------
# queued.max.request.bytes
# --------------------------------------------------------------------------
def test_queued_request_bytes_cap_memory(broker_factory):
    budget = 8 * MIB
    b = broker_factory(
        {
            "num.partitions": 1,
            "socket.request.max.bytes": budget,
            "queued.max.request.bytes": budget,
            "cairn.request.read.timeout.ms": 4000,
        }
    )
    round_trip(b)
    before = proc_status(b)
    conns = []
    start = time.monotonic()
    for _ in range(16):
        c = connect(b)
        c.send(struct.pack(">i", budget - 16))
        conns.append(c)
    # 16 connections x 4 MiB of a frame each: 64 MiB if everything were buffered.
    payload = b"\x01" * (4 * MIB)
    threads = [threading.Thread(target=send_for, args=(c.sock, payload, 1.5)) for c in conns]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    during = proc_status(b)
    grew = during["VmRSS"] - before["VmRSS"]
    assert grew < 24 * MIB, f"VmRSS grew by {grew / MIB:.1f} MiB with an 8 MiB budget"
    # A small request now waits for the budget rather than failing ...
    waiting = connect(b)
    waiting.send(kproto.api_versions_request(5))
    assert no_answer_within(waiting, 0.5), "a request was read while the budget was exhausted"
    # ... and is answered once the partial frames are cut off (4 s after they began).
    res = waiting.closed_or_response(5, timeout=10)
    assert res != "closed"
    assert time.monotonic() - start < 10
    assert "queued.max.request.bytes" in b.log_text()
    for c in conns:
        assert c.wait_closed(5)
        c.close()
    waiting.close()
    round_trip(b)
    assert proc_status(b)["VmHWM"] - before["VmRSS"] < 32 * MIB


# --------------------------------------------------------------------------
# listener settings
# --------------------------------------------------------------------------
@pytest.mark.parametrize(
    "key,value",
    [
        ("advertised.listeners", "garbage"),
        ("advertised.listeners", "PLAINTEXT://0.0.0.0:9092"),
        ("listeners", "garbage"),
        ("queued.max.request.bytes", "1000"),
    ],
)
def test_bad_listener_settings_stop_the_start(tmp_path, key, value):
    argv = [str(cairn_bin()), "serve", "--listen", f"127.0.0.1:{free_port()}", "--http", "off",
            "--data-dir", str(tmp_path / "d"), "-o", f"{key}={value}"]
    p = subprocess.run(argv, capture_output=True, timeout=20, stdin=subprocess.DEVNULL)
    assert p.returncode != 0, "the broker started with a bad listener setting"
    assert key in p.stderr.decode(), p.stderr.decode()


def test_advertised_listeners_are_per_listener_name(broker_factory):
    port = free_port()
    b = broker_factory({"num.partitions": 1, "advertised.listeners": f"PLAINTEXT://127.0.0.1:{port}"})
    md = kutil.admin(b).list_topics(timeout=10)
    assert [(x.host, x.port) for x in md.brokers.values()] == [("127.0.0.1", port)]
    # As Kafka: every advertised listener must be one the broker binds.
    with pytest.raises(BrokerError, match="advertised.listeners names SSL"):
        broker_factory({"advertised.listeners": f"SSL://elsewhere:1,PLAINTEXT://127.0.0.1:{port}"})


# --------------------------------------------------------------------------
# HTTP
# --------------------------------------------------------------------------
@pytest.fixture
def hbroker(request, tmp_path):
    b = HttpBroker(
        data_dir=tmp_path / "data",
        log_path=OUTPUT_DIR / f"{_safe_name(request.node.nodeid)}.log",
        options={
            "num.partitions": 1,
            "cairn.http.allowed.hosts": "dash.example",
            "cairn.http.read.timeout.ms": 1500,
            "cairn.http.idle.timeout.ms": 3000,
        },
    )
    b.start()
    yield b
    b.stop()


def http_get(b, path, host):
    """(status, body) of a GET sent with the given Host header over a raw socket."""
    with socket.create_connection(("127.0.0.1", b.http_port), timeout=5) as s:
        s.sendall(f"GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
        data = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split(b" ")[1]), body


def test_http_host_header_is_checked(hbroker):
    b, p = hbroker, hbroker.http_port
    deadline = time.monotonic() + 10
    while http_get(b, "/health", f"127.0.0.1:{p}")[0] != 200:
        assert time.monotonic() < deadline, "/health never answered 200"
        time.sleep(0.1)
    for host in (f"127.0.0.1:{p}", "127.0.0.1", "localhost", f"localhost:{p}", f"[::1]:{p}",
                 "dash.example", f"DASH.example:{p}"):
        status, _ = http_get(b, "/metrics", host)
        assert status == 200, f"Host {host!r} refused"
    for host in ("evil.example", f"evil.example:{p}", "localhost.evil.example", "dash.example.evil"):
        for path in ("/metrics", "/api/groups", "/"):
            status, body = http_get(b, path, host)
            assert status == 421, f"Host {host!r} on {path} answered {status}"
            assert b"Host" in body and len(body) < 200


def test_http_slow_headers_and_idle_connections_are_closed(hbroker):
    b = hbroker
    # Slowloris: one header byte every 200 ms, never finishing.
    s = socket.create_connection(("127.0.0.1", b.http_port), timeout=5)
    s.sendall(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n")
    start, closed = time.monotonic(), False
    while time.monotonic() - start < 8:
        try:
            s.sendall(b"X")
        except OSError:
            closed = True
            break
        s.settimeout(0.2)
        try:
            s.recv(65536)
            # Any answer (a 408, or the close) ends the slow request.
            closed = True
            break
        except socket.timeout:
            pass
        except OSError:
            closed = True
            break
    took = time.monotonic() - start
    s.close()
    assert closed and took <= 4, f"slow headers held the connection for {took:.1f}s (bound 1.5 s)"
    assert took >= 1.0, f"slow headers cut after {took:.2f}s, before the 1.5 s bound"

    # A keep-alive connection that goes quiet after one answer is closed.
    s = socket.create_connection(("127.0.0.1", b.http_port), timeout=5)
    s.sendall(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    assert s.recv(65536).startswith(b"HTTP/1.1 ")
    start = time.monotonic()
    s.settimeout(6)
    try:
        rest = s.recv(65536)
    except ConnectionResetError:
        rest = b""
    took = time.monotonic() - start
    assert rest == b"" and took < 5, f"idle keep-alive connection open {took:.1f}s"
    s.close()

    # A request whose body stops arriving is closed too.
    s = socket.create_connection(("127.0.0.1", b.http_port), timeout=5)
    s.sendall(b"POST /health HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 100000\r\n\r\nabc")
    s.settimeout(8)
    start = time.monotonic()
    try:
        while s.recv(65536):
            pass
    except ConnectionResetError:
        pass
    took = time.monotonic() - start
    assert took < 7, f"a stalled body held the connection {took:.1f}s"
    s.close()
    assert http_get(b, "/health", "127.0.0.1")[0] == 200
