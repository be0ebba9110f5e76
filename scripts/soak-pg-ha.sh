#!/bin/sh
# Issue #20.5 soak (not CI): mixed persistent load (SOAK_RATE msg/s split between a queue with a
# producer and a consumer and a topic with a producer and a durable subscriber; bodies 100 B to
# 16 KiB) on two Keel nodes over a Postgres primary + a streaming standby on loopback, a SIGKILL of
# the Keel master every 2 minutes and a Postgres promotion (SIGKILL of the primary, pg_ctl promote,
# the old primary re-joined with pg_rewind) every 10, for 30 minutes; at the end sent, receipted,
# received, lost and duplicated per stream, broker RSS and the message tables' dead tuples and size
# over time (tables + two SVG charts + JSON). Bounded: it stops after SOAK_MINUTES (plus the
# drain). Exit status 1 on any lost or duplicated receipted message, in either stream.
#
#   scripts/soak-pg-ha.sh [OUT_DIR]
#   SOAK_MINUTES=5 SOAK_KILL_EVERY=24 SOAK_PROMOTE_EVERY=120 scripts/soak-pg-ha.sh /tmp/soak
#
# Needs the built CLI (npm run build) and Postgres binaries (Debian postgresql-15).
set -eu
here=$(cd "$(dirname "$0")/.." && pwd)
out=${1:-keel-soak-pg}
mkdir -p "$out"
exec node "$here/packages/cli/dist/main.js" drill --mode pg-soak \
  --minutes "${SOAK_MINUTES:-30}" \
  --master-kill-every "${SOAK_KILL_EVERY:-120}" \
  --promote-every "${SOAK_PROMOTE_EVERY:-600}" \
  --sample-every "${SOAK_SAMPLE_EVERY:-10}" \
  --standby "${SOAK_STANDBY:-sync}" \
  --rate "${SOAK_RATE:-200}" \
  --chart "$out/soak-pg.svg" --json "$out/soak-pg.json"
