-- Message ids are `block * 2^32 + counter`, and keel_messages.id is the primary key of a table that
-- every cluster of the database shares. The block was the cluster's epoch, so two clusters at the
-- same epoch handed out the same ids, and the second insert of an id failed (23505: a send answered
-- in doubt or failed although its message was delivered). Each takeover now takes its block from
-- this database-wide sequence: unique across clusters, increasing across takeovers. It starts above
-- every epoch and every id stored so far. Blocks end at 2^21 - 1 (ids stay below 2^53).
CREATE SEQUENCE IF NOT EXISTS keel_id_blocks AS bigint MINVALUE 1 MAXVALUE 2097151;
SELECT setval(
  'keel_id_blocks',
  GREATEST(
    (SELECT COALESCE(max(epoch), 0) FROM keel_clusters),
    (SELECT COALESCE(max(id), 0) / 4294967296 FROM keel_messages)
  ) + 1,
  false
);
-- Which block each takeover took, for operators (and drills that look for an old master's rows).
ALTER TABLE keel_takeovers ADD COLUMN IF NOT EXISTS id_block bigint;
