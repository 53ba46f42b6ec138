// Trail's web viewer: the query API seen through a page. Everything here is
// a call of the same HTTP API as curl or trailctl would make, with the
// token the user pasted (kept in this module's memory, never stored), so
// tenant isolation and the meta-audit are the API's own.
'use strict';

const $ = (id) => document.getElementById(id);
const FILTERS = ['actor_id', 'actor_type', 'resource_type', 'resource_id', 'actions', 'categories', 'severities', 'outcome',
  'source_service', 'correlation_id', 'trace_id'];
const PAGE = 50;

const session = { token: '', tenant: '', me: null };
// generation: bumped by each new query, so that answers to an older one are dropped;
// loading: the generation whose page is being read (0: none).
const view = { query: {}, cursor: null, loading: 0, done: false, shown: new Set(), generation: 1 };
const live = { on: false, last: null, abort: null, retry: null };

// ---- the API ----

class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

async function api(path, init = {}) {
  const res = await fetch(path, { ...init, headers: { ...(init.headers || {}), Authorization: `Bearer ${session.token}` } });
  if (res.ok) return res;
  let body = {};
  try { body = await res.json(); } catch { /* not JSON */ }
  if (res.status === 401) signOut('The token was refused (expired or not valid here). Sign in again.');
  throw new ApiError(res.status, body.code || 'error', body.message || `HTTP ${res.status}`);
}

const tenantPath = (rest) => `/v1/tenants/${encodeURIComponent(session.tenant)}${rest}`;

function queryString(q, extra = {}) {
  const p = new URLSearchParams();
  for (const [k, v] of Object.entries({ ...q, ...extra })) if (v !== undefined && v !== null && v !== '') p.set(k, v);
  return p.toString();
}

// ---- sign-in ----

async function signIn(token, tenantWanted) {
  session.token = token.trim();
  const me = await (await api('/v1/me')).json();
  session.me = me;
  const tenants = me.all_tenants ? null : me.tenants;
  let tenant = tenantWanted || '';
  if (!tenant) {
    if (tenants && tenants.length === 1) tenant = tenants[0];
    else throw new Error('This token names several tenants: say which one to open.');
  }
  if (tenants && !tenants.includes(tenant)) throw new Error(`This token may not read tenant ${tenant}.`);
  if (!me.scopes.includes('audit:read')) throw new Error('This token has no audit:read scope.');
  session.tenant = tenant;
  $('who').textContent = `${me.subject} · tenant ${tenant} · ${me.scopes.join(' ')}`;
  $('signin').hidden = true;
  $('viewer').hidden = false;
  $('signout').hidden = false;
  $('export-csv').disabled = $('export-ndjson').disabled = !me.scopes.includes('audit:export');
  readFiltersFromUrl();
  reload();
  checkIntegrity();
}

function signOut(message = '') {
  stopLive();
  session.token = '';
  session.tenant = '';
  view.generation++;
  $('viewer').hidden = true;
  $('rows').replaceChildren();
  view.shown.clear();
  if ($('detail').open) $('detail').close();
  $('signout').hidden = true;
  $('integrity').hidden = true;
  $('who').textContent = '';
  $('signin').hidden = false;
  $('token').value = '';
  $('signin-error').textContent = message;
  $('token').focus();
}

// ---- filters, reflected in the URL ----

function readFiltersFromUrl() {
  const p = new URLSearchParams(location.search);
  for (const f of FILTERS) $(`f-${f}`).value = p.get(f) || '';
  if (p.get('from') || p.get('to')) {
    $('f-range').value = 'custom';
    $('f-from').value = (p.get('from') || '').replace(/Z$/, '');
    $('f-to').value = (p.get('to') || '').replace(/Z$/, '');
  } else {
    $('f-range').value = p.has('last') ? p.get('last') : '24h';
  }
  syncRange();
}

function filtersFromForm() {
  const q = {};
  for (const f of FILTERS) {
    const v = $(`f-${f}`).value.trim();
    if (v) q[f] = v;
  }
  const range = $('f-range').value;
  if (range === 'custom') {
    if ($('f-from').value) q.from = `${$('f-from').value}Z`;
    if ($('f-to').value) q.to = `${$('f-to').value}Z`;
  } else if (range) {
    q.last = range;
  }
  return q;
}

