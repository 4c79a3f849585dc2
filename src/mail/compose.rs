//! Composing: turns an outbox row into the data its template reads — names in the
//! recipient's language, dates written out, the link to the page.
//!
//! The context always has the same keys (`null` when not applicable), so a template's
//! `{{#if …}}` means the same thing for every kind:
//! `recipient, reference, app_type, company, link, org, step, due, case_due,
//! revision_due, items[{n, label, note}], comment, reason, text, for_applicant,
//! overdue_days, expires, inviter, inviter_org, tasks[{n, reference, app_type, company, org,
//! step, due, link}], task_count` (the last two for the daily digest).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use chrono::{DateTime, NaiveDate, Utc};
use entity::notification_preference::NotificationMode;
use entity::{application, company, company_member, org_membership, outbox, task, user};
use sea_orm::{ColumnTrait, DatabaseConnection, DbErr, EntityTrait, QueryFilter, QueryOrder};
use serde_json::{Value, json};
use uuid::Uuid;

use super::prefs;
use super::render::Lang;
use crate::calendar::local_date;
use crate::store;
use crate::store::config::Config;
use crate::workflow::definition::Definition;

/// Why a row could not be composed.
#[derive(Debug, thiserror::Error)]
pub enum ComposeError {
    /// The database failed: try again later.
    #[error(transparent)]
    Db(#[from] DbErr),
    /// The row refers to something that does not exist (or cannot be read): retrying will
    /// not help.
    #[error("{0}")]
    Invalid(String),
}

/// A stored definition version through the configuration cache (parsed once per
/// configuration generation).
async fn definition(
    db: &DatabaseConnection,
    config: &Config,
    id: Uuid,
) -> Result<Arc<Definition>, ComposeError> {
    match config.definition(db, id).await {
        Ok(d) => Ok(d),
        Err(store::StoreError::Db(e)) => Err(ComposeError::Db(e)),
        Err(e) => Err(ComposeError::Invalid(format!("definition {id}: {e}"))),
    }
}

/// Writes a date the way the recipient reads it.
pub fn format_date(lang: Lang, d: NaiveDate) -> String {
    match lang {
        Lang::Zh => d.format("%Y年%-m月%-d日").to_string(),
        Lang::En => d.format("%-d %B %Y").to_string(),
    }
}

fn format_instant(lang: Lang, t: DateTime<Utc>) -> String {
    // Deadlines are read in Beijing time, like the working-day calendar.
    const CHINA: chrono::FixedOffset = match chrono::FixedOffset::east_opt(8 * 3600) {
        Some(o) => o,
        None => panic!("offset out of range"),
    };
    let local = t.with_timezone(&CHINA);
    match lang {
        Lang::Zh => local.format("%Y年%-m月%-d日 %H:%M").to_string(),
        Lang::En => local.format("%-d %B %Y, %H:%M (UTC+8)").to_string(),
    }
}

fn date_of(v: Option<&Value>) -> Option<NaiveDate> {
    v.and_then(|v| serde_json::from_value(v.clone()).ok())
}

fn str_of(v: Option<&Value>) -> Option<String> {
    v.and_then(Value::as_str)
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
}

fn uuid_of(v: Option<&Value>) -> Option<Uuid> {
    v.and_then(Value::as_str)
        .and_then(|s| Uuid::parse_str(s).ok())
}

/// The page an application's email links to; the web layer serves it to the applicant and
/// to the reviewers alike (each sees what their role allows).
pub fn application_link(base_url: &str, id: Uuid) -> String {
    format!("{}/applications/{id}", base_url.trim_end_matches('/'))
}

/// The link an email carries of its own (account emails: the page with its token), kept
/// only when it leads into the portal — a path, or an absolute link under `base`; anything
/// else becomes the portal's home page.
pub fn own_link(base: &str, link: Option<&str>) -> String {
    match link {
        Some(path) if path.starts_with('/') && !path.starts_with("//") => format!("{base}{path}"),
        Some(url) if url.starts_with(&format!("{base}/")) => url.to_string(),
        _ => format!("{base}/"),
    }
}

/// Builds the template context of `row`, reading what it needs for this row alone (see
/// [`Batch`] for many rows at once).
pub async fn context(
    db: &DatabaseConnection,
    row: &outbox::Model,
    config: &Config,
    base_url: &str,
) -> Result<Value, ComposeError> {
    Batch::read(db, std::slice::from_ref(row), false)
        .await?
        .context(db, row, config, base_url)
        .await
}

/// What delivering a batch of claimed outbox rows reads from the database — recipients,
/// their stored notification choices, applications, companies, company memberships,
/// tasks, organization memberships — read once for the whole batch: at most eight
/// statements, each an `IN (…)` over the batch, in two rounds of concurrent reads, instead
/// of six to eight statements per row. Each row is then composed from these maps
/// ([`Batch::context`]) exactly as if its data had been read on its own. Definitions come
/// from the configuration cache; the digest's list of tasks reads its own rows
/// ([`digest_tasks`]).
#[derive(Debug, Default)]
pub struct Batch {
    /// Recipients' names, by user id.
    names: HashMap<Uuid, String>,
    /// Recipients' stored choices, by (user, kind) (read by [`Batch::load`] only).
    modes: HashMap<(Uuid, String), NotificationMode>,
    applications: HashMap<Uuid, application::Model>,
    companies: HashMap<Uuid, company::Model>,
    /// (company, user): the recipients' memberships in the batch's companies.
    members: HashSet<(Uuid, Uuid)>,
    /// The tasks the rows' data name.
    tasks: HashMap<Uuid, task::Model>,
    /// Recipients' organizations (of rows about an application), by user, in the order
    /// the memberships were made.
    orgs_of: HashMap<Uuid, Vec<Uuid>>,
    /// Tasks of those organizations on the batch's applications, latest first.
    org_tasks: Vec<task::Model>,
}

/// `items` without repeats, in first-seen order.
fn distinct<T: PartialEq>(items: impl IntoIterator<Item = T>) -> Vec<T> {
    let mut out = Vec::new();
    for i in items {
        if !out.contains(&i) {
            out.push(i);
        }
    }
    out
}

/// The rows of `E` whose `col` is one of `ids` (no statement when there are none).
async fn rows_in<E: EntityTrait>(
    db: &DatabaseConnection,
    col: E::Column,
    ids: &[Uuid],
) -> Result<Vec<E::Model>, DbErr> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    E::find()
        .filter(col.is_in(ids.iter().copied()))
        .all(db)
        .await
}

