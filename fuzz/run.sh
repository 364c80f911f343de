#!/usr/bin/env bash
# Runs every fuzz target for SECONDS (default 600) each, JOBS at a time (default 2), with the
# nightly toolchain, and writes each run's last status line to fuzz/results/<target>.txt.
# Usage: fuzz/run.sh [SECONDS] [JOBS]
set -euo pipefail
cd "$(dirname "$0")"
secs="${1:-600}"
jobs="${2:-2}"
mkdir -p results
cargo +nightly fuzz build -O 2>&1 | tail -n 3
run() {
  local t="$1"
  mkdir -p "corpus/$t"
  # A scratch copy of the corpus receives the new inputs; the committed seeds stay small.
  rm -rf "target/corpus-$t" && mkdir -p "target/corpus-$t"
  cargo +nightly fuzz run -O "$t" "target/corpus-$t" "corpus/$t" -- \
    -max_total_time="$secs" -max_len=65536 -rss_limit_mb=2048 -print_final_stats=1 \
    >"results/$t.log" 2>&1 || echo "exit $?" >>"results/$t.log"
  {
    echo "target: $t"
    echo "seconds: $secs"
    grep -E '^stat::number_of_executed_units|^stat::peak_rss_mb|^#[0-9]+ +DONE' "results/$t.log" | tail -n 3
    grep -E 'ERROR|panicked|deadly signal|exit [0-9]' "results/$t.log" | head -n 5 || true
  } >"results/$t.txt"
}
targets=(soap_envelope oauth_form ip_range sf_id token_split)
for ((i = 0; i < ${#targets[@]}; i += jobs)); do
  for t in "${targets[@]:i:jobs}"; do run "$t" & done
  wait
done
cat results/*.txt
