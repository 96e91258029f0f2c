# Shared helpers for the scripts in scripts/. Sourced, never run.
#   REPO_ROOT   the repository (parent of scripts/)
#   step MSG    prints one line "==> MSG" (the scripts' only output by default)
#   die MSG     prints "error: MSG" to stderr and exits 1
#   run_logged LOG CMD...  runs CMD with its output appended to LOG; on failure prints the
#                          log's last lines and returns CMD's status

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
export REPO_ROOT

step() { printf '==> %s\n' "$*"; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

run_logged() {
    local log="$1"; shift
    printf '\n$ %s\n' "$*" >>"$log"
    local status=0
    # In the background, so that a trapped signal interrupts the wait at once.
    "$@" >>"$log" 2>&1 </dev/null &
    wait "$!" || status=$?
    if [ "$status" -ne 0 ]; then
        printf 'error: `%s` failed (exit %d); last lines of %s:\n' "$*" "$status" "$log" >&2
        tail -n 40 "$log" | sed 's/^/    /' >&2
    fi
    return "$status"
}

# The Swift toolchain of this machine kind lives in /opt/swift; put it on PATH when needed.
ensure_swift_on_path() {
    if ! command -v swift >/dev/null 2>&1 && [ -x /opt/swift/usr/bin/swift ]; then
        PATH="/opt/swift/usr/bin:$PATH"
        export PATH
    fi
    command -v swift >/dev/null 2>&1 || die "swift not found (expected on PATH or in /opt/swift/usr/bin)"
}

VENV_DIR="$REPO_ROOT/.venv"
LOG_DIR="$REPO_ROOT/.tmp/logs"

# stop_process PID: SIGTERM, then SIGKILL if it still runs after 10 s; reaps it when it is our child.
stop_process() {
    local pid="$1"
    [ -n "$pid" ] || return 0
    kill -TERM "$pid" 2>/dev/null || true
    local deadline=$((SECONDS + 10))
    while kill -0 "$pid" 2>/dev/null && [ "$SECONDS" -lt "$deadline" ]; do
        sleep 0.2
    done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
}