fn data_of(row: &outbox::Model) -> Option<&Value> {
    row.payload.get("data")
}

impl Batch {
    /// Reads what delivering `rows` needs: the data to compose them and the recipients'
    /// notification choices.
    pub async fn load(db: &DatabaseConnection, rows: &[outbox::Model]) -> Result<Self, DbErr> {
        Self::read(db, rows, true).await
    }

    /// How an email of `kind` to `user` is delivered, by the stored choice read with the
    /// batch: `user` and `kind` must be those of a row the batch was loaded for (others
    /// were not read and count as immediate).
    pub fn mode(&self, user: Uuid, kind: &str) -> NotificationMode {
        prefs::effective(kind, self.modes.get(&(user, kind.to_string())).copied())
    }

    async fn read(
        db: &DatabaseConnection,
        rows: &[outbox::Model],
        with_modes: bool,
    ) -> Result<Self, DbErr> {
        // Rows about an application (the digest reads its own).
        let about_app: Vec<&outbox::Model> = rows
            .iter()
            .filter(|r| r.kind != prefs::DIGEST_KIND && r.application_id.is_some())
            .collect();
        let users = distinct(rows.iter().filter_map(|r| r.recipient_user_id));
        let app_users = distinct(about_app.iter().filter_map(|r| r.recipient_user_id));
        let app_ids = distinct(about_app.iter().filter_map(|r| r.application_id));
        let task_ids = distinct(
            about_app
                .iter()
                .filter_map(|r| uuid_of(data_of(r).and_then(|d| d.get("task")))),
        );
        let wanted_modes: Vec<(Uuid, &str)> = if with_modes {
            rows.iter()
                .filter_map(|r| r.recipient_user_id.map(|u| (u, r.kind.as_str())))
                .collect()
        } else {
            Vec::new()
        };

        // First round: everything keyed by the rows themselves.
        let (names, modes, applications, tasks, mut memberships) = tokio::try_join!(
            rows_in::<user::Entity>(db, user::Column::Id, &users),
            prefs::stored_modes(db, &wanted_modes),
            rows_in::<application::Entity>(db, application::Column::Id, &app_ids),
            rows_in::<task::Entity>(db, task::Column::Id, &task_ids),
            rows_in::<org_membership::Entity>(db, org_membership::Column::UserId, &app_users),
        )?;
        memberships.sort_by_key(|m| m.id);
        let mut batch = Batch {
            names: names.into_iter().map(|u| (u.id, u.name)).collect(),
            modes,
            applications: applications.into_iter().map(|a| (a.id, a)).collect(),
            tasks: tasks.into_iter().map(|t| (t.id, t)).collect(),
            ..Batch::default()
        };
        for m in memberships {
            batch.orgs_of.entry(m.user_id).or_default().push(m.org_id);
        }

        // Second round: keyed by what the first found. The latest task of a recipient's
        // organization is wanted when the row names no task that exists (and the
        // recipient turns out not to be an applicant, known only after this round).
        let company_ids = distinct(batch.applications.values().map(|a| a.company_id));
        let (mut lookup_apps, mut lookup_orgs) = (Vec::new(), Vec::new());
        for r in &about_app {
            let (Some(u), Some(app)) = (r.recipient_user_id, r.application_id) else {
                continue;
            };
            let named = uuid_of(data_of(r).and_then(|d| d.get("task")))
                .is_some_and(|id| batch.tasks.contains_key(&id));
            if named || !batch.applications.contains_key(&app) {
                continue;
            }
            if let Some(orgs) = batch.orgs_of.get(&u) {
                lookup_apps.push(app);
                lookup_orgs.extend(orgs.iter().copied());
            }
        }
        let (lookup_apps, lookup_orgs) = (distinct(lookup_apps), distinct(lookup_orgs));
        let (companies, members, org_tasks) = tokio::try_join!(
            rows_in::<company::Entity>(db, company::Column::Id, &company_ids),
            async {
                if company_ids.is_empty() || app_users.is_empty() {
                    return Ok(Vec::new());
                }
                company_member::Entity::find()
                    .filter(company_member::Column::CompanyId.is_in(company_ids.clone()))
                    .filter(company_member::Column::UserId.is_in(app_users.clone()))
                    .all(db)
                    .await
            },
            async {
                if lookup_apps.is_empty() {
                    return Ok(Vec::new());
                }
                task::Entity::find()
                    .filter(task::Column::ApplicationId.is_in(lookup_apps.clone()))
                    .filter(task::Column::OrgId.is_in(lookup_orgs.clone()))
                    .order_by_desc(task::Column::OpenedAt)
                    .order_by_desc(task::Column::Id)
                    .all(db)
                    .await
            },
        )?;
        batch.companies = companies.into_iter().map(|c| (c.id, c)).collect();
        batch.members = members
            .into_iter()
            .map(|m| (m.company_id, m.user_id))
            .collect();
        batch.org_tasks = org_tasks;
        Ok(batch)
    }

