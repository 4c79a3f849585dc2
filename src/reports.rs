//! Reports: aggregate queries behind the dashboards and CSV exports (see `web::reports`).
//!
//! Every figure is computed by the database with `GROUP BY` and window functions, so the
//! cost stays in the database's indexes (migration 000007) and nothing loads all
//! applications into memory. The few expressions that differ between SQLite and PostgreSQL
//! (local dates, hours between instants, day numbers, months, JSON fields) live in
//! [`Dialect`]; everything else is the same SQL on both.
//!
//! Conventions:
//! - Dates are China Standard Time (UTC+8) calendar dates, as everywhere in the portal.
//! - The date range selects applications by the day they were submitted.
//! - Percentiles use the nearest-rank method: the p-th percentile of n sorted values is
//!   the value at rank ⌈p·n/100⌉ (so the median of 4 values is the 2nd).
//! - A step's working days are the working days `d` with `opened < d <= closed` (local
//!   dates), i.e. [`crate::calendar::Calendar::working_days_between`], counted from the
//!   `calendar_days` table.

pub mod csv;

use chrono::{DateTime, Datelike, Duration, NaiveDate, NaiveTime, Utc};
use sea_orm::{ConnectionTrait, DbBackend, DbErr, QueryResult, Statement, Value};
use uuid::Uuid;

/// The code of the lead bureau (市工业和信息化委), which keeps the AI enterprise
/// monitoring catalogue with the system administrators (行动计划 四、(五)).
pub const LEAD_BUREAU_CODE: &str = "TJ-MIIT";

/// The form field that names a company's AI field (人工智能领域), in any application type.
pub const AI_FIELD: &str = "ai_field";

/// A rating at or below this score is a low one (差评), listed on the dashboard.
pub const LOW_RATING_MAX: i32 = 2;

/// What a report covers. `org: None` is the whole city (system administrators only; the
/// web layer checks who may ask for which organization).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filters {
    /// Only applications where this organization had a task; task figures only its tasks.
    pub org: Option<Uuid>,
    /// Only this application type.
    pub app_type: Option<String>,
    /// Submitted on or after this day.
    pub from: Option<NaiveDate>,
    /// Submitted on or before this day.
    pub to: Option<NaiveDate>,
}

/// The instant a China Standard Time day begins.
pub fn day_start(day: NaiveDate) -> DateTime<Utc> {
    (day.and_time(NaiveTime::MIN) - Duration::hours(8)).and_utc()
}

/// SQL fragments that differ between the databases.
#[derive(Debug, Clone, Copy)]
struct Dialect(DbBackend);

impl Dialect {
    fn pg(self) -> bool {
        self.0 == DbBackend::Postgres
    }

    /// The China Standard Time date of a timestamp column.
    fn local_date(self, col: &str) -> String {
        if self.pg() {
            format!("CAST((({col}) AT TIME ZONE 'UTC') + INTERVAL '8 hours' AS DATE)")
        } else {
            format!("date({col}, '+8 hours')")
        }
    }

    /// Hours between two timestamps, as a float.
    fn hours(self, from: &str, to: &str) -> String {
        if self.pg() {
            format!("CAST(EXTRACT(EPOCH FROM ({to} - {from})) / 3600.0 AS DOUBLE PRECISION)")
        } else {
            format!("CAST((julianday({to}) - julianday({from})) * 24.0 AS REAL)")
        }
    }

    /// Days from Monday 2000-01-03 to a date, as an integer (so `% 7` is the weekday,
    /// Monday = 0).
    fn day_number(self, date: &str) -> String {
        if self.pg() {
            format!("(({date}) - DATE '2000-01-03')")
        } else {
            format!("CAST(julianday({date}) - 2451546.5 AS INTEGER)")
        }
    }

    /// Monday–Friday days in `[2000-01-03, 2000-01-03 + e)` for a day number `e`.
    fn weekdays_before(self, e: &str) -> String {
        let least = if self.pg() { "LEAST" } else { "min" };
        format!("((({e}) / 7) * 5 + {least}(({e}) % 7, 5))")
    }

    /// The China Standard Time month (`YYYY-MM`) of a timestamp column.
    fn local_month(self, col: &str) -> String {
        if self.pg() {
            format!("to_char((({col}) AT TIME ZONE 'UTC') + INTERVAL '8 hours', 'YYYY-MM')")
        } else {
            format!("strftime('%Y-%m', {col}, '+8 hours')")
        }
    }

