//! Reports: dashboards per organization and for the city, CSV exports, and the AI
//! enterprise monitoring catalogue.
//!
//! Who sees what: a reviewer or org admin sees the figures of their own organizations
//! only (asking for another organization is a 404, as if it did not exist); a system
//! administrator sees the whole city or any organization. The catalogue is for system
//! administrators and the lead bureau. Applicants and anonymous users get nothing.

use std::collections::BTreeMap;

use chrono::NaiveDate;
use poem::{
    IntoResponse, Response, Route, get, handler,
    http::{StatusCode, header},
    web::{Data, Query},
};
use serde::Deserialize;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::calendar::{Calendar, local_date};
use crate::organizations::OrgDirectory;
use crate::reports::{self, Filters, csv};
use crate::settings::Settings;
use crate::store;
use crate::web::{Ctx, State, i18n, internal, redirect};
use crate::workflow::definition::Definition;

/// Rows of the overdue list and of the low ratings shown on the page (the CSV has all).
const PAGE_ROWS: u64 = 100;

/// Adds this area's pages to the portal's routes.
pub fn mount(route: Route, _settings: &Settings) -> Route {
    route
        .at("/reports", get(dashboard))
        .at("/reports/catalogue", get(catalogue_page))
        .at("/reports/catalogue.csv", get(catalogue_csv))
        .at("/reports/status.csv", get(status_csv))
        .at("/reports/steps.csv", get(steps_csv))
        .at("/reports/cases.csv", get(cases_csv))
        .at("/reports/overdue.csv", get(overdue_csv))
        .at("/reports/trend.csv", get(trend_csv))
        .at("/reports/ratings.csv", get(ratings_csv))
        .at("/reports/low-ratings.csv", get(low_ratings_csv))
}

/// The filters as typed in the query string.
#[derive(Debug, Default, Deserialize)]
pub struct ReportQuery {
    #[serde(default)]
    org: String,
    #[serde(default, rename = "type")]
    app_type: String,
    #[serde(default)]
    from: String,
    #[serde(default)]
    to: String,
}

/// Everything a report page needs to know about the request.
struct Scope {
    filters: Filters,
    orgs: OrgDirectory,
    defs: BTreeMap<String, Definition>,
    /// Field problems of the query (the page comes back with status 422).
    errors: Vec<(&'static str, &'static str)>,
}

fn not_found() -> Response {
    poem::Error::from_status(StatusCode::NOT_FOUND).into_response()
}

/// The active definition of every application type, by key.
async fn definitions(
    state: &State,
    orgs: &OrgDirectory,
) -> poem::Result<BTreeMap<String, Definition>> {
    use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
    let keys: std::collections::BTreeSet<String> = entity::workflow_definition::Entity::find()
        .filter(entity::workflow_definition::Column::Active.eq(true))
        .all(&state.db)
        .await
        .map_err(internal)?
        .into_iter()
        .map(|d| d.key)
        .collect();
    let mut out = BTreeMap::new();
    for key in keys {
        let (_, def) = store::active_definition(&state.db, &key, orgs)
            .await
            .map_err(internal)?;
        out.insert(key, def);
    }
    Ok(out)
}

fn parse_day(s: &str) -> Result<Option<NaiveDate>, ()> {
    let s = s.trim();
    if s.is_empty() {
        return Ok(None);
    }
    NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .map(Some)
        .map_err(|_| ())
}

