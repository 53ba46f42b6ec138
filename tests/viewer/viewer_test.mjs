// The web viewer in a real browser: Debian's chromium, headless, driven by
// puppeteer-core, against a live stack that tests/integration/viewer_test.cc
// seeded (acme: 520 events over the last hours, plan changes among them;
// beta: events acme must never see). The browser reaches traild through a
// TCP relay this script can cut, to break the live stream.
//
// Environment: NODE_TOOLS, HTTP_PORT (traild), TOKEN_A (acme: read, export),
// TOKEN_W (acme: write), TOKEN_AB (acme and beta, read), TOKEN_SHORT (acme,
// read, expiring at SHORT_EXPIRES_S, Unix seconds), CHROMIUM, OUT (a
// directory: downloads and screenshots). Prints "viewer: passed N checks".
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';

const require = createRequire(process.env.NODE_TOOLS + '/package.json');
const puppeteer = require('puppeteer-core');
const { HTTP_PORT, TOKEN_A, TOKEN_W, TOKEN_AB, TOKEN_SHORT, SHORT_EXPIRES_S, CHROMIUM, OUT } = process.env;
const API = `http://127.0.0.1:${HTTP_PORT}`;

let checks = 0;
function check(cond, what) {
  assert.ok(cond, what);
  checks++;
}
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const started = Date.now();
const step = (what) => console.log(`[${((Date.now() - started) / 1000).toFixed(1)} s] ${what}`);

// ---- a relay the test can cut ----
step('a relay the test can cut');
const sockets = new Set();
let down = false;
const relay = net.createServer((client) => {
  if (down) return client.destroy();
  const upstream = net.connect(Number(HTTP_PORT), '127.0.0.1');
  sockets.add(client);
  sockets.add(upstream);
  client.pipe(upstream).pipe(client);
  const close = () => { client.destroy(); upstream.destroy(); sockets.delete(client); sockets.delete(upstream); };
  client.on('error', close).on('close', close);
  upstream.on('error', close).on('close', close);
});
await new Promise((r) => relay.listen(0, '127.0.0.1', r));
const BASE = `http://127.0.0.1:${relay.address().port}`;
const cut = () => { down = true; for (const s of sockets) s.destroy(); };
const restore = () => { down = false; };

// ---- the API, directly, for the expected answers ----
step('the API, directly, for the expected answers');
async function apiJson(token, p) {
  const r = await fetch(API + p, { headers: { Authorization: `Bearer ${token}` } });
  assert.equal(r.status, 200, `${p}: ${r.status}`);
  return r.json();
}
async function allSequences(token, query) {
  const out = [];
  let cursor = null;
  do {
    const q = new URLSearchParams({ ...query, page_size: '1000' });
    if (cursor) q.set('page_token', cursor);
    const page = await apiJson(token, `/v1/tenants/acme/events?${q}`);
    out.push(...page.events.map((e) => Number(e.sequence)));
    cursor = page.next_page_token;
  } while (cursor);
  return out;
}
async function write(action) {
  const r = await fetch(`${API}/v1/tenants/acme/events`, {
    method: 'POST',
    headers: { Authorization: `Bearer ${TOKEN_W}`, 'Content-Type': 'application/json' },
    body: JSON.stringify({ tenant_id: 'acme', action, actor: { type: 'user', id: 'u-live' }, primary_resource: { type: 'doc', id: 'live' } }),
  });
  assert.equal(r.status, 201);
  return (await r.json()).sequence;
}

fs.mkdirSync(OUT, { recursive: true });
const browser = await puppeteer.launch({
  executablePath: CHROMIUM,
  headless: true,
  args: ['--no-sandbox', '--disable-dev-shm-usage', '--disable-gpu'],
  protocolTimeout: 60000,
});
const page = await browser.newPage();
await page.setViewport({ width: 1280, height: 860 });
const foreign = [];
page.on('request', (r) => { if (!r.url().startsWith(BASE) && !r.url().startsWith('blob:') && !r.url().startsWith('data:')) foreign.push(r.url()); });
const consoleErrors = [];
page.on('pageerror', (e) => consoleErrors.push(String(e)));
const cdp = await page.createCDPSession();
await cdp.send('Browser.setDownloadBehavior', { behavior: 'allow', downloadPath: OUT });

