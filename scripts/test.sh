#!/usr/bin/env bash
# The whole test suite, as README.md states it: formatting, vet, staticcheck, and every test
# with the race detector. It installs what the tests need when it is missing (Debian packages
# for the real peer servers), so a fresh machine needs nothing else.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PATH:/usr/local/go/bin:$(go env GOPATH 2>/dev/null)/bin"

need_pkgs=()
for bin in nginx curl; do
  command -v "$bin" >/dev/null 2>&1 || [ -x "/usr/sbin/$bin" ] || need_pkgs+=("$bin")
done
command -v chromium >/dev/null 2>&1 || need_pkgs+=(chromium) # the dashboard's browser tests
command -v firefox-esr >/dev/null 2>&1 || command -v firefox >/dev/null 2>&1 || need_pkgs+=(firefox-esr) # TestDashboardFirefox
command -v etcd >/dev/null 2>&1 || need_pkgs+=(etcd-server) # internal/cluster tests
command -v node >/dev/null 2>&1 || need_pkgs+=(nodejs) # gateway TestReuseTorture, probe tests
# Rate limit tests start their own redis-server (Debian package redis-server).
command -v redis-server >/dev/null 2>&1 || need_pkgs+=(redis-server)
# The compress plugin's tests decode with the brotli and zstd tools (gzip is always there).
command -v brotli >/dev/null 2>&1 || need_pkgs+=(brotli)
command -v zstd >/dev/null 2>&1 || need_pkgs+=(zstd)
if [ ${#need_pkgs[@]} -gt 0 ]; then
  echo "== installing ${need_pkgs[*]}"
  if [ "$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi
  $SUDO apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need_pkgs[@]}" >/dev/null
fi
export SLUICE_REQUIRE_EXTERNAL=1

echo "== go mod download"
go mod download

echo "== gofmt"
unformatted=$(gofmt -l $(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))
if [ -n "$unformatted" ]; then
  echo "gofmt would change:"; echo "$unformatted"; exit 1
fi

echo "== go vet"
go vet ./...

# Servers run Linux, but developers also run the gateway on macOS: keep it building there
# (netio's raw socket calls are per-OS in places).
echo "== go build for darwin/arm64"
GOOS=darwin GOARCH=arm64 CGO_ENABLED=0 go build -o /dev/null ./cmd/sluice

echo "== staticcheck"
go tool staticcheck ./...

echo "== go test -race"
go test -race -count=1 -timeout 25m ./...

# Allocation counts are meaningless under the race detector (those tests skip there): run
# them once more without it.
echo "== allocation tests (no -race)"
go test -count=1 -run 'Alloc' ./internal/...

# The Dockerfile cannot be built here (no container runtime in CI); e2e's
# TestDockerfile runs its build command and HEALTHCHECK instead. hadolint is not packaged
# for Debian or npm; dockerfilelint (npm) lints what it knows.
echo "== dockerfilelint"
lint_dir="${XDG_CACHE_HOME:-$HOME/.cache}/sluice-dockerfilelint"
if ! command -v npm >/dev/null 2>&1; then
  echo "npm not found: the Dockerfile is not linted (apt-get install npm)"
elif [ -x "$lint_dir/node_modules/.bin/dockerfilelint" ] ||
     npm install --silent --no-audit --no-fund --prefix "$lint_dir" dockerfilelint@1.8.0 >/dev/null 2>&1; then
  "$lint_dir/node_modules/.bin/dockerfilelint" Dockerfile
else
  echo "dockerfilelint could not be installed from npm: the Dockerfile is not linted"
fi