    /// A top-level text field of a JSON column.
    fn json_text(self, col: &str, key: &str) -> String {
        // `key` is a constant of this module, never user input.
        if self.pg() {
            format!("({col} ->> '{key}')")
        } else {
            format!("json_extract({col}, '$.{key}')")
        }
    }
}

/// A statement under construction: SQL text plus its values, with the placeholder
/// syntax of the backend.
struct Sql {
    d: Dialect,
    text: String,
    values: Vec<Value>,
}

impl Sql {
    fn new(backend: DbBackend) -> Self {
        Self {
            d: Dialect(backend),
            text: String::new(),
            values: Vec::new(),
        }
    }

    fn push(&mut self, s: &str) -> &mut Self {
        self.text.push_str(s);
        self
    }

    /// Appends a placeholder for `v` (values are bound in the order they appear).
    fn bind(&mut self, v: impl Into<Value>) -> &mut Self {
        self.values.push(v.into());
        if self.d.pg() {
            let n = self.values.len();
            self.text.push_str(&format!("${n}"));
        } else {
            self.text.push('?');
        }
        self
    }

    /// The filters on an application aliased `a`; the organization either through its
    /// tasks (`org_col: None`) or on a column of the row (e.g. `t.org_id`).
    fn filters(&mut self, f: &Filters, org_col: Option<&str>) -> &mut Self {
        if let Some(t) = &f.app_type {
            self.push(" AND a.app_type = ").bind(t.clone());
        }
        if let Some(from) = f.from {
            self.push(" AND a.submitted_at >= ").bind(day_start(from));
        }
        if let Some(to) = f.to {
            let next = to.succ_opt().unwrap_or(to);
            self.push(" AND a.submitted_at < ").bind(day_start(next));
        }
        if let Some(org) = f.org {
            match org_col {
                Some(col) => {
                    self.push(&format!(" AND {col} = ")).bind(org);
                }
                None => {
                    self.push(
                        " AND EXISTS (SELECT 1 FROM tasks ot WHERE ot.application_id = a.id \
                         AND ot.org_id = ",
                    )
                    .bind(org)
                    .push(")");
                }
            }
        }
        self
    }

    fn statement(self) -> Statement {
        Statement::from_sql_and_values(self.d.0, self.text, self.values)
    }
}

async fn all<C: ConnectionTrait>(db: &C, sql: Sql) -> Result<Vec<QueryResult>, DbErr> {
    db.query_all_raw(sql.statement()).await
}

fn get<T: sea_orm::TryGetable>(row: &QueryResult, col: &str) -> Result<T, DbErr> {
    row.try_get("", col)
}

/// Applications of one type in one status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusCount {
    /// Application type key.
    pub app_type: String,
    /// Status code (`in_review`, …).
    pub status: String,
    /// How many.
    pub count: i64,
}

/// Applications by type and status (drafts are the company's own business and left out).
pub async fn by_type_and_status<C: ConnectionTrait>(
    db: &C,
    f: &Filters,
) -> Result<Vec<StatusCount>, DbErr> {
    let mut q = Sql::new(db.get_database_backend());
    q.push(
        "SELECT a.app_type AS app_type, a.status AS status, CAST(COUNT(*) AS BIGINT) AS n \
         FROM applications a WHERE a.status <> 'draft'",
    )
    .filters(f, None)
    .push(" GROUP BY a.app_type, a.status ORDER BY a.app_type, a.status");
    all(db, q)
        .await?
        .iter()
        .map(|r| {
            Ok(StatusCount {
                app_type: get(r, "app_type")?,
                status: get(r, "status")?,
                count: get(r, "n")?,
            })
        })
        .collect()
}

/// Time taken on one step of one application type, over the tasks decided on it.
#[derive(Debug, Clone, PartialEq)]
pub struct StepTime {
    /// Application type key.
    pub app_type: String,
    /// Step id in the workflow definition.
    pub step_id: String,
    /// Tasks decided (approved, returned or rejected) on the step.
    pub tasks: i64,
    /// Of these, closed on or before their promised date.
    pub on_time: i64,
    /// Median calendar hours from opened to closed.
    pub median_hours: f64,
    /// 90th-percentile calendar hours.
    pub p90_hours: f64,
    /// Median working days.
    pub median_days: i64,
    /// 90th-percentile working days.
    pub p90_days: i64,
}

