'use strict'
// kafkajs over SASL_SSL: PLAIN and SCRAM-SHA-256/512 round trips through a consumer group, a
// wrong password refused with kafkajs's authentication error, a plaintext client refused by the
// TLS listener. The broker is started with Kafka's listener properties; each listener's port is
// read from its "cairn listener bound ... name=NAME addr=IP:PORT" log line. Certificates and
// SCRAM users are made with the Python suite's tools (tests/integration: tls_certs.py and
// confluent-kafka's admin client), so the Python venv must be set up.
const { test, before, after } = require('node:test')
const assert = require('node:assert/strict')
const { execFileSync } = require('node:child_process')
const crypto = require('node:crypto')
const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')
const { Broker, withBrokerLog, sleep } = require('./broker')
const { Kafka, logLevel } = require('kafkajs')

const REPO_ROOT = path.resolve(__dirname, '..', '..')
const INTEGRATION = path.join(REPO_ROOT, 'tests', 'integration')
const PYTHON = process.env.PYTHON_FOR_TESTS ||
  (fs.existsSync(path.join(REPO_ROOT, '.venv', 'bin', 'python')) ? path.join(REPO_ROOT, '.venv', 'bin', 'python') : 'python3')

const JAAS_PLAIN = 'org.apache.kafka.common.security.plain.PlainLoginModule required ' +
  'user_admin="admin-secret" user_alice="alice-secret";'
const JAAS_SCRAM = 'org.apache.kafka.common.security.scram.ScramLoginModule required;'

// Starts `cairn serve` with `listeners` instead of --listen and learns the ports from the log.
class SecureBroker extends Broker {
  async start (timeoutMs = 30000) {
    const { spawn } = require('node:child_process')
    const { CAIRN_BIN } = require('./broker')
    if (!fs.existsSync(CAIRN_BIN)) throw new Error(`broker binary not built: ${CAIRN_BIN}`)
    this.dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'cairn-js-sec-'))
    const outDir = path.join(__dirname, 'test-output')
    fs.mkdirSync(outDir, { recursive: true })
    this.logPath = path.join(outDir, `${this.name}.log`)
    const args = ['serve', '--data-dir', this.dataDir]
    for (const [k, v] of Object.entries(this.options)) args.push('-o', `${k}=${v}`)
    const log = fs.openSync(this.logPath, 'w')
    fs.writeSync(log, `===== ${CAIRN_BIN} ${args.join(' ')}\n`)
    this.proc = spawn(CAIRN_BIN, args, { stdio: ['ignore', log, log], env: { ...process.env, RUST_BACKTRACE: '1', NO_COLOR: '1' } })
    fs.closeSync(log)
    this.exit = new Promise((resolve) => this.proc.once('exit', (code, signal) => resolve({ code, signal })))
    this.proc.once('exit', () => { this.exited = true })
    const want = this.options.listeners.split(',').map((l) => l.split('://')[0].trim().toUpperCase())
    const deadline = Date.now() + timeoutMs
    while (Date.now() < deadline) {
      if (this.exited) throw new Error(`broker exited before binding its listeners:\n${this.log()}`)
      const found = boundListeners(this.log())
      if (want.every((n) => found[n])) {
        this.ports = found
        this.port = found.PLAINTEXT
        // Bound is not yet serving: the SASL_SSL port must take a TLS connection.
        if (await tlsReady(found.SASL_SSL)) return this
      }
      await sleep(50)
    }
    throw new Error(`no listener lines for ${want} within ${timeoutMs}ms:\n${this.log()}`)
  }

  bootstrapFor (name) { return `127.0.0.1:${this.ports[name]}` }
}

function boundListeners (text) {
  const found = {}
  for (const line of text.split('\n')) {
    if (!line.includes('cairn listener bound')) continue
    const name = /\bname="?([A-Za-z0-9_.-]+)"?/.exec(line)
    const addr = /\baddr="?([0-9.]+):(\d+)"?/.exec(line)
    if (name && addr) found[name[1].toUpperCase()] = Number(addr[2])
  }
  return found
}

