#!/usr/bin/env python3
"""Lines up the latency tail with what the servers were doing, second by second.

  load-tests/tail-probe.sh [RATE] [SECONDS]      (the wrapper starts the stack and traild)

While trail-loadgen publishes at a fixed rate (its per-second CSV gives the
p99 of each second), this samples every 0.25 s:
  - CPU of traild, nats-server and PostgreSQL (postmaster and all its
    children, reaped ones included), in % of one core;
  - PostgreSQL: checkpoints started (timed + requested), WAL bytes written,
    running autovacuum / autoanalyze workers and the table each one is on;
  - the kernel's dirty and under-writeback page cache (/proc/meminfo): the
    flusher threads wake every vm.dirty_writeback_centisecs (5 s by default);
  - traild's COMMITs slower than 25 ms (from trail_commit_seconds, --metrics);
and prints one row per second: the loadgen columns, then each process's
peak 0.25 s CPU in that second, WAL MB/s, checkpoint and autovacuum activity.
The slow seconds (p99 over --slow-ms) are marked, and a closing summary says
which activity the slow seconds coincided with, against how often that
activity happened in the fast seconds.
"""
import argparse
import csv
import os
import subprocess
import threading
import time
import urllib.request

TCK = os.sysconf("SC_CLK_TCK")


def proc_cpu(pid, tree):
    """CPU seconds of pid (and, with tree, of its children, reaped included)."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            data = f.read()
    except OSError:
        return 0.0
    fields = data[data.rindex(")") + 2:].split()
    total = int(fields[11]) + int(fields[12])  # utime, stime
    if tree:
        total += int(fields[13]) + int(fields[14])  # cutime, cstime (reaped children)
        try:
            children = open("/proc/%d/task/%d/children" % (pid, pid)).read().split()
        except OSError:
            children = []
        for c in children:
            try:
                with open("/proc/%s/stat" % c) as f:
                    cd = f.read()
                cf = cd[cd.rindex(")") + 2:].split()
                total += int(cf[11]) + int(cf[12])
            except OSError:
                pass
    return total / TCK


def psql(dsn, sql):
    out = subprocess.run(["psql", "-XAtq", "-F", "\t", "-d", dsn, "-c", sql], capture_output=True, text=True)
    return out.stdout.strip()


def meminfo_kb(keys=("Dirty", "Writeback")):
    out = {}
    for line in open("/proc/meminfo"):
        k, v = line.split(":", 1)
        if k in keys:
            out[k] = int(v.split()[0])
    return out


def commit_counts(url):
    """(COMMITs, COMMITs within 25 ms) from traild's trail_commit_seconds histogram."""
    if not url:
        return None
    try:
        body = urllib.request.urlopen(url, timeout=1).read().decode()
    except OSError:
        return None
    total = fast = None
    for line in body.splitlines():
        if line.startswith("trail_commit_seconds_count"):
            total = float(line.split()[-1])
        elif line.startswith('trail_commit_seconds_bucket{le="0.025"}'):
            fast = float(line.split()[-1])
    return (total, fast) if total is not None and fast is not None else None


