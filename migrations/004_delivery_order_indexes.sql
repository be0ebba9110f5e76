-- The delivery-order indexes key the id as the expression (id + 0), so that they serve page reads
-- (which order and seek by that expression) and nothing else. Keyed by the plain id, the planner
-- could pick keel_messages_order for a delete or update by id (`id = ANY($1)`, id its third column):
-- right after an autovacuum analyzed a drained, empty queue table, pg_class says 0 rows and a full
-- scan of that index looks as cheap as a primary-key probe. Measured here after a 100,000-message
-- drain and refill: 3.4 ms per id deleted that way (the whole index scanned per array element),
-- 4.8 s for a commit round's 1,000 ids, against 2 ms through the primary key; a benchmark run saw
-- two delete rounds pass the 9.5 s statement timeout. With the expression keys only the primary
-- keys match an id.
CREATE INDEX IF NOT EXISTS keel_messages_delivery ON keel_messages (dest_id, priority DESC, (id + 0));
DROP INDEX IF EXISTS keel_messages_order;
CREATE INDEX IF NOT EXISTS keel_sub_entries_delivery ON keel_sub_entries (sub_id, priority DESC, (msg_id + 0));
DROP INDEX IF EXISTS keel_sub_entries_order;
