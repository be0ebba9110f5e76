#!/usr/bin/env bash
# Issue #25.4, scale: Keel (native protocol) against RabbitMQ over AMQP 0-9-1 (classic durable
# queues, confirms, manual acks) on the same work, at several sizes. NOT run by CI.
#
#   packages/bench/scripts/scale.sh [RESULTS_DIR]
#
# (a) many-queues: N queues × 4 consumers each (on 4 consumer connections), 4 producers with
#     IN_FLIGHT sends each spreading persistent 1 KiB messages over all queues for MQ_DURATION_MS:
#     received msg/s, broker CPU per message, broker RSS before, with the consumers attached and
#     idle, steady and peak under load; N in $QUEUES.
# (b) connections: a paced load (4 producers, 4 consumers, $RATE msg/s, window 1) for
#     CONN_DURATION_MS, then N idle connections (no heart-beats; Keel: HELLO/WELCOME and a session;
#     AMQP: connection.open and one channel), then the load again: broker RSS, KiB per idle
#     connection, the load's latency before and with them; N in $IDLE.
#
# Every size runs on a FRESH broker, so RSS against N compares like with like: Keel on a fresh
# database of $PG (keel-node.js, as compare.sh; dropped after), RabbitMQ started by peers.sh with
# a state directory of its own (deleted after). Sizes run smallest first, targets alternating.
# ROUNDS (1) repeats the whole set; the summary shows the median of a size's runs.
# Writes RESULTS_DIR/r<round>-<case>-<n>-<target>.json, setup.json, command.txt, loadavg.txt, and
# summary.md (scale-summary-main.js: the tables with the increments per unit and the verdicts).
# Stops only what it started, by PID.
#
# Environment: TARGETS ("keel-native rabbitmq-amqp"), CASES ("many-queues connections"),
# QUEUES ("100 300 1000"), IDLE ("1000 3000 10000"), MQ_DURATION_MS (20000), IN_FLIGHT (64),
# CONN_DURATION_MS (10000), RATE (200), BROKER_SETTLE_S (10: idle after a broker's start), PG (postgres://postgres@127.0.0.1:55432), SKIP_BUILD,
# KEEL_MAXIMUM_CONNECTIONS (20000), KEEL_PORT (61910), KEEL_STOMP_PORT (61911), KEEL_ADMIN_PORT (8911), RABBIT_AMQP_PORT (5673).
# Raise the open-files limit first where you can (`ulimit -n 65536`): 10,000 idle connections need
# that many descriptors in the bench and in the broker.
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../../.." && pwd)
RESULTS=${1:-$ROOT/bench-results/scale-$(date -u +%Y%m%dT%H%M%SZ)}
TARGETS=${TARGETS:-keel-native rabbitmq-amqp}
CASES=${CASES:-many-queues connections}
QUEUES=${QUEUES:-100 300 1000}
IDLE=${IDLE:-1000 3000 10000}
MQ_DURATION_MS=${MQ_DURATION_MS:-20000}
IN_FLIGHT=${IN_FLIGHT:-64}
CONN_DURATION_MS=${CONN_DURATION_MS:-10000}
RATE=${RATE:-200}
BROKER_SETTLE_S=${BROKER_SETTLE_S:-10}
KEEL_MAXIMUM_CONNECTIONS=${KEEL_MAXIMUM_CONNECTIONS:-20000}
ROUNDS=${ROUNDS:-1}
PG=${PG:-postgres://postgres@127.0.0.1:55432}
KEEL_PORT=${KEEL_PORT:-61910}
KEEL_STOMP_PORT=${KEEL_STOMP_PORT:-61911}
KEEL_ADMIN_PORT=${KEEL_ADMIN_PORT:-8911}
export RABBIT_AMQP_PORT=${RABBIT_AMQP_PORT:-5673}
export RABBIT_STOMP_PORT=${RABBIT_STOMP_PORT:-61915}
export RABBIT_DIST_PORT=${RABBIT_DIST_PORT:-25683}
export ERL_EPMD_PORT=${ERL_EPMD_PORT:-4379}
export RABBIT_NODE=${RABBIT_NODE:-keelscale$$@localhost}

mkdir -p "$RESULTS"
RESULTS=$(cd "$RESULTS" && pwd)
cd "$ROOT"
[ -n "${SKIP_BUILD:-}" ] || npx tsc -b tsconfig.json

keel_pid=
keel_db=
peers_dir=
loadavg_pid=

stop_keel() {
  if [ -n "$keel_pid" ]; then
    kill -TERM "$keel_pid" 2>/dev/null || true
    wait "$keel_pid" 2>/dev/null || true
    keel_pid=
  fi
  if [ -n "$keel_db" ]; then
    psql "$PG/postgres" -qc "DROP DATABASE IF EXISTS $keel_db WITH (FORCE)" 2>/dev/null || true
    psql "$PG/postgres" -qc "DROP DATABASE IF EXISTS ${keel_db}_lock WITH (FORCE)" 2>/dev/null || true
    keel_db=
  fi
}

stop_rabbit() {
  if [ -n "$peers_dir" ]; then
    KEEL_PEERS_DIR=$peers_dir "$HERE/peers.sh" stop rabbitmq || true
    rm -rf "$peers_dir"
    peers_dir=
  fi
}

cleanup() {
  [ -n "$loadavg_pid" ] && kill "$loadavg_pid" 2>/dev/null || true
  stop_keel
  stop_rabbit
}
trap cleanup EXIT

# start_broker TARGET LABEL: sets BROKER_PID and BROKER_ARGS (the bench's --target/--url options).
start_broker() {
  case $1 in
    keel-native)
      keel_db=keel_scale_$(date +%s)_$$
      psql "$PG/postgres" -qc "CREATE DATABASE $keel_db"
      # Keel refuses client connections beyond maximumConnections (default 10,000 per node,
      # limits-config.ts); RabbitMQ has no such limit by default: lift it above the test for both.
      KEEL_MAXIMUM_CONNECTIONS=$KEEL_MAXIMUM_CONNECTIONS node "$HERE/keel-node.js" --db "$PG/$keel_db" --port "$KEEL_PORT" --stomp-port "$KEEL_STOMP_PORT" \
        --admin-port "$KEEL_ADMIN_PORT" >"$RESULTS/keel-node-$2.log" 2>&1 &
      keel_pid=$!
      for _ in $(seq 1 300); do grep -q '^ready' "$RESULTS/keel-node-$2.log" && break; sleep 0.1; done
      grep -q '^ready' "$RESULTS/keel-node-$2.log" || { cat "$RESULTS/keel-node-$2.log" >&2; exit 1; }
      BROKER_PID=$keel_pid
      BROKER_ARGS="--target keel --protocol native --url tcp://127.0.0.1:$KEEL_PORT"
      ;;
    rabbitmq-amqp)
      peers_dir=$(mktemp -d /tmp/keel-scale-rabbit.XXXXXX)
      BROKER_PID=$(KEEL_PEERS_DIR=$peers_dir "$HERE/peers.sh" start rabbitmq | tail -1)
      BROKER_ARGS="--target rabbitmq-amqp --url amqp://127.0.0.1:$RABBIT_AMQP_PORT --login guest --passcode guest"
      ;;
    *) echo "unknown target $1" >&2; exit 2 ;;
  esac
}

