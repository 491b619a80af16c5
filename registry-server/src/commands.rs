//! The account and garbage-collection commands: each is a few requests to the management API
//! (see [`Local`](crate::local::Local)), so they work the same whether the server runs or not.

use std::time::Duration;

use anyhow::{Context, bail};
use clap::Subcommand;
use http::Method;
use registry_auth::{RobotPermission, Role};
use serde_json::{Value, json};

use crate::local::Local;

/// `registry user …`
#[derive(Subcommand)]
pub(crate) enum UserCommand {
    /// Add a user; the password is read from REGISTRY_USER_PASSWORD or generated and printed.
    Add {
        name: String,
        /// Make the user a system administrator.
        #[arg(long)]
        admin: bool,
    },
    /// List users.
    List {},
    /// Remove a user and their memberships.
    Remove { name: String },
    /// Disable a user: no more logins or token refreshes.
    Disable { name: String },
    /// Enable a disabled user.
    Enable { name: String },
    /// Set a user's password (a reset: the old one is not needed). The new password is read from
    /// REGISTRY_USER_PASSWORD, or generated and printed.
    Passwd { name: String },
}

/// `registry project …`
#[derive(Subcommand)]
pub(crate) enum ProjectCommand {
    /// Create a project (private unless --public).
    Create {
        name: String,
        #[arg(long)]
        public: bool,
    },
    /// List projects.
    List {},
    /// Remove a project with its members and robots (refused while it holds repositories).
    Remove { name: String },
}

/// `registry member …`
#[derive(Subcommand)]
pub(crate) enum MemberCommand {
    /// Make a user a member: role is project_admin, maintainer, developer, guest or limited_guest.
    Add {
        project: String,
        user: String,
        role: String,
        /// Narrow the membership to repositories matching this pattern inside the project.
        #[arg(long)]
        repositories: Option<String>,
    },
    /// List a project's members.
    List { project: String },
    /// Remove a membership.
    Remove { project: String, user: String },
}

/// `registry robot …`
#[derive(Subcommand)]
pub(crate) enum RobotCommand {
    /// Create robot$<project>+<name>; its secret is printed once.
    Create {
        project: String,
        name: String,
        /// Permission `pattern:actions`, e.g. `*:pull,push` (repeatable).
        #[arg(long = "permission", required = true)]
        permissions: Vec<String>,
        /// Days until it expires [default: 30].
        #[arg(long, conflicts_with = "never_expires")]
        expires_days: Option<u64>,
        /// Never expire.
        #[arg(long)]
        never_expires: bool,
    },
    /// List robots (of one project, when given).
    List { project: Option<String> },
    /// Remove a robot by its full name.
    Remove { name: String },
}

fn password_from_env() -> anyhow::Result<(String, bool)> {
    Ok(match std::env::var("REGISTRY_USER_PASSWORD") {
        Ok(p) => (p, false),
        Err(_) => (registry_auth::token::random_id(18)?, true),
    })
}

async fn user_id(local: &Local, name: &str) -> anyhow::Result<u64> {
    let found = local.all(&format!("/users/search?username={}", registry_http::request::percent_encode(name))).await?;
    found
        .iter()
        .find(|u| u["username"] == name)
        .and_then(|u| u["user_id"].as_u64())
        .with_context(|| format!("user {name} not found"))
}

/// Runs a user command.
pub(crate) async fn user(local: &Local, command: UserCommand) -> anyhow::Result<()> {
    match command {
        UserCommand::Add { name, admin } => {
            let (password, generated) = password_from_env()?;
            let body = json!({"username": name, "password": password, "sysadmin_flag": admin});
            local.call(Method::POST, "/users", Some(body)).await?;
            if generated {
                println!("user {name} added; password (shown once): {password}");
            } else {
                println!("user {name} added");
            }
        }
        UserCommand::List {} => {
            for u in local.all("/users").await? {
                println!("{}\tadmin={}", u["username"].as_str().unwrap_or_default(), u["sysadmin_flag"]);
            }
        }
        UserCommand::Remove { name } => {
            let id = user_id(local, &name).await?;
            local.call(Method::DELETE, &format!("/users/{id}"), None).await?;
            println!("user {name} removed");
        }
        UserCommand::Disable { name } => {
            let id = user_id(local, &name).await?;
            local.call(Method::PUT, &format!("/users/{id}"), Some(json!({"enabled": false}))).await?;
            println!("user {name} disabled");
        }
        UserCommand::Enable { name } => {
            let id = user_id(local, &name).await?;
            local.call(Method::PUT, &format!("/users/{id}"), Some(json!({"enabled": true}))).await?;
            println!("user {name} enabled");
        }
        UserCommand::Passwd { name } => {
            let id = user_id(local, &name).await?;
            let (password, generated) = password_from_env()?;
            local.call(Method::PUT, &format!("/users/{id}/password"), Some(json!({"new_password": password}))).await?;
            if generated {
                println!("password of {name} reset; new password (shown once): {password}");
            } else {
                println!("password of {name} set");
            }
        }
    }
    Ok(())
}

/// Runs a project command.
pub(crate) async fn project(local: &Local, command: ProjectCommand) -> anyhow::Result<()> {
    match command {
        ProjectCommand::Create { name, public } => {
            let body = json!({"project_name": name, "metadata": {"public": public.to_string()}});
            local.call(Method::POST, "/projects", Some(body)).await?;
            println!("project {name} created ({})", if public { "public" } else { "private" });
        }
        ProjectCommand::List {} => {
            for p in local.all("/projects").await? {
                let public = p["metadata"]["public"] == "true";
                println!(
                    "{}\t{}\t{} repositories",
                    p["name"].as_str().unwrap_or_default(),
                    if public { "public" } else { "private" },
                    p["repo_count"]
                );
            }
        }
        ProjectCommand::Remove { name } => {
            local.call(Method::DELETE, &format!("/projects/{name}"), None).await?;
            println!("project {name} removed");
        }
    }
    Ok(())
}