// ---- the page and its policy ----
step('the page and its policy');
const res = await page.goto(`${BASE}/ui/`, { waitUntil: 'networkidle0' });
const csp = res.headers()['content-security-policy'] || '';
check(res.status() === 200, 'GET /ui/');
check(csp.includes("default-src 'none'") && csp.includes("script-src 'self'") && !csp.includes('unsafe-inline'), `CSP: ${csp}`);
for (const asset of ['/ui/app.js', '/ui/app.css']) {
  const r = await fetch(API + asset);
  check(r.status === 200 && (r.headers.get('content-security-policy') || '').includes("default-src 'none'"), `${asset} with its CSP`);
}
// Every control has a label.
const unlabeled = await page.$$eval('input, select, textarea', (els) => els.filter((e) => e.labels.length === 0).map((e) => e.id));
check(unlabeled.length === 0, `controls without a label: ${unlabeled}`);

// ---- sign in ----
step('sign in');
// (A page is brought to the front first: a background tab gets no animation
// frames, and clicks wait for one.)
async function signIn(p, token, tenant = '') {
  await p.bringToFront();
  await p.$eval('#token', (el, v) => { el.value = v; }, token);
  await p.$eval('#signin-tenant', (el, v) => { el.value = v; }, tenant);
  await p.click('#signin-form button[type=submit]');
}
// A page signed in with a token that expires during the test (checked at the end).
const shortExpires = Number(SHORT_EXPIRES_S) * 1000;
const early = await browser.newPage();
await early.goto(`${BASE}/ui/`, { waitUntil: 'networkidle0' });
await signIn(early, TOKEN_SHORT);
await early.waitForFunction(() => document.querySelector('#who').textContent.includes('tenant acme'));
await signIn(page, TOKEN_A);
await page.waitForFunction(() => document.querySelector('#who').textContent.includes('tenant acme'));
check((await page.$eval('#who', (e) => e.textContent)).includes('audit:read audit:export'), 'the token\'s scopes are shown');
await page.waitForFunction(() => document.querySelectorAll('#rows tr').length >= 50);
await page.waitForFunction(() => document.querySelector('#integrity').classList.contains('ok'));
check((await page.$eval('#integrity', (e) => e.textContent)).startsWith('✔ Intact to #'), 'the integrity badge');
await page.screenshot({ path: path.join(OUT, 'viewer-timeline.png') });

// ---- filter by actor and time ----
step('filter by actor and time');
await page.select('#f-range', '24h');
await page.$eval('#f-actor_id', (el) => { el.value = 'u-3'; });
await page.click('#filters button[type=submit]');
const expectedU3 = await allSequences(TOKEN_A, { actor_id: 'u-3', last: '24h' });
await page.waitForFunction((n) => document.querySelectorAll('#rows tr').length === n &&
  document.querySelector('#list-status').textContent.includes('end'), {}, Math.min(expectedU3.length, 50));
let shown = await page.$$eval('#rows tr', (rows) => rows.map((r) => [Number(r.dataset.sequence), r.children[3].textContent]));
check(shown.length > 0 && shown.every(([, actor]) => actor.startsWith('u-3 ')), 'only u-3\'s events');
check(JSON.stringify(shown.map(([s]) => s)) === JSON.stringify(expectedU3.slice(0, shown.length)), 'the API\'s order');
check(new URL(page.url()).searchParams.get('actor_id') === 'u-3' && new URL(page.url()).searchParams.get('last') === '24h', 'filters in the URL');

