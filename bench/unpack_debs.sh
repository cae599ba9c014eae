#!/bin/sh
# Unpacks Debian packages into a folder of their own (for the Makefile's DEPS_ROOT), never over /: with dpkg-deb
# where the machine has it, else with Python's ar and tar readers, so an image without dpkg (the GPU machine's may
# lack it; it has Python, since it has PyTorch) still builds. A link to an absolute path (zlib1g-dev's
# libz.so -> /lib/x86_64-linux-gnu/libz.so.1...) is pointed into the folder, where its target was unpacked.
# usage: bench/unpack_debs.sh DIR PACKAGE.deb...     exit 1, naming the package, when one cannot be unpacked
set -eu
[ $# -ge 2 ] || { echo "usage: $0 DIR PACKAGE.deb..." >&2; exit 2; }
dir=$1
shift
mkdir -p "$dir"
dir=$(cd "$dir" && pwd) # absolute: the repointed links must resolve from where they are
py=/usr/bin/python3
[ -x "$py" ] || py=python3

# with_python DEB: a .deb is an ar archive whose data.tar.{xz,gz,bz2} member holds the files
with_python() {
    "$py" - "$1" "$dir" <<'EOF'
import io, sys, tarfile
deb, dest = sys.argv[1], sys.argv[2]
with open(deb, "rb") as f:
    blob = f.read()
if blob[:8] != b"!<arch>\n":
    sys.exit(f"{deb}: not an ar archive (a .deb starts with '!<arch>')")
at = 8
while at + 60 <= len(blob):
    name, size = blob[at:at + 16].decode().strip().rstrip("/"), int(blob[at + 48:at + 58])
    body = blob[at + 60:at + 60 + size]
    at += 60 + size + (size & 1)
    if not name.startswith("data.tar"):
        continue
    if name.endswith(".zst"):
        sys.exit(f"{deb}: {name} is zstd-compressed, which Python's tarfile cannot read; install dpkg, or "
                 "download the package from Debian (xz)")
    with tarfile.open(fileobj=io.BytesIO(body), mode="r:*") as tar:
        # the "tar" filter keeps the package's absolute links (repointed by the caller) but no path outside dest
        kw = {"filter": "tar"} if hasattr(tarfile, "tar_filter") else {}
        tar.extractall(dest, **kw)
    sys.exit(0)
sys.exit(f"{deb}: no data.tar member")
EOF
}

if command -v dpkg-deb >/dev/null 2>&1; then how=dpkg-deb; else how=python; fi
for deb in "$@"; do
    if [ "$how" = dpkg-deb ]; then
        dpkg-deb -x "$deb" "$dir" || { echo "cannot unpack $deb with dpkg-deb" >&2; exit 1; }
    else
        with_python "$deb" || { echo "cannot unpack $deb with $py" >&2; exit 1; }
    fi
done
find "$dir" -type l | while read -r l; do
    t=$(readlink "$l")
    case $t in /*) ln -sfn "$dir$t" "$l" ;; esac
done
echo "unpacked $# packages into $dir with $how"
