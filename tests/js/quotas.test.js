'use strict'
// A kafkajs producer under a client-id byte-rate quota: kafkajs honours the broker's
// throttle_time_ms (KIP-219), and its rate settles at the quota.
const { test, before, after } = require('node:test')
const assert = require('node:assert/strict')
const { spawnSync } = require('node:child_process')
const { startBroker, withBrokerLog, CAIRN_BIN } = require('./broker')
const { makeKafka, makeProducer, uniqueTopic } = require('./kafka')

let broker
const logged = (fn) => withBrokerLog(() => broker, fn)

before(async () => {
  // Two windows of 1 s: the burst a fresh client is allowed is one second's worth, so the rate
  // settles within the test (Kafka's default is 11 windows).
  broker = await startBroker('quotas.test', { 'num.partitions': 1, 'quota.window.num': 2, 'quota.window.size.seconds': 1 })
})

after(async () => {
  if (broker) await broker.stop()
})

function cairn (...args) {
  const r = spawnSync(CAIRN_BIN, [...args, '-b', broker.bootstrap], {
    encoding: 'utf8',
    timeout: 60000,
    env: { ...process.env, CAIRN_LOG: 'warn' }
  })
  assert.equal(r.status, 0, `cairn ${args.join(' ')}: ${r.stderr}`)
  return r.stdout
}

test('a kafkajs producer is held to its byte rate', logged(async () => {
  const quota = 150000
  cairn('configs', 'alter', '--client', 'js-throttled', '--add-config', `producer_byte_rate=${quota}`)
  const kafka = makeKafka(broker, { clientId: 'js-throttled', requestTimeout: 30000 })
  const admin = kafka.admin()
  await admin.connect()
  const topic = uniqueTopic('quota')
  await admin.createTopics({ topics: [{ topic, numPartitions: 1 }] })
  await admin.disconnect()
  const producer = makeProducer(kafka)
  await producer.connect()
  const value = 'z'.repeat(1000)
  const messages = Array.from({ length: 20 }, () => ({ value }))
  const sent = []
  const started = Date.now()
  while (Date.now() - started < 12000) {
    await producer.send({ topic, acks: 1, messages })
    sent.push([Date.now(), 20 * 1000])
  }
  await producer.disconnect()
  const from = started + 2000
  const to = started + 12000
  const bytes = sent.filter(([t]) => t >= from && t < to).reduce((n, [, b]) => n + b, 0)
  const rate = bytes / ((to - from) / 1000)
  console.log(`kafkajs producer: ${Math.round(rate)} B/s against a quota of ${quota}`)
  // Within 10%: a request is measured after it is taken, so a rate runs a little over before the
  // wait brings it back (values only are counted here; the broker counts whole requests).
  assert.ok(Math.abs(rate - quota) < 0.1 * quota, `rate ${rate} against a quota of ${quota}`)
}))
