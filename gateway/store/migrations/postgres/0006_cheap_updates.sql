-- Deliveries change status on every attempt and subscriptions when their health flips: room left
-- in each page (fillfactor) lets those updates be HOT (the new row version on the same page, no
-- index entries added), and autovacuum visits deliveries after 2 % of it changed rather than the
-- default 20 %, so dead row versions do not pile up in the claim's and queue depth's indexes.
-- Pages written from now on keep the room; existing ones get it when rewritten (VACUUM FULL).
ALTER TABLE deliveries SET (
    fillfactor = 70,
    autovacuum_vacuum_scale_factor = 0.02,
    autovacuum_analyze_scale_factor = 0.02
);
ALTER TABLE subscriptions SET (fillfactor = 70);
