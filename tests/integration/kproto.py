"""A tiny hand-written Kafka wire-protocol codec for raw-socket tests.

Only what the tests need: request framing (header v1/v2), ApiVersions v0/v3,
Metadata v1, Produce v3, Fetch v4, and record batches (magic 2, uncompressed).
"""

import socket
import struct
import time

from kafka.record.util import calc_crc32c

API_PRODUCE = 0
API_FETCH = 1
API_LIST_OFFSETS = 2
API_METADATA = 3
API_SASL_HANDSHAKE = 17
API_API_VERSIONS = 18
API_CREATE_TOPICS = 19
API_DELETE_TOPICS = 20
API_DESCRIBE_CONFIGS = 32
API_SASL_AUTHENTICATE = 36
API_CREATE_PARTITIONS = 37

NONE = 0
OFFSET_OUT_OF_RANGE = 1
CORRUPT_MESSAGE = 2
UNKNOWN_TOPIC_OR_PARTITION = 3
TOPIC_AUTHORIZATION_FAILED = 29
GROUP_AUTHORIZATION_FAILED = 30
CLUSTER_AUTHORIZATION_FAILED = 31
UNSUPPORTED_SASL_MECHANISM = 33
ILLEGAL_SASL_STATE = 34
UNSUPPORTED_VERSION = 35
SASL_AUTHENTICATION_FAILED = 58


# --------------------------------------------------------------------------
# primitive encoders
# --------------------------------------------------------------------------
def i8(v):
    return struct.pack(">b", v)


def i16(v):
    return struct.pack(">h", v)


def i32(v):
    return struct.pack(">i", v)


def i64(v):
    return struct.pack(">q", v)


def string(s):
    if s is None:
        return i16(-1)
    b = s.encode() if isinstance(s, str) else s
    return i16(len(b)) + b


def nbytes(b):
    if b is None:
        return i32(-1)
    return i32(len(b)) + b


def uvarint(v):
    out = bytearray()
    while True:
        byte = v & 0x7F
        v >>= 7
        if v:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def varint(v):
    """Zig-zag signed varint (works for 64-bit values too)."""
    return uvarint((v << 1) ^ (v >> 63))


def compact_string(s):
    b = s.encode()
    return uvarint(len(b) + 1) + b


def array(items):
    return i32(len(items)) + b"".join(items)


# --------------------------------------------------------------------------
# framing
# --------------------------------------------------------------------------
def request(api_key, api_version, correlation_id, body, client_id="raw-test", header_version=1):
    header = i16(api_key) + i16(api_version) + i32(correlation_id) + string(client_id)
    if header_version >= 2:
        header += uvarint(0)  # no tagged fields
    payload = header + body
    return i32(len(payload)) + payload


class Conn:
    def __init__(self, host, port, timeout=10.0):
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.sock.settimeout(timeout)

    def close(self):
        self.sock.close()

    def send(self, data):
        self.sock.sendall(data)

    def _read_exact(self, n):
        buf = bytearray()
        while len(buf) < n:
            chunk = self.sock.recv(n - len(buf))
            if not chunk:
                return None
            buf += chunk
        return bytes(buf)

    def read_frame(self):
        """One response frame (without the size prefix), or None if the peer closed."""
        try:
            head = self._read_exact(4)
            if head is None:
                return None
            (size,) = struct.unpack(">i", head)
            return self._read_exact(size)
        except ConnectionResetError:
            return None

    def wait_closed(self, timeout=10.0):
        """True if the peer closes the connection within `timeout` (reading and dropping any bytes)."""
        deadline = time.monotonic() + timeout
        self.sock.settimeout(0.2)
        while time.monotonic() < deadline:
            try:
                data = self.sock.recv(65536)
            except socket.timeout:
                continue
            except (ConnectionResetError, BrokenPipeError):
                return True
            if not data:
                return True
        return False

    def closed_or_response(self, correlation_id, timeout=10.0):
        """'closed' if the broker closes the connection, or the response frame for `correlation_id`.

        Fails (AssertionError) if the broker does neither within `timeout`.
        """
        self.sock.settimeout(timeout)
        try:
            frame = self.read_frame()
        except socket.timeout:
            raise AssertionError(f"broker neither answered nor closed the connection within {timeout}s")
        if frame is None:
            return "closed"
        (cid,) = struct.unpack(">i", frame[:4])
        assert cid == correlation_id, f"response correlation id {cid}, expected {correlation_id}"
        return frame


