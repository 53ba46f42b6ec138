// Trail's MCP server driven by the official TypeScript SDK's client, over
// Streamable HTTP (traild's /mcp) and over stdio (`trailctl mcp`), against a
// live stack that tests/integration/mcp_test.cc starts. Every tool is
// called, every resource template read, and tenant isolation is checked
// through each of them; then the transport's refusals (Origin, Host,
// session, protocol version, methods, credentials) with plain fetch.
//
// Environment: NODE_TOOLS (scripts/node-tools.sh's directory), MCP_URL,
// API_URL, TRAILCTL, TOKEN_A (tenant acme: read, write, export), TOKEN_B
// (tenant beta: the same), TOKEN_AB (both tenants, read only).
// Prints "mcp sdk: passed N checks" when everything held; exits 1 otherwise.
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';

const require = createRequire(process.env.NODE_TOOLS + '/package.json');
const { Client } = require('@modelcontextprotocol/sdk/client/index.js');
const { StreamableHTTPClientTransport } = require('@modelcontextprotocol/sdk/client/streamableHttp.js');
const { StdioClientTransport } = require('@modelcontextprotocol/sdk/client/stdio.js');
const { McpError } = require('@modelcontextprotocol/sdk/types.js');

const { MCP_URL, API_URL, TRAILCTL, TOKEN_A, TOKEN_B, TOKEN_AB } = process.env;
let checks = 0;
function check(cond, what) {
  assert.ok(cond, what);
  checks++;
}

async function httpClient(token) {
  const client = new Client({ name: 'trail-test', version: '1.0.0' });
  const transport = new StreamableHTTPClientTransport(new URL(MCP_URL), {
    requestInit: { headers: { Authorization: `Bearer ${token}` } },
  });
  await client.connect(transport);
  return { client, transport };
}

async function rejects(promise, code, what) {
  try {
    await promise;
  } catch (e) {
    check(e instanceof McpError && e.code === code, `${what}: expected JSON-RPC error ${code}, got ${e}`);
    return e;
  }
  assert.fail(`${what}: expected JSON-RPC error ${code}, got a result`);
}

function structured(result, what) {
  check(!result.isError, `${what}: ${JSON.stringify(result.content)}`);
  check(result.structuredContent && typeof result.structuredContent === 'object', `${what}: structuredContent`);
  // The same JSON as text, for clients that read only text.
  check(JSON.stringify(JSON.parse(result.content[0].text)) === JSON.stringify(result.structuredContent), `${what}: text mirrors structuredContent`);
  return result.structuredContent;
}