// ---- an event and its diff ----
step('an event and its diff');
await page.$eval('#f-actor_id', (el) => { el.value = ''; });
await page.$eval('#f-actions', (el) => { el.value = 'plan.change'; });
await page.click('#filters button[type=submit]');
await page.waitForFunction(() => document.querySelectorAll('#rows tr').length === 5);
await page.focus('#rows tr');
await page.keyboard.press('Enter');  // keyboard: Enter opens the focused row
await page.waitForSelector('table.diff');
const diff = await page.$$eval('table.diff tbody tr', (rows) => rows.map((r) => [r.className, ...[...r.children].map((c) => c.textContent)]));
check(diff.some(([cls, f, before, after]) => cls === 'changed' && f === '/tier' && before === '"basic"' && after === '"pro"'), `diff: ${JSON.stringify(diff)}`);
check(diff.some(([cls, f]) => cls === 'changed' && f === '/limits/seats'), 'a nested field is compared too');
check(diff.some(([cls, f]) => cls === 'same' && f === '/limits/projects'), 'unchanged fields are shown unhighlighted');
check(diff.some(([cls, f, before]) => cls === 'added' && f === '/limits/sso' && before === '—'), 'an added field');
const detail = await page.$eval('#detail-body', (e) => e.textContent);
check(detail.includes('CloudEvents id') && detail.includes('extension') && detail.includes('u-admin'), 'every field, actor and extensions');
await page.screenshot({ path: path.join(OUT, 'viewer-diff.png') });
// "This actor's activity" sets the filter.
await page.$$eval('#detail-body .links button', (bs) => bs[0].click());
await page.waitForFunction(() => new URL(location.href).searchParams.get('actor_id') === 'u-admin');
await page.waitForFunction(() => document.querySelectorAll('#rows tr').length === 5 && document.querySelector('#list-status').textContent.includes('end'));
check(true, 'actor activity link');

// ---- 500 events, scrolled, without a repeat or a gap ----
step('500 events, scrolled, without a repeat or a gap');
await page.$eval('#f-actor_id', (el) => { el.value = ''; });
await page.$eval('#f-actions', (el) => { el.value = 'doc.view'; });
await page.select('#f-range', '');
await page.click('#filters button[type=submit]');
const expectedAll = await allSequences(TOKEN_A, { actions: 'doc.view' });
check(expectedAll.length >= 500, `seeded ${expectedAll.length}`);
for (let i = 0; i < 200; i++) {
  const n = await page.$$eval('#rows tr', (r) => r.length);
  if (n >= expectedAll.length) break;
  await page.evaluate(() => window.scrollTo(0, document.body.scrollHeight));
  await sleep(100);
}
shown = await page.$$eval('#rows tr', (rows) => rows.map((r) => Number(r.dataset.sequence)));
check(shown.length === expectedAll.length && new Set(shown).size === shown.length, `${shown.length} rows, ${new Set(shown).size} distinct`);
check(JSON.stringify(shown) === JSON.stringify(expectedAll), 'the scrolled timeline is the API\'s listing, in order');
check((await page.$eval('#count', (e) => e.textContent)).startsWith(`${expectedAll.length.toLocaleString('en-US')} events shown`), 'the count');

// ---- export what the filter shows, compared with the API's ----
step("export what the filter shows, compared with the API's");
await page.click('#export-ndjson');
await page.waitForFunction(() => document.querySelector('#export-status').textContent.startsWith('Exported'), { timeout: 30000 });
let file = null;
for (let i = 0; i < 50 && !file; i++) {
  file = fs.readdirSync(OUT).find((f) => f.endsWith('.ndjson') && !f.endsWith('.crdownload'));
  if (!file) await sleep(100);
}
const exported = fs.readFileSync(path.join(OUT, file), 'utf8');
const fromApi = await (await fetch(`${API}/v1/tenants/acme/export?format=ndjson&actions=doc.view`, { headers: { Authorization: `Bearer ${TOKEN_A}` } })).text();
check(exported === fromApi, 'the downloaded file is the API\'s export');
check((await page.$eval('#export-status', (e) => e.textContent)) === `Exported ${expectedAll.length.toLocaleString('en-US')} rows.`, 'the row count');

