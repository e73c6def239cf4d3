'use strict'
// kafkajs consumer groups: subscribe, consume, auto-commit, resume from the
// committed offsets with a second consumer of the same group.
const { test, before, after } = require('node:test')
const assert = require('node:assert/strict')
const { startBroker, withBrokerLog, sleep } = require('./broker')
const { makeKafka, makeProducer, uniqueTopic } = require('./kafka')

let broker, kafka, admin, producer, groupsSupported
const logged = (fn) => withBrokerLog(() => broker, fn)

before(async () => {
  broker = await startBroker('consumer.test', {
    'num.partitions': 3,
    'group.initial.rebalance.delay.ms': 0
  })
  kafka = makeKafka(broker)
  admin = kafka.admin()
  await admin.connect()
  producer = makeProducer(kafka)
  await producer.connect()
  // JoinGroup (11) and OffsetCommit (8) advertised?
  const versions = await advertisedApiKeys()
  groupsSupported = versions.has(11) && versions.has(8)
})

after(async () => {
  if (producer) await producer.disconnect().catch(() => {})
  if (admin) await admin.disconnect().catch(() => {})
  if (broker) await broker.stop()
})

// The API keys the broker advertises (kafkajs keeps them per broker connection).
async function advertisedApiKeys () {
  const Cluster = require('kafkajs/src/cluster')
  const { createLogger, LEVELS } = require('kafkajs/src/loggers')
  const cluster = new Cluster({
    logger: createLogger({ level: LEVELS.NOTHING, logCreator: require('kafkajs/src/loggers/console') }),
    brokers: [broker.bootstrap],
    clientId: 'cairn-js-versions',
    connectionTimeout: 3000,
    requestTimeout: 10000,
    retry: { retries: 1 },
    socketFactory: require('kafkajs/src/network/socketFactory')()
  })
  await cluster.connect()
  try {
    return new Set(Object.keys(cluster.brokerPool.seedBroker.versions).map(Number))
  } finally {
    await cluster.disconnect()
  }
}

async function waitFor (what, predicate, timeoutMs = 30000) {
  const deadline = Date.now() + timeoutMs
  while (Date.now() < deadline) {
    if (await predicate()) return
    await sleep(100)
  }
  throw new Error(`timed out after ${timeoutMs}ms waiting for ${what}`)
}

function groupConsumer (groupId) {
  return kafka.consumer({
    groupId,
    sessionTimeout: 10000,
    rebalanceTimeout: 10000,
    heartbeatInterval: 500,
    maxWaitTimeInMs: 200,
    retry: { retries: 3 }
  })
}

test('consumer group: consume, commit, resume in a new consumer', { timeout: 120000 }, logged(async (t) => {
  if (!groupsSupported) {
    t.skip('broker does not advertise JoinGroup/OffsetCommit')
    return
  }
  const topic = uniqueTopic('grp')
  const groupId = uniqueTopic('group')
  await admin.createTopics({ topics: [{ topic, numPartitions: 3 }] })
  const first = Array.from({ length: 60 }, (_, i) => ({ key: `k${i % 6}`, value: `first-${i}` }))
  await producer.send({ topic, acks: -1, messages: first })

  const seen = []
  const c1 = groupConsumer(groupId)
  await c1.connect()
  await c1.subscribe({ topic, fromBeginning: true })
  await c1.run({
    autoCommit: true,
    eachMessage: async ({ partition, message }) => {
      seen.push({ partition, offset: Number(message.offset), key: message.key.toString(), value: message.value.toString() })
    }
  })
  try {
    await waitFor('60 records in the first consumer', () => seen.length >= 60)
    await sleep(300)
    assert.equal(seen.length, 60, 'no record delivered twice')
    assert.deepEqual(seen.map((s) => s.value).sort(), first.map((m) => m.value).sort())
    // per partition: offsets dense from 0, one partition per key
    const byPart = new Map()
    for (const s of seen) byPart.set(s.partition, [...(byPart.get(s.partition) || []), s])
    for (const [p, list] of byPart) {
      assert.deepEqual(list.map((s) => s.offset), list.map((_, i) => i), `partition ${p} offsets`)
    }
    const keyPart = new Map()
    for (const s of seen) {
      if (keyPart.has(s.key)) assert.equal(keyPart.get(s.key), s.partition, `key ${s.key} in two partitions`)
      keyPart.set(s.key, s.partition)
    }
    // auto-commit reaches the end of every partition
    const high = new Map((await admin.fetchTopicOffsets(topic)).map((o) => [o.partition, o.high]))
    await waitFor('committed offsets at the high watermarks', async () => {
      const [res] = await admin.fetchOffsets({ groupId, topics: [topic] })
      return res.partitions.every((p) => p.offset === high.get(p.partition))
    })
  } finally {
    await c1.disconnect()
  }

  const second = Array.from({ length: 9 }, (_, i) => ({ value: `second-${i}`, partition: i % 3 }))
  await producer.send({ topic, acks: -1, messages: second })
  const seen2 = []
  const c2 = groupConsumer(groupId)
  await c2.connect()
  await c2.subscribe({ topic, fromBeginning: true })
  await c2.run({ eachMessage: async ({ message }) => { seen2.push(message.value.toString()) } })
  try {
    await waitFor('9 new records in the second consumer', () => seen2.length >= 9)
    await sleep(500)
    assert.deepEqual(seen2.sort(), second.map((m) => m.value).sort(), 'resumed from the committed offsets')
  } finally {
    await c2.disconnect()
  }
  const groups = await admin.listGroups()
  assert.ok(groups.groups.some((g) => g.groupId === groupId), 'listGroups shows the group')
}))
