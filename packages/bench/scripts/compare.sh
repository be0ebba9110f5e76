#!/usr/bin/env bash
# Keel side by side with ActiveMQ and RabbitMQ on this machine. NOT run by CI.
#
#   packages/bench/scripts/compare.sh [RESULTS_DIR]
#
# Builds the server and the bench, starts a Keel node on a fresh database of the dev Postgres and
# the peers (peers.sh; run `peers.sh install` once first), then for each round and each case runs
# the same bench against Keel, ActiveMQ and RabbitMQ in turn (alternating, so drift hits all
# alike), one run each, writing RESULTS_DIR/<round>-<case>-<target>.json; then measures the
# physical limit of the Postgres underneath (pg-limit.js -> RESULTS_DIR/pg-limit.json) and saves
# the Keel node's /metrics and pg_stat_database counters. Finally renders docs/benchmarks.md and
# docs/benchmarks/*.svg from the medians. Stops everything it started (by PID) and drops the Keel
# database (the ActiveMQ one too with DROP_ACTIVEMQ_DB=1).
#
# Targets: keel (Keel over STOMP), keel-native (the same Keel node over its native protocol,
# @keel/client), activemq, rabbitmq (its STOMP plugin), rabbitmq-amqp and rabbitmq-quorum (the same
# RabbitMQ node over AMQP 0-9-1 with amqplib: confirm channels, manual acks, a durable classic /
# quorum queue). Every throughput/fanout run also reports its cost per message: CPU of the
# broker process (RabbitMQ: beam.smp), of the Postgres server's processes and of the load
# generator, WAL bytes and fsyncs (pg_stat_wal) -- see src/cost-meter.ts. With KEEL_EXTRA=1 (default) each round also runs Keel's
# `failover` scenario on a fresh master/slave pair (keel-pair.js, native failover client) and the
# last round Keel's `connections` scenario (5,000 idle connections).
#
# Environment: ROUNDS (3), TARGETS ("keel keel-native activemq rabbitmq"), CASES (see below),
# COUNT_W1 (30000), COUNT_W64 (200000), FANOUT_COUNT (20000), BACKLOG_COUNT (100000),
# DURATION_MS (60000), BACKLOG_DURATION_MS (120000), PG (postgres://postgres@127.0.0.1:55432),
# SKIP_BUILD (unset), PG_LIMIT (1: run pg-limit.js), NOTES_MD (a hand-written markdown file
# appended to the report, e.g. packages/bench/docs-notes.md), SECTION (unset: the report is the whole
# docs/benchmarks.md; set: it replaces only the section of that title in it), PRIVATE_PG (unset; 1:
# run the whole comparison on a Postgres cluster of its own, initdb'd in RESULTS_DIR/pgdata on port
# PRIVATE_PG_PORT (55499), so that Postgres CPU and WAL counters are this bench's alone), SVG_DIR
# (docs/benchmarks; give a folder of its own with SECTION, the chart names repeat per case).
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../../.." && pwd)
RESULTS=${1:-$ROOT/bench-results/$(date -u +%Y%m%dT%H%M%SZ)}
# Absolute: the private Postgres (PRIVATE_PG=1) puts its socket lock file in RESULTS/pgdata and
# resolves a relative path from its own working directory.
mkdir -p "$RESULTS" && RESULTS=$(cd "$RESULTS" && pwd)
ROUNDS=${ROUNDS:-3}
TARGETS=${TARGETS:-keel keel-native activemq rabbitmq}
KEEL_EXTRA=${KEEL_EXTRA:-1}
CASES=${CASES:-throughput-w1 throughput-w64 backlog-w64}
COUNT_W1=${COUNT_W1:-30000}
COUNT_W64=${COUNT_W64:-200000}
FANOUT_COUNT=${FANOUT_COUNT:-20000}
BACKLOG_COUNT=${BACKLOG_COUNT:-100000}
DURATION_MS=${DURATION_MS:-60000}
BACKLOG_DURATION_MS=${BACKLOG_DURATION_MS:-120000}
PG=${PG:-postgres://postgres@127.0.0.1:55432}
KEEL_DB=${KEEL_DB:-keel_bench_$(date +%s)}
KEEL_STOMP_PORT=${KEEL_STOMP_PORT:-61811}
export KEEL_PEERS_DIR=${KEEL_PEERS_DIR:-/tmp/keel-peers}

if [ "$ROUNDS" -lt 3 ]; then echo "ROUNDS must be at least 3 (medians of 3 or more runs)" >&2; exit 2; fi
mkdir -p "$RESULTS"
cd "$ROOT"
[ -n "${SKIP_BUILD:-}" ] || npx tsc -b tsconfig.json

# The peer process a target runs on (peers.sh start/stop NAME).
peer_of() { case $1 in keel | keel-native) ;; rabbitmq | rabbitmq-amqp | rabbitmq-quorum) echo rabbitmq ;; *) echo "$1" ;; esac; }
PEERS=$(for t in $TARGETS; do peer_of "$t"; done | sort -u)

