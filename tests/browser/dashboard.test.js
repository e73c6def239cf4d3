'use strict'
// The dashboard in headless Chromium: a broker with groups of known lag, the groups list against
// the JSON API and the produced counts, a group page (partitions, chart, members), the topics
// page, and a 1,000-group list that must render quickly.
//
// Needs target/release/cairn (or CAIRN_BIN) and Chromium (CHROMIUM, default /usr/bin/chromium).

const { describe, test, before, after } = require('node:test')
const assert = require('node:assert/strict')
const { spawn } = require('node:child_process')
const fs = require('node:fs')
const net = require('node:net')
const os = require('node:os')
const path = require('node:path')
const { chromium } = require('playwright-core')
const { Kafka, logLevel } = require('kafkajs')

const REPO_ROOT = path.resolve(__dirname, '..', '..')
const CAIRN_BIN = process.env.CAIRN_BIN || path.join(REPO_ROOT, 'target', 'release', 'cairn')
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium'
const OUT_DIR = fs.mkdtempSync(path.join(os.tmpdir(), 'cairn-dashboard-'))
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))

function freePort () {
  return new Promise((resolve, reject) => {
    const srv = net.createServer()
    srv.on('error', reject)
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address()
      srv.close(() => resolve(port))
    })
  })
}

async function waitFor (what, fn, timeoutMs = 20000, everyMs = 100) {
  const deadline = Date.now() + timeoutMs
  let last
  while (Date.now() < deadline) {
    try {
      last = await fn()
      if (last) return last
    } catch (e) {
      last = e
    }
    await sleep(everyMs)
  }
  throw new Error(`timed out waiting for ${what} (last: ${last && (last.stack || JSON.stringify(last))})`)
}

class Broker {
  async start () {
    if (!fs.existsSync(CAIRN_BIN)) throw new Error(`broker binary not built: ${CAIRN_BIN}`)
    this.port = await freePort()
    this.httpPort = await freePort()
    this.dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'cairn-browser-'))
    this.logPath = path.join(OUT_DIR, 'broker.log')
    const args = ['serve', '--listen', `127.0.0.1:${this.port}`, '--http', `127.0.0.1:${this.httpPort}`,
      '--data-dir', this.dataDir, '-o', 'group.initial.rebalance.delay.ms=0',
      '-o', 'cairn.lag.refresh.ms=500', '-o', 'num.partitions=3', '-o', 'auto.create.topics.enable=true']
    const log = fs.openSync(this.logPath, 'w')
    this.proc = spawn(CAIRN_BIN, args, { stdio: ['ignore', log, log], env: { ...process.env, NO_COLOR: '1' } })
    fs.closeSync(log)
    this.exit = new Promise((resolve) => this.proc.once('exit', resolve))
    await waitFor('the broker\'s /health', async () => {
      if (this.proc.exitCode != null) throw new Error('broker exited:\n' + fs.readFileSync(this.logPath, 'utf8'))
      const res = await fetch(this.url('/health'))
      return res.ok
    }, 30000)
    return this
  }

  url (p) { return `http://127.0.0.1:${this.httpPort}${p}` }
  get bootstrap () { return `127.0.0.1:${this.port}` }

  async api (p) {
    const res = await fetch(this.url(p))
    if (!res.ok) throw new Error(`${p}: ${res.status} ${await res.text()}`)
    return res.json()
  }

  async stop () {
    if (this.proc && this.proc.exitCode == null) {
      this.proc.kill('SIGTERM')
      const timer = setTimeout(() => this.proc.kill('SIGKILL'), 10000)
      await this.exit
      clearTimeout(timer)
    }
    fs.rmSync(this.dataDir, { recursive: true, force: true })
  }
}

async function launchBrowser () {
  // A fresh profile each run; no background traffic (there is no network beyond 127.0.0.1).
  const profile = fs.mkdtempSync(path.join(os.tmpdir(), 'cairn-chromium-'))
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    viewport: { width: 1280, height: 900 }
  })
  context.profile = profile
  return context
}

async function closeBrowser (context) {
  if (!context) return
  await context.close()
  fs.rmSync(context.profile, { recursive: true, force: true })
}

