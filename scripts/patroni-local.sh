#!/usr/bin/env bash
# A Patroni-managed PostgreSQL cluster on loopback for Keel (issue #20.4): one etcd and N Patroni
# members (default 3), Debian's `patroni`, `etcd-server` and `postgresql-15` packages, everything
# under one directory. Not used by CI; for trying Keel's Postgres failover against real Patroni.
#
#   scripts/patroni-local.sh up [--members N] [--async]   start etcd and the members; print Keel's URL
#   scripts/patroni-local.sh status                        patronictl list
#   scripts/patroni-local.sh url                           the multi-host URL for --db
#   scripts/patroni-local.sh leader                        the leader's member name, port and pids
#   scripts/patroni-local.sh kill-leader                   SIGKILL the leader's Patroni and postmaster
#                                                          (a machine that dies)
#   scripts/patroni-local.sh rejoin                        restart the killed member's Patroni once a
#                                                          new leader leads (it rejoins as a replica,
#                                                          pg_rewind if its timeline diverged)
#   scripts/patroni-local.sh failover                      kill-leader, time to a new leader, rejoin
#   scripts/patroni-local.sh down                          stop everything, remove the directory
#
# Synchronous mode is on by default (`synchronous_mode: true`: Patroni keeps one replica in
# synchronous_standby_names and promotes only that one); --async turns it off.
# Environment: KEEL_PATRONI_DIR (default /tmp/keel-patroni), KEEL_PATRONI_PORT (first Postgres
# port, default 54331; REST APIs at 28009…, etcd at 23790/23800), KEEL_PATRONI_TTL (leader key TTL
# in seconds, default 20 — Patroni's minimum; a dead leader is replaced after about this long).
set -euo pipefail

dir="${KEEL_PATRONI_DIR:-/tmp/keel-patroni}"
first_port="${KEEL_PATRONI_PORT:-54331}"
ttl="${KEEL_PATRONI_TTL:-20}"
etcd_client=23790
etcd_peer=23800
scope=keel

bindir() {
  if command -v pg_config >/dev/null 2>&1 && [ -x "$(pg_config --bindir)/initdb" ]; then
    pg_config --bindir
  else
    ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1
  fi
}

