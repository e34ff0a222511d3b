-- eventd schema, version 7: the writer's functions find rows by index, whatever the statistics.
--
-- PL/pgSQL plans a function's statements once per session and keeps the
-- plans. Autovacuum analyzes a new deployment's tables after their first few
-- dozen rows; planned then, a lookup by key reads the whole table, since a
-- table of one page is read faster whole than through an index. As the table
-- grows the plan stays until autovacuum analyzes it again (it looks once a
-- minute), and in a ticket rush every registration read every registration
-- before it, inside the writer's one transaction. Batches of 30 across 100
-- events (python -m bench.stale_statistics --before, against the same without
-- --before): 0.58 ms per registration after 6,000 and 2.6 ms after 30,000,
-- where index plans stay at 0.18-0.19 ms.
--
-- Every lookup in these functions is by a key some index leads with, so they
-- run with sequential scans off: their plans read the index at any size, and
-- they may be kept. eventd's sessions have every statement planned as it runs
-- (plan_cache_mode, eventd/storage/database.py); these functions keep theirs
-- (plan_cache_mode = auto), which spares the server planning half a dozen
-- statements per registration. tests/test_sql_plans.py holds them to both.
-- A later migration that replaces one of these functions must repeat the SET
-- clauses in its definition: CREATE OR REPLACE drops what ALTER FUNCTION set.

ALTER FUNCTION eventd_registration_batch(text[], uuid[], uuid[], uuid[], boolean[])
    SET plan_cache_mode = auto;
ALTER FUNCTION eventd_register(uuid, uuid, uuid, boolean) SET enable_seqscan = off;
ALTER FUNCTION eventd_register(uuid, uuid, uuid, boolean) SET plan_cache_mode = auto;
ALTER FUNCTION eventd_cancel(uuid, uuid) SET enable_seqscan = off;
ALTER FUNCTION eventd_cancel(uuid, uuid) SET plan_cache_mode = auto;
ALTER FUNCTION eventd_promote(uuid) SET enable_seqscan = off;
ALTER FUNCTION eventd_promote(uuid) SET plan_cache_mode = auto;
ALTER FUNCTION eventd_enqueue_email(text, uuid) SET enable_seqscan = off;
ALTER FUNCTION eventd_enqueue_email(text, uuid) SET plan_cache_mode = auto;
ALTER FUNCTION eventd_delete_attendee(uuid) SET enable_seqscan = off;
ALTER FUNCTION eventd_delete_attendee(uuid) SET plan_cache_mode = auto;
-- SQL, not PL/pgSQL: planned at each call anyway.
ALTER FUNCTION eventd_send_reminders(uuid, interval) SET enable_seqscan = off;
