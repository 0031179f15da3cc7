#!/usr/bin/env bash
# tools/install-deps.sh -- the one idempotent set-up step behind `make run` and `make test`.
#
# Installs the Debian packages journeyd builds and tests against (shared/DEPENDENCIES.md)
# and the npm packages of the end-to-end tests (python3-aiosmtpd is the SMTP peer of
# tests/unit/deliver: run it with /usr/bin/python3, the python3 on PATH may be another
# build). Runs apt-get only when a package is missing and npm only when
# package-lock.json changed, so a second run costs a second.
set -euo pipefail
cd "$(dirname "$0")/.."

DEB_PKGS=(
  build-essential pkg-config ca-certificates
  libmicrohttpd-dev libjson-c-dev libmimalloc-dev liblmdb-dev libxxhash-dev
  libssl-dev zlib1g-dev libyaml-dev libcmocka-dev libcurl4-openssl-dev curl
  libpcre2-dev libicu-dev
  clang libclang-rt-14-dev
  nodejs npm
  wrk nginx-light
  python3-aiosmtpd
)

missing=()
for p in "${DEB_PKGS[@]}"; do
  # nodejs/npm may come from elsewhere (a machine image with its own node): accept the command.
  case "$p" in
    nodejs) command -v node >/dev/null 2>&1 && continue ;;
    npm)    command -v npm  >/dev/null 2>&1 && continue ;;
  esac
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

if [ ${#missing[@]} -gt 0 ]; then
  echo "install-deps: installing ${missing[*]}" >&2
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# npm packages of the end-to-end tests: reinstall only when the lock file changed.
if [ -f tests/e2e/package-lock.json ]; then
  stamp=tests/e2e/node_modules/.journeyd-lock
  if [ ! -f "$stamp" ] || ! cmp -s tests/e2e/package-lock.json "$stamp"; then
    echo "install-deps: npm install in tests/e2e (versions from package-lock.json)" >&2
    # Not `npm ci`: npm 11 refuses this lock file for optional packages of other
    # platforms (msgpackr-extract-darwin-*) that it never records; `npm install`
    # with --no-save installs the locked versions and leaves the lock untouched.
    (cd tests/e2e && npm install --no-audit --no-fund --no-save --loglevel=error)
    cp tests/e2e/package-lock.json "$stamp"
  fi
fi
