#!/usr/bin/env bash
# Scheduled delivery at scale (issue #22.4): broker RSS with 1,000,000 pending scheduled jobs, and the
# firing lag at 1,000 jobs/s falling due. Bounded: about two minutes. Needs a built repo (npm run build)
# and a Postgres superuser URL: scheduled-scale.sh postgres://postgres@127.0.0.1:55432/postgres
set -euo pipefail
BASE=${1:?postgres URL of a server (superuser)}
ROOT=$(cd "$(dirname "$0")/../../.." && pwd)
DB=keel_sched_scale
URL="${BASE%/*}/$DB"
ADMIN_PORT=${ADMIN_PORT:-18161}
psql -q "$BASE" -c "DROP DATABASE IF EXISTS $DB" -c "DROP DATABASE IF EXISTS ${DB}_lock" -c "CREATE DATABASE $DB"
node "$ROOT/packages/cli/dist/main.js" migrate --db "$URL" >/dev/null

rss() { awk '/VmRSS/ {print $2}' "/proc/$1/status"; }
start() {
  KEEL_LOG_LEVEL=warn node "$ROOT/packages/cli/dist/main.js" broker --db "$URL" --cluster scale --name scale-n1 \
    --port 0 --stomp-port 0 --admin-port "$ADMIN_PORT" >/tmp/sched-scale.log 2>&1 &
  PID=$!
  until curl -sf "http://127.0.0.1:$ADMIN_PORT/readyz" >/dev/null; do sleep 0.2; done
}
insert() { # $1 rows, $2 first due (ms), $3 spacing (ms)
  psql -q "$URL" -c "INSERT INTO keel_schedules (cluster, job_id, destination, headers, body, next_due, created_at)
    SELECT 'scale', 'bulk-' || $2 || '-' || g, 'queue://sched.scale',
      jsonb_build_object('destination', 'queue://sched.scale', 'persistent', true, 'priority', 4,
        'timestamp', $2, 'expiration', 0, 'properties', '{}'::jsonb),
      convert_to(repeat('x', 100), 'UTF8'), $2 + g * $3, $2
    FROM generate_series(1, $1) g"
}
now_ms() { echo $(( $(date +%s%N) / 1000000 )); }

# 1. RSS: an idle master with no jobs, then with 1,000,000 pending (due in a day), each after 20 s.
start; sleep 20; EMPTY=$(rss $PID); kill $PID; wait $PID || true
insert 1000000 $(( $(now_ms) + 86400000 )) 1
start; sleep 20; FULL=$(rss $PID)
echo "rss_kib_no_jobs=$EMPTY rss_kib_1m_pending=$FULL pending=$(curl -s "http://127.0.0.1:$ADMIN_PORT/metrics" | awk '/^keel_scheduled_jobs_pending/ {print $2}')"

# 2. Lag: 20,000 more jobs falling due at 1,000/s (one each ms), from 5 s from now; lag from the metrics.
insert 20000 $(( $(now_ms) + 5000 )) 1
sleep 30
curl -s "http://127.0.0.1:$ADMIN_PORT/metrics" | grep '^keel_scheduled_firing_lag_seconds\|^keel_scheduled_fired_total'
echo "rss_kib_after_firing=$(rss $PID)"
kill $PID; wait $PID || true
