#!/usr/bin/env python3
"""Builds the fuzz seed corpus from real client traffic.

Starts `cairn serve` on a free 127.0.0.1 port behind a recording TCP proxy (the broker advertises
the proxy's address, so every connection of every client goes through it), drives librdkafka
(confluent-kafka), kafka-python and kafkajs through produce (each codec), consume in groups,
offsets and admin calls, then writes:

  corpus/request_frame/      every distinct request frame (the bytes after the size prefix)
  corpus/record_batch/       every distinct record batch the broker stored
  corpus/segment_recovery/   a flag byte (bit 0: clean-shutdown marker) + a stored segment prefix

Usage: capture.py CAIRN_BIN NODE_MODULES_DIR [OUT_DIR]   (OUT_DIR defaults to fuzz/corpus)
Needs confluent-kafka and kafka-python importable, and kafkajs under NODE_MODULES_DIR.
"""

import asyncio
import hashlib
import os
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
MAX_FRAME = 8 * 1024  # keeps the committed corpus small; big produce frames add no new paths
PER_VERSION = 4  # frames kept per API and version: the smallest distinct ones
API_NAMES = {
    0: "Produce", 1: "Fetch", 2: "ListOffsets", 3: "Metadata", 8: "OffsetCommit",
    9: "OffsetFetch", 10: "FindCoordinator", 11: "JoinGroup", 12: "Heartbeat",
    13: "LeaveGroup", 14: "SyncGroup", 15: "DescribeGroups", 16: "ListGroups",
    18: "ApiVersions", 19: "CreateTopics", 20: "DeleteTopics", 22: "InitProducerId",
    32: "DescribeConfigs", 37: "CreatePartitions", 42: "DeleteGroups", 47: "OffsetDelete",
    60: "DescribeCluster", 24: "AddPartitionsToTxn", 25: "AddOffsetsToTxn", 26: "EndTxn",
    28: "TxnOffsetCommit", 61: "DescribeProducers", 65: "DescribeTransactions",
    66: "ListTransactions", 68: "ConsumerGroupHeartbeat", 69: "ConsumerGroupDescribe",
    33: "AlterConfigs", 44: "IncrementalAlterConfigs", 74: "ListConfigResources",
}


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Recorder:
    def __init__(self):
        self.frames = {}
        self.lock = threading.Lock()

    def add(self, frame):
        if len(frame) < 8 or len(frame) > MAX_FRAME:
            return
        key, ver = struct.unpack(">hh", frame[:4])
        digest = hashlib.sha1(frame).hexdigest()[:12]
        name = f"{API_NAMES.get(key, key)}-v{ver}-{digest}"
        with self.lock:
            self.frames[name] = bytes(frame)


async def pipe(reader, writer, on_frame=None):
    buf = bytearray()
    try:
        while True:
            data = await reader.read(65536)
            if not data:
                break
            if on_frame is not None:
                buf += data
                while len(buf) >= 4:
                    (size,) = struct.unpack(">i", buf[:4])
                    if len(buf) < 4 + size:
                        break
                    on_frame(buf[4 : 4 + size])
                    del buf[: 4 + size]
            writer.write(data)
            await writer.drain()
    except (ConnectionError, asyncio.CancelledError):
        pass
    finally:
        writer.close()


def run_proxy(listen_port, broker_port, recorder, ready, stop):
    async def handle(creader, cwriter):
        try:
            breader, bwriter = await asyncio.open_connection("127.0.0.1", broker_port)
        except OSError:
            cwriter.close()
            return
        await asyncio.gather(
            pipe(creader, bwriter, recorder.add), pipe(breader, cwriter), return_exceptions=True
        )

    async def main():
        server = await asyncio.start_server(handle, "127.0.0.1", listen_port)
        ready.set()
        while not stop.is_set():
            await asyncio.sleep(0.1)
        server.close()

    asyncio.run(main())


def wait_port(port, timeout=20):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"nothing listens on {port}")


