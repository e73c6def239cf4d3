'use strict'
// The `cairn groups` tools against a kafkajs consumer group: kafkajs brings its
// own assignor (RoundRobinAssigner) and its own encoding of the consumer
// protocol, which `describe` must decode; a reset with --execute must move
// where a kafkajs consumer resumes.

const { test, before, after } = require('node:test')
const assert = require('node:assert/strict')
const { spawnSync } = require('node:child_process')
const { startBroker, withBrokerLog, sleep, CAIRN_BIN } = require('./broker')
const { makeKafka, makeProducer, uniqueTopic } = require('./kafka')

let broker, kafka, admin, producer
const logged = (fn) => withBrokerLog(() => broker, fn)

before(async () => {
  broker = await startBroker('cli.test', { 'num.partitions': 3, 'group.initial.rebalance.delay.ms': 0 })
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

// Runs `cairn ARGS -b broker` and returns { status, stdout, stderr }.
function cairn (...args) {
  const r = spawnSync(CAIRN_BIN, [...args, '-b', broker.bootstrap], {
    encoding: 'utf8',
    timeout: 60000,
    env: { ...process.env, CAIRN_LOG: 'warn' }
  })
  return { status: r.status, stdout: r.stdout, stderr: r.stderr }
}

function cairnJson (...args) {
  const r = cairn(...args, '--output', 'json')
  assert.equal(r.status, 0, `cairn ${args.join(' ')}: ${r.stderr}`)
  return JSON.parse(r.stdout)
}

async function waitFor (cond, timeoutMs, what) {
  const deadline = Date.now() + timeoutMs
  while (Date.now() < deadline) {
    const v = await cond()
    if (v) return v
    await sleep(100)
  }
  throw new Error(`timed out after ${timeoutMs}ms waiting for ${what}`)
}

function groupConsumer (groupId) {
  return kafka.consumer({ groupId, sessionTimeout: 6000, heartbeatInterval: 500, maxWaitTimeInMs: 100 })
}

test('describe decodes a kafkajs group; reset --execute moves where kafkajs resumes', logged(async () => {
  const topic = uniqueTopic('js-cli')
  const groupId = uniqueTopic('js-cli-g')
  assert.equal(await admin.createTopics({ topics: [{ topic, numPartitions: 3, replicationFactor: 1 }], waitForLeaders: true }), true)
  const messages = []
  for (let p = 0; p < 3; p++) for (let i = 0; i < 10; i++) messages.push({ partition: p, value: `v-${p}-${i}` })
  await producer.send({ topic, acks: -1, messages })

  const seen = []
  const consumer = groupConsumer(groupId)
  await consumer.connect()
  await consumer.subscribe({ topics: [topic], fromBeginning: true })
  await consumer.run({ eachMessage: async ({ partition, message }) => { seen.push([partition, Number(message.offset)]) } })
  try {
    await waitFor(() => seen.length >= 30, 30000, 'kafkajs to read all 30 records')
    const d = await waitFor(() => {
      const r = cairn('groups', 'describe', groupId, '--output', 'json')
      if (r.status !== 0) return null
      const g = JSON.parse(r.stdout)
      return g.state === 'Stable' && g.offsets.every((o) => o.lag === 0) && g.offsets.length === 3 ? g : null
    }, 30000, 'kafkajs commits to show up in describe')
    assert.equal(d.assignor, 'RoundRobinAssigner')
    assert.equal(d.member_count, 1)
    const [m] = d.members
    assert.equal(m.client_id, 'cairn-js-tests')
    assert.deepEqual(m.assignment, [{ topic, partitions: [0, 1, 2] }])
    for (const o of d.offsets) {
      assert.equal(o.consumer_id, m.consumer_id)
      assert.equal(o.current_offset, 10)
    }

    const refused = cairn('groups', 'reset-offsets', '--group', groupId, '--all-topics', '--to-earliest', '--execute')
    assert.notEqual(refused.status, 0)
    assert.match(refused.stderr, /it is Stable with 1 active member/)
  } finally {
    await consumer.disconnect()
  }

  await waitFor(() => cairnJson('groups', 'describe', groupId, '--state').state === 'Empty', 30000, 'the group to empty')
  const plan = cairnJson('groups', 'reset-offsets', '--group', groupId, '--all-topics', '--shift-by', '-4', '--execute')
  assert.equal(plan.executed, true)
  assert.deepEqual(plan.partitions.map((p) => p.new_offset), [6, 6, 6])

  const resumed = []
  const again = groupConsumer(groupId)
  await again.connect()
  await again.subscribe({ topics: [topic], fromBeginning: false })
  await again.run({ eachMessage: async ({ partition, message }) => { resumed.push([partition, Number(message.offset)]) } })
  try {
    await waitFor(() => resumed.length >= 12, 30000, 'kafkajs to resume from the reset offsets')
    await sleep(300)
    const firsts = [0, 1, 2].map((p) => Math.min(...resumed.filter(([q]) => q === p).map(([, o]) => o)))
    assert.deepEqual(firsts, [6, 6, 6])
    assert.equal(resumed.length, 12)
  } finally {
    await again.disconnect()
  }
}))
