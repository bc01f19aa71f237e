#!/usr/bin/env bash
# Side-by-side benchmark: ferry and the anchor FTP servers (vsftpd, pure-ftpd, proftpd,
# pyftpdlib, django-ftpserver) measured by the same harness, in one run, on this machine.
#
#   benches/compare.sh HARNESS_DIR [--scale full|small] [--out FILE] [--no-anchors]
#                      [--modes "none explicit"]
#
# HARNESS_DIR holds ftpbench.py, run-anchors.sh, install-anchors.sh and summarize.py. The anchors
# are installed (idempotently) and measured by the harness's own run-anchors.sh, which needs root;
# `--no-anchors` measures ferry alone. ferry runs from a release build, fresh for each TLS mode,
# with its own database, root directory, port and passive range on 127.0.0.1.
#
# Password hashing is kept out of the comparison as the harness asks: the anchors log in with an
# MD5-crypt hash (about 0.1 ms), so ferry runs with argon2id at a cost of the same order
# (64 KiB, 1 pass; `--password-hash-memory-kib`/`--password-hash-passes`, which rehash the account at
# its first login). One more connect_rate run at ferry's default cost (19 MiB, 2 passes) shows what
# real password hashing costs (label `ferry-argon2id`).
#
# Prints the comparison tables (summarize.py) at the end; the raw JSON lines stay in --out.
set -euo pipefail

usage() { sed -n '2,17p' "$0"; }
[ $# -ge 1 ] || { usage >&2; exit 2; }
case "$1" in -h|--help) usage; exit 0 ;; esac
HARNESS="$(cd "$1" && pwd)"; shift
SCALE=full
OUT=""
ANCHORS=1
MODES="none explicit"
while [ $# -gt 0 ]; do
  case "$1" in
    --scale) SCALE=$2; shift 2 ;;
    --out) OUT=$2; shift 2 ;;
    --no-anchors) ANCHORS=0; shift ;;
    --modes) MODES=$2; shift 2 ;;
    -h|--help) usage; exit 0 ;;
    *) echo "unknown argument: $1" >&2; exit 2 ;;
  esac
done
for tool in ftpbench.py summarize.py; do
  [ -f "$HARNESS/$tool" ] || { echo "$HARNESS has no $tool: pass the harness directory" >&2; exit 2; }
done

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
WORK="$(mktemp -d /tmp/ferry-compare.XXXXXX)"
chmod 755 "$WORK"
OUT="${OUT:-$WORK/results.jsonl}"
PORT=21290
PASSIVE=29000-29999
USER_NAME=ftpbench
PASSWORD=ftpbench-pw
SERVER_PID=""

log() { echo "[$(date +%H:%M:%S)] $*" >&2; }

stop_ferry() {
  [ -n "$SERVER_PID" ] || return 0
  kill -TERM "$SERVER_PID" 2>/dev/null || true
  wait "$SERVER_PID" 2>/dev/null || true
  SERVER_PID=""
}
cleanup() { stop_ferry; rm -rf "$WORK/root"; }
trap cleanup EXIT
trap 'exit 130' INT TERM

log "building ferry (release)"
(cd "$REPO" && cargo build --release --locked --quiet)
FERRY="$REPO/target/release/ferry"

if [ "$ANCHORS" = 1 ]; then
  [ "$(id -u)" = 0 ] || { echo "the anchors need root (run-anchors.sh creates a system user); use --no-anchors to measure ferry alone" >&2; exit 2; }
  log "anchors: installing (idempotent) and measuring"
  "$HARNESS/run-anchors.sh" --install --scale "$SCALE" --runs 1 --modes "$MODES" --out "$OUT"
fi

openssl req -x509 -newkey rsa:2048 -nodes -keyout "$WORK/key.pem" -out "$WORK/cert.pem" \
  -days 30 -subj /CN=127.0.0.1 >/dev/null 2>&1
DB="$WORK/ferry.db"
"$FERRY" --db "$DB" user add "$USER_NAME" --home "$USER_NAME" <<<"$PASSWORD" \
  --password-stdin >/dev/null

start_ferry() {  # mode [extra serve args...]
  local mode=$1; shift
  local tls_args=()
  [ "$mode" = none ] || tls_args=(--certfile "$WORK/cert.pem" --keyfile "$WORK/key.pem" --tls-required none)
  mkdir -p "$WORK/root"
  RUST_LOG=warn "$FERRY" --db "$DB" serve "127.0.0.1:$PORT" --root "$WORK/root" \
    --passive-ports "$PASSIVE" --max-connections 4000 --max-per-ip 4000 "${tls_args[@]}" "$@" \
    </dev/null >"$WORK/ferry-$mode.log" 2>&1 &
  SERVER_PID=$!
  for _ in $(seq 1 100); do
    ss -Hltn "sport = :$PORT" 2>/dev/null | grep -q . && return 0
    kill -0 "$SERVER_PID" 2>/dev/null || break
    sleep 0.1
  done
  echo "ferry did not start: $(tail -3 "$WORK/ferry-$mode.log")" >&2
  exit 1
}

bench() {  # label mode extra-args...
  local label=$1 mode=$2; shift 2
  python3 "$HARNESS/ftpbench.py" --host 127.0.0.1 --port "$PORT" --user "$USER_NAME" \
    --password "$PASSWORD" --tls "$mode" --server-pid "$SERVER_PID" --scale "$SCALE" \
    --label "$label" --run 1 --out "$OUT" "$@" >/dev/null
}

for mode in $MODES; do
  log "ferry tls=$mode"
  start_ferry "$mode" --password-hash-memory-kib 64 --password-hash-passes 1
  bench ferry "$mode"
  stop_ferry
done

for mode in $MODES; do
  log "ferry tls=$mode: connect_rate with the default argon2id hash"
  start_ferry "$mode"
  bench ferry-argon2id "$mode" --workloads connect_rate
  stop_ferry
done

log "results: $OUT"
python3 "$HARNESS/summarize.py" "$OUT"