/// Who may see which figures: decides the organization of the report, or refuses.
async fn authorize(
    ctx: &Ctx,
    state: &State,
    q: &ReportQuery,
) -> poem::Result<Result<Scope, Response>> {
    if ctx.user.is_none() {
        return Ok(Err(redirect("/login")));
    }
    let roles = &ctx.roles;
    if !roles.system_admin && !roles.is_reviewer() {
        return Ok(Err(not_found()));
    }
    let orgs = store::load_orgs(&state.db).await.map_err(internal)?;
    let org = match q.org.trim() {
        "" if roles.system_admin => None,
        "" => roles.reviewer_of.iter().next().copied(),
        text => {
            let Ok(id) = Uuid::parse_str(text) else {
                return Ok(Err(not_found()));
            };
            let visible = if roles.system_admin {
                orgs.by_id(id).is_some()
            } else {
                roles.reviewer_of.contains(&id)
            };
            if !visible {
                return Ok(Err(not_found()));
            }
            Some(id)
        }
    };
    let defs = definitions(state, &orgs).await?;
    let mut errors = Vec::new();
    let app_type = match q.app_type.trim() {
        "" => None,
        t if defs.contains_key(t) => Some(t.to_string()),
        _ => {
            errors.push(("type", "reports-error-type"));
            None
        }
    };
    let from = parse_day(&q.from).unwrap_or_else(|()| {
        errors.push(("from", "reports-error-date"));
        None
    });
    let to = parse_day(&q.to).unwrap_or_else(|()| {
        errors.push(("to", "reports-error-date"));
        None
    });
    if let (Some(f), Some(t)) = (from, to)
        && f > t
    {
        errors.push(("to", "reports-error-range"));
    }
    Ok(Ok(Scope {
        filters: Filters {
            org,
            app_type,
            from,
            to,
        },
        orgs,
        defs,
        errors,
    }))
}

/// May see the AI enterprise monitoring catalogue: system administrators and members of
/// the lead bureau.
fn may_see_catalogue(ctx: &Ctx, orgs: &OrgDirectory) -> bool {
    ctx.roles.system_admin
        || orgs
            .by_code(reports::LEAD_BUREAU_CODE)
            .is_some_and(|o| ctx.roles.reviewer_of.contains(&o.id))
}

fn type_name(defs: &BTreeMap<String, Definition>, key: &str, lang: &str) -> String {
    defs.get(key)
        .map_or_else(|| key.to_string(), |d| d.name.get(lang).to_string())
}

fn step_name(defs: &BTreeMap<String, Definition>, key: &str, step: &str, lang: &str) -> String {
    defs.get(key)
        .and_then(|d| d.step(step))
        .map_or_else(|| step.to_string(), |s| s.name.get(lang).to_string())
}

#[allow(clippy::cast_precision_loss)]
fn share(part: i64, whole: i64) -> String {
    if whole == 0 {
        "–".to_string()
    } else {
        format!("{:.1}%", part as f64 * 100.0 / whole as f64)
    }
}

fn hours(h: f64) -> String {
    format!("{h:.1}")
}

/// The query string of the current filters, for the CSV links.
fn query_string(f: &Filters) -> String {
    let mut s = form_urlencoded::Serializer::new(String::new());
    if let Some(o) = f.org {
        s.append_pair("org", &o.to_string());
    }
    if let Some(t) = &f.app_type {
        s.append_pair("type", t);
    }
    if let Some(d) = f.from {
        s.append_pair("from", &d.to_string());
    }
    if let Some(d) = f.to {
        s.append_pair("to", &d.to_string());
    }
    let q = s.finish();
    if q.is_empty() { q } else { format!("?{q}") }
}

fn csv_response(name: &str, header: &[String], rows: Vec<Vec<String>>) -> poem::Result<Response> {
    let body = csv::document(header, rows).map_err(internal)?;
    Ok(Response::builder()
        .header(header::CONTENT_TYPE, "text/csv; charset=utf-8")
        .header(
            header::CONTENT_DISPOSITION,
            format!("attachment; filename=\"zhigang-{name}.csv\""),
        )
        .header(header::CACHE_CONTROL, "no-store")
        .body(body))
}

fn cols(lang: &str, keys: &[&str]) -> Vec<String> {
    keys.iter().map(|k| i18n::t(lang, k)).collect()
}

/// The statuses shown as columns of the type × status table (drafts are not reported).
const STATUSES: [&str; 6] = [
    "submitted",
    "in_review",
    "returned",
    "approved",
    "rejected",
    "withdrawn",
];

/// The per-type rows of the type × status table, with a total row.
fn status_table(
    counts: &[reports::StatusCount],
    defs: &BTreeMap<String, Definition>,
    lang: &str,
) -> Vec<(String, Vec<i64>)> {
    let mut by_type: BTreeMap<&str, [i64; STATUSES.len()]> = BTreeMap::new();
    for c in counts {
        let row = by_type.entry(c.app_type.as_str()).or_default();
        if let Some(i) = STATUSES.iter().position(|s| *s == c.status) {
            row[i] += c.count;
        }
    }
    let mut total = [0i64; STATUSES.len()];
    let mut rows: Vec<(String, Vec<i64>)> = by_type
        .into_iter()
        .map(|(t, r)| {
            for (acc, n) in total.iter_mut().zip(r) {
                *acc += n;
            }
            let mut v = r.to_vec();
            v.push(r.iter().sum());
            (type_name(defs, t, lang), v)
        })
        .collect();
    let mut t = total.to_vec();
    t.push(total.iter().sum());
    rows.push((i18n::t(lang, "reports-total"), t));
    rows
}

