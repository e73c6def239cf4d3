"""Start, stop, restart and crash a `cairn serve` process for integration tests.

Every broker gets a free 127.0.0.1 port and its own data directory. Its stderr
is written to a log file (appended across restarts) so a failing test can show
what the broker said.
"""

import urllib.request
import urllib.error
import json
import os
import re
import signal
import socket
import struct
import subprocess
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_BIN = REPO_ROOT / "target" / "release" / "cairn"

START_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 10.0


def cairn_bin():
    return Path(os.environ.get("CAIRN_BIN", str(DEFAULT_BIN)))


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class BrokerError(RuntimeError):
    pass


class Broker:
    """One cairn broker process (restartable on the same port and data dir)."""

    def __init__(self, data_dir, log_path, options=None, port=None, config_file=None):
        self.data_dir = Path(data_dir)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.log_path = Path(log_path)
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self.options = dict(options or {})
        self.port = port or free_port()
        self.config_file = config_file
        self.proc = None
        self.starts = 0

    # -- addresses -----------------------------------------------------------
    @property
    def host(self):
        return "127.0.0.1"

    @property
    def bootstrap(self):
        return f"127.0.0.1:{self.port}"

    # -- lifecycle -----------------------------------------------------------
    def argv(self):
        argv = [
            str(cairn_bin()),
            "serve",
            "--listen",
            self.bootstrap,
            "--data-dir",
            str(self.data_dir),
        ]
        if self.config_file:
            argv += ["--config", str(self.config_file)]
        for key, value in self.options.items():
            argv += ["-o", f"{key}={value}"]
        return argv

    def start(self, timeout=START_TIMEOUT_S):
        if self.proc is not None and self.proc.poll() is None:
            raise BrokerError("broker already running")
        binary = cairn_bin()
        if not binary.exists():
            raise BrokerError(f"broker binary not built: {binary}")
        self.starts += 1
        with open(self.log_path, "ab") as log:
            log.write(f"\n===== start #{self.starts}: {' '.join(self.argv())}\n".encode())
            log.flush()
            self.proc = subprocess.Popen(
                self.argv(),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                env={**os.environ, "RUST_BACKTRACE": "1", "NO_COLOR": "1"},
            )
        self.wait_ready(timeout)
        return self

    def wait_ready(self, timeout=START_TIMEOUT_S):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            code = self.proc.poll()
            if code is not None:
                raise BrokerError(
                    f"broker exited with code {code} before accepting connections; "
                    f"stderr:\n{self.log_tail()}"
                )
            # Ready means answering: the port is bound before the broker loads its data, so a
            # TCP connect alone can succeed before anything of the start is done (or logged).
            try:
                with socket.create_connection((self.host, self.port), timeout=0.5) as s:
                    s.settimeout(1.0)
                    body = struct.pack(">hhih", 18, 0, 1, 5) + b"ready"  # ApiVersions v0
                    s.sendall(struct.pack(">i", len(body)) + body)
                    if len(s.recv(4)) == 4:
                        return
            except OSError:
                pass
            time.sleep(0.05)
        raise BrokerError(
            f"broker did not accept TCP connections on {self.bootstrap} within "
            f"{timeout}s; stderr:\n{self.log_tail()}"
        )

    def is_running(self):
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout=STOP_TIMEOUT_S):
        """SIGTERM, then SIGKILL after `timeout`. Returns the exit code."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self._log_note(f"broker ignored SIGTERM for {timeout}s; sending SIGKILL")
                self.proc.kill()
                self.proc.wait(timeout=timeout)
        return self.proc.returncode

    def kill9(self):
        """Crash the broker (SIGKILL) and reap it."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=STOP_TIMEOUT_S)
            self._log_note("broker killed with SIGKILL by the test")

    def restart(self, graceful=True, timeout=START_TIMEOUT_S):
        if graceful:
            self.stop()
        else:
            self.kill9()
        return self.start(timeout)

    # -- logs ----------------------------------------------------------------
    def _log_note(self, text):
        with open(self.log_path, "ab") as log:
            log.write(f"===== {text}\n".encode())

    def log_text(self):
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def log_tail(self, max_chars=20000):
        text = self.log_text()
        if len(text) > max_chars:
            text = "[... cut ...]\n" + text[-max_chars:]
        return text


