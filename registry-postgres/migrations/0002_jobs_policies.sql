-- The job queue: the queried fields as columns, the whole job (as registry_storage::jobs::Job)
-- in `record`. Claims take the advisory transaction lock of the queue, so that kinds' limits
-- hold across replicas, and lock candidate rows FOR UPDATE SKIP LOCKED.
CREATE SEQUENCE job_ids;
CREATE TABLE jobs (
    id          bigint PRIMARY KEY,
    kind        text   NOT NULL,
    status      text   NOT NULL,
    key         text   UNIQUE,
    run_at      bigint NOT NULL,
    lease_until bigint NOT NULL,
    updated_ms  bigint NOT NULL,
    record      text   NOT NULL
);
CREATE INDEX jobs_due ON jobs (run_at, id) WHERE status IN ('pending', 'running');
CREATE INDEX jobs_kind ON jobs (kind, id);

-- Policies (webhooks now; retention, immutability, replication later) and system settings.
CREATE TABLE policies (
    id         bigserial PRIMARY KEY,
    kind       text   NOT NULL,
    project_id bigint NOT NULL,
    name       text   NOT NULL,
    body       text   NOT NULL,
    created_ms bigint NOT NULL,
    updated_ms bigint NOT NULL,
    UNIQUE (kind, project_id, name)
);
