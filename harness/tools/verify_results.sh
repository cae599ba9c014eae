#!/bin/sh
# Reruns committed runs into a scratch store and compares their numbers with the committed ones, bit for bit: every
# per-step and per-epoch metric (without the timing columns), the kNN and linear-evaluation results. The same machine
# kind and thread count are needed (REPRODUCE.md, Guarantees: oneDNN's weight-gradient reductions depend on them):
# it refuses runs made with different thread counts and says so when the runs' CPU or oneDNN ISA is not this one's.
# usage: harness/tools/verify_results.sh RESULTS EXPERIMENT SCALE SEEDS [ONLY]
#   e.g. harness/tools/verify_results.sh results/quick experiments/table1.lua quick 3 "decaying"
# VERIFY_SET=key=value reruns with that setting (--set): a setting that is not part of the run id must not change
# a bit, e.g. VERIFY_SET=saved_16bit=true on the bf16 runs. VERIFY_LAUNCH="mpirun -np 2" reruns runs made by
# that many processes (the world size is part of the run id, so the launch must be the committed runs' own).
# RSA_BIN names the rsa program (default bin/rsa). Exit status: 0 all identical, 1 a run differs or failed, 2 usage
# or a selection that cannot be rerun as made.
set -eu
cd "$(dirname "$0")/../.."
[ $# -ge 4 ] || { echo "usage: $0 RESULTS EXPERIMENT SCALE SEEDS [ONLY]" >&2; exit 2; }
results=$1 exp=$2 scale=$3 seeds=$4 only=${5:-}
rsa=${RSA_BIN:-bin/rsa}
# the thread count of the runs being rerun: a store can hold runs made with different counts (Table 3's two processes
# with one thread each beside Table 1's one process with two)
ids=$(${VERIFY_LAUNCH:-} "$rsa" list "$exp" --scale "$scale" --seeds "$seeds" --results "$results" ${only:+--only "$only"} \
    2>/dev/null | sed -n 's/^ *\[[0-9]*\/[0-9]*\] done  *\([^ ]*\).*/\1/p' | sort -u)
threads=$(for id in $ids; do sed -n 's/^compute_threads = //p' "$results/runs/$id/provenance.txt"; done | sort -u)
if [ "$(echo $threads | wc -w)" -gt 1 ]; then
    echo "the selected runs were made with different thread counts ($(echo $threads)): narrow them with ONLY" >&2
    exit 2
fi
# the machine the runs were made on against this one (provenance's cpu, cpu_vendor and cpu_isa lines, older runs have
# only cpu; and a cuda run's gpu line, the card's name: cuDNN's choices and sums are the card's): a rerun elsewhere is
# expected to differ, and the reader should know that before reading DIFF
machine='^(cpu|cpu_vendor|cpu_isa|gpu) = '
card_name() { sed -E 's/^(gpu = [^(]*[^( ]) *\(.*$/\1/'; } # which device, its memory and driver aside
here=$("$rsa" version | grep -E "$machine" | card_name || true)
theirs=$(for id in $ids; do grep -E "$machine" "$results/runs/$id/provenance.txt" || true; done | card_name | sort -u)
elsewhere=$(printf '%s\n' "$theirs" | grep -v -x -F "$here" | grep . || true)
if [ -n "$elsewhere" ]; then
    echo "note: the selected runs were made on another machine kind than this one:"
    printf '%s\n' "$elsewhere" | sed 's/^/  theirs: /'
    printf '%s\n' "$here" | sed 's/^/  here:   /'
    echo "  their bits are kept only on the kind that made them (REPRODUCE.md, Guarantees): a DIFF below may be the machine"
fi
tmp=$(mktemp -d "${TMPDIR:-/tmp}/rsa-verify.XXXXXX")
echo "rerunning into $tmp with ${threads:-default} compute threads"
${VERIFY_LAUNCH:-} "$rsa" run "$exp" --scale "$scale" --seeds "$seeds" --results "$tmp" ${threads:+--threads $threads} \
    ${only:+--only "$only"} ${VERIFY_SET:+--set "$VERIFY_SET"} >"$tmp/run.log" 2>&1 || { echo "rsa run failed: $tmp/run.log"; exit 1; }
same=0 differ=0
for d in "$tmp"/runs/*/; do
    id=$(basename "$d") ref="$results/runs/$id"
    if [ ! -d "$ref" ]; then echo "new   $id (not in $results)"; differ=$((differ + 1)); continue; fi
    ok=1
    [ "$(cut -f1-8 "$ref/steps.tsv")" = "$(cut -f1-8 "$d/steps.tsv")" ] || ok=0
    [ "$(cut -f1-5 "$ref/epochs.tsv")" = "$(cut -f1-5 "$d/epochs.tsv")" ] || ok=0
    [ "$(grep -v -e '^train_seconds' -e '^wall' "$ref/result.txt")" = \
      "$(grep -v -e '^train_seconds' -e '^wall' "$d/result.txt")" ] || ok=0
    if [ -f "$ref/linear.tsv" ]; then cmp -s "$ref/linear.tsv" "$d/linear.tsv" || ok=0; fi
    if [ $ok = 1 ]; then echo "same  $id"; same=$((same + 1)); else echo "DIFF  $id"; differ=$((differ + 1)); fi
done
echo "$same runs identical, $differ differ (scratch store: $tmp)"
[ "$differ" = 0 ] || [ -z "$elsewhere" ] || echo "(made on another machine kind: see the note above)"
[ $differ = 0 ]
