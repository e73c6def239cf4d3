'use strict'
// kafkajs consumer groups against cairn: a two-member group consuming and
// committing, group admin calls, and offsets shared with the Python clients
// (confluent-kafka / kafka-python from the project's venv, run as a child process).
const { test, before, after } = require('node:test')
const assert = require('node:assert/strict')
const fs = require('node:fs')
const path = require('node:path')
const { spawnSync } = require('node:child_process')
const { startBroker, withBrokerLog, sleep } = require('./broker')
const { makeKafka, makeProducer, uniqueTopic } = require('./kafka')

const REPO_ROOT = path.resolve(__dirname, '..', '..')
const PYTHON = process.env.PYTHON_VENV_BIN || path.join(REPO_ROOT, '.venv', 'bin', 'python')

let broker, kafka, admin, producer
const logged = (fn) => withBrokerLog(() => broker, fn)

before(async () => {
  broker = await startBroker('groups.test', {
    'num.partitions': 4,
    'group.initial.rebalance.delay.ms': 0
  })
  kafka = makeKafka(broker)
  admin = kafka.admin()
  await admin.connect()
  producer = makeProducer(kafka)
  await producer.connect()
})

after(async () => {
  if (producer) await producer.disconnect().catch(() => {})
  if (admin) await admin.disconnect().catch(() => {})
  if (broker) await broker.stop()
})

const uniqueGroup = (prefix = 'js-g') => uniqueTopic(prefix)

function groupConsumer (groupId, extra = {}) {
  return kafka.consumer({
    groupId,
    sessionTimeout: 6000,
    heartbeatInterval: 1000,
    rebalanceTimeout: 10000,
    maxWaitTimeInMs: 100,
    retry: { retries: 5, initialRetryTime: 100, maxRetryTime: 1000 },
    ...extra
  })
}

async function createTopic (topic, numPartitions) {
  assert.equal(await admin.createTopics({ topics: [{ topic, numPartitions, replicationFactor: 1 }], waitForLeaders: true }), true)
}

// Produces `perPartition` records to each partition; values are `${prefix}-${p}-${i}`.
async function produceValues (topic, partitions, perPartition, prefix = 'v') {
  const messages = []
  for (let p = 0; p < partitions; p++) {
    for (let i = 0; i < perPartition; i++) messages.push({ partition: p, value: `${prefix}-${p}-${i}` })
  }
  await producer.send({ topic, acks: -1, messages })
  return messages.map((m) => m.value).sort()
}

async function waitFor (cond, timeoutMs, what) {
  const deadline = Date.now() + timeoutMs
  while (Date.now() < deadline) {
    if (await cond()) return
    await sleep(100)
  }
  throw new Error(`timed out after ${timeoutMs}ms waiting for ${what}`)
}

// Committed offsets of a group for one topic as { partition: offset (number) }.
async function fetchOffsets (groupId, topic) {
  const res = await admin.fetchOffsets({ groupId, topics: [topic] })
  const out = {}
  for (const p of res[0].partitions) out[p.partition] = Number(p.offset)
  return out
}

// Runs a Python snippet with the venv interpreter; returns its JSON output (or null without a venv).
function python (script, args) {
  if (!fs.existsSync(PYTHON)) return null
  const r = spawnSync(PYTHON, ['-c', script, JSON.stringify(args)], { encoding: 'utf8', timeout: 60000 })
  assert.equal(r.status, 0, `python failed (${r.status} ${r.signal}): ${r.stderr}`)
  return JSON.parse(r.stdout.trim().split('\n').pop())
}

const PY_READ_COMMITTED = `
import json, sys
from confluent_kafka import Consumer, TopicPartition
from kafka import KafkaConsumer
from kafka.structs import TopicPartition as KTP
a = json.loads(sys.argv[1])
c = Consumer({"bootstrap.servers": a["bootstrap"], "group.id": a["group"], "broker.address.family": "v4"})
rd = {tp.partition: tp.offset for tp in c.committed([TopicPartition(a["topic"], p) for p in range(a["partitions"])], timeout=15)}
c.close()
k = KafkaConsumer(bootstrap_servers=a["bootstrap"], group_id=a["group"], enable_auto_commit=False, request_timeout_ms=15000)
kp = {p: k.committed(KTP(a["topic"], p)) for p in range(a["partitions"])}
k.close()
print(json.dumps({"confluent": rd, "kafka_python": kp}))
`