/// Median and 90th percentile of the time per step, in calendar hours and working days,
/// and how many tasks closed within their promised date. Cancelled and removed tasks
/// (nobody decided them) are left out.
pub async fn step_times<C: ConnectionTrait>(db: &C, f: &Filters) -> Result<Vec<StepTime>, DbErr> {
    let mut q = Sql::new(db.get_database_backend());
    let d = q.d;
    let hours = d.hours("t.opened_at", "t.closed_at");
    let d1 = d.local_date("t.opened_at");
    let d2 = d.local_date("t.closed_at");
    q.push(&format!(
        "WITH d AS (SELECT a.app_type AS app_type, t.step_id AS step_id, {hours} AS hours, \
         {d1} AS d1, {d2} AS d2, t.due_date AS due \
         FROM tasks t JOIN applications a ON a.id = t.application_id \
         WHERE t.status IN ('approved', 'returned', 'rejected') AND t.closed_at IS NOT NULL"
    ))
    .filters(f, Some("t.org_id"));
    let e1 = format!("{} + 1", d.day_number("d.d1"));
    let e2 = format!("{} + 1", d.day_number("d.d2"));
    let cday = d.day_number("c.day");
    q.push(&format!(
        "), w AS (SELECT app_type, step_id, hours, \
         CASE WHEN d2 <= due THEN 1 ELSE 0 END AS on_time, \
         ({w2} - {w1} \
          + (SELECT COUNT(*) FROM calendar_days c WHERE c.day > d.d1 AND c.day <= d.d2 \
             AND c.kind = 'workday' AND {cday} % 7 >= 5) \
          - (SELECT COUNT(*) FROM calendar_days c WHERE c.day > d.d1 AND c.day <= d.d2 \
             AND c.kind = 'holiday' AND {cday} % 7 < 5)) AS wdays \
         FROM d), \
         r AS (SELECT app_type, step_id, hours, wdays, on_time, \
           ROW_NUMBER() OVER (PARTITION BY app_type, step_id ORDER BY hours) AS rh, \
           ROW_NUMBER() OVER (PARTITION BY app_type, step_id ORDER BY wdays) AS rw, \
           COUNT(*) OVER (PARTITION BY app_type, step_id) AS n \
         FROM w) \
         SELECT app_type, step_id, CAST(COUNT(*) AS BIGINT) AS n, \
           CAST(SUM(on_time) AS BIGINT) AS on_time, \
           CAST(MAX(CASE WHEN rh = (n + 1) / 2 THEN hours END) AS DOUBLE PRECISION) AS h50, \
           CAST(MAX(CASE WHEN rh = (9 * n + 9) / 10 THEN hours END) AS DOUBLE PRECISION) AS h90, \
           CAST(MAX(CASE WHEN rw = (n + 1) / 2 THEN wdays END) AS BIGINT) AS w50, \
           CAST(MAX(CASE WHEN rw = (9 * n + 9) / 10 THEN wdays END) AS BIGINT) AS w90 \
         FROM r GROUP BY app_type, step_id ORDER BY app_type, step_id",
        w2 = d.weekdays_before(&e2),
        w1 = d.weekdays_before(&e1),
    ));
    all(db, q)
        .await?
        .iter()
        .map(|r| {
            Ok(StepTime {
                app_type: get(r, "app_type")?,
                step_id: get(r, "step_id")?,
                tasks: get(r, "n")?,
                on_time: get(r, "on_time")?,
                median_hours: get(r, "h50")?,
                p90_hours: get(r, "h90")?,
                median_days: get(r, "w50")?,
                p90_days: get(r, "w90")?,
            })
        })
        .collect()
}

/// Decided applications of one type and how many were decided by their promised date.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaseOnTime {
    /// Application type key.
    pub app_type: String,
    /// Applications decided (approved or rejected) that carry a promised date.
    pub decided: i64,
    /// Of these, decided on or before it.
    pub on_time: i64,
}

