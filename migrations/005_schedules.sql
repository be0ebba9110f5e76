-- Scheduled delivery (ActiveMQ's AMQ_SCHEDULED_DELAY / _PERIOD / _REPEAT / _CRON): one row per job,
-- kept with the messages, so a takeover loses no schedule (ActiveMQ keeps its jobs in a local
-- KahaDB store even with JDBC persistence). The master pages due rows by next_due and turns each
-- firing into an ordinary send, in one transaction with advancing (or deleting) the row.
CREATE TABLE IF NOT EXISTS keel_schedules (
  cluster       text NOT NULL,
  -- the id of the message that asked for the schedule (ActiveMQ's scheduledJobId)
  job_id        text NOT NULL,
  -- canonical destination, queue://NAME or topic://NAME
  destination   text NOT NULL,
  headers       jsonb NOT NULL,
  body          bytea NOT NULL,
  -- the next firing, ms since the epoch
  next_due      bigint NOT NULL,
  delay_ms      bigint NOT NULL DEFAULT 0,
  period_ms     bigint NOT NULL DEFAULT 0,
  -- AMQ_SCHEDULED_REPEAT: firings after the first of each series
  repeat        integer NOT NULL DEFAULT 0,
  -- firings of the current series still to come after the one due at next_due
  repeats_left  integer NOT NULL DEFAULT 0,
  cron          text,
  -- the cron match the current series started from (ms since the epoch; 0 without cron)
  cron_time     bigint NOT NULL DEFAULT 0,
  fired         bigint NOT NULL DEFAULT 0,
  created_at    bigint NOT NULL,
  PRIMARY KEY (cluster, job_id)
);
CREATE INDEX IF NOT EXISTS keel_schedules_due ON keel_schedules (cluster, next_due);
