#!/usr/bin/env python3
"""Trail's benchmark, in one sitting on one stack (driven by load-tests/bench.sh).

1. Ceilings: JetStream publish (B1) and pull-fetch-and-ack (B2) with the shared
   harness's natsbench; raw COPY of Trail's own rows into Trail's own table
   (its indexes and triggers), 1 and 2 streams (A1-trail, A2-trail).
2. Trail end to end: drain of N pre-published events (T1); sustained rate with
   concurrent publishing (closed-loop trail-loadgen); latency at 50% and 90%
   of that rate; one ramp run for the plot.
3. The reference peer (P1) on the same data.

Every figure is the median of RUNS runs. CPU seconds per 1,000 events are
read from /proc for traild, nats-server's process tree and PostgreSQL's
(postmaster and children, reaped ones included). Writes BENCHMARKS.md,
docs/benchmark-ramp.png and build/bench-work/results/<stamp>/trail.json.
"""
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED = os.environ.get("SHARED_BENCH", os.path.join(ROOT, "..", "shared", "bench"))
WORK = os.path.join(ROOT, "build", "bench-work")
BIN = os.path.join(ROOT, "build", "bin")
N = int(os.environ.get("N", "1000000"))
RUNS = int(os.environ.get("RUNS", "3"))
SUSTAIN_S = int(os.environ.get("SUSTAIN_S", "60"))
LATENCY_S = int(os.environ.get("LATENCY_S", "30"))
RAMP_S = int(os.environ.get("RAMP_S", "60"))
DATA = os.environ.get("DATA", "/tmp/bench-data")
DB = "trail_bench"
CEILING_DB = "trail_ceiling"

sys.path.insert(0, os.path.join(WORK, "lib"))


def say(msg):
    print("=== " + msg, file=sys.stderr, flush=True)


def sh(cmd, check=True, capture=False, env=None, timeout=1800):
    p = subprocess.run(["bash", "-c", cmd], check=False, text=True, env=env, timeout=timeout,
                       stdout=subprocess.PIPE if capture else None, stderr=subprocess.PIPE if capture else None)
    if check and p.returncode != 0:
        raise SystemExit("bench: command failed (%d): %s\n%s" % (p.returncode, cmd, (p.stderr or "")[-2000:]))
    return p.stdout if capture else p.returncode


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def stack_env():
    out = sh("cd %s && ./stack.sh env" % WORK, capture=True)
    env = {}
    for line in out.splitlines():
        if line.startswith("export "):
            k, v = line[len("export "):].split("=", 1)
            env[k] = v
    return env


def js_api(nats_url, subject, payload=b""):
    """One JetStream API request over the NATS text protocol; returns the JSON reply."""
    host, port = nats_url.split("//", 1)[1].rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=10) as s:
        f = s.makefile("rb")
        f.readline()  # INFO
        inbox = "_INBOX.bench%d" % os.getpid()
        s.sendall(b'CONNECT {"verbose":false,"pedantic":false,"headers":false}\r\n')
        s.sendall(("SUB %s 1\r\nPUB %s %s %d\r\n" % (inbox, subject, inbox, len(payload))).encode() + payload + b"\r\n")
        while True:
            line = f.readline()
            if not line:
                raise SystemExit("bench: no reply to " + subject)
            if line.startswith(b"PING"):
                s.sendall(b"PONG\r\n")
            elif line.startswith(b"MSG"):
                size = int(line.split()[-1])
                body = f.read(size + 2)[:size]
                return json.loads(body)


