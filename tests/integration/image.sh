#!/bin/bash
# The container image, built here from Debian's archive by scripts/image.sh
# (mmdebstrap + umoci) around the package of scripts/package.sh: its root
# filesystem, unpacked with `umoci unpack`, runs the image's own command
# (`cuepoint demo`) under chroot as the image's non-root user, with the
# image's environment and working directory, and finishes with triggers of
# every journey; the image config says what docs/deploy.md says (user
# 10001, entrypoint, cmd, state volume, admin port, OCI labels with the
# commit); there is no compiler, no apt, no package list; skopeo reads both
# outputs; a second build of the same commit has the same digest. Prints
# what the image weighs. Needs root, mmdebstrap and umoci (scripts/deps.sh --test);
# without them it says so and is skipped.
. "$(dirname "$0")/../lib.sh" "$1"
set -uo pipefail

skip() { echo "image: skipped: $*"; echo "0 passed, 0 failed, 1 skipped"; exit 0; }
[ "$(id -u)" = 0 ] || skip "not root (mmdebstrap's root mode, chroot)"
for t in mmdebstrap umoci jq; do command -v $t > /dev/null || skip "$t is not installed (scripts/deps.sh --test installs it)"; done

t0=$(date +%s)
deb=$("$root/scripts/package.sh" 2> "$tmp/package.err" | tail -n1)
[ -f "$deb" ] || { bad "scripts/package.sh made no package: $(tail -5 "$tmp/package.err")"; finish; exit 1; }
t1=$(date +%s)
"$root/scripts/image.sh" --deb "$deb" --out "$tmp/a" > "$tmp/a.out" 2> "$tmp/a.err" && ok \
    || { bad "scripts/image.sh failed: $(tail -20 "$tmp/a.err")"; finish; exit 1; }
t2=$(date +%s)
cat "$tmp/a.out"
version=$(sed -n 's/^project(cuepoint VERSION \([0-9.]*\).*/\1/p' "$root/CMakeLists.txt")
commit=$(git -C "$root" rev-parse --short=12 HEAD 2>/dev/null || echo unknown)
layout=$tmp/a/oci