// ---- live: an event within 2 s; a cut stream resumes without a gap ----
step('live: an event within 2 s; a cut stream resumes without a gap');
await page.evaluate(() => window.scrollTo(0, 0));
await page.$eval('#f-actions', (el) => { el.value = ''; });
await page.select('#f-range', '24h');
await page.click('#live');
await page.waitForFunction(() => document.querySelector('#live-status').textContent.includes('following'));
const t0 = Date.now();
const first = await write('live.one');
await page.waitForSelector(`#rows tr[data-sequence="${first}"]`, { timeout: 2000 });
check(Date.now() - t0 < 2000, `a live event shown in ${Date.now() - t0} ms`);
cut();
await page.waitForFunction(() => document.querySelector('#live-status').textContent.includes('reconnecting'), { timeout: 10000 });
const during = [await write('live.cut.1'), await write('live.cut.2'), await write('live.cut.3')];
await sleep(1500);
restore();
for (const s of during) await page.waitForSelector(`#rows tr[data-sequence="${s}"]`, { timeout: 10000 });
const last = await write('live.after');
await page.waitForSelector(`#rows tr[data-sequence="${last}"]`, { timeout: 5000 });
// Everything the tenant committed from the first live event on is there,
// once each (the viewer's own reads are audit events too).
const liveRows = await page.$$eval('#rows tr.fresh', (rows) => rows.map((r) => Number(r.dataset.sequence)));
const from = Math.min(...liveRows);
const to = Math.max(...liveRows);
check(new Set(liveRows).size === liveRows.length, 'no live event twice');
check(liveRows.length === to - from + 1, `live sequences ${from}..${to} without a gap: ${liveRows.length} rows`);
await page.click('#live');

// ---- tenant isolation: acme's token never shows beta ----
step("tenant isolation: acme's token never shows beta");
const other = await browser.newPage();
await other.goto(`${BASE}/ui/?tenant=beta`, { waitUntil: 'networkidle0' });
await signIn(other, TOKEN_A, 'beta');
await other.waitForFunction(() => document.querySelector('#signin-error').textContent !== '');
check((await other.$eval('#signin-error', (e) => e.textContent)) === 'This token may not read tenant beta.', 'refused in the page');
check(!(await other.content()).includes('beta.secret'), 'no beta event in the page');
// Even a page that asks the API for beta with acme's token gets a refusal, not data.
const forced = await other.evaluate(async (t) => (await fetch('/v1/tenants/beta/events', { headers: { Authorization: `Bearer ${t}` } })).status, TOKEN_A);
check(forced === 403, 'the API refuses acme\'s token for beta');
// A two-tenant token must pick; it sees beta only when it picks beta.
await other.goto(`${BASE}/ui/`, { waitUntil: 'networkidle0' });
await signIn(other, TOKEN_AB);
await other.waitForFunction(() => document.querySelector('#signin-error').textContent.includes('several tenants'));
check(true, 'a two-tenant token is asked which');
await other.close();

// ---- a phone-sized screen ----
step('a phone-sized screen');
await page.bringToFront();
// (Only the size: a change of isMobile would make puppeteer reload the page, which signs out.)
await page.setViewport({ width: 390, height: 800 });
await page.$eval('#f-actions', (el) => { el.value = ''; });
await page.click('#filters button[type=submit]');
await page.waitForFunction(() => document.querySelectorAll('#rows tr').length >= 20);
await page.$eval('#filter-box', (d) => { d.open = false; });  // as the page folds them when it opens on a phone
check(!(await page.$eval('#viewer', (e) => e.hidden)), 'still signed in on a narrow screen');
await page.evaluate(() => window.scrollTo(0, 0));
const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
check(overflow <= 1, `no horizontal scroll on a phone (${overflow}px)`);
await page.screenshot({ path: path.join(OUT, 'viewer-phone.png') });

// ---- a 401 returns to the sign-in: the short token signed in at the start has expired by now ----
step('a 401 returns to the sign-in: the short token signed in at the start has expired by now');
while (Date.now() < shortExpires + 1500) await sleep(250);
await early.bringToFront();
await early.click('#filters button[type=submit]');
await early.waitForFunction(() => !document.querySelector('#signin').hidden, { timeout: 10000 });
check((await early.$eval('#signin-error', (e) => e.textContent)).startsWith('The token was refused'), 'back to the sign-in, saying why');
check((await early.$$eval('#rows tr', (r) => r.length)) === 0, 'and nothing of the trail left on the page');
await early.close();

check(foreign.length === 0, `requests to other origins: ${foreign}`);
check(consoleErrors.length === 0, `page errors: ${consoleErrors}`);
await browser.close();
relay.close();
console.log(`viewer: passed ${checks} checks`);
process.exit(0);