class Stack:
    def __init__(self):
        self.env = stack_env()
        os.environ.update(self.env)
        self.nats_url = self.env["NATS_URL"]
        self.pg = "postgresql://postgres@127.0.0.1:%s" % self.env["PGPORT"]
        import measure  # the shared harness's CPU accounting
        self.measure = measure

    def cpu(self):
        m = self.measure
        return {"nats": m.tree_cpu(m.read_pid(self.env["NATS_PID_FILE"])),
                "pg": m.tree_cpu(m.read_pid(self.env["PG_PID_FILE"]))}

    def psql(self, sql, db="postgres", capture=False):
        return sh("psql -XAtq -v ON_ERROR_STOP=1 -d %s -c %s" % (db, sh_quote(sql)), capture=capture)

    def fresh_db(self, name):
        self.psql("DROP DATABASE IF EXISTS %s WITH (FORCE)" % name)
        self.psql("CREATE DATABASE %s" % name)
        sh("TRAIL_PG_DSN=%s/%s %s/traild migrate >/dev/null 2>&1" % (self.pg, name, BIN))

    def quiesce(self):
        self.psql("CHECKPOINT")
        for _ in range(120):
            n = self.psql("SELECT count(*) FROM pg_stat_activity WHERE backend_type='autovacuum worker'",
                          capture=True).strip()
            if n == "0":
                return
            time.sleep(1)

    def drained(self, consumer="trail-ingest"):
        out = sh("%s/natsbench info -c %s" % (WORK, consumer), check=False, capture=True) or ""
        return " num_pending=0 num_ack_pending=0 " in out

    def reset_trail(self, purge_ingest=False):
        """Fresh database, no consumer, no committed stream; optionally an empty AUDIT stream."""
        sh("%s/natsbench delete-consumer -c trail-ingest >/dev/null 2>&1" % WORK, check=False)
        js_api(self.nats_url, "$JS.API.STREAM.DELETE.AUDIT_COMMITTED")
        if purge_ingest:
            js_api(self.nats_url, "$JS.API.STREAM.PURGE.AUDIT")
        self.fresh_db(DB)
        self.quiesce()


def sh_quote(s):
    return "'" + s.replace("'", "'\"'\"'") + "'"


