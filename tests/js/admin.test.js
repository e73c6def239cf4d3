'use strict'
// kafkajs admin client against a fresh cairn broker (auto-creation off).
const { test, before, after } = require('node:test')
const assert = require('node:assert/strict')
const { ConfigResourceTypes } = require('kafkajs')
const { startBroker, withBrokerLog } = require('./broker')
const { makeKafka, makeProducer, uniqueTopic } = require('./kafka')

let broker, kafka, admin, producer
const logged = (fn) => withBrokerLog(() => broker, fn)

before(async () => {
  broker = await startBroker('admin.test', { 'num.partitions': 3, 'auto.create.topics.enable': 'false' })
  kafka = makeKafka(broker)
  admin = kafka.admin({ retry: { retries: 2, initialRetryTime: 100, maxRetryTime: 500 } })
  await admin.connect()
  producer = makeProducer(kafka)
  await producer.connect()
})

after(async () => {
  if (producer) await producer.disconnect().catch(() => {})
  if (admin) await admin.disconnect().catch(() => {})
  if (broker) await broker.stop()
})

// The Kafka error type names inside a kafkajs admin error (retries wrap the
// broker's error in originalError).
function errorTypes (e) {
  if (Array.isArray(e.errors)) return e.errors.map((x) => x.type)
  if (e.type === undefined && (e.cause || e.originalError)) return errorTypes(e.cause || e.originalError)
  return [e.type]
}

async function expectError (promise, type) {
  let err
  try {
    await promise
  } catch (e) {
    err = e
  }
  assert.ok(err, `expected ${type}, but the call succeeded`)
  assert.deepEqual(errorTypes(err), [type], `got ${err.name}: ${err.message}`)
}

test('createTopics, fetchTopicMetadata, listTopics', logged(async () => {
  const topic = uniqueTopic()
  assert.equal(await admin.createTopics({ topics: [{ topic, numPartitions: 5, replicationFactor: 1 }] }), true)
  const md = await admin.fetchTopicMetadata({ topics: [topic] })
  assert.equal(md.topics.length, 1)
  assert.equal(md.topics[0].name, topic)
  const parts = md.topics[0].partitions.sort((a, b) => a.partitionId - b.partitionId)
  assert.deepEqual(parts.map((p) => p.partitionId), [0, 1, 2, 3, 4])
  for (const p of parts) {
    assert.equal(p.partitionErrorCode, 0)
    assert.ok(p.leader >= 0)
    assert.deepEqual(p.replicas, [p.leader])
    assert.deepEqual(p.isr, [p.leader])
  }
  assert.ok((await admin.listTopics()).includes(topic))
  // Creating it again resolves to false (TOPIC_ALREADY_EXISTS).
  assert.equal(await admin.createTopics({ topics: [{ topic, numPartitions: 1 }] }), false)
}))

test('createTopics uses num.partitions when numPartitions is not given', logged(async () => {
  const topic = uniqueTopic()
  assert.equal(await admin.createTopics({ topics: [{ topic }] }), true)
  const md = await admin.fetchTopicMetadata({ topics: [topic] })
  assert.equal(md.topics[0].partitions.length, 3)
}))

test('createTopics validateOnly creates nothing', logged(async () => {
  const topic = uniqueTopic()
  await admin.createTopics({ topics: [{ topic, numPartitions: 2 }], validateOnly: true, waitForLeaders: false })
  assert.ok(!(await admin.listTopics()).includes(topic))
}))

test('createTopics errors: invalid name, replication factor, bad config', logged(async () => {
  await expectError(admin.createTopics({ topics: [{ topic: 'bad/name' }], waitForLeaders: false }), 'INVALID_TOPIC_EXCEPTION')
  await expectError(admin.createTopics({ topics: [{ topic: 'x'.repeat(250) }], waitForLeaders: false }), 'INVALID_TOPIC_EXCEPTION')
  await expectError(admin.createTopics({ topics: [{ topic: '..' }], waitForLeaders: false }), 'INVALID_TOPIC_EXCEPTION')
  await expectError(
    admin.createTopics({ topics: [{ topic: uniqueTopic(), replicationFactor: 3 }], waitForLeaders: false }),
    'INVALID_REPLICATION_FACTOR'
  )
  await expectError(
    admin.createTopics({
      topics: [{ topic: uniqueTopic(), configEntries: [{ name: 'cleanup.policy', value: 'bogus' }] }],
      waitForLeaders: false
    }),
    'INVALID_CONFIG'
  )
}))