    /// Builds the template context of `row`, one of the rows the batch was read for.
    pub async fn context(
        &self,
        db: &DatabaseConnection,
        row: &outbox::Model,
        config: &Config,
        base_url: &str,
    ) -> Result<Value, ComposeError> {
        let orgs = &config.orgs;
        let lang = Lang::of(&row.locale);
        let data = row.payload.get("data").cloned().unwrap_or(Value::Null);
        let base = base_url.trim_end_matches('/');

        let recipient = row
            .recipient_user_id
            .and_then(|id| self.names.get(&id).cloned())
            .unwrap_or_else(|| row.recipient_email.clone());

        let mut ctx = json!({
            "recipient": recipient,
            "reference": str_of(row.payload.get("reference")),
            "app_type": null,
            "company": null,
            "link": own_link(base, str_of(data.get("link")).as_deref()),
            "org": null,
            "step": null,
            "due": null,
            "case_due": null,
            "revision_due": null,
            "items": null,
            "comment": str_of(data.get("comment")),
            "reason": str_of(data.get("reason")),
            "text": str_of(data.get("text")),
            "for_applicant": false,
            "overdue_days": data.get("overdue_days").and_then(Value::as_u64),
            "expires": data.get("expires")
                .and_then(|v| serde_json::from_value::<DateTime<Utc>>(v.clone()).ok())
                .map(|t| format_instant(lang, t)),
            "inviter": str_of(data.get("inviter")),
            "inviter_org": str_of(data.get("inviter_org")),
            "tasks": null,
            "task_count": null,
        });
        if row.kind == prefs::DIGEST_KIND {
            let tasks = digest_tasks(db, row, config, base).await?;
            if let Value::Object(m) = &mut ctx {
                m.insert("task_count".into(), json!(tasks.len()));
                m.insert("tasks".into(), json!(tasks));
            }
            return Ok(ctx);
        }
        let Some(app_id) = row.application_id else {
            return Ok(ctx);
        };
        let app = self
            .applications
            .get(&app_id)
            .ok_or_else(|| ComposeError::Invalid(format!("application {app_id} not found")))?;
        let def = definition(db, config, app.definition_id).await?;
        let company = self.companies.get(&app.company_id);
        let for_applicant = row
            .recipient_user_id
            .is_some_and(|u| self.members.contains(&(app.company_id, u)));

        // The task the event is about: named in the data, or else the latest task of the
        // recipient's organization on this application (events that close a sibling's task).
        let mut the_task = uuid_of(data.get("task")).and_then(|id| self.tasks.get(&id));
        let mut recipient_org = None;
        if the_task.is_none()
            && !for_applicant
            && let Some(u) = row.recipient_user_id
            && let Some(mine) = self.orgs_of.get(&u)
            && !mine.is_empty()
        {
            the_task = self
                .org_tasks
                .iter()
                .find(|t| t.application_id == app_id && mine.contains(&t.org_id));
            recipient_org = mine.first().copied();
        }
        let step_name = |id: &str| {
            def.step(id)
                .map_or_else(|| id.to_string(), |s| s.name.get(lang.tag()).to_string())
        };
        let org_name = |id: Uuid| {
            orgs.by_id(id).map(|o| match lang {
                Lang::Zh => o.name_zh.clone(),
                Lang::En => o.name_en.clone(),
            })
        };
        let step = str_of(data.get("step"))
            .or_else(|| the_task.map(|t| t.step_id.clone()))
            .map(|s| step_name(&s));
        let org = the_task
            .map(|t| t.org_id)
            .or(recipient_org)
            .and_then(org_name);
        let due = date_of(data.get("due")).or(the_task.map(|t| t.due_date));
        let revision_due = date_of(data.get("revision_due")).or(app.revision_due);

        let items: Option<Vec<Value>> = data.get("items").and_then(Value::as_array).map(|items| {
            items
                .iter()
                .enumerate()
                .map(|(i, item)| {
                    let id = item.get("id").and_then(Value::as_str).unwrap_or_default();
                    let label = match item.get("kind").and_then(Value::as_str) {
                        Some("material") => {
                            def.materials.iter().find(|m| m.id == id).map(|m| &m.name)
                        }
                        _ => def.sections.iter().find(|s| s.id == id).map(|s| &s.name),
                    }
                    .map_or_else(|| id.to_string(), |t| t.get(lang.tag()).to_string());
                    json!({
                        "n": i + 1,
                        "label": label,
                        "note": item.get("note").and_then(Value::as_str).unwrap_or_default(),
                    })
                })
                .collect()
        });

        if let Value::Object(m) = &mut ctx {
            let reference = str_of(row.payload.get("reference")).or(app.reference.clone());
            m.insert("reference".into(), json!(reference));
            m.insert("app_type".into(), json!(def.name.get(lang.tag())));
            m.insert("company".into(), json!(company.map(|c| c.name.clone())));
            m.insert("link".into(), json!(application_link(base, app_id)));
            m.insert("org".into(), json!(org));
            m.insert("step".into(), json!(step));
            m.insert("due".into(), json!(due.map(|d| format_date(lang, d))));
            m.insert(
                "case_due".into(),
                json!(app.case_due.map(|d| format_date(lang, d))),
            );
            m.insert(
                "revision_due".into(),
                json!(revision_due.map(|d| format_date(lang, d))),
            );
            m.insert("items".into(), json!(items));
            m.insert("for_applicant".into(), json!(for_applicant));
        }
        Ok(ctx)
    }
}

