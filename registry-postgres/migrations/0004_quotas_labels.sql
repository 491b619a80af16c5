-- Per-project usage (registry_storage::quota): each digest a project holds, its size and how many
-- holders (blob links and manifests of the project's repositories) it has there. Moved in the
-- same transaction as the holders; a project's usage moves when a digest's holders go 0 -> 1 or
-- 1 -> 0.
CREATE TABLE holdings (
    project TEXT COLLATE "C" NOT NULL,
    digest  TEXT COLLATE "C" NOT NULL,
    size    BIGINT NOT NULL,
    holders BIGINT NOT NULL,
    PRIMARY KEY (project, digest)
);

-- Each project's usage and limit (NULL: none). Its row lock serializes the pushes that grow a
-- project, so a push racing others at the limit either fits or is refused.
CREATE TABLE quotas (
    project      TEXT COLLATE "C" PRIMARY KEY,
    hard         BIGINT,
    used         BIGINT NOT NULL,
    warn_percent SMALLINT NOT NULL,
    created_ms   BIGINT NOT NULL,
    updated_ms   BIGINT NOT NULL
);

-- Labels on manifests (the label documents are policies of kind `label`), gone with the manifest.
CREATE TABLE labels (
    repository TEXT COLLATE "C" NOT NULL,
    digest     TEXT COLLATE "C" NOT NULL,
    label      BIGINT NOT NULL,
    PRIMARY KEY (repository, digest, label),
    FOREIGN KEY (repository, digest) REFERENCES manifests (repository, digest) ON DELETE CASCADE
);
CREATE INDEX labels_label ON labels (label);

-- What an existing database holds, counted once.
INSERT INTO holdings (project, digest, size, holders)
SELECT split_part(repository, '/', 1), digest, max(size), count(*)
FROM (
    SELECT repository, digest, size FROM blob_links
    UNION ALL
    SELECT repository, digest, (record::json ->> 'size')::bigint FROM manifests
) held
GROUP BY 1, 2;

INSERT INTO quotas (project, hard, used, warn_percent, created_ms, updated_ms)
SELECT project, NULL, sum(size), 85, (extract(epoch FROM now()) * 1000)::bigint, (extract(epoch FROM now()) * 1000)::bigint
FROM holdings
GROUP BY project;
