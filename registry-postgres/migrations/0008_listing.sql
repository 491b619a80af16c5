-- Listings at the cost of a page (registry_storage::listing): the artifact index and the counts,
-- kept by every write in its transaction (meta.rs, `settle_listing`).

-- The manifests that are artifacts of their own (registry_storage::listing::is_artifact). No
-- foreign key: a write removes its rows itself, counting what it removes.
CREATE TABLE artifacts (
    repository TEXT COLLATE "C" NOT NULL,
    digest TEXT COLLATE "C" NOT NULL,
    pushed_at BIGINT NOT NULL,
    PRIMARY KEY (repository, digest)
);
CREATE INDEX artifacts_newest ON artifacts (repository, pushed_at DESC, digest);

-- Each repository's counts; its row is also the lock its writers take turns on. A repository
-- that held manifests keeps its row, with zeros, when it holds none. No index but the key, so
-- that every update of this hot row is a HOT update (no new index entries, no dead ones).
CREATE TABLE repository_stats (
    repository TEXT COLLATE "C" PRIMARY KEY,
    project TEXT COLLATE "C" NOT NULL,
    manifests BIGINT NOT NULL,
    artifacts BIGINT NOT NULL,
    pulls BIGINT NOT NULL,
    created BIGINT NOT NULL,
    updated BIGINT NOT NULL
);

-- The repositories each project lists (those holding an artifact), by their newest push: a row
-- moved only when that time changes (at most once a second per repository), not with every count.
CREATE TABLE listed_repositories (
    repository TEXT COLLATE "C" PRIMARY KEY,
    project TEXT COLLATE "C" NOT NULL,
    updated BIGINT NOT NULL
);
CREATE INDEX listed_repositories_newest ON listed_repositories (project, updated DESC, repository);

-- How many repositories each project lists (those holding an artifact).
CREATE TABLE listed_count (
    project TEXT COLLATE "C" PRIMARY KEY,
    repositories BIGINT NOT NULL
);

-- What the database holds already. The rule as is_artifact states it: no subject, referenced by
-- no manifest of its repository, and not tagged only by cosign's sha256-<hex>.sig|att|sbom.
INSERT INTO artifacts (repository, digest, pushed_at)
SELECT m.repository, m.digest, m.pushed_at FROM manifests m
WHERE m.subject IS NULL
  AND NOT EXISTS (SELECT 1 FROM manifest_refs r WHERE r.reference = m.digest AND r.repository = m.repository)
  AND (NOT EXISTS (SELECT 1 FROM tags t WHERE t.repository = m.repository AND t.digest = m.digest)
       OR EXISTS (SELECT 1 FROM tags t WHERE t.repository = m.repository AND t.digest = m.digest
                  AND t.tag !~ '^sha256-[0-9a-f]{64}\.(sig|att|sbom)$'));

INSERT INTO repository_stats (repository, project, manifests, artifacts, pulls, created, updated)
SELECT m.repository, split_part(m.repository, '/', 1), count(*),
       (SELECT count(*) FROM artifacts a WHERE a.repository = m.repository),
       coalesce((SELECT sum(p.count) FROM pulls p WHERE p.repository = m.repository), 0),
       min(m.pushed_at), max(m.pushed_at)
FROM manifests m GROUP BY m.repository;

INSERT INTO listed_repositories (repository, project, updated)
SELECT repository, project, updated FROM repository_stats WHERE artifacts > 0;

INSERT INTO listed_count (project, repositories)
SELECT project, count(*) FROM repository_stats WHERE artifacts > 0 GROUP BY project;
