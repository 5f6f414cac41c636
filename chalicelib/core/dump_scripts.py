"""The engine side's bash of each dump Job and restore Job, per engine (``core/dump_job.py`` builds the Jobs).

Only the engine's own tools run here, in the engine's image (no curl): a dump writes to stdout, a restore reads
stdin, and ``core/dump_transfer.py`` connects them through a FIFO to the uploader or downloader container.
The connection comes from the Job's environment (``core/dump_job.connection_env``).
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
    # The uploader gzips it (COMPRESS below): not every mysql image brings gzip.
    MYSQL_PWD="${LIFEBOAT_PASSWORD:-}" mysqldump --single-transaction --routines --triggers \\
        --host="$LIFEBOAT_HOST" --port="$LIFEBOAT_PORT" --user="$LIFEBOAT_USER" "${which[@]}"
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
    # The downloader gunzips it (DECOMPRESS below).
    MYSQL_PWD="${LIFEBOAT_PASSWORD:-}" mysql --host="$LIFEBOAT_HOST" --port="$LIFEBOAT_PORT" \\
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
    local port="${LIFEBOAT_SCRATCH_PORT:-6390}"  # the pod's own loopback: any free port
    redis-server --port "$port" --bind 127.0.0.1 --dir "$LIFEBOAT_WORK" --dbfilename dump.rdb --save '' \
        --appendonly no --logfile "$LIFEBOAT_WORK/scratch.log" &
    local scratch=$!
    # The restore runs in its own (background) subshell: this trap stops the scratch server however it ends, and
    # leaves the container's own EXIT trap alone.
    trap 'kill "$scratch" 2>/dev/null || true' EXIT
    until redis-cli -p "$port" ping 2>/dev/null | grep -q PONG; do
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
    for db in $(redis-cli -p "$port" info keyspace | sed -n 's/^db\([0-9]*\):.*/\1/p'); do
        redis-cli -p "$port" -n "$db" --scan | while IFS= read -r key; do
            printf 'MIGRATE %s %s "" %s 60000 COPY REPLACE %s KEYS %s\n' "$LIFEBOAT_HOST" "$LIFEBOAT_PORT" "$db" \
                "$auth" "$(lifeboat_quote "$key")"
        done | redis-cli -p "$port" -n "$db" > "$LIFEBOAT_WORK/migrated"
        if grep -v -x -e OK -e NOKEY "$LIFEBOAT_WORK/migrated" | head -n 1 | grep . >&2; then
            echo "lifeboat: MIGRATE into $LIFEBOAT_HOST:$LIFEBOAT_PORT database $db failed" >&2
            exit 1
        fi
        keys=$(( keys + $(wc -l < "$LIFEBOAT_WORK/migrated") ))
    done
    redis-cli -p "$port" shutdown nosave > /dev/null 2>&1 || true
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

# What each engine container runs beside bash, checked before anything else (a missing one is named at once).
DUMP_TOOLS = {
    "postgres": ("pg_dump",),
    "mysql": ("mysqldump",),
    "mongodb": ("mongodump",),
    "redis": ("redis-cli", "cat", "rm"),
    "elasticsearch": ("curl", "grep"),
}
RESTORE_TOOLS = {
    "postgres": ("pg_restore", "createdb"),
    "mysql": ("mysql",),
    "mongodb": ("mongorestore",),
    "redis": ("redis-server", "redis-cli", "cat", "sed", "grep", "wc", "tail", "head"),
    "elasticsearch": ("curl", "grep", "sed", "head"),
}
# The stream between the engine's tool and the stored file, run in the uploader (compress) and the downloader
# (decompress), whose image has gzip: the stored file is what the extension says (sql.gz for mysql).
COMPRESS = {"mysql": "gzip -c"}
DECOMPRESS = {"mysql": "gunzip -c"}