private_pg_dir=
if [ -n "${PRIVATE_PG:-}" ]; then
  PGBIN=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
  private_pg_dir="$RESULTS/pgdata"
  PRIVATE_PG_PORT=${PRIVATE_PG_PORT:-55499}
  chown_pg() { if [ "$(id -u)" = 0 ]; then chown -R postgres "$@"; fi; }
  as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
  mkdir -p "$private_pg_dir" && chown_pg "$private_pg_dir"
  as_pg "$PGBIN/initdb" -D "$private_pg_dir" -U postgres --auth=trust -E UTF8 >"$RESULTS/initdb.log"
  # Default settings (synchronous_commit on, fsync on); the socket in the data directory.
  as_pg "$PGBIN/pg_ctl" -D "$private_pg_dir" -l "$private_pg_dir/server.log" -w \
    -o "-p $PRIVATE_PG_PORT -c listen_addresses=127.0.0.1 -c unix_socket_directories=$private_pg_dir -c max_connections=200" start >/dev/null
  PG=postgres://postgres@127.0.0.1:$PRIVATE_PG_PORT
  export PGPORT=$PRIVATE_PG_PORT
fi

keel_pid=
loadavg_pid=
cleanup() {
  [ -n "$loadavg_pid" ] && kill "$loadavg_pid" 2>/dev/null || true
  [ -n "$keel_pid" ] && kill -TERM "$keel_pid" 2>/dev/null && wait "$keel_pid" 2>/dev/null || true
  for p in $PEERS; do "$HERE/peers.sh" stop "$p" || true; done
  psql "$PG/postgres" -qc "DROP DATABASE IF EXISTS $KEEL_DB WITH (FORCE)" 2>/dev/null || true
  psql "$PG/postgres" -qc "DROP DATABASE IF EXISTS ${KEEL_DB}_lock WITH (FORCE)" 2>/dev/null || true
  if [ -n "${DROP_ACTIVEMQ_DB:-}" ]; then
    psql "$PG/postgres" -qc "DROP DATABASE IF EXISTS ${ACTIVEMQ_DB:-activemq_bench} WITH (FORCE)" 2>/dev/null || true
  fi
  if [ -n "$private_pg_dir" ]; then
    cp "$private_pg_dir/server.log" "$RESULTS/private-pg.log" 2>/dev/null || true
    as_pg "$PGBIN/pg_ctl" -D "$private_pg_dir" -m fast -w stop >/dev/null || true; rm -rf "$private_pg_dir"; fi
}
trap cleanup EXIT

psql "$PG/postgres" -qc "CREATE DATABASE $KEEL_DB"
node "$HERE/keel-node.js" --db "$PG/$KEEL_DB" --stomp-port "$KEEL_STOMP_PORT" >"$RESULTS/keel-node.log" 2>&1 &
keel_pid=$!
for _ in $(seq 1 300); do grep -q '^ready' "$RESULTS/keel-node.log" && break; sleep 0.1; done
grep -q '^ready' "$RESULTS/keel-node.log" || { cat "$RESULTS/keel-node.log" >&2; exit 1; }