function writeUrl(q) {
  const p = new URLSearchParams(q);
  if (session.tenant) p.set('tenant', session.tenant);
  if (!q.last && !q.from && !q.to) p.set('last', '');
  history.replaceState(null, '', `${location.pathname}?${p}`);
}

function syncRange() {
  for (const el of document.querySelectorAll('.custom-range')) el.hidden = $('f-range').value !== 'custom';
}

// ---- the timeline ----

function reload() {
  view.query = filtersFromForm();
  writeUrl(view.query);
  view.cursor = null;
  view.done = false;
  view.shown.clear();
  view.generation++;
  $('rows').replaceChildren();
  $('empty').hidden = true;
  updateCount();
  loadMore();
  if (live.on) startLive();
}

async function loadMore() {
  if (view.loading === view.generation || view.done || !session.token) return;
  const generation = view.generation;
  view.loading = generation;
  $('list-status').textContent = 'Loading…';
  try {
    const qs = queryString(view.query, { page_size: PAGE, page_token: view.cursor });
    const page = await (await api(tenantPath(`/events?${qs}`))).json();
    if (generation !== view.generation) return;
    for (const e of page.events) appendRow(e, false);
    view.cursor = page.next_page_token;
    view.done = !view.cursor;
    $('list-status').textContent = view.done ? (view.shown.size ? 'The end of the trail for these filters.' : '') : '';
    showEmpty();
    updateCount();
  } catch (e) {
    if (generation === view.generation) $('list-status').textContent = `Could not load events: ${e.message}`;
    view.done = true;
  } finally {
    if (view.loading === generation) view.loading = 0;
  }
  // Keep filling while the sentinel is still on screen.
  if (!view.done && generation === view.generation && sentinelVisible()) loadMore();
}

function sentinelVisible() {
  const r = $('sentinel').getBoundingClientRect();
  return r.top < window.innerHeight + 400;
}

function showEmpty() {
  const empty = view.shown.size === 0 && view.done;
  $('empty').hidden = !empty;
  if (!empty) return;
  const q = view.query;
  const narrowed = FILTERS.filter((f) => q[f]).map((f) => `${f.replace('_', ' ')} = ${q[f]}`);
  const when = q.last ? `in the last ${q.last}` : q.from || q.to ? 'in that time range' : 'at any time';
  $('empty').textContent = `No event of tenant ${session.tenant} ${when}` +
    (narrowed.length ? ` with ${narrowed.join(', ')}` : '') + '. Widen the time range or clear a filter.';
}

function updateCount() {
  const n = view.shown.size;
  $('count').textContent = n === 0 ? '' : `${n.toLocaleString()} event${n === 1 ? '' : 's'} shown${view.done ? '' : ' (scroll for more)'}`;
}

const seqOf = (e) => Number(e.sequence);

function cell(text, cls) {
  const td = document.createElement('td');
  td.textContent = text ?? '';
  if (cls) td.className = cls;
  return td;
}

function appendRow(e, atTop) {
  const seq = seqOf(e);
  if (view.shown.has(seq)) return;
  view.shown.add(seq);
  const d = e.data || {};
  const tr = document.createElement('tr');
  tr.tabIndex = 0;
  tr.dataset.sequence = String(seq);
  const outcome = d.outcome?.status || '';
  tr.append(
    cell(String(seq), 'seq'),
    cell((d.occurred_at || e.time || '').replace('T', ' ').slice(0, 19)),
    cell(d.action),
    cell(d.actor ? `${d.actor.display_name || d.actor.id} (${(d.actor.type || '').replace('ACTOR_TYPE_', '').toLowerCase()})` : ''),
    cell(d.primary_resource ? `${d.primary_resource.type}:${d.primary_resource.id}` : ''),
    cell(outcome.toLowerCase(), `wide outcome-${outcome.toLowerCase()}`),
    cell((d.severity || '').replace('SEVERITY_', '').toLowerCase(), `wide sev-${(d.severity || '').replace('SEVERITY_', '').toLowerCase()}`),
  );
  tr.addEventListener('click', () => openDetail(seq));
  tr.addEventListener('keydown', (ev) => {
    if (ev.key === 'Enter' || ev.key === ' ') { ev.preventDefault(); openDetail(seq); }
    if (ev.key === 'ArrowDown') tr.nextElementSibling?.focus();
    if (ev.key === 'ArrowUp') tr.previousElementSibling?.focus();
  });
  if (atTop) {
    tr.classList.add('fresh');
    $('rows').prepend(tr);
  } else {
    $('rows').append(tr);
  }
}