/// The share of applications decided within the promised time (`case_due`), per type.
pub async fn cases_on_time<C: ConnectionTrait>(
    db: &C,
    f: &Filters,
) -> Result<Vec<CaseOnTime>, DbErr> {
    let mut q = Sql::new(db.get_database_backend());
    let decided = q.d.local_date("a.decided_at");
    q.push(&format!(
        "SELECT a.app_type AS app_type, CAST(COUNT(*) AS BIGINT) AS n, \
         CAST(SUM(CASE WHEN {decided} <= a.case_due THEN 1 ELSE 0 END) AS BIGINT) AS on_time \
         FROM applications a WHERE a.status IN ('approved', 'rejected') \
         AND a.decided_at IS NOT NULL AND a.case_due IS NOT NULL"
    ))
    .filters(f, None)
    .push(" GROUP BY a.app_type ORDER BY a.app_type");
    all(db, q)
        .await?
        .iter()
        .map(|r| {
            Ok(CaseOnTime {
                app_type: get(r, "app_type")?,
                decided: get(r, "n")?,
                on_time: get(r, "on_time")?,
            })
        })
        .collect()
}

/// A live task past its promised date.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Overdue {
    /// The task (for the link to `/tasks/{id}`).
    pub task_id: Uuid,
    /// The application's reference number.
    pub reference: String,
    /// Application type key.
    pub app_type: String,
    /// The organization holding the task.
    pub org_id: Uuid,
    /// Step id.
    pub step_id: String,
    /// The promised date.
    pub due_date: NaiveDate,
}

/// Live (open or claimed) tasks whose promised date is before `today`, oldest first;
/// at most `limit` of them (`None`: all, for the CSV).
pub async fn overdue<C: ConnectionTrait>(
    db: &C,
    f: &Filters,
    today: NaiveDate,
    limit: Option<u64>,
) -> Result<Vec<Overdue>, DbErr> {
    let mut q = Sql::new(db.get_database_backend());
    q.push(
        "SELECT t.id AS id, a.reference AS reference, a.app_type AS app_type, \
         t.org_id AS org_id, t.step_id AS step_id, t.due_date AS due_date \
         FROM tasks t JOIN applications a ON a.id = t.application_id \
         WHERE t.status IN ('open', 'claimed') AND t.due_date < ",
    )
    .bind(today)
    .filters(f, Some("t.org_id"))
    .push(" ORDER BY t.due_date, a.reference, t.id");
    if let Some(n) = limit {
        q.push(" LIMIT ").bind(i64::try_from(n).unwrap_or(i64::MAX));
    }
    all(db, q)
        .await?
        .iter()
        .map(|r| {
            Ok(Overdue {
                task_id: get(r, "id")?,
                reference: get::<Option<String>>(r, "reference")?.unwrap_or_default(),
                app_type: get(r, "app_type")?,
                org_id: get(r, "org_id")?,
                step_id: get(r, "step_id")?,
                due_date: get(r, "due_date")?,
            })
        })
        .collect()
}

/// How many live tasks are past their promised date (the overdue list's full length).
pub async fn overdue_count<C: ConnectionTrait>(
    db: &C,
    f: &Filters,
    today: NaiveDate,
) -> Result<i64, DbErr> {
    let mut q = Sql::new(db.get_database_backend());
    q.push(
        "SELECT CAST(COUNT(*) AS BIGINT) AS n FROM tasks t \
         JOIN applications a ON a.id = t.application_id \
         WHERE t.status IN ('open', 'claimed') AND t.due_date < ",
    )
    .bind(today)
    .filters(f, Some("t.org_id"));
    let rows = all(db, q).await?;
    rows.first().map_or(Ok(0), |r| get(r, "n"))
}

/// Applications submitted and decided in one month.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MonthCount {
    /// `YYYY-MM`.
    pub month: String,
    /// Submitted that month.
    pub submitted: i64,
    /// Decided (approved or rejected) that month.
    pub decided: i64,
}

/// The first day of the month `months` before the month of `day`.
fn months_back(day: NaiveDate, months: u32) -> NaiveDate {
    let total = day.year() * 12 + i32::try_from(day.month0()).unwrap_or(0)
        - i32::try_from(months).unwrap_or(0);
    let (y, m) = (total.div_euclid(12), total.rem_euclid(12));
    NaiveDate::from_ymd_opt(y, u32::try_from(m).unwrap_or(0) + 1, 1).unwrap_or(day)
}