declare -A URL PID LOGIN PROTO
URL[keel]=stomp://127.0.0.1:$KEEL_STOMP_PORT
PID[keel]=$keel_pid
LOGIN[keel]=
URL[keel-native]=tcp://127.0.0.1:${KEEL_NATIVE_PORT:-61810}
PID[keel-native]=$keel_pid
LOGIN[keel-native]=
PROTO[keel-native]="--protocol native"
for t in $TARGETS; do
  case $t in
    activemq) PID[$t]=$("$HERE/peers.sh" start activemq | tail -1); URL[$t]=stomp://127.0.0.1:${ACTIVEMQ_STOMP_PORT:-61714}; LOGIN[$t]= ;;
    rabbitmq) PID[$t]=$("$HERE/peers.sh" start rabbitmq | tail -1); URL[$t]=stomp://127.0.0.1:${RABBIT_STOMP_PORT:-61715}; LOGIN[$t]="--login guest --passcode guest" ;;
    rabbitmq-amqp | rabbitmq-quorum)
      PID[$t]=$("$HERE/peers.sh" start rabbitmq | tail -1); URL[$t]=amqp://127.0.0.1:${RABBIT_AMQP_PORT:-5673}; LOGIN[$t]="--login guest --passcode guest" ;;
    keel | keel-native) ;;
    *) echo "unknown target $t" >&2; exit 2 ;;
  esac
done

case_args() {
  case $1 in
    throughput-w1) echo "throughput --producers 4 --consumers 4 --in-flight 1 --count $COUNT_W1 --duration-ms $DURATION_MS" ;;
    throughput-w64) echo "throughput --producers 4 --consumers 4 --in-flight 64 --count $COUNT_W64 --duration-ms $DURATION_MS" ;;
    fanout-w64) echo "fanout --producers 1 --consumers 10 --in-flight 64 --count $FANOUT_COUNT --duration-ms $DURATION_MS" ;;
    backlog-w64) echo "backlog --producers 4 --consumers 4 --in-flight 64 --count $BACKLOG_COUNT --duration-ms $BACKLOG_DURATION_MS" ;;
    *) echo "unknown case $1" >&2; return 1 ;;
  esac
}

echo "ROUNDS=$ROUNDS TARGETS='$TARGETS' CASES='$CASES' COUNT_W1=$COUNT_W1 COUNT_W64=$COUNT_W64 BACKLOG_COUNT=$BACKLOG_COUNT DURATION_MS=$DURATION_MS BACKLOG_DURATION_MS=$BACKLOG_DURATION_MS KEEL_EXTRA=$KEEL_EXTRA PG_LIMIT=${PG_LIMIT:-1}${PRIVATE_PG:+ PRIVATE_PG=1}${SECTION:+ SECTION='$SECTION'} packages/bench/scripts/compare.sh" >"$RESULTS/command.txt"
pg_kind="the dev server ($PG), shared with whatever else runs on it"
[ -n "$private_pg_dir" ] && pg_kind="a private cluster for this run only ($PG, initdb defaults: synchronous_commit on, fsync on)"
pgstat() { # label
  psql "$PG/postgres" -Atc "SELECT '$1', now(), datname, xact_commit, xact_rollback, blks_read, blks_hit, tup_inserted, tup_deleted, tup_updated FROM pg_stat_database WHERE datname IN ('$KEEL_DB', '${ACTIVEMQ_DB:-activemq_bench}')" >>"$RESULTS/pg-stat-database.txt"
}
{
  echo "{"
  echo "  \"Postgres\": \"$(psql "$PG/postgres" -Atc 'SHOW server_version'), $pg_kind; Keel (and ActiveMQ's JDBC store) use it\","
  echo "  \"Keel\": \"$(node -p "require('$ROOT/packages/server/package.json').version") at git $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?')\","
  case " $TARGETS " in *" activemq "*) echo "  \"ActiveMQ\": \"$(dpkg-query -W -f '${Version}' activemq 2>/dev/null || echo 'not installed'), JDBC persistence (commons-dbcp2, Postgres JDBC)\"," ;; esac
  echo "  \"RabbitMQ\": \"$(dpkg-query -W -f '${Version}' rabbitmq-server 2>/dev/null || echo 'not installed'), STOMP plugin and AMQP 0-9-1 (amqplib $(node -p "require('$ROOT/node_modules/amqplib/package.json').version" 2>/dev/null || echo '?'): confirm channel per producer, prefetch and manual acks), durable queues\","
  echo "  \"Load during the run\": \"load average at the start $(cut -d' ' -f1-3 /proc/loadavg) on $(nproc) CPUs\","
  echo "  \"Packages\": \"$(dpkg-query -W -f '${Package} ${Version}, ' activemq rabbitmq-server postgresql-15 2>/dev/null | sed 's/, $//'); Java $(java -version 2>&1 | head -1 | sed 's/"//g'); Node $(node -v)\","
  echo "  \"Rounds\": \"$ROUNDS, targets alternating within each round\""
  echo "}"
} >"$RESULTS/setup.json"

