#!/usr/bin/env bash
# Build the local base image Dockyard's tests and demo use where no registry can be reached:
# a Debian root file system (debootstrap) with Python 3.11, imported into Podman.
# Normal machines do not need this: environments default to python:3.11-slim.
#
#   deploy/podman/base-image.sh [IMAGE]     (default localhost/dockyard/base:bookworm)
set -euo pipefail
IMAGE=${1:-localhost/dockyard/base:bookworm}
export CONTAINERS_CONF=${CONTAINERS_CONF:-$(cd "$(dirname "$0")" && pwd)/containers.conf}
if podman image exists "$IMAGE"; then
  echo "$IMAGE exists"
  exit 0
fi
command -v debootstrap >/dev/null || { echo "debootstrap is needed: apt-get install -y debootstrap" >&2; exit 1; }
root=$(mktemp -d /tmp/dockyard-rootfs.XXXXXX)
trap 'rm -rf "$root"' EXIT
echo "building $IMAGE with debootstrap (a minute or two) ..."
debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates \
  bookworm "$root" "${DEBIAN_MIRROR:-http://deb.debian.org/debian}" >/dev/null
rm -rf "$root"/var/lib/apt/lists/* "$root"/usr/share/doc/* "$root"/usr/share/man/* \
  "$root"/var/cache/apt/*.bin
tar -C "$root" -c . | podman import \
  --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' --change 'CMD ["python3"]' - "$IMAGE" >/dev/null
echo "built $IMAGE"
