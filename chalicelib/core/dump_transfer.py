"""The bash of a dump pod's two containers and how they hand the stream over: a FIFO and status files in an emptyDir.

A dump pod runs the engine's tool in the engine's own image (no curl in it) and, beside it, an uploader container
(bash, curl, coreutils) that makes the FIFO ``dump.fifo``, reads it, hashes, splits and PUTs the parts. Each side
writes its exit status into the emptyDir when it ends (``engine.status``, ``uploader.status``); the uploader sends
the report, the one thing that makes Lifeboat complete the upload, only once the engine's status is 0. A restore pod
is the mirror: a downloader container writes the artifact into ``restore.fifo``, the engine's tool reads it, and the
engine container fails when the downloader's status is not 0 (a restore fed a truncated stream is not a success).

A FIFO's open blocks until the other end opens too, so each side watches the other's status file and its own
deadline (``LIFEBOAT_TIMEOUT``, the dump's timeout, which is also the Job's ``activeDeadlineSeconds``).
"""

from __future__ import annotations

from collections.abc import Iterable

from chalicelib.core.dump_scripts import (
    COMPRESS,
    DECOMPRESS,
    DUMP_COMMANDS,
    DUMP_TOOLS,
    RESTORE_COMMANDS,
    RESTORE_TOOLS,
)

UPLOADER_TOOLS = ("curl", "sha256sum", "split", "mkfifo", "tee", "wc", "cut", "tr", "sed", "head", "tail", "date")
DOWNLOADER_TOOLS = ("curl", "mkfifo", "head", "tail", "tr")

_START = r"""set -euo pipefail
W="${LIFEBOAT_WORK:?}"
T="${LIFEBOAT_TIMEOUT:?}"
"""

# Both containers: wait for a file, watch a process, fail with a message that becomes the termination message.
_COMMON = r"""
# lifeboat_await -p|-s PATH [PEER_STATUS]: until PATH is a FIFO (-p) or a non-empty file (-s); fails at the deadline
# or when the other container has ended (its status file is there).
lifeboat_await() {
    until [ "$1" "$2" ]; do
        if [ -n "${3:-}" ] && [ -s "$3" ]; then return 1; fi
        if (( SECONDS >= T )); then return 1; fi
        sleep 1
    done
}
# lifeboat_watch PID PEER_STATUS FIFO: PID's exit status. When the other container ended with a non-zero status,
# PID may be blocked opening the FIFO for ever: opening it here read-write (which never blocks) releases that open,
# so PID sees end-of-file or a broken pipe and ends. At the deadline PID is killed: status 124.
lifeboat_watch() {
    local pid=$1 peer=$2 fifo=$3 status=0
    while kill -0 "$pid" 2>/dev/null; do
        if [ -s "$peer" ] && [ "$(< "$peer")" != 0 ]; then : <> "$fifo"; fi
        if (( SECONDS >= T )); then
            kill "$pid" 2>/dev/null || true
            return 124
        fi
        sleep 1
    done
    wait "$pid" || status=$?
    return "$status"
}
lifeboat_fail() {
    echo "lifeboat: $*" >&2
    echo "lifeboat: $*" > "${LIFEBOAT_TERMINATION_LOG:-/dev/termination-log}" 2>/dev/null || true
    exit 5
}
# What the engine's tool said last, on one line (for the message that names its failure).
lifeboat_engine_said() { tail -c 600 "$W/engine.err" 2>/dev/null | tr '\n' ' ' || true; }
"""

_ENGINE_DUMP = r"""
lifeboat_version 2>/dev/null | head -n 1 > "$W/engine.version" || true
if ! lifeboat_await -p "$W/dump.fifo" "$W/uploader.status"; then
    echo "lifeboat: the uploader container did not open $W/dump.fifo (it ended, or ${T}s passed)" >&2
    exit 4
fi
lifeboat_dump > "$W/dump.fifo" 2> "$W/engine.err" &
status=0
lifeboat_watch "$!" "$W/uploader.status" "$W/dump.fifo" || status=$?
if [ -s "$W/engine.err" ]; then echo "$(< "$W/engine.err")" >&2; fi
if [ "$status" = 141 ]; then
    echo "lifeboat: the dump's tool was cut off (SIGPIPE, status 141): the uploader stopped reading" >&2
elif [ "$status" != 0 ]; then echo "lifeboat: the dump's tool exited with status $status" >&2; fi
exit "$status"
"""

