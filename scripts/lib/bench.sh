# Shared helpers of the shell benchmarks (scripts/bench, scripts/bench-peers). Sourced, never
# run; needs common.sh.
#
#   bench_begin_run NAME   makes the run's temporary directory .tmp/NAME.XXXXXX (sets BENCH_WORK),
#                          exports a fresh OBSMOUNT_RUN_TOKEN that every process started from now on
#                          inherits, and starts the watchdog that ends them all, unmounts what is
#                          left under BENCH_WORK and removes it once this shell is gone, however it
#                          ended (scripts/lib/reaper.py).
#   bench_end_run          the same at once (for the exit trap).
#   cpu_seconds PID        user + system CPU seconds of a running process (threads included).
#   peak_rss_mib PID       its peak resident set (VmHWM), MiB.
#   rss_mib PID            its resident set now (VmRSS), MiB.
#   fuse_wait_mounted MNT PID LOG   waits (30 s) until the FUSE daemon PID has mounted MNT; fails
#                          with the end of LOG on stderr when it exits first or does not mount in time.
#   fuse_unmount MNT PID   fusermount3 -u, retried for 20 s while the mount is busy, then lazily;
#                          waits (30 s) for PID to exit, SIGKILL after that. Fails when it had to
#                          force anything.
#   machine_description    "N cores (CPU model), M GiB memory".

bench_begin_run() {
    local name="$1"
    mkdir -p "$REPO_ROOT/.tmp"
    OBSMOUNT_RUN_TOKEN="$(python3 -c 'import secrets; print(secrets.token_hex(16))')"
    export OBSMOUNT_RUN_TOKEN
    BENCH_WORK="$(mktemp -d "$REPO_ROOT/.tmp/$name.XXXXXX")"
    env -u OBSMOUNT_RUN_TOKEN setsid python3 "$REPO_ROOT/scripts/lib/reaper.py" watch --pid $$ \
        --token "$OBSMOUNT_RUN_TOKEN" --dir "$BENCH_WORK" </dev/null >/dev/null 2>&1 &
}

bench_end_run() {
    env -u OBSMOUNT_RUN_TOKEN python3 "$REPO_ROOT/scripts/lib/reaper.py" reap \
        --token "$OBSMOUNT_RUN_TOKEN" --dir "$BENCH_WORK"
}

BENCH_CLOCK_TICKS="$(getconf CLK_TCK)"

cpu_seconds() {
    awk -v hz="$BENCH_CLOCK_TICKS" '{ sub(/^.*\) /, ""); printf "%.2f", ($12 + $13) / hz }' "/proc/$1/stat"
}

peak_rss_mib() {
    awk '/^VmHWM:/ { printf "%.0f", $2 / 1024 }' "/proc/$1/status"
}

rss_mib() {
    awk '/^VmRSS:/ { printf "%.0f", $2 / 1024 }' "/proc/$1/status"
}

fuse_wait_mounted() {
    local mnt="$1" pid="$2" log="$3" deadline=$((SECONDS + 30))
    until grep -q " $mnt fuse" /proc/self/mounts; do
        if ! kill -0 "$pid" 2>/dev/null || [ "$SECONDS" -ge "$deadline" ]; then
            tail -n 20 "$log" >&2
            printf 'error: %s not mounted (log above: %s)\n' "$mnt" "$log" >&2
            return 1
        fi
        sleep 0.1
    done
}

fuse_unmount() {
    local mnt="$1" pid="$2"
    [ -n "$pid" ] || return 0
    local status=0 deadline=$((SECONDS + 20))
    while grep -q " $mnt fuse" /proc/self/mounts; do
        fusermount3 -u "$mnt" 2>/dev/null && break
        if [ "$SECONDS" -ge "$deadline" ]; then
            fusermount3 -u -z "$mnt" || true
            status=1
            break
        fi
        sleep 0.5
    done
    deadline=$((SECONDS + 30))
    while kill -0 "$pid" 2>/dev/null && [ "$SECONDS" -lt "$deadline" ]; do sleep 0.1; done
    if kill -0 "$pid" 2>/dev/null; then
        kill -KILL "$pid" 2>/dev/null || true
        status=1
    fi
    wait "$pid" 2>/dev/null || status=$?
    return "$status"
}

machine_description() {
    printf '%s cores (%s), %s GiB memory' "$(nproc)" \
        "$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1)" \
        "$(awk '/^MemTotal:/ { printf "%.1f", $2 / 1048576 }' /proc/meminfo)"
}
