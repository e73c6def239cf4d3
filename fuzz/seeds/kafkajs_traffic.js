'use strict'
// kafkajs traffic for capture.py: produce with each codec, consume in a group, admin calls.
const { Kafka, CompressionTypes, CompressionCodecs, logLevel } = require('kafkajs')
const SnappyCodec = require('kafkajs-snappy')
const lz4 = require('lz4js')
const { compress, decompress } = require('@mongodb-js/zstd')

CompressionCodecs[CompressionTypes.Snappy] = SnappyCodec
CompressionCodecs[CompressionTypes.LZ4] = () => ({
  compress: async (encoder) => Buffer.from(lz4.compress(encoder.buffer)),
  decompress: async (buffer) => Buffer.from(lz4.decompress(buffer))
})
CompressionCodecs[CompressionTypes.ZSTD] = () => ({
  compress: async (encoder) => compress(encoder.buffer),
  decompress: async (buffer) => decompress(buffer)
})

async function main () {
  const kafka = new Kafka({ clientId: 'seed-js', brokers: [process.env.BOOTSTRAP], logLevel: logLevel.NOTHING })
  const admin = kafka.admin()
  await admin.connect()
  await admin.createTopics({ topics: [{ topic: 'js', numPartitions: 2 }] })
  const producer = kafka.producer({ idempotent: true })
  await producer.connect()
  for (const codec of [CompressionTypes.None, CompressionTypes.GZIP, CompressionTypes.Snappy, CompressionTypes.LZ4, CompressionTypes.ZSTD]) {
    const messages = []
    for (let i = 0; i < 20; i++) messages.push({ key: `k${i}`, value: `codec ${codec} value ${i} `.repeat(3), headers: { h: 'x' } })
    await producer.send({ topic: 'js', compression: codec, messages })
  }
  await producer.disconnect()
  const consumer = kafka.consumer({ groupId: 'js-group' })
  await consumer.connect()
  await consumer.subscribe({ topic: 'js', fromBeginning: true })
  let got = 0
  await new Promise((resolve) => {
    const timer = setTimeout(resolve, 20000)
    consumer.run({
      eachMessage: async () => {
        got++
        if (got >= 100) { clearTimeout(timer); resolve() }
      }
    })
  })
  await consumer.disconnect()
  await admin.fetchTopicOffsets('js')
  await admin.fetchOffsets({ groupId: 'js-group', topics: ['js'] })
  await admin.describeGroups(['js-group'])
  await admin.listGroups()
  await admin.describeConfigs({ resources: [{ type: 2, name: 'js' }], includeSynonyms: false })
  await admin.setOffsets({ groupId: 'js-group', topic: 'js', partitions: [{ partition: 0, offset: '0' }] })
  await admin.deleteGroups(['js-group'])
  await admin.disconnect()
  console.log('kafkajs consumed', got)
}

main().catch((e) => { console.error(e); process.exit(1) })