def proc_cpu(pid):
    with open("/proc/%d/stat" % pid) as f:
        data = f.read()
    fields = data[data.rindex(")") + 2:].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def peak_rss(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return 0


class Traild:
    def __init__(self, stack, log):
        self.stack = stack
        self.metrics_port = free_port()
        env = dict(os.environ)
        env.update({"TRAIL_NATS_URL": stack.nats_url, "TRAIL_PG_DSN": "%s/%s" % (stack.pg, DB),
                    "TRAIL_HTTP_ADDR": "127.0.0.1:%d" % free_port(),
                    "TRAIL_METRICS_ADDR": "127.0.0.1:%d" % self.metrics_port, "TRAIL_LOG_LEVEL": "warn"})
        self.log = open(log, "ab")
        self.p = subprocess.Popen([os.path.join(BIN, "traild"), "run"], env=env, stdout=self.log, stderr=self.log)
        self.http = env["TRAIL_HTTP_ADDR"]

    def wait_ready(self):
        for _ in range(200):
            try:
                with urllib.request.urlopen("http://%s/readyz" % self.http, timeout=1) as r:
                    if r.status == 200:
                        return
            except Exception:
                pass
            if self.p.poll() is not None:
                raise SystemExit("bench: traild exited; see " + self.log.name)
            time.sleep(0.05)
        raise SystemExit("bench: traild not ready")

    def cpu(self):
        return proc_cpu(self.p.pid)

    def rss(self):
        return peak_rss(self.p.pid)

    def stop(self):
        self.p.terminate()
        rc = self.p.wait(timeout=120)
        self.log.close()
        if rc != 0:
            raise SystemExit("bench: traild exited with %d; see %s" % (rc, self.log.name))


def med(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def per_k(cpu_s, events):
    return None if cpu_s is None or not events else cpu_s / events * 1000


# ---------------------------------------------------------------------------

def trail_drain(stack, out_dir):
    """T1: traild drains N pre-published events; fetch -> ... -> ack -> republish."""
    runs = []
    for i in range(RUNS):
        stack.reset_trail()
        c0 = stack.cpu()
        t0 = time.monotonic()
        d = Traild(stack, os.path.join(out_dir, "traild-drain-%d.log" % (i + 1)))
        while not stack.drained():
            if d.p.poll() is not None:
                raise SystemExit("bench: traild exited during the drain")
            time.sleep(0.1)
        wall = time.monotonic() - t0
        c1 = stack.cpu()
        cpu, rss = d.cpu(), d.rss()
        d.stop()
        n = int(stack.psql("SELECT count(*) FROM audit.events", db=DB, capture=True))
        if n != N:
            raise SystemExit("bench: drain stored %d rows, expected %d" % (n, N))
        r = {"wall_s": wall, "events_per_s": N / wall, "cpu_traild_s": cpu, "cpu_nats_s": c1["nats"] - c0["nats"],
             "cpu_pg_s": c1["pg"] - c0["pg"], "rss_bytes": rss}
        say("T1 run %d: %.1f s, %.0f ev/s, cores traild %.2f nats %.2f pg %.2f, peak RSS %.0f MiB" % (
            i + 1, wall, r["events_per_s"], cpu / wall, r["cpu_nats_s"] / wall, r["cpu_pg_s"] / wall, rss / 2**20))
        runs.append(r)
    return runs


def dump_rows(stack, out_dir):
    """Trail's own rows (as traild wrote them) for the COPY ceilings on Trail's table."""
    cols = stack.psql("SELECT string_agg(quote_ident(attname), ',' ORDER BY attnum) FROM pg_attribute "
                      "WHERE attrelid = 'audit.events'::regclass AND attnum > 0 AND NOT attisdropped",
                      db=DB, capture=True).strip()
    files = {}
    for name, where in (("all", "true"), ("part0", "abs(hashtext(tenant_id)) % 2 = 0"),
                        ("part1", "abs(hashtext(tenant_id)) % 2 = 1")):
        path = os.path.join(out_dir, "trail-rows.%s.copy" % name)
        stack.psql("\\copy (SELECT %s FROM audit.events WHERE %s) TO '%s'" % (cols, where, path), db=DB)
        files[name] = path
    return cols, files


def copy_ceilings(stack, cols, files, out_dir):
    res = {}
    for name, parts in (("A1-trail", ["all"]), ("A2-trail", ["part0", "part1"])):
        runs = []
        for i in range(RUNS):
            stack.fresh_db(CEILING_DB)
            stack.quiesce()
            c0 = stack.cpu()
            t0 = time.monotonic()
            procs = [subprocess.Popen(["psql", "-Xq", "-v", "ON_ERROR_STOP=1", "-d", CEILING_DB, "-c",
                                       "\\copy audit.events(%s) from '%s'" % (cols, files[p])]) for p in parts]
            if any(p.wait() != 0 for p in procs):
                raise SystemExit("bench: COPY failed")
            wall = time.monotonic() - t0
            c1 = stack.cpu()
            n = int(stack.psql("SELECT count(*) FROM audit.events", db=CEILING_DB, capture=True))
            if n != N:
                raise SystemExit("bench: ceiling stored %d rows" % n)
            runs.append({"wall_s": wall, "events_per_s": N / wall, "cpu_pg_s": c1["pg"] - c0["pg"]})
            say("%s run %d: %.1f s, %.0f rows/s" % (name, i + 1, wall, N / wall))
        res[name] = runs
    stack.psql("DROP DATABASE IF EXISTS %s WITH (FORCE)" % CEILING_DB)
    return res


def loadgen(stack, args, out_dir, tag, traild=None):
    json_path = os.path.join(out_dir, "loadgen-%s.json" % tag)
    csv_path = os.path.join(out_dir, "loadgen-%s.csv" % tag)
    c0, t0 = stack.cpu(), time.monotonic()
    d0 = traild.cpu() if traild else None
    rc = sh("%s/trail-loadgen --url %s -q --tenants 1000 --zipf 1.1 --size medium --changes-share 0.4 "
            "--json %s --csv %s %s" % (BIN, stack.nats_url, json_path, csv_path, args), check=False)
    wall = time.monotonic() - t0
    c1 = stack.cpu()
    with open(json_path) as f:
        summary = json.load(f)
    if rc != 0 or not summary["complete"]:
        raise SystemExit("bench: loadgen run %s incomplete (rc %d); see %s" % (tag, rc, json_path))
    summary["wall_s"] = wall
    summary["cpu_nats_s"] = c1["nats"] - c0["nats"]
    summary["cpu_pg_s"] = c1["pg"] - c0["pg"]
    if traild:
        summary["cpu_traild_s"] = traild.cpu() - d0
        summary["rss_bytes"] = traild.rss()
    rows = []
    with open(csv_path) as f:
        header = f.readline().strip().split(",")
        for line in f:
            rows.append(dict(zip(header, map(float, line.strip().split(",")))))
    summary["series"] = rows
    summary["csv"] = csv_path
    return summary


def sustained(stack, out_dir):
    """Closed loop: the publisher keeps at most 20,000 events un-committed, so it
    publishes exactly as fast as Trail commits; the rate is the median of the
    per-second committed counts after a 10 s warm-up."""
    runs = []
    for i in range(RUNS):
        stack.reset_trail(purge_ingest=True)
        d = Traild(stack, os.path.join(out_dir, "traild-sustained-%d.log" % (i + 1)))
        d.wait_ready()
        s = loadgen(stack, "--duration %d --max-in-flight 20000 --mode structured" % SUSTAIN_S, out_dir,
                    "sustained-%d" % (i + 1), d)
        d.stop()
        steady = [r["committed_eps"] for r in s["series"] if 10 <= r["elapsed_s"] <= SUSTAIN_S]
        s["sustained_events_per_s"] = statistics.median(steady) if steady else s["committed_events_per_s"]
        say("sustained run %d: %.0f ev/s committed while publishing (p99 %.0f ms at saturation)" % (
            i + 1, s["sustained_events_per_s"], s["latency_ms"]["p99"]))
        runs.append(s)
    return runs


def latency(stack, rate, tag, out_dir, duration, extra=""):
    runs = []
    for i in range(RUNS):
        stack.reset_trail(purge_ingest=True)
        d = Traild(stack, os.path.join(out_dir, "traild-%s-%d.log" % (tag, i + 1)))
        d.wait_ready()
        # Warm-up at the same rate, not measured: the first seconds of a fresh
        # traild create 1,000 tenant heads and meet cold caches.
        loadgen(stack, "--rate %d --duration 10 --mode structured" % rate, out_dir, "%s-%d-warmup" % (tag, i + 1), d)
        s = loadgen(stack, "--rate %d --duration %d --mode structured %s" % (rate, duration, extra), out_dir,
                    "%s-%d" % (tag, i + 1), d)
        d.stop()
        say("%s run %d at %d ev/s: p50 %.1f ms p90 %.1f ms p99 %.1f ms max %.1f ms" % (
            tag, i + 1, rate, s["latency_ms"]["p50"], s["latency_ms"]["p90"], s["latency_ms"]["p99"],
            s["latency_ms"]["max"]))
        runs.append(s)
    return runs


def shared_results(out_dir):
    res = {}
    for line in open(os.path.join(out_dir, "results.jsonl")):
        r = json.loads(line)
        res[r["name"]] = r
    return res


def fmt(v, unit=""):
    if v is None:
        return "–"
    if isinstance(v, float) and v < 100:
        return "%.2f%s" % (v, unit)
    return "{:,.0f}{}".format(v, unit)


def fmt3(v):
    return "–" if v is None else "%.3f" % v


def main():
    for tool in ("traild", "trail-loadgen"):
        if not os.access(os.path.join(BIN, tool), os.X_OK):
            raise SystemExit("bench: build first (make build): %s missing" % tool)
    if not os.path.isdir(SHARED):
        raise SystemExit("bench: the shared harness is not at %s (set SHARED_BENCH)" % SHARED)
    os.makedirs(WORK, exist_ok=True)
    sh("cd %s && find . -mindepth 1 -maxdepth 1 ! -name results ! -name node_modules -exec cp -r {} %s/ \\;"
       % (SHARED, WORK))
    started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    # Trail's recommended PostgreSQL settings, applied at initdb by the shared
    # harness to the ceilings and to Trail alike; a fresh cluster each sitting
    # so that they are in force.
    os.environ.setdefault("PG_EXTRA_CONF", os.path.join(ROOT, "config", "postgresql.conf"))
    sh("cd %s && ./stack.sh stop >/dev/null 2>&1" % WORK, check=False)
    shutil.rmtree(os.environ.get("PG_DIR", "/tmp/bench-pg"), ignore_errors=True)

    # 1. Broker ceilings and the peer, by the shared harness (B1 pre-publishes N events).
    say("shared harness: JetStream publish and pull ceilings, the Node.js peer (%d runs each)" % RUNS)
    sh("cd %s && N=%d RUNS=%d DATA=%s ONLY='B1 B2 P1' KEEP_STACK=1 ./run_all.sh" % (WORK, N, RUNS, DATA))
    out_dir = sorted(d for d in (os.path.join(WORK, "results", x) for x in os.listdir(os.path.join(WORK, "results")))
                     if os.path.isdir(d))[-1]
    stack = Stack()
    try:
        # 2. Trail draining the same N events.
        say("T1: Trail drains %d pre-published events (%d runs)" % (N, RUNS))
        drain = trail_drain(stack, out_dir)
        say("A1/A2: raw COPY of Trail's rows into Trail's table")
        cols, files = dump_rows(stack, out_dir)
        ceilings = copy_ceilings(stack, cols, files, out_dir)
        for f in files.values():
            os.remove(f)
        # 3. Concurrent publishing: sustained rate, latency at 50% and 90% of it, a ramp.
        say("sustained rate with concurrent publishing (%d s, %d runs)" % (SUSTAIN_S, RUNS))
        sus = sustained(stack, out_dir)
        s_rate = med([s["sustained_events_per_s"] for s in sus])
        lat50 = latency(stack, int(s_rate * 0.5), "latency50", out_dir, LATENCY_S)
        lat90 = latency(stack, int(s_rate * 0.9), "latency90", out_dir, LATENCY_S)
        stack.reset_trail(purge_ingest=True)
        d = Traild(stack, os.path.join(out_dir, "traild-ramp.log"))
        d.wait_ready()
        ramp = loadgen(stack, "--rate 500 --ramp-to %d --duration %d --mode mixed --drain-timeout 300" %
                       (int(s_rate * 1.3), RAMP_S), out_dir, "ramp", d)
        d.stop()
    finally:
        sh("cd %s && ./stack.sh stop" % WORK, check=False)

    png = os.path.join(ROOT, "docs", "benchmark-ramp.png")
    sh("%s/load-tests/plot.sh %s %s %s" % (ROOT, ramp["csv"], png, sh_quote(
        "Trail on 2 cores: ramp 500 -> %d events/s in %d s (mixed modes, 1,000 tenants)" % (int(s_rate * 1.3), RAMP_S))))

    shared = shared_results(out_dir)
    result = {"started": started, "n": N, "runs": RUNS, "drain": drain, "ceilings": ceilings,
              "sustained": [{k: v for k, v in s.items() if k != "series"} for s in sus],
              "latency50": [{k: v for k, v in s.items() if k != "series"} for s in lat50],
              "latency90": [{k: v for k, v in s.items() if k != "series"} for s in lat90],
              "ramp": {k: v for k, v in ramp.items() if k != "series"}, "shared": shared,
              "env": json.load(open(os.path.join(out_dir, "env.json"))),
              "pg_extra_conf": os.path.relpath(os.environ["PG_EXTRA_CONF"], ROOT)
              if os.environ.get("PG_EXTRA_CONF", "").startswith(ROOT) else os.environ.get("PG_EXTRA_CONF", "none")}
    with open(os.path.join(out_dir, "trail.json"), "w") as f:
        json.dump(result, f, indent=1)
    write_report(result, out_dir)


def write_report(r, out_dir):
    sh_ = r["shared"]
    t1 = med([x["events_per_s"] for x in r["drain"]])
    a1 = med([x["events_per_s"] for x in r["ceilings"]["A1-trail"]])
    a2 = med([x["events_per_s"] for x in r["ceilings"]["A2-trail"]])
    b1 = sh_.get("B1-pub-async-w65536", {})
    b1v = b1.get("internal_rows_per_s_median") or b1.get("rows_per_s_median")
    b2v = sh_.get("B2-pull-fetch256-ack", {}).get("rows_per_s_median")
    p1 = sh_.get("P1-peer-node", {})
    p1v = p1.get("rows_per_s_median")
    sus = med([x["sustained_events_per_s"] for x in r["sustained"]])
    env = r["env"]

    def lat(runs, q):
        return med([x["latency_ms"][q] for x in runs])

    def cpu_row(name, runs, events_key=None):
        def k(key):
            vals = []
            for x in runs:
                ev = x.get(events_key) if events_key else N
                vals.append(per_k(x.get(key), ev))
            return med(vals)
        return "| %s | %s | %s | %s |" % (name, fmt3(k("cpu_traild_s")), fmt3(k("cpu_nats_s")), fmt3(k("cpu_pg_s")))

    peer_runs = p1.get("per_run", [])
    peer_cpu = "| Node.js peer, drain (P1) | %s (node) | %s | %s |" % (
        fmt3(med([per_k(x.get("cpu_client_s"), N) for x in peer_runs])),
        fmt3(med([per_k(x.get("cpu_nats_s"), N) for x in peer_runs])),
        fmt3(med([per_k(x.get("cpu_pg_s"), N) for x in peer_runs])))
    rss = max([x["rss_bytes"] for x in r["drain"]] + [x.get("rss_bytes", 0) for x in r["sustained"]])

    lines = []
    w = lines.append
    w("# Trail benchmarks")
    w("")
    w("Generated by `load-tests/bench.sh` (N=%d, %d runs per figure, medians) on %s; do not edit by hand." % (
        r["n"], r["runs"], r["started"]))
    w("Machine: %s cores (%s), %s GiB; %s; PostgreSQL: %s; libnats %s; fsync on, synchronous_commit on." % (
        env.get("nproc"), env.get("cpu"), env.get("mem_gib"), env.get("nats_server"), env.get("postgres"),
        env.get("libnats")))
    w("PostgreSQL server settings: `%s` appended at initdb (for the COPY ceilings and Trail alike)." % (
        r.get("pg_extra_conf", "not recorded")))
    w("Dataset: `../shared/bench/gen_events.py` (%s events, %s bytes on average, 1,000 tenants with Zipf skew);"
      " the load generator's medium profile is of the same size." % ("{:,}".format(r["n"]), env.get("event_bytes_avg")))
    w("")
    w("## Headline")
    w("")
    def drain_us(key):  # CPU µs per event in the drain
        return med([x[key] / N * 1e6 for x in r["drain"]])
    traild_us, nats_us, pg_us = drain_us("cpu_traild_s"), drain_us("cpu_nats_s"), drain_us("cpu_pg_s")
    w("Targets of issue 9 (the hot-path redesign).")
    w("")
    w("| figure | value | target |")
    w("|---|---|---|")
    w("| traild CPU per event in the drain | **%.1f µs** | ≤ 10 µs |" % traild_us)
    w("| whole pipeline CPU per event in the drain (traild + nats-server + PostgreSQL) | **%.1f µs** "
      "(%.1f + %.1f + %.1f) | ≤ 52 µs |" % (traild_us + nats_us + pg_us, traild_us, nats_us, pg_us))
    w("| Trail drain ÷ 2-stream COPY ceiling (Trail's table) | **%.2f** | ≥ 0.60 |" % (t1 / a2))
    w("| Trail drain ÷ Node.js peer | **%.2f×** | ≥ 2× |" % (t1 / p1v if p1v else float("nan")))
    w("| p99 publish → committed at 50%% of the sustained rate | **%.1f ms** (p50 %.1f ms) | < 60 ms (p50 < 15 ms) |" % (
        lat(r["latency50"], "p99"), lat(r["latency50"], "p50")))
    w("| p99 publish → committed at 90%% of the sustained rate | **%.1f ms** | < 250 ms |" % lat(r["latency90"], "p99"))
    w("| traild peak RSS (drain and sustained runs) | **%.0f MiB** | < 300 MiB |" % (rss / 2**20))
    w("")
    w("## Throughput (events/s, median of %d)" % r["runs"])
    w("")
    w("| measure | median | runs |")
    w("|---|---|---|")

    def runs_text(vals):
        return ", ".join("{:,.0f}".format(v) for v in vals)
    w("| Ceiling: JetStream async publish, window 65536 (B1) | %s | %s |" % (fmt(b1v), runs_text(
        [x.get("internal_rows_per_s") or x["rows_per_s"] for x in b1.get("per_run", [])])))
    w("| Ceiling: JetStream pull, fetch 256, ack each (B2) | %s | %s |" % (fmt(b2v), runs_text(
        [x["rows_per_s"] for x in sh_.get("B2-pull-fetch256-ack", {}).get("per_run", [])])))
    w("| Ceiling: COPY of Trail's rows into Trail's table, 1 stream (A1) | %s | %s |" % (
        fmt(a1), runs_text([x["events_per_s"] for x in r["ceilings"]["A1-trail"]])))
    w("| Ceiling: COPY of Trail's rows into Trail's table, 2 streams (A2) | %s | %s |" % (
        fmt(a2), runs_text([x["events_per_s"] for x in r["ceilings"]["A2-trail"]])))
    w("| **Trail: drain of %s pre-published events (T1)** | **%s** | %s |" % (
        "{:,}".format(r["n"]), fmt(t1), runs_text([x["events_per_s"] for x in r["drain"]])))
    w("| Trail: sustained, publishing concurrently (closed loop) | %s | %s |" % (
        fmt(sus), runs_text([x["sustained_events_per_s"] for x in r["sustained"]])))
    w("| Reference peer (Node.js) drain (P1) | %s | %s |" % (fmt(p1v), runs_text(
        [x["rows_per_s"] for x in peer_runs])))
    w("")
    w("Ratios: Trail ÷ A2 = %.2f, Trail ÷ A1 = %.2f, Trail ÷ peer = %.2f, Trail sustained ÷ Trail drain = %.2f." % (
        t1 / a2, t1 / a1, t1 / p1v if p1v else float("nan"), sus / t1))
    w("")
    w("## Latency, publish → committed (ms, median of %d runs)" % r["runs"])
    w("")
    w("Measured by `trail-loadgen`: from the event's time, set when it is published, to the arrival of its"
      " committed copy on `audit.committed.<tenant>`, so the republish hop is included. Each fixed-rate run"
      " follows a 10 s warm-up at the same rate on the same traild (not measured); the saturated figure is the"
      " whole closed-loop run, where latency is the in-flight bound divided by the rate.")
    w("")
    w("| load | rate (events/s) | p50 | p90 | p99 | max |")
    w("|---|---|---|---|---|---|")
    for name, runs, share in (("50% of sustained", r["latency50"], 0.5), ("90% of sustained", r["latency90"], 0.9)):
        w("| %s | %s | %.1f | %.1f | %.1f | %.1f |" % (name, "{:,.0f}".format(sus * share), lat(runs, "p50"),
                                                   lat(runs, "p90"), lat(runs, "p99"), lat(runs, "max")))
    w("| saturated (closed loop, 20,000 in flight) | %s | %.1f | %.1f | %.1f | %.1f |" % (
        fmt(sus), lat(r["sustained"], "p50"), lat(r["sustained"], "p90"), lat(r["sustained"], "p99"),
        lat(r["sustained"], "max")))
    w("")
    w("![throughput and latency during a ramp](docs/benchmark-ramp.png)")
    w("")
    w("## CPU seconds per 1,000 events, by process")
    w("")
    w("| run | traild | nats-server | PostgreSQL |")
    w("|---|---|---|---|")
    w(cpu_row("Trail, drain (T1)", r["drain"]))
    w(cpu_row("Trail, sustained with publishing (incl. the publisher's load on nats)", r["sustained"],
              "committed_events"))
    w(peer_cpu)
    a2_pg = med([per_k(x["cpu_pg_s"], N) for x in r["ceilings"]["A2-trail"]])
    w("| raw COPY, 2 streams (A2) | – | – | %s |" % fmt3(a2_pg))
    w("")
    w("Reproduce: `load-tests/bench.sh` from a built tree (`make build`); `N=300000 RUNS=1 load-tests/bench.sh`"
      " for a quick look. Raw results: `build/bench-work/results/<stamp>/` (`trail.json`, the shared harness's"
      " `results.jsonl`, loadgen JSON and CSV per run, traild logs). What the figures mean for the next"
      " optimisation is in [docs/PERFORMANCE.md](docs/PERFORMANCE.md).")
    # The sections of load-tests/query-bench.sh and drain-bench.sh belong to
    # them: carried over as they are.
    path = os.path.join(ROOT, "BENCHMARKS.md")
    kept = ""
    if os.path.exists(path):
        old = open(path).read()
        for begin_mark, end_mark in ((QUERY_BEGIN, QUERY_END), (DRAIN_BEGIN, DRAIN_END)):
            begin, end = old.find(begin_mark), old.find(end_mark)
            if begin >= 0 and end > begin:
                kept += "\n" + old[begin:end + len(end_mark)] + "\n"
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n" + kept)
    say("wrote BENCHMARKS.md; raw results in " + out_dir)


QUERY_BEGIN = "<!-- query-bench: begin -->"
QUERY_END = "<!-- query-bench: end -->"
DRAIN_BEGIN = "<!-- drain-bench: begin -->"
DRAIN_END = "<!-- drain-bench: end -->"


if __name__ == "__main__":
    if len(sys.argv) > 2 and sys.argv[1] == "--report":
        # Re-renders BENCHMARKS.md from a sitting's saved results (trail.json).
        saved = json.load(open(sys.argv[2]))
        N = saved["n"]
        write_report(saved, os.path.dirname(sys.argv[2]))
    else:
        main()
