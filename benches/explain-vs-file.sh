#!/usr/bin/env bash
# Benchmark: `binfmtd explain --recursive DIR` against `file` over the same regular files
# (find -type f: symlinks not followed, as explain walks), in the same run.
#
# Usage: benches/explain-vs-file.sh [DIR] [ROUNDS]   (defaults: /usr, 2)
# Each round times both tools once, alternating, so page-cache state and machine load hit
# both alike; round 1 also warms the cache. Prints one line per round and the ratio of the
# best times (file / explain: above 1 means explain is faster).
set -euo pipefail
cd "$(dirname "$0")/.."
dir=${1:-/usr}
rounds=${2:-2}
bin=target/release/binfmtd
[ -x "$bin" ] || cargo build --release --bin binfmtd >&2

files=$(find "$dir" -type f | wc -l)
echo "tree: $dir, $files regular files; $(nproc) CPUs; $(file --version | head -1)"

now() { date +%s.%N; }
calc() { awk "BEGIN { print $1 }"; }
best_explain="" best_file=""
for r in $(seq 1 "$rounds"); do
    t0=$(now)
    # Exit 1 is expected (some files cannot run here); anything else is a failure.
    "$bin" explain --recursive "$dir" > /tmp/explain-bench.out || [ $? -eq 1 ]
    t1=$(now)
    find "$dir" -type f -print0 | xargs -0 file > /tmp/file-bench.out
    t2=$(now)
    e=$(calc "$t1 - $t0") f=$(calc "$t2 - $t1")
    reported=$(tail -1 /tmp/explain-bench.out)
    echo "round $r: explain ${e} s ($reported); file ${f} s ($(wc -l < /tmp/file-bench.out) lines)"
    if [ -z "$best_explain" ] || [ "$(calc "$e < $best_explain")" = 1 ]; then best_explain=$e; fi
    if [ -z "$best_file" ] || [ "$(calc "$f < $best_file")" = 1 ]; then best_file=$f; fi
done
rm -f /tmp/explain-bench.out /tmp/file-bench.out
echo "best: explain ${best_explain} s, file ${best_file} s, ratio file/explain = $(awk "BEGIN { printf \"%.1f\", $best_file / $best_explain }")"
