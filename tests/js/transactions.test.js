'use strict'
// kafkajs transactions against cairn: producer.transaction() with sendOffsets, commit and
// abort, read back by a read_committed consumer group (readUncommitted: false, kafkajs's
// default) and by a read_uncommitted one.
const { test, before, after } = require('node:test')
const assert = require('node:assert/strict')
const { startBroker, withBrokerLog, sleep } = require('./broker')
const { makeKafka, makeProducer, uniqueTopic } = require('./kafka')

let broker, kafka, admin, producer
const logged = (fn) => withBrokerLog(() => broker, fn)

before(async () => {
  broker = await startBroker('transactions.test', {
    'num.partitions': 1,
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

function txnProducer (id) {
  return kafka.producer({
    transactionalId: id,
    idempotent: true,
    maxInFlightRequests: 1,
    retry: { retries: 5, initialRetryTime: 100, maxRetryTime: 1000 }
  })
}

// Every value a fresh group reads from `topic` until `want` arrived and nothing more came
// for a second.
async function readAll (topic, { readUncommitted = false, want }) {
  const c = kafka.consumer({ groupId: uniqueTopic('js-read'), maxWaitTimeInMs: 100, readUncommitted })
  await c.connect()
  await c.subscribe({ topic, fromBeginning: true })
  const values = []
  let last = Date.now()
  await c.run({ eachMessage: async ({ message }) => { values.push(message.value.toString()); last = Date.now() } })
  const deadline = Date.now() + 30000
  while (Date.now() < deadline && (values.length < want || Date.now() - last < 1000)) await sleep(100)
  await c.disconnect()
  return values
}

test('commit and abort with kafkajs transactions', logged(async () => {
  const topic = uniqueTopic('js-tx')
  await admin.createTopics({ topics: [{ topic, numPartitions: 1 }], waitForLeaders: true })
  const p = txnProducer(uniqueTopic('js-tid'))
  await p.connect()
  let t = await p.transaction()
  await t.send({ topic, messages: [{ value: 'a1' }, { value: 'a2' }] })
  await t.commit()
  t = await p.transaction()
  await t.send({ topic, messages: [{ value: 'gone' }] })
  await t.abort()
  t = await p.transaction()
  await t.send({ topic, messages: [{ value: 'b1' }] })
  await t.commit()
  await p.disconnect()
  assert.deepEqual(await readAll(topic, { want: 3 }), ['a1', 'a2', 'b1'])
  assert.deepEqual((await readAll(topic, { readUncommitted: true, want: 4 })).sort(), ['a1', 'a2', 'b1', 'gone'])
}))

test('sendOffsets commits the group offsets with the transaction, abort discards them', logged(async () => {
  const src = uniqueTopic('js-in')
  const dst = uniqueTopic('js-out')
  await admin.createTopics({ topics: [{ topic: src, numPartitions: 1 }, { topic: dst, numPartitions: 1 }], waitForLeaders: true })
  await producer.send({ topic: src, messages: Array.from({ length: 6 }, (_, i) => ({ value: `m${i}` })) })
  const groupId = uniqueTopic('js-ctp')
  const p = txnProducer(uniqueTopic('js-tid'))
  await p.connect()
  let t = await p.transaction()
  await t.send({ topic: dst, messages: [{ value: 'M0' }, { value: 'M1' }, { value: 'M2' }] })
  await t.sendOffsets({ consumerGroupId: groupId, topics: [{ topic: src, partitions: [{ partition: 0, offset: '3' }] }] })
  await t.commit()
  t = await p.transaction()
  await t.send({ topic: dst, messages: [{ value: 'M3' }] })
  await t.sendOffsets({ consumerGroupId: groupId, topics: [{ topic: src, partitions: [{ partition: 0, offset: '4' }] }] })
  await t.abort()
  await p.disconnect()
  const offsets = await admin.fetchOffsets({ groupId, topics: [src] })
  assert.equal(offsets[0].partitions[0].offset, '3')
  assert.deepEqual(await readAll(dst, { want: 3 }), ['M0', 'M1', 'M2'])
}))
