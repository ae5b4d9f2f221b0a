#!/bin/bash
# Builds cuepoint's container image from Debian's archive, without any
# registry: mmdebstrap makes a minimal Debian 12 root filesystem (the
# Essential set, tzdata, ca-certificates, and the .deb from
# scripts/package.sh with the libraries it depends on; no compiler, no apt,
# no package lists, no manuals), adds a non-root user and /var/lib/cuepoint
# as the state volume, and umoci packs it as an OCI image.
#
#   scripts/image.sh [--out DIR] [--deb FILE] [--tag TAG]
#
# Writes DIR/oci (an OCI image layout, tag TAG, default the version) and
# DIR/cuepoint-oci.tar (the same layout as one archive):
#   skopeo copy oci:DIR/oci:TAG docker-daemon:cuepoint:TAG
#   podman load -i DIR/cuepoint-oci.tar
# The last lines say what the image weighs and its manifest's digest.
#
# Reproducible: SOURCE_DATE_EPOCH (default: the commit's time) dates the
# image, its history and every file, so two builds of one commit from the
# same archive state give the same digest. Debian's archive moves (security
# updates): a build a day later may pick newer packages, and then differs.
#
# Environment: MIRROR (default: the first Debian mirror in this machine's apt
# sources), SUITE (bookworm), CUEPOINT_IMAGE_CACHE (default
# /var/cache/cuepoint-image: the .debs the last build used, seeded from
# apt's own cache, so a rebuild downloads nothing). Needs root (mmdebstrap's
# root mode), mmdebstrap and umoci (scripts/deps.sh --test installs them).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
out=build/image
deb=""
version=$(sed -n 's/^project(cuepoint VERSION \([0-9.]*\).*/\1/p' CMakeLists.txt)
tag=$version
while [ $# -gt 0 ]; do
    case "$1" in
    --out) out=$2; shift 2 ;;
    --deb) deb=$2; shift 2 ;;
    --tag) tag=$2; shift 2 ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "image.sh: unknown option $1 (see --help)" >&2; exit 64 ;;
    esac
done
for tool in mmdebstrap umoci; do
    command -v "$tool" > /dev/null || { echo "image.sh: $tool is not installed (scripts/deps.sh --test installs it)" >&2; exit 69; }
done
[ "$(id -u)" = 0 ] || { echo "image.sh: run as root (mmdebstrap's root mode)" >&2; exit 77; }

if [ -z "${SOURCE_DATE_EPOCH:-}" ]; then
    SOURCE_DATE_EPOCH=$(git log -1 --format=%ct 2>/dev/null || date +%s)