# The image config.
manifest=$(jq -r '.manifests[0].digest' "$layout/index.json")
config=$(jq -r '.config.digest' "$layout/blobs/sha256/${manifest#sha256:}")
c=$layout/blobs/sha256/${config#sha256:}
jq -e '.config.User == "10001:10001"' "$c" > /dev/null && ok || bad "user: $(jq -c .config.User "$c")"
jq -e '.config.Entrypoint == ["/usr/bin/cuepoint"] and .config.Cmd == ["demo"]' "$c" > /dev/null && ok \
    || bad "entrypoint/cmd: $(jq -c '[.config.Entrypoint, .config.Cmd]' "$c")"
jq -e '.config.Volumes | has("/var/lib/cuepoint")' "$c" > /dev/null && ok || bad "no /var/lib/cuepoint volume"
jq -e '.config.ExposedPorts | has("9464/tcp")' "$c" > /dev/null && ok || bad "port 9464 not exposed"
jq -e --arg v "$version" --arg c "$commit" '.config.Labels["org.opencontainers.image.version"] == $v
      and .config.Labels["org.opencontainers.image.revision"] == $c
      and (.config.Labels["org.opencontainers.image.created"] | test("^[0-9]{4}-"))' "$c" > /dev/null && ok \
    || bad "labels: $(jq -c .config.Labels "$c")"
jq -e --arg c "$commit" '.annotations["org.opencontainers.image.revision"] == $c' \
    "$layout/blobs/sha256/${manifest#sha256:}" > /dev/null && ok || bad "the manifest's annotations lack the revision"
# deploy/Dockerfile mirrors the script: the same user, entrypoint, command,
# working directory, volume, port and version.
df=$root/deploy/Dockerfile
df_is() { grep -qxF "$1" "$df" && ok || bad "deploy/Dockerfile lacks '$1' (the image has it)"; }
df_is "USER $(jq -r .config.User "$c")"
df_is "ENTRYPOINT $(jq -c .config.Entrypoint "$c")"
df_is "CMD $(jq -c .config.Cmd "$c")"
df_is "WORKDIR $(jq -r .config.WorkingDir "$c")"
df_is "VOLUME $(jq -r '.config.Volumes | keys[0]' "$c")"
df_is "EXPOSE $(jq -r '.config.ExposedPorts | keys[0]' "$c")"
grep -qF "org.opencontainers.image.version=\"$version\"" "$df" && ok || bad "deploy/Dockerfile's version label is not $version"
if command -v skopeo > /dev/null; then
    skopeo inspect "oci:$layout:$version" > /dev/null 2> "$tmp/skopeo.err" && ok || bad "skopeo inspect oci: $(cat "$tmp/skopeo.err")"
    skopeo inspect "oci-archive:$tmp/a/cuepoint-oci.tar:$version" > /dev/null 2> "$tmp/skopeo.err" && ok \
        || bad "skopeo inspect oci-archive: $(cat "$tmp/skopeo.err")"
else
    bad "skopeo is not installed (scripts/deps.sh --test installs it)"
fi

# The root filesystem, as a runtime would unpack it.
umoci unpack --image "$layout:$version" "$tmp/bundle" > "$tmp/unpack.log" 2>&1 && ok \
    || { bad "umoci unpack: $(tail -3 "$tmp/unpack.log")"; finish; exit 1; }
r=$tmp/bundle/rootfs
spec=$tmp/bundle/config.json
# (perl-base is Essential: debconf needs it, so /usr/bin/perl stays.)
for f in usr/bin/gcc usr/bin/cc usr/bin/c99 usr/bin/apt usr/bin/apt-get usr/bin/make; do
    [ ! -e "$r/$f" ] && ok || bad "the image has /$f"
done
[ -z "$(ls -A "$r/var/lib/apt/lists" 2>/dev/null | grep -v '^partial$\|^lock$')" ] && ok || bad "package lists left in the image"
[ -z "$(ls "$r/var/cache/apt/archives/" 2>/dev/null | grep '\.deb$')" ] && ok || bad ".debs left in the image"
[ -f "$r/usr/share/zoneinfo/Europe/Berlin" ] && [ -s "$r/etc/ssl/certs/ca-certificates.crt" ] && ok || bad "tzdata or the CA bundle is missing"
[ "$(stat -c '%u:%g %a' "$r/var/lib/cuepoint")" = "10001:10001 700" ] && ok \
    || bad "/var/lib/cuepoint: $(stat -c '%u:%g %a' "$r/var/lib/cuepoint")"
grep -q '^cuepoint:x:10001:10001:' "$r/etc/passwd" && ok || bad "no cuepoint user in /etc/passwd"

# The image's own process, as the runtime spec gives it: user, environment,
# working directory, arguments. chroot stands in for the container runtime.
uid=$(jq -r '.process.user.uid' "$spec"); gid=$(jq -r '.process.user.gid' "$spec")
cwd=$(jq -r '.process.cwd' "$spec")
mapfile -t envs < <(jq -r '.process.env[]' "$spec")
mapfile -t argv < <(jq -r '.process.args[]' "$spec")
[ "$uid" = 10001 ] && [ "$uid" != 0 ] && ok || bad "the process runs as uid $uid"
start=$(date +%s)
timeout 120 chroot --userspec="$uid:$gid" "$r" /usr/bin/env -i "${envs[@]}" --chdir="$cwd" "${argv[@]}" --sample 0 \
    > "$tmp/demo.out" 2> "$tmp/demo.err" && ok || { bad "${argv[*]} in the image: exit $?"; tail -5 "$tmp/demo.err"; }
echo "demo in the image ($uid:$gid, $cwd): $(( $(date +%s) - start )) s, $(grep -o '[0-9]* triggers produced' "$tmp/demo.out")"
for j in onboarding deadlines milestones lifecycle; do
    grep -qE "^ +[a-z_]+ +$j +[1-9]" "$tmp/demo.out" && ok || bad "no trigger of journey $j in the image's demo"
done
# The user cannot write where the image is not meant to be written.
chroot --userspec="$uid:$gid" "$r" /usr/bin/env -i /usr/bin/touch /etc/cuepoint/x 2> /dev/null \
    && bad "uid $uid can write /etc/cuepoint" || ok
chroot --userspec="$uid:$gid" "$r" /usr/bin/env -i /usr/bin/touch /var/lib/cuepoint/x && ok \
    || bad "uid $uid cannot write its state volume"

# Reproducible: the same commit, built again, is the same image, also from
# an output directory other users can reach (the first one's parent is
# private to root), which changes what apt can do as its own user.
chmod 755 "$tmp"
t3=$(date +%s)
"$root/scripts/image.sh" --deb "$deb" --out "$tmp/b" > "$tmp/b.out" 2> "$tmp/b.err" \
    || bad "the second build failed: $(tail -5 "$tmp/b.err")"
t4=$(date +%s)
d1=$(sed -n 's/^image.sh: digest //p' "$tmp/a.out"); d2=$(sed -n 's/^image.sh: digest //p' "$tmp/b.out")
if [ -n "$d1" ] && [ "$d1" = "$d2" ]; then
    ok; echo "reproducible: two builds, digest $d1"
else
    bad "two builds differ: $d1 and $d2"
    for x in a b; do
        m=$(jq -r '.manifests[0].digest' "$tmp/$x/oci/index.json")
        l=$(jq -r '.layers[0].digest' "$tmp/$x/oci/blobs/sha256/${m#sha256:}")
        tar -tvzf "$tmp/$x/oci/blobs/sha256/${l#sha256:}" > "$tmp/$x.list"
    done
    diff "$tmp/a.list" "$tmp/b.list" | head -10
fi
echo "$(grep '^image.sh: size' "$tmp/a.out")"
echo "timings: package $(( t1 - t0 )) s, first image $(( t2 - t1 )) s, second image $(( t4 - t3 )) s, whole test $(( $(date +%s) - t0 )) s"
finish
