'use strict'
// kafkajs helpers: client factory, extra compression codecs, and a read-back
// path that needs no consumer group (kafkajs only has group consumers).

process.env.KAFKAJS_NO_PARTITIONER_WARNING = '1'

const crypto = require('node:crypto')
const {
  Kafka,
  logLevel,
  Partitioners,
  CompressionTypes,
  CompressionCodecs
} = require('kafkajs')

// ---- codecs ---------------------------------------------------------------
// gzip is built into kafkajs. Snappy: kafkajs-snappy (pure JS). LZ4: a small
// adapter over lz4js (pure JS, LZ4 frame format as Kafka uses). ZSTD: an
// adapter over @mongodb-js/zstd (prebuilt binary shipped as a registry package).
const CODECS_AVAILABLE = { gzip: true, snappy: false, lz4: false, zstd: false }

try {
  CompressionCodecs[CompressionTypes.Snappy] = require('kafkajs-snappy')
  CODECS_AVAILABLE.snappy = true
} catch (e) {
  CODECS_AVAILABLE.snappyError = String(e)
}
try {
  const lz4js = require('lz4js')
  CompressionCodecs[CompressionTypes.LZ4] = () => ({
    async compress (encoder) { return Buffer.from(lz4js.compress(encoder.buffer)) },
    async decompress (buffer) { return Buffer.from(lz4js.decompress(buffer)) }
  })
  CODECS_AVAILABLE.lz4 = true
} catch (e) {
  CODECS_AVAILABLE.lz4Error = String(e)
}
try {
  const zstd = require('@mongodb-js/zstd')
  CompressionCodecs[CompressionTypes.ZSTD] = () => ({
    async compress (encoder) { return zstd.compress(encoder.buffer, 3) },
    async decompress (buffer) { return zstd.decompress(buffer) }
  })
  CODECS_AVAILABLE.zstd = true
} catch (e) {
  CODECS_AVAILABLE.zstdError = String(e)
}

// ---- clients --------------------------------------------------------------
function makeKafka (broker, extra = {}) {
  return new Kafka({
    clientId: 'cairn-js-tests',
    brokers: [broker.bootstrap],
    connectionTimeout: 3000,
    requestTimeout: 15000,
    retry: { retries: 3, initialRetryTime: 100, maxRetryTime: 1000 },
    logLevel: process.env.KAFKAJS_LOG ? logLevel.DEBUG : logLevel.NOTHING,
    ...extra
  })
}

function makeProducer (kafka, extra = {}) {
  return kafka.producer({
    createPartitioner: Partitioners.DefaultPartitioner, // Java-compatible murmur2
    allowAutoTopicCreation: false,
    ...extra
  })
}

function uniqueTopic (prefix = 'js') {
  return `${prefix}-${crypto.randomBytes(6).toString('hex')}`
}

// ---- read-back without a consumer group -----------------------------------
// kafkajs has no manual-assignment consumer. To read exact offsets of one
// partition (independent of group coordination) we use kafkajs's own internal
// Cluster/Broker objects (pinned kafkajs version) to issue plain Fetch
// requests; records are decoded (and decompressed) by kafkajs itself.
const Cluster = require('kafkajs/src/cluster')
const { createLogger } = require('kafkajs/src/loggers')
const LoggerConsole = require('kafkajs/src/loggers/console')
const socketFactory = require('kafkajs/src/network/socketFactory')

async function withCluster (broker, fn) {
  const cluster = new Cluster({
    logger: createLogger({ level: logLevel.NOTHING, logCreator: LoggerConsole }),
    brokers: [broker.bootstrap],
    clientId: 'cairn-js-fetch',
    connectionTimeout: 3000,
    requestTimeout: 15000,
    enforceRequestTimeout: true,
    retry: { retries: 3, initialRetryTime: 100, maxRetryTime: 1000 },
    offsets: new Map(),
    socketFactory: socketFactory(),
    allowAutoTopicCreation: false
  })
  await cluster.connect()
  try {
    return await fn(cluster)
  } finally {
    await cluster.disconnect()
  }
}

// Reads `count` records of one partition starting at `fromOffset`.
// Returns [{ offset, key, value, timestamp, headers }] with Buffers.
async function fetchRecords (broker, topic, partition, count, fromOffset = 0, timeoutMs = 30000) {
  return withCluster(broker, async (cluster) => {
    await cluster.addTargetTopic(topic)
    await cluster.refreshMetadata()
    const leaders = cluster.findLeaderForPartitions(topic, [partition])
    const nodeId = Object.keys(leaders)[0]
    const b = await cluster.findBroker({ nodeId })
    const out = []
    let offset = BigInt(fromOffset)
    const deadline = Date.now() + timeoutMs
    while (out.length < count && Date.now() < deadline) {
      const resp = await b.fetch({
        replicaId: -1,
        isolationLevel: 0,
        maxWaitTime: 200,
        minBytes: 1,
        maxBytes: 16 * 1024 * 1024,
        topics: [{ topic, partitions: [{ partition, fetchOffset: offset.toString(), maxBytes: 16 * 1024 * 1024 }] }]
      })
      const p = resp.responses[0].partitions[0]
      if (p.errorCode !== 0) throw new Error(`fetch error code ${p.errorCode}`)
      for (const m of p.messages) {
        if (BigInt(m.offset) < offset) continue // batches may start before the fetch offset
        out.push(m)
        offset = BigInt(m.offset) + 1n
      }
    }
    if (out.length < count) throw new Error(`fetched ${out.length} of ${count} records within ${timeoutMs}ms`)
    return out.slice(0, count)
  })
}

module.exports = {
  makeKafka,
  makeProducer,
  uniqueTopic,
  fetchRecords,
  CODECS_AVAILABLE,
  CompressionTypes
}
