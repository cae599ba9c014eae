#!/bin/sh
# Where the CUDA build finds cuDNN and NCCL, as make variables: nothing when the CUDA toolkit (or the system) has
# them, else CUDNN_HOME=... and/or NCCL_HOME=... naming a folder made under LINKS that holds include/ and lib/ of the
# first copy found under the SEARCH folders (PyTorch's wheels: site-packages/nvidia/cudnn, .../nccl). Those ship only
# versioned libraries (libcudnn.so.9), so the folder adds the unversioned name the linker asks for. A machine whose
# image brought cuDNN with PyTorch alone then builds without installing anything.
# usage: bench/cuda_libs.sh CUDA_HOME LINKS SEARCH...      exit 1 (and why, on stderr) when one is found nowhere
set -eu
[ $# -ge 2 ] || { echo "usage: $0 CUDA_HOME LINKS SEARCH..." >&2; exit 2; }
cuda=$1 links=$2
shift 2

# one NAME HEADER VAR: prints VAR=folder, or nothing when the toolkit or the system has NAME
one() {
    name=$1 header=$2 var=$3
    shift 3
    if [ -f "$cuda/include/$header" ] && ls "$cuda"/lib64/lib"$name".so >/dev/null 2>&1; then return 0; fi
    for inc in /usr/include /usr/include/x86_64-linux-gnu; do
        if [ -f "$inc/$header" ] && ls /usr/lib/x86_64-linux-gnu/lib"$name".so >/dev/null 2>&1; then return 0; fi
    done
    h=
    for dir in "$@"; do
        [ -d "$dir" ] || continue
        h=$(find "$dir" -name "$header" -path '*/include/*' 2>/dev/null | sort | head -n 1)
        [ -z "$h" ] || break
    done
    if [ -z "$h" ]; then
        echo "$name: no $header in $cuda/include, /usr/include or under: $*" >&2
        return 1
    fi
    inc=$(cd "$(dirname "$h")" && pwd) # absolute: the links must resolve from where they are made
    lib=$(dirname "$inc")/lib
    so=$(ls "$lib"/lib"$name".so.* 2>/dev/null | sort | head -n 1)
    if [ -z "$so" ]; then
        echo "$name: $h, but no lib$name.so.* in $lib" >&2
        return 1
    fi
    home=$links/$name
    rm -rf "$home"
    mkdir -p "$home/lib"
    ln -s "$inc" "$home/include"
    for f in "$lib"/*; do ln -s "$f" "$home/lib/"; done
    [ -e "$home/lib/lib$name.so" ] || ln -s "$so" "$home/lib/lib$name.so"
    echo "$var=$home"
}

vars=
for spec in "cudnn cudnn.h CUDNN_HOME" "nccl nccl.h NCCL_HOME"; do
    # shellcheck disable=SC2086 # spec is three words on purpose
    v=$(one $spec "$@") || exit 1
    vars="$vars${vars:+ }$v"
done
echo "$vars"
