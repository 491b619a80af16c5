-- The registry's metadata and accounts on PostgreSQL. Names, tags and digests compare byte by
-- byte (COLLATE "C"), so listings page in the same order as the embedded store's.

CREATE TABLE repositories (
    name TEXT COLLATE "C" PRIMARY KEY
);

CREATE TABLE uploads (
    id TEXT PRIMARY KEY,
    repository TEXT NOT NULL,
    upload_offset BIGINT NOT NULL,
    verifier_state BYTEA NOT NULL,
    store_state BYTEA NOT NULL DEFAULT '',
    started_at BIGINT NOT NULL,
    lease_token BIGINT NOT NULL DEFAULT 0,
    lease_until BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX uploads_started_at ON uploads (started_at);

CREATE TABLE blob_links (
    repository TEXT COLLATE "C" NOT NULL,
    digest TEXT COLLATE "C" NOT NULL,
    size BIGINT NOT NULL,
    linked_at BIGINT NOT NULL,
    PRIMARY KEY (repository, digest)
);
CREATE INDEX blob_links_digest ON blob_links (digest);

CREATE TABLE manifests (
    repository TEXT COLLATE "C" NOT NULL,
    digest TEXT COLLATE "C" NOT NULL,
    record TEXT NOT NULL,
    subject TEXT COLLATE "C",
    pushed_at BIGINT NOT NULL,
    PRIMARY KEY (repository, digest)
);
CREATE INDEX manifests_digest ON manifests (digest);
CREATE INDEX manifests_subject ON manifests (repository, subject) WHERE subject IS NOT NULL;

-- What each manifest references (blobs and child manifests), by the referenced digest.
CREATE TABLE manifest_refs (
    reference TEXT COLLATE "C" NOT NULL,
    repository TEXT COLLATE "C" NOT NULL,
    manifest TEXT COLLATE "C" NOT NULL,
    PRIMARY KEY (reference, repository, manifest)
);
CREATE INDEX manifest_refs_manifest ON manifest_refs (repository, manifest);

CREATE TABLE tags (
    repository TEXT COLLATE "C" NOT NULL,
    tag TEXT COLLATE "C" NOT NULL,
    digest TEXT COLLATE "C" NOT NULL,
    PRIMARY KEY (repository, tag)
);
CREATE INDEX tags_digest ON tags (repository, digest);

-- Digests garbage collection is deleting: linking or pushing them waits for the collection.
CREATE TABLE collecting (
    digest TEXT COLLATE "C" PRIMARY KEY,
    since BIGINT NOT NULL
);

-- Digests being written to object storage: garbage collection does not mark them.
CREATE TABLE held (
    digest TEXT COLLATE "C" NOT NULL,
    holder BIGINT NOT NULL,
    until_ms BIGINT NOT NULL,
    PRIMARY KEY (digest, holder)
);

CREATE TABLE users (
    id BIGSERIAL PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    record TEXT NOT NULL
);

CREATE TABLE projects (
    id BIGSERIAL PRIMARY KEY,
    name TEXT COLLATE "C" NOT NULL UNIQUE,
    record TEXT NOT NULL
);

CREATE TABLE members (
    id BIGSERIAL PRIMARY KEY,
    project_id BIGINT NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    user_id BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    record TEXT NOT NULL,
    UNIQUE (project_id, user_id)
);
CREATE INDEX members_user ON members (user_id);

CREATE TABLE robots (
    id BIGSERIAL PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    project_id BIGINT REFERENCES projects (id) ON DELETE CASCADE,
    record TEXT NOT NULL
);

CREATE TABLE login_failures (
    name TEXT PRIMARY KEY,
    count INTEGER NOT NULL,
    last_at BIGINT NOT NULL
);

-- Secrets every replica must share (the token signing key).
CREATE TABLE secrets (
    name TEXT PRIMARY KEY,
    value BYTEA NOT NULL
);

-- The event stream (the transactional outbox). Ids come from one counter row, taken last in the
-- writing transaction: its row lock orders the writers, so ids grow in commit order and a
-- consumer reading by id never finds a smaller one committed later.
CREATE TABLE event_counter (
    one BOOLEAN PRIMARY KEY DEFAULT TRUE CHECK (one),
    last BIGINT NOT NULL
);
INSERT INTO event_counter (one, last) VALUES (TRUE, 0);

CREATE TABLE events (
    id BIGINT PRIMARY KEY,
    time_ms BIGINT NOT NULL,
    project TEXT COLLATE "C",
    action TEXT NOT NULL,
    username TEXT NOT NULL,
    resource TEXT NOT NULL,
    record TEXT NOT NULL
);
CREATE INDEX events_time ON events (time_ms);
CREATE INDEX events_project ON events (project, id);

CREATE TABLE cursors (
    name TEXT PRIMARY KEY,
    position BIGINT NOT NULL
);