/// Days overdue: working days after the promised date up to today, and calendar days.
fn days_overdue(cal: &Calendar, due: NaiveDate, today: NaiveDate) -> (u32, i64) {
    (
        cal.working_days_between(due, today),
        (today - due).num_days(),
    )
}

/// The monthly trend as an SVG bar chart: coordinates only, the template draws it.
fn trend_chart(months: &[reports::MonthCount], lang: &str) -> Value {
    const LEFT: i64 = 44;
    const TOP: i64 = 12;
    const PLOT_H: i64 = 200;
    const GROUP_W: i64 = 50;
    const BAR_W: i64 = 18;
    let width = LEFT + GROUP_W * 12 + 8;
    let height = TOP + PLOT_H + 36;
    let max = months
        .iter()
        .flat_map(|m| [m.submitted, m.decided])
        .max()
        .unwrap_or(0);
    // A scale that divides into 4 whole steps.
    let ymax = ((max + 3) / 4 * 4).max(4);
    let y = |v: i64| TOP + PLOT_H - v * PLOT_H / ymax;
    let ticks: Vec<Value> = (0..=4)
        .map(|i| {
            let v = ymax * i / 4;
            json!({ "y": y(v), "label_y": y(v) + 4, "label": v, "x1": LEFT, "x2": width - 8, "label_x": LEFT - 6 })
        })
        .collect();
    let bars: Vec<Value> = months
        .iter()
        .enumerate()
        .map(|(i, m)| {
            let x0 = LEFT + i64::try_from(i).unwrap_or(0) * GROUP_W;
            json!({
                "month": m.month,
                "label": m.month.get(2..).unwrap_or(&m.month),
                "label_x": x0 + GROUP_W / 2,
                "label_y": TOP + PLOT_H + 16,
                "submitted": m.submitted,
                "decided": m.decided,
                "s_x": x0 + 6, "s_y": y(m.submitted), "s_h": PLOT_H + TOP - y(m.submitted),
                "d_x": x0 + 6 + BAR_W + 2, "d_y": y(m.decided), "d_h": PLOT_H + TOP - y(m.decided),
                "w": BAR_W,
            })
        })
        .collect();
    let submitted: i64 = months.iter().map(|m| m.submitted).sum();
    let decided: i64 = months.iter().map(|m| m.decided).sum();
    let desc = i18n::t_args(
        lang,
        "reports-trend-desc",
        &[
            (
                "first",
                months.first().map(|m| m.month.clone()).unwrap_or_default(),
            ),
            (
                "last",
                months.last().map(|m| m.month.clone()).unwrap_or_default(),
            ),
            ("submitted", submitted.to_string()),
            ("decided", decided.to_string()),
        ],
    );
    json!({
        "width": width,
        "height": height,
        "ticks": ticks,
        "bars": bars,
        "desc": desc,
        "legend_y": TOP + PLOT_H + 32,
    })
}

