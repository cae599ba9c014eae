#!/bin/sh
# Whole training steps (RSA: 4 views, EMA, 2 online forward+backward, 2 target forward, SGD; BYOL: 2 views) on the
# CPU: ours against PyTorch as installed and with glibc's allocator tuned, same machine, same thread count, in this
# one command; then our RSA/BYOL time ratio (Table 7's point: RSA costs < 9 % more).
# usage: bench/step.sh ARCH BATCH...   ARCH r18c (ResNet-18 CIFAR, 32 px) or quick (the quick scale's network:
#        ResNet {1,1,1,1} of width 16, heads 256/64, 32 px; experiments/scales.lua)
#        OURS_FLAGS: more step_bench flags, e.g. keep2 (low_memory off, as the quick scale runs)
set -eu
cd "$(dirname "$0")/.."
. bench/peer.sh
ARCH=${1:-quick}
[ $# -gt 0 ] && shift
make -s "$BUILD/bench/step_bench"
peer_header
for b in ${*:-256}; do
    steps=$([ "$ARCH" = quick ] && echo 15 || echo 5)
    rsa_ours=""
    for mode in rsa byol; do
        ours=$("$BUILD/bench/step_bench" cpu "$ARCH" "$mode" "$b" "$steps" ${OURS_FLAGS:-} 2>/dev/null)
        torch=$(/usr/bin/python3 bench/step_bench.py cpu "$ARCH" "$mode" "$b" "$steps" fp32)
        tuned=$(GLIBC_TUNABLES=$TUNED /usr/bin/python3 bench/step_bench.py cpu "$ARCH" "$mode" "$b" "$steps" fp32)
        echo "$ours"; echo "$torch"; echo "$tuned"
        echo "$ours" "$torch" "$tuned" | awk -v m="$mode" -v a="$ARCH" -v b="$b" '{
            for (i = 1; i <= NF; i++) if ($i == "img/s") v[++k] = $(i - 1); else if ($i == "RSS") r[++j] = $(i + 1)
            printf "ratio   %s %-4s step, batch %d: %.2fx throughput of PyTorch (%.2fx of tuned), %.2fx its peak RSS (%.2fx of tuned)\n",
                   a, m, b, v[1] / v[2], v[1] / v[3], r[1] / r[2], r[1] / r[3] }'
        if [ "$mode" = rsa ]; then rsa_ours=$ours; else byol_ours=$ours; fi
    done
    echo "$rsa_ours" "$byol_ours" | awk -v a="$ARCH" -v b="$b" '{
        for (i = 1; i <= NF; i++) if ($i == "img/s") v[++k] = $(i - 1)
        printf "ratio   %s batch %d: our RSA step takes %.3fx the time of our BYOL step (the paper: < 1.09)\n", a, b, v[2] / v[1] }'
done