def librdkafka_traffic(bootstrap):
    from confluent_kafka import Consumer, Producer, TopicPartition
    from confluent_kafka.admin import AdminClient, ConfigResource, NewPartitions, NewTopic

    admin = AdminClient({"bootstrap.servers": bootstrap})
    for f in admin.create_topics([NewTopic("rk", 2, 1), NewTopic("rk-gone", 1, 1)]).values():
        f.result(10)
    # Topics with their own codec: the stored batches are the broker's recompressed ones.
    for f in admin.create_topics([NewTopic("rk-gzip", 1, 1, config={"compression.type": "gzip"}),
                                  NewTopic("rk-zstd", 1, 1, config={"compression.type": "zstd",
                                                                    "compression.zstd.level": "9"})]).values():
        f.result(10)
    for t in ["rk-gzip", "rk-zstd"]:
        p = Producer({"bootstrap.servers": bootstrap, "compression.type": "lz4", "linger.ms": 5})
        for i in range(20):
            p.produce(t, key=f"k{i}".encode(), value=f"{t} value {i}".encode())
        p.flush(10)
    for codec in ["none", "gzip", "snappy", "lz4", "zstd"]:
        p = Producer({"bootstrap.servers": bootstrap, "compression.type": codec,
                      "enable.idempotence": codec == "zstd", "linger.ms": 5})
        for i in range(20):
            p.produce("rk", key=f"k{i}".encode(), value=(f"{codec} value {i} " * 3).encode(),
                      headers=[("h", b"x")] if i % 5 == 0 else None)
        p.flush(10)
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "rk-group",
                  "auto.offset.reset": "earliest", "enable.auto.commit": False})
    c.subscribe(["rk"])
    got, deadline = 0, time.monotonic() + 20
    while got < 100 and time.monotonic() < deadline:
        m = c.poll(0.5)
        if m is not None and not m.error():
            got += 1
            if got % 25 == 0:
                c.commit(m, asynchronous=False)
    c.committed([TopicPartition("rk", 0), TopicPartition("rk", 1)], timeout=10)
    c.get_watermark_offsets(TopicPartition("rk", 0), timeout=10)
    c.offsets_for_times([TopicPartition("rk", 0, 0)], timeout=10)
    c.close()
    for f in admin.describe_configs([ConfigResource(ConfigResource.Type.TOPIC, "rk")]).values():
        f.result(10)
    config_traffic(admin)
    for f in admin.create_partitions([NewPartitions("rk", 3)]).values():
        f.result(10)
    for f in admin.describe_consumer_groups(["rk-group"]).values():
        f.result(10)
    admin.list_consumer_groups().result(10)
    for f in admin.delete_topics(["rk-gone"]).values():
        f.result(10)
    # DeleteRecords: a move, and an offset past the end (refused).
    for offset in (1, 1 << 40):
        for f in admin.delete_records([TopicPartition("rk", 0, offset)]).values():
            try:
                f.result(10)
            except Exception:
                pass
    # A transactional producer: consume-transform-produce with offsets in the transaction,
    # a commit and an abort, read back read_committed (transactional and control batches).
    tp = Producer({"bootstrap.servers": bootstrap, "transactional.id": "rk-txn", "linger.ms": 5})
    tp.init_transactions(10)
    group_meta = Consumer({"bootstrap.servers": bootstrap,
                           "group.id": "rk-txn-group"}).consumer_group_metadata()
    for commit in (True, False):
        tp.begin_transaction()
        for i in range(5):
            tp.produce("rk", key=f"t{i}".encode(), value=b"in a transaction")
        tp.flush(10)
        tp.send_offsets_to_transaction([TopicPartition("rk", 0, 7)], group_meta, 10)
        if commit:
            tp.commit_transaction(10)
        else:
            tp.abort_transaction(10)
    rc = Consumer({"bootstrap.servers": bootstrap, "group.id": "rk-rc",
                   "isolation.level": "read_committed", "auto.offset.reset": "earliest"})
    rc.assign([TopicPartition("rk", p, 0) for p in range(3)])
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        rc.poll(0.2)
    rc.close()
    # A consumer group with the broker's assignment (KIP-848): heartbeats with a regex
    # subscription, commits with the member epoch, a describe, the leave.
    kc = Consumer({"bootstrap.servers": bootstrap, "group.id": "rk-848",
                   "group.protocol": "consumer", "auto.offset.reset": "earliest",
                   "enable.auto.commit": False})
    kc.subscribe(["^rk.*"])
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        m = kc.poll(0.2)
        if m is not None and not m.error():
            kc.commit(m, asynchronous=False)
            break
    for f in admin.describe_consumer_groups(["rk-848"]).values():
        f.result(10)
    kc.close()
    return got


