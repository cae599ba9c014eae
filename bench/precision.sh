#!/bin/sh
# Mixed precision on the CPU: the quick scale's RSA step (both online passes kept, as the quick scale runs) in fp32
# and bf16, ours (bf16 with oneDNN's bf16 convolutions, and with fp32 convolutions on the rounded values) against
# PyTorch fp32 and CPU autocast (bf16 + channels_last) with glibc's allocator tuned, same machine, same threads, in
# this one command. Our bf16 has CUDA autocast's numerics (trainer/core/precision.h); PyTorch's CPU autocast keeps
# other ops in bf16 too, so the two are each precision's fastest honest setting, not the same arithmetic.
# usage: bench/precision.sh [BATCH]
set -eu
cd "$(dirname "$0")/.."
. bench/peer.sh
b=${1:-256}
make -s "$BUILD/bench/step_bench"
peer_header
ours32=$("$BUILD/bench/step_bench" cpu quick rsa "$b" 15 keep2 2>/dev/null)
ours16=$("$BUILD/bench/step_bench" cpu quick rsa "$b" 15 keep2 bf16 2>/dev/null)
ours16f=$("$BUILD/bench/step_bench" cpu quick rsa "$b" 15 keep2 bf16 fp32conv 2>/dev/null)
torch32=$(GLIBC_TUNABLES=$TUNED /usr/bin/python3 bench/step_bench.py cpu quick rsa "$b" 15 fp32)
torch16=$(GLIBC_TUNABLES=$TUNED /usr/bin/python3 bench/step_bench.py cpu quick rsa "$b" 15 amp)
printf '%s\n' "$ours32" "$ours16" "$ours16f" "$torch32" "$torch16"
echo "$ours32" "$ours16" "$ours16f" "$torch32" "$torch16" | awk -v b="$b" '{
    for (i = 1; i <= NF; i++) if ($i == "img/s") v[++k] = $(i - 1); else if ($i == "RSS") r[++j] = $(i + 1)
    printf "ratio   quick rsa step, batch %d, bf16: %.2fx throughput of PyTorch autocast (tuned), %.2fx its peak RSS\n", b, v[2] / v[5], r[2] / r[5]
    printf "ratio   quick rsa step, batch %d: our bf16 is %.2fx our fp32 (%.2fx with fp32 convolutions); PyTorch autocast is %.2fx its fp32\n", b, v[2] / v[1], v[3] / v[1], v[5] / v[4] }'