class Reader:
    def __init__(self, data):
        self.data = data
        self.pos = 0

    def take(self, n):
        assert self.pos + n <= len(self.data), "response truncated"
        b = self.data[self.pos:self.pos + n]
        self.pos += n
        return b

    def i8(self):
        return struct.unpack(">b", self.take(1))[0]

    def i16(self):
        return struct.unpack(">h", self.take(2))[0]

    def i32(self):
        return struct.unpack(">i", self.take(4))[0]

    def i64(self):
        return struct.unpack(">q", self.take(8))[0]

    def string(self):
        n = self.i16()
        return None if n < 0 else self.take(n).decode()

    def nbytes(self):
        n = self.i32()
        return None if n < 0 else self.take(n)

    def uvarint(self):
        shift = result = 0
        while True:
            b = self.take(1)[0]
            result |= (b & 0x7F) << shift
            if not b & 0x80:
                return result
            shift += 7

    def varint(self):
        v = self.uvarint()
        return (v >> 1) ^ -(v & 1)

    def remaining(self):
        return len(self.data) - self.pos


# --------------------------------------------------------------------------
# ApiVersions
# --------------------------------------------------------------------------
def api_versions_request(correlation_id, version=0):
    if version >= 3:
        body = compact_string("raw-test") + compact_string("0.1") + uvarint(0)
        return request(API_API_VERSIONS, version, correlation_id, body, header_version=2)
    return request(API_API_VERSIONS, version, correlation_id, b"")


def parse_api_versions_v0(frame):
    """-> (correlation_id, error_code, {api_key: (min, max)}). Response header v0, body v0."""
    r = Reader(frame)
    cid = r.i32()
    error = r.i16()
    n = r.i32()
    apis = {}
    for _ in range(max(n, 0)):
        key, lo, hi = r.i16(), r.i16(), r.i16()
        apis[key] = (lo, hi)
    return cid, error, apis


# --------------------------------------------------------------------------
# Metadata v1
# --------------------------------------------------------------------------
def metadata_request(correlation_id, topics=None):
    body = i32(-1) if topics is None else array([string(t) for t in topics])
    return request(API_METADATA, 1, correlation_id, body)


def parse_metadata_v1(frame):
    r = Reader(frame)
    cid = r.i32()
    brokers = []
    for _ in range(r.i32()):
        brokers.append((r.i32(), r.string(), r.i32(), r.string()))
    controller = r.i32()
    topics = {}
    for _ in range(r.i32()):
        err, name, _internal = r.i16(), r.string(), r.i8()
        parts = {}
        for _ in range(r.i32()):
            perr, pid, leader = r.i16(), r.i32(), r.i32()
            replicas = [r.i32() for _ in range(r.i32())]
            isr = [r.i32() for _ in range(r.i32())]
            parts[pid] = (perr, leader, replicas, isr)
        topics[name] = (err, parts)
    return cid, brokers, controller, topics


# --------------------------------------------------------------------------
# Record batches (magic 2)
# --------------------------------------------------------------------------
def record_batch(records, base_offset=0, base_timestamp=None):
    """records: list of (key|None, value|None). Uncompressed, no headers, valid CRC."""
    if base_timestamp is None:
        base_timestamp = int(time.time() * 1000)
    body = bytearray()
    for i, (key, value) in enumerate(records):
        rec = i8(0) + varint(0) + varint(i)
        rec += varint(-1) if key is None else varint(len(key)) + key
        rec += varint(-1) if value is None else varint(len(value)) + value
        rec += uvarint(0)  # headers
        body += varint(len(rec)) + rec
    after_crc = (
        i16(0)  # attributes
        + i32(len(records) - 1)  # last offset delta
        + i64(base_timestamp)
        + i64(base_timestamp)  # max timestamp
        + i64(-1)  # producer id
        + i16(-1)  # producer epoch
        + i32(-1)  # base sequence
        + i32(len(records))
        + bytes(body)
    )
    crc = calc_crc32c(after_crc)
    after_length = i32(-1) + i8(2) + struct.pack(">I", crc) + after_crc  # leader epoch, magic, crc
    return i64(base_offset) + i32(len(after_length)) + after_length


# byte offset of the CRC field inside a batch: baseOffset(8) length(4) epoch(4) magic(1)
BATCH_CRC_POS = 17


def corrupt_crc(batch):
    b = bytearray(batch)
    b[BATCH_CRC_POS] ^= 0xFF
    return bytes(b)