/// The dashboard: every report of the chosen scope on one page.
#[handler]
pub async fn dashboard(
    ctx: Ctx,
    state: Data<&State>,
    Query(q): Query<ReportQuery>,
) -> poem::Result<Response> {
    let scope = match authorize(&ctx, &state, &q).await? {
        Ok(s) => s,
        Err(resp) => return Ok(resp),
    };
    let lang = ctx.lang;
    let db = &state.db;
    let f = &scope.filters;
    let defs = &scope.defs;
    let today = local_date(store::now());
    let cal = store::load_calendar(db).await.map_err(internal)?;

    let status = reports::by_type_and_status(db, f).await.map_err(internal)?;
    let status_rows: Vec<Value> = status_table(&status, defs, lang)
        .into_iter()
        .map(|(name, counts)| json!({ "name": name, "counts": counts }))
        .collect();

    let steps = reports::step_times(db, f).await.map_err(internal)?;
    let (mut tasks_all, mut tasks_on_time) = (0, 0);
    let step_rows: Vec<Value> = steps
        .iter()
        .map(|s| {
            tasks_all += s.tasks;
            tasks_on_time += s.on_time;
            json!({
                "type": type_name(defs, &s.app_type, lang),
                "step": step_name(defs, &s.app_type, &s.step_id, lang),
                "tasks": s.tasks,
                "median_hours": hours(s.median_hours),
                "p90_hours": hours(s.p90_hours),
                "median_days": s.median_days,
                "p90_days": s.p90_days,
                "on_time": share(s.on_time, s.tasks),
            })
        })
        .collect();

    let cases = reports::cases_on_time(db, f).await.map_err(internal)?;
    let (cases_all, cases_on_time) = cases
        .iter()
        .fold((0, 0), |(a, o), c| (a + c.decided, o + c.on_time));
    let case_rows: Vec<Value> = cases
        .iter()
        .map(|c| {
            json!({
                "type": type_name(defs, &c.app_type, lang),
                "decided": c.decided,
                "on_time": c.on_time,
                "share": share(c.on_time, c.decided),
            })
        })
        .collect();

    let overdue_total = reports::overdue_count(db, f, today)
        .await
        .map_err(internal)?;
    let overdue: Vec<Value> = reports::overdue(db, f, today, Some(PAGE_ROWS))
        .await
        .map_err(internal)?
        .into_iter()
        .map(|o| {
            let (working, calendar) = days_overdue(&cal, o.due_date, today);
            json!({
                "task_id": o.task_id.to_string(),
                "reference": o.reference,
                "type": type_name(defs, &o.app_type, lang),
                "org": scope.orgs.name_of(o.org_id, lang),
                "step": step_name(defs, &o.app_type, &o.step_id, lang),
                "due": o.due_date.to_string(),
                "working_days": working,
                "calendar_days": calendar,
            })
        })
        .collect();

    let until = f.to.unwrap_or(today);
    let trend = reports::monthly_trend(db, f, until)
        .await
        .map_err(internal)?;
    let trend_rows: Vec<Value> = trend
        .iter()
        .map(|m| json!({ "month": m.month, "submitted": m.submitted, "decided": m.decided }))
        .collect();

    let rating = reports::ratings(db, f).await.map_err(internal)?;
    let distribution: Vec<Value> = (1..=5)
        .rev()
        .map(|score: usize| {
            let n = rating.distribution[score - 1];
            json!({ "score": score, "count": n, "share": share(n, rating.count) })
        })
        .collect();
    let low: Vec<Value> = reports::low_ratings(db, f, Some(PAGE_ROWS))
        .await
        .map_err(internal)?
        .into_iter()
        .map(|r| {
            json!({
                "reference": r.reference,
                "type": type_name(defs, &r.app_type, lang),
                "score": r.score,
                "comment": r.comment,
                "date": local_date(r.created_at).to_string(),
            })
        })
        .collect();

    // The organizations this user may choose.
    let mut org_options: Vec<Value> = Vec::new();
    if ctx.roles.system_admin {
        org_options.push(json!({ "id": "", "name": i18n::t(lang, "reports-whole-city"), "selected": f.org.is_none() }));
        let mut all: Vec<_> = scope.orgs.iter().collect();
        all.sort_by(|a, b| a.code.cmp(&b.code));
        for o in all {
            org_options.push(json!({ "id": o.id.to_string(), "name": scope.orgs.name_of(o.id, lang), "selected": f.org == Some(o.id) }));
        }
    } else {
        for id in &ctx.roles.reviewer_of {
            org_options.push(json!({ "id": id.to_string(), "name": scope.orgs.name_of(*id, lang), "selected": f.org == Some(*id) }));
        }
    }
    let type_options: Vec<Value> = defs
        .iter()
        .map(|(k, d)| json!({ "key": k, "name": d.name.get(lang), "selected": f.app_type.as_deref() == Some(k.as_str()) }))
        .collect();
    let errors = crate::web::form_errors(
        lang,
        scope
            .errors
            .iter()
            .map(|(field, key)| (*field, key.to_string())),
    );
    let scope_name = match f.org {
        Some(id) => scope.orgs.name_of(id, lang),
        None => i18n::t(lang, "reports-whole-city"),
    };
    let status_headers: Vec<String> = STATUSES
        .iter()
        .map(|s| i18n::t(lang, &format!("status-{s}")))
        .collect();
    let resp = ctx.page(
        &state,
        "pages/reports",
        "reports-title",
        json!({
            "scope_name": scope_name,
            "orgs": org_options,
            "types": type_options,
            "form": { "from": q.from, "to": q.to },
            "errors": errors,
            "qs": query_string(f),
            "status_headers": status_headers,
            "status_rows": status_rows,
            "steps": step_rows,
            "tasks_share": share(tasks_on_time, tasks_all),
            "tasks_all": tasks_all,
            "tasks_on_time": tasks_on_time,
            "cases": case_rows,
            "cases_share": share(cases_on_time, cases_all),
            "cases_all": cases_all,
            "cases_on_time": cases_on_time,
            "overdue": overdue,
            "overdue_total": overdue_total,
            "overdue_more": overdue_total > i64::try_from(PAGE_ROWS).unwrap_or(i64::MAX),
            "trend": trend_rows,
            "chart": trend_chart(&trend, lang),
            "rating_count": rating.count,
            "rating_average": rating.average.map(|a| format!("{a:.2}")),
            "distribution": distribution,
            "low": low,
            "catalogue": may_see_catalogue(&ctx, &scope.orgs),
        }),
    )?;
    if scope.errors.is_empty() {
        Ok(resp)
    } else {
        Ok(resp
            .with_status(StatusCode::UNPROCESSABLE_ENTITY)
            .into_response())
    }
}

