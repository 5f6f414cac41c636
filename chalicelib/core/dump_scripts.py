"""The bash each dump Job and restore Job runs, per engine (``core/dumps.py`` builds the Jobs around them).

The connection comes from the Job's environment (``core/dumps._connection_env``); passwords go through the tools'
environment variables or a file in the work directory, never the command line.
"""

from __future__ import annotations

# Each engine's tool, writing the dump to stdout, and its version (for the manifest). The connection comes from
# LIFEBOAT_HOST/PORT/USER/PASSWORD/DATABASES; passwords go through the tools' environment variables or a file in the
# work directory, never the command line (other processes in the pod could read it there).
DUMP_COMMANDS = {
    "postgres": """
lifeboat_version() { pg_dump --version; }
lifeboat_dump() {
    PGPASSWORD="${LIFEBOAT_PASSWORD:-}" pg_dump --format=custom --no-password --host="$LIFEBOAT_HOST" \\
        --port="$LIFEBOAT_PORT" --username="$LIFEBOAT_USER" --dbname="$LIFEBOAT_DATABASES"
}
""",
    "mysql": """
lifeboat_version() { mysqldump --version; }
lifeboat_dump() {
    # One database: no CREATE DATABASE/USE in the dump, so it restores into any database name.
    local which=(--all-databases)
    read -r -a dbs <<< "$LIFEBOAT_DATABASES"
    if [ "${#dbs[@]}" = 1 ]; then which=("${dbs[0]}")
    elif [ "${#dbs[@]}" -gt 1 ]; then which=(--databases "${dbs[@]}"); fi
    MYSQL_PWD="${LIFEBOAT_PASSWORD:-}" mysqldump --single-transaction --routines --triggers \\
        --host="$LIFEBOAT_HOST" --port="$LIFEBOAT_PORT" --user="$LIFEBOAT_USER" "${which[@]}" | gzip -c
}
""",
    "mongodb": """
lifeboat_version() { mongodump --version | head -n 1; }
lifeboat_dump() {
    printf 'password: "%s"\\n' "${LIFEBOAT_PASSWORD:-}" > "$LIFEBOAT_WORK/mongo.yaml"
    local which=()
    [ -n "$LIFEBOAT_DATABASES" ] && which=(--db="$LIFEBOAT_DATABASES")
    mongodump --archive --gzip --host="$LIFEBOAT_HOST" --port="$LIFEBOAT_PORT" --username="$LIFEBOAT_USER" \\
        --authenticationDatabase=admin --config="$LIFEBOAT_WORK/mongo.yaml" "${which[@]}"
}
""",
    "redis": """
lifeboat_version() { redis-cli --version; }
lifeboat_dump() {
    # redis-cli --rdb writes a file (the server's BGSAVE, sent over the replication protocol).
    REDISCLI_AUTH="${LIFEBOAT_PASSWORD:-}" redis-cli -h "$LIFEBOAT_HOST" -p "$LIFEBOAT_PORT" \\
        --rdb "$LIFEBOAT_WORK/dump.rdb" >&2
    cat "$LIFEBOAT_WORK/dump.rdb"
    rm -f "$LIFEBOAT_WORK/dump.rdb"
}
""",
    "elasticsearch": """
lifeboat_version() {
    curl -fsS -u "$LIFEBOAT_USER:${LIFEBOAT_PASSWORD:-}" "$LIFEBOAT_URL/" | grep -o '"number" *: *"[^"]*"'
}
lifeboat_dump() {
    # The data goes into the cluster's own snapshot repository (registered by the user, named 'lifeboat');
    # what is stored here is the snapshot's description, which names it for a restore.
    local indices="${LIFEBOAT_DATABASES// /,}"
    curl -fsS -u "$LIFEBOAT_USER:${LIFEBOAT_PASSWORD:-}" -X PUT -H 'Content-Type: application/json' \\
        "$LIFEBOAT_URL/_snapshot/lifeboat/$LIFEBOAT_SNAPSHOT?wait_for_completion=true" \\
        -d "{\\"indices\\": \\"${indices:-*}\\", \\"include_global_state\\": false}"
}
LIFEBOAT_URL="${LIFEBOAT_SCHEME:-http}://$LIFEBOAT_HOST:$LIFEBOAT_PORT"
""",
}

# dump | tee (SHA-256, byte count) | split into parts, each PUT with curl to its presigned URL, then the report.
# First in every Job: an image without the tools the script needs fails at once, saying which one is missing (the
# engines' official images do not all bring curl; a policy's dumps[].image then names one that does).
PREFLIGHT = r"""
for lifeboat_tool in curl sha256sum split mkfifo; do
    command -v "$lifeboat_tool" > /dev/null 2>&1 || {
        echo "lifeboat: the image has no $lifeboat_tool; set the dump's image to one with bash, curl and GNU" \
            "coreutils beside the engine's tools" >&2
        exit 3
    }
done
"""