_UPLOADER = r"""
U="${LIFEBOAT_UPLOAD_DIR:?}"
started=$(date +%s)
rm -f "$W/hash" "$W/count" "$W/parts-done" "$W/dump.fifo" "$W/upload.err"
lifeboat_upload_said() { tail -n 1 "$W/upload.err" 2>/dev/null || true; }
mkfifo "$W/hash" "$W/count"
sha256sum < "$W/hash" > "$W/sha256" & hash_pid=$!
wc -c < "$W/count" > "$W/size" & count_pid=$!
cat > "$W/put-part" <<'EOF'
set -euo pipefail
n=$(( 10#${FILE##*part-} ))
url=$(sed -n "${n}p" "$LIFEBOAT_UPLOAD_DIR/parts")
if [ -z "$url" ]; then
    echo "lifeboat: the dump is larger than the $(wc -l < "$LIFEBOAT_UPLOAD_DIR/parts") parts" \
        "of $LIFEBOAT_PART_SIZE bytes this run was given" | tee -a "$LIFEBOAT_WORK/upload.err" >&2
    exit 1
fi
cat > "$LIFEBOAT_WORK/part"
if ! curl -fsS --retry 3 --retry-all-errors -o /dev/null -T "$LIFEBOAT_WORK/part" "$url" \
    2> "$LIFEBOAT_WORK/part.err"; then
    echo "lifeboat: the PUT of part $n failed: $(tr '\n' ' ' < "$LIFEBOAT_WORK/part.err")" \
        | tee -a "$LIFEBOAT_WORK/upload.err" >&2
    exit 1
fi
rm -f "$LIFEBOAT_WORK/part"
echo "$n" >> "$LIFEBOAT_WORK/parts-done"
EOF
mkfifo "$W/dump.fifo"
{
    lifeboat_filter < "$W/dump.fifo" | tee "$W/hash" "$W/count" \
        | split --bytes="${LIFEBOAT_PART_SIZE:?}" --numeric-suffixes=1 --suffix-length=5 \
            --filter="bash $W/put-part" - "$W/part-"
} &
upload=0
lifeboat_watch "$!" "$W/engine.status" "$W/dump.fifo" || upload=$?
if [ "$upload" = 124 ]; then
    kill "$hash_pid" "$count_pid" 2>/dev/null || true
    lifeboat_fail "the dump did not finish within ${T}s; the upload is not completed"
fi
if ! lifeboat_await -s "$W/engine.status"; then
    kill "$hash_pid" "$count_pid" 2>/dev/null || true
    lifeboat_fail "the engine container reported no exit status within ${T}s; the upload is not completed"
fi
engine=$(< "$W/engine.status")
# An upload that broke first closes the FIFO under the engine's tool, which then dies of SIGPIPE (status 141): the
# upload is what failed, so it is what the message names.
if [ "$upload" != 0 ] && [ "$engine" = 141 ]; then
    kill "$hash_pid" "$count_pid" 2>/dev/null || true
    lifeboat_fail "the upload failed with exit status $upload, which cut off the dump; the upload is not completed:" \
        "$(lifeboat_upload_said)"
fi
if [ "$engine" != 0 ]; then
    kill "$hash_pid" "$count_pid" 2>/dev/null || true
    lifeboat_fail "the engine container's dump failed with exit status $engine; the upload is not completed:" \
        "$(lifeboat_engine_said)"
fi
if [ "$upload" != 0 ]; then
    kill "$hash_pid" "$count_pid" 2>/dev/null || true
    lifeboat_fail "the upload failed with exit status $upload; the upload is not completed: $(lifeboat_upload_said)"
fi
wait "$hash_pid" "$count_pid"
if [ ! -s "$W/parts-done" ]; then  # an empty dump: S3 wants one part, even an empty one
    FILE="$W/part-00001" bash "$W/put-part" < /dev/null
fi
report=$(printf '{"sha256": "%s", "size": %s, "parts": %s, "tool_version": "%s", "duration_s": %s}' \
    "$(cut -d' ' -f1 "$W/sha256")" "$(tr -d ' ' < "$W/size")" "$(wc -l < "$W/parts-done" | tr -d ' ')" \
    "$(head -n 1 "$W/engine.version" 2>/dev/null | tr -d '"\\' || true)" "$(( $(date +%s) - started ))")
curl -fsS --retry 3 --retry-all-errors -o /dev/null -X PUT -H 'Content-Type: application/json' \
    --data-binary "$report" "$(head -n 1 "$U/report")"
echo "$report" > "${LIFEBOAT_TERMINATION_LOG:-/dev/termination-log}" 2>/dev/null || true
echo "$report"
"""