stop_broker() {
  case $1 in keel-native) stop_keel ;; rabbitmq-amqp) stop_rabbit ;; esac
}

echo "ROUNDS=$ROUNDS TARGETS='$TARGETS' CASES='$CASES' QUEUES='$QUEUES' IDLE='$IDLE' MQ_DURATION_MS=$MQ_DURATION_MS IN_FLIGHT=$IN_FLIGHT CONN_DURATION_MS=$CONN_DURATION_MS RATE=$RATE BROKER_SETTLE_S=$BROKER_SETTLE_S KEEL_MAXIMUM_CONNECTIONS=$KEEL_MAXIMUM_CONNECTIONS packages/bench/scripts/scale.sh" >"$RESULTS/command.txt"
{
  echo "{"
  echo "  \"Machine\": \"$(nproc) CPUs ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')), $(awk '/MemTotal/ {printf "%.1f GiB", $2/1048576}' /proc/meminfo), Linux $(uname -r), Node $(node -v), open files limit $(ulimit -n)\","
  echo "  \"Postgres\": \"$(psql "$PG/postgres" -Atc 'SHOW server_version'), the dev server ($PG), a fresh database per Keel run\","
  echo "  \"Keel\": \"$(node -p "require('$ROOT/packages/server/package.json').version") at git $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?'), keel-node.js, native protocol (@keel/client)\","
  echo "  \"RabbitMQ\": \"$(dpkg-query -W -f '${Version}' rabbitmq-server 2>/dev/null || echo 'not installed'), peers.sh (one node, default settings, fresh state per run), AMQP 0-9-1 via amqplib $(node -p "require('$ROOT/node_modules/amqplib/package.json').version" 2>/dev/null || echo '?')\","
  echo "  \"Load at the start\": \"$(cut -d' ' -f1-3 /proc/loadavg)\""
  echo "}"
} >"$RESULTS/setup.json"
(while :; do echo "$(date -u +%H:%M:%S) $(cut -d' ' -f1-3 /proc/loadavg)" >>"$RESULTS/loadavg.txt"; sleep 10; done) &
loadavg_pid=$!

bench() { # case n target round
  local args
  case $1 in
    many-queues) args="many-queues --queues $2 --consumers-per-queue 4 --consumers 4 --producers 4 --in-flight $IN_FLIGHT --duration-ms $MQ_DURATION_MS --pg-url $PG/postgres --cost-settle-ms 2000" ;;
    connections) args="connections --idle-connections $2 --producers 4 --consumers 4 --rate $RATE --duration-ms $CONN_DURATION_MS" ;;
    *) echo "unknown case $1" >&2; return 2 ;;
  esac
  start_broker "$3" "$1-$2"
  # A broker's RSS moves for a while after its start (RabbitMQ's boot garbage is collected): the
  # bench's 'before' reading comes after this pause.
  sleep "$BROKER_SETTLE_S"
  echo "== $(date -u +%H:%M:%S) round $4: $1 $2 on $3 (broker pid $BROKER_PID)" >&2
  # shellcheck disable=SC2086
  timeout 900 node --max-old-space-size=4096 packages/bench/dist/main.js $args $BROKER_ARGS --broker-pid "$BROKER_PID" \
    --quiet --out "$RESULTS/r$4-$1-$2-$3.json" || echo "($1 $2 on $3 ended with status $?)" >&2
  stop_broker "$3"
}

for round in $(seq 1 "$ROUNDS"); do
  for c in $CASES; do
    case $c in many-queues) sizes=$QUEUES ;; connections) sizes=$IDLE ;; *) echo "unknown case $c" >&2; exit 2 ;; esac
    for n in $sizes; do
      for t in $TARGETS; do bench "$c" "$n" "$t" "$round"; done
    done
  done
done
cut -d' ' -f1-3 /proc/loadavg >"$RESULTS/loadavg-end.txt"
node packages/bench/dist/scale-summary-main.js "$RESULTS" | tee "$RESULTS/summary.md"
