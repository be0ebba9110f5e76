-- Nodes of each cluster announce themselves here (master and slaves alike), so clients can learn
-- the broker list (failover updateURIsSupported) and operators can see every node.
CREATE TABLE IF NOT EXISTS keel_nodes (
  cluster     text NOT NULL,
  name        text NOT NULL,
  role        text NOT NULL,
  client_urls text[] NOT NULL DEFAULT '{}',
  admin_url   text,
  started_at  timestamptz NOT NULL DEFAULT now(),
  last_seen   timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (cluster, name)
);
