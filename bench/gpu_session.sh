#!/bin/sh
# Everything a session lent a GPU machine should run, in one command (its device time is short): the card, the
# CUDA build, `make test-gpu`, then the benchmarks REPRODUCE.md records, ours and PyTorch's on the same card in
# this one command: the RSA step at ResNet-50 (batch 256, bf16 with tensor-core convolutions, the same with fp32
# convolutions, TF32) against PyTorch AMP and TF32, and the ResNet-18-CIFAR RSA step likewise. Each step has a time
# limit so that a hang costs minutes, not the session. Output: $OUT/gpu-session.log (the device tool brings $OUT
# back), or ./gpu-out without $OUT.
#
# Packages the device image may lack (oneDNN, Lua, TurboJPEG headers and libraries): download them here once,
#   mkdir -p .debs && (cd .debs && apt-get download libdnnl-dev libdnnl2 liblua5.4-dev liblua5.4-0 \
#       libturbojpeg0-dev libturbojpeg0)
# (.gitignore keeps .debs/ out of git) and name it in the run's carry; they are unpacked before the build.
# usage (device run): sh bench/gpu_session.sh      [JOBS=16]
set -u
cd "$(dirname "$0")/.."
out=${OUT:-gpu-out}
mkdir -p "$out"
log="$out/gpu-session.log"
: >"$log"
say() { echo "$@" | tee -a "$log"; }
step() { # step SECONDS DESCRIPTION COMMAND...: runs with a limit, logs, never stops the script
    limit=$1 what=$2
    shift 2
    say "== $what"
    start=$(date +%s)
    timeout "$limit" "$@" >>"$log" 2>&1
    rc=$?
    say "   rc $rc after $(($(date +%s) - start)) s"
}
say "== card"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader >>"$log" 2>&1 || say "no nvidia-smi"
py=/usr/bin/python3 # the python that has PyTorch: Debian's here, maybe another on the GPU machine's image
"$py" -c 'import torch' 2>/dev/null || py=python3
"$py" -c 'import torch; print("PyTorch", torch.__version__, "CUDA", torch.version.cuda)' >>"$log" 2>&1
if [ -d .debs ]; then
    for f in .debs/*.deb; do dpkg -x "$f" /; done
    ldconfig
    say "unpacked $(ls .debs | wc -l) packages from .debs"
fi
jobs=${JOBS:-$(nproc)}
step 300 "build (make CUDA=1 MPI=0 -j$jobs)" make CUDA=1 MPI=0 -j"$jobs" all tests-build build/cuda/bench/step_bench
step 360 "make test-gpu" make CUDA=1 MPI=0 test-gpu
sb=build/cuda/bench/step_bench
for run in "r50 rsa 256 5 bf16 fastest" "r50 rsa 256 5 bf16 fastest fp32conv" "r50 rsa 256 5 tf32 fastest" \
           "r18c rsa 256 10 bf16 fastest" "r18c rsa 256 10 tf32 fastest"; do
    step 120 "ours: step_bench cuda $run" $sb cuda $run
done
for run in "r50 rsa 256 5 amp" "r50 rsa 256 5 tf32" "r18c rsa 256 10 amp" "r18c rsa 256 10 tf32"; do
    step 120 "PyTorch: step_bench.py cuda $run" "$py" bench/step_bench.py cuda $run
done
say "== summary"
grep -E '^(ours|torch) |^  note: |passed, .* failed|^not ok|NO GPU|^   rc |^== [a-zP]' "$log" | tee "$out/summary.txt"