/// Submitted and decided applications per month for the 12 months ending with the month
/// of `until` (every month listed, zeros included). The date range of `f` is replaced by
/// this window.
pub async fn monthly_trend<C: ConnectionTrait>(
    db: &C,
    f: &Filters,
    until: NaiveDate,
) -> Result<Vec<MonthCount>, DbErr> {
    let start = months_back(until, 11);
    let end = months_back(until, 0)
        .checked_add_months(chrono::Months::new(1))
        .unwrap_or(until);
    let scope = Filters {
        from: None,
        to: None,
        ..f.clone()
    };
    let mut months: Vec<MonthCount> = (0..12)
        .map(|i| {
            let m = months_back(until, 11 - i);
            MonthCount {
                month: m.format("%Y-%m").to_string(),
                submitted: 0,
                decided: 0,
            }
        })
        .collect();
    for (col, extra) in [
        ("a.submitted_at", ""),
        ("a.decided_at", " AND a.status IN ('approved', 'rejected')"),
    ] {
        let mut q = Sql::new(db.get_database_backend());
        let month = q.d.local_month(col);
        q.push(&format!(
            "SELECT {month} AS month, CAST(COUNT(*) AS BIGINT) AS n FROM applications a \
             WHERE {col} >= "
        ))
        .bind(day_start(start))
        .push(&format!(" AND {col} < "))
        .bind(day_start(end))
        .push(extra)
        .filters(&scope, None)
        .push(" GROUP BY 1");
        for r in all(db, q).await? {
            let m: String = get(&r, "month")?;
            let n: i64 = get(&r, "n")?;
            if let Some(slot) = months.iter_mut().find(|x| x.month == m) {
                if col == "a.submitted_at" {
                    slot.submitted = n;
                } else {
                    slot.decided = n;
                }
            }
        }
    }
    Ok(months)
}

/// Ratings (好差评): how many, the average and the count per score.
#[derive(Debug, Clone, PartialEq)]
pub struct RatingSummary {
    /// Number of ratings.
    pub count: i64,
    /// Average score (`None` without ratings).
    pub average: Option<f64>,
    /// Count of scores 1 to 5 (index 0 is score 1).
    pub distribution: [i64; 5],
}

/// One low rating.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LowRating {
    /// The rated application's reference number.
    pub reference: String,
    /// Application type key.
    pub app_type: String,
    /// 1 or 2.
    pub score: i32,
    /// The company's comment.
    pub comment: String,
    /// When it was given.
    pub created_at: DateTime<Utc>,
}

/// The ratings of the applications in scope; with an organization, the ratings of the
/// applications it decided (`ratings.org_id`).
pub async fn ratings<C: ConnectionTrait>(db: &C, f: &Filters) -> Result<RatingSummary, DbErr> {
    let mut q = Sql::new(db.get_database_backend());
    q.push(
        "SELECT r.score AS score, CAST(COUNT(*) AS BIGINT) AS n FROM ratings r \
         JOIN applications a ON a.id = r.application_id WHERE 1 = 1",
    )
    .filters(f, Some("r.org_id"))
    .push(" GROUP BY r.score");
    let mut distribution = [0i64; 5];
    for r in all(db, q).await? {
        let score: i32 = get(&r, "score")?;
        let n: i64 = get(&r, "n")?;
        if let Some(slot) = usize::try_from(score - 1)
            .ok()
            .and_then(|i| distribution.get_mut(i))
        {
            *slot += n;
        }
    }
    let count: i64 = distribution.iter().sum();
    let sum: i64 = distribution
        .iter()
        .zip(1i64..)
        .map(|(n, score)| n * score)
        .sum();
    #[allow(clippy::cast_precision_loss)]
    let average = (count > 0).then(|| sum as f64 / count as f64);
    Ok(RatingSummary {
        count,
        average,
        distribution,
    })
}

/// The low ratings (score ≤ [`LOW_RATING_MAX`]) in scope, newest first.
pub async fn low_ratings<C: ConnectionTrait>(
    db: &C,
    f: &Filters,
    limit: Option<u64>,
) -> Result<Vec<LowRating>, DbErr> {
    let mut q = Sql::new(db.get_database_backend());
    q.push(
        "SELECT a.reference AS reference, a.app_type AS app_type, r.score AS score, \
         r.comment AS comment, r.created_at AS created_at FROM ratings r \
         JOIN applications a ON a.id = r.application_id WHERE r.score <= ",
    )
    .bind(LOW_RATING_MAX)
    .filters(f, Some("r.org_id"))
    .push(" ORDER BY r.created_at DESC, r.id");
    if let Some(n) = limit {
        q.push(" LIMIT ").bind(i64::try_from(n).unwrap_or(i64::MAX));
    }
    all(db, q)
        .await?
        .iter()
        .map(|r| {
            Ok(LowRating {
                reference: get::<Option<String>>(r, "reference")?.unwrap_or_default(),
                app_type: get(r, "app_type")?,
                score: get(r, "score")?,
                comment: get(r, "comment")?,
                created_at: get(r, "created_at")?,
            })
        })
        .collect()
}

