#!/usr/bin/env bash
# Install and run the peers Keel is compared with, on 127.0.0.1 only. NOT run by CI.
#
#   peers.sh install                    apt: activemq (5.17), rabbitmq-server, JDBC jars
#   peers.sh start  activemq|rabbitmq   start one peer; prints its PID (for --broker-pid)
#   peers.sh stop   activemq|rabbitmq   stop it by the PID it recorded (and RabbitMQ's epmd by its own)
#   peers.sh pid    activemq|rabbitmq   print the broker PID
#
# ActiveMQ: JDBC persistence on the same Postgres as Keel (database $ACTIVEMQ_DB), STOMP on
# $ACTIVEMQ_STOMP_PORT. RabbitMQ: STOMP plugin on $RABBIT_STOMP_PORT (it wants 61613 by default),
# durable queues (the bench sends durable:true/auto-delete:false), epmd bound to 127.0.0.1.
set -euo pipefail

STATE=${KEEL_PEERS_DIR:-/tmp/keel-peers}
PGHOST=${PGHOST:-127.0.0.1}
PGPORT=${PGPORT:-55432}
PGUSER=${PGUSER:-postgres}
ACTIVEMQ_DB=${ACTIVEMQ_DB:-activemq_bench}
ACTIVEMQ_STOMP_PORT=${ACTIVEMQ_STOMP_PORT:-61714}
ACTIVEMQ_OPENWIRE_PORT=${ACTIVEMQ_OPENWIRE_PORT:-61717}
ACTIVEMQ_HEAP=${ACTIVEMQ_HEAP:-1G}
RABBIT_STOMP_PORT=${RABBIT_STOMP_PORT:-61715}
RABBIT_AMQP_PORT=${RABBIT_AMQP_PORT:-5673}
RABBIT_DIST_PORT=${RABBIT_DIST_PORT:-25673}
RABBIT_NODE=${RABBIT_NODE:-keelbench@localhost}
export ERL_EPMD_ADDRESS=127.0.0.1
export ERL_EPMD_PORT=${ERL_EPMD_PORT:-4369}

psql_() { psql "postgres://$PGUSER@$PGHOST:$PGPORT/${1}" -v ON_ERROR_STOP=1 -Atq -c "$2"; }