# Postgres refuses to run as root: as root, Patroni (and so Postgres) runs as user postgres.
as_pg() {
  if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

members_count() { cat "$dir/members" 2>/dev/null || echo 3; }

url() {
  local n hosts=()
  n="$(members_count)"
  for i in $(seq 1 "$n"); do hosts+=("127.0.0.1:$((first_port + i - 1))"); done
  local joined
  joined="$(IFS=,; echo "${hosts[*]}")"
  echo "postgres://postgres@${joined}/keel?target_session_attrs=read-write&connect_timeout=2"
}

patronictl_cmd() { as_pg patronictl -c "$dir/pg1.yml" "$@"; }

write_member_config() {
  local i="$1" sync="$2"
  local port=$((first_port + i - 1)) api=$((28008 + i))
  cat >"$dir/pg$i.yml" <<EOF
scope: $scope
name: pg$i
log:
  dir: $dir/log-pg$i
  level: INFO
restapi:
  listen: 127.0.0.1:$api
  connect_address: 127.0.0.1:$api
etcd3:
  hosts: 127.0.0.1:$etcd_client
bootstrap:
  dcs:
    ttl: $ttl
    loop_wait: 1
    retry_timeout: 5
    maximum_lag_on_failover: 1048576
    synchronous_mode: $sync
    postgresql:
      use_pg_rewind: true
      use_slots: true
      parameters:
        wal_level: replica
        hot_standby: "on"
        wal_log_hints: "on"
        max_wal_senders: 10
        max_replication_slots: 10
        max_connections: 200
        synchronous_commit: "on"
  initdb:
  - encoding: UTF8
  - data-checksums
  pg_hba:
  - host replication replicator 127.0.0.1/32 trust
  - host all all 127.0.0.1/32 trust
  - local all all trust
postgresql:
  listen: 127.0.0.1:$port
  connect_address: 127.0.0.1:$port
  data_dir: $dir/data-pg$i
  bin_dir: $(bindir)
  pgpass: $dir/pgpass-pg$i
  authentication:
    replication: {username: replicator, password: replicator}
    superuser: {username: postgres, password: postgres}
    rewind: {username: postgres, password: postgres}
  parameters:
    unix_socket_directories: $dir
tags:
  nofailover: false
  noloadbalance: false
  clonefrom: false
  nosync: false
EOF
}

start_member() {
  local i="$1"
  mkdir -p "$dir/log-pg$i"
  chown -R "$(stat -c %U "$dir")" "$dir/log-pg$i"
  as_pg sh -c "nohup patroni '$dir/pg$i.yml' >>'$dir/log-pg$i/stdout.log' 2>&1 & echo \$! > '$dir/patroni-pg$i.pid'"
}

wait_for() {
  local what="$1" timeout="$2" check="$3" start
  start=$(date +%s)
  until eval "$check" >/dev/null 2>&1; do
    if [ $(($(date +%s) - start)) -ge "$timeout" ]; then
      echo "timed out after ${timeout}s waiting for $what (logs: $dir/log-*)" >&2
      return 1
    fi
    sleep 0.5
  done
}

# Prints "name port" of the current leader, from Patroni's REST API (GET /cluster on any member).
leader() {
  local n
  n="$(members_count)"
  for i in $(seq 1 "$n"); do
    local api=$((28008 + i))
    if out="$(curl -fsS "http://127.0.0.1:$api/cluster" 2>/dev/null)"; then
      found="$(echo "$out" | /usr/bin/python3 -c '
import json, sys
c = json.load(sys.stdin)
for m in c.get("members", []):
    if m.get("role") == "leader" and m.get("state") == "running":
        print(m["name"], m["port"])
        break
')"
      if [ -n "$found" ]; then echo "$found"; return 0; fi
    fi
  done
  return 1
}

postmaster_pid() { head -1 "$dir/data-$1/postmaster.pid" 2>/dev/null; }

up() {
  local n=3 sync=true
  while [ $# -gt 0 ]; do
    case "$1" in
      --members) n="$2"; shift 2 ;;
      --async) sync=false; shift ;;
      *) echo "unknown option $1" >&2; exit 2 ;;
    esac
  done
  for cmd in patroni patronictl etcd curl; do
    command -v "$cmd" >/dev/null 2>&1 || { echo "missing $cmd: apt-get install -y patroni etcd-server curl" >&2; exit 1; }
  done
  if [ -e "$dir/etcd.pid" ]; then echo "already up in $dir (run: $0 down)" >&2; exit 1; fi
  mkdir -p "$dir"
  chmod 0755 "$dir"
  [ "$(id -u)" -eq 0 ] && chown postgres "$dir"
  echo "$n" >"$dir/members"
  echo "$sync" >"$dir/synchronous"

  echo "starting etcd on 127.0.0.1:$etcd_client"
  nohup etcd --name keel-etcd --data-dir "$dir/etcd" \
    --listen-client-urls "http://127.0.0.1:$etcd_client" --advertise-client-urls "http://127.0.0.1:$etcd_client" \
    --listen-peer-urls "http://127.0.0.1:$etcd_peer" --initial-advertise-peer-urls "http://127.0.0.1:$etcd_peer" \
    --initial-cluster "keel-etcd=http://127.0.0.1:$etcd_peer" --enable-v2=true \
    >"$dir/etcd.log" 2>&1 &
  echo $! >"$dir/etcd.pid"
  wait_for etcd 30 "curl -fsS http://127.0.0.1:$etcd_client/health"

  for i in $(seq 1 "$n"); do
    write_member_config "$i" "$sync"
    [ "$(id -u)" -eq 0 ] && chown postgres "$dir/pg$i.yml"
  done
  start_member 1
  echo "pg1: bootstrapping the cluster (initdb --data-checksums)"
  wait_for "a leader" 90 leader
  as_pg "$(bindir)/psql" -h 127.0.0.1 -p "$first_port" -U postgres -d postgres -qAtc \
    "SELECT 1 FROM pg_database WHERE datname = 'keel'" | grep -q 1 ||
    as_pg "$(bindir)/psql" -h 127.0.0.1 -p "$first_port" -U postgres -d postgres -qc 'CREATE DATABASE keel'
  for i in $(seq 2 "$n"); do
    start_member "$i"
    echo "pg$i: cloning from the leader"
    wait_for "pg$i streaming" 120 "curl -fsS http://127.0.0.1:$((28008 + i))/replica"
  done
  if [ "$sync" = true ]; then
    wait_for "a synchronous standby" 60 \
      "curl -fsS http://127.0.0.1:28009/cluster | grep -q sync_standby"
  fi
  patronictl_cmd list
  echo
  echo "Keel's database URL (synchronous_mode=$sync, leader TTL ${ttl}s):"
  echo "  $(url)"
  echo "e.g.: keel start --db '$(url)'"
}