// ---- one event ----

const CE_STANDARD = new Set(['specversion', 'id', 'source', 'type', 'subject', 'time', 'datacontenttype', 'dataschema', 'data',
  'tenantid', 'sequence', 'recordedtime']);

function dl(pairs) {
  const list = document.createElement('dl');
  for (const [k, v] of pairs) {
    if (v === undefined || v === null || v === '') continue;
    const dt = document.createElement('dt');
    dt.textContent = k;
    const dd = document.createElement('dd');
    if (typeof v === 'object') {
      const pre = document.createElement('pre');
      pre.textContent = JSON.stringify(v, null, 2);
      dd.append(pre);
    } else {
      dd.textContent = String(v);
    }
    list.append(dt, dd);
  }
  return list;
}

// A section: its heading and what follows, or nothing when that is empty.
function section(title, content) {
  if (content.tagName === 'DL' && content.childElementCount === 0) return [];
  return [heading(title), content];
}

function heading(text) {
  const h = document.createElement('h3');
  h.textContent = text;
  return h;
}

// Every leaf of a JSON value, by JSON pointer ("" for a scalar at the top).
function flatten(v, path = '', out = new Map()) {
  if (v !== null && typeof v === 'object' && Object.keys(v).length > 0) {
    for (const [k, x] of Object.entries(v)) flatten(x, `${path}/${String(k).replace(/~/g, '~0').replace(/\//g, '~1')}`, out);
  } else {
    out.set(path || '/', v);
  }
  return out;
}

function diffTable(diff) {
  const before = diff.old_value === undefined ? new Map() : flatten(diff.old_value);
  const after = diff.new_value === undefined ? new Map() : flatten(diff.new_value);
  const paths = [...new Set([...before.keys(), ...after.keys()])].sort();
  const table = document.createElement('table');
  table.className = 'diff';
  table.innerHTML = '<caption class="sr-only">Before and after, field by field</caption>' +
    '<thead><tr><th scope="col">Field</th><th scope="col">Before</th><th scope="col">After</th></tr></thead>';
  const body = document.createElement('tbody');
  const show = (m, p) => (m.has(p) ? JSON.stringify(m.get(p)) : '—');
  for (const p of paths) {
    const kind = !before.has(p) ? 'added' : !after.has(p) ? 'removed'
      : JSON.stringify(before.get(p)) === JSON.stringify(after.get(p)) ? 'same' : 'changed';
    const tr = document.createElement('tr');
    tr.className = kind;
    const th = document.createElement('th');
    th.scope = 'row';
    th.textContent = p;
    tr.append(th, cell(show(before, p), 'before'), cell(show(after, p), 'after'));
    if (kind !== 'same') tr.title = kind;
    body.append(tr);
  }
  table.append(body);
  return table;
}

