// Cairn dashboard: consumer groups, one group's lag and rebalances, topics.
// Plain JavaScript, no dependencies: the broker serves this file as is and the page needs no
// network beyond the broker's own JSON API (docs/observability.md). Charts are inline SVG.
'use strict';

(function () {
  const view = document.getElementById('view');
  const errorBox = document.getElementById('error');
  const freshness = document.getElementById('freshness');

  // ------------------------------------------------------------------ formatting

  const NUM = new Intl.NumberFormat('en-US');
  const ESCAPES = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };
  const esc = (s) => String(s).replace(/[&<>"']/g, (c) => ESCAPES[c]);
  const num = (n) => (n == null ? '—' : NUM.format(n));

  // Seconds as people read them: 0.4 s, 12.5 s, 3m 05s, 2h 10m, 3d 4h.
  function duration (s) {
    if (s == null) return '—';
    if (s < 60) return (s < 10 ? s.toFixed(1) : s.toFixed(0)) + ' s';
    const m = Math.floor(s / 60);
    if (m < 60) return m + 'm ' + String(Math.floor(s % 60)).padStart(2, '0') + 's';
    const h = Math.floor(m / 60);
    if (h < 48) return h + 'h ' + String(m % 60).padStart(2, '0') + 'm';
    return Math.floor(h / 24) + 'd ' + (h % 24) + 'h';
  }

  function millis (ms) {
    if (ms == null) return '—';
    return ms < 1000 ? ms + ' ms' : duration(ms / 1000);
  }

  // Times in UTC, the same in every browser and in the CLI.
  function utc (ms, withDate) {
    if (ms == null) return '—';
    const iso = new Date(ms).toISOString();
    return withDate ? iso.slice(0, 10) + ' ' + iso.slice(11, 19) : iso.slice(11, 19);
  }

  const STATUS_RANK = { ok: 0, lagging: 1, stalled: 2, stopped: 3 };
  const badge = (kind, text) => '<span class="badge ' + esc(kind) + '">' + esc(text) + '</span>';
  const statusBadge = (s) => badge('st-' + s, s);
  const groupHref = (id) => '#/group/' + encodeURIComponent(id);

  // ------------------------------------------------------------------ data

  async function getJSON (path) {
    const ctl = new AbortController();
    const timer = setTimeout(() => ctl.abort(), 10000);
    try {
      // same-origin (the default, said explicitly): the browser resends the Basic credentials
      // the page was loaded with when the broker asks for them.
      const res = await fetch(path, { signal: ctl.signal, cache: 'no-store', credentials: 'same-origin' });
      const body = await res.json().catch(() => null);
      if (!res.ok) {
        const e = new Error((body && body.error) || res.status + ' ' + res.statusText);
        e.status = res.status;
        throw e;
      }
      return body;
    } finally {
      clearTimeout(timer);
    }
  }

  function showError (e) {
    if (!e) {
      if (!errorBox.hidden) errorBox.hidden = true;
      return;
    }
    const text = e.name === 'AbortError' || e instanceof TypeError
      ? 'The broker does not answer (' + e.message + '); retrying.'
      : 'Could not load data: ' + e.message + '; retrying.';
    if (errorBox.textContent !== text) errorBox.textContent = text;
    errorBox.hidden = false;
  }

  function showFreshness (snapshotMs, refreshMs) {
    let text = '';
    if (snapshotMs != null) {
      text = 'Lag snapshot ' + utc(snapshotMs) + ' UTC';
      if (refreshMs) text += ' · every ' + millis(refreshMs);
    } else if (refreshMs) {
      text = 'Waiting for the first lag snapshot';
    }
    if (freshness.textContent !== text) freshness.textContent = text;
  }

  // Calls `tick` now and again after the delay it returns, until stopped. Slower when hidden.
  function poller (tick) {
    let timer = null;
    let stopped = false;
    const isStopped = () => stopped;
    async function run () {
      let wait = 3000;
      try {
        wait = (await tick(isStopped)) || wait;
        if (!stopped) showError(null);
      } catch (e) {
        if (!stopped) showError(e.shown ? null : e);
        if (e.status === 404) return; // nothing to retry for
      }
      if (!stopped) timer = setTimeout(run, document.hidden ? wait * 4 : wait);
    }
    run();
    return () => { stopped = true; clearTimeout(timer); };
  }

  // Poll about as often as the broker refreshes its snapshot, within 2–5 s.
  const pollDelay = (refreshMs) => Math.min(5000, Math.max(2000, refreshMs || 3000));

  // Replaces an element's content only when it changed (keeps selection, focus and scroll).
  function setHTML (el, html) {
    if (el._html !== html) {
      el.innerHTML = html;
      el._html = html;
    }
  }

  // ------------------------------------------------------------------ groups list

  const GROUP_COLUMNS = [
    { key: 'group', label: 'Group', num: false },
    { key: 'type', label: 'Type', num: false },
    { key: 'state', label: 'State', num: false },
    { key: 'status', label: 'Status', num: false },
    { key: 'members', label: 'Members', num: true },
    { key: 'partitions', label: 'Partitions', num: true },
    { key: 'total_lag', label: 'Total lag', num: true },
    { key: 'max_lag', label: 'Max lag', num: true },
    { key: 'max_lag_seconds', label: 'Max lag (time)', num: true }
  ];

  // Sort and filter survive leaving the page and coming back.
  const listState = { sortKey: 'group', sortDir: 1, filter: '' };

  // A row's cells as HTML; on a poll only the cells whose HTML changed are replaced (a lagging
  // group's lag in seconds changes with every snapshot, the rest of its row rarely does).
  function groupCells (g) {
    const part = g.uncommitted_partitions
      ? num(g.partitions) + ' <span class="note">(' + num(g.uncommitted_partitions) + ' uncommitted)</span>'
      : num(g.partitions);
    return [
      '<th scope="row"><a href="' + esc(groupHref(g.group)) + '">' + esc(g.group) + '</a></th>',
      '<td>' + badge('type-' + (g.type || 'classic'), g.type || 'classic') + '</td>',
      '<td>' + esc(g.state) + '</td>',
      '<td>' + statusBadge(g.status) + '</td>',
      '<td class="n">' + num(g.members) + '</td>',
      '<td class="n">' + part + '</td>',
      '<td class="n" data-value="' + g.total_lag + '">' + num(g.total_lag) + '</td>',
      '<td class="n" data-value="' + g.max_lag + '">' + num(g.max_lag) + '</td>',
      '<td class="n" data-value="' + g.max_lag_seconds + '">' + duration(g.max_lag_seconds) + '</td>'
    ];
  }

  function compareGroups (key, dir) {
    if (key === 'group') return (a, b) => dir * (a.g.group < b.g.group ? -1 : a.g.group > b.g.group ? 1 : 0);
    const value = key === 'status' ? (r) => STATUS_RANK[r.g.status] || 0 : (r) => r.g[key];
    return (a, b) => {
      const x = value(a);
      const y = value(b);
      if (x !== y) return dir * (x < y ? -1 : 1);
      return a.g.group < b.g.group ? -1 : a.g.group > b.g.group ? 1 : 0;
    };
  }

  function groupsPage () {
    document.title = 'Consumer groups · Cairn';
    const head = GROUP_COLUMNS.map((c) =>
      '<th scope="col" class="' + (c.num ? 'n' : '') + '" data-key="' + c.key + '">' +
      '<button type="button" data-sort="' + c.key + '">' + esc(c.label) +
      '<span class="arrow" aria-hidden="true"></span></button></th>').join('');
    view.innerHTML =
      '<h1>Consumer groups</h1>' +
      '<div class="toolbar">' +
      '<label for="group-filter">Filter</label> ' +
      '<input id="group-filter" type="search" autocomplete="off" spellcheck="false" ' +
      'placeholder="group, type, state or status" value="' + esc(listState.filter) + '">' +
      '<p id="group-count" class="count" aria-live="polite"></p></div>' +
      '<div class="scroll"><table id="groups" class="data">' +
      '<caption class="sr-only">Consumer groups with their lag; activate a column header to sort</caption>' +
      '<thead><tr>' + head + '</tr></thead><tbody></tbody></table></div>' +
      '<p id="groups-empty" class="empty" hidden>No consumer groups yet.</p>';
    const table = document.getElementById('groups');
    const tbody = table.tBodies[0];
    const count = document.getElementById('group-count');
    const input = document.getElementById('group-filter');
    const empty = document.getElementById('groups-empty');
    const rows = new Map(); // group id -> { g, cells, tr, text, hidden }
    let loaded = false;

    function markSort () {
      for (const th of table.tHead.rows[0].cells) {
        const on = th.dataset.key === listState.sortKey;
        if (on) th.setAttribute('aria-sort', listState.sortDir > 0 ? 'ascending' : 'descending');
        else th.removeAttribute('aria-sort');
      }
    }

    // Orders and filters the existing rows; touches the DOM only where something changed.
    function arrange () {
      const t0 = performance.now();
      const list = Array.from(rows.values());
      list.sort(compareGroups(listState.sortKey, listState.sortDir));
      const needle = listState.filter.trim().toLowerCase();
      let shown = 0;
      for (const r of list) {
        const hide = needle !== '' && !r.text.includes(needle);
        if (r.hidden !== hide) { r.tr.hidden = hide; r.hidden = hide; }
        if (!hide) shown++;
      }
      let same = tbody.rows.length === list.length;
      for (let i = 0; same && i < list.length; i++) same = tbody.rows[i] === list[i].tr;
      if (!same) {
        const frag = document.createDocumentFragment();
        for (const r of list) frag.appendChild(r.tr);
        tbody.appendChild(frag);
      }
      const text = needle
        ? 'Showing ' + num(shown) + ' of ' + num(list.length) + ' groups'
        : num(list.length) + (list.length === 1 ? ' group' : ' groups');
      if (count.textContent !== text) count.textContent = text;
      empty.hidden = !loaded || list.length > 0;
      return performance.now() - t0;
    }

    function render (page) {
      const t0 = performance.now();
      let updated = 0;
      let cellsUpdated = 0;
      const searchText = (g) => (g.group + ' ' + g.type + ' ' + g.state + ' ' + g.status).toLowerCase();
      if (rows.size === 0 && page.groups.length > 0) {
        // First render: every row in one innerHTML pass.
        const all = page.groups.map(groupCells);
        tbody.innerHTML = all.map((cells) => '<tr>' + cells.join('') + '</tr>').join('');
        const trs = tbody.rows;
        page.groups.forEach((g, i) => {
          rows.set(g.group, { g, cells: all[i], tr: trs[i], text: searchText(g), hidden: false });
        });
        updated = page.groups.length;
        cellsUpdated = updated * GROUP_COLUMNS.length;
      } else {
        const seen = new Set();
        for (const g of page.groups) {
          seen.add(g.group);
          const cells = groupCells(g);
          const r = rows.get(g.group);
          if (!r) {
            const tr = document.createElement('tr');
            tr.innerHTML = cells.join('');
            rows.set(g.group, { g, cells, tr, text: searchText(g), hidden: false });
            updated++;
            cellsUpdated += cells.length;
          } else {
            let changed = false;
            for (let i = 0; i < cells.length; i++) {
              if (cells[i] !== r.cells[i]) {
                r.tr.cells[i].outerHTML = cells[i];
                changed = true;
                cellsUpdated++;
              }
            }
            if (changed) {
              r.cells = cells;
              r.text = searchText(g);
              updated++;
            }
            r.g = g;
          }
        }
        for (const [id, r] of rows) {
          if (!seen.has(id)) { r.tr.remove(); rows.delete(id); updated++; }
        }
      }
      loaded = true;
      arrange();
      // For tests and the curious: how much the last poll changed and what it cost.
      table.dataset.rows = String(rows.size);
      table.dataset.updated = String(updated);
      table.dataset.cellsUpdated = String(cellsUpdated);
      table.dataset.polls = String(Number(table.dataset.polls || 0) + 1);
      table.dataset.renderMs = (performance.now() - t0).toFixed(1);
    }

    table.tHead.addEventListener('click', (e) => {
      const b = e.target.closest('button[data-sort]');
      if (!b) return;
      const key = b.dataset.sort;
      if (listState.sortKey === key) listState.sortDir = -listState.sortDir;
      else {
        listState.sortKey = key;
        // Numbers and status are most useful worst first.
        listState.sortDir = key === 'group' || key === 'type' || key === 'state' ? 1 : -1;
      }
      markSort();
      arrange();
    });

    let debounce = null;
    input.addEventListener('input', () => {
      clearTimeout(debounce);
      debounce = setTimeout(() => { listState.filter = input.value; arrange(); }, 80);
    });

    markSort();
    return poller(async (stopped) => {
      const page = await getJSON('/api/groups');
      if (stopped()) return;
      showFreshness(page.snapshot_ms, page.refresh_ms);
      render(page);
      view.dataset.loaded = 'groups';
      return pollDelay(page.refresh_ms);
    });
  }

  // ------------------------------------------------------------------ lag chart

  // Round numbers for an axis: 1, 2, 5 × 10^n.
  function niceStep (range, ticks) {
    const raw = range / ticks;
    const mag = Math.pow(10, Math.floor(Math.log10(raw)));
    const f = raw / mag;
    return (f <= 1 ? 1 : f <= 2 ? 2 : f <= 5 ? 5 : 10) * mag;
  }

  function shortNum (n) {
    if (n >= 1e9) return +(n / 1e9).toFixed(1) + 'G';
    if (n >= 1e6) return +(n / 1e6).toFixed(1) + 'M';
    if (n >= 1e4) return +(n / 1e3).toFixed(1) + 'k';
    return NUM.format(n);
  }

  // Total lag over time as an SVG line, with the starts of rebalances marked.
  function lagChart (history, rebalances, refreshMs) {
    const W = 760;
    const H = 240;
    const M = { l: 64, r: 16, t: 14, b: 30 };
    const iw = W - M.l - M.r;
    const ih = H - M.t - M.b;
    const t1 = history[history.length - 1][0];
    const t0 = Math.min(history[0][0], t1 - (refreshMs || 5000));
    let max = 0;
    for (const p of history) if (p[1] > max) max = p[1];
    const step = max > 0 ? niceStep(max, 4) : 1;
    const top = Math.max(step, Math.ceil(max / step) * step);
    const x = (t) => M.l + ((t - t0) / (t1 - t0)) * iw;
    const y = (v) => M.t + ih - (v / top) * ih;
    const f = (v) => v.toFixed(1);

    let grid = '';
    for (let v = 0; v <= top + step / 2; v += step) {
      grid += '<line class="grid" x1="' + M.l + '" x2="' + (W - M.r) + '" y1="' + f(y(v)) + '" y2="' + f(y(v)) + '"/>' +
        '<text class="tick" x="' + (M.l - 6) + '" y="' + f(y(v) + 4) + '" text-anchor="end">' + shortNum(v) + '</text>';
    }
    const xticks = 5;
    for (let i = 0; i <= xticks; i++) {
      const t = t0 + ((t1 - t0) * i) / xticks;
      const anchor = i === 0 ? 'start' : i === xticks ? 'end' : 'middle';
      grid += '<text class="tick" x="' + f(x(t)) + '" y="' + (H - 8) + '" text-anchor="' + anchor + '">' + utc(t) + '</text>';
    }

    let marks = '';
    for (const r of rebalances) {
      if (r.started_ms < t0 || r.started_ms > t1) continue;
      const xr = f(x(r.started_ms));
      marks += '<line class="rebalance" x1="' + xr + '" x2="' + xr + '" y1="' + M.t + '" y2="' + (M.t + ih) + '">' +
        '<title>Rebalance #' + r.seq + ' (' + esc(r.cause) + ') at ' + utc(r.started_ms) + ' UTC</title></line>';
    }

    const pts = history.map((p) => f(x(p[0])) + ',' + f(y(p[1])));
    const line = 'M' + pts.join('L');
    const area = line + 'L' + f(x(t1)) + ',' + f(y(0)) + 'L' + f(x(history[0][0])) + ',' + f(y(0)) + 'Z';
    const last = history[history.length - 1];
    const first = history[0];
    const label = 'Total lag from ' + utc(first[0]) + ' to ' + utc(last[0]) + ' UTC: ' + num(first[1]) +
      ' then ' + num(last[1]) + ' records, at most ' + num(max) + ' (' + history.length + ' samples)';
    return '<svg id="lag-chart" class="chart" viewBox="0 0 ' + W + ' ' + H + '" role="img" aria-label="' + esc(label) + '">' +
      '<title>' + esc(label) + '</title>' + grid +
      '<path class="area" d="' + area + '"/>' +
      '<path class="line" d="' + line + '" data-points="' + history.length + '"/>' + marks +
      '<circle class="last" cx="' + f(x(last[0])) + '" cy="' + f(y(last[1])) + '" r="3.5"/>' +
      '</svg>';
  }

  // ------------------------------------------------------------------ one group

  const isConsumer = (g) => g.type === 'consumer';

  function summaryHTML (g) {
    // A consumer group (KIP-848) has epochs and a broker-side assignor instead of a generation
    // and a client-side protocol.
    const protocol = isConsumer(g)
      ? [['Group epoch', num(g.group_epoch)],
          ['Assignment epoch', num(g.assignment_epoch)],
          ['Assignor', esc(g.assignor || '—')]]
      : [['Generation', num(g.generation)],
          ['Protocol', esc(g.protocol_type || '—') + (g.assignor ? ' / ' + esc(g.assignor) : '')]];
    const items = [
      ['Type', badge('type-' + (g.type || 'classic'), g.type || 'classic')],
      ['State', esc(g.state)],
      ['Status', statusBadge(g.status)],
      ['Members', num(g.memberCount)]
    ].concat(protocol, [
      ['Total lag', num(g.total_lag)],
      ['Max lag', num(g.max_lag)],
      ['Max lag (time)', duration(g.max_lag_seconds)],
      ['Partitions', num(g.partList.length) + (g.uncommitted ? ' (' + num(g.uncommitted) + ' uncommitted)' : '')]
    ]);
    return '<dl class="summary">' + items.map((i) => '<div><dt>' + i[0] + '</dt><dd>' + i[1] + '</dd></div>').join('') + '</dl>';
  }

  function memberName (g, id) {
    if (id == null) return '<span class="note">none</span>';
    const m = g.memberList.find((x) => x.member_id === id);
    const label = m ? m.client_id : id;
    return '<span title="' + esc(id) + '">' + esc(label) + '</span>';
  }

  // A consumer group's partition on its way to another member shows both.
  function ownerHTML (g, p) {
    if (!isConsumer(g) || p.target_owner === p.owner) return memberName(g, p.owner);
    return memberName(g, p.owner) + ' → ' + memberName(g, p.target_owner) + ' ' + badge('moving', 'moving');
  }

  const partsText = (list) => list.map((a) => esc(a.topic) + ': ' + a.partitions.join(', ')).join('<br>');
  const partsCount = (list) => list.reduce((n, a) => n + a.partitions.length, 0);

  function consumerMembersHTML (g) {
    const rows = g.memberList.map((m) => {
      const owned = m.assignment.length === 0 ? '<span class="note">nothing</span>' : partsText(m.assignment);
      const target = m.target_assignment || [];
      const adding = m.pending_assignment || [];
      const revoking = m.pending_revocation || [];
      let reconciling = '';
      if (revoking.length) reconciling += '<span class="revoking">give up ' + partsText(revoking) + '</span>';
      if (adding.length) reconciling += (reconciling ? '<br>' : '') + '<span class="adding">receive ' + partsText(adding) + '</span>';
      if (!reconciling) reconciling = '<span class="note">none</span>';
      const behind = m.member_epoch != null && g.assignment_epoch != null && m.member_epoch < g.assignment_epoch;
      // A classic-protocol member inside a consumer group (online migration) is marked.
      const classic = m.member_protocol === 'classic' ? ' ' + badge('type-classic', 'classic protocol') : '';
      return '<tr><th scope="row">' + esc(m.client_id) + classic + '</th>' +
        '<td class="mono">' + esc(m.member_id) + '</td>' +
        '<td>' + esc(m.client_host) + '</td>' +
        '<td>' + esc(m.instance_id == null ? '—' : m.instance_id) + '</td>' +
        '<td class="n' + (behind ? ' behind' : '') + '">' + num(m.member_epoch) + '</td>' +
        '<td>' + badge('ms-' + (m.member_state || 'unknown'), (m.member_state || 'unknown').replace(/_/g, ' ')) + '</td>' +
        '<td class="n">' + partsCount(m.assignment) + '</td><td>' + owned + '</td>' +
        '<td>' + (target.length ? partsText(target) : '<span class="note">nothing</span>') + '</td>' +
        '<td>' + reconciling + '</td></tr>';
    }).join('');
    return '<div class="scroll"><table id="members" class="data"><caption class="sr-only">Members, their epochs and current and target assignments</caption>' +
      '<thead><tr><th scope="col">Client</th><th scope="col">Member id</th><th scope="col">Host</th>' +
      '<th scope="col">Instance id</th><th scope="col" class="n">Epoch</th><th scope="col">State</th>' +
      '<th scope="col" class="n">Partitions</th><th scope="col">Current assignment</th>' +
      '<th scope="col">Target assignment</th><th scope="col">Reconciling</th></tr></thead>' +
      '<tbody>' + rows + '</tbody></table></div>';
  }

  function partitionsHTML (g) {
    if (g.partList.length === 0) return '<p class="empty">No committed or assigned partitions.</p>';
    const rows = g.partList.map((p) => {
      const uncommitted = p.committed_offset == null;
      return '<tr' + (uncommitted ? ' class="uncommitted"' : '') + '>' +
        '<th scope="row">' + esc(p.topic) + '</th>' +
        '<td class="n">' + p.partition + '</td>' +
        '<td class="n">' + (uncommitted ? badge('uncommitted', 'uncommitted') : num(p.committed_offset)) + '</td>' +
        '<td class="n">' + num(p.log_start_offset) + '</td>' +
        '<td class="n">' + num(p.log_end_offset) + '</td>' +
        '<td class="n" data-value="' + (p.lag == null ? '' : p.lag) + '">' + num(p.lag) + '</td>' +
        '<td class="n" data-value="' + (p.lag_seconds == null ? '' : p.lag_seconds) + '">' + duration(p.lag_seconds) + '</td>' +
        '<td>' + ownerHTML(g, p) + '</td>' +
        '<td>' + statusBadge(p.status) + '</td></tr>';
    }).join('');
    return '<div class="scroll"><table id="partitions" class="data">' +
      '<caption class="sr-only">Lag per partition</caption><thead><tr>' +
      '<th scope="col">Topic</th><th scope="col" class="n">Partition</th><th scope="col" class="n">Committed</th>' +
      '<th scope="col" class="n">Log start</th><th scope="col" class="n">Log end</th><th scope="col" class="n">Lag</th>' +
      '<th scope="col" class="n">Lag (time)</th><th scope="col">Owner</th><th scope="col">Status</th>' +
      '</tr></thead><tbody>' + rows + '</tbody></table></div>';
  }

  function membersHTML (g) {
    if (g.memberList.length === 0) return '<p class="empty">No members.</p>';
    if (isConsumer(g)) return consumerMembersHTML(g);
    const rows = g.memberList.map((m) => {
      const parts = m.assignment.length === 0
        ? '<span class="note">' + (g.state === 'Stable' ? 'nothing assigned' : 'rebalancing') + '</span>'
        : m.assignment.map((a) => esc(a.topic) + ': ' + a.partitions.join(', ')).join('<br>');
      const count = m.assignment.reduce((n, a) => n + a.partitions.length, 0);
      return '<tr><th scope="row">' + esc(m.client_id) + (m.member_id === g.leader ? ' ' + badge('leader', 'leader') : '') + '</th>' +
        '<td class="mono">' + esc(m.member_id) + '</td>' +
        '<td>' + esc(m.client_host) + '</td>' +
        '<td>' + esc(m.instance_id == null ? '—' : m.instance_id) + '</td>' +
        '<td class="n">' + count + '</td><td>' + parts + '</td></tr>';
    }).join('');
    return '<div class="scroll"><table id="members" class="data"><caption class="sr-only">Members and their partitions</caption>' +
      '<thead><tr><th scope="col">Client</th><th scope="col">Member id</th><th scope="col">Host</th>' +
      '<th scope="col">Instance id</th><th scope="col" class="n">Partitions</th><th scope="col">Assignment</th></tr></thead>' +
      '<tbody>' + rows + '</tbody></table></div>';
  }

  // A consumer group's record is an epoch bump: "preparing" is until the target assignment is
  // computed, "completing" is the members' reconciliation.
  function rebalancesHTML (list, consumer) {
    if (list.length === 0) return '<p class="empty">No rebalances recorded.</p>';
    const phase1 = consumer ? 'Assigning' : 'Preparing';
    const phase2 = consumer ? 'Reconciling' : 'Completing';
    let longest = 1;
    for (const r of list) longest = Math.max(longest, (r.preparing_ms || 0) + (r.completing_ms || 0));
    const rows = list.slice().reverse().map((r) => {
      const prep = r.preparing_ms || 0;
      const comp = r.completing_ms || 0;
      const wp = (prep / longest) * 120;
      const wc = (comp / longest) * 120;
      const bar = '<svg class="bar" viewBox="0 0 122 12" width="122" height="12" aria-hidden="true">' +
        '<rect class="prep" x="0" y="1" width="' + wp.toFixed(1) + '" height="10"/>' +
        '<rect class="comp" x="' + wp.toFixed(1) + '" y="1" width="' + wc.toFixed(1) + '" height="10"/></svg>';
      const gen = r.from_generation + ' → ' + (r.generation == null ? '…' : r.generation);
      const took = consumer && r.reconciliation_ms != null
        ? '<br><span class="note took">reconciliation took ' + millis(r.reconciliation_ms) + '</span>'
        : '';
      const members = r.members_before + ' → ' + (r.members_after == null ? '…' : r.members_after);
      const detail = r.cause_detail
        ? '<br><span class="note mono detail" title="' + esc(r.cause_detail) + '">' + esc(r.cause_detail) + '</span>'
        : '';
      return '<tr><td class="n">' + r.seq + '</td><td>' + utc(r.started_ms, true) + '</td>' +
        '<td>' + esc(r.cause.replace(/_/g, ' ')) + detail + '</td>' +
        '<td class="n">' + gen + '</td>' +
        '<td class="n">' + millis(r.preparing_ms) + '</td><td class="n">' + millis(r.completing_ms) + '</td>' +
        '<td>' + bar + '</td>' +
        '<td class="n">' + members + '</td>' +
        '<td class="n">' + num(r.partitions_moved) + '</td>' +
        '<td>' + badge('out-' + r.outcome, r.outcome.replace(/_/g, ' ')) + took + '</td></tr>';
    }).join('');
    return '<div class="scroll"><table id="rebalances" class="data">' +
      '<caption class="sr-only">Rebalances, newest first</caption><thead><tr>' +
      '<th scope="col" class="n">#</th><th scope="col">Started (UTC)</th><th scope="col">Cause</th>' +
      '<th scope="col" class="n">' + (consumer ? 'Group epoch' : 'Generation') + '</th>' +
      '<th scope="col" class="n">' + phase1 + '</th><th scope="col" class="n">' + phase2 + '</th>' +
      '<th scope="col"><span class="key prep"></span>' + phase1.toLowerCase() + ' <span class="key comp"></span>' + phase2.toLowerCase() + '</th>' +
      '<th scope="col" class="n">Members</th><th scope="col" class="n">Partitions moved</th><th scope="col">Outcome</th>' +
      '</tr></thead><tbody>' + rows + '</tbody></table></div>';
  }

  // The detail answer carries counts (`members`, `partitions`) and the lists
  // (`member_list`, `partition_list`).
  function normalize (g) {
    g.memberList = g.member_list || [];
    g.memberCount = g.members;
    g.partList = g.partition_list || [];
    g.uncommitted = g.partList.filter((p) => p.committed_offset == null).length;
    g.lag_history = g.lag_history || [];
    g.rebalances = g.rebalances || [];
  }

  function groupPage (id) {
    document.title = id + ' · Cairn';
    view.innerHTML =
      '<p class="crumbs"><a href="#/">Consumer groups</a> /</p>' +
      '<h1 class="mono">' + esc(id) + '</h1>' +
      '<div id="g-summary"></div>' +
      '<section aria-labelledby="h-chart"><h2 id="h-chart">Total lag over time</h2><div id="g-chart"></div></section>' +
      '<section aria-labelledby="h-parts"><h2 id="h-parts">Partitions</h2><div id="g-parts"></div></section>' +
      '<section aria-labelledby="h-members"><h2 id="h-members">Members</h2><div id="g-members"></div></section>' +
      '<section aria-labelledby="h-reb"><h2 id="h-reb">Rebalances</h2><div id="g-reb"></div></section>';
    const parts = ['g-summary', 'g-chart', 'g-parts', 'g-members', 'g-reb'].map((x) => document.getElementById(x));
    let refreshMs = 5000;
    return poller(async (stopped) => {
      let g;
      try {
        g = await getJSON('/api/groups/' + encodeURIComponent(id));
      } catch (e) {
        if (e.status === 404 && !stopped()) {
          e.shown = true;
          view.innerHTML = '<p class="crumbs"><a href="#/">Consumer groups</a> /</p>' +
            '<h1 class="mono">' + esc(id) + '</h1><p class="empty">The broker knows no group with this id.</p>';
        }
        throw e;
      }
      if (stopped()) return;
      normalize(g);
      // The detail answer has no refresh_ms; learn it from the sample spacing.
      const h = g.lag_history;
      if (h.length >= 2) refreshMs = Math.max(100, h[h.length - 1][0] - h[h.length - 2][0]);
      showFreshness(g.snapshot_ms, refreshMs);
      setHTML(parts[0], summaryHTML(g));
      setHTML(parts[1], g.lag_history.length === 0
        ? '<p class="empty">No lag samples yet.</p>'
        : lagChart(g.lag_history, g.rebalances, refreshMs));
      setHTML(parts[2], partitionsHTML(g));
      setHTML(parts[3], membersHTML(g));
      setHTML(parts[4], rebalancesHTML(g.rebalances, isConsumer(g)));
      view.dataset.loaded = 'group';
      return pollDelay(refreshMs);
    });
  }

  // ------------------------------------------------------------------ topics

  function size (bytes) {
    const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
    let v = bytes;
    let i = 0;
    while (v >= 1024 && i < units.length - 1) { v /= 1024; i++; }
    return (i === 0 ? v : v.toFixed(1)) + ' ' + units[i];
  }

  const topicsState = { internal: false };

  function topicsPage () {
    document.title = 'Topics · Cairn';
    view.innerHTML = '<h1>Topics</h1><div class="toolbar"><label><input id="show-internal" type="checkbox"' +
      (topicsState.internal ? ' checked' : '') + '> Show internal topics</label></div><div id="t-body"></div>';
    const body = document.getElementById('t-body');
    const box = document.getElementById('show-internal');
    let last = null;
    const draw = () => {
      if (!last) return;
      const topics = last.topics.filter((t) => topicsState.internal || !t.internal);
      if (topics.length === 0) { setHTML(body, '<p class="empty">No topics.</p>'); return; }
      const groups = topics.map((t) => {
        let records = 0;
        let bytes = 0;
        for (const p of t.partitions) { records += p.log_end_offset - p.log_start_offset; bytes += p.size_bytes; }
        const head = '<tr class="topic"><th scope="rowgroup" colspan="2">' + esc(t.topic) +
          (t.internal ? ' ' + badge('internal', 'internal') : '') +
          ' <span class="note">' + t.partitions.length + (t.partitions.length === 1 ? ' partition' : ' partitions') + '</span></th>' +
          '<td class="n"></td><td class="n">' + num(records) + '</td><td class="n"></td><td class="n">' + size(bytes) + '</td></tr>';
        const rows = t.partitions.map((p) => '<tr><td></td><th scope="row" class="n">' + p.partition + '</th>' +
          '<td class="n">' + num(p.log_start_offset) + ' – ' + num(p.log_end_offset) + '</td>' +
          '<td class="n">' + num(p.log_end_offset - p.log_start_offset) + '</td>' +
          '<td class="n">' + (p.open_transactions > 0
            ? num(p.open_transactions) + ' open, stable to ' + num(p.last_stable_offset)
            : '') + '</td>' +
          '<td class="n">' + size(p.size_bytes) + '</td></tr>').join('');
        return '<tbody>' + head + rows + '</tbody>';
      }).join('');
      setHTML(body, '<div class="scroll"><table id="topics" class="data"><caption class="sr-only">Topics and their partitions</caption>' +
        '<thead><tr><th scope="col">Topic</th><th scope="col" class="n">Partition</th><th scope="col" class="n">Offsets (start – end)</th>' +
        '<th scope="col" class="n">Records</th><th scope="col" class="n">Transactions</th><th scope="col" class="n">Size</th></tr></thead>' + groups + '</table></div>');
    };
    box.addEventListener('change', () => { topicsState.internal = box.checked; draw(); });
    return poller(async (stopped) => {
      const page = await getJSON('/api/topics');
      if (stopped()) return;
      last = page;
      draw();
      view.dataset.loaded = 'topics';
      return 5000;
    });
  }

  // ------------------------------------------------------------------ routing

  let stopCurrent = null;
  let routed = null;

  function route () {
    if (stopCurrent) stopCurrent();
    showError(null);
    delete view.dataset.loaded;
    const hash = location.hash || '#/';
    routed = hash;
    let section = 'groups';
    const m = /^#\/group\/(.+)$/.exec(hash);
    if (m) {
      let id;
      try { id = decodeURIComponent(m[1]); } catch (e) { id = m[1]; }
      stopCurrent = groupPage(id);
    } else if (hash === '#/topics') {
      section = 'topics';
      stopCurrent = topicsPage();
    } else {
      stopCurrent = groupsPage();
    }
    for (const a of document.querySelectorAll('[data-nav]')) {
      if (a.dataset.nav === section) a.setAttribute('aria-current', 'page');
      else a.removeAttribute('aria-current');
    }
  }

  window.addEventListener('hashchange', () => {
    // The skip link jumps to the content without leaving the page it is on.
    if (location.hash === '#view') {
      history.replaceState(null, '', routed || '#/');
      view.focus();
      return;
    }
    route();
    view.focus({ preventScroll: true });
  });
  route();
})();
