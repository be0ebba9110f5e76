-- Network forwards a broker accepted, for the duplicate detection of a bridge's resends: one row per
-- commit round and forwarding broker, holding the ids (there) of the messages it forwarded as one
-- multirange (mostly a few runs of consecutive ids). Replaces one keel_producers row per forwarded
-- message (`net:<origin>:<id>`), which grew by every message a bridge carried. Needs PostgreSQL 14
-- or later (multiranges, range_agg).
CREATE TABLE IF NOT EXISTS keel_forwarded (
  cluster  text NOT NULL,
  origin   text NOT NULL,
  ids      int8multirange NOT NULL,
  at       timestamptz NOT NULL DEFAULT now()
);
-- "Did origin forward id here?" (a resend's check) and the pruning of old rows.
CREATE INDEX IF NOT EXISTS keel_forwarded_ids ON keel_forwarded USING gist (ids);
CREATE INDEX IF NOT EXISTS keel_forwarded_at ON keel_forwarded (cluster, at);
