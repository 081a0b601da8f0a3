#!/usr/bin/env bash
# The dashboard's end-to-end test in headless Chromium (issue 9).
#
#     bash examples/e2e/run.sh            # setup, build, test
#     bash examples/e2e/run.sh --setup    # only: install Chromium when missing, npm ci
#     bash examples/e2e/run.sh --test     # only: cargo build --example web_app, run dashboard.mjs
#
# Setup installs Debian's `chromium` with apt-get when /usr/bin/chromium is missing (root only).
# Where Chromium or Node.js cannot be had, it prints `SKIPPED: <reason>` and exits with
# $E2E_SKIP_EXIT (default 0; .ci/run sets 77 to tell a skip from a pass). Anything else that
# goes wrong is a failure (non-zero exit).
#
# Environment: CHROMIUM (default /usr/bin/chromium), CARGO_TARGET_DIR, WEB_APP_BIN (test this
# binary instead of building one), SCREENSHOT (default docs/dashboard.png; empty: none),
# E2E_ARTIFACTS (folder for a failing run's screenshot and server log).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
CHROMIUM="${CHROMIUM:-/usr/bin/chromium}"
SKIP_EXIT="${E2E_SKIP_EXIT:-0}"
export PATH="$HOME/.cargo/bin:$PATH"

skipped() {
    echo "SKIPPED: $*"
    exit "$SKIP_EXIT"
}

setup() {
    command -v node >/dev/null 2>&1 || skipped "node is not installed (Node.js >= 18 runs the test)"
    command -v npm >/dev/null 2>&1 || skipped "npm is not installed"
    local major
    major="$(node -p 'process.versions.node.split(".")[0]')"
    [[ "$major" -ge 18 ]] || skipped "node $(node --version) is too old (the test needs >= 18)"

    if [[ ! -x "$CHROMIUM" ]]; then
        [[ "$(id -u)" -eq 0 ]] || skipped "$CHROMIUM is missing and installing it needs root (apt-get install chromium)"
        command -v apt-get >/dev/null 2>&1 || skipped "$CHROMIUM is missing and there is no apt-get to install it"
        local apt_log
        apt_log="$(mktemp "${TMPDIR:-/tmp}/e2e-apt.XXXXXX")"
        echo "installing Debian's chromium (apt-get; log in $apt_log)"
        if ! timeout 600 apt-get update >"$apt_log" 2>&1; then
            tail -n 15 "$apt_log"
            skipped "apt-get update failed, so Chromium cannot be installed"
        fi
        if ! DEBIAN_FRONTEND=noninteractive timeout 900 apt-get install -y chromium >>"$apt_log" 2>&1; then
            tail -n 15 "$apt_log"
            skipped "apt-get install chromium failed"
        fi
        [[ -x "$CHROMIUM" ]] || skipped "apt-get installed chromium but $CHROMIUM is not there"
    fi
    local version
    # (Debian's wrapper script may print a shell warning first: keep the last line.)
    version="$("$CHROMIUM" --version 2>&1)" || skipped "$CHROMIUM --version failed: $(tail -n 1 <<<"$version")"
    echo "browser: $(tail -n 1 <<<"$version")"

    (cd "$HERE" && npm ci --no-audit --no-fund --loglevel=error)
}

run_test() {
    local bin="${WEB_APP_BIN:-}"
    if [[ -z "$bin" ]]; then
        (cd "$ROOT" && cargo build --quiet -p cancelable-examples --example web_app)
        bin="${CARGO_TARGET_DIR:-$ROOT/target}/debug/examples/web_app"
    fi
    [[ -d "$HERE/node_modules/playwright-core" ]] || { echo "examples/e2e/node_modules is missing: run $0 --setup first" >&2; exit 1; }
    local start=$SECONDS rc=0
    CHROMIUM="$CHROMIUM" timeout 150 node "$HERE/dashboard.mjs" "$bin" || rc=$?
    [[ $rc -eq 124 ]] && echo "the test ran over 150 s and was stopped" >&2
    echo "dashboard e2e took $((SECONDS - start)) s"
    return "$rc"
}

case "${1:-all}" in
    --setup) setup ;;
    --test) run_test ;;
    all) setup; run_test ;;
    *) echo "usage: $0 [--setup|--test]" >&2; exit 2 ;;
esac