# SIGKILL the leader's Patroni and postmaster, as if its machine died; remembers which member it was.
kill_leader() {
  local name port pid ppid
  read -r name port < <(leader) || { echo "no leader" >&2; exit 1; }
  ppid="$(cat "$dir/patroni-$name.pid")"
  pid="$(postmaster_pid "$name")"
  echo "killing leader $name (port $port): patroni pid $ppid, postmaster pid $pid ($(date -u +%H:%M:%S.%3N))"
  kill -9 "$ppid" 2>/dev/null || true
  [ -n "$pid" ] && kill -9 "$pid" 2>/dev/null || true
  echo "$name" >"$dir/killed"
}

# Start the killed member's Patroni again, as a rebooted machine would: once the old leader key has
# expired and another member leads, it rejoins as a replica (pg_rewind when its timeline diverged).
rejoin() {
  local name
  name="$(cat "$dir/killed" 2>/dev/null)" || { echo "no member was killed" >&2; exit 1; }
  wait_for "a new leader" $((ttl * 3)) "leader | grep -v '^$name '"
  start_member "${name#pg}"
  wait_for "$name back as a replica" 120 "curl -fsS http://127.0.0.1:$((28008 + ${name#pg}))/replica"
  rm -f "$dir/killed"
  echo "$name rejoined as a replica; leader: $(leader)"
}

# kill-leader, then the time until Patroni names a new leader, then rejoin.
failover() {
  local start name
  kill_leader
  name="$(cat "$dir/killed")"
  start=$(date +%s.%N)
  wait_for "a new leader" $((ttl * 3)) "leader | grep -v '^$name '"
  echo "new leader: $(leader) after $(echo "$(date +%s.%N) - $start" | bc) s"
  rejoin
}

down() {
  local n
  n="$(members_count)"
  for i in $(seq 1 "$n"); do
    if [ -f "$dir/patroni-pg$i.pid" ]; then kill "$(cat "$dir/patroni-pg$i.pid")" 2>/dev/null || true; fi
  done
  for i in $(seq 1 "$n"); do
    for _ in $(seq 1 40); do
      [ -f "$dir/data-pg$i/postmaster.pid" ] && kill -0 "$(postmaster_pid "pg$i")" 2>/dev/null || break
      sleep 0.5
    done
    pid="$(postmaster_pid "pg$i" || true)"
    if [ -n "${pid:-}" ] && kill -0 "$pid" 2>/dev/null; then kill -9 "$pid" 2>/dev/null || true; fi
  done
  if [ -f "$dir/etcd.pid" ]; then kill "$(cat "$dir/etcd.pid")" 2>/dev/null || true; fi
  sleep 0.5
  rm -rf "$dir"
  echo "stopped; removed $dir"
}

case "${1:-}" in
  up) shift; up "$@" ;;
  down) down ;;
  status) patronictl_cmd list ;;
  url) url ;;
  leader) leader ;;
  kill-leader) kill_leader ;;
  rejoin) rejoin ;;
  failover) failover ;;
  *) sed -n '2,26p' "$0"; exit 2 ;;
esac
