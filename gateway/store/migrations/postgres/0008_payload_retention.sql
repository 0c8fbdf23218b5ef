-- Where each purge that walks the events in arrival order resumes (`gateway.store.retention`):
-- the payload purge blanks events' `data` past its window and continues from here next round,
-- rather than walking again every event whose payload is gone already. An event whose payload
-- was purged keeps its row, its data the JSON `null` (a payload is always an object).
CREATE TABLE retention_marks (
    name  TEXT PRIMARY KEY,
    seq   BIGINT NOT NULL
);
