# Sourced by the CPU benchmarks that run PyTorch beside us: the build, the thread count (ours and PyTorch's), the
# glibc allocator settings of "PyTorch tuned" (TUNED: the peer to beat, measured on these machines), and a header
# naming the machine and the versions.
BUILD=${BUILD:-build/cpu}
THREADS=${OMP_NUM_THREADS:-$(nproc)}
export OMP_NUM_THREADS=$THREADS
TUNED="glibc.malloc.hugetlb=1:glibc.malloc.mmap_threshold=33554432:glibc.malloc.trim_threshold=4294967295:glibc.malloc.top_pad=1073741824"
peer_header() {
    echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $THREADS threads"
    echo "PyTorch $(/usr/bin/python3 -c 'import torch; print(torch.__version__)'), oneDNN $(dpkg-query -W -f='${Version}' libdnnl2 2>/dev/null)"
}
