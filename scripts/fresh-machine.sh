#!/usr/bin/env bash
# The fresh-machine lane: the README's two commands, as a new user types them, in a bare
# Debian 12 (bookworm) root file system with only python3, python3-venv, pip, make, git, curl
# and CA certificates, running as root in a Podman container on a clean clone of one commit.
#
#   scripts/fresh-machine.sh [COMMIT]        (default HEAD; make fresh-machine runs it)
#
# The root file system is built once a day with debootstrap (what a new machine would get
# from Debian today) and kept as the image localhost/dockyard/fresh:bookworm-YYYYMMDD; older
# days' images are removed. The container shares the host's network and its package settings
# (pip's configuration and environment, the CA bundle), as a new machine of this kind has
# them, and nothing else: no caches, no venv, no Dockyard home. Exits non-zero when either
# command fails; prints how long each took.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
commit=$(git -C "$here" rev-parse "${1:-HEAD}")
export CONTAINERS_CONF=${CONTAINERS_CONF:-$here/deploy/podman/containers.conf}
day=$(date -u +%Y%m%d)
image=localhost/dockyard/fresh:bookworm-$day
packages=python3,python3-venv,python3-pip,make,git,curl,ca-certificates

command -v podman >/dev/null || { echo "fresh-machine: Podman is needed (apt-get install podman)" >&2; exit 1; }
if ! podman image exists "$image"; then
  command -v debootstrap >/dev/null || {
    echo "fresh-machine: debootstrap is needed (apt-get install debootstrap)" >&2; exit 1; }
  root=$(mktemp -d /tmp/dockyard-fresh.XXXXXX)
  trap 'rm -rf "$root"' EXIT
  echo "fresh-machine: building $image with debootstrap (a minute or two)"
  debootstrap --variant=minbase --include="$packages" bookworm "$root" \
    "${DEBIAN_MIRROR:-http://deb.debian.org/debian}" >/dev/null
  tar -C "$root" -c . | podman import \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'CMD ["bash"]' - "$image" >/dev/null
  rm -rf "$root"
  trap - EXIT
  for old in $(podman images --format '{{.Repository}}:{{.Tag}}' localhost/dockyard/fresh); do
    [ "$old" = "$image" ] || podman rmi "$old" >/dev/null 2>&1 || true
  done
fi

work=$(mktemp -d /tmp/dockyard-fresh-clone.XXXXXX)
name=dockyard-fresh-$$
cleanup() { podman rm -f "$name" >/dev/null 2>&1 || true; rm -rf "$work"; }
trap cleanup EXIT
git clone --quiet --no-local --no-checkout "$here" "$work/dockyard"
git -C "$work/dockyard" checkout --quiet "$commit"

# the host's package settings: pip's configuration files and PIP_* variables, the CA bundle
mounts=()
for conf in /etc/pip.conf "$HOME/.config/pip/pip.conf" "$HOME/.pip/pip.conf"; do
  [ -f "$conf" ] && mounts+=(--volume "$conf:${conf/#$HOME//root}:ro")
done
bundle=/etc/ssl/certs/ca-certificates.crt
[ -f "$bundle" ] && mounts+=(--volume "$bundle:$bundle:ro")
envs=()
while IFS='=' read -r key _; do
  case $key in PIP_*|SSL_CERT_FILE|REQUESTS_CA_BUNDLE|CURL_CA_BUNDLE) envs+=(--env "$key") ;; esac
done < <(env)
# a local wheel directory that pip's settings name comes along (read-only), as on the host
for links in ${PIP_FIND_LINKS:-}; do
  [ -d "$links" ] && mounts+=(--volume "$links:$links:ro")
done

echo "fresh-machine: commit ${commit:0:10} in $image"
start=$SECONDS
status=0
podman run --name "$name" --network host --hostname fresh-machine \
  --volume "$work/dockyard:/root/dockyard" --workdir /root/dockyard \
  "${mounts[@]}" "${envs[@]}" --env HOME=/root --env TERM=dumb \
  "$image" bash -c '
    set -u
    t0=$SECONDS; make demo; demo=$?; t1=$SECONDS
    echo "fresh-machine: make demo exited $demo after $((t1 - t0)) s"
    make test; test=$?
    echo "fresh-machine: make test exited $test after $((SECONDS - t1)) s"
    [ $demo -eq 0 ] && [ $test -eq 0 ]' || status=$?
echo "fresh-machine: $([ $status -eq 0 ] && echo passed || echo FAILED) in $((SECONDS - start)) s"
exit $status
