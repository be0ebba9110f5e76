#!/usr/bin/env bash
# Where does Keel's time go? One bench run against a Keel node started under `node --cpu-prof`, on a
# fresh database of the dev Postgres, with Postgres and Keel counters taken before and after.
# NOT run by CI. Needs the build (npx tsc -b tsconfig.json).
#
#   packages/bench/scripts/profile-keel.sh OUT_DIR [bench args...]
#     default bench args: throughput --producers 4 --consumers 4 --in-flight 64 --count 200000 --duration-ms 20000
#     over STOMP; with `--protocol native` among them, over @keel/client to the native port
#
# Writes OUT_DIR/: *.cpuprofile (the broker), cpuprofile-top.txt / .json (self time by function and
# by area), pg-before.txt / pg-after.txt (pg_stat_database of the node's database, WAL position,
# pg_stat_bgwriter / pg_stat_wal), metrics-before.txt / metrics-after.txt (the node's /metrics),
# bench.json (the run). Stops the node by PID and drops the database.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../../.." && pwd)
OUT=${1:?usage: profile-keel.sh OUT_DIR [bench args...]}
shift
ARGS=("$@")
[ ${#ARGS[@]} -gt 0 ] || ARGS=(throughput --producers 4 --consumers 4 --in-flight 64 --count 200000 --duration-ms 20000)
PG=${PG:-postgres://postgres@127.0.0.1:55432}
DB=keel_prof_$(date +%s)
STOMP_PORT=${KEEL_STOMP_PORT:-61821}
NATIVE_PORT=${KEEL_PORT:-61820}
# The bench over STOMP unless its arguments ask for `--protocol native` (@keel/client over tcp://).
URL="stomp://127.0.0.1:$STOMP_PORT"
for ((i = 0; i + 1 < ${#ARGS[@]}; i++)); do
  [ "${ARGS[i]}" = --protocol ] && [ "${ARGS[i + 1]}" = native ] && URL="tcp://127.0.0.1:$NATIVE_PORT"
done
ADMIN_PORT=${KEEL_ADMIN_PORT:-8821}
mkdir -p "$OUT/prof"
cd "$ROOT"

pid=
cleanup() {
  if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid"
    for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$pid" 2>/dev/null && kill -KILL "$pid"
  fi
  psql "$PG/postgres" -qc "DROP DATABASE IF EXISTS $DB WITH (FORCE)" >/dev/null 2>&1 || true
  # The node's lease locker keeps its lock in a sibling database.
  psql "$PG/postgres" -qc "DROP DATABASE IF EXISTS ${DB}_lock WITH (FORCE)" >/dev/null 2>&1 || true
}
trap cleanup EXIT

snapshot() { # label
  psql "$PG/postgres" -Atc "SELECT 'db', now(), xact_commit, xact_rollback, blks_read, blks_hit, tup_inserted, tup_deleted, tup_updated, tup_returned, tup_fetched FROM pg_stat_database WHERE datname = '$DB'" >"$OUT/pg-$1.txt"
  psql "$PG/postgres" -Atc "SELECT 'wal_lsn', pg_current_wal_lsn(), pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0')" >>"$OUT/pg-$1.txt"
  psql "$PG/postgres" -Atc "SELECT 'wal', wal_records, wal_bytes, wal_write, wal_sync, wal_sync_time FROM pg_stat_wal" >>"$OUT/pg-$1.txt" 2>/dev/null || true
  curl -fsS "http://127.0.0.1:$ADMIN_PORT/metrics" >"$OUT/metrics-$1.txt"
  # proc(5) /proc/PID/stat fields 14, 15: utime, stime in clock ticks.
  echo "broker_cpu_ticks $(awk '{print $14 + $15}' "/proc/$pid/stat") clk_tck $(getconf CLK_TCK)" >>"$OUT/pg-$1.txt"
  echo "total_cpu $(head -1 /proc/stat)" >>"$OUT/pg-$1.txt"
}

psql "$PG/postgres" -qc "CREATE DATABASE $DB"
node --cpu-prof --cpu-prof-dir="$OUT/prof" "$HERE/keel-node.js" --db "$PG/$DB" --stomp-port "$STOMP_PORT" \
  --port "$NATIVE_PORT" --admin-port "$ADMIN_PORT" >"$OUT/node.log" 2>&1 &
pid=$!
for _ in $(seq 1 300); do grep -q '^ready' "$OUT/node.log" && break; sleep 0.1; done
grep -q '^ready' "$OUT/node.log" || { cat "$OUT/node.log" >&2; exit 1; }
snapshot before
# The load generator's own CPU (GNU time, Debian package `time`), when installed.
TIMECMD=()
[ -x /usr/bin/time ] && TIMECMD=(/usr/bin/time -f "bench_cpu user=%U sys=%S wall=%e")
cat /proc/loadavg >"$OUT/loadavg-before.txt"
timeout 600 "${TIMECMD[@]}" node packages/bench/dist/main.js "${ARGS[@]}" --target keel --url "$URL" \
  --broker-pid "$pid" --quiet --out "$OUT/bench.json" | tee "$OUT/bench.txt"
cat /proc/loadavg >"$OUT/loadavg-after.txt"
snapshot after
kill -TERM "$pid"
for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
pid=
prof=$(ls -t "$OUT"/prof/*.cpuprofile | head -1)
node "$HERE/cpuprofile-top.js" "$prof" --top 30 >"$OUT/cpuprofile-top.txt"
node "$HERE/cpuprofile-top.js" "$prof" --top 30 --json >"$OUT/cpuprofile-top.json"
cat "$OUT/cpuprofile-top.txt"
