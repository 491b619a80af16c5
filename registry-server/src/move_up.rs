//! `registry move-up --to <target.toml>`: copies a registry on its embedded default (redb and
//! files) into PostgreSQL and object storage, then compares the two.
//!
//! What moves: every blob (hashed on the way), repository, blob link, manifest and tag
//! (`registry_storage::transfer`); every user (password hashes as they are), project, member
//! and robot, with their ids (Harbor's clients and Terraform state name them by id); the token
//! signing key and its certificate, so tokens, robot logins and registries that trust this token
//! service keep working. Uploads in progress do not move.
//!
//! The source must be stopped (its database is locked while it runs) and the target database
//! empty; the bucket may hold blobs of an earlier attempt, which are kept when their size matches
//! (a stopped move resumes). The comparison reads every blob back from the target and hashes it.

use anyhow::{Context, bail};
use registry_auth::AccountStore;
use registry_postgres::AccountsImport;
use registry_storage::TransferReport;

use crate::backend;
use crate::config::Config;

/// Moves the registry of `source` into the stores of `target`; prints what moved.
pub(crate) async fn run(source: &Config, target: &Config) -> anyhow::Result<()> {
    if !source.database.url.is_empty() {
        bail!("this registry is on PostgreSQL already; move-up copies an embedded registry (metadata.redb)");
    }
    if target.database.url.is_empty() {
        bail!("the target configuration has no [database] url: move-up copies into PostgreSQL");
    }
    let from = backend::open(source)
        .await
        .with_context(|| format!("opening the registry in {} (stop its server first)", source.data_dir.display()))?;
    let into = backend::open(target).await.context("opening the target stores")?;
    let Some(database) = into.database.clone() else { bail!("the target has no database") };
    println!("moving {}\n  into {}", from.describe, into.describe);

    let accounts = read_accounts(from.accounts.as_ref()).await?;
    database.import_accounts(&accounts).await.context("importing the accounts")?;
    println!(
        "accounts: {} users, {} projects, {} members, {} robots, {} user groups",
        accounts.users.len(),
        accounts.projects.len(),
        accounts.members.len(),
        accounts.robots.len(),
        accounts.groups.len()
    );
    let (key, der) = backend::token_key(source, None).await?;
    let pem = key.to_pem()?;
    let kept = database
        .shared_secret("token-key.pem", || Ok(pem.clone().into_bytes()))
        .await
        .context("storing the token key")?;
    if kept != pem.as_bytes() {
        bail!("the target database holds another token key already: move up into an empty database");
    }
    database
        .shared_secret(&format!("token-cert.der:{}", key.kid()), || Ok(der.clone()))
        .await
        .context("storing the token certificate")?;

    let last_print = std::sync::Mutex::new(std::time::Instant::now());
    let progress = |r: &TransferReport| {
        let mut last = last_print.lock().unwrap_or_else(|p| p.into_inner());
        if last.elapsed().as_secs() >= 5 {
            *last = std::time::Instant::now();
            println!("  ... {} blobs ({} bytes), {} repositories", r.blobs, r.blob_bytes, r.repositories);
        }
    };
    let copied = from.registry.copy_into(&into.registry, &progress).await.context("copying the registry")?;
    println!(
        "copied: {} repositories, {} manifests, {} tags, {} blob links, {} blobs ({} bytes; {} already there); \
         {} policies (webhooks, immutability rules, labels, retention, scanners, settings), {} quotas, {} artifact labels, \
         {} scan reports",
        copied.repositories,
        copied.manifests,
        copied.tags,
        copied.links,
        copied.blobs,
        copied.blob_bytes,
        copied.blobs_skipped,
        copied.policies,
        copied.quotas,
        copied.labels,
        copied.reports
    );

    let compared = from.registry.compare_with(&into.registry).await.context("comparing the copy")?;
    let moved = read_accounts(into.accounts.as_ref()).await?;
    if !same_accounts(&accounts, &moved) {
        bail!("the accounts in the target differ from the source's");
    }
    println!(
        "compared: {} repositories, {} manifests, {} tags, {} blob links, {} blobs ({} bytes, each hashed), \
         {} policies, {} quotas, {} artifact labels, {} scan reports; accounts equal: the target matches the source",
        compared.repositories,
        compared.manifests,
        compared.tags,
        compared.links,
        compared.blobs,
        compared.blob_bytes,
        compared.policies,
        compared.quotas,
        compared.labels,
        compared.reports
    );
    println!("start the replicas with the target's [database] and [storage]");
    Ok(())
}

async fn read_accounts(store: &dyn AccountStore) -> anyhow::Result<AccountsImport> {
    let users = store.users().await?;
    let projects = store.projects().await?;
    let mut members = Vec::new();
    for project in &projects {
        members.extend(store.members(project.id).await?);
    }
    let robots = store.robots().await?;
    let groups = store.groups().await?;
    Ok(AccountsImport { users, projects, members, groups, robots })
}

fn same_accounts(a: &AccountsImport, b: &AccountsImport) -> bool {
    let key = |x: &AccountsImport| {
        let mut users: Vec<_> = x.users.iter().map(|u| (u.id, u.name.clone(), u.admin)).collect();
        let mut projects: Vec<_> = x.projects.iter().map(|p| (p.id, p.name.clone())).collect();
        let mut members: Vec<_> = x.members.iter().map(|m| (m.id, m.project_id, m.entity)).collect();
        let mut groups: Vec<_> = x.groups.iter().map(|g| (g.id, g.name.clone(), g.key())).collect();
        let mut robots: Vec<_> = x.robots.iter().map(|r| (r.id, r.name.clone())).collect();
        users.sort();
        projects.sort();
        members.sort();
        robots.sort();
        groups.sort();
        (users, projects, members, robots, groups)
    };
    key(a) == key(b)
}