async function openDetail(seq) {
  const dialog = $('detail');
  $('detail-title').textContent = `Event ${seq}`;
  const body = $('detail-body');
  body.replaceChildren(document.createTextNode('Loading…'));
  if (!dialog.open) dialog.showModal();
  try {
    const [e, diff] = await Promise.all([
      api(tenantPath(`/events/${seq}`)).then((r) => r.json()),
      api(tenantPath(`/events/${seq}/diff`)).then((r) => r.json()),
    ]);
    const d = e.data || {};
    $('detail-title').textContent = `${d.action} · event ${seq}`;
    const links = document.createElement('p');
    links.className = 'links';
    const link = (text, q) => {
      const b = document.createElement('button');
      b.type = 'button';
      b.textContent = text;
      b.addEventListener('click', () => { dialog.close(); applyOnly(q); });
      return b;
    };
    if (d.actor) links.append(link("This actor's activity", { actor_id: d.actor.id }));
    if (d.primary_resource) links.append(link("This resource's history", { resource_type: d.primary_resource.type, resource_id: d.primary_resource.id }));
    const parts = [links, ...section('What happened', dl([
      ['action', d.action], ['occurred at', d.occurred_at], ['recorded at', e.recordedtime], ['category', d.category],
      ['severity', d.severity], ['outcome', d.outcome], ['description', d.description], ['source service', d.source_service],
    ]))];
    parts.push(...section('Who', dl(Object.entries(d.actor || {}))));
    parts.push(...section('To what', dl([['primary resource', d.primary_resource], ['related resources', d.related_resources]])));
    parts.push(heading('What changed'));
    if (diff.has_changes) parts.push(diffTable(diff));
    else parts.push(Object.assign(document.createElement('p'), { textContent: 'This event records no change.' }));
    parts.push(...section('Context', dl([
      ['correlation id', d.correlation_id], ['request id', d.request_id], ['trace id', d.trace_id], ['metadata', d.metadata],
    ])));
    const known = new Set(['tenant_id', 'occurred_at', 'action', 'category', 'severity', 'actor', 'primary_resource',
      'related_resources', 'changes', 'outcome', 'description', 'metadata', 'correlation_id', 'request_id', 'source_service', 'trace_id']);
    const extensions = Object.entries(e).filter(([k]) => !CE_STANDARD.has(k));
    const unknown = Object.entries(d).filter(([k]) => !known.has(k));
    parts.push(...section('Envelope', dl([
      ['tenant', e.tenantid], ['sequence', seq], ['CloudEvents id', e.id], ['source', e.source], ['type', e.type],
      ['subject', e.subject], ...extensions.map(([k, v]) => [`extension ${k}`, v]), ...unknown.map(([k, v]) => [`field ${k}`, v]),
    ])));
    body.replaceChildren(...parts);
  } catch (err) {
    body.textContent = `Could not open event ${seq}: ${err.message}`;
  }
}

function applyOnly(q) {
  for (const f of FILTERS) $(`f-${f}`).value = q[f] || '';
  $('f-range').value = '';
  syncRange();
  reload();
}

// ---- live: server-sent events over fetch (EventSource cannot send the token) ----

function stopLive() {
  live.abort?.abort();
  live.abort = null;
  clearTimeout(live.retry);
  $('live-status').textContent = '';
}

function liveQuery() {
  const q = { ...view.query };
  delete q.last; delete q.from; delete q.to;  // new events are newer than any range
  return q;
}

async function startLive() {
  stopLive();
  live.on = true;
  const controller = new AbortController();
  live.abort = controller;
  const headers = { Accept: 'text/event-stream' };
  if (live.last !== null) headers['Last-Event-ID'] = String(live.last);
  try {
    const res = await api(tenantPath(`/events:stream?${queryString(liveQuery())}`), { headers, signal: controller.signal });
    $('live-status').textContent = 'following new events';
    const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = '';
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += value;
      // The text/event-stream framing: events end with a blank line;
      // "id:" and "data:" lines; ":" lines are comments.
      let end;
      while ((end = buffer.indexOf('\n\n')) >= 0) {
        const block = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        let id = null;
        const data = [];
        for (const line of block.split('\n')) {
          if (line.startsWith('id:')) id = line.slice(3).trim();
          else if (line.startsWith('data:')) data.push(line.slice(5).replace(/^ /, ''));
        }
        if (!data.length) continue;
        const e = JSON.parse(data.join('\n'));
        live.last = id !== null ? Number(id) : seqOf(e);
        appendRow(e, true);
        $('empty').hidden = true;
        updateCount();
      }
    }
  } catch (err) {
    if (controller.signal.aborted || !live.on) return;
    $('live-status').textContent = `reconnecting (${err.message})`;
  }
  if (live.on && live.abort === controller) {
    // The stream ended or broke: resume after the last event shown.
    $('live-status').textContent = 'reconnecting…';
    live.retry = setTimeout(startLive, 1000);
  }
}

// ---- export ----