UPLOAD = r"""
W="${LIFEBOAT_WORK:?}"
U="${LIFEBOAT_UPLOAD_DIR:?}"
started=$(date +%s)
rm -f "$W/hash" "$W/count" "$W/parts-done"
mkfifo "$W/hash" "$W/count"
sha256sum < "$W/hash" | cut -d' ' -f1 > "$W/sha256" & hash_pid=$!
wc -c < "$W/count" | tr -d ' ' > "$W/size" & count_pid=$!
cat > "$W/put-part" <<'EOF'
set -euo pipefail
n=$(( 10#${FILE##*part-} ))
url=$(sed -n "${n}p" "$LIFEBOAT_UPLOAD_DIR/parts")
if [ -z "$url" ]; then
    echo "lifeboat: the dump is larger than the $(wc -l < "$LIFEBOAT_UPLOAD_DIR/parts") parts" \
        "of $LIFEBOAT_PART_SIZE bytes this run was given" >&2
    exit 1
fi
cat > "$LIFEBOAT_WORK/part"
curl -fsS --retry 3 --retry-all-errors -o /dev/null -T "$LIFEBOAT_WORK/part" "$url"
rm -f "$LIFEBOAT_WORK/part"
echo "$n" >> "$LIFEBOAT_WORK/parts-done"
EOF
lifeboat_dump | tee "$W/hash" "$W/count" \
    | split --bytes="${LIFEBOAT_PART_SIZE:?}" --numeric-suffixes=1 --suffix-length=5 \
        --filter="bash $W/put-part" - "$W/part-"
wait "$hash_pid" "$count_pid"
if [ ! -s "$W/parts-done" ]; then  # an empty dump: S3 wants one part, even an empty one
    FILE="$W/part-00001" bash "$W/put-part" < /dev/null
fi
report=$(printf '{"sha256": "%s", "size": %s, "parts": %s, "tool_version": "%s", "duration_s": %s}' \
    "$(cat "$W/sha256")" "$(cat "$W/size")" "$(wc -l < "$W/parts-done" | tr -d ' ')" \
    "$(lifeboat_version 2>/dev/null | head -n 1 | tr -d '"\\')" "$(( $(date +%s) - started ))")
curl -fsS --retry 3 --retry-all-errors -o /dev/null -X PUT -H 'Content-Type: application/json' \
    --data-binary "$report" "$(head -n 1 "$U/report")"
echo "$report" > /dev/termination-log 2>/dev/null || true
echo "$report"
"""

