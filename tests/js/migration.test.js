'use strict'
// Online migration between the group protocols with kafkajs (which speaks only the classic
// protocol) as the classic members: a confluent-kafka consumer with group.protocol=consumer
// (a child process from the project's venv) joins the live kafkajs group, which becomes a
// consumer group; the kafkajs members go on consuming through JoinGroup/SyncGroup/Heartbeat
// with the broker's assignment; when the child leaves, the group is classic again and the
// kafkajs members share everything.
const { test, before, after } = require('node:test')
const assert = require('node:assert/strict')
const fs = require('node:fs')
const path = require('node:path')
const readline = require('node:readline')
const { spawn } = require('node:child_process')
const { startBroker, withBrokerLog, sleep } = require('./broker')
const { makeKafka, makeProducer, uniqueTopic } = require('./kafka')

const REPO_ROOT = path.resolve(__dirname, '..', '..')
const PYTHON = process.env.PYTHON_VENV_BIN || path.join(REPO_ROOT, '.venv', 'bin', 'python')

let broker, kafka, admin, producer
const logged = (fn) => withBrokerLog(() => broker, fn)

before(async () => {
  broker = await startBroker('migration.test', {
    'num.partitions': 6,
    'group.initial.rebalance.delay.ms': 0,
    'group.consumer.heartbeat.interval.ms': 500,
    'group.consumer.min.heartbeat.interval.ms': 500,
    'group.consumer.session.timeout.ms': 6000,
    'group.consumer.min.session.timeout.ms': 6000
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

async function waitFor (cond, timeoutMs, what) {
  const deadline = Date.now() + timeoutMs
  while (Date.now() < deadline) {
    if (await cond()) return
    await sleep(100)
  }
  throw new Error(`timed out after ${timeoutMs}ms waiting for ${what}`)
}

async function produceValues (topic, partitions, perPartition, prefix) {
  const messages = []
  for (let p = 0; p < partitions; p++) {
    for (let i = 0; i < perPartition; i++) messages.push({ partition: p, value: `${prefix}-${p}-${i}` })
  }
  await producer.send({ topic, acks: -1, messages })
  return messages.map((m) => m.value)
}

// A confluent-kafka consumer-protocol member that reports its callbacks and records as JSON
// lines, and leaves the group (closes) when its stdin closes.
const CHILD = `
import json, select, sys
from confluent_kafka import Consumer
conf = json.loads(sys.argv[1]); topic = sys.argv[2]
def out(**kw): print(json.dumps(kw), flush=True)
c = Consumer(conf)
c.subscribe([topic],
    on_assign=lambda c, ps: out(ev="assign", ps=[p.partition for p in ps]),
    on_revoke=lambda c, ps: out(ev="revoke", ps=[p.partition for p in ps]))
while True:
    m = c.poll(0.1)
    if m is not None and not m.error():
        out(ev="msg", p=m.partition(), v=m.value().decode())
        c.commit(message=m, asynchronous=False)
    ready, _, _ = select.select([sys.stdin], [], [], 0)
    if ready and not sys.stdin.readline():
        break
c.close()
out(ev="closed")
`

function startChild (groupId, topic, onEvent) {
  const conf = {
    'bootstrap.servers': broker.bootstrap,
    'group.id': groupId,
    'group.protocol': 'consumer',
    'auto.offset.reset': 'earliest',
    'enable.auto.commit': false,
    'fetch.wait.max.ms': 100
  }
  const child = spawn(PYTHON, ['-c', CHILD, JSON.stringify(conf), topic], { stdio: ['pipe', 'pipe', 'inherit'] })
  readline.createInterface({ input: child.stdout }).on('line', (line) => onEvent(JSON.parse(line)))
  return child
}

test('a kafkajs group is upgraded in place by a consumer-protocol member, and downgraded when it leaves', logged(async (t) => {
  if (!fs.existsSync(PYTHON)) return t.skip('no Python venv')
  const topic = uniqueTopic()
  assert.equal(await admin.createTopics({ topics: [{ topic, numPartitions: 6, replicationFactor: 1 }], waitForLeaders: true }), true)
  const groupId = uniqueTopic('js-migrate')
  const seen = new Set()
  const assigned = [new Set(), new Set()]
  const joins = [0, 0]
  const consumers = [0, 1].map(() => kafka.consumer({
    groupId,
    sessionTimeout: 6000,
    heartbeatInterval: 500,
    rebalanceTimeout: 10000,
    maxWaitTimeInMs: 100,
    retry: { retries: 10, initialRetryTime: 100, maxRetryTime: 1000 }
  }))
  let child = null
  const childOwned = new Set()
  let childClosed = false
  const disjointCover = (sets) => {
    const all = sets.flatMap((s) => [...s])
    return all.length === 6 && new Set(all).size === 6
  }
  try {
    for (const [i, c] of consumers.entries()) {
      c.on(c.events.GROUP_JOIN, (e) => {
        joins[i]++
        assigned[i] = new Set((e.payload.memberAssignment[topic] || []).map(Number))
      })
      await c.connect()
      await c.subscribe({ topics: [topic], fromBeginning: true })
      await c.run({ eachMessage: async ({ message }) => { seen.add(message.value.toString()) } })
    }
    const first = await produceValues(topic, 6, 10, 'a')
    await waitFor(() => disjointCover(assigned) && first.every((v) => seen.has(v)), 60000,
      'the kafkajs group to share 6 partitions and read the first batch')
    assert.equal((await admin.describeGroups([groupId])).groups[0].state, 'Stable')

    // The consumer-protocol member joins the live classic group.
    const joinsBefore = [...joins]
    child = startChild(groupId, topic, (e) => {
      if (e.ev === 'assign') e.ps.forEach((p) => childOwned.add(p))
      if (e.ev === 'revoke') e.ps.forEach((p) => childOwned.delete(p))
      if (e.ev === 'msg') seen.add(e.v)
      if (e.ev === 'closed') childClosed = true
    })
    const second = await produceValues(topic, 6, 10, 'b')
    await waitFor(() => childOwned.size === 2 && assigned[0].size === 2 && assigned[1].size === 2 &&
      disjointCover([...assigned, childOwned]) && second.every((v) => seen.has(v)), 60000,
    'the upgraded group to give the newcomer 2 partitions and read the second batch')
    // The kafkajs members rejoined (to give partitions up) rather than being dropped.
    assert.ok(joins[0] > joinsBefore[0] && joins[1] > joinsBefore[1])
    // DescribeGroups speaks of classic groups only: a consumer group is Dead to it.
    assert.equal((await admin.describeGroups([groupId])).groups[0].state, 'Dead')

    // The consumer-protocol member leaves: the group is classic again.
    child.stdin.end()
    await waitFor(() => childClosed, 30000, 'the child consumer to close')
    const third = await produceValues(topic, 6, 10, 'c')
    await waitFor(() => disjointCover(assigned) && third.every((v) => seen.has(v)), 60000,
      'the downgraded group to share 6 partitions again and read the third batch')
    const d = (await admin.describeGroups([groupId])).groups[0]
    assert.equal(d.state, 'Stable')
    assert.equal(d.members.length, 2)
    assert.equal(d.protocolType, 'consumer')
    // Every record was read, and what was committed is where each partition ends.
    for (const v of [...first, ...second, ...third]) assert.ok(seen.has(v), `record ${v} read`)
    await waitFor(async () => {
      const res = await admin.fetchOffsets({ groupId, topics: [topic] })
      return res[0].partitions.every((p) => Number(p.offset) === 30)
    }, 20000, 'committed offsets of 30 on every partition')
  } finally {
    if (child && !childClosed) child.kill('SIGKILL')
    for (const c of consumers) await c.disconnect().catch(() => {})
  }
}))
