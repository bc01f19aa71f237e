#!/usr/bin/env bash
# Side-by-side benchmark: ferry and the anchor FTP servers (vsftpd, pure-ftpd, proftpd,
# pyftpdlib, django-ftpserver) measured by the same harness, in one run, on this machine.
#
#   benches/compare.sh HARNESS_DIR [--scale full|small] [--out FILE] [--no-anchors]
#                      [--modes "none explicit"] [--s3] [--tmpfs DIR] [--rounds N]
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
# `--s3` adds ferry on object storage (label `ferry-s3`): a single-node Garage (`garage` on PATH,
# or $GARAGE) on 127.0.0.1, its bucket the homes' storage, measured on retr_big, stor_big and
# small_files in plain FTP, beside the runs on local disk above.
#
# `--tmpfs DIR` puts every server's files (the anchors' roots and ferry's) under DIR, which must be
# a tmpfs (e.g. /dev/shm), so that the state of a disk does not decide the upload rows.
# `--rounds N` alternates N rounds (the anchors, then ferry; each round numbered as a run, so the
# tables show every round's value), and after each plain ferry round runs small_files once more on
# the same server, over the files it left (label `ferry-overwrite`): the cost of replacing files.
#
# Prints the comparison tables (summarize.py) at the end; the raw JSON lines stay in --out.
set -euo pipefail

usage() { sed -n '2,29p' "$0"; }
[ $# -ge 1 ] || { usage >&2; exit 2; }
case "$1" in -h|--help) usage; exit 0 ;; esac
HARNESS="$(cd "$1" && pwd)"; shift
SCALE=full
OUT=""
ANCHORS=1
MODES="none explicit"
S3=0
TMPFS=""
ROUNDS=1
while [ $# -gt 0 ]; do
  case "$1" in
    --s3) S3=1; shift ;;
    --scale) SCALE=$2; shift 2 ;;
    --out) OUT=$2; shift 2 ;;
    --no-anchors) ANCHORS=0; shift ;;
    --modes) MODES=$2; shift 2 ;;
    --tmpfs) TMPFS=$2; shift 2 ;;
    --rounds) ROUNDS=$2; shift 2 ;;
    -h|--help) usage; exit 0 ;;
    *) echo "unknown argument: $1" >&2; exit 2 ;;
  esac
done
for tool in ftpbench.py summarize.py; do
  [ -f "$HARNESS/$tool" ] || { echo "$HARNESS has no $tool: pass the harness directory" >&2; exit 2; }
done

case "$ROUNDS" in ''|*[!0-9]*|0) echo "--rounds wants a positive number, not '$ROUNDS'" >&2; exit 2 ;; esac
if [ -n "$TMPFS" ]; then
  [ "$(stat -f -c %T "$TMPFS" 2>/dev/null)" = tmpfs ] ||
    { echo "--tmpfs $TMPFS: not a tmpfs mount (try /dev/shm, or: mount -t tmpfs tmpfs DIR)" >&2; exit 2; }
  export BENCH_TMP="$TMPFS"
fi

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
WORK="$(mktemp -d "${TMPFS:-/tmp}/ferry-compare.XXXXXX")"
chmod 755 "$WORK"
OUT="${OUT:-$WORK/results.jsonl}"
PORT=21290
PASSIVE=29000-29999
USER_NAME=ftpbench
PASSWORD=ftpbench-pw
SERVER_PID=""
GARAGE_PID=""

log() { echo "[$(date +%H:%M:%S)] $*" >&2; }

stop_ferry() {
  [ -n "$SERVER_PID" ] || return 0
  kill -TERM "$SERVER_PID" 2>/dev/null || true
  wait "$SERVER_PID" 2>/dev/null || true
  SERVER_PID=""
}
stop_garage() {
  [ -n "$GARAGE_PID" ] || return 0
  kill -TERM "$GARAGE_PID" 2>/dev/null || true
  wait "$GARAGE_PID" 2>/dev/null || true
  GARAGE_PID=""
}
cleanup() { stop_ferry; stop_garage; rm -rf "$WORK/root" "$WORK/garage" "$WORK/anchors.jsonl"; }
trap cleanup EXIT
trap 'exit 130' INT TERM

log "building ferry (release)"
(cd "$REPO" && cargo build --release --locked --quiet)
FERRY="$REPO/target/release/ferry"

if [ "$ANCHORS" = 1 ]; then
  [ "$(id -u)" = 0 ] || { echo "the anchors need root (run-anchors.sh creates a system user); use --no-anchors to measure ferry alone" >&2; exit 2; }