RESTORE_COMMANDS = {
    "postgres": """
lifeboat_restore() {
    if [ -n "${LIFEBOAT_CREATE_DATABASE:-}" ]; then
        PGPASSWORD="${LIFEBOAT_PASSWORD:-}" createdb --no-password --host="$LIFEBOAT_HOST" --port="$LIFEBOAT_PORT" \\
            --username="$LIFEBOAT_USER" "$LIFEBOAT_DATABASES"
    fi
    PGPASSWORD="${LIFEBOAT_PASSWORD:-}" pg_restore --no-password --no-owner --exit-on-error --host="$LIFEBOAT_HOST" \\
        --port="$LIFEBOAT_PORT" --username="$LIFEBOAT_USER" --dbname="$LIFEBOAT_DATABASES"
}
""",
    "mysql": """
lifeboat_restore() {
    if [ -n "${LIFEBOAT_CREATE_DATABASE:-}" ]; then
        MYSQL_PWD="${LIFEBOAT_PASSWORD:-}" mysql --host="$LIFEBOAT_HOST" --port="$LIFEBOAT_PORT" \\
            --user="$LIFEBOAT_USER" -e "CREATE DATABASE \\`$LIFEBOAT_DATABASES\\`" < /dev/null
    fi
    gunzip -c | MYSQL_PWD="${LIFEBOAT_PASSWORD:-}" mysql --host="$LIFEBOAT_HOST" --port="$LIFEBOAT_PORT" \\
        --user="$LIFEBOAT_USER" $LIFEBOAT_DATABASES
}
""",
    "mongodb": """
lifeboat_restore() {
    printf 'password: "%s"\\n' "${LIFEBOAT_PASSWORD:-}" > "$LIFEBOAT_WORK/mongo.yaml"
    local into=()
    [ -n "$LIFEBOAT_DATABASES" ] && into=(--nsFrom="$LIFEBOAT_SOURCE_DATABASE.*" --nsTo="$LIFEBOAT_DATABASES.*")
    mongorestore --archive --gzip --host="$LIFEBOAT_HOST" --port="$LIFEBOAT_PORT" --username="$LIFEBOAT_USER" \\
        --authenticationDatabase=admin --config="$LIFEBOAT_WORK/mongo.yaml" "${into[@]}"
}
""",
    "redis": r"""
lifeboat_restore() {
    # An RDB is loaded only by a server at its start: a scratch redis-server in this pod loads it, then MIGRATE
    # (COPY REPLACE) sends every key to the target, each into its own database number. The commands go to
    # redis-cli on stdin, so the target's password is never on a command line; keys are quoted for it, and a key
    # whose name holds a newline cannot be listed by --scan one a line, so it is not supported.
    cat > "$LIFEBOAT_WORK/dump.rdb"
    redis-server --port 6390 --bind 127.0.0.1 --dir "$LIFEBOAT_WORK" --dbfilename dump.rdb --save '' \
        --appendonly no --logfile "$LIFEBOAT_WORK/scratch.log" &
    local scratch=$!
    until redis-cli -p 6390 ping 2>/dev/null | grep -q PONG; do
        if ! kill -0 "$scratch" 2>/dev/null; then
            echo "lifeboat: the scratch redis-server did not load the RDB:" \
                "$(tail -n 1 "$LIFEBOAT_WORK/scratch.log")" >&2
            exit 1
        fi
        sleep 1
    done
    local auth=""
    if [ -n "${LIFEBOAT_PASSWORD:-}" ]; then auth="AUTH $(lifeboat_quote "$LIFEBOAT_PASSWORD")"; fi
    local db keys=0
    for db in $(redis-cli -p 6390 info keyspace | sed -n 's/^db\([0-9]*\):.*/\1/p'); do
        redis-cli -p 6390 -n "$db" --scan --count 1000 | while IFS= read -r key; do
            printf 'MIGRATE %s %s "" %s 60000 COPY REPLACE %s KEYS %s\n' "$LIFEBOAT_HOST" "$LIFEBOAT_PORT" "$db" \
                "$auth" "$(lifeboat_quote "$key")"
        done | redis-cli -p 6390 -n "$db" > "$LIFEBOAT_WORK/migrated"
        if grep -v -x -e OK -e NOKEY "$LIFEBOAT_WORK/migrated" | head -n 1 | grep . >&2; then
            echo "lifeboat: MIGRATE into $LIFEBOAT_HOST:$LIFEBOAT_PORT database $db failed" >&2
            exit 1
        fi
        keys=$(( keys + $(wc -l < "$LIFEBOAT_WORK/migrated") ))
    done
    redis-cli -p 6390 shutdown nosave > /dev/null 2>&1 || true
    wait "$scratch" 2>/dev/null || true
    echo "lifeboat: $keys keys restored"
}
# A value double-quoted for redis-cli's parser: backslashes and double quotes escaped.
lifeboat_quote() { local v="${1//\\/\\\\}"; v="${v//\"/\\\"}"; printf '"%s"' "$v"; }
""",
    "elasticsearch": r"""
lifeboat_restore() {
    # The artifact is the snapshot's description; the data is in the snapshot repository named 'lifeboat', which
    # the target cluster must have registered (read-only is enough) on the bucket the source wrote it to.
    cat > "$LIFEBOAT_WORK/snapshot.json"
    local snapshot
    snapshot=$(grep -o '"snapshot" *: *"[^"]*"' "$LIFEBOAT_WORK/snapshot.json" | head -n 1 | sed 's/.*: *"//; s/"$//')
    if [ -z "$snapshot" ] || ! grep -q '"state" *: *"SUCCESS"' "$LIFEBOAT_WORK/snapshot.json"; then
        echo "lifeboat: the artifact does not describe a successful snapshot:" \
            "$(head -c 300 "$LIFEBOAT_WORK/snapshot.json")" >&2
        exit 1
    fi
    local body='{"include_global_state": false'
    if [ -n "$LIFEBOAT_DATABASES" ]; then  # a prefix: each index restored as <prefix>_<index>, beside the originals
        body+=", \"rename_pattern\": \"(.+)\", \"rename_replacement\": \"${LIFEBOAT_DATABASES}_\$1\""
    fi
    curl -fsS -u "$LIFEBOAT_USER:${LIFEBOAT_PASSWORD:-}" -X POST -H 'Content-Type: application/json' \
        "$LIFEBOAT_URL/_snapshot/lifeboat/$snapshot/_restore?wait_for_completion=true" -d "$body}"
}
LIFEBOAT_URL="${LIFEBOAT_SCHEME:-http}://$LIFEBOAT_HOST:$LIFEBOAT_PORT"
""",
}