/// The scope of a CSV export; a query with mistakes is a 400 (the page explains them).
async fn csv_scope(
    ctx: &Ctx,
    state: &State,
    q: &ReportQuery,
) -> poem::Result<Result<Scope, Response>> {
    let scope = authorize(ctx, state, q).await?;
    Ok(match scope {
        Ok(s) if !s.errors.is_empty() => {
            Err(poem::Error::from_status(StatusCode::BAD_REQUEST).into_response())
        }
        other => other,
    })
}

macro_rules! scoped {
    ($ctx:expr, $state:expr, $q:expr) => {
        match csv_scope(&$ctx, &$state, &$q).await? {
            Ok(s) => s,
            Err(resp) => return Ok(resp),
        }
    };
}

/// Applications by type and status, as CSV.
#[handler]
pub async fn status_csv(
    ctx: Ctx,
    state: Data<&State>,
    Query(q): Query<ReportQuery>,
) -> poem::Result<Response> {
    let s = scoped!(ctx, state, q);
    let lang = ctx.lang;
    let counts = reports::by_type_and_status(&state.db, &s.filters)
        .await
        .map_err(internal)?;
    let mut header = vec![i18n::t(lang, "col-type")];
    header.extend(
        STATUSES
            .iter()
            .map(|st| i18n::t(lang, &format!("status-{st}"))),
    );
    header.push(i18n::t(lang, "reports-total"));
    let rows = status_table(&counts, &s.defs, lang)
        .into_iter()
        .map(|(name, counts)| {
            std::iter::once(name)
                .chain(counts.iter().map(ToString::to_string))
                .collect()
        })
        .collect();
    csv_response("status", &header, rows)
}

/// Time per step, as CSV.
#[handler]
pub async fn steps_csv(
    ctx: Ctx,
    state: Data<&State>,
    Query(q): Query<ReportQuery>,
) -> poem::Result<Response> {
    let s = scoped!(ctx, state, q);
    let lang = ctx.lang;
    let steps = reports::step_times(&state.db, &s.filters)
        .await
        .map_err(internal)?;
    let header = cols(
        lang,
        &[
            "col-type",
            "reports-col-step",
            "reports-col-tasks",
            "reports-col-median-hours",
            "reports-col-p90-hours",
            "reports-col-median-days",
            "reports-col-p90-days",
            "reports-col-on-time",
            "reports-col-on-time-share",
        ],
    );
    let rows = steps
        .iter()
        .map(|st| {
            vec![
                type_name(&s.defs, &st.app_type, lang),
                step_name(&s.defs, &st.app_type, &st.step_id, lang),
                st.tasks.to_string(),
                hours(st.median_hours),
                hours(st.p90_hours),
                st.median_days.to_string(),
                st.p90_days.to_string(),
                st.on_time.to_string(),
                share(st.on_time, st.tasks),
            ]
        })
        .collect();
    csv_response("steps", &header, rows)
}

