#!/usr/bin/env bash
# Runs every test binary under $BUILD/tests and ends with "N passed, N failed" (exit 1 if any failed).
# Fixtures from PyTorch are regenerated into $BUILD/fixtures when Debian's python3-torch is installed and the
# generator changed; without it the small committed fixtures in tests/fixtures are used and the rest fail clearly.
set -u
BUILD=${BUILD:-build/cpu}
export RSA_FIXTURES=${RSA_FIXTURES:-$BUILD/fixtures}
export RSA_TEST_TMP=${RSA_TEST_TMP:-$BUILD/tmp}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-$(nproc)}
mkdir -p "$RSA_FIXTURES" "$RSA_TEST_TMP"

# generator script -> stamp: regenerate when the script, the safetensors helper or a module it imports (further
# arguments) is newer than its stamp
regenerate() {
    local script=$1 stamp=$RSA_FIXTURES/.$(basename "$1").stamp stale=0 dep
    for dep in "$@" tests/oracle/st.py; do [ "$dep" -nt "$stamp" ] && stale=1; done
    if [ ! -f "$stamp" ] || [ $stale = 1 ]; then
        echo "# regenerating fixtures: $script"
        if /usr/bin/python3 "$script" "$RSA_FIXTURES"; then touch "$stamp"; else echo "# fixture generation failed: $script"; fi
    fi
}
if /usr/bin/python3 -c "import torch, torchvision" 2>/dev/null; then
    regenerate tests/oracle/make_fixtures.py
    regenerate tests/oracle/rsa_reference.py tests/oracle/make_fixtures.py # its VERSION and helpers
    regenerate tests/oracle/make_aug_fixtures.py
    regenerate tests/oracle/make_eval_fixtures.py tests/oracle/make_fixtures.py # its VERSION
else
    echo "# python3-torch not installed (make deps installs it): using the committed fixtures in tests/fixtures;"
    echo "# tests that need generated fixtures will fail"
fi

passed=0 failed=0 times=""
log=$RSA_TEST_TMP/last.log
# A test binary that hangs (a deadlock in the loader's threads or between MPI ranks) fails after this many seconds
# instead of holding CI until its own limit; the slowest binary takes under a minute here.
limit=${RSA_TEST_TIMEOUT:-900}
# RSA_TEST_ONLY: space-separated test names relative to $BUILD/tests (e.g. "gpu/test_cuda ops/test_ops_torch")
for t in $(find "$BUILD/tests" -type f -name 'test_*' -perm -u+x | sort); do
    if [ -n "${RSA_TEST_ONLY:-}" ]; then
        case " $RSA_TEST_ONLY " in *" ${t#$BUILD/tests/} "*) ;; *) continue ;; esac
    fi
    echo "== ${t#$BUILD/tests/}"
    start=$SECONDS
    timeout -k 10 "$limit" "$t" >"$log" 2>&1
    rc=$?
    times+="$((SECONDS - start)) ${t#$BUILD/tests/}"$'\n'
    cat "$log"
    p=$(grep -c '^ok ' "$log")
    f=$(grep -c '^FAIL ' "$log")
    if [ "$rc" = 124 ] || [ "$rc" = 137 ]; then
        echo "FAIL ${t#$BUILD/tests/}: still running after ${limit} s, stopped (a hang? the last lines above say where)"
        f=$((f + 1))
    elif [ "$rc" != 0 ] && [ "$f" = 0 ]; then
        echo "FAIL ${t#$BUILD/tests/}: exited with status $rc"
        f=1
    fi
    passed=$((passed + p))
    failed=$((failed + f))
done
# where the time went (CI has 30 minutes for everything): the five slowest binaries
echo "# slowest: $(printf '%s' "$times" | sort -rn | head -5 | awk '{printf "%s%s %d s", (NR > 1 ? ", " : ""), $2, $1}')"
echo "$passed passed, $failed failed"
[ "$failed" = 0 ]