/// The new tasks a digest row lists, in the order they arrived, each with a link to its
/// task page. A task whose application has gone is left out.
async fn digest_tasks(
    db: &DatabaseConnection,
    row: &outbox::Model,
    config: &Config,
    base: &str,
) -> Result<Vec<Value>, ComposeError> {
    let orgs = &config.orgs;
    let lang = Lang::of(&row.locale);
    let ids = super::digest::carried(row);
    if ids.is_empty() {
        return Err(ComposeError::Invalid("a digest without tasks".into()));
    }
    let carried = outbox::Entity::find()
        .filter(outbox::Column::Id.is_in(ids))
        .order_by_asc(outbox::Column::CreatedAt)
        .order_by_asc(outbox::Column::Id)
        .all(db)
        .await?;
    let mut out = Vec::with_capacity(carried.len());
    for c in carried {
        let data = c.payload.get("data").cloned().unwrap_or(Value::Null);
        let Some(app_id) = c.application_id else {
            continue;
        };
        let Some(app) = application::Entity::find_by_id(app_id).one(db).await? else {
            continue;
        };
        let def = definition(db, config, app.definition_id).await?;
        let company = company::Entity::find_by_id(app.company_id).one(db).await?;
        let the_task = match uuid_of(data.get("task")) {
            Some(id) => task::Entity::find_by_id(id).one(db).await?,
            None => None,
        };
        let step = str_of(data.get("step"))
            .or_else(|| the_task.as_ref().map(|t| t.step_id.clone()))
            .map(|id| {
                def.step(&id)
                    .map_or_else(|| id.clone(), |s| s.name.get(lang.tag()).to_string())
            });
        let org = the_task
            .as_ref()
            .and_then(|t| orgs.by_id(t.org_id))
            .map(|o| match lang {
                Lang::Zh => o.name_zh.clone(),
                Lang::En => o.name_en.clone(),
            });
        let due = date_of(data.get("due")).or(the_task.as_ref().map(|t| t.due_date));
        let link = match &the_task {
            Some(t) => format!("{base}/tasks/{}", t.id),
            None => application_link(base, app.id),
        };
        out.push(json!({
            "n": out.len() + 1,
            "reference": str_of(c.payload.get("reference")).or(app.reference.clone()),
            "app_type": def.name.get(lang.tag()),
            "company": company.map(|c| c.name),
            "org": org,
            "step": step,
            "due": due.map(|d| format_date(lang, d)),
            "link": link,
        }));
    }
    Ok(out)
}

/// Today in the portal's time zone (for the timers).
pub fn today() -> NaiveDate {
    local_date(store::now())
}

#[cfg(test)]
mod link_tests {
    use super::own_link;

    #[test]
    fn account_links_lead_into_the_portal_only() {
        let base = "https://portal.example";
        assert_eq!(
            own_link(base, Some("/verify-email?token=abc")),
            "https://portal.example/verify-email?token=abc"
        );
        assert_eq!(
            own_link(base, Some("https://portal.example/password/reset?token=x")),
            "https://portal.example/password/reset?token=x"
        );
        for other in [
            None,
            Some("https://evil.example/x"),
            Some("//evil.example/x"),
            Some("https://portal.example.evil/x"),
        ] {
            assert_eq!(
                own_link(base, other),
                "https://portal.example/",
                "{other:?}"
            );
        }
    }
}
