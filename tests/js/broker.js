'use strict'
// Spawns `cairn serve` on a free 127.0.0.1 port with a fresh temp data dir,
// waits until it accepts TCP connections, and stops it (SIGTERM, then SIGKILL).

const { spawn } = require('node:child_process')
const fs = require('node:fs')
const net = require('node:net')
const os = require('node:os')
const path = require('node:path')

const REPO_ROOT = path.resolve(__dirname, '..', '..')
const CAIRN_BIN = process.env.CAIRN_BIN || path.join(REPO_ROOT, 'target', 'release', 'cairn')
const OUTPUT_DIR = path.join(__dirname, 'test-output')

function freePort () {
  return new Promise((resolve, reject) => {
    const srv = net.createServer()
    srv.unref()
    srv.on('error', reject)
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address()
      srv.close(() => resolve(port))
    })
  })
}

function canConnect (port) {
  return new Promise((resolve) => {
    const sock = net.connect({ host: '127.0.0.1', port })
    const done = (ok) => { sock.destroy(); resolve(ok) }
    sock.setTimeout(500, () => done(false))
    sock.once('connect', () => done(true))
    sock.once('error', () => done(false))
  })
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))

class Broker {
  constructor (name, options = {}) {
    this.name = name.replace(/[^A-Za-z0-9_.-]+/g, '_')
    this.options = { 'num.partitions': 4, 'auto.create.topics.enable': 'true', ...options }
    this.proc = null
    this.exit = null
  }

  get bootstrap () { return `127.0.0.1:${this.port}` }

  async start (timeoutMs = 30000) {
    if (!fs.existsSync(CAIRN_BIN)) throw new Error(`broker binary not built: ${CAIRN_BIN}`)
    this.port = await freePort()
    this.dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'cairn-js-'))
    fs.mkdirSync(OUTPUT_DIR, { recursive: true })
    this.logPath = path.join(OUTPUT_DIR, `${this.name}.log`)
    const args = ['serve', '--listen', this.bootstrap, '--data-dir', this.dataDir]
    for (const [k, v] of Object.entries(this.options)) args.push('-o', `${k}=${v}`)
    const log = fs.openSync(this.logPath, 'w')
    fs.writeSync(log, `===== ${CAIRN_BIN} ${args.join(' ')}\n`)
    this.proc = spawn(CAIRN_BIN, args, { stdio: ['ignore', log, log], env: { ...process.env, RUST_BACKTRACE: '1', NO_COLOR: '1' } })
    fs.closeSync(log)
    this.exit = new Promise((resolve) => this.proc.once('exit', (code, signal) => resolve({ code, signal })))
    this.proc.once('exit', () => { this.exited = true })
    const deadline = Date.now() + timeoutMs
    while (Date.now() < deadline) {
      if (this.exited) throw new Error(`broker exited before accepting connections:\n${this.log()}`)
      if (await canConnect(this.port)) return this
      await sleep(50)
    }
    throw new Error(`broker did not accept connections on ${this.bootstrap} within ${timeoutMs}ms:\n${this.log()}`)
  }

  log () {
    try {
      const text = fs.readFileSync(this.logPath, 'utf8')
      return text.length > 20000 ? '[... cut ...]\n' + text.slice(-20000) : text
    } catch (e) {
      return ''
    }
  }

  async stop (timeoutMs = 10000) {
    if (!this.proc) return null
    if (!this.exited) {
      this.proc.kill('SIGTERM')
      const timer = setTimeout(() => { if (!this.exited) this.proc.kill('SIGKILL') }, timeoutMs)
      await this.exit
      clearTimeout(timer)
    }
    try { fs.rmSync(this.dataDir, { recursive: true, force: true }) } catch (e) {}
    return this.exit
  }
}

// Starts a broker for a test file: call in `before`, use `after(() => b.stop())`.
async function startBroker (name, options) {
  const b = new Broker(name, options)
  await b.start()
  return b
}

// Wraps a test body so that a failure carries the tail of the broker's stderr.
function withBrokerLog (getBroker, fn) {
  return async (t) => {
    try {
      return await fn(t)
    } catch (e) {
      const b = getBroker()
      if (b) {
        const text = b.log()
        const tail = text.length > 6000 ? '[...]\n' + text.slice(-6000) : text
        try { e.message += `\n----- cairn stderr (${b.logPath}) -----\n${tail}` } catch (_) {}
      }
      throw e
    }
  }
}

module.exports = { Broker, startBroker, withBrokerLog, sleep, CAIRN_BIN }