def config_traffic(admin):
    """IncrementalAlterConfigs (every operation, validate-only, a bad key), AlterConfigs, and a
    broker resource; refusals are part of the traffic."""
    from confluent_kafka.admin import AlterConfigOpType, ConfigEntry, ConfigResource

    def inc(rtype, name, entries, validate_only=False):
        res = ConfigResource(rtype, name, incremental_configs=entries)
        for f in admin.incremental_alter_configs([res], validate_only=validate_only).values():
            try:
                f.result(10)
            except Exception:
                pass

    t = ConfigResource.Type.TOPIC
    inc(t, "rk", [ConfigEntry("retention.ms", "3600000", incremental_operation=AlterConfigOpType.SET),
                  ConfigEntry("cleanup.policy", "compact", incremental_operation=AlterConfigOpType.APPEND)])
    inc(t, "rk", [ConfigEntry("cleanup.policy", "compact", incremental_operation=AlterConfigOpType.SUBTRACT),
                  ConfigEntry("retention.ms", None, incremental_operation=AlterConfigOpType.DELETE)])
    inc(t, "rk", [ConfigEntry("no.such.key", "1", incremental_operation=AlterConfigOpType.SET)], True)
    inc(ConfigResource.Type.BROKER, "1",
        [ConfigEntry("message.max.bytes", "2000000", incremental_operation=AlterConfigOpType.SET)])
    res = ConfigResource(t, "rk", set_config={"retention.ms": "7200000"})
    for f in admin.alter_configs([res]).values():
        f.result(10)


def uvarint(v):
    out = b""
    while v >= 0x80:
        out += bytes([v & 0x7F | 0x80])
        v >>= 7
    return out + bytes([v])


def newest_versions_traffic(bootstrap):
    """Produce v13 and Fetch v18 (topics by id), which no client here sends yet."""
    from confluent_kafka import TopicCollection
    from confluent_kafka.admin import AdminClient

    admin = AdminClient({"bootstrap.servers": bootstrap})  # kept alive until the result is in
    [f] = admin.describe_topics(TopicCollection(["rk-gzip"])).values()
    d = f.result(10)
    tid = struct.pack(">qq", d.topic_id.get_most_significant_bits(), d.topic_id.get_least_significant_bits())
    from kafka.record.util import calc_crc32c

    record = b"\x00\x00\x00\x04k0\x04v0\x00"  # attributes, ts delta, offset delta, key, value, headers
    record = uvarint(len(record) * 2) + record  # zigzag length
    after_crc = struct.pack(">hiqqqhii", 0, 0, 1000, 1000, -1, -1, -1, 1) + record
    batch = (struct.pack(">qiib", 0, 9 + len(after_crc), -1, 2) + struct.pack(">I", calc_crc32c(after_crc))
             + after_crc)
    header = lambda key, ver, cid: struct.pack(">hhih", key, ver, cid, 4) + b"seed" + b"\x00"
    produce = (header(0, 13, 1) + b"\x00" + struct.pack(">hi", 1, 5000) + uvarint(2) + tid + uvarint(2)
               + struct.pack(">i", 0) + uvarint(len(batch) + 1) + batch + b"\x00\x00\x00")
    fetch = (header(1, 18, 2) + struct.pack(">iiibii", 100, 1, 1 << 20, 0, 0, -1) + uvarint(2) + tid
             + uvarint(2) + struct.pack(">iiqiqi", 0, -1, 0, -1, -1, 1 << 20) + b"\x00\x00"
             + uvarint(1) + uvarint(1) + b"\x00")
    host, port = bootstrap.split(":")
    with socket.create_connection((host, int(port)), timeout=10) as s:
        for frame in (produce, fetch):
            s.sendall(struct.pack(">i", len(frame)) + frame)
            (n,) = struct.unpack(">i", s.recv(4, socket.MSG_WAITALL))
            s.recv(n, socket.MSG_WAITALL)


