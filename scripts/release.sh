#!/usr/bin/env bash
# Release build: static binaries (CGO off) for linux/amd64, linux/arm64 and darwin/arm64, each
# packed with the licence, README and the sample config, plus SHA256SUMS over the archives.
#
#   bash scripts/release.sh [VERSION]     # default: git describe --tags --always --dirty
#   OUT=dist PLATFORMS="linux/amd64" bash scripts/release.sh v0.5.0
#
# The version and the commit are stamped with -ldflags (see cmd/sluice/version.go), so
# `sluice version -v` says what was built, also from a tarball without .git.
# The Dockerfile builds its binary with the same flags (release_flags below).
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PATH:/usr/local/go/bin"

version="${1:-$(git describe --tags --always --dirty 2>/dev/null || echo dev)}"
revision="$(git rev-parse HEAD 2>/dev/null || echo "")"
out="${OUT:-dist}"
platforms="${PLATFORMS:-linux/amd64 linux/arm64 darwin/arm64}"

# -trimpath: no build machine paths in the binary; -s -w: no symbol or DWARF tables;
# -buildvcs=false: the revision is stamped explicitly (a worktree or a tarball has no VCS
# facts the toolchain could read, and the two would disagree).
release_flags=(-trimpath -buildvcs=false -ldflags "-s -w -X main.version=${version} -X main.revision=${revision}")

rm -rf "$out"
mkdir -p "$out"
for p in $platforms; do
  os="${p%/*}"; arch="${p#*/}"
  name="sluice-${version}-${os}-${arch}"
  stage="$out/$name"
  mkdir -p "$stage"
  echo "== $p"
  CGO_ENABLED=0 GOOS="$os" GOARCH="$arch" go build "${release_flags[@]}" -o "$stage/sluice" ./cmd/sluice
  cp LICENSE README.md packaging/sluice.yaml packaging/sluice.service "$stage/"
  tar -C "$out" -czf "$out/$name.tar.gz" "$name"
  rm -rf "$stage"
done

(cd "$out" && sha256sum -- *.tar.gz > SHA256SUMS)
cat "$out/SHA256SUMS"

# The binary for this machine, if one was built, must say what it is and be static.
host="$(go env GOOS)-$(go env GOARCH)"
if [ -f "$out/sluice-${version}-${host}.tar.gz" ]; then
  tmp="$(mktemp -d)"
  tar -C "$tmp" -xzf "$out/sluice-${version}-${host}.tar.gz"
  "$tmp/sluice-${version}-${host}/sluice" version -v
  if command -v ldd >/dev/null && ldd "$tmp/sluice-${version}-${host}/sluice" >/dev/null 2>&1; then
    echo "release.sh: the $host binary is dynamically linked" >&2
    exit 1
  fi
  rm -rf "$tmp"
fi
