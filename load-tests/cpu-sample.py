#!/usr/bin/env python3
"""Samples the CPU use of processes every interval, to line up latency spikes
in a trail-loadgen CSV with bursts of work in one process.

  load-tests/cpu-sample.py SECONDS NAME=PID [NAME=PID ...] [--every 0.2] [--tree NAME]

Prints one line per interval: elapsed seconds and each process's use in
percent of one core. A name given with --tree counts the process and all its
children, live and reaped (use it for PostgreSQL's postmaster).
"""
import argparse
import os
import time

TCK = os.sysconf("SC_CLK_TCK")


def stat_fields(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            data = f.read()
    except OSError:
        return None
    return data[data.rindex(")") + 2:].split()


def cpu(pid, tree):
    f = stat_fields(pid)
    if f is None:
        return 0
    total = int(f[11]) + int(f[12])
    if not tree:
        return total
    total += int(f[13]) + int(f[14])  # reaped children
    for d in os.listdir("/proc"):
        if d.isdigit():
            c = stat_fields(int(d))
            if c is not None and int(c[1]) == pid:
                total += int(c[11]) + int(c[12])
    return total


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("seconds", type=float)
    ap.add_argument("procs", nargs="+", help="NAME=PID")
    ap.add_argument("--every", type=float, default=0.2)
    ap.add_argument("--tree", action="append", default=[])
    a = ap.parse_args()
    procs = [(n, int(p)) for n, p in (x.split("=", 1) for x in a.procs)]
    t0 = time.monotonic()
    prev = {n: cpu(p, n in a.tree) for n, p in procs}
    while time.monotonic() - t0 < a.seconds:
        time.sleep(a.every)
        cur = {n: cpu(p, n in a.tree) for n, p in procs}
        print("%6.1f  " % (time.monotonic() - t0) +
              "  ".join("%s %4.0f%%" % (n, (cur[n] - prev[n]) * 100.0 / TCK / a.every) for n, _ in procs),
              flush=True)
        prev = cur


if __name__ == "__main__":
    main()
