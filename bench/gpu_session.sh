#!/bin/sh
# Everything a session lent a GPU machine should run, in one command (its device time is short): the card, the
# CUDA build, `make test-gpu`, then the benchmarks REPRODUCE.md records, ours and PyTorch's on the same card in
# this one command: the RSA step at ResNet-50 (batch 256, bf16 with tensor-core convolutions, with the weight
# gradients too on tensor cores (lowp_weight_grads), the same with fp32 convolutions, TF32) against PyTorch AMP and
# TF32, and the ResNet-18-CIFAR RSA step likewise. Each step has a time
# limit so that a hang costs minutes, not the session. Output: $OUT/gpu-session.log (the device tool brings $OUT
# back), or ./gpu-out without $OUT.
#
# One device call may run 600 s, so the whole script keeps to BUDGET seconds (default 560): each step's limit is cut
# to what is left, a step with under 20 s left is skipped (the summary says so), and the summary is rewritten after
# every step (a failed step's last line included: "why:"), so a call cut short still brings back what ran. The
# order is by what matters most: the build, the GPU tests of the backend itself, the ResNet-50 bf16 step against
# PyTorch AMP (issue 8's goal), the PyTorch parity tests on the GPU, then the other benchmarks. Every make test runs
# these step_bench settings at the quick scale on the emulated cuda backend (tests/emu/test_gpu_session.c).
#
# Packages the device image may lack (oneDNN, Lua, TurboJPEG and zlib headers and libraries): download them here once,
#   mkdir -p .debs && (cd .debs && apt-get download libdnnl-dev libdnnl2 liblua5.4-dev liblua5.4-0 \
#       libturbojpeg0-dev libturbojpeg0 zlib1g-dev zlib1g)
# (.gitignore keeps .debs/ out of git) and name it in the run's carry. They are unpacked into a folder of their own
# (DEPS_ROOT, by bench/unpack_debs.sh: dpkg-deb, else Python), not over the image's /, and the build searches it
# first (the Makefile's DEPS_ROOT; no pkg-config needed). cuDNN and NCCL come from the CUDA toolkit, else from
# PyTorch's wheels (bench/cuda_libs.sh).
# usage (device run): sh bench/gpu_session.sh      [JOBS=16]
set -u
cd "$(dirname "$0")/.."
out=${OUT:-gpu-out}
mkdir -p "$out"
log="$out/gpu-session.log"
: >"$log"
deadline=$(($(date +%s) + ${BUDGET:-560}))
say() { echo "$@" | tee -a "$log"; }
summarise() {
    grep -E '^(ours|torch) |^  note: |passed, .* failed|^not ok|NO GPU|^   (rc |why: |skipped)|^== [a-zP]' \
        "$log" >"$out/summary.txt"
}
step() { # step SECONDS DESCRIPTION COMMAND...: runs with a limit, logs, never stops the script
    limit=$1 what=$2
    shift 2
    say "== $what"
    left=$((deadline - $(date +%s)))
    if [ "$left" -lt 20 ]; then
        say "   skipped: ${left} s of the budget left"
        summarise
        return
    fi
    [ "$limit" -le "$left" ] || limit=$left
    start=$(date +%s)
    timeout "$limit" "$@" >"$out/step.out" 2>&1
    rc=$?
    cat "$out/step.out" >>"$log"
    say "   rc $rc after $(($(date +%s) - start)) s"
    # a failed step's last words in the summary too, in case the log does not come back whole
    [ "$rc" = 0 ] || say "   why: $(grep -v '^[[:space:]]*$' "$out/step.out" | tail -n 1 | cut -c1-300)"
    summarise
}
say "== card"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader >>"$log" 2>&1 || say "no nvidia-smi"
py=/usr/bin/python3 # the python that has PyTorch: Debian's here, maybe another on the GPU machine's image
"$py" -c 'import torch' 2>/dev/null || py=python3
"$py" -c 'import torch; print("PyTorch", torch.__version__, "CUDA", torch.version.cuda)' >>"$log" 2>&1
set -- CUDA=1 MPI=0 # what every make below is given
if [ -d .debs ]; then
    deps=${DEPS_ROOT:-/tmp/rsa-deps}
    rm -rf "$deps"
    say "$(sh bench/unpack_debs.sh "$deps" .debs/*.deb 2>&1)"
    set -- "$@" DEPS_ROOT="$deps"
fi
site=$("$py" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])' 2>/dev/null || true)
if cuda_libs=$(sh bench/cuda_libs.sh "${CUDA_HOME:-/usr/local/cuda}" /tmp/rsa-cuda-libs ${site:+"$site/nvidia"} \
               /usr/local /opt 2>>"$log"); then
    # shellcheck disable=SC2086 # VAR=value words
    set -- "$@" $cuda_libs
    say "cuDNN and NCCL: ${cuda_libs:-the CUDA toolkit's}"
else
    say "cuDNN or NCCL not found (the line above says which): the CUDA build will fail"
fi
say "make arguments: $*"
jobs=${JOBS:-$(nproc)}
step 300 "build (make $* -j$jobs)" make "$@" -j"$jobs" all tests-build build/cuda/bench/step_bench
# the backend's own tests first, then the goal's benchmark, then the PyTorch parity tests, then the rest
step 240 "make test-gpu (the backend: test_cuda, test_cuda_model)" \
    make "$@" test-gpu GPU_TESTS="gpu/test_cuda gpu/test_cuda_model"
sb=build/cuda/bench/step_bench
step 120 "ours: step_bench cuda r50 rsa 256 5 bf16 fastest" $sb cuda r50 rsa 256 5 bf16 fastest
step 120 "ours: step_bench cuda r50 rsa 256 5 bf16 fastest wgrad16 (weight gradients in bf16 as autocast's)" \
    $sb cuda r50 rsa 256 5 bf16 fastest wgrad16
step 120 "PyTorch: step_bench.py cuda r50 rsa 256 5 amp" "$py" bench/step_bench.py cuda r50 rsa 256 5 amp
step 120 "ours: step_bench cuda r50 rsa 256 5 bf16 fastest saved16 (16-bit copies for backward)" \
    $sb cuda r50 rsa 256 5 bf16 fastest saved16
step 240 "make test-gpu (PyTorch parity on the GPU: ops, ResNets, steps)" \
    make "$@" test-gpu GPU_TESTS="ops/test_ops_torch nn/test_resnet_torch train/test_step_torch"
for run in "r50 rsa 256 5 bf16 fastest fp32conv" "r50 rsa 256 5 tf32 fastest" "r18c rsa 256 10 bf16 fastest" \
           "r18c rsa 256 10 tf32 fastest"; do
    step 120 "ours: step_bench cuda $run" $sb cuda $run
done
# the linear evaluation's feature pass (fp32/TF32, BN in eval mode): what Tables 3 and 4's evaluation costs per GPU
step 120 "ours: step_bench cuda r50 fwd 256 20 tf32 fastest (evaluation features)" $sb cuda r50 fwd 256 20 tf32 fastest
for run in "r50 rsa 256 5 tf32" "r18c rsa 256 10 amp" "r18c rsa 256 10 tf32"; do
    step 120 "PyTorch: step_bench.py cuda $run" "$py" bench/step_bench.py cuda $run
done
say "== summary"
summarise
cat "$out/summary.txt"
