#!/usr/bin/env bash
# Does a change slow Keel down? The standard throughput case (4 producers, 4 consumers, window 64,
# 1024 B persistent, as in docs/benchmarks.md) on two git revisions of Keel, side by side in the
# same run. NOT run by CI. Written for issue #21.6 ("the mixed window-64 benchmark stays within 5 %
# of today's").
#
#   packages/bench/scripts/regression.sh BASE_REF [HEAD_REF] [RESULTS_DIR]
#     e.g. packages/bench/scripts/regression.sh a435198
#
# Checks both revisions out as detached git worktrees under WORKTREE_ROOT (/tmp/keel-regress-<sha>;
# an existing one is reused), `npm ci --prefer-offline` and `npx tsc -b packages/server
# packages/bench` in each (the main tree's node_modules and dist are not touched, so other work in
# it cannot leak into either side). Every run starts a Keel node (that revision's
# scripts/keel-node.js and server build) on a FRESH database of the Postgres at PG, drives it with
# HEAD_REF's bench client (the same load generator for both sides), stops the node by PID and
# drops the database. Per round, for each target, both sides run back to back; the order flips
# every round (base first in odd rounds, head first in even ones) so drift and other load on the
# machine hit both alike. The machine's load average is recorded before and after every run
# (runs.tsv). At the end regression-report.js prints the per-run table, the medians and head/base
# (also RESULTS_DIR/summary.md, summary.json). Worktrees this script created are removed at the end
# unless KEEP_WORKTREES=1.
#
# Environment: ROUNDS (5), TARGETS ("keel-native keel": native protocol and STOMP), COUNT
# (200000), DURATION_MS (60000, the time bound of one run), PG (postgres://postgres@127.0.0.1:55432),
# WORKTREE_ROOT (/tmp), KEEP_WORKTREES (unset), SKIP_BUILD (1: do not rebuild a worktree that has a build),
# ports KEEL_PORT (61830), KEEL_STOMP_PORT (61831), KEEL_ADMIN_PORT (8831).
# Bounded: ROUNDS x TARGETS x 2 runs, each at most COUNT messages / DURATION_MS plus a 300 s
# timeout on the bench process.
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../../.." && pwd)
BASE_REF=${1:?usage: regression.sh BASE_REF [HEAD_REF] [RESULTS_DIR]}
HEAD_REF=${2:-HEAD}
RESULTS=${3:-$ROOT/bench-results/regression-$(date -u +%Y%m%dT%H%M%SZ)}
ROUNDS=${ROUNDS:-5}
TARGETS=${TARGETS:-keel-native keel}
COUNT=${COUNT:-200000}
DURATION_MS=${DURATION_MS:-60000}
PG=${PG:-postgres://postgres@127.0.0.1:55432}
WORKTREE_ROOT=${WORKTREE_ROOT:-/tmp}
NATIVE_PORT=${KEEL_PORT:-61830}
STOMP_PORT=${KEEL_STOMP_PORT:-61831}
ADMIN_PORT=${KEEL_ADMIN_PORT:-8831}

BASE_SHA=$(git -C "$ROOT" rev-parse --verify "$BASE_REF^{commit}")
HEAD_SHA=$(git -C "$ROOT" rev-parse --verify "$HEAD_REF^{commit}")
mkdir -p "$RESULTS"

created_worktrees=()
node_pid=
db=
stop_node() {
  if [ -n "$node_pid" ] && kill -0 "$node_pid" 2>/dev/null; then
    kill -TERM "$node_pid"
    for _ in $(seq 1 100); do kill -0 "$node_pid" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$node_pid" 2>/dev/null && kill -KILL "$node_pid"
    wait "$node_pid" 2>/dev/null || true
  fi
  node_pid=
  if [ -n "$db" ]; then
    psql "$PG/postgres" -qc "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1 || true
    # The node's lease locker keeps its lock in a sibling database.
    psql "$PG/postgres" -qc "DROP DATABASE IF EXISTS ${db}_lock WITH (FORCE)" >/dev/null 2>&1 || true
  fi
  db=
}
cleanup() {
  stop_node
  if [ -z "${KEEP_WORKTREES:-}" ]; then
    for w in "${created_worktrees[@]}"; do git -C "$ROOT" worktree remove --force "$w" || true; done
  fi
}
trap cleanup EXIT

# prepare SHA: check the revision out as a worktree (unless there is one) and build it.
wt_dir() { echo "$WORKTREE_ROOT/keel-regress-${1:0:12}"; }
prepare() {
  local dir
  dir=$(wt_dir "$1")
  if [ ! -d "$dir" ]; then
    git -C "$ROOT" worktree add --detach "$dir" "$1" >&2
    created_worktrees+=("$dir")
  fi
  if [ -z "${SKIP_BUILD:-}" ] || [ ! -d "$dir/packages/server/dist" ] || [ ! -d "$dir/packages/bench/dist" ]; then
    (cd "$dir" && npm ci --prefer-offline --no-audit --no-fund --loglevel=error >&2 && npx tsc -b packages/server packages/bench >&2)
  fi
}
prepare "$BASE_SHA"
prepare "$HEAD_SHA"
BASE_DIR=$(wt_dir "$BASE_SHA")
HEAD_DIR=$(wt_dir "$HEAD_SHA")
declare -A DIR=([base]=$BASE_DIR [head]=$HEAD_DIR)
declare -A SHA=([base]=$BASE_SHA [head]=$HEAD_SHA)

{
  echo "{"
  echo "  \"command\": \"ROUNDS=$ROUNDS TARGETS='$TARGETS' COUNT=$COUNT DURATION_MS=$DURATION_MS packages/bench/scripts/regression.sh $BASE_REF $HEAD_REF\","
  echo "  \"base\": \"$BASE_SHA $(git -C "$ROOT" log -1 --format=%s "$BASE_SHA" | sed 's/["\\]/ /g' | cut -c1-100)\","
  echo "  \"head\": \"$HEAD_SHA $(git -C "$ROOT" log -1 --format=%s "$HEAD_SHA" | sed 's/["\\]/ /g' | cut -c1-100)\","
  echo "  \"loadGenerator\": \"head's packages/bench (git $HEAD_SHA)\","
  echo "  \"postgres\": \"$(psql "$PG/postgres" -Atc 'SHOW server_version') at $PG, a fresh database per run\","
  echo "  \"machine\": \"$(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//'), $(free -g | awk '/Mem:/{print $2}') GiB, kernel $(uname -r), Node $(node -v)\","
  echo "  \"startedAt\": \"$(date -u +%Y-%m-%dT%H:%M:%SZ)\""
  echo "}"
} >"$RESULTS/setup.json"
printf 'round\ttarget\tside\tsha\tstarted\tload_before\tload_after\tfile\n' >"$RESULTS/runs.tsv"

