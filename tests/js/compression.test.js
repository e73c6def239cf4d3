'use strict'
// kafkajs compression codecs: produce compressed batches, read them back with
// kafkajs's own decoder, and check offsets.
const { test, before, after } = require('node:test')
const assert = require('node:assert/strict')
const { startBroker, withBrokerLog } = require('./broker')
const { makeKafka, makeProducer, uniqueTopic, fetchRecords, CODECS_AVAILABLE, CompressionTypes } = require('./kafka')

let broker, kafka, admin, producer
const logged = (fn) => withBrokerLog(() => broker, fn)

before(async () => {
  broker = await startBroker('compression.test', { 'num.partitions': 1 })
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

const CODECS = [
  ['gzip', CompressionTypes.GZIP],
  ['snappy', CompressionTypes.Snappy],
  ['lz4', CompressionTypes.LZ4],
  ['zstd', CompressionTypes.ZSTD]
]

for (const [name, type] of CODECS) {
  const skip = CODECS_AVAILABLE[name] ? false : `codec ${name} not installed: ${CODECS_AVAILABLE[name + 'Error']}`
  test(`compression ${name} round trip`, { skip }, logged(async () => {
    const topic = uniqueTopic(name)
    await admin.createTopics({ topics: [{ topic, numPartitions: 2 }] })
    const values = Array.from({ length: 200 }, (_, i) => `${name}-${i}-` + 'abcdefghij'.repeat(5 + (i % 30)))
    for (let chunk = 0; chunk < 4; chunk++) {
      const messages = values.slice(chunk * 50, chunk * 50 + 50).map((value, j) => ({
        key: `k${chunk * 50 + j}`,
        value,
        partition: (chunk * 50 + j) % 2
      }))
      const res = await producer.send({ topic, compression: type, acks: -1, messages })
      assert.deepEqual(res.map((r) => [r.partition, r.errorCode, Number(r.baseOffset)]).sort(), [[0, 0, chunk * 25], [1, 0, chunk * 25]])
    }
    for (const p of [0, 1]) {
      const got = await fetchRecords(broker, topic, p, 100)
      assert.deepEqual(got.map((m) => Number(m.offset)), Array.from({ length: 100 }, (_, i) => i))
      assert.deepEqual(got.map((m) => m.value.toString()), values.filter((_, i) => i % 2 === p))
      assert.deepEqual(got.map((m) => m.key.toString()), values.map((_, i) => `k${i}`).filter((_, i) => i % 2 === p))
    }
    const offsets = await admin.fetchTopicOffsets(topic)
    assert.deepEqual(offsets.map((o) => [o.partition, o.high]).sort(), [[0, '100'], [1, '100']])
  }))
}

test('fetch from the middle of a compressed batch', logged(async () => {
  const topic = uniqueTopic('mid')
  await admin.createTopics({ topics: [{ topic, numPartitions: 1 }] })
  await producer.send({
    topic,
    compression: CompressionTypes.GZIP,
    messages: Array.from({ length: 10 }, (_, i) => ({ value: `v${i}` }))
  })
  const got = await fetchRecords(broker, topic, 0, 3, 7)
  assert.deepEqual(got.map((m) => [Number(m.offset), m.value.toString()]), [[7, 'v7'], [8, 'v8'], [9, 'v9']])
}))

// A topic codec other than `producer`: the broker rewrites kafkajs's uncompressed batches into
// the topic's codec, and kafkajs decodes them with its codec plugins (lz4js misreads lz4 frames
// with block checksums, which the broker does not write, as Kafka does not).
for (const name of ['gzip', 'snappy', 'lz4', 'zstd']) {
  const skip = CODECS_AVAILABLE[name] ? false : `codec ${name} not installed: ${CODECS_AVAILABLE[name + 'Error']}`
  test(`topic compression.type=${name} is read back by kafkajs`, { skip }, logged(async () => {
    const topic = uniqueTopic(`topic-${name}`)
    await admin.createTopics({ topics: [{ topic, numPartitions: 1, configEntries: [{ name: 'compression.type', value: name }] }] })
    const values = Array.from({ length: 120 }, (_, i) => `${name}-${i}-` + 'xyz'.repeat(3 + (i % 20)))
    for (let chunk = 0; chunk < 3; chunk++) {
      const messages = values.slice(chunk * 40, chunk * 40 + 40).map((value, j) => ({ key: `k${chunk * 40 + j}`, value, partition: 0 }))
      const res = await producer.send({ topic, compression: CompressionTypes.None, acks: -1, messages })
      assert.deepEqual(res.map((r) => [r.errorCode, Number(r.baseOffset)]), [[0, chunk * 40]])
    }
    const got = await fetchRecords(broker, topic, 0, 120)
    assert.deepEqual(got.map((m) => Number(m.offset)), Array.from({ length: 120 }, (_, i) => i))
    assert.deepEqual(got.map((m) => m.value.toString()), values)
    assert.deepEqual(got.map((m) => m.key.toString()), values.map((_, i) => `k${i}`))
  }))
}