const PY_COMMIT = `
import json, sys
from confluent_kafka import Consumer, TopicPartition
a = json.loads(sys.argv[1])
c = Consumer({"bootstrap.servers": a["bootstrap"], "group.id": a["group"], "broker.address.family": "v4"})
res = c.commit(offsets=[TopicPartition(a["topic"], int(p), o) for p, o in a["offsets"].items()], asynchronous=False)
c.close()
print(json.dumps({"errors": [str(tp.error) for tp in res if tp.error is not None]}))
`

test('a two-member kafkajs group consumes every record once and commits', logged(async () => {
  const topic = uniqueTopic()
  await createTopic(topic, 4)
  const groupId = uniqueGroup()
  const seen = []
  const assigned = [new Set(), new Set()]
  const consumers = [groupConsumer(groupId), groupConsumer(groupId)]
  try {
    for (const [i, c] of consumers.entries()) {
      c.on(c.events.GROUP_JOIN, (e) => {
        assigned[i] = new Set((e.payload.memberAssignment[topic] || []).map(Number))
      })
      await c.connect()
      await c.subscribe({ topics: [topic], fromBeginning: true })
      await c.run({
        eachMessage: async ({ partition, message }) => {
          seen.push({ member: i, partition, offset: Number(message.offset), value: message.value.toString() })
        }
      })
    }
    await waitFor(async () => {
      const d = await admin.describeGroups([groupId])
      const g = d.groups[0]
      return g.state === 'Stable' && g.members.length === 2 && assigned[0].size > 0 && assigned[1].size > 0 &&
        assigned[0].size + assigned[1].size === 4
    }, 60000, 'a stable group of two members sharing 4 partitions')
    assert.deepEqual([...assigned[0], ...assigned[1]].sort(), [0, 1, 2, 3])
    const produced = await produceValues(topic, 4, 10, 'js')
    await waitFor(() => seen.length >= 40, 30000, '40 records')
    await sleep(1000)
    assert.deepEqual(seen.map((s) => s.value).sort(), produced)
    for (const s of seen) assert.ok(assigned[s.member].has(s.partition), `member ${s.member} read partition ${s.partition}`)
    const d = await admin.describeGroups([groupId])
    assert.equal(d.groups[0].protocol, 'RoundRobinAssigner')
    assert.equal(d.groups[0].protocolType, 'consumer')
    // kafkajs commits resolved offsets (interval / on stop): the next offset to read.
    await waitFor(async () => {
      const o = await fetchOffsets(groupId, topic)
      return [0, 1, 2, 3].every((p) => o[p] === 10)
    }, 15000, 'committed offsets of 10 on every partition')
  } finally {
    for (const c of consumers) await c.disconnect().catch(() => {})
  }
  const listed = await admin.listGroups()
  const mine = listed.groups.find((g) => g.groupId === groupId)
  assert.ok(mine, 'the group is listed')
  assert.equal(mine.protocolType, 'consumer')
  const after = await admin.describeGroups([groupId])
  assert.equal(after.groups[0].state, 'Empty')
  assert.deepEqual(await fetchOffsets(groupId, topic), { 0: 10, 1: 10, 2: 10, 3: 10 })
}))

test('offsets committed by kafkajs are read by confluent-kafka and kafka-python', logged(async (t) => {
  if (!fs.existsSync(PYTHON)) return t.skip('no Python venv')
  const topic = uniqueTopic()
  await createTopic(topic, 2)
  await produceValues(topic, 2, 10)
  const groupId = uniqueGroup('js-to-py')
  const c = groupConsumer(groupId)
  try {
    await c.connect()
    await c.subscribe({ topics: [topic], fromBeginning: true })
    let n = 0
    await c.run({ autoCommit: false, eachMessage: async () => { n++ } })
    await waitFor(() => n >= 20, 30000, '20 records')
    await c.commitOffsets([
      { topic, partition: 0, offset: '6' },
      { topic, partition: 1, offset: '9' }
    ])
  } finally {
    await c.disconnect()
  }
  assert.deepEqual(await fetchOffsets(groupId, topic), { 0: 6, 1: 9 })
  const got = python(PY_READ_COMMITTED, { bootstrap: broker.bootstrap, group: groupId, topic, partitions: 2 })
  assert.deepEqual(got, { confluent: { 0: 6, 1: 9 }, kafka_python: { 0: 6, 1: 9 } })
}))