fi
anchors() {  # round
  [ "$ANCHORS" = 1 ] || return 0
  log "anchors, round $1: installing (idempotent) and measuring"
  rm -f "$WORK/anchors.jsonl"
  "$HARNESS/run-anchors.sh" --install --scale "$SCALE" --runs 1 --modes "$MODES" \
    --out "$WORK/anchors.jsonl"
  # run-anchors.sh numbers its only run 1: renumber it as this round.
  python3 -c 'import json, sys
for line in open(sys.argv[1]):
    record = json.loads(line)
    record["run"] = int(sys.argv[2])
    print(json.dumps(record))' "$WORK/anchors.jsonl" "$1" >>"$OUT"
}

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

ROUND=1
bench() {  # label mode extra-args...
  local label=$1 mode=$2; shift 2
  python3 "$HARNESS/ftpbench.py" --host 127.0.0.1 --port "$PORT" --user "$USER_NAME" \
    --password "$PASSWORD" --tls "$mode" --server-pid "$SERVER_PID" --scale "$SCALE" \
    --label "$label" --run "$ROUND" --out "$OUT" "$@" >/dev/null
}

for ROUND in $(seq 1 "$ROUNDS"); do
  anchors "$ROUND"
  for mode in $MODES; do
    log "ferry tls=$mode, round $ROUND"
    rm -rf "$WORK/root"
    start_ferry "$mode" --password-hash-memory-kib 64 --password-hash-passes 1
    bench ferry "$mode"
    if [ "$mode" = none ]; then
      log "ferry tls=$mode, round $ROUND: small_files over the files of the first pass"
      bench ferry-overwrite "$mode" --workloads small_files
    fi
    stop_ferry
  done
done

for mode in $MODES; do
  log "ferry tls=$mode: connect_rate with the default argon2id hash"
  start_ferry "$mode"
  bench ferry-argon2id "$mode" --workloads connect_rate
  stop_ferry
done

if [ "$S3" = 1 ]; then
  GARAGE="${GARAGE:-$(command -v garage || true)}"
  [ -x "$GARAGE" ] || { echo "--s3 needs Garage: cargo install garage --locked, or set GARAGE" >&2; exit 2; }
  log "ferry on S3 ($("$GARAGE" --version 2>/dev/null | head -1))"
  mkdir -p "$WORK/garage"
  cat >"$WORK/garage/garage.toml" <<EOF
metadata_dir = "$WORK/garage/meta"
data_dir = "$WORK/garage/data"
db_engine = "sqlite"
replication_factor = 1
compression_level = "none"
rpc_bind_addr = "127.0.0.1:21391"
rpc_public_addr = "127.0.0.1:21391"
rpc_secret = "$(openssl rand -hex 32)"
[s3_api]
s3_region = "garage"
api_bind_addr = "127.0.0.1:21390"
[admin]
api_bind_addr = "127.0.0.1:21393"
admin_token = "$(openssl rand -hex 16)"
EOF
  export AWS_ACCESS_KEY_ID="GK$(openssl rand -hex 12)" AWS_SECRET_ACCESS_KEY="$(openssl rand -hex 32)"
  export AWS_ENDPOINT_URL=http://127.0.0.1:21390 AWS_REGION=garage
  GARAGE_DEFAULT_ACCESS_KEY="$AWS_ACCESS_KEY_ID" GARAGE_DEFAULT_SECRET_KEY="$AWS_SECRET_ACCESS_KEY" \
    GARAGE_DEFAULT_BUCKET=ferry-bench RUST_LOG=garage=warn \
    "$GARAGE" -c "$WORK/garage/garage.toml" server --single-node --default-access-key \
    --default-bucket </dev/null >"$WORK/garage.log" 2>&1 &
  GARAGE_PID=$!
  for _ in $(seq 1 100); do
    curl -fsS "http://127.0.0.1:21393/health" >/dev/null 2>&1 && break
    kill -0 "$GARAGE_PID" 2>/dev/null || { echo "garage did not start: $(tail -3 "$WORK/garage.log")" >&2; exit 1; }
    sleep 0.1
  done
  start_ferry none --password-hash-memory-kib 64 --password-hash-passes 1 \
    --storage s3://ferry-bench/homes
  bench ferry-s3 none --workloads retr_big,stor_big,small_files
  stop_ferry
  stop_garage
fi

log "results: $OUT"
python3 "$HARNESS/summarize.py" "$OUT"