/// One company of the AI enterprise monitoring catalogue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CatalogueRow {
    /// The company's name.
    pub name: String,
    /// Its USCC.
    pub uscc: String,
    /// Its district (organization id).
    pub district_org_id: Uuid,
    /// The AI field code from its latest submitted application that names one.
    pub ai_field: Option<String>,
    /// Applications submitted (drafts left out).
    pub applications: i64,
    /// Approved.
    pub approved: i64,
    /// Rejected.
    pub rejected: i64,
    /// Withdrawn.
    pub withdrawn: i64,
    /// Still being handled (submitted, in review, returned).
    pub open: i64,
}

/// The AI enterprise monitoring catalogue (行动计划 四、(五)): every company, its field,
/// district, applications and outcomes, ordered by name; at most `limit` companies
/// (`None`: all, for the CSV).
pub async fn catalogue<C: ConnectionTrait>(
    db: &C,
    limit: Option<u64>,
) -> Result<Vec<CatalogueRow>, DbErr> {
    let mut q = Sql::new(db.get_database_backend());
    let field = q.d.json_text("y.form_data", AI_FIELD);
    q.push(&format!(
        "SELECT c.id AS id, c.name AS name, c.uscc AS uscc, c.district_org_id AS district, \
         (SELECT {field} FROM applications y WHERE y.company_id = c.id AND y.status <> 'draft' \
          AND {field} IS NOT NULL ORDER BY y.submitted_at DESC, y.id DESC LIMIT 1) AS ai_field, \
         CAST(COUNT(a.id) AS BIGINT) AS n, \
         CAST(COALESCE(SUM(CASE WHEN a.status = 'approved' THEN 1 ELSE 0 END), 0) AS BIGINT) AS approved, \
         CAST(COALESCE(SUM(CASE WHEN a.status = 'rejected' THEN 1 ELSE 0 END), 0) AS BIGINT) AS rejected, \
         CAST(COALESCE(SUM(CASE WHEN a.status = 'withdrawn' THEN 1 ELSE 0 END), 0) AS BIGINT) AS withdrawn \
         FROM companies c LEFT JOIN applications a ON a.company_id = c.id AND a.status <> 'draft' \
         GROUP BY c.id, c.name, c.uscc, c.district_org_id ORDER BY c.name, c.uscc"
    ));
    if let Some(n) = limit {
        q.push(" LIMIT ").bind(i64::try_from(n).unwrap_or(i64::MAX));
    }
    all(db, q)
        .await?
        .iter()
        .map(|r| {
            let applications: i64 = get(r, "n")?;
            let approved: i64 = get(r, "approved")?;
            let rejected: i64 = get(r, "rejected")?;
            let withdrawn: i64 = get(r, "withdrawn")?;
            Ok(CatalogueRow {
                name: get(r, "name")?,
                uscc: get(r, "uscc")?,
                district_org_id: get(r, "district")?,
                ai_field: get(r, "ai_field")?,
                applications,
                approved,
                rejected,
                withdrawn,
                open: applications - approved - rejected - withdrawn,
            })
        })
        .collect()
}

/// How many companies the catalogue lists.
pub async fn company_count<C: ConnectionTrait>(db: &C) -> Result<i64, DbErr> {
    let mut q = Sql::new(db.get_database_backend());
    q.push("SELECT CAST(COUNT(*) AS BIGINT) AS n FROM companies");
    let rows = all(db, q).await?;
    rows.first().map_or(Ok(0), |r| get(r, "n"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_day_starts_at_sixteen_hundred_utc_the_day_before() {
        let d = NaiveDate::from_ymd_opt(2026, 10, 1).expect("date");
        assert_eq!(day_start(d).to_rfc3339(), "2026-09-30T16:00:00+00:00");
    }

    #[test]
    fn months_back_crosses_years() {
        let d = NaiveDate::from_ymd_opt(2026, 3, 17).expect("date");
        assert_eq!(months_back(d, 0).to_string(), "2026-03-01");
        assert_eq!(months_back(d, 11).to_string(), "2025-04-01");
        assert_eq!(months_back(d, 3).to_string(), "2025-12-01");
    }
}