pgstat start
# The machine's load through the run, every 10 s (other work on a shared machine shows here).
(while :; do echo "$(date -u +%H:%M:%S) $(cut -d' ' -f1-3 /proc/loadavg)" >>"$RESULTS/loadavg.txt"; sleep 10; done) &
loadavg_pid=$!
for round in $(seq 1 "$ROUNDS"); do
  for c in $CASES; do
    for t in $TARGETS; do
      echo "== round $round: $c on $t" >&2
      # shellcheck disable=SC2046,SC2086
      target=${t%-native}
      cost=
      case $c in throughput-* | fanout-*) cost="--pg-url $PG/postgres" ;; esac
      timeout 1800 node packages/bench/dist/main.js $(case_args "$c") --target "$target" ${PROTO[$t]:-} --url "${URL[$t]}" ${LOGIN[$t]} \
        --broker-pid "${PID[$t]}" $cost --quiet --out "$RESULTS/r$round-$c-$t.json" || echo "($c on $t ended with status $?)" >&2
    done
  done
  if [ "$KEEL_EXTRA" = 1 ]; then
    echo "== round $round: failover on a Keel master/slave pair" >&2
    timeout 600 node "$HERE/keel-pair.js" --pg "$PG" -- failover --protocol native --producers 4 --consumers 4 \
      --rate 200 --duration-ms 30000 --out "$RESULTS/r$round-failover-keel-native.json" || echo "(failover ended with status $?)" >&2
  fi
done
if [ "$KEEL_EXTRA" = 1 ]; then
  echo "== connections: 5,000 idle connections on Keel (STOMP)" >&2
  timeout 900 node packages/bench/dist/main.js connections --target keel --url "${URL[keel]}" \
    --broker-pid "$keel_pid" --duration-ms 20000 --out "$RESULTS/connections-keel.json" || echo "(connections ended with status $?)" >&2
fi

pgstat end
curl -fsS "http://127.0.0.1:${KEEL_ADMIN_PORT:-8811}/metrics" >"$RESULTS/keel-metrics-end.txt" || true
if [ "${PG_LIMIT:-1}" = 1 ]; then
  echo "== physical limit of Postgres (pg-limit.js)" >&2
  node "$HERE/pg-limit.js" --db "$PG/postgres" --out "$RESULTS/pg-limit.json"
fi
cut -d' ' -f1-3 /proc/loadavg >"$RESULTS/loadavg-end.txt"
node packages/bench/dist/render-report-main.js "$RESULTS" --md docs/benchmarks.md --svg-dir "${SVG_DIR:-docs/benchmarks}" ${NOTES_MD:+--notes "$NOTES_MD"} ${SECTION:+--section "$SECTION"}