class Sampler(threading.Thread):
    def __init__(self, pids, dsn, every, metrics_url):
        super().__init__(daemon=True)
        self.pids, self.dsn, self.every, self.metrics_url = pids, dsn, every, metrics_url
        # (t, {name: cpu_s}, ckpts, wal_bytes, [autovacuum targets], meminfo, commit counts)
        self.samples = []
        self.stop = False

    def pg_state(self):
        row = psql(self.dsn, "SELECT (SELECT checkpoints_timed + checkpoints_req FROM pg_stat_bgwriter), "
                             "pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0')::bigint, "
                             "(SELECT string_agg(coalesce(substring(query from '(?:VACUUM|ANALYZE)[^;]*'), backend_type), '|') "
                             " FROM pg_stat_activity WHERE backend_type = 'autovacuum worker')")
        parts = (row.split("\t") + ["", "", ""])[:3]
        try:
            return int(parts[0]), int(parts[1]), [p for p in parts[2].split("|") if p]
        except ValueError:
            return None, None, []

    def run(self):
        while not self.stop:
            t = time.time()
            cpu = {name: proc_cpu(pid, name == "pg") for name, pid in self.pids.items()}
            ck, wal, av = self.pg_state()
            self.samples.append((t, cpu, ck, wal, av, meminfo_kb(), commit_counts(self.metrics_url)))
            time.sleep(max(0.0, self.every - (time.time() - t)))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--loadgen-csv", required=True)
    ap.add_argument("--dsn", required=True)
    ap.add_argument("--pid", action="append", default=[], help="NAME=PID (traild, nats, pg)")
    ap.add_argument("--every", type=float, default=0.25)
    ap.add_argument("--slow-ms", type=float, default=100.0)
    ap.add_argument("--out", help="also write the joined rows here (CSV)")
    ap.add_argument("--metrics", help="traild's /metrics URL (slow COMMITs per second)")
    ap.add_argument("loadgen", nargs=argparse.REMAINDER, help="-- the trail-loadgen command line")
    a = ap.parse_args()
    pids = dict((kv.split("=")[0], int(kv.split("=")[1])) for kv in a.pid)
    cmd = a.loadgen[1:] if a.loadgen and a.loadgen[0] == "--" else a.loadgen

    s = Sampler(pids, a.dsn, a.every, a.metrics)
    s.start()
    start = time.time()
    rc = subprocess.call(cmd)
    s.stop = True
    s.join()

    rows = list(csv.DictReader(open(a.loadgen_csv)))
    samples = s.samples
    out_rows = []
    names = sorted(pids)
    print("%4s %7s %6s %7s %7s | %s | %6s %4s %7s %7s %5s %s" % (
        "s", "commit", "infl", "p50", "p99", " ".join("%6s" % (n + "%") for n in names), "WALMB", "ckpt",
        "dirtyMB", "wbackMB", "slowC", "autovacuum"))
    for r in rows:
        sec = float(r["elapsed_s"])
        lo, hi = start + sec - 1.0, start + sec
        win = [x for x in samples if lo <= x[0] < hi]
        prev = [x for x in samples if x[0] < lo]
        peak = {}
        for n in names:
            best = 0.0
            seq = (prev[-1:] if prev else []) + win
            for i in range(1, len(seq)):
                dt = seq[i][0] - seq[i - 1][0]
                if dt > 0:
                    best = max(best, 100.0 * (seq[i][1][n] - seq[i - 1][1][n]) / dt)
            peak[n] = best
        ck = wal = 0
        av = set()
        if win and prev:
            if win[-1][2] is not None and prev[-1][2] is not None:
                ck = win[-1][2] - prev[-1][2]
                wal = (win[-1][3] - prev[-1][3]) / 1e6
        for x in win:
            av.update(x[4])
        dirty = max((x[5].get("Dirty", 0) for x in win), default=0) / 1024
        wback = max((x[5].get("Writeback", 0) for x in win), default=0) / 1024
        slow_commits = 0
        if win and prev and win[-1][6] and prev[-1][6]:
            slow_commits = int((win[-1][6][0] - prev[-1][6][0]) - (win[-1][6][1] - prev[-1][6][1]))
        p99 = float(r["p99_ms"] or 0)
        slow = p99 > a.slow_ms
        out_rows.append(dict(second=sec, committed=r["committed_eps"], in_flight=r["in_flight"], p50=r["p50_ms"],
                             p99=p99, slow=slow, wal_mb=round(wal, 1), checkpoints=ck, dirty_mb=round(dirty),
                             writeback_mb=round(wback, 1), slow_commits=slow_commits, autovacuum=";".join(sorted(av)),
                             **{"cpu_" + n: round(peak[n]) for n in names}))
        print("%4.0f %7s %6s %7s %7.1f | %s | %6.1f %4d %7.0f %7.1f %5d %s%s" % (
            sec, r["committed_eps"], r["in_flight"], r["p50_ms"], p99, " ".join("%6.0f" % peak[n] for n in names),
            wal, ck, dirty, wback, slow_commits, ";".join(sorted(av))[:50], "   <-- slow" if slow else ""))
    if a.out and out_rows:
        with open(a.out, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=list(out_rows[0].keys()))
            w.writeheader()
            w.writerows(out_rows)

    slow = [r for r in out_rows if r["slow"]]
    fast = [r for r in out_rows if not r["slow"]]

    def share(rs, pred):
        return "%d/%d" % (sum(1 for r in rs if pred(r)), len(rs))
    print("\nslow seconds (p99 > %.0f ms): %d of %d" % (a.slow_ms, len(slow), len(out_rows)))
    print("  with an autovacuum worker running: slow %s, others %s" % (
        share(slow, lambda r: r["autovacuum"]), share(fast, lambda r: r["autovacuum"])))
    print("  with a checkpoint starting:        slow %s, others %s" % (
        share(slow, lambda r: r["checkpoints"] > 0), share(fast, lambda r: r["checkpoints"] > 0)))
    print("  with a COMMIT slower than 25 ms:   slow %s, others %s" % (
        share(slow, lambda r: r["slow_commits"] > 0), share(fast, lambda r: r["slow_commits"] > 0)))
    print("  with >1 MB under writeback:        slow %s, others %s" % (
        share(slow, lambda r: r["writeback_mb"] > 1), share(fast, lambda r: r["writeback_mb"] > 1)))
    for n in names:
        print("  with %s above 90%% of a core:    slow %s, others %s" % (
            n, share(slow, lambda r: r["cpu_" + n] > 90), share(fast, lambda r: r["cpu_" + n] > 90)))
    return rc


if __name__ == "__main__":
    raise SystemExit(main())