_DOWNLOADER = r"""
rm -f "$W/restore.fifo"
mkfifo "$W/restore.fifo"
{ curl -fsS --retry 3 "$(head -n 1 "${LIFEBOAT_GET_URL_FILE:?}")" | lifeboat_filter > "$W/restore.fifo"; } &
download=0
lifeboat_watch "$!" "$W/engine.status" "$W/restore.fifo" || download=$?
if [ -s "$W/engine.status" ] && [ "$(< "$W/engine.status")" != 0 ]; then
    lifeboat_fail "the engine container's restore failed with exit status $(< "$W/engine.status")"
fi
if [ "$download" = 124 ]; then lifeboat_fail "the download did not finish within ${T}s"; fi
if [ "$download" != 0 ]; then lifeboat_fail "the download of the dump failed with exit status $download"; fi
"""

_ENGINE_RESTORE = r"""
if ! lifeboat_await -p "$W/restore.fifo" "$W/download.status"; then
    echo "lifeboat: the downloader container did not open $W/restore.fifo (it ended, or ${T}s passed)" >&2
    exit 4
fi
lifeboat_restore < "$W/restore.fifo" &
status=0
lifeboat_watch "$!" "$W/download.status" "$W/restore.fifo" || status=$?
if [ "$status" != 0 ]; then
    echo "lifeboat: the restore's tool exited with status $status" >&2
    exit "$status"
fi
if ! lifeboat_await -s "$W/download.status"; then
    echo "lifeboat: the downloader container reported no exit status within ${T}s" >&2
    exit 5
fi
if [ "$(< "$W/download.status")" != 0 ]; then
    echo "lifeboat: the download failed (status $(< "$W/download.status")): what was restored may be partial" >&2
    exit 5
fi
"""


def _preflight(tools: Iterable[str], container: str) -> str:
    """First in every container: an image without a tool the script needs fails at once, naming it."""
    names = " ".join(tools)
    return (
        f"for lifeboat_tool in {names}; do\n"
        '    command -v "$lifeboat_tool" > /dev/null 2>&1 || {\n'
        f'        echo "lifeboat: the {container} container\'s image has no $lifeboat_tool (it needs bash and {names})"'
        " >&2\n"
        "        exit 3\n"
        "    }\n"
        "done\n"
    )


def _reports_status(name: str) -> str:
    """Writes the container's exit status into the emptyDir however it ends (the other container waits for it)."""
    return f'trap \'echo "$?" > "$W/{name}.status"\' EXIT\n'


def _filter(command: str) -> str:
    return f"lifeboat_filter() {{ {command}; }}\n"


def engine_dump_script(engine: str) -> str:
    """The engine container of a dump: the engine's tool into ``dump.fifo``, then its exit status."""
    tools = (*DUMP_TOOLS[engine], "head", "sleep")
    return (
        _START + _reports_status("engine") + _preflight(tools, "dump") + _COMMON + DUMP_COMMANDS[engine] + _ENGINE_DUMP
    )


def uploader_script(engine: str) -> str:
    """The uploader container of a dump: ``dump.fifo`` hashed, split and PUT, the report once the engine succeeded."""
    compress = COMPRESS.get(engine)
    tools = (*UPLOADER_TOOLS, "sleep", *([compress.split()[0]] if compress else []))
    return (
        _START
        + _reports_status("uploader")
        + _preflight(tools, "upload")
        + _COMMON
        + _filter(compress or "cat")
        + _UPLOADER
    )


def downloader_script(engine: str) -> str:
    """The downloader container of a restore: the artifact's presigned GET into ``restore.fifo``."""
    decompress = DECOMPRESS.get(engine)
    tools = (*DOWNLOADER_TOOLS, "sleep", *([decompress.split()[0]] if decompress else []))
    return (
        _START
        + _reports_status("download")
        + _preflight(tools, "download")
        + _COMMON
        + _filter(decompress or "cat")
        + _DOWNLOADER
    )


def engine_restore_script(engine: str) -> str:
    """The engine container of a restore: ``restore.fifo`` into the engine's tool, failing when the download did."""
    tools = (*RESTORE_TOOLS[engine], "sleep")
    return (
        _START
        + _reports_status("engine")
        + _preflight(tools, "restore")
        + _COMMON
        + RESTORE_COMMANDS[engine]
        + _ENGINE_RESTORE
    )
