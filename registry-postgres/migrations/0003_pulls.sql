-- How often, and when last, each manifest was pulled: counted from the pull events in the
-- transaction that records them, dropped with the manifest.
CREATE TABLE pulls (
    repository TEXT COLLATE "C" NOT NULL,
    digest     TEXT COLLATE "C" NOT NULL,
    count      BIGINT NOT NULL,
    last_ms    BIGINT NOT NULL,
    PRIMARY KEY (repository, digest),
    FOREIGN KEY (repository, digest) REFERENCES manifests (repository, digest) ON DELETE CASCADE
);
