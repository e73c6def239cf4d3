'use strict'
// kafkajs producer round trips against a fresh cairn broker.
const { test, before, after } = require('node:test')
const assert = require('node:assert/strict')
const { startBroker, withBrokerLog } = require('./broker')
const { makeKafka, makeProducer, uniqueTopic, fetchRecords } = require('./kafka')
const logged = (fn) => withBrokerLog(() => broker, fn)
const murmur2 = require('kafkajs/src/producer/partitioners/default/murmur2')

const javaPartition = (key, n) => (murmur2(key) & 0x7fffffff) % n

let broker, kafka, admin, producer

before(async () => {
  broker = await startBroker('produce.test', { 'num.partitions': 4 })
  kafka = makeKafka(broker)
  admin = kafka.admin()
  await admin.connect()
  producer = makeProducer(kafka)
  await producer.connect()
})

after(async () => {
  if (producer) await producer.disconnect().catch(() => {})
  if (admin) await admin.disconnect().catch(() => {})
  if (broker) {
    const { code, signal } = await broker.stop()
    assert.ok(code === 0 || signal === 'SIGTERM', `broker exit: code ${code} signal ${signal}`)
  }
})

test('keyed produce: consistent partitions, dense offsets, order kept', logged(async () => {
  const topic = uniqueTopic()
  assert.equal(await admin.createTopics({ topics: [{ topic, numPartitions: 4, replicationFactor: 1 }] }), true)
  const keys = Array.from({ length: 9 }, (_, i) => `key-${i}`)
  const sent = [] // { key, value, partition }
  for (let round = 0; round < 10; round++) {
    const messages = Array.from({ length: 30 }, (_, i) => {
      const n = round * 30 + i
      return { key: keys[n % keys.length], value: `value-${n}` }
    })
    const res = await producer.send({ topic, acks: -1, messages })
    const perPart = new Map()
    for (const m of messages) {
      const partition = javaPartition(Buffer.from(m.key), 4)
      sent.push({ ...m, partition })
      perPart.set(partition, (perPart.get(partition) || 0) + 1)
    }
    // one result per partition written; offsets continue densely
    assert.deepEqual(res.map((r) => r.partition).sort(), [...perPart.keys()].sort())
    for (const r of res) {
      assert.equal(r.errorCode, 0)
      const before = sent.slice(0, sent.length - messages.length).filter((s) => s.partition === r.partition).length
      assert.equal(Number(r.baseOffset), before, `partition ${r.partition} base offset`)
    }
  }
  const offsets = await admin.fetchTopicOffsets(topic)
  for (let p = 0; p < 4; p++) {
    const want = sent.filter((s) => s.partition === p)
    const o = offsets.find((x) => x.partition === p)
    assert.equal(Number(o.low), 0)
    assert.equal(Number(o.high), want.length, `partition ${p} high watermark`)
    if (want.length === 0) continue
    const got = await fetchRecords(broker, topic, p, want.length)
    assert.deepEqual(
      got.map((m) => [Number(m.offset), m.key.toString(), m.value.toString()]),
      want.map((s, i) => [i, s.key, s.value])
    )
  }
}))

test('headers, null key and explicit timestamps round trip', logged(async () => {
  const topic = uniqueTopic()
  await admin.createTopics({ topics: [{ topic, numPartitions: 1 }] })
  const res = await producer.send({
    topic,
    messages: [
      { value: 'no-key', timestamp: '1000' },
      { key: 'k', value: 'with-headers', headers: { h1: 'a', h2: Buffer.from([0, 1, 2]) }, timestamp: '2000' }
    ]
  })
  assert.deepEqual(res.map((r) => [r.partition, Number(r.baseOffset)]), [[0, 0]])
  const got = await fetchRecords(broker, topic, 0, 2)
  assert.equal(got[0].key, null)
  assert.equal(got[0].value.toString(), 'no-key')
  assert.equal(got[0].timestamp, '1000')
  assert.equal(got[1].timestamp, '2000')
  assert.equal(got[1].headers.h1.toString(), 'a')
  assert.deepEqual([...got[1].headers.h2], [0, 1, 2])
}))

for (const acks of [0, 1, -1]) {
  test(`acks=${acks}`, logged(async () => {
    const topic = uniqueTopic()
    await admin.createTopics({ topics: [{ topic, numPartitions: 2 }] })
    for (let i = 0; i < 5; i++) {
      const res = await producer.send({
        topic,
        acks,
        messages: Array.from({ length: 10 }, (_, j) => ({ partition: j % 2, value: `m-${i}-${j}` }))
      })
      if (acks !== 0) {
        assert.deepEqual(
          res.map((r) => [r.partition, Number(r.baseOffset)]).sort(),
          [[0, i * 5], [1, i * 5]]
        )
      }
    }
    // acks=0 has no response: wait until the broker has appended everything.
    const deadline = Date.now() + 15000
    let offsets
    do {
      offsets = await admin.fetchTopicOffsets(topic)
      if (offsets.every((o) => Number(o.high) === 25)) break
      await new Promise((resolve) => setTimeout(resolve, 100))
    } while (Date.now() < deadline)
    assert.deepEqual(offsets.map((o) => [o.partition, Number(o.low), Number(o.high)]).sort(), [[0, 0, 25], [1, 0, 25]])
    const got = await fetchRecords(broker, topic, 1, 25)
    assert.deepEqual(got.map((m) => m.value.toString()), Array.from({ length: 25 }, (_, n) => `m-${Math.floor(n / 5)}-${(n % 5) * 2 + 1}`))
  }))
}