def corrupt_payload(batch):
    b = bytearray(batch)
    b[-3] ^= 0x55  # inside the last record's value
    return bytes(b)


def parse_record_batches(data):
    """-> list of (offset, key, value) for uncompressed v2 batches (partial trailing batch ignored)."""
    out = []
    r = Reader(data)
    while r.remaining() >= 12:
        base_offset = r.i64()
        length = r.i32()
        if r.remaining() < length:
            break
        b = Reader(r.take(length))
        b.i32()
        magic = b.i8()
        assert magic == 2, f"magic {magic}"
        b.take(4)
        attributes = b.i16()
        assert attributes & 0x07 == 0, "compressed batch"
        b.i32()
        b.i64()
        b.i64()
        b.i64()
        b.i16()
        b.i32()
        count = b.i32()
        for _ in range(count):
            b.varint()
            b.i8()
            b.varint()
            offset_delta = b.varint()
            klen = b.varint()
            key = None if klen < 0 else b.take(klen)
            vlen = b.varint()
            value = None if vlen < 0 else b.take(vlen)
            for _ in range(b.uvarint()):
                b.take(b.varint())
                hl = b.varint()
                if hl > 0:
                    b.take(hl)
            out.append((base_offset + offset_delta, key, value))
    return out


# --------------------------------------------------------------------------
# Produce v3
# --------------------------------------------------------------------------
def produce_request(correlation_id, topic, partition, batch, acks=1, timeout_ms=10000):
    body = (
        string(None)  # transactional id
        + i16(acks)
        + i32(timeout_ms)
        + array([string(topic) + array([i32(partition) + nbytes(batch)])])
    )
    return request(API_PRODUCE, 3, correlation_id, body)


def parse_produce_v3(frame):
    """-> (correlation_id, {(topic, partition): (error, base_offset)})"""
    r = Reader(frame)
    cid = r.i32()
    out = {}
    for _ in range(r.i32()):
        topic = r.string()
        for _ in range(r.i32()):
            part, err, base, _lat = r.i32(), r.i16(), r.i64(), r.i64()
            out[(topic, part)] = (err, base)
    return cid, out


# --------------------------------------------------------------------------
# Fetch v4
# --------------------------------------------------------------------------
def fetch_request(correlation_id, topic, partition, offset, max_wait_ms=100, min_bytes=1, max_bytes=1 << 20):
    body = (
        i32(-1)  # replica id
        + i32(max_wait_ms)
        + i32(min_bytes)
        + i32(max_bytes)
        + i8(0)  # isolation level: read uncommitted
        + array([string(topic) + array([i32(partition) + i64(offset) + i32(max_bytes)])])
    )
    return request(API_FETCH, 4, correlation_id, body)


def parse_fetch_v4(frame):
    """-> (correlation_id, {(topic, partition): (error, high_watermark, records_bytes)})"""
    r = Reader(frame)
    cid = r.i32()
    r.i32()  # throttle
    out = {}
    for _ in range(r.i32()):
        topic = r.string()
        for _ in range(r.i32()):
            part, err, hw, _lso = r.i32(), r.i16(), r.i64(), r.i64()
            n_aborted = r.i32()
            for _ in range(max(n_aborted, 0)):
                r.i64()
                r.i64()
            out[(topic, part)] = (err, hw, r.nbytes())
    return cid, out


# --------------------------------------------------------------------------
# SASL (SaslHandshake v1, SaslAuthenticate v0/v1: non-flexible, request header v1)
# --------------------------------------------------------------------------
def sasl_handshake_request(correlation_id, mechanism, version=1):
    return request(API_SASL_HANDSHAKE, version, correlation_id, string(mechanism))


def parse_sasl_handshake(frame):
    """(error_code, [enabled mechanisms])."""
    r = Reader(frame)
    r.i32()  # correlation id
    error = r.i16()
    mechanisms = [r.string() for _ in range(r.i32())]
    return error, mechanisms


def sasl_authenticate_request(correlation_id, token, version=1):
    return request(API_SASL_AUTHENTICATE, version, correlation_id, nbytes(token))


def parse_sasl_authenticate(frame, version=1):
    """(error_code, error_message, auth_bytes, session_lifetime_ms or None for v0)."""
    r = Reader(frame)
    r.i32()  # correlation id
    error = r.i16()
    message = r.string()
    auth = r.nbytes()
    lifetime = r.i64() if version >= 1 else None
    return error, message, auth, lifetime


def plain_token(user, password, authzid=""):
    return f"{authzid}\0{user}\0{password}".encode()