async function exportAs(format) {
  const status = $('export-status');
  status.textContent = 'Exporting…';
  try {
    const q = { ...view.query };
    const res = await api(tenantPath(`/export?${queryString(q, { format })}`));
    const reader = res.body.getReader();
    const chunks = [];
    let lines = 0;
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      chunks.push(value);
      for (const b of value) if (b === 10) lines++;
      status.textContent = `Exporting… ${lines.toLocaleString()} rows`;
    }
    const rows = format === 'csv' ? Math.max(0, lines - 1) : lines;
    const blob = new Blob(chunks, { type: format === 'csv' ? 'text/csv' : 'application/x-ndjson' });
    const a = document.createElement('a');
    a.href = URL.createObjectURL(blob);
    a.download = `trail-${session.tenant}-${new Date().toISOString().slice(0, 19).replace(/:/g, '')}.${format}`;
    document.body.append(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(a.href), 60000);
    status.textContent = `Exported ${rows.toLocaleString()} ${format === 'csv' ? 'records' : 'rows'}.`;
    status.dataset.rows = String(rows);
  } catch (err) {
    status.textContent = `Export failed: ${err.message}`;
  }
}

// ---- integrity ----

async function checkIntegrity() {
  const badge = $('integrity');
  badge.hidden = false;
  badge.className = 'badge';
  badge.textContent = 'Checking the chain…';
  try {
    const v = await (await api(tenantPath('/verify'))).json();
    if (v.verified) {
      const cp = v.latest_checkpoint;
      badge.classList.add('ok');
      badge.textContent = v.to_sequence === 0 ? 'No events yet'
        : `✔ Intact to #${v.to_sequence}` + (cp ? ` · signed at #${cp.sequence}, ${cp.signed_at.replace('T', ' ').slice(0, 19)} UTC` : ' · no signed checkpoint yet');
    } else {
      badge.classList.add('broken');
      badge.textContent = `✖ Broken at #${v.first_break.sequence}: ${v.first_break.reason}`;
    }
  } catch (err) {
    badge.textContent = err.status === 403 ? 'Integrity: not visible to this token' : `Integrity unknown: ${err.message}`;
  }
}

// ---- wiring ----

function init() {
  $('signin-form').addEventListener('submit', async (ev) => {
    ev.preventDefault();
    $('signin-error').textContent = '';
    try {
      await signIn($('token').value, $('signin-tenant').value.trim());
    } catch (err) {
      session.token = '';
      $('signin-error').textContent = err.message;
    }
  });
  $('signout').addEventListener('click', () => signOut());
  $('filters').addEventListener('submit', (ev) => { ev.preventDefault(); reload(); });
  $('f-range').addEventListener('change', () => { syncRange(); if ($('f-range').value !== 'custom') reload(); });
  $('f-clear').addEventListener('click', () => {
    for (const f of FILTERS) $(`f-${f}`).value = '';
    $('f-range').value = '24h';
    syncRange();
    reload();
  });
  $('live').addEventListener('change', () => {
    live.on = $('live').checked;
    live.last = null;
    if (live.on) startLive(); else stopLive();
  });
  $('export-csv').addEventListener('click', () => exportAs('csv'));
  $('export-ndjson').addEventListener('click', () => exportAs('ndjson'));
  $('detail-close').addEventListener('click', () => $('detail').close());
  new IntersectionObserver((entries) => { if (entries.some((e) => e.isIntersecting)) loadMore(); }, { rootMargin: '400px' })
    .observe($('sentinel'));
  // On a phone the filters start folded, the timeline first.
  if (window.matchMedia('(max-width: 700px)').matches) $('filter-box').open = false;
  // make run's link carries a dev token in the fragment (never sent to a server): take it, then drop it from the address.
  const fragment = new URLSearchParams(location.hash.slice(1));
  const params = new URLSearchParams(location.search);
  $('signin-tenant').value = params.get('tenant') || '';
  if (fragment.get('token')) {
    history.replaceState(null, '', location.pathname + location.search);
    signIn(fragment.get('token'), params.get('tenant') || '').catch((err) => { $('signin-error').textContent = err.message; });
  } else {
    $('token').focus();
  }
}

init();