class HttpBroker(Broker):
    """A broker that also serves its HTTP API on its own free port."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.http_port = free_port()

    def argv(self):
        return super().argv() + ["--http", f"127.0.0.1:{self.http_port}"]

    def url(self, path):
        return f"http://127.0.0.1:{self.http_port}{path}"

    def get_json(self, path):
        """(status, decoded body or None); status None if the listener does not answer."""
        try:
            with urllib.request.urlopen(self.url(path), timeout=5) as r:
                return r.status, json.loads(r.read() or b"null")
        except urllib.error.HTTPError as e:
            return e.code, None
        except OSError:
            return None, None


# The broker's start-up line for each bound listener, e.g.
#   ... cairn listener bound name=SASL_SSL addr=127.0.0.1:40123
# (field order free, values optionally quoted).
LISTENER_BOUND = "cairn listener bound"
_FIELD_NAME = re.compile(r"\bname=\"?([A-Za-z0-9_.-]+)\"?")
_FIELD_ADDR = re.compile(r"\baddr=\"?([0-9.]+):(\d+)\"?")


def listener_names(listeners):
    """The names in a Kafka `listeners` value: "SASL_SSL://h:0,CERTS://h:0" -> [SASL_SSL, CERTS]."""
    return [item.split("://", 1)[0].strip().upper() for item in listeners.split(",") if item.strip()]


def bound_listeners(log_text):
    """{NAME: port} from the listener lines in `log_text` (later lines win)."""
    found = {}
    for line in log_text.splitlines():
        if LISTENER_BOUND not in line:
            continue
        name = _FIELD_NAME.search(line)
        addr = _FIELD_ADDR.search(line)
        if name and addr:
            found[name.group(1).upper()] = int(addr.group(2))
    return found


class SecureBroker(Broker):
    """A broker started with Kafka's `listeners` (several named listeners on port 0) instead of
    `--listen`. Each listener's port is read from the broker's "cairn listener bound" log line of
    the current start, so it may change across restarts. `options["listeners"]` must include a
    listener named PLAINTEXT: readiness is an ApiVersions answer there (as for `Broker`).
    With `http=True` the HTTP listener is on its own free port."""

    def __init__(self, *args, http=False, **kwargs):
        super().__init__(*args, **kwargs)
        self.listener_ports = {}
        self.http_port = free_port() if http else None

    def argv(self):
        argv = [str(cairn_bin()), "serve", "--data-dir", str(self.data_dir)]
        if self.config_file:
            argv += ["--config", str(self.config_file)]
        for key, value in self.options.items():
            argv += ["-o", f"{key}={value}"]
        if self.http_port is not None:
            argv += ["--http", f"127.0.0.1:{self.http_port}"]
        return argv

    def _this_start_log(self):
        text = self.log_text()
        marker = f"===== start #{self.starts}:"
        at = text.rfind(marker)
        return text[at:] if at >= 0 else ""

    def wait_ready(self, timeout=START_TIMEOUT_S):
        deadline = time.monotonic() + timeout
        want = listener_names(self.options.get("listeners", ""))
        if "PLAINTEXT" not in want:
            raise BrokerError(f"SecureBroker needs a PLAINTEXT listener, got {want}")
        while True:
            found = bound_listeners(self._this_start_log())
            if all(n in found for n in want):
                break
            code = self.proc.poll()
            if code is not None:
                raise BrokerError(
                    f"broker exited with code {code} before binding its listeners; "
                    f"stderr:\n{self.log_tail()}"
                )
            if time.monotonic() >= deadline:
                raise BrokerError(
                    f"no '{LISTENER_BOUND}' line for each of {want} within {timeout}s "
                    f"(found {found}); stderr:\n{self.log_tail()}"
                )
            time.sleep(0.05)
        self.listener_ports = {n: found[n] for n in want}
        self.port = self.listener_ports["PLAINTEXT"]
        super().wait_ready(max(1.0, deadline - time.monotonic()))

    def address(self, name):
        return ("127.0.0.1", self.listener_ports[name.upper()])

    def bootstrap_for(self, name):
        return f"127.0.0.1:{self.listener_ports[name.upper()]}"

    def url(self, path, scheme="http"):
        return f"{scheme}://127.0.0.1:{self.http_port}{path}"


def mount_tmpfs(path, size):
    """Mounts a `size`-byte tmpfs on the existing directory `path`. Raises OSError if it cannot
    (it needs root); `unmount(path)` undoes it."""
    r = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
        capture_output=True,
        text=True,
    )
    if r.returncode != 0:
        raise OSError(r.stderr.strip() or f"mount exited with {r.returncode}")


def unmount(path):
    subprocess.run(["umount", "-l", str(path)], capture_output=True)