// The groups list as the page shows it: group id -> the visible cells' text.
function readGroupRows (page) {
  return page.$$eval('#groups tbody tr:not([hidden])', (trs) => trs.map((tr) => {
    const cells = Array.from(tr.cells, (c) => c.textContent.trim())
    return {
      group: cells[0],
      type: cells[1],
      state: cells[2],
      status: cells[3],
      members: cells[4],
      totalLag: cells[6],
      maxLag: cells[7],
      maxLagTime: cells[8],
      maxLagSeconds: Number(tr.cells[8].dataset.value)
    }
  }))
}

// Commits offsets for groups without members (simple groups), OffsetCommit with generation -1,
// through kafkajs's internal cluster (its admin setOffsets joins each group as a consumer).
// commits: [{ groupId, topic, partition, offset }]
async function commitOffsets (bootstrap, commits, concurrency = 32) {
  const Cluster = require('kafkajs/src/cluster')
  const { createLogger } = require('kafkajs/src/loggers')
  const LoggerConsole = require('kafkajs/src/loggers/console')
  const socketFactory = require('kafkajs/src/network/socketFactory')
  const cluster = new Cluster({
    logger: createLogger({ level: logLevel.NOTHING, logCreator: LoggerConsole }),
    brokers: [bootstrap],
    clientId: 'dashboard-commits',
    connectionTimeout: 3000,
    requestTimeout: 15000,
    retry: { retries: 5, initialRetryTime: 100, maxRetryTime: 1000 },
    offsets: new Map(),
    socketFactory: socketFactory(),
    allowAutoTopicCreation: false
  })
  await cluster.connect()
  try {
    let next = 0
    await Promise.all(Array.from({ length: concurrency }, async () => {
      while (next < commits.length) {
        const c = commits[next++]
        const coordinator = await cluster.findGroupCoordinator({ groupId: c.groupId })
        const res = await coordinator.offsetCommit({
          groupId: c.groupId,
          groupGenerationId: -1,
          memberId: '',
          topics: [{ topic: c.topic, partitions: [{ partition: c.partition, offset: String(c.offset) }] }]
        })
        const code = res.responses[0].partitions[0].errorCode
        if (code !== 0) throw new Error(`commit for ${c.groupId}: error code ${code}`)
      }
    }))
  } finally {
    await cluster.disconnect()
  }
}

const plain = (text) => Number(text.replace(/,/g, ''))

const TOPIC = 'orders'
const PER_PARTITION = [100, 120, 80] // records produced to partitions 0, 1, 2
const EXTRA_P0 = 30 // produced to partition 0 after the live group caught up

