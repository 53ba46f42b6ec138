#!/usr/bin/env bash
# Turns a trail-loadgen CSV time series into a PNG: throughput (published and
# committed events/s, with the target rate) above, latency (p50, p90, p99,
# max of each second) below.
#
#   load-tests/plot.sh run.csv run.png ["title"]
#
# Needs gnuplot; as root it installs Debian's gnuplot-nox when missing.
set -euo pipefail
CSV=${1:?usage: plot.sh SERIES.csv OUT.png [TITLE]}
PNG=${2:?usage: plot.sh SERIES.csv OUT.png [TITLE]}
TITLE=${3:-trail-loadgen $(basename "$CSV" .csv)}
[ -s "$CSV" ] || { echo "plot.sh: $CSV is empty or missing" >&2; exit 1; }
if ! command -v gnuplot >/dev/null; then
  if [ "$(id -u)" = 0 ]; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q gnuplot-nox >/dev/null
  else
    echo "plot.sh: needs gnuplot (apt-get install gnuplot-nox)" >&2
    exit 1
  fi
fi
# Columns: elapsed_s,target_eps,published_eps,committed_eps,in_flight,p50_ms,p90_ms,p99_ms,max_ms,dead_lettered
gnuplot <<EOF
set terminal pngcairo size 1200,800 font "DejaVu Sans,11"
set output "$PNG"
set datafile separator ","
set key autotitle columnhead top left
set grid
set multiplot layout 2,1 title "$TITLE"
set ylabel "events/s"
set format y "%.1s%c"
set yrange [0:*]
plot "$CSV" using 1:2 with lines dashtype 2 lw 1.5 lc rgb "#888888" title "target", \
     "" using 1:3 with lines lw 2 lc rgb "#1f77b4" title "published", \
     "" using 1:4 with lines lw 2 lc rgb "#2ca02c" title "committed"
set xlabel "seconds"
set ylabel "publish -> committed latency (ms)"
set format y "%g"
set logscale y
set yrange [*:*]
plot "$CSV" using 1:(\$6 > 0 ? \$6 : 1/0) with lines lw 2 lc rgb "#2ca02c" title "p50", \
     "" using 1:(\$7 > 0 ? \$7 : 1/0) with lines lw 1.5 lc rgb "#ff7f0e" title "p90", \
     "" using 1:(\$8 > 0 ? \$8 : 1/0) with lines lw 2 lc rgb "#d62728" title "p99", \
     "" using 1:(\$9 > 0 ? \$9 : 1/0) with points pt 7 ps 0.4 lc rgb "#555555" title "max"
unset multiplot
EOF
echo "plot.sh: wrote $PNG" >&2
