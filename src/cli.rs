//! The command line: `zhigang serve | migrate | workflow … | audit verify | admin …`.

use std::io::Read;
use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};
use entity::enums::OrgRole;
use entity::{org_membership, organization, system_admin, user};
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, EntityTrait, QueryFilter, TransactionTrait,
};
use uuid::Uuid;

use crate::organizations::OrgDirectory;
use crate::settings::Settings;
use crate::startup::{Application, prepare_database};
use crate::workflow::definition::Definition;
use crate::workflow::graph;
use crate::{audit, db, passwords, seed, store};

/// 智港 — enterprise support application portal.
#[derive(Debug, Parser)]
#[command(name = "zhigang", version, about)]
pub struct Cli {
    /// A TOML settings file (default: ./zhigang.toml if present).
    #[arg(long, global = true)]
    pub config: Option<PathBuf>,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Migrate, seed reference data and serve the portal.
    Serve,
    /// Run only the mail and timer worker (no HTTP); the database must be migrated.
    Worker,
    /// Apply pending database migrations and seed reference data.
    Migrate,
    /// Workflow definitions.
    #[command(subcommand)]
    Workflow(WorkflowCommand),
    /// The audit trail.
    #[command(subcommand)]
    Audit(AuditCommand),
    /// Provisioning.
    #[command(subcommand)]
    Admin(AdminCommand),
}

/// `zhigang workflow …`
#[derive(Debug, Subcommand)]
pub enum WorkflowCommand {
    /// Validate definition files; exits non-zero naming file, step and problem.
    Check {
        /// Files to check.
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Check organization codes against the configured database instead of the
        /// built-in organization list.
        #[arg(long)]
        against_database: bool,
    },
    /// Print the active version of a type as Graphviz DOT.
    Graph {
        /// The application type (`yqyc`, `ip_fast_track`, `platform_access`).
        key: String,
        /// Language of step names.
        #[arg(long, default_value = "zh-CN")]
        locale: String,
    },
}

/// `zhigang audit …`
#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Recompute every application's hash chain and replay its history.
    Verify,
}

/// Role of a user in an organization.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum RoleArg {
    /// Works the organization's inbox.
    Reviewer,
    /// Manages the organization's reviewers.
    OrgAdmin,
}

/// `zhigang admin …`
#[derive(Debug, Subcommand)]
pub enum AdminCommand {
    /// Create a user (a reviewer, an org admin or a system administrator).
    CreateUser {
        /// Email address (the login).
        #[arg(long)]
        email: String,
        /// Display name.
        #[arg(long)]
        name: String,
        /// Organization code to join.
        #[arg(long, requires = "role")]
        org: Option<String>,
        /// Role in the organization.
        #[arg(long, value_enum, requires = "org")]
        role: Option<RoleArg>,
        /// Make the user a system administrator.
        #[arg(long)]
        system_admin: bool,
        /// Read the password from standard input instead of generating one.
        #[arg(long)]
        password_stdin: bool,
    },
    /// Create a personal API token for a user and print it (once: only its hash is kept).
    CreateToken {
        /// The user's email address.
        #[arg(long)]
        email: String,
        /// A name for the token (which system uses it).
        #[arg(long)]
        name: String,
        /// Days until the token expires (default: until revoked).
        #[arg(long)]
        expires_days: Option<i64>,
    },
}

