// The official MCP conformance runner (@modelcontextprotocol/conformance)
// against traild's /mcp, scenario by scenario, with an empty
// --expected-failures file (so a warning fails too). The runner has no way to
// send credentials, and Trail's /mcp requires them: a loopback proxy in front
// of traild adds the bearer token and passes everything else through as it
// came (Host and Origin included, so the DNS-rebinding scenario reaches
// traild's own checks).
//
// Environment: NODE_TOOLS, MCP_URL (traild's), TOKEN_A, OUT (a directory).
// Prints each scenario's summary and "mcp conformance: passed N scenarios".
import http from 'node:http';
import { spawn } from 'node:child_process';
import fs from 'node:fs';

const { NODE_TOOLS, MCP_URL, TOKEN_A, OUT } = process.env;
const target = new URL(MCP_URL);
const scenarios = ['server-initialize', 'ping', 'tools-list', 'resources-list', 'server-sse-multiple-streams', 'dns-rebinding-protection'];

const proxy = http.createServer((req, res) => {
  const headers = { ...req.headers, authorization: `Bearer ${TOKEN_A}` };
  const up = http.request({ host: target.hostname, port: target.port, path: req.url, method: req.method, headers }, (r) => {
    res.writeHead(r.statusCode, r.headers);
    r.pipe(res);
  });
  up.on('error', (e) => {
    res.writeHead(502);
    res.end(String(e));
  });
  req.pipe(up);
});
await new Promise((r) => proxy.listen(0, '127.0.0.1', r));
const url = `http://127.0.0.1:${proxy.address().port}${target.pathname}`;

fs.mkdirSync(OUT, { recursive: true });
const baseline = `${OUT}/expected-failures.yml`;
fs.writeFileSync(baseline, '');
let failed = 0;
for (const scenario of scenarios) {
  // Asynchronous, so that this process's proxy keeps serving meanwhile.
  const r = await new Promise((resolve) => {
    const child = spawn(process.execPath, [`${NODE_TOOLS}/node_modules/@modelcontextprotocol/conformance/dist/index.js`, 'server',
      '--url', url, '--scenario', scenario, '--expected-failures', baseline, '-o', `${OUT}/${scenario}`], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, NO_COLOR: '1', FORCE_COLOR: '0' } });
    let out = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (out += d));
    child.on('close', (code) => resolve({ code, out }));
  });
  console.log(`---- ${scenario}: exit ${r.code}`);
  console.log(r.out.trim());
  // Each scenario must end "Passed: n/n, 0 failed, 0 warnings".
  const summary = /Passed: (\d+)\/(\d+), (\d+) failed, (\d+) warnings/.exec(r.out.replace(/\x1b\[[0-9;]*m/g, ''));
  if (r.code !== 0 || !summary || summary[1] !== summary[2] || summary[3] !== '0' || summary[4] !== '0') failed++;
}
proxy.close();
if (failed) {
  console.log(`mcp conformance: ${failed} of ${scenarios.length} scenarios failed`);
  process.exit(1);
}
console.log(`mcp conformance: passed ${scenarios.length} scenarios`);