describe('dashboard', () => {
  let broker
  let kafka
  let admin
  let producer
  let liveConsumer
  let idleConsumer
  let browser

  before(async () => {
    broker = await new Broker().start()
    kafka = new Kafka({ clientId: 'dashboard-test', brokers: [broker.bootstrap], logLevel: logLevel.NOTHING })
    admin = kafka.admin()
    await admin.connect()
    await admin.createTopics({ topics: [{ topic: TOPIC, numPartitions: 3 }, { topic: 'quiet', numPartitions: 2 }] })
    producer = kafka.producer()
    await producer.connect()
    const messages = []
    PER_PARTITION.forEach((n, partition) => {
      for (let i = 0; i < n; i++) messages.push({ partition, value: `record-${partition}-${i}` })
    })
    await producer.send({ topic: TOPIC, acks: -1, messages })

    // A group with commits only: partition 0 at 40 (lag 60, then 90), partition 1 at its end.
    await commitOffsets(broker.bootstrap, [
      { groupId: 'dash-simple', topic: TOPIC, partition: 0, offset: 40 },
      { groupId: 'dash-simple', topic: TOPIC, partition: 1, offset: 120 }
    ], 1)

    // A live member that reads everything, commits, then stops fetching; 30 more records follow.
    liveConsumer = kafka.consumer({ groupId: 'dash-live', sessionTimeout: 30000, heartbeatInterval: 500, maxWaitTimeInMs: 200 })
    await liveConsumer.connect()
    await liveConsumer.subscribe({ topic: TOPIC, fromBeginning: true })
    let seen = 0
    await liveConsumer.run({ autoCommitInterval: 100, eachMessage: async () => { seen++ } })
    await waitFor('the live group to consume everything', () => seen >= 300, 30000)
    await waitFor('the live group to commit', async () => {
      const offsets = await admin.fetchOffsets({ groupId: 'dash-live', topics: [TOPIC] })
      return offsets[0].partitions.every((p) => Number(p.offset) === PER_PARTITION[p.partition])
    }, 20000, 200)
    liveConsumer.pause([{ topic: TOPIC }])
    await producer.send({ topic: TOPIC, acks: -1, messages: Array.from({ length: EXTRA_P0 }, (_, i) => ({ partition: 0, value: `late-${i}` })) })

    // A member assigned partitions it never commits (nothing to read): shown as uncommitted.
    idleConsumer = kafka.consumer({ groupId: 'dash-idle', sessionTimeout: 30000, heartbeatInterval: 500, maxWaitTimeInMs: 200 })
    await idleConsumer.connect()
    await idleConsumer.subscribe({ topic: 'quiet' })
    await idleConsumer.run({ autoCommit: false, eachMessage: async () => {} })

    await waitFor('the lag snapshot to show the expected lag', async () => {
      const page = await broker.api('/api/groups')
      const by = Object.fromEntries(page.groups.map((g) => [g.group, g]))
      const ok = by['dash-simple'] && by['dash-simple'].total_lag === PER_PARTITION[0] + EXTRA_P0 - 40 &&
        by['dash-live'] && by['dash-live'].total_lag === EXTRA_P0 && by['dash-live'].state === 'Stable' &&
        by['dash-idle'] && by['dash-idle'].uncommitted_partitions === 2
      if (!ok) throw new Error(JSON.stringify(page.groups))
      return true
    }, 30000, 200)
    browser = await launchBrowser()
  })

  after(async () => {
    await closeBrowser(browser)
    for (const c of [liveConsumer, idleConsumer, producer, admin]) {
      if (c) await c.disconnect().catch(() => {})
    }
    if (broker) await broker.stop()
  })

  test('the groups list shows every group with the lag the API and the produced counts give', async () => {
    const page = await browser.newPage()
    const errors = []
    page.on('pageerror', (e) => errors.push(e.message))
    await page.goto(broker.url('/'))
    await page.waitForSelector('#groups[data-rows="3"]')
    const truth = Object.fromEntries((await broker.api('/api/groups')).groups.map((g) => [g.group, g]))
    const rows = Object.fromEntries((await readGroupRows(page)).map((r) => [r.group, r]))
    assert.deepEqual(Object.keys(rows).sort(), ['dash-idle', 'dash-live', 'dash-simple'])
    for (const [id, g] of Object.entries(truth)) {
      assert.equal(plain(rows[id].totalLag), g.total_lag, `${id} total lag`)
      assert.equal(plain(rows[id].maxLag), g.max_lag, `${id} max lag`)
      // Seconds move with every snapshot (twice a second here): close to the API's figure.
      assert.ok(Math.abs(rows[id].maxLagSeconds - g.max_lag_seconds) < 5, `${id} max lag seconds ${rows[id].maxLagSeconds} vs ${g.max_lag_seconds}`)
      assert.equal(rows[id].type, g.type)
      assert.equal(rows[id].state, g.state)
      assert.equal(rows[id].status, g.status)
      assert.equal(plain(rows[id].members), g.members)
    }
    // And the produced counts, independently of the API.
    assert.equal(plain(rows['dash-simple'].totalLag), PER_PARTITION[0] + EXTRA_P0 - 40)
    assert.equal(plain(rows['dash-live'].totalLag), EXTRA_P0)
    assert.equal(plain(rows['dash-idle'].totalLag), 0)
    assert.equal(rows['dash-live'].members, '1')

    // Sorting by total lag (worst first) and filtering.
    await page.click('#groups thead button[data-sort="total_lag"]')
    const order = (await readGroupRows(page)).map((r) => r.group)
    assert.deepEqual(order, ['dash-simple', 'dash-live', 'dash-idle'])
    assert.equal(await page.getAttribute('#groups th[data-key="total_lag"]', 'aria-sort'), 'descending')
    await page.fill('#group-filter', 'live')
    await waitFor('the filter', async () => (await readGroupRows(page)).length === 1)
    assert.equal((await readGroupRows(page))[0].group, 'dash-live')
    assert.match(await page.textContent('#group-count'), /Showing 1 of 3 groups/)
    await page.screenshot({ path: path.join(OUT_DIR, 'groups.png'), fullPage: true })
    assert.deepEqual(errors, [])
    await page.close()
  })

  test('a group page shows partitions, members, the lag chart and the rebalances', async () => {
    const page = await browser.newPage()
    const errors = []
    page.on('pageerror', (e) => errors.push(e.message))
    await page.goto(broker.url('/'))
    await page.click('#groups a[href="#/group/dash-live"]')
    await page.waitForSelector('#partitions')
    assert.equal(new URL(page.url()).hash, '#/group/dash-live')

    const truth = await broker.api('/api/groups/dash-live')
    const parts = await page.$$eval('#partitions tbody tr', (trs) => trs.map((tr) => Array.from(tr.cells, (c) => c.textContent.trim())))
    assert.equal(parts.length, 3)
    const member = truth.member_list[0]
    for (const [i, cells] of parts.entries()) {
      const [topic, partition, committed, , end, lag, , owner] = cells
      const p = truth.partition_list[i]
      assert.equal(topic, TOPIC)
      assert.equal(Number(partition), i)
      const produced = PER_PARTITION[i] + (i === 0 ? EXTRA_P0 : 0)
      assert.equal(plain(end), produced, `log end of partition ${i}`)
      assert.equal(plain(committed), PER_PARTITION[i], `committed offset of partition ${i}`)
      assert.equal(plain(lag), produced - PER_PARTITION[i], `lag of partition ${i}`)
      assert.equal(plain(lag), p.lag)
      assert.equal(owner, member.client_id)
    }
    const members = await page.$$eval('#members tbody tr', (trs) => trs.map((tr) => tr.textContent))
    assert.equal(members.length, 1)
    assert.ok(members[0].includes(member.member_id))
    assert.ok(members[0].includes(`${TOPIC}: 0, 1, 2`))

    // The chart: a line through the lag history's points, once there are a few.
    const points = await waitFor('a lag chart with several points', async () => {
      const n = await page.$eval('#lag-chart path.line', (p) => Number(p.dataset.points)).catch(() => 0)
      return n >= 3 ? n : 0
    }, 20000, 250)
    const d = await page.getAttribute('#lag-chart path.line', 'd')
    assert.match(d, /^M[\d.]+,[\d.]+(L[\d.]+,[\d.]+)+$/)
    assert.equal(d.split('L').length, points)
    const box = await page.$eval('#lag-chart', (svg) => { const r = svg.getBoundingClientRect(); return { w: r.width, h: r.height } })
    assert.ok(box.w > 300 && box.h > 100, `chart size ${JSON.stringify(box)}`)

    // The rebalance that made the group Stable.
    const reb = await page.$$eval('#rebalances tbody tr', (trs) => trs.map((tr) => tr.textContent))
    assert.equal(reb.length, truth.rebalances.length)
    assert.ok(reb.length >= 1)
    assert.ok(reb.some((t) => /member joined/.test(t) && /stable/.test(t)), reb.join('\n'))

    const shot = path.join(OUT_DIR, 'group-dash-live.png')
    await page.screenshot({ path: shot, fullPage: true })
    assert.ok(fs.statSync(shot).size > 10000)
    console.log(`screenshots in ${OUT_DIR}`)

    // Uncommitted partitions are shown as such, not as lag.
    await page.goto(broker.url('/#/group/dash-idle'))
    await page.waitForSelector('#partitions')
    const idle = await page.$$eval('#partitions tbody tr', (trs) => trs.map((tr) => Array.from(tr.cells, (c) => c.textContent.trim())))
    assert.equal(idle.length, 2)
    for (const cells of idle) {
      assert.equal(cells[2], 'uncommitted')
      assert.equal(cells[5], '—')
    }

    // An unknown group says so.
    await page.goto(broker.url('/#/group/' + encodeURIComponent('no such/group')))
    await page.waitForSelector('text=The broker knows no group with this id.')
    assert.deepEqual(errors, [])
    await page.close()
  })

  // No JavaScript client here speaks the consumer protocol (KIP-848), so the page is fed a
  // consumer group in the API's shape (the HTTP crate's tests pin that shape to app.js).
  test('a consumer group page shows epochs, member epochs and reconciliation', async () => {
    const id = 'kip848-fixture'
    const m = (memberId, clientId, epoch, state, owned, target, adding, revoking) => ({
      member_id: memberId, client_id: clientId, client_host: '/127.0.0.1', instance_id: null,
      assignment: owned, member_epoch: epoch, member_state: state, subscribed_topics: ['orders'],
      subscribed_regex: null, target_assignment: target, pending_assignment: adding, pending_revocation: revoking
    })
    const tp = (ps) => ps.length ? [{ topic: 'orders', partitions: ps }] : []
    const detail = {
      group: id, type: 'consumer', state: 'Reconciling', protocol_type: 'consumer', assignor: 'uniform',
      generation: 7, group_epoch: 7, assignment_epoch: 7, members: 2, partitions: 2, uncommitted_partitions: 0,
      total_lag: 5, max_lag: 5, max_lag_seconds: 1.5, status: 'ok', snapshot_ms: Date.now(), leader: null,
      member_list: [
        m('m-one', 'client-one', 6, 'unrevoked_partitions', tp([0, 1]), tp([0]), [], tp([1])),
        m('m-two', 'client-two', 7, 'unreleased_partitions', [], tp([1]), tp([1]), [])
      ],
      partition_list: [0, 1].map((p) => ({
        topic: 'orders', partition: p, committed_offset: 5, log_start_offset: 0, log_end_offset: 5 + p * 5,
        lag: p * 5, lag_seconds: p * 1.5, owner: 'm-one', target_owner: p === 0 ? 'm-one' : 'm-two', status: 'ok'
      })),
      lag_history: [],
      rebalances: [{
        seq: 9, cause: 'member_joined', cause_detail: 'm-two', from_generation: 6, generation: 7,
        started_ms: Date.now() - 1000, join_completed_ms: Date.now() - 990, completed_ms: Date.now() - 750,
        preparing_ms: 10, completing_ms: 240, reconciliation_ms: 240, total_ms: 250,
        members_before: 1, members_after: 2, partitions_moved: 1, outcome: 'stable'
      }]
    }
    const page = await browser.newPage()
    const errors = []
    page.on('pageerror', (e) => errors.push(e.message))
    await page.route('**/api/groups/' + id, (route) => route.fulfill({ contentType: 'application/json', body: JSON.stringify(detail) }))
    await page.goto(broker.url('/#/group/' + id))
    await page.waitForSelector('#members')
    const summary = await page.textContent('#g-summary')
    for (const s of ['consumer', 'Reconciling', 'Group epoch', 'Assignment epoch', 'uniform']) {
      assert.ok(summary.includes(s), `${s} in ${summary}`)
    }
    assert.ok(!summary.includes('Generation'), summary)
    const rows = await page.$$eval('#members tbody tr', (trs) => trs.map((tr) => Array.from(tr.cells, (c) => c.textContent.trim())))
    assert.equal(rows.length, 2)
    const [, , , , epoch, state, count, current, target, reconciling] = rows[0]
    assert.deepEqual([epoch, state, count, current, target], ['6', 'unrevoked partitions', '2', 'orders: 0, 1', 'orders: 0'])
    assert.equal(reconciling, 'give up orders: 1')
    assert.equal(rows[1][9], 'receive orders: 1')
    assert.equal(rows[1][4], '7')
    const owners = await page.$$eval('#partitions tbody tr', (trs) => trs.map((tr) => tr.cells[7].textContent.trim()))
    assert.deepEqual(owners, ['client-one', 'client-one → client-two moving'])
    const reb = await page.textContent('#rebalances')
    assert.ok(/Group epoch/.test(reb) && /Reconciling/.test(reb), reb)
    assert.ok(reb.includes('reconciliation took 240 ms'), reb)
    assert.deepEqual(errors, [])
    await page.screenshot({ path: path.join(OUT_DIR, 'group-consumer.png'), fullPage: true })
    await page.close()
  })

  test('the topics page lists topics with their records', async () => {
    const page = await browser.newPage()
    await page.goto(broker.url('/#/topics'))
    await page.waitForSelector('#topics')
    const rows = await page.$$eval('#topics tr.topic', (trs) => trs.map((tr) => Array.from(tr.cells, (c) => c.textContent.trim())))
    const orders = rows.find((r) => r[0].startsWith(TOPIC))
    assert.ok(orders, JSON.stringify(rows))
    const total = PER_PARTITION.reduce((a, b) => a + b, 0) + EXTRA_P0
    assert.equal(plain(orders[2]), total)
    assert.ok(!rows.some((r) => r[0].startsWith('__consumer_offsets')), 'internal topics hidden by default')
    await page.close()
  })

  test('1,000 groups render in under 2 s and a poll rewrites only changed rows', async () => {
    const N = 1000
    const ids = Array.from({ length: N }, (_, i) => `bulk-${String(i).padStart(4, '0')}`)
    // Simple groups: one OffsetCommit each. Lag of bulk-i on partition 2 is i % 80.
    const t0commit = Date.now()
    await commitOffsets(broker.bootstrap, ids.map((groupId, i) =>
      ({ groupId, topic: TOPIC, partition: 2, offset: PER_PARTITION[2] - (i % 80) })))
    console.log(`1,000 groups committed in ${Date.now() - t0commit} ms`)
    await waitFor('1,003 groups in the snapshot', async () => (await broker.api('/api/groups')).groups.length === N + 3, 30000, 250)

    const page = await browser.newPage()
    const t0 = Date.now()
    await page.goto(broker.url('/'))
    await page.waitForSelector(`#groups[data-rows="${N + 3}"]`)
    const elapsed = Date.now() - t0
    const renderMs = Number(await page.getAttribute('#groups', 'data-render-ms'))
    console.log(`1,003 groups: page load to rendered list ${elapsed} ms (render ${renderMs} ms)`)
    assert.ok(elapsed < 2000, `rendering took ${elapsed} ms`)

    const rows = await readGroupRows(page)
    assert.equal(rows.length, N + 3)
    const by = Object.fromEntries(rows.map((r) => [r.group, r]))
    for (const i of [0, 1, 79, 80, 517, 999]) assert.equal(plain(by[ids[i]].totalLag), i % 80, ids[i])

    // The next poll rewrites only cells that changed: caught-up groups keep their rows, lagging
    // ones get a new lag-in-seconds cell (the oldest unconsumed record aged) and nothing else.
    assert.equal(await page.getAttribute('#groups', 'data-updated'), String(N + 3))
    const mark = (id) => page.evaluate((id) => {
      const row = Array.from(document.querySelectorAll('#groups tbody tr')).find((tr) => tr.cells[0].textContent === id)
      for (const c of row.cells) c.dataset.marker = 'kept'
    }, id)
    const kept = (id) => page.evaluate((id) => {
      const row = Array.from(document.querySelectorAll('#groups tbody tr')).find((tr) => tr.cells[0].textContent === id)
      return Array.from(row.cells, (c) => c.dataset.marker === 'kept')
    }, id)
    await mark(ids[0]) // lag 0
    await mark(ids[1]) // lag 1, growing older
    await page.waitForFunction(() => Number(document.querySelector('#groups').dataset.polls) >= 2, null, { timeout: 15000 })
    const cellsUpdated = Number(await page.getAttribute('#groups', 'data-cells-updated'))
    const rowsUpdated = Number(await page.getAttribute('#groups', 'data-updated'))
    const pollMs = Number(await page.getAttribute('#groups', 'data-render-ms'))
    console.log(`poll of 1,003 groups: ${rowsUpdated} rows / ${cellsUpdated} cells changed in ${pollMs} ms`)
    assert.ok(cellsUpdated <= rowsUpdated * 2, `${cellsUpdated} cells for ${rowsUpdated} rows`)
    assert.deepEqual(await kept(ids[0]), Array(9).fill(true))
    assert.deepEqual((await kept(ids[1])).slice(0, 8), Array(8).fill(true))

    // Sorting 1,003 rows stays quick.
    const sortMs = await page.evaluate(() => {
      const t = performance.now()
      document.querySelector('#groups thead button[data-sort="max_lag"]').click()
      return performance.now() - t
    })
    console.log(`sorting 1,003 rows: ${sortMs.toFixed(1)} ms`)
    assert.ok(sortMs < 500, `sorting took ${sortMs} ms`)
    const top = (await readGroupRows(page)).slice(0, 3).map((r) => plain(r.maxLag))
    assert.deepEqual(top, [PER_PARTITION[0] + EXTRA_P0 - 40, 79, 79])
    await page.screenshot({ path: path.join(OUT_DIR, 'groups-1000.png') })
    await page.close()
  })
})