test('deleteTopics removes the topic; re-creation starts empty', logged(async () => {
  const topic = uniqueTopic()
  await admin.createTopics({ topics: [{ topic, numPartitions: 1 }] })
  await producer.send({ topic, messages: [{ value: 'a' }, { value: 'b' }] })
  assert.deepEqual((await admin.fetchTopicOffsets(topic)).map((o) => [o.partition, o.low, o.high]), [[0, '0', '2']])
  await admin.deleteTopics({ topics: [topic], timeout: 10000 })
  assert.ok(!(await admin.listTopics()).includes(topic))
  // A second admin client: a failed call leaves the topic in kafkajs's metadata
  // targets, which would make this client's later metadata refreshes fail.
  const admin2 = kafka.admin({ retry: { retries: 0 } })
  await admin2.connect()
  try {
    await expectError(admin2.deleteTopics({ topics: [topic], timeout: 5000 }), 'UNKNOWN_TOPIC_OR_PARTITION')
  } finally {
    await admin2.disconnect()
  }
  assert.equal(await admin.createTopics({ topics: [{ topic, numPartitions: 2 }] }), true)
  const offsets = await admin.fetchTopicOffsets(topic)
  assert.deepEqual(offsets.map((o) => [o.partition, o.low, o.high]).sort(), [[0, '0', '0'], [1, '0', '0']])
}))

test('createPartitions grows a topic; shrinking is refused', logged(async () => {
  const topic = uniqueTopic()
  await admin.createTopics({ topics: [{ topic, numPartitions: 2 }] })
  await admin.createPartitions({ topicPartitions: [{ topic, count: 5 }] })
  const md = await admin.fetchTopicMetadata({ topics: [topic] })
  assert.equal(md.topics[0].partitions.length, 5)
  await expectError(admin.createPartitions({ topicPartitions: [{ topic, count: 4 }] }), 'INVALID_PARTITIONS')
  const res = await producer.send({ topic, messages: [{ partition: 4, value: 'in-new-partition' }] })
  assert.deepEqual(res.map((r) => [r.partition, r.baseOffset]), [[4, '0']])
}))

test('fetchTopicOffsets and fetchTopicOffsetsByTimestamp', logged(async () => {
  const topic = uniqueTopic()
  await admin.createTopics({ topics: [{ topic, numPartitions: 2 }] })
  await producer.send({
    topic,
    messages: [1000, 2000, 3000, 4000].map((ts) => ({ partition: 0, value: `ts-${ts}`, timestamp: String(ts) }))
  })
  const offsets = (await admin.fetchTopicOffsets(topic)).sort((a, b) => a.partition - b.partition)
  assert.deepEqual(offsets.map((o) => [o.partition, o.low, o.high, o.offset]), [[0, '0', '4', '4'], [1, '0', '0', '0']])
  const at = async (ts) => (await admin.fetchTopicOffsetsByTimestamp(topic, ts)).find((o) => o.partition === 0).offset
  assert.equal(await at(0), '0')
  assert.equal(await at(1000), '0')
  assert.equal(await at(2500), '2')
  assert.equal(await at(4000), '3')
  assert.equal(await at(4001), '4') // no record at/after: kafkajs falls back to the high watermark
}))

test('describeConfigs for a topic and the broker', logged(async () => {
  const topic = uniqueTopic()
  await admin.createTopics({
    topics: [{ topic, numPartitions: 1, configEntries: [{ name: 'retention.ms', value: '86400000' }] }]
  })
  const res = await admin.describeConfigs({
    includeSynonyms: false,
    resources: [{ type: ConfigResourceTypes.TOPIC, name: topic }]
  })
  assert.equal(res.resources.length, 1)
  const r = res.resources[0]
  assert.equal(r.errorCode, 0)
  const byName = Object.fromEntries(r.configEntries.map((e) => [e.configName, e]))
  assert.equal(byName['retention.ms'].configValue, '86400000')
  assert.equal(byName['retention.ms'].isDefault, false)
  assert.equal(byName['cleanup.policy'].configValue, 'delete')
  assert.equal(byName['cleanup.policy'].isDefault, true)
  assert.equal(byName['max.message.bytes'].configValue, '1048588')

  const md = await admin.fetchTopicMetadata({ topics: [topic] })
  const brokerId = String(md.topics[0].partitions[0].leader)
  const bres = await admin.describeConfigs({
    includeSynonyms: false,
    resources: [{ type: ConfigResourceTypes.BROKER, name: brokerId }]
  })
  const bByName = Object.fromEntries(bres.resources[0].configEntries.map((e) => [e.configName, e]))
  assert.equal(bByName['num.partitions'].configValue, '3')
  assert.equal(bByName['num.partitions'].isDefault, false)
  assert.equal(bByName['auto.create.topics.enable'].configValue, 'false')
  assert.equal(bByName['message.max.bytes'].isDefault, true)
}))

test('producing to a missing topic fails when auto-creation is off', logged(async () => {
  const topic = uniqueTopic()
  const p = makeProducer(kafka, { retry: { retries: 1, initialRetryTime: 50, maxRetryTime: 200 } })
  await p.connect()
  try {
    await assert.rejects(p.send({ topic, messages: [{ value: 'x' }] }), (e) => {
      assert.match(`${e.name} ${e.message} ${e.type || ''}`, /UNKNOWN_TOPIC_OR_PARTITION|does not host this topic-partition|KafkaJSNumberOfRetriesExceeded/)
      return true
    })
  } finally {
    await p.disconnect()
  }
  assert.ok(!(await admin.listTopics()).includes(topic))
}))