def kafka_python_traffic(bootstrap):
    from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer
    from kafka.admin import NewTopic

    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    admin.create_topics([NewTopic("kp", 2, 1)])
    for codec in [None, "gzip", "snappy", "lz4"]:
        p = KafkaProducer(bootstrap_servers=bootstrap, compression_type=codec, linger_ms=5)
        for i in range(20):
            p.send("kp", key=f"k{i}".encode(), value=f"{codec} value {i}".encode() * 4)
        p.flush(10)
        p.close()
    c = KafkaConsumer("kp", bootstrap_servers=bootstrap, group_id="kp-group",
                      auto_offset_reset="earliest", enable_auto_commit=False,
                      consumer_timeout_ms=8000)
    got = 0
    for _ in c:
        got += 1
        if got >= 80:
            break
    c.commit()
    c.close()
    try:
        admin.describe_consumer_groups(["kp-group"])
    except ValueError:
        # kafka-python cannot parse authorized_operations = INT32_MIN ("not requested"), which
        # Kafka sends too; the request frame is captured all the same.
        pass
    admin.list_consumer_group_offsets("kp-group")
    admin.list_consumer_groups()
    admin.delete_consumer_groups(["kp-group"])
    from kafka.admin import ConfigResource, ConfigResourceType
    admin.alter_configs([ConfigResource(ConfigResourceType.TOPIC, "kp", configs={"retention.bytes": "1000000"})])
    admin.describe_configs([ConfigResource(ConfigResourceType.BROKER, "1")])
    admin.close()
    return got


def main():
    cairn_bin, node_modules = sys.argv[1], sys.argv[2]
    out = Path(sys.argv[3]) if len(sys.argv) > 3 else HERE.parent / "corpus"
    broker_port, proxy_port = free_port(), free_port()
    data = Path(tempfile.mkdtemp(prefix="cairn-seeds-"))
    recorder, ready, stop = Recorder(), threading.Event(), threading.Event()
    proxy = threading.Thread(target=run_proxy,
                             args=(proxy_port, broker_port, recorder, ready, stop), daemon=True)
    proxy.start()
    ready.wait(10)
    bootstrap = f"127.0.0.1:{proxy_port}"
    log = open(data / "broker.log", "wb")
    broker = subprocess.Popen(
        [cairn_bin, "serve", "--listen", f"127.0.0.1:{broker_port}", "--data-dir",
         str(data / "d"), "-o", f"advertised.listeners=PLAINTEXT://{bootstrap}"],
        stdout=log, stderr=log, stdin=subprocess.DEVNULL)
    try:
        wait_port(broker_port)
        print("librdkafka consumed", librdkafka_traffic(bootstrap))
        print("kafka-python consumed", kafka_python_traffic(bootstrap))
        newest_versions_traffic(bootstrap)
        env = {**os.environ, "NODE_PATH": node_modules, "BOOTSTRAP": bootstrap}
        subprocess.run(["node", str(HERE / "kafkajs_traffic.js")], env=env, check=True,
                       timeout=120)
    finally:
        broker.terminate()
        broker.wait(20)
        stop.set()
        proxy.join(5)

    targets = {t: out / t for t in ["request_frame", "record_batch", "segment_recovery"]}
    for d in targets.values():
        d.mkdir(parents=True, exist_ok=True)
    kept = {}
    for name, frame in sorted(recorder.frames.items(), key=lambda kv: (len(kv[1]), kv[0])):
        api_version = name.rsplit("-", 1)[0]
        if kept.get(api_version, 0) < PER_VERSION:
            kept[api_version] = kept.get(api_version, 0) + 1
            (targets["request_frame"] / name).write_bytes(frame)
    batches, segments = {}, 0
    for seg in sorted((data / "d").rglob("*.log")):
        raw = seg.read_bytes()
        if not raw:
            continue
        pos = 0
        while pos + 12 <= len(raw):
            (length,) = struct.unpack(">i", raw[pos + 8 : pos + 12])
            b = raw[pos : pos + 12 + length]
            pos += 12 + length
            if len(b) <= MAX_FRAME:
                codec = b[22] & 7 if len(b) > 22 else 0
                batches[f"codec{codec}-{hashlib.sha1(b).hexdigest()[:12]}"] = b
        if segments < 6:
            head = raw[:MAX_FRAME]
            for flag in (0, 1):
                name = f"{seg.parent.name}-{flag}-{hashlib.sha1(head).hexdigest()[:12]}"
                (targets["segment_recovery"] / name).write_bytes(bytes([flag]) + head)
            segments += 1
    for name, b in sorted(batches.items()):
        (targets["record_batch"] / name).write_bytes(b)
    print(f"{sum(kept.values())} frames, {len(batches)} batches, {segments} segments -> {out}")
    shutil.rmtree(data, ignore_errors=True)


if __name__ == "__main__":
    main()
