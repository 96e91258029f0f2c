# obs-local (this package's OBS-compatible server) on a free loopback port. Sourced, never run;
# needs common.sh. Use from the main shell: the server gets SIGKILL when that shell dies.
#
#   obs_local_start BIN DIR [ARG...]  start BIN (the obs-local executable) with --listen
#                                     127.0.0.1:0 and --data-dir DIR/data, plus ARG...; returns once
#                                     it has printed "obs-local listening on http://127.0.0.1:PORT".
#                                     Sets OBS_LOCAL_PID and OBS_LOCAL_URL; its output is in DIR/obs-local.log.
#   obs_local_stop                    SIGTERM, then SIGKILL after 10 s.

obs_local_start() {
    local bin="$1" dir="$2"; shift 2
    [ -x "$bin" ] || die "obs-local not found at $bin (build it with swift build)"
    mkdir -p "$dir/data"
    setpriv --pdeathsig KILL -- "$bin" --listen 127.0.0.1:0 --data-dir "$dir/data" "$@" \
        >"$dir/obs-local.log" 2>&1 </dev/null &
    OBS_LOCAL_PID=$!
    OBS_LOCAL_URL=""
    local deadline=$((SECONDS + 30))
    while [ -z "$OBS_LOCAL_URL" ]; do
        OBS_LOCAL_URL="$(sed -n 's|^obs-local listening on \(http://127\.0\.0\.1:[0-9][0-9]*\).*|\1|p' \
            "$dir/obs-local.log" | head -n 1)"
        [ -n "$OBS_LOCAL_URL" ] && break
        if ! kill -0 "$OBS_LOCAL_PID" 2>/dev/null; then
            tail -n 20 "$dir/obs-local.log" >&2
            die "obs-local exited before printing its listening line (log: $dir/obs-local.log)"
        fi
        [ "$SECONDS" -lt "$deadline" ] || die "obs-local printed no listening line within 30 s"
        sleep 0.1
    done
}

obs_local_stop() {
    stop_process "${OBS_LOCAL_PID:-}"
    OBS_LOCAL_PID=""
}