/// Runs the command line; returns the process exit code.
pub async fn run(cli: Cli) -> anyhow::Result<i32> {
    let settings = Settings::load(cli.config.as_deref())?;
    match cli.command {
        Command::Serve => {
            let app = Application::build(&settings).await?;
            app.run().await?;
            Ok(0)
        }
        Command::Worker => {
            crate::mail::run_standalone(&settings).await?;
            Ok(0)
        }
        Command::Migrate => {
            prepare_database(&settings).await?;
            println!("database migrated and reference data loaded");
            Ok(0)
        }
        Command::Workflow(WorkflowCommand::Check {
            files,
            against_database,
        }) => {
            let orgs = if against_database {
                let conn = db::connect(&settings.database_url(), 2).await?;
                store::load_orgs(&conn).await?
            } else {
                OrgDirectory::from_seed()?
            };
            let mut failed = false;
            for f in &files {
                let name = f.display().to_string();
                let source = match std::fs::read_to_string(f) {
                    Ok(s) => s,
                    Err(e) => {
                        eprintln!("{name}: cannot read: {e}");
                        failed = true;
                        continue;
                    }
                };
                match Definition::parse(&name, &source, &orgs) {
                    Ok(d) => println!("{name}: ok ({}, {} steps)", d.key, d.steps.len()),
                    Err(errors) => {
                        failed = true;
                        eprintln!("{errors}");
                    }
                }
            }
            Ok(if failed { 1 } else { 0 })
        }
        Command::Workflow(WorkflowCommand::Graph { key, locale }) => {
            let conn = prepare_database(&settings).await?;
            let orgs = store::load_orgs(&conn).await?;
            let (_, def) = store::active_definition(&conn, &key, &orgs)
                .await
                .map_err(|e| anyhow::anyhow!("no active definition \"{key}\": {e}"))?;
            print!("{}", graph::to_dot(&def, &locale, None));
            Ok(0)
        }
        Command::Audit(AuditCommand::Verify) => {
            let conn = db::connect(&settings.database_url(), 2).await?;
            db::migrate(&conn).await?;
            let report = audit::verify(&conn).await?;
            for p in &report.problems {
                println!("{p}");
            }
            println!(
                "checked {} applications and {} events: {} problems",
                report.applications,
                report.events,
                report.problems.len()
            );
            // The administrative log has its own chain (see `admin::verify_chain`).
            let admin_broken = crate::admin::verify_chain(&conn).await?;
            match admin_broken {
                Some((seq, id)) => println!("admin log: chain broken at event #{seq} {id}"),
                None => println!("admin log: chain intact"),
            }
            Ok(if report.problems.is_empty() && admin_broken.is_none() {
                0
            } else {
                2
            })
        }
        Command::Admin(AdminCommand::CreateUser {
            email,
            name,
            org,
            role,
            system_admin,
            password_stdin,
        }) => {
            let conn = prepare_database(&settings).await?;
            let (password, generated) = if password_stdin {
                let mut s = String::new();
                std::io::stdin().read_to_string(&mut s)?;
                let p = s.trim_end_matches(['\r', '\n']).to_string();
                if p.chars().count() < 12 || p.chars().count() > 128 {
                    anyhow::bail!("the password must have 12 to 128 characters");
                }
                (p, false)
            } else {
                (passwords::generate(), true)
            };
            let email = email.trim().to_lowercase();
            if !email.contains('@') {
                anyhow::bail!("not an email address: {email}");
            }
            if user::Entity::find()
                .filter(user::Column::Email.eq(email.as_str()))
                .one(&conn)
                .await?
                .is_some()
            {
                anyhow::bail!("a user with the email {email} already exists");
            }
            let org_id = match &org {
                Some(code) => Some(
                    organization::Entity::find()
                        .filter(organization::Column::Code.eq(code.as_str()))
                        .one(&conn)
                        .await?
                        .ok_or_else(|| anyhow::anyhow!("unknown organization code {code}"))?
                        .id,
                ),
                None => None,
            };
            let hash = passwords::Hasher::default().hash(password.clone()).await?;
            let txn = conn.begin().await?;
            let id = seed::create_user_row(&txn, &email, &name, &hash).await?;
            if let (Some(org_id), Some(role)) = (org_id, role) {
                org_membership::ActiveModel {
                    id: Set(Uuid::now_v7()),
                    org_id: Set(org_id),
                    user_id: Set(id),
                    role: Set(match role {
                        RoleArg::Reviewer => OrgRole::Reviewer,
                        RoleArg::OrgAdmin => OrgRole::OrgAdmin,
                    }),
                    active: Set(true),
                    created_at: Set(store::now()),
                }
                .insert(&txn)
                .await?;
            }
            if system_admin {
                system_admin::ActiveModel {
                    id: Set(Uuid::now_v7()),
                    user_id: Set(id),
                    created_at: Set(store::now()),
                }
                .insert(&txn)
                .await?;
            }
            txn.commit().await?;
            println!("created user {email} ({id})");
            if generated {
                println!("password: {password}");
            }
            Ok(0)
        }
        Command::Admin(AdminCommand::CreateToken {
            email,
            name,
            expires_days,
        }) => {
            let conn = prepare_database(&settings).await?;
            let email = email.trim().to_lowercase();
            let u = user::Entity::find()
                .filter(user::Column::Email.eq(email.as_str()))
                .one(&conn)
                .await?
                .filter(|u| u.active)
                .ok_or_else(|| anyhow::anyhow!("no active user with the email {email}"))?;
            let txn = conn.begin().await?;
            let new = match crate::api::tokens::create(&txn, u.id, &name, expires_days).await? {
                Ok(new) => new,
                Err(crate::api::tokens::TokenError::Name) => {
                    anyhow::bail!("the name must have 1 to 100 characters")
                }
                Err(crate::api::tokens::TokenError::Expiry) => anyhow::bail!(
                    "--expires-days must be between 1 and {}",
                    crate::api::tokens::EXPIRES_DAYS_MAX
                ),
            };
            txn.commit().await?;
            eprintln!(
                "created API token \"{}\" ({}) for {email}",
                new.row.name, new.row.id
            );
            println!("{}", new.secret);
            Ok(0)
        }
    }
}