/// Runs a member command.
pub(crate) async fn member(local: &Local, command: MemberCommand) -> anyhow::Result<()> {
    match command {
        MemberCommand::Add { project, user, role, repositories } => {
            let role = Role::parse(&role)?;
            let body = json!({"role_id": role.id(), "member_user": {"username": user}, "repositories": repositories});
            local.call(Method::POST, &format!("/projects/{project}/members"), Some(body)).await?;
            println!("{user} is {role} of {project}");
        }
        MemberCommand::List { project } => {
            for m in local.all(&format!("/projects/{project}/members")).await? {
                println!(
                    "{}\t{}\t{}",
                    m["entity_name"].as_str().unwrap_or_default(),
                    m["role_name"].as_str().unwrap_or_default(),
                    m["repositories"].as_str().unwrap_or("*")
                );
            }
        }
        MemberCommand::Remove { project, user } => {
            let members = local.all(&format!("/projects/{project}/members")).await?;
            let id = members
                .iter()
                .find(|m| m["entity_name"] == user.as_str())
                .and_then(|m| m["id"].as_u64())
                .with_context(|| format!("{user} is no member of {project}"))?;
            local.call(Method::DELETE, &format!("/projects/{project}/members/{id}"), None).await?;
            println!("{user} removed from {project}");
        }
    }
    Ok(())
}

fn robot_line(r: &Value) -> String {
    let perms: Vec<String> = r["permissions"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|p| {
            let actions: Vec<&str> =
                p["access"].as_array().into_iter().flatten().filter_map(|a| a["action"].as_str()).collect();
            format!(
                "{}/{}:{}",
                p["namespace"].as_str().unwrap_or("*"),
                p["repositories"].as_str().unwrap_or("*"),
                actions.join(",")
            )
        })
        .collect();
    let expiry = match r["expires_at"].as_i64() {
        Some(e) if e >= 0 => registry_core::time::rfc3339(e as u64),
        _ => "never".into(),
    };
    format!("{}\t{}\texpires {expiry}", r["name"].as_str().unwrap_or_default(), perms.join(" "))
}

/// Runs a robot command.
pub(crate) async fn robot(local: &Local, command: RobotCommand) -> anyhow::Result<()> {
    match command {
        RobotCommand::Create { project, name, permissions, expires_days, never_expires } => {
            let permissions = permissions
                .iter()
                .map(|p| RobotPermission::parse_for_project(&project, p))
                .collect::<Result<Vec<_>, _>>()?;
            let duration: i64 = if never_expires {
                -1
            } else {
                expires_days.unwrap_or(registry_auth::accounts::DEFAULT_ROBOT_DAYS) as i64
            };
            let body = json!({"name": name, "level": "project", "duration": duration, "permissions": permissions});
            let reply = local.call(Method::POST, "/robots", Some(body)).await?.json()?;
            println!(
                "robot {} created; secret (shown once): {}",
                reply["name"].as_str().unwrap_or_default(),
                reply["secret"].as_str().unwrap_or_default()
            );
        }
        RobotCommand::List { project } => {
            let path = match project {
                Some(p) => {
                    let id = local.call(Method::GET, &format!("/projects/{p}"), None).await?.json()?["project_id"]
                        .as_u64()
                        .context("project without an id")?;
                    format!("/robots?q=Level%3Dproject%2CProjectID%3D{id}")
                }
                None => "/robots".to_owned(),
            };
            for r in local.all(&path).await? {
                println!("{}", robot_line(&r));
            }
        }
        RobotCommand::Remove { name } => {
            let found = local.all("/robots").await?;
            let id = found
                .iter()
                .find(|r| r["name"] == name.as_str())
                .and_then(|r| r["id"].as_u64())
                .with_context(|| format!("robot {name} not found"))?;
            local.call(Method::DELETE, &format!("/robots/{id}"), None).await?;
            println!("robot {name} removed");
        }
    }
    Ok(())
}

/// `registry gc`: starts a collection and waits for its report.
/// `registry quota verify`: each project's counter against its usage recomputed from scratch.
pub(crate) async fn quota_verify(local: &Local) -> anyhow::Result<()> {
    let report = local.call(Method::GET, "/system/quotas/verify", None).await?.json()?;
    let drift = report["drift"].as_array().cloned().unwrap_or_default();
    for d in &drift {
        println!(
            "drift: project {} is counted at {} bytes but holds {}",
            d["project"].as_str().unwrap_or_default(),
            d["counted"],
            d["actual"]
        );
    }
    println!("{} projects checked, {} with drift", report["projects_checked"], drift.len());
    if !drift.is_empty() {
        bail!("quota usage differs from what the projects hold");
    }
    Ok(())
}

pub(crate) async fn gc(local: &Local, dry_run: bool, delete_untagged: bool) -> anyhow::Result<Value> {
    let body =
        json!({"schedule": {"type": "Manual"}, "parameters": {"dry_run": dry_run, "delete_untagged": delete_untagged}});
    let id = local.call(Method::POST, "/system/gc/schedule", Some(body)).await?.json()?["id"]
        .as_u64()
        .context("no run id in the answer")?;
    loop {
        let run = local.call(Method::GET, &format!("/system/gc/{id}"), None).await?.json()?;
        match run["job_status"].as_str() {
            Some("Pending" | "Running") => tokio::time::sleep(Duration::from_millis(100)).await,
            Some("Success") => return Ok(run["report"].clone()),
            _ => bail!("garbage collection {id} failed: {}", run["error"].as_str().unwrap_or("unknown error")),
        }
    }
}