function tlsReady (port) {
  const tls = require('node:tls')
  return new Promise((resolve) => {
    const s = tls.connect({ host: '127.0.0.1', port, ca: [fs.readFileSync(certs.ca)], servername: 'localhost' })
    const done = (ok) => { s.destroy(); resolve(ok) }
    s.setTimeout(1000, () => done(false))
    s.once('secureConnect', () => done(true))
    s.once('error', () => done(false))
  })
}

let certs, broker
const logged = (fn) => withBrokerLog(() => broker, fn)
const uid = () => crypto.randomBytes(5).toString('hex')

function python (args) {
  return execFileSync(PYTHON, args, { cwd: INTEGRATION, encoding: 'utf8', timeout: 60000 })
}

// A SCRAM user created through the admin API (AlterUserScramCredentials), as admin over PLAIN.
function addScramUser (user, password, mechanism) {
  const code = `
import sys
from confluent_kafka.admin import AdminClient, ScramCredentialInfo, ScramMechanism, UserScramCredentialUpsertion
bootstrap, ca, user, password, mech = sys.argv[1:]
a = AdminClient({"bootstrap.servers": bootstrap, "security.protocol": "SASL_SSL", "sasl.mechanism": "PLAIN",
                 "sasl.username": "admin", "sasl.password": "admin-secret", "ssl.ca.location": ca})
m = {"SCRAM-SHA-256": ScramMechanism.SCRAM_SHA_256, "SCRAM-SHA-512": ScramMechanism.SCRAM_SHA_512}[mech]
fs = a.alter_user_scram_credentials([UserScramCredentialUpsertion(user, ScramCredentialInfo(m, 4096), password.encode())])
fs[user].result(timeout=30)
`
  python(['-c', code, broker.bootstrapFor('SASL_SSL'), certs.ca, user, password, mechanism])
}

function saslKafka (mechanism, username, password, extra = {}) {
  return new Kafka({
    clientId: 'cairn-js-security',
    brokers: [broker.bootstrapFor('SASL_SSL')],
    ssl: { ca: [fs.readFileSync(certs.ca)] },
    sasl: { mechanism: mechanism.toLowerCase(), username, password },
    connectionTimeout: 5000,
    authenticationTimeout: 10000,
    requestTimeout: 15000,
    retry: { retries: 2, initialRetryTime: 100, maxRetryTime: 1000 },
    logLevel: process.env.KAFKAJS_LOG ? logLevel.DEBUG : logLevel.NOTHING,
    ...extra
  })
}

function errorNames (e) {
  const names = []
  const seen = new Set()
  const walk = (x) => {
    if (!x || typeof x !== 'object' || seen.has(x)) return
    seen.add(x)
    names.push(x.name)
    walk(x.originalError)
    walk(x.cause)
  }
  walk(e)
  return names
}

before(async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cairn-js-certs-'))
  certs = JSON.parse(python([path.join(INTEGRATION, 'tls_certs.py'), dir]))
  broker = new SecureBroker('security.test', {
    'num.partitions': 1,
    'auto.create.topics.enable': 'true',
    listeners: 'SASL_SSL://127.0.0.1:0,PLAINTEXT://127.0.0.1:0',
    'listener.security.protocol.map': 'SASL_SSL:SASL_SSL,PLAINTEXT:PLAINTEXT',
    'ssl.keystore.type': 'PEM',
    'ssl.keystore.location': certs.server_keystore,
    'sasl.enabled.mechanisms': 'PLAIN,SCRAM-SHA-256,SCRAM-SHA-512',
    'listener.name.sasl_ssl.plain.sasl.jaas.config': JAAS_PLAIN,
    'listener.name.sasl_ssl.scram-sha-256.sasl.jaas.config': JAAS_SCRAM,
    'listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config': JAAS_SCRAM,
    'group.initial.rebalance.delay.ms': 0
  })
  await broker.start()
})