/// Applications decided within the promised time, as CSV.
#[handler]
pub async fn cases_csv(
    ctx: Ctx,
    state: Data<&State>,
    Query(q): Query<ReportQuery>,
) -> poem::Result<Response> {
    let s = scoped!(ctx, state, q);
    let lang = ctx.lang;
    let cases = reports::cases_on_time(&state.db, &s.filters)
        .await
        .map_err(internal)?;
    let header = cols(
        lang,
        &[
            "col-type",
            "reports-col-decided",
            "reports-col-on-time",
            "reports-col-on-time-share",
        ],
    );
    let rows = cases
        .iter()
        .map(|c| {
            vec![
                type_name(&s.defs, &c.app_type, lang),
                c.decided.to_string(),
                c.on_time.to_string(),
                share(c.on_time, c.decided),
            ]
        })
        .collect();
    csv_response("cases", &header, rows)
}

/// Every overdue task, as CSV.
#[handler]
pub async fn overdue_csv(
    ctx: Ctx,
    state: Data<&State>,
    Query(q): Query<ReportQuery>,
) -> poem::Result<Response> {
    let s = scoped!(ctx, state, q);
    let lang = ctx.lang;
    let today = local_date(store::now());
    let cal = store::load_calendar(&state.db).await.map_err(internal)?;
    let list = reports::overdue(&state.db, &s.filters, today, None)
        .await
        .map_err(internal)?;
    let header = cols(
        lang,
        &[
            "col-reference",
            "col-type",
            "reports-col-org",
            "reports-col-step",
            "reports-col-due",
            "reports-col-overdue-working",
            "reports-col-overdue-calendar",
        ],
    );
    let rows = list
        .iter()
        .map(|o| {
            let (w, c) = days_overdue(&cal, o.due_date, today);
            vec![
                o.reference.clone(),
                type_name(&s.defs, &o.app_type, lang),
                s.orgs.name_of(o.org_id, lang),
                step_name(&s.defs, &o.app_type, &o.step_id, lang),
                o.due_date.to_string(),
                w.to_string(),
                c.to_string(),
            ]
        })
        .collect();
    csv_response("overdue", &header, rows)
}

/// The monthly trend, as CSV.
#[handler]
pub async fn trend_csv(
    ctx: Ctx,
    state: Data<&State>,
    Query(q): Query<ReportQuery>,
) -> poem::Result<Response> {
    let s = scoped!(ctx, state, q);
    let lang = ctx.lang;
    let until = s.filters.to.unwrap_or_else(|| local_date(store::now()));
    let trend = reports::monthly_trend(&state.db, &s.filters, until)
        .await
        .map_err(internal)?;
    let header = cols(
        lang,
        &[
            "reports-col-month",
            "reports-col-submitted",
            "reports-col-decided",
        ],
    );
    let rows = trend
        .iter()
        .map(|m| {
            vec![
                m.month.clone(),
                m.submitted.to_string(),
                m.decided.to_string(),
            ]
        })
        .collect();
    csv_response("trend", &header, rows)
}

/// The rating distribution and average, as CSV.
#[handler]
pub async fn ratings_csv(
    ctx: Ctx,
    state: Data<&State>,
    Query(q): Query<ReportQuery>,
) -> poem::Result<Response> {
    let s = scoped!(ctx, state, q);
    let lang = ctx.lang;
    let r = reports::ratings(&state.db, &s.filters)
        .await
        .map_err(internal)?;
    let header = cols(
        lang,
        &[
            "reports-col-score",
            "reports-col-count",
            "reports-col-share",
        ],
    );
    let mut rows: Vec<Vec<String>> = (1..=5usize)
        .rev()
        .map(|score| {
            let n = r.distribution[score - 1];
            vec![score.to_string(), n.to_string(), share(n, r.count)]
        })
        .collect();
    rows.push(vec![
        i18n::t(lang, "reports-total"),
        r.count.to_string(),
        String::new(),
    ]);
    rows.push(vec![
        i18n::t(lang, "reports-average"),
        r.average.map(|a| format!("{a:.2}")).unwrap_or_default(),
        String::new(),
    ]);
    csv_response("ratings", &header, rows)
}

