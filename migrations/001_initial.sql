-- Keel schema, version 1. Forward-only: never edit a released migration, add a new one.
-- All tables are shared by every cluster that uses this database; rows are scoped by cluster name
-- (directly, or through their destination).

-- The master lock (ActiveMQ's JDBC locker table). One row per cluster. The lock row normally lives
-- in a small database of its own (<database>_lock) so that the master's open transaction does not
-- hold back VACUUM here; the table exists in both so either can be used.
CREATE TABLE IF NOT EXISTS activemq_lock (
  cluster      text PRIMARY KEY,
  broker_name  text,
  -- lease locker: lease expiry in ms since the epoch, judged by the database's clock
  time         bigint NOT NULL DEFAULT 0
);

-- The fencing token. A new master commits epoch + 1 before it serves; every store write checks it.
CREATE TABLE IF NOT EXISTS keel_clusters (
  cluster     text PRIMARY KEY,
  epoch       bigint NOT NULL DEFAULT 0,
  master      text,
  updated_at  timestamptz NOT NULL DEFAULT now()
);

-- Every takeover, for operators (node, time, epoch, reason).
CREATE TABLE IF NOT EXISTS keel_takeovers (
  id       bigserial PRIMARY KEY,
  cluster  text NOT NULL,
  node     text NOT NULL,
  epoch    bigint NOT NULL,
  reason   text NOT NULL,
  at       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS keel_takeovers_cluster ON keel_takeovers (cluster, id DESC);

CREATE TABLE IF NOT EXISTS keel_destinations (
  id          serial PRIMARY KEY,
  cluster     text NOT NULL,
  type        text NOT NULL CHECK (type IN ('queue', 'topic')),
  name        text NOT NULL,
  created_at  timestamptz NOT NULL DEFAULT now(),
  UNIQUE (cluster, type, name)
);

-- Messages: queue messages, and topic messages that durable subscriptions still need.
-- id is assigned by the master: epoch * 2^32 + a counter, so ids grow across takeovers.
-- headers is readable with SQL (jsonb); the body stays binary.
CREATE TABLE IF NOT EXISTS keel_messages (
  id              bigint PRIMARY KEY,
  dest_id         integer NOT NULL,
  priority        smallint NOT NULL,
  expiration      bigint NOT NULL DEFAULT 0,
  delivery_count  integer NOT NULL DEFAULT 0,
  headers         jsonb NOT NULL,
  body            bytea NOT NULL
);
-- Delivery order: highest priority first, then arrival.
CREATE INDEX IF NOT EXISTS keel_messages_order ON keel_messages (dest_id, priority DESC, id);
CREATE INDEX IF NOT EXISTS keel_messages_expiry ON keel_messages (expiration) WHERE expiration > 0;

CREATE TABLE IF NOT EXISTS keel_durable_subs (
  id          serial PRIMARY KEY,
  cluster     text NOT NULL,
  client_id   text NOT NULL,
  name        text NOT NULL,
  dest_id     integer NOT NULL,
  selector    text,
  no_local    boolean NOT NULL DEFAULT false,
  created_at  timestamptz NOT NULL DEFAULT now(),
  UNIQUE (cluster, client_id, name)
);

-- What each durable subscription still has to receive: a reference to a stored topic message.
CREATE TABLE IF NOT EXISTS keel_sub_entries (
  sub_id          integer NOT NULL,
  msg_id          bigint NOT NULL,
  priority        smallint NOT NULL,
  delivery_count  integer NOT NULL DEFAULT 0,
  PRIMARY KEY (sub_id, msg_id)
);
CREATE INDEX IF NOT EXISTS keel_sub_entries_order ON keel_sub_entries (sub_id, priority DESC, msg_id);
CREATE INDEX IF NOT EXISTS keel_sub_entries_msg ON keel_sub_entries (msg_id);

-- Duplicate detection: the highest sequence stored per producer.
CREATE TABLE IF NOT EXISTS keel_producers (
  cluster      text NOT NULL,
  producer_id  text NOT NULL,
  last_seq     bigint NOT NULL,
  updated_at   timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (cluster, producer_id)
);

-- Outcomes of committed client transactions, so a client whose commit went unanswered across a
-- failover can ask the new master.
CREATE TABLE IF NOT EXISTS keel_tx_outcomes (
  cluster       text NOT NULL,
  tx_id         text NOT NULL,
  committed_at  timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (cluster, tx_id)
);

-- Scheduled maintenance runs, claimed in the database so one node runs each.
CREATE TABLE IF NOT EXISTS keel_job_runs (
  cluster   text NOT NULL,
  job       text NOT NULL,
  last_run  timestamptz NOT NULL,
  PRIMARY KEY (cluster, job)
);