const PY_KP_COMMIT = `
import json, sys
from kafka import KafkaConsumer
from kafka.structs import OffsetAndMetadata, TopicPartition
a = json.loads(sys.argv[1])
k = KafkaConsumer(bootstrap_servers=a["bootstrap"], group_id=a["group"], enable_auto_commit=False, request_timeout_ms=15000)
tps = {TopicPartition(a["topic"], int(p)): OffsetAndMetadata(o, "", -1) for p, o in a["offsets"].items()}
k.assign(list(tps))
k.commit(tps)
k.close()
print(json.dumps({"errors": []}))
`

for (const [client, script] of [['confluent-kafka', PY_COMMIT], ['kafka-python', PY_KP_COMMIT]]) {
  test(`offsets committed by ${client} are where kafkajs resumes`, logged(async (t) => {
    if (!fs.existsSync(PYTHON)) return t.skip('no Python venv')
    await resumeFromPythonCommits(script)
  }))
}

async function resumeFromPythonCommits (script) {
  const topic = uniqueTopic()
  await createTopic(topic, 2)
  await produceValues(topic, 2, 10)
  const groupId = uniqueGroup('py-to-js')
  const res = python(script, { bootstrap: broker.bootstrap, group: groupId, topic, offsets: { 0: 3, 1: 8 } })
  assert.deepEqual(res, { errors: [] })
  assert.deepEqual(await fetchOffsets(groupId, topic), { 0: 3, 1: 8 })
  const c = groupConsumer(groupId)
  const seen = []
  try {
    await c.connect()
    await c.subscribe({ topics: [topic], fromBeginning: true })
    await c.run({ eachMessage: async ({ partition, message }) => { seen.push([partition, Number(message.offset)]) } })
    await waitFor(() => seen.length >= 9, 30000, '9 records')
    await sleep(500)
  } finally {
    await c.disconnect()
  }
  seen.sort((a, b) => a[0] - b[0] || a[1] - b[1])
  const want = []
  for (let o = 3; o < 10; o++) want.push([0, o])
  for (let o = 8; o < 10; o++) want.push([1, o])
  assert.deepEqual(seen, want)
  assert.deepEqual(await fetchOffsets(groupId, topic), { 0: 10, 1: 10 })
}

test('kafkajs admin: setOffsets, then deleteGroups (live: NON_EMPTY_GROUP, empty: gone)', logged(async () => {
  const topic = uniqueTopic()
  await createTopic(topic, 2)
  await produceValues(topic, 2, 5)
  const groupId = uniqueGroup('js-admin')
  await admin.setOffsets({ groupId, topic, partitions: [{ partition: 0, offset: '2' }, { partition: 1, offset: '4' }] })
  assert.deepEqual(await fetchOffsets(groupId, topic), { 0: 2, 1: 4 })

  const c = groupConsumer(groupId)
  const seen = []
  try {
    await c.connect()
    await c.subscribe({ topics: [topic] })
    await c.run({ eachMessage: async ({ partition, message }) => { seen.push([partition, Number(message.offset)]) } })
    await waitFor(() => seen.length >= 4, 30000, 'the 4 records after the set offsets')
    await sleep(500)
    seen.sort((a, b) => a[0] - b[0] || a[1] - b[1])
    assert.deepEqual(seen, [[0, 2], [0, 3], [0, 4], [1, 4]])
    let err
    try {
      await admin.deleteGroups([groupId])
    } catch (e) {
      err = e
    }
    assert.ok(err, 'deleting a live group succeeded')
    assert.equal(err.groups[0].error.type, 'NON_EMPTY_GROUP')
  } finally {
    await c.disconnect()
  }
  assert.deepEqual(await fetchOffsets(groupId, topic), { 0: 5, 1: 5 })
  const res = await admin.deleteGroups([groupId])
  assert.deepEqual(res.map((g) => [g.groupId, g.errorCode]), [[groupId, 0]])
  assert.deepEqual(await fetchOffsets(groupId, topic), { 0: -1, 1: -1 })
  const listed = await admin.listGroups()
  assert.equal(listed.groups.some((g) => g.groupId === groupId), false)
}))