/// Every low rating, as CSV.
#[handler]
pub async fn low_ratings_csv(
    ctx: Ctx,
    state: Data<&State>,
    Query(q): Query<ReportQuery>,
) -> poem::Result<Response> {
    let s = scoped!(ctx, state, q);
    let lang = ctx.lang;
    let list = reports::low_ratings(&state.db, &s.filters, None)
        .await
        .map_err(internal)?;
    let header = cols(
        lang,
        &[
            "col-reference",
            "col-type",
            "reports-col-score",
            "reports-col-comment",
            "reports-col-date",
        ],
    );
    let rows = list
        .iter()
        .map(|r| {
            vec![
                r.reference.clone(),
                type_name(&s.defs, &r.app_type, lang),
                r.score.to_string(),
                r.comment.clone(),
                local_date(r.created_at).to_string(),
            ]
        })
        .collect();
    csv_response("low-ratings", &header, rows)
}

/// The catalogue's rows as the page and the CSV show them.
async fn catalogue_rows(
    ctx: &Ctx,
    state: &State,
    limit: Option<u64>,
) -> poem::Result<Result<Vec<Vec<String>>, Response>> {
    if ctx.user.is_none() {
        return Ok(Err(redirect("/login")));
    }
    let orgs = store::load_orgs(&state.db).await.map_err(internal)?;
    if !may_see_catalogue(ctx, &orgs) {
        return Ok(Err(not_found()));
    }
    let defs = definitions(state, &orgs).await?;
    let lang = ctx.lang;
    let field_label = |code: &str| -> String {
        defs.values()
            .find_map(|d| d.field(reports::AI_FIELD))
            .map_or_else(
                || code.to_string(),
                |f| f.option_label(code, lang).to_string(),
            )
    };
    let rows = reports::catalogue(&state.db, limit)
        .await
        .map_err(internal)?
        .into_iter()
        .map(|c| {
            vec![
                c.name,
                c.uscc,
                orgs.name_of(c.district_org_id, lang),
                c.ai_field.as_deref().map(field_label).unwrap_or_default(),
                c.applications.to_string(),
                c.approved.to_string(),
                c.rejected.to_string(),
                c.withdrawn.to_string(),
                c.open.to_string(),
            ]
        })
        .collect();
    Ok(Ok(rows))
}

/// Companies listed on the catalogue page (the CSV has all).
const CATALOGUE_PAGE_ROWS: u64 = 500;

const CATALOGUE_COLUMNS: [&str; 9] = [
    "reports-col-company",
    "reports-col-uscc",
    "reports-col-district",
    "reports-col-ai-field",
    "reports-col-applications",
    "status-approved",
    "status-rejected",
    "status-withdrawn",
    "reports-col-open",
];

/// The AI enterprise monitoring catalogue (行动计划 四、(五)).
#[handler]
pub async fn catalogue_page(ctx: Ctx, state: Data<&State>) -> poem::Result<Response> {
    let rows = match catalogue_rows(&ctx, &state, Some(CATALOGUE_PAGE_ROWS)).await? {
        Ok(r) => r,
        Err(resp) => return Ok(resp),
    };
    let total = reports::company_count(&state.db).await.map_err(internal)?;
    ctx.page(
        &state,
        "pages/reports_catalogue",
        "reports-catalogue-title",
        json!({
            "headers": cols(ctx.lang, &CATALOGUE_COLUMNS),
            "rows": rows,
            "total": total,
            "more": total > i64::try_from(CATALOGUE_PAGE_ROWS).unwrap_or(i64::MAX),
        }),
    )
}

/// The AI enterprise monitoring catalogue, as CSV.
#[handler]
pub async fn catalogue_csv(ctx: Ctx, state: Data<&State>) -> poem::Result<Response> {
    let rows = match catalogue_rows(&ctx, &state, None).await? {
        Ok(r) => r,
        Err(resp) => return Ok(resp),
    };
    csv_response("ai-catalogue", &cols(ctx.lang, &CATALOGUE_COLUMNS), rows)
}