# run ROUND TARGET SIDE
run() {
  local round=$1 target=$2 side=$3 dir=${DIR[$3]} log="$RESULTS/r$1-$2-$3-node.log" out="$RESULTS/r$1-$2-$3.json"
  db="keel_regr_$(date +%s)_${round}_${side}"
  psql "$PG/postgres" -qc "CREATE DATABASE $db"
  node "$dir/packages/bench/scripts/keel-node.js" --db "$PG/$db" --port "$NATIVE_PORT" \
    --stomp-port "$STOMP_PORT" --admin-port "$ADMIN_PORT" >"$log" 2>&1 &
  node_pid=$!
  for _ in $(seq 1 300); do grep -q '^ready' "$log" && break; sleep 0.1; done
  grep -q '^ready' "$log" || { cat "$log" >&2; exit 1; }
  local url proto=()
  case $target in
    keel) url=stomp://127.0.0.1:$STOMP_PORT ;;
    keel-native) url=tcp://127.0.0.1:$NATIVE_PORT; proto=(--protocol native) ;;
    *) echo "unknown target $target" >&2; exit 2 ;;
  esac
  local started load_before load_after
  started=$(date -u +%H:%M:%S)
  load_before=$(cut -d' ' -f1-3 /proc/loadavg)
  echo "== round $round: $target on $side (${SHA[$side]:0:7}), load $load_before" >&2
  timeout 300 node "$HEAD_DIR/packages/bench/dist/main.js" throughput --producers 4 --consumers 4 --in-flight 64 \
    --count "$COUNT" --duration-ms "$DURATION_MS" --target keel "${proto[@]}" --url "$url" \
    --broker-pid "$node_pid" --pg-url "$PG/postgres" --quiet --out "$out" >&2 || echo "(run ended with status $?)" >&2
  load_after=$(cut -d' ' -f1-3 /proc/loadavg)
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$round" "$target" "$side" "${SHA[$side]:0:7}" "$started" \
    "$load_before" "$load_after" "$(basename "$out")" >>"$RESULTS/runs.tsv"
  stop_node
}

for round in $(seq 1 "$ROUNDS"); do
  if [ $((round % 2)) = 1 ]; then order=(base head); else order=(head base); fi
  for target in $TARGETS; do
    for side in "${order[@]}"; do run "$round" "$target" "$side"; done
  done
done

node "$HERE/regression-report.js" "$RESULTS" | tee "$RESULTS/summary.md"
