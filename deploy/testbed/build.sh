#!/usr/bin/env bash
# Build the test cluster's binaries from their Go modules, cached by version and hash.
#
#   deploy/testbed/build.sh            prints the directory that holds the binaries
#
# kube-apiserver, kube-controller-manager, kube-scheduler, kubelet and etcd come from
# deploy/testbed/kube (k8s.io/kubernetes of one pinned release), kwok from deploy/testbed/kwok.
# The cache key is the hash of each module's go.mod and go.sum and of the Go version, so a
# second run rebuilds nothing; DOCKYARD_TESTBED_CACHE moves the cache (default
# ~/.cache/dockyard/testbed). Progress goes to stderr, the directory alone to stdout.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
cache=${DOCKYARD_TESTBED_CACHE:-$HOME/.cache/dockyard/testbed}
export GOFLAGS=-mod=mod GOTOOLCHAIN=${GOTOOLCHAIN:-local}

key() {  # the cache key of one tools module and its link flags
  { cat "$here/$1/go.mod" "$here/$1/go.sum"; find "$here/$1" -name '*.go' -print0 | sort -z | xargs -0 cat
    go version; echo "$2"; } | sha256sum | cut -c1-16
}

build() {  # build MODULE 'PACKAGES' 'LDFLAGS' into the cache, unless it is there
  local module=$1 packages=$2 ldflags=$3 dir
  dir="$cache/$module-$(key "$module" "$ldflags")"
  if [ ! -f "$dir/.complete" ]; then
    echo "testbed: building $module into $dir (the first build takes a while)" >&2
    local start=$SECONDS
    mkdir -p "$dir/bin"
    # shellcheck disable=SC2086
    (cd "$here/$module" && go build -trimpath -ldflags "-s -w $ldflags" -o "$dir/bin/" $packages)
    echo "testbed: built $module in $((SECONDS - start)) s" >&2
    touch "$dir/.complete"
  fi
  echo "$dir/bin"
}

release=$(cd "$here/kube" && go list -m -f '{{.Version}}' k8s.io/kubernetes)
case $release in v1.*) ;; *) echo "testbed: no k8s.io/kubernetes version in kube/go.mod" >&2; exit 1;; esac
minor=$(echo "$release" | cut -d. -f2)
version_flags=""
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  version_flags+=" -X $pkg.gitVersion=$release -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor"
  version_flags+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=1970-01-01T00:00:00Z"
done
kube=$(build kube "k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-controller-manager \
  k8s.io/kubernetes/cmd/kube-scheduler k8s.io/kubernetes/cmd/kubelet ./cmd/etcd" "$version_flags")
kwok=$(build kwok "sigs.k8s.io/kwok/cmd/kwok" "")
out="$cache/bin"
mkdir -p "$out"
for binary in "$kube"/* "$kwok"/*; do ln -sfn "$binary" "$out/$(basename "$binary")"; done
echo "$out"