wait_port() { # host port seconds
  local i
  for ((i = 0; i < $3 * 10; i++)); do
    if (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null; then return 0; fi
    sleep 0.1
  done
  echo "port $1:$2 did not open within $3 s" >&2
  return 1
}

stop_pid() { # pidfile
  [ -f "$1" ] || return 0
  local pid
  pid=$(cat "$1")
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid"
    for _ in $(seq 1 300); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$pid" 2>/dev/null && kill -KILL "$pid"
  fi
  rm -f "$1"
}

install_peers() {
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  # Debian's activemq has neither commons-dbcp2 nor the Postgres JDBC driver on its classpath.
  apt-get install -y -qq --no-install-recommends activemq rabbitmq-server \
    libcommons-dbcp2-java libcommons-pool2-java libpostgresql-jdbc-java default-jre-headless
  # The packages' own services are not used (they would bind every interface): keep them off.
  systemctl disable --now activemq rabbitmq-server epmd.socket 2>/dev/null || true
}

# Idempotent start: a peer already running (by its recorded PID) is left alone; its PID is printed.
running() { # name
  [ -f "$STATE/$1.pid" ] && kill -0 "$(cat "$STATE/$1.pid")" 2>/dev/null
}

start_activemq() {
  local base="$STATE/activemq"
  if running activemq; then echo "$(cat "$STATE/activemq.pid")"; return 0; fi
  mkdir -p "$base/conf" "$base/data" "$base/lib" "$base/tmp"
  for jar in postgresql commons-dbcp2 commons-pool2; do
    ln -sf "/usr/share/java/$jar.jar" "$base/lib/$jar.jar"
  done
  if [ -z "$(psql_ postgres "SELECT 1 FROM pg_database WHERE datname = '$ACTIVEMQ_DB'")" ]; then
    psql_ postgres "CREATE DATABASE $ACTIVEMQ_DB"
  fi
  # Create the JDBC tables only when missing (createTablesOnStartup would log errors every start).
  local create=false
  [ -z "$(psql_ "$ACTIVEMQ_DB" "SELECT 1 FROM pg_tables WHERE tablename = 'activemq_msgs'")" ] && create=true
  cat >"$base/conf/activemq.xml" <<EOF
<beans xmlns="http://www.springframework.org/schema/beans"
  xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"
  xsi:schemaLocation="http://www.springframework.org/schema/beans http://www.springframework.org/schema/beans/spring-beans.xsd
  http://activemq.apache.org/schema/core http://activemq.apache.org/schema/core/activemq-core.xsd">
  <bean id="postgres-ds" class="org.apache.commons.dbcp2.BasicDataSource" destroy-method="close">
    <property name="driverClassName" value="org.postgresql.Driver"/>
    <property name="url" value="jdbc:postgresql://$PGHOST:$PGPORT/$ACTIVEMQ_DB"/>
    <property name="username" value="$PGUSER"/>
    <property name="maxTotal" value="32"/>
    <property name="poolPreparedStatements" value="true"/>
  </bean>
  <broker xmlns="http://activemq.apache.org/schema/core" brokerName="bench" useJmx="false"
          dataDirectory="$base/data" persistent="true">
    <persistenceAdapter>
      <jdbcPersistenceAdapter dataSource="#postgres-ds" createTablesOnStartup="$create"/>
    </persistenceAdapter>
    <transportConnectors>
      <transportConnector name="openwire" uri="tcp://127.0.0.1:$ACTIVEMQ_OPENWIRE_PORT"/>
      <transportConnector name="stomp" uri="stomp://127.0.0.1:$ACTIVEMQ_STOMP_PORT"/>
    </transportConnectors>
  </broker>
</beans>
EOF
  # Debian's ActiveMQ logs through log4j 1.2.
  cat >"$base/conf/log4j.properties" <<EOF
log4j.rootLogger=INFO, logfile
log4j.logger.org.springframework=WARN
log4j.appender.logfile=org.apache.log4j.FileAppender
log4j.appender.logfile.file=$base/data/activemq.log
log4j.appender.logfile.layout=org.apache.log4j.PatternLayout
log4j.appender.logfile.layout.ConversionPattern=%d | %-5p | %m | %c | %t%n
EOF
  # Launch the JVM directly (not the init script) so that \$! is the broker's PID.
  java -Xms"$ACTIVEMQ_HEAP" -Xmx"$ACTIVEMQ_HEAP" \
    --add-opens java.base/java.lang=ALL-UNNAMED --add-opens java.base/java.util=ALL-UNNAMED \
    --add-opens java.base/java.util.concurrent=ALL-UNNAMED --add-opens java.base/java.net=ALL-UNNAMED \
    -Dlog4j.configuration="file:$base/conf/log4j.properties" \
    -Djava.io.tmpdir="$base/tmp" \
    -Dactivemq.classpath="$base/conf" -Dactivemq.home=/usr/share/activemq \
    -Dactivemq.base="$base" -Dactivemq.conf="$base/conf" -Dactivemq.data="$base/data" \
    -jar /usr/share/activemq/bin/activemq.jar start "xbean:file:$base/conf/activemq.xml" \
    >>"$base/data/stdout.log" 2>&1 &
  echo $! >"$STATE/activemq.pid"
  wait_port 127.0.0.1 "$ACTIVEMQ_STOMP_PORT" 120 || { tail -30 "$base/data/activemq.log" "$base/data/stdout.log" >&2; exit 1; }
  cat "$STATE/activemq.pid"
}

start_rabbitmq() {
  local base="$STATE/rabbitmq"
  if running rabbitmq; then echo "$(cat "$STATE/rabbitmq.pid")"; return 0; fi
  mkdir -p "$base/mnesia" "$base/log" "$base/home"
  cat >"$base/rabbitmq.conf" <<EOF
listeners.tcp.default = 127.0.0.1:$RABBIT_AMQP_PORT
stomp.listeners.tcp.1 = 127.0.0.1:$RABBIT_STOMP_PORT
loopback_users.guest = true
EOF
  echo '[rabbitmq_stomp].' >"$base/enabled_plugins"
  export HOME="$base/home" # the Erlang cookie lives here
  export RABBITMQ_NODENAME=$RABBIT_NODE RABBITMQ_NODE_IP_ADDRESS=127.0.0.1 RABBITMQ_NODE_PORT=$RABBIT_AMQP_PORT
  export RABBITMQ_DIST_PORT=$RABBIT_DIST_PORT RABBITMQ_CONFIG_FILE="$base/rabbitmq.conf"
  export RABBITMQ_ENABLED_PLUGINS_FILE="$base/enabled_plugins" RABBITMQ_MNESIA_BASE="$base/mnesia"
  export RABBITMQ_LOG_BASE="$base/log" RABBITMQ_PID_FILE="$STATE/rabbitmq.pid"
  export RABBITMQ_SERVER_ERL_ARGS="-kernel inet_dist_use_interface {127,0,0,1}"
  # epmd outlives the node: start it ourselves to know its PID, bound to 127.0.0.1.
  if ! [ -f "$STATE/epmd.pid" ] || ! kill -0 "$(cat "$STATE/epmd.pid")" 2>/dev/null; then
    epmd -address 127.0.0.1 -port "$ERL_EPMD_PORT" >>"$base/log/epmd.log" 2>&1 &
    echo $! >"$STATE/epmd.pid"
    wait_port 127.0.0.1 "$ERL_EPMD_PORT" 30
  fi
  /usr/lib/rabbitmq/bin/rabbitmq-server >>"$base/log/stdout.log" 2>&1 &
  # PEER_START_WAIT_S: how long a start may take (Erlang boots slowly on a busy machine).
  # Both listeners: the STOMP plugin's may open before AMQP's.
  local port
  for port in "$RABBIT_AMQP_PORT" "$RABBIT_STOMP_PORT"; do
    wait_port 127.0.0.1 "$port" "${PEER_START_WAIT_S:-120}" || { tail -30 "$base/log/stdout.log" >&2; exit 1; }
  done
  cat "$STATE/rabbitmq.pid"; echo
}

cmd=${1:-}
peer=${2:-}
mkdir -p "$STATE"
case "$cmd:$peer" in
  install:*) install_peers ;;
  start:activemq) start_activemq ;;
  start:rabbitmq) start_rabbitmq ;;
  stop:activemq) stop_pid "$STATE/activemq.pid" ;;
  stop:rabbitmq) stop_pid "$STATE/rabbitmq.pid"; stop_pid "$STATE/epmd.pid" ;;
  pid:activemq | pid:rabbitmq) cat "$STATE/$peer.pid" ;;
  *)
    sed -n '2,12p' "$0" >&2
    exit 2
    ;;
esac
