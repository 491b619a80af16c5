//! The listing index and counts on PostgreSQL (see `registry_storage::listing`; tables in
//! `migrations/0008_listing.sql`).
//!
//! Every write that touches a repository's manifests ends, before its quota and events, with
//! [`settle`]: it takes the repository's `repository_stats` row lock, then recomputes the
//! artifact rule for what it touched in new statements. Writers of one repository take turns on
//! that row, so the last one sees every fact the earlier ones committed, and each writer
//! recomputes what it changed itself: the index never keeps a stale answer. Lock order, the same
//! in every transaction: rows of the write itself, `repository_stats` (by repository name),
//! `listed_repositories`, `listed_count`, then quotas and the event counter.

use deadpool_postgres::Transaction;
use registry_storage::listing::{RepositoryPage, RepositoryStats, Touched, is_artifact, listed_change};
use registry_storage::quota::project_of;
use registry_storage::{Error, Result};

use crate::{Cached, pg_err};

fn db(context: &'static str) -> impl Fn(tokio_postgres::Error) -> Error {
    move |e| Error::Backend(pg_err(context, e))
}

fn i64_of(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

fn u64_of(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}

/// A [`RepositoryStats`] from a row of `repository, manifests, artifacts, pulls, created, updated`.
pub(crate) fn stats_of(row: &tokio_postgres::Row) -> RepositoryStats {
    let n = |i: usize| u64_of(row.get(i));
    RepositoryStats { name: row.get(0), manifests: n(1), artifacts: n(2), pulls: n(3), created: n(4), updated: n(5) }
}

/// Recomputes the artifact index for what `touched` names and moves `repo`'s counts and its
/// project's listing (see the module docs for the locks).
pub(crate) async fn settle(txn: &Transaction<'_>, repo: &str, touched: Touched) -> Result<()> {
    if touched.is_empty() {
        return Ok(());
    }
    let project = project_of(repo);
    txn.cached_execute(
        "INSERT INTO repository_stats (repository, project, manifests, artifacts, pulls, created, updated)
         VALUES ($1, $2, 0, 0, 0, 0, 0) ON CONFLICT DO NOTHING",
        &[&repo, &project],
    )
    .await
    .map_err(db("adding a repository's counts"))?;
    let row = txn
        .cached_one(
            "SELECT repository, manifests, artifacts, pulls, created, updated FROM repository_stats
             WHERE repository = $1 FOR UPDATE",
            &[&repo],
        )
        .await
        .map_err(db("locking a repository's counts"))?;
    let old = Some(stats_of(&row)).filter(|s| s.manifests > 0);
    let mut change = touched.change;
    if !touched.digests.is_empty() {
        let digests: Vec<&str> = touched.digests.iter().map(String::as_str).collect();
        // The artifact rule needs a manifest's tags only up to the first that is not cosign's:
        // one tag outside `sha256-*` (cosign's tags all begin so) settles it, and otherwise a few
        // of the `sha256-*` ones (a digest has at most three cosign tags per subject). A manifest
        // with 100,000 tags costs one index probe, not 100,000 rows per write.
        let facts = txn
            .cached_query(
                "SELECT m.digest, m.subject IS NOT NULL, m.pushed_at,
                        EXISTS (SELECT 1 FROM manifest_refs r WHERE r.reference = m.digest AND r.repository = m.repository),
                        ARRAY(SELECT t.tag FROM tags t WHERE t.repository = m.repository AND t.digest = m.digest
                              AND t.tag NOT LIKE 'sha256-%' LIMIT 1)
                        || ARRAY(SELECT t.tag FROM tags t WHERE t.repository = m.repository AND t.digest = m.digest
                              AND t.tag LIKE 'sha256-%' LIMIT 64)
                 FROM manifests m WHERE m.repository = $1 AND m.digest = ANY($2)",
                &[&repo, &digests],
            )
            .await
            .map_err(db("reading a manifest's facts"))?;
        let now: std::collections::HashMap<String, i64> = facts
            .iter()
            .filter(|r| is_artifact(r.get::<_, bool>(1), r.get::<_, bool>(3), &r.get::<_, Vec<String>>(4)))
            .map(|r| (r.get::<_, String>(0), r.get::<_, i64>(2)))
            .collect();
        let before: std::collections::HashMap<String, i64> = txn
            .cached_query(
                "SELECT digest, pushed_at FROM artifacts WHERE repository = $1 AND digest = ANY($2)",
                &[&repo, &digests],
            )
            .await
            .map_err(db("reading the artifact index"))?
            .iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect();
        let gone: Vec<&str> = before.iter().filter(|(d, t)| now.get(*d) != Some(t)).map(|(d, _)| d.as_str()).collect();
        let (added, times): (Vec<&str>, Vec<i64>) =
            now.iter().filter(|(d, t)| before.get(*d) != Some(t)).map(|(d, t)| (d.as_str(), *t)).unzip();
        if !gone.is_empty() {
            txn.cached_execute("DELETE FROM artifacts WHERE repository = $1 AND digest = ANY($2)", &[&repo, &gone])
                .await
                .map_err(db("updating the artifact index"))?;
        }
        if !added.is_empty() {
            txn.cached_execute(
                "INSERT INTO artifacts (repository, digest, pushed_at) SELECT $1, d, t FROM unnest($2::text[], $3::bigint[]) AS x(d, t)",
                &[&repo, &added, &times],
            )
            .await
            .map_err(db("updating the artifact index"))?;
        }
        change.artifacts += added.len() as i64 - gone.len() as i64;
    }
    if change.is_empty() {
        return Ok(());
    }
    let new = change.apply(repo, old.as_ref());
    let numbers = new.as_ref().map(RepositoryStats::numbers).unwrap_or_default();
    txn.cached_execute(
        "UPDATE repository_stats SET manifests = $2, artifacts = $3, pulls = $4, created = $5, updated = $6
         WHERE repository = $1",
        &[&repo, &i64_of(numbers.0), &i64_of(numbers.1), &i64_of(numbers.2), &i64_of(numbers.3), &i64_of(numbers.4)],
    )
    .await
    .map_err(db("updating a repository's counts"))?;
    let listed = |s: &Option<RepositoryStats>| s.as_ref().filter(|s| s.listed()).map(|s| i64_of(s.updated));
    match (listed(&old), listed(&new)) {
        (None, Some(updated)) => {
            txn.cached_execute(
                "INSERT INTO listed_repositories (repository, project, updated) VALUES ($1, $2, $3)",
                &[&repo, &project, &updated],
            )
            .await
            .map_err(db("listing a repository"))?;
        }
        (Some(before), Some(updated)) if before != updated => {
            txn.cached_execute("UPDATE listed_repositories SET updated = $2 WHERE repository = $1", &[&repo, &updated])
                .await
                .map_err(db("listing a repository"))?;
        }
        (Some(_), None) => {
            txn.cached_execute("DELETE FROM listed_repositories WHERE repository = $1", &[&repo])
                .await
                .map_err(db("unlisting a repository"))?;
        }
        _ => {}
    }
    let moved = listed_change(old.as_ref(), new.as_ref());
    if moved != 0 {
        txn.cached_execute(
            "INSERT INTO listed_count (project, repositories) VALUES ($1, $2)
             ON CONFLICT (project) DO UPDATE SET repositories = listed_count.repositories + EXCLUDED.repositories",
            &[&project, &moved],
        )
        .await
        .map_err(db("counting a project's repositories"))?;
    }
    Ok(())
}

/// A page of a project's listed repositories.
pub(crate) async fn project_repositories(
    client: &crate::lease::Lease,
    project: &str,
    offset: usize,
    limit: usize,
) -> Result<RepositoryPage> {
    let total = client
        .cached_opt("SELECT repositories FROM listed_count WHERE project = $1", &[&project])
        .await
        .map_err(db("counting a project's repositories"))?
        .map_or(0, |r| u64_of(r.get(0)));
    let rows = client
        .cached_query(
            "SELECT s.repository, s.manifests, s.artifacts, s.pulls, s.created, s.updated
             FROM listed_repositories l JOIN repository_stats s ON s.repository = l.repository
             WHERE l.project = $1 ORDER BY l.updated DESC, l.repository OFFSET $2 LIMIT $3",
            &[&project, &i64_of(offset as u64), &i64_of(limit as u64)],
        )
        .await
        .map_err(db("listing a project's repositories"))?;
    Ok(RepositoryPage { entries: rows.iter().map(stats_of).collect(), total })
}