function toolError(result, pattern, what) {
  check(result.isError === true, `${what}: expected isError, got ${JSON.stringify(result)}`);
  check(pattern.test(result.content[0].text), `${what}: message ${JSON.stringify(result.content[0].text)} !~ ${pattern}`);
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// ---- over Streamable HTTP, as tenant acme ----
const { client: a } = await httpClient(TOKEN_A);
check(a.getServerVersion().name === 'trail', 'serverInfo.name');
const tools = (await a.listTools()).tools;
const names = tools.map((t) => t.name).sort();
check(JSON.stringify(names) === JSON.stringify(['export_events', 'get_event_diff', 'query_events', 'record_event', 'verify_chain']), `tools: ${names}`);
for (const t of tools) check(t.description && t.inputSchema?.type === 'object' && t.outputSchema?.type === 'object', `tool ${t.name} schemas`);
const templates = (await a.listResourceTemplates()).resourceTemplates.map((t) => t.uriTemplate).sort();
check(JSON.stringify(templates) === JSON.stringify([
  'audit://tenants/{tenant}/actors/{actor_id}/activity{?cursor}',
  'audit://tenants/{tenant}/events/{sequence}',
  'audit://tenants/{tenant}/timeline{?cursor}',
]), `templates: ${templates}`);
const listed = (await a.listResources()).resources.map((r) => r.uri);
check(JSON.stringify(listed) === JSON.stringify(['audit://tenants/acme/timeline']), `resources: ${listed}`);

// record_event: committed, with a sequence; the tenant is the token's only one.
const first = structured(await a.callTool({ name: 'record_event', arguments: {
  action: 'billing.plan.changed', actor: { type: 'user', id: 'u-agent' },
  primary_resource: { type: 'plan', id: 'p-7' }, severity: 'notice',
  changes: { old_value: { tier: 'basic', seats: 5 }, new_value: { tier: 'pro', seats: 5 } },
  idempotency_key: 'mcp-test-plan-1' } }), 'record_event');
check(first.tenant_id === 'acme' && first.sequence >= 1 && first.already_stored === false, `record_event result ${JSON.stringify(first)}`);
const again = structured(await a.callTool({ name: 'record_event', arguments: {
  action: 'billing.plan.changed', actor: { type: 'user', id: 'u-agent' },
  primary_resource: { type: 'plan', id: 'p-7' },
  changes: { old_value: { tier: 'basic', seats: 5 }, new_value: { tier: 'pro', seats: 5 } },
  idempotency_key: 'mcp-test-plan-1' } }), 'record_event retry');
check(again.sequence === first.sequence && again.already_stored === true, 'a retry with the same key is not written twice');
structured(await a.callTool({ name: 'record_event', arguments: {
  tenant_id: 'acme', action: 'user.login', actor: { type: 'user', id: 'u-other' }, primary_resource: { type: 'session', id: 's-1' } } }), 'record_event 2');
toolError(await a.callTool({ name: 'record_event', arguments: { actor: { type: 'user', id: 'x' }, primary_resource: { type: 'a', id: 'b' } } }),
  /action is required/, 'record_event without action');
toolError(await a.callTool({ name: 'record_event', arguments: { action: 'x', actor: { type: 'martian', id: 'x' }, primary_resource: { type: 'a', id: 'b' } } }),
  /refused/, 'record_event with a bad actor type');

// query_events: filters, natural ranges, paging.
const q = structured(await a.callTool({ name: 'query_events', arguments: { actions: ['billing.plan.changed'], last: 'last_24h' } }), 'query_events');
check(q.count === 1 && q.events[0].data.action === 'billing.plan.changed' && q.next_cursor === null, `query_events ${JSON.stringify(q).slice(0, 300)}`);
check(Number(q.events[0].sequence) === first.sequence, 'query_events finds the recorded event (sequence as in the committed stream: zero-padded)');
const byActor = structured(await a.callTool({ name: 'query_events', arguments: { actor_id: 'u-other', from: '2000-01-01T00:00:00Z' } }), 'query by actor');
check(byActor.count === 1 && byActor.events[0].data.actor.id === 'u-other', 'query_events by actor');
const page1 = structured(await a.callTool({ name: 'query_events', arguments: { page_size: 1 } }), 'page 1');
check(page1.count === 1 && typeof page1.next_cursor === 'string', 'a page and a cursor');
const page2 = structured(await a.callTool({ name: 'query_events', arguments: { page_size: 1, cursor: page1.next_cursor } }), 'page 2');
check(page2.count === 1 && page2.events[0].sequence !== page1.events[0].sequence, 'the cursor reads the next page');
toolError(await a.callTool({ name: 'query_events', arguments: { last: 'yesterday' } }), /last must be a duration/, 'a bad range');
toolError(await a.callTool({ name: 'query_events', arguments: { actorid: 'u' } }), /unknown argument actorid/, 'a misspelt filter');

// get_event_diff
const diff = structured(await a.callTool({ name: 'get_event_diff', arguments: { sequence: first.sequence } }), 'get_event_diff');
check(diff.has_changes === true && diff.fields.some((f) => f.field === '/tier' && f.old === 'basic' && f.new === 'pro'), `diff ${JSON.stringify(diff)}`);
toolError(await a.callTool({ name: 'get_event_diff', arguments: { sequence: 999999 } }), /^no event 999999 in tenant acme$/, 'diff of a missing event');
toolError(await a.callTool({ name: 'get_event_diff', arguments: {} }), /sequence is required/, 'diff without sequence');

// verify_chain (checkpoints are signed every second in this stack)
let v;
for (let i = 0; i < 50; i++) {
  v = structured(await a.callTool({ name: 'verify_chain', arguments: {} }), 'verify_chain');
  if (v.checkpoints_checked > 0) break;
  await sleep(200);
}
check(v.verified === true && v.tenant === 'acme' && v.events_checked >= 2 && v.checkpoints_checked > 0, `verify ${JSON.stringify(v)}`);
const vb = structured(await a.callTool({ name: 'verify_chain', arguments: { from_sequence: 1, to_sequence: 2, against_broker: true } }), 'verify against broker');
check(vb.verified === true && vb.to_sequence === 2, 'verify a range against the broker');

// export_events: a resource link, read back; bounded.
const ex = await a.callTool({ name: 'export_events', arguments: { format: 'ndjson', actions: 'billing.plan.changed', last: '1h' } });
const exs = structured(ex, 'export_events');
const link = ex.content.find((c) => c.type === 'resource_link');
check(link && link.uri === exs.uri && link.mimeType === 'application/x-ndjson' && exs.rows === 1 && exs.truncated === false, `export ${JSON.stringify(ex)}`);
const exported = (await a.readResource({ uri: link.uri })).contents[0];
check(exported.mimeType === 'application/x-ndjson' && exported.text.trim().split('\n').length === 1 &&
  JSON.parse(exported.text).data.action === 'billing.plan.changed', `export read ${JSON.stringify(exported).slice(0, 300)}`);
const cut = structured(await a.callTool({ name: 'export_events', arguments: { format: 'csv', max_rows: 2 } }), 'export csv');
check(cut.rows === 2 && cut.truncated === true && cut.format === 'csv', `bounded csv ${JSON.stringify(cut)}`);
const csv = (await a.readResource({ uri: cut.uri })).contents[0];
check(csv.mimeType === 'text/csv' && csv.text.trim().split('\r\n').length === 3, `csv read ${JSON.stringify(csv.text.slice(0, 200))}`);
toolError(await a.callTool({ name: 'export_events', arguments: { max_rows: 100000000 } }), /max_rows must be an integer/, 'export over the bound');

// Resources: an event, the timeline (paged), an actor's activity.
const ev = (await a.readResource({ uri: `audit://tenants/acme/events/${first.sequence}` })).contents[0];
check(JSON.parse(ev.text).data.action === 'billing.plan.changed', 'event resource');
const tl = JSON.parse((await a.readResource({ uri: 'audit://tenants/acme/timeline' })).contents[0].text);
check(Array.isArray(tl.events) && tl.events.length >= 3, 'timeline resource');
const act = JSON.parse((await a.readResource({ uri: 'audit://tenants/acme/actors/u-agent/activity' })).contents[0].text);
check(act.events.length === 1 && act.events[0].data.actor.id === 'u-agent' && act.next_uri === null, `activity ${JSON.stringify(act).slice(0, 200)}`);
await rejects(a.readResource({ uri: 'audit://tenants/acme/events/999999' }), -32002, 'a missing event');
await rejects(a.readResource({ uri: 'audit://elsewhere' }), -32002, 'an unknown URI');
await rejects(a.callTool({ name: 'drop_table', arguments: {} }), -32602, 'an unknown tool');

// Tenant isolation: acme's token reaches beta through nothing.
for (const [name, args] of [
  ['record_event', { tenant_id: 'beta', action: 'x', actor: { type: 'user', id: 'u' }, primary_resource: { type: 'a', id: 'b' } }],
  ['query_events', { tenant_id: 'beta' }],
  ['get_event_diff', { tenant_id: 'beta', sequence: 1 }],
  ['verify_chain', { tenant_id: 'beta' }],
  ['export_events', { tenant_id: 'beta' }],
]) toolError(await a.callTool({ name, arguments: args }), /may not/, `${name} across tenants`);
for (const uri of ['audit://tenants/beta/events/1', 'audit://tenants/beta/timeline', 'audit://tenants/beta/actors/u-b/activity',
  'audit://tenants/beta/exports/ndjson?max_rows=5'])
  await rejects(a.readResource({ uri }), -32001, `${uri} across tenants`);

// The meta-audit: reads made through MCP are in acme's own trail, marked so.
let via = [];
for (let i = 0; i < 50 && via.length === 0; i++) {
  const acc = structured(await a.callTool({ name: 'query_events', arguments: { categories: 'audit_access', page_size: 1000 } }), 'access events');
  via = acc.events.filter((e) => e.data.metadata?.via === 'mcp');
  if (via.length === 0) await sleep(200);
}
check(via.length > 0 && via.some((e) => e.data.actor.id === 'mcp-a'), 'reads through MCP are recorded with via=mcp');
await a.close();

// A token naming two tenants must say which.
const { client: ab } = await httpClient(TOKEN_AB);
check((await ab.listResources()).resources.length === 2, 'two tenants, two timelines');
toolError(await ab.callTool({ name: 'query_events', arguments: {} }), /^tenant_id is required/, 'no default tenant');
structured(await ab.callTool({ name: 'query_events', arguments: { tenant_id: 'beta' } }), 'the second tenant');
toolError(await ab.callTool({ name: 'record_event', arguments: { tenant_id: 'beta', action: 'x', actor: { type: 'user', id: 'u' }, primary_resource: { type: 'a', id: 'b' } } }),
  /may not audit:write this tenant/, 'a read-only token cannot write');
await ab.close();

// ---- over stdio: trailctl mcp, as tenant beta ----
const stdio = new Client({ name: 'trail-test-stdio', version: '1.0.0' });
await stdio.connect(new StdioClientTransport({
  command: TRAILCTL, args: ['mcp'],
  env: { PATH: process.env.PATH, HOME: process.env.HOME ?? '/tmp', TRAIL_API_URL: API_URL, TRAIL_TOKEN: TOKEN_B, TRAIL_TENANT: 'beta' },
  stderr: 'inherit',
}));
check(JSON.stringify((await stdio.listTools()).tools.map((t) => t.name).sort()) === JSON.stringify(names), 'stdio: the same tools');
check((await stdio.listResourceTemplates()).resourceTemplates.length === 3, 'stdio: templates');
const b1 = structured(await stdio.callTool({ name: 'record_event', arguments: {
  action: 'doc.shared', actor: { type: 'user', id: 'u-b' }, primary_resource: { type: 'doc', id: 'd-1' },
  changes: { old_value: { shared: false }, new_value: { shared: true } } } }), 'stdio record_event');
// (beta's trail already holds the refusals of acme's token above: the meta-audit records them there.)
check(b1.tenant_id === 'beta' && b1.sequence > 1, `stdio record ${JSON.stringify(b1)}`);
const bq = structured(await stdio.callTool({ name: 'query_events', arguments: { actions: 'doc.shared' } }), 'stdio query');
check(bq.count === 1, 'stdio query');
check(structured(await stdio.callTool({ name: 'get_event_diff', arguments: { sequence: b1.sequence } }), 'stdio diff').has_changes, 'stdio diff');
check(structured(await stdio.callTool({ name: 'verify_chain', arguments: {} }), 'stdio verify').verified, 'stdio verify');
const bx = await stdio.callTool({ name: 'export_events', arguments: { actions: 'doc.shared' } });
check(structured(bx, 'stdio export').rows === 1, 'stdio export');
check(JSON.parse((await stdio.readResource({ uri: `audit://tenants/beta/events/${b1.sequence}` })).contents[0].text).data.action === 'doc.shared', 'stdio event resource');
check(JSON.parse((await stdio.readResource({ uri: 'audit://tenants/beta/timeline' })).contents[0].text).events.length >= 1, 'stdio timeline');
check(JSON.parse((await stdio.readResource({ uri: 'audit://tenants/beta/actors/u-b/activity' })).contents[0].text).events.length === 1, 'stdio activity');
check((await stdio.readResource({ uri: bx.structuredContent.uri })).contents[0].text.trim().split('\n').length === 1, 'stdio export read');
toolError(await stdio.callTool({ name: 'query_events', arguments: { tenant_id: 'acme' } }), /may not/, 'stdio: beta cannot read acme');
await rejects(stdio.readResource({ uri: 'audit://tenants/acme/timeline' }), -32001, 'stdio: acme timeline');
await rejects(stdio.readResource({ uri: `audit://tenants/acme/events/${first.sequence}` }), -32001, 'stdio: acme event');
await stdio.close();

// ---- the transport's refusals ----
const init = { jsonrpc: '2.0', id: 1, method: 'initialize', params: { protocolVersion: '2025-11-25', capabilities: {}, clientInfo: { name: 'raw', version: '1' } } };
const post = (body, headers = {}) => fetch(MCP_URL, {
  method: 'POST',
  headers: { 'Content-Type': 'application/json', Accept: 'application/json, text/event-stream', Authorization: `Bearer ${TOKEN_A}`, ...headers },
  body: JSON.stringify(body),
});
const ok = await post(init);
const session = ok.headers.get('mcp-session-id');
check(ok.status === 200 && /^[\x21-\x7e]+$/.test(session ?? ''), 'initialize gives a session id');
check((await ok.json()).result.protocolVersion === '2025-11-25', 'the asked version is agreed');
const old = await post({ ...init, params: { ...init.params, protocolVersion: '2024-01-01' } });
check((await old.json()).result.protocolVersion === '2025-11-25', 'an unknown version gets the newest');
check((await post(init, { Origin: 'http://evil.example.com' })).status === 403, 'a foreign Origin is refused');
check((await post({ jsonrpc: '2.0', id: 2, method: 'ping' }, { 'Mcp-Session-Id': session })).status === 200, 'ping in the session');
check((await post({ jsonrpc: '2.0', id: 2, method: 'ping' }, { 'Mcp-Session-Id': session, 'MCP-Protocol-Version': '2025-03-26' })).status === 200, '2025-03-26 header accepted');
check((await post({ jsonrpc: '2.0', id: 2, method: 'ping' }, { 'Mcp-Session-Id': session, 'MCP-Protocol-Version': '1999-01-01' })).status === 400, 'a bad version header');
check((await post({ jsonrpc: '2.0', id: 2, method: 'ping' })).status === 400, 'no session id');
check((await post({ jsonrpc: '2.0', id: 2, method: 'ping' }, { 'Mcp-Session-Id': session + 'x' })).status === 404, 'a forged session id');
check((await post({ jsonrpc: '2.0', id: 2, method: 'ping' }, { 'Mcp-Session-Id': session, Authorization: `Bearer ${TOKEN_B}` })).status === 404,
  "another caller's session id");
check((await post({ jsonrpc: '2.0', method: 'notifications/initialized' }, { 'Mcp-Session-Id': session })).status === 202, 'a notification: 202');
const noAuth = await post(init, { Authorization: '' });
check(noAuth.status === 401 && noAuth.headers.get('www-authenticate') === 'Bearer', 'no token: 401');
check((await post({ jsonrpc: '2.0', id: 3, method: 'nope' }, { 'Mcp-Session-Id': session }).then((r) => r.json())).error.code === -32601, 'unknown method');
const bad = await fetch(MCP_URL, { method: 'POST', headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${TOKEN_A}` }, body: '{not json' });
check(bad.status === 400 && (await bad.json()).error.code === -32700, 'not JSON: parse error');
check((await fetch(MCP_URL, { method: 'GET', headers: { Authorization: `Bearer ${TOKEN_A}` } })).status === 405, 'GET: 405');
check((await fetch(MCP_URL, { method: 'DELETE', headers: { Authorization: `Bearer ${TOKEN_A}`, 'Mcp-Session-Id': session } })).status === 405, 'DELETE: 405');

console.log(`mcp sdk: passed ${checks} checks`);
process.exit(0);
