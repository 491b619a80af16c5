-- Scan reports (registry_storage::reports): by artifact digest, scanner registration and report
-- media type; `id` is the scan's, compared before each write so an older scan never overwrites
-- a newer one.
CREATE TABLE scan_reports (
    digest     TEXT COLLATE "C" NOT NULL,
    scanner    TEXT COLLATE "C" NOT NULL,
    mime_type  TEXT COLLATE "C" NOT NULL,
    id         TEXT NOT NULL,
    status     TEXT NOT NULL,
    job_id     BIGINT NOT NULL,
    started_ms BIGINT NOT NULL,
    ended_ms   BIGINT NOT NULL,
    summary    TEXT NOT NULL,
    body       TEXT NOT NULL,
    PRIMARY KEY (digest, scanner, mime_type)
);