fi
export SOURCE_DATE_EPOCH
created=$(date -u -d "@$SOURCE_DATE_EPOCH" +%Y-%m-%dT%H:%M:%SZ)
commit=$(git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)
suite=${SUITE:-bookworm}
# The archive as this machine's apt reaches it: its Debian mirror for the
# suite and its updates, and its security mirror (deb822 sources first, then
# sources.list), so the image gets the same security updates as the host.
mirror=${MIRROR:-$(cat /etc/apt/sources.list.d/*.sources 2>/dev/null |
                   awk '/^URIs:/ && $2 ~ /\/debian\/?$/ { print $2; exit }')}
mirror=${mirror:-$(awk '$1 == "deb" && $2 ~ /^http/ && $2 ~ /\/debian\/?$/ { print $2; exit }' \
                   /etc/apt/sources.list 2>/dev/null)}
mirror=${mirror:-http://deb.debian.org/debian}
security=${SECURITY_MIRROR:-$(cat /etc/apt/sources.list.d/*.sources 2>/dev/null |
                   awk '/^URIs:/ && $2 ~ /\/debian-security\/?$/ { print $2; exit }')}
security=${security:-$(awk '$1 == "deb" && $2 ~ /^http/ && $2 ~ /\/debian-security\/?$/ { print $2; exit }' \
                   /etc/apt/sources.list 2>/dev/null)}
security=${security:-http://deb.debian.org/debian-security}
sources=("deb $mirror $suite main" "deb $mirror $suite-updates main" "deb $security $suite-security main")

[ -n "$deb" ] || deb=$(scripts/package.sh | tail -n1)
deb=$(realpath "$deb")
mkdir -p "$out"
out=$(realpath "$out")
work=$(mktemp -d "$out/.work.XXXXXX")
chmod 755 "$work" # apt downloads as _apt
trap 'rm -rf "$work"' EXIT
# The .deb is handed to apt by path, and dpkg installs it inside the chroot:
# the same path must exist on both sides.
pkgdir=$(mktemp -d /tmp/cuepoint-image-pkg.XXXXXX)
chmod 755 "$pkgdir"
trap 'rm -rf "$work" "$pkgdir"' EXIT
cp "$deb" "$pkgdir/"
pkg=$pkgdir/$(basename "$deb")

# The apt cache: what the last build used, plus whatever apt on this machine
# already downloaded of the same versions (hard links, no copies).
cache=${CUEPOINT_IMAGE_CACHE:-/var/cache/cuepoint-image}/archives
mkdir -p "$cache"
exec 8> "$cache/../lock" # one build at a time uses the cache
flock 8
want=(tzdata ca-certificates usr-is-merged
      $(dpkg-deb -f "$deb" Depends | tr ',' '\n' | sed 's/(.*//; s/|.*//; s/ //g')
      $(dpkg-query -W -f='${Package} ${Essential}\n' 2>/dev/null | awk '$2 == "yes" { print $1 }'))
apt-get -qq -o Dir::State::status=/dev/null --no-install-recommends --print-uris install "${want[@]}" 2>/dev/null |
    awk '{ print $2 }' | while read -r f; do
        [ -e "/var/cache/apt/archives/$f" ] && [ ! -e "$cache/$f" ] && ln "/var/cache/apt/archives/$f" "$cache/$f" 2>/dev/null || true
    done
seeded=$(ls "$cache" | grep -c '\.deb$' || true)
# The host's package lists for the same sources, so that apt-get update in
# the chroot only asks whether they changed.
lists=$work/lists
mkdir -p "$lists"
for f in /var/lib/apt/lists/*; do
    case "$f" in
    *deb.debian.org_debian*|*"$(echo "${mirror#*://}" | tr / _)"*|*"$(echo "${security#*://}" | tr / _)"*)
        [ -f "$f" ] && cp -p "$f" "$lists/" ;;
    esac
done

t0=$(date +%s)
# force-unsafe-io: dpkg skips its fsyncs; a crash only loses this build.
# mmdebstrap's merged-usr hook lays /usr out merged before the Essential set
# goes in and installs usr-is-merged, which init-system-helpers needs: else
# apt picks usrmerge, which brings perl (30 MB) to merge it afterwards.
# The customize hooks: the user and the state directory (uid and gid 10001,
# numeric in the image config so Kubernetes can check runAsNonRoot), no
# leftovers of the build, and every file dated SOURCE_DATE_EPOCH at most.
mmdebstrap --variant=essential --mode=root --format=directory \
    --include="tzdata,ca-certificates,$pkg" \
    --dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/info/*' \
    --dpkgopt='path-exclude=/usr/share/locale/*' --dpkgopt='path-exclude=/usr/share/doc/*' \
    --dpkgopt='path-include=/usr/share/doc/*/copyright' \
    --dpkgopt='path-include=/usr/share/doc/cuepoint/*' \
    --dpkgopt=force-unsafe-io \
    --skip=download/empty --skip=essential/unlink \
    --setup-hook="mkdir -p \"\$1$pkgdir\" && cp '$pkg' \"\$1$pkgdir/\"" \
    --hook-dir=/usr/share/mmdebstrap/hooks/merged-usr \
    --setup-hook='mkdir -p "$1"/var/cache/apt/archives/ "$1"/var/lib/apt/lists/' \
    --setup-hook="sync-in '$lists' /var/lib/apt/lists/" \
    --setup-hook="sync-in '$cache' /var/cache/apt/archives/" \
    --customize-hook="sync-out /var/cache/apt/archives '$cache'" \
    --customize-hook="rm -rf \"\$1$pkgdir\" \"\$1\"/var/cache/apt/archives/*.deb" \
    --customize-hook='echo "cuepoint:x:10001:10001:cuepoint:/var/lib/cuepoint:/usr/sbin/nologin" >> "$1/etc/passwd"' \
    --customize-hook='echo "cuepoint:x:10001:" >> "$1/etc/group"' \
    --customize-hook='echo "cuepoint:!:0::::::" >> "$1/etc/shadow"' \
    --customize-hook='mkdir -p "$1/var/lib/cuepoint" && chown 10001:10001 "$1/var/lib/cuepoint" && chmod 0700 "$1/var/lib/cuepoint"' \
    --customize-hook='rm -rf "$1"/var/log/* "$1"/var/cache/debconf/*-old "$1"/var/lib/dpkg/*-old "$1"/var/cache/ldconfig/aux-cache' \
    "$suite" "$work/rootfs" "${sources[@]}" > "$out/mmdebstrap.log" 2>&1 \
    || { tail -20 "$out/mmdebstrap.log" >&2; echo "image.sh: mmdebstrap failed (see $out/mmdebstrap.log)" >&2; exit 1; }
# apt (outside the chroot) makes its partial directories owned by _apt when
# it can reach them as that user, which depends on the permissions of the
# directories above --out: the same owner whatever they are.
chown -R 0:0 "$work/rootfs/var/lib/apt" "$work/rootfs/var/cache/apt"
# Files the maintainer scripts wrote carry the build's time: clamp them.
# apt's cache directories come from the host's cache (sync-in), with
# whatever times earlier builds left there, older or newer: dated exactly.
find "$work/rootfs" -newermt "@$SOURCE_DATE_EPOCH" -print0 | xargs -0r touch -h -d "@$SOURCE_DATE_EPOCH"
find "$work/rootfs/var/cache/apt" "$work/rootfs/var/lib/apt" -print0 |
    xargs -0r touch -h -d "@$SOURCE_DATE_EPOCH"
t1=$(date +%s)

layout=$out/oci
rm -rf "$layout"
umoci init --layout "$layout"
umoci new --image "$layout:$tag"
umoci insert --image "$layout:$tag" --history.created "$created" \
    --history.created_by "scripts/image.sh: mmdebstrap --variant=essential $suite + $(basename "$deb")" \
    "$work/rootfs" /
label() { printf -- '--config.label=%s=%s\n--manifest.annotation=%s=%s\n' "$1" "$2" "$1" "$2"; }
mapfile -t labels < <(
    label org.opencontainers.image.title cuepoint
    label org.opencontainers.image.description "Kafka-native trigger engine for product events"
    label org.opencontainers.image.version "$version"
    label org.opencontainers.image.revision "$commit"
    label org.opencontainers.image.created "$created"
    label org.opencontainers.image.base.name "debian:$suite (mmdebstrap --variant=essential)"
    label org.opencontainers.image.documentation "/usr/share/doc/cuepoint/docs/deploy.md")
umoci config --image "$layout:$tag" --created "$created" --architecture amd64 --os linux \
    --history.created "$created" --history.created_by "scripts/image.sh: umoci config" \
    --config.user 10001:10001 --config.entrypoint /usr/bin/cuepoint --config.cmd demo \
    --config.workingdir /var/lib/cuepoint --config.volume /var/lib/cuepoint \
    --config.exposedports 9464/tcp --config.stopsignal SIGTERM \
    --clear config.env --config.env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    --config.env TMPDIR=/tmp \
    "${labels[@]}"
umoci gc --layout "$layout"
# One archive of the layout, itself reproducible (sorted, dated, owned by 0).
tar --sort=name --mtime="@$SOURCE_DATE_EPOCH" --owner=0 --group=0 --numeric-owner \
    -cf "$out/cuepoint-oci.tar" -C "$layout" .
t2=$(date +%s)

manifest=$(jq -r '.manifests[0].digest' "$layout/index.json")
layers=$(jq '[.layers[].size] | add' "$layout/blobs/sha256/${manifest#sha256:}")
rootfs_kb=$(du -sk "$work/rootfs" | cut -f1)
echo "image.sh: rootfs $suite from $mirror and $security, $(( t1 - t0 )) s (apt cache: $seeded .debs seeded); OCI in $(( t2 - t1 )) s"
echo "image.sh: $layout:$tag and $out/cuepoint-oci.tar"
echo "image.sh: size: $(( layers / 1024 / 1024 )) MiB compressed ($layers bytes), $(( rootfs_kb / 1024 )) MiB unpacked"
echo "image.sh: digest $manifest"