after(async () => {
  if (broker) await broker.stop()
})

async function credentialsFor (mechanism) {
  if (mechanism === 'PLAIN') return ['alice', 'alice-secret']
  const user = `js-${uid()}`
  const password = `pw-${uid()}`
  addScramUser(user, password, mechanism)
  return [user, password]
}

for (const mechanism of ['PLAIN', 'SCRAM-SHA-256', 'SCRAM-SHA-512']) {
  test(`round trip through a consumer group over SASL_SSL with ${mechanism}`, logged(async () => {
    const [user, password] = await credentialsFor(mechanism)
    const kafka = saslKafka(mechanism, user, password)
    const topic = `js-sec-${uid()}`
    const admin = kafka.admin()
    await admin.connect()
    const producer = kafka.producer({ allowAutoTopicCreation: false })
    const groupId = `js-g-${uid()}`
    const consumer = kafka.consumer({ groupId, sessionTimeout: 10000, heartbeatInterval: 1000 })
    try {
      await admin.createTopics({ topics: [{ topic, numPartitions: 1 }], waitForLeaders: true })
      await producer.connect()
      const values = Array.from({ length: 10 }, (_, i) => `${mechanism}-${i}`)
      await producer.send({ topic, messages: values.map((value) => ({ value })) })
      await consumer.connect()
      await consumer.subscribe({ topic, fromBeginning: true })
      const got = []
      await consumer.run({ eachMessage: async ({ message }) => { got.push(message.value.toString()) } })
      const deadline = Date.now() + 40000
      while (got.length < values.length && Date.now() < deadline) await sleep(100)
      assert.deepEqual(got, values)
      // Leaving the group commits what was read (kafkajs auto-commit).
      await consumer.disconnect()
      const [committed] = await admin.fetchOffsets({ groupId, topics: [topic] })
      assert.deepEqual(committed.partitions.map((p) => [p.partition, p.offset]), [[0, String(values.length)]])
    } finally {
      await consumer.disconnect().catch(() => {})
      await producer.disconnect().catch(() => {})
      await admin.disconnect().catch(() => {})
    }
  }))

  test(`a wrong password is refused with ${mechanism}`, logged(async () => {
    const [user] = await credentialsFor(mechanism)
    const producer = saslKafka(mechanism, user, 'not-the-password').producer()
    const t = Date.now()
    let error = null
    try {
      await producer.connect()
    } catch (e) {
      error = e
    } finally {
      await producer.disconnect().catch(() => {})
    }
    assert.ok(error, 'connected with a wrong password')
    assert.ok(errorNames(error).includes('KafkaJSSASLAuthenticationError'), `not an authentication error: ${errorNames(error)} ${error}`)
    assert.ok(Date.now() - t < 20000, `refusal took ${Date.now() - t}ms`)
  }))
}

test('a plaintext client is refused by the TLS listener within a bound', logged(async () => {
  const kafka = new Kafka({
    clientId: 'cairn-js-plaintext',
    brokers: [broker.bootstrapFor('SASL_SSL')],
    connectionTimeout: 3000,
    requestTimeout: 5000,
    retry: { retries: 1, initialRetryTime: 100, maxRetryTime: 500 },
    logLevel: logLevel.NOTHING
  })
  const admin = kafka.admin()
  const t = Date.now()
  await assert.rejects(admin.connect())
  await admin.disconnect().catch(() => {})
  assert.ok(Date.now() - t < 30000, `took ${Date.now() - t}ms`)
  // The broker keeps serving SASL_SSL clients.
  const ok = saslKafka('PLAIN', 'alice', 'alice-secret').admin()
  await ok.connect()
  await ok.listTopics()
  await ok.disconnect()
}))
