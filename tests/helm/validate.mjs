// Validates every object of a rendered chart (helm template output, YAML
// documents) against the Kubernetes OpenAPI schemas, through the object
// models of kubernetes-models (and @kubernetes-models/prometheus-operator for
// ServiceMonitor and PrometheusRule), then checks what Trail's chart must
// hold: probes, ports, security settings, the grace period and the rolling
// checksum. Prints one line per object; exits 1 naming each problem.
//
//   node validate.mjs RENDERED.yaml SHUTDOWN_DEADLINE_S
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { pathToFileURL } from "node:url";

// The models are ES modules only: imported from the tools' node_modules by path.
const modules = process.env.TRAIL_TOOLS_NODE + "/node_modules/";
const require = createRequire(modules);
const yaml = require("js-yaml");
const load = async (path, name) => (await import(pathToFileURL(modules + path + ".js").href))[name];
const k8s = (path) => load("kubernetes-models/" + path, path.split("/").pop());
const prom = (path) => load("@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/" + path, path);
const models = {
  "v1/ConfigMap": await k8s("v1/ConfigMap"),
  "v1/Secret": await k8s("v1/Secret"),
  "v1/Service": await k8s("v1/Service"),
  "apps/v1/Deployment": await k8s("apps/v1/Deployment"),
  "batch/v1/Job": await k8s("batch/v1/Job"),
  "policy/v1/PodDisruptionBudget": await k8s("policy/v1/PodDisruptionBudget"),
  "autoscaling/v2/HorizontalPodAutoscaler": await k8s("autoscaling/v2/HorizontalPodAutoscaler"),
  "networking.k8s.io/v1/NetworkPolicy": await k8s("networking.k8s.io/v1/NetworkPolicy"),
  "monitoring.coreos.com/v1/ServiceMonitor": await prom("ServiceMonitor"),
  "monitoring.coreos.com/v1/PrometheusRule": await prom("PrometheusRule"),
};

const [file, deadline] = process.argv.slice(2);
const docs = yaml.loadAll(readFileSync(file, "utf8")).filter((d) => d);
const problems = [];
const kinds = new Set();
for (const doc of docs) {
  const key = `${doc.apiVersion}/${doc.kind}`;
  const Model = models[key];
  const name = `${doc.kind} ${doc.metadata?.name}`;
  kinds.add(doc.kind);
  if (!Model) {
    problems.push(`${name}: no schema known for ${key}`);
    continue;
  }
  try {
    new Model(doc).validate();
    console.log(`valid: ${name} (${key})`);
  } catch (e) {
    problems.push(`${name}: ${e.message}`);
  }
}

// What the chart must hold, beyond the schemas.
const deployment = docs.find((d) => d.kind === "Deployment");
if (!deployment) problems.push("no Deployment");
else {
  const pod = deployment.spec.template.spec;
  const c = pod.containers[0];
  const expect = (ok, what) => { if (!ok) problems.push(`Deployment: ${what}`); };
  expect(c.livenessProbe?.httpGet?.path === "/healthz", "liveness probe on /healthz");
  expect(c.readinessProbe?.httpGet?.path === "/readyz", "readiness probe on /readyz");
  expect(c.startupProbe?.httpGet, "a startup probe");
  const ports = Object.fromEntries((c.ports || []).map((p) => [p.name, p.containerPort]));
  expect(ports.http && ports.metrics, "http and metrics ports");
  expect(c.resources?.requests && c.resources?.limits, "resources");
  expect(pod.securityContext?.runAsNonRoot === true, "runAsNonRoot");
  expect(c.securityContext?.readOnlyRootFilesystem === true, "a read-only root filesystem");
  expect(c.securityContext?.allowPrivilegeEscalation === false, "no privilege escalation");
  expect((c.securityContext?.capabilities?.drop || []).includes("ALL"), "capabilities dropped");
  expect(pod.terminationGracePeriodSeconds > Number(deadline),
         `terminationGracePeriodSeconds (${pod.terminationGracePeriodSeconds}) longer than the shutdown deadline (${deadline})`);
  expect(/^[0-9a-f]{64}$/.test(deployment.spec.template.metadata.annotations?.["checksum/config"] || ""),
         "a checksum of the configuration in the pod annotations");
  expect((pod.topologySpreadConstraints || []).length > 0, "topology spread constraints");
}
const service = docs.find((d) => d.kind === "Service");
if (service && !["http", "metrics"].every((n) => service.spec.ports.some((p) => p.name === n)))
  problems.push("Service: http and metrics ports");
const job = docs.find((d) => d.kind === "Job");
if (job && !/pre-install/.test(job.metadata.annotations?.["helm.sh/hook"] || ""))
  problems.push("Job: a pre-install/pre-upgrade hook");
for (const p of problems) console.log(`PROBLEM: ${p}`);
console.log(`validate: ${docs.length} objects (${[...kinds].sort().join(", ")}), ${problems.length} problems`);
process.exit(problems.length ? 1 : 0);
