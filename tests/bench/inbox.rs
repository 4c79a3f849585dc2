//! Scenario 5: the reviewer inbox (web page and `GET /api/v1/tasks`) with a small and with a
//! large number of applications, seeded by bulk INSERTs copied from one real application.

use std::time::{Duration, Instant};

use anyhow::Context;
use entity::task;
use hdrhistogram::Histogram;
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, ConnectionTrait, DatabaseConnection,
    DbBackend, EntityTrait, PaginatorTrait, QueryFilter, QuerySelect, QueryTrait, TransactionTrait,
};
use uuid::Uuid;

use crate::common::{self, Options, Report, Server, Verdict};
use crate::helpers::{self, Backend, TestDb};

const PASSWORD: &str = "violet-harbour-tractor-58";

/// Every 100th copied application waits at the district (an open task); the others are
/// decided, their task closed — as in a portal that has been running for years.
const OPEN_EVERY: u64 = 100;

/// Adds the copies numbered `from..=to` of the application `app` and its task `task`.
async fn bulk_copy(
    db: &DatabaseConnection,
    app: Uuid,
    task_id: Uuid,
    from: u64,
    to: u64,
    open_below: u64,
) -> anyhow::Result<()> {
    let backend = db.get_database_backend();
    let (gen_sql, app_lit, task_lit, due) = match backend {
        DbBackend::Postgres => (
            format!(
                "CREATE TEMP TABLE gen AS SELECT g, gen_random_uuid() AS id \
                 FROM generate_series({from}::bigint, {to}::bigint) g"
            ),
            format!("'{app}'::uuid"),
            format!("'{task_id}'::uuid"),
            "t.due_date + (gen.g % 60)::int".to_string(),
        ),
        _ => (
            format!(
                "CREATE TEMP TABLE gen AS WITH RECURSIVE s(g) AS (SELECT {from} UNION ALL \
                 SELECT g + 1 FROM s WHERE g < {to}) SELECT g, randomblob(16) AS id FROM s"
            ),
            format!("X'{}'", app.simple()),
            format!("X'{}'", task_id.simple()),
            "date(t.due_date, '+' || (gen.g % 60) || ' days')".to_string(),
        ),
    };
    let new_id = match backend {
        DbBackend::Postgres => "gen_random_uuid()",
        _ => "randomblob(16)",
    };
    let open = format!("(gen.g % {OPEN_EVERY} = 0 AND gen.g < {open_below})");
    let statements = [
        "DROP TABLE IF EXISTS gen".to_string(),
        gen_sql,
        format!(
            "INSERT INTO applications (id, app_type, definition_id, reference, company_id, \
             created_by, form_data, status, current_step, version, round, step_due, case_due, \
             revision_due, paused_step_days, paused_case_days, return_items, submitted_at, \
             decided_at, created_at, updated_at, held_returns) \
             SELECT gen.id, a.app_type, a.definition_id, 'B-' || gen.g, a.company_id, \
             a.created_by, a.form_data, CASE WHEN {open} THEN a.status ELSE 'approved' END, \
             CASE WHEN {open} THEN a.current_step ELSE NULL END, a.version, a.round, a.step_due, \
             a.case_due, NULL, NULL, NULL, NULL, a.submitted_at, \
             CASE WHEN {open} THEN NULL ELSE a.submitted_at END, a.created_at, a.updated_at, NULL \
             FROM gen, applications a WHERE a.id = {app_lit}"
        ),
        format!(
            "INSERT INTO tasks (id, application_id, step_id, org_id, round, status, claimant_id, \
             delegated_by, acted_by, due_date, opened_at, closed_at) \
             SELECT {new_id}, gen.id, t.step_id, t.org_id, t.round, \
             CASE WHEN {open} THEN 'open' ELSE 'approved' END, NULL, NULL, NULL, {due}, \
             t.opened_at, CASE WHEN {open} THEN NULL ELSE t.opened_at END \
             FROM gen, tasks t WHERE t.id = {task_lit}"
        ),
        "DROP TABLE gen".to_string(),
        "ANALYZE".to_string(),
    ];
    // One connection for the temporary table: a transaction.
    let txn = db.begin().await?;
    let (last, rest) = statements.split_last().context("statements")?;
    for s in rest {
        txn.execute_unprepared(s)
            .await
            .with_context(|| format!("bulk insert: {s}"))?;
    }
    txn.commit().await?;
    db.execute_unprepared(last).await?;
    Ok(())
}

/// A client logged in on the web as `email`.
async fn web_login(base: &str, email: &str) -> anyhow::Result<reqwest::Client> {
    let client = reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(60))
        .build()?;
    let html = client
        .get(format!("{base}/login"))
        .send()
        .await?
        .text()
        .await?;
    let marker = "name=\"_csrf\" value=\"";
    let start = html.find(marker).context("no CSRF field")? + marker.len();
    let token = html[start..]
        .split('"')
        .next()
        .unwrap_or_default()
        .to_string();
    let resp = client
        .post(format!("{base}/login"))
        .form(&[
            ("_csrf", token.as_str()),
            ("email", email),
            ("password", PASSWORD),
        ])
        .send()
        .await?;
    anyhow::ensure!(
        resp.status().is_redirection(),
        "login failed: {}",
        resp.status()
    );
    Ok(client)
}

/// p95 of `requests` sequential GETs of `url` (after 5 warm-up requests).
async fn measure(
    client: &reqwest::Client,
    url: &str,
    auth: Option<&str>,
    requests: usize,
) -> anyhow::Result<Histogram<u64>> {
    let mut h = common::histogram();
    for i in 0..requests + 5 {
        let mut req = client.get(url);
        if let Some(a) = auth {
            req = req.header("authorization", a);
        }
        let t = Instant::now();
        let resp = req.send().await?;
        let status = resp.status();
        let body = resp.text().await?;
        anyhow::ensure!(status.is_success(), "{url}: {status}");
        anyhow::ensure!(
            body.len() > 200,
            "{url}: suspiciously short answer ({} bytes)",
            body.len()
        );
        if i >= 5 {
            common::record(&mut h, t.elapsed());
        }
    }
    Ok(h)
}

struct Figures {
    web: Histogram<u64>,
    api: Histogram<u64>,
    open: u64,
}

async fn measure_both(
    t: &TestDb,
    data: &std::path::Path,
    email: &str,
    token: &str,
    requests: usize,
) -> anyhow::Result<Figures> {
    let open = task::Entity::find()
        .filter(task::Column::Status.eq(entity::enums::TaskStatus::Open))
        .count(&t.db)
        .await?;
    let (server, _) = Server::start(&t.url, data, &[]).await?;
    let web = web_login(&server.base, email).await?;
    let api = reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()?;
    let auth = format!("Bearer {token}");
    let web_h = measure(&web, &format!("{}/inbox", server.base), None, requests).await?;
    let api_h = measure(
        &api,
        &format!("{}/api/v1/tasks?tab=todo&limit=50", server.base),
        Some(&auth),
        requests,
    )
    .await?;
    server.stop();
    Ok(Figures {
        web: web_h,
        api: api_h,
        open,
    })
}

/// Prints how the database runs the to-do page's keys query (`store::inbox::keys_statement`,
/// as `store::inbox::list` runs it) and how long the navigation badge's capped count takes:
/// where the time of a page goes.
async fn diagnose(db: &DatabaseConnection, reviewer: Uuid, org: Uuid) -> anyhow::Result<()> {
    use zhigang::store::inbox;
    let orgs = std::collections::BTreeSet::from([org]);
    let started = Instant::now();
    let count = inbox::count_todo(db, reviewer, &orgs, inbox::COUNT_CAP).await?;
    println!(
        "  count_todo capped at {} (the badge on every reviewer page): {} in {:.1} ms",
        inbox::COUNT_CAP,
        count.display(),
        started.elapsed().as_secs_f64() * 1000.0
    );
    let backend = db.get_database_backend();
    let mut q = inbox::Query {
        user: reviewer,
        orgs,
        admin_of: Default::default(),
        tab: inbox::Tab::Todo,
        app_type: None,
        step: None,
        status: None,
        overdue: false,
        today: zhigang::calendar::local_date(zhigang::store::now()),
        after: None,
        limit: 50,
    };
    // The first page, and a page deep in the queue (after the 5,000th task when there
    // are that many): a keyset page must cost the same wherever it starts.
    let deep = inbox::list(db, &q).await?;
    let mut pages = vec![("first page", None)];
    if let Some(mut cursor) = deep.next {
        q.limit = 200;
        for _ in 0..25 {
            q.after = Some(cursor.clone());
            match inbox::list(db, &q).await?.next {
                Some(c) => cursor = c,
                None => break,
            }
        }
        pages.push(("a page deep in the queue", Some(cursor)));
        q.limit = 50;
    }
    for (what, after) in pages {
        q.after = after;
        let keys = backend.build(&inbox::keys_statement(&q, 51).context("no branch")?);
        println!("  plan of the to-do keys query, {what}:");
        explain(db, keys).await?;
        // The page's rows by id, as `inbox::list` loads them after the keys.
        let ids: Vec<Uuid> = inbox::list(db, &q)
            .await?
            .rows
            .iter()
            .filter_map(|r| r.task.as_ref().map(|t| t.id))
            .collect();
        let relation: sea_orm::RelationDef = task::Entity::belongs_to(entity::application::Entity)
            .from(task::Column::ApplicationId)
            .to(entity::application::Column::Id)
            .into();
        let rows = task::Entity::find()
            .join(sea_orm::JoinType::InnerJoin, relation)
            .select_also(entity::application::Entity)
            .filter(task::Column::Id.is_in(ids))
            .build(backend);
        println!("  plan of the page's rows by id, {what}:");
        explain(db, rows).await?;
        let mut times = Vec::new();
        for _ in 0..21 {
            let started = Instant::now();
            inbox::list(db, &q).await?;
            times.push(started.elapsed().as_secs_f64() * 1000.0);
        }
        times.sort_by(f64::total_cmp);
        println!(
            "  inbox::list, {what}: median {:.2} ms, worst {:.2} ms of 21",
            times[10], times[20]
        );
    }
    Ok(())
}

/// Prints the plan of `stmt` (with the actual times on PostgreSQL).
async fn explain(db: &DatabaseConnection, stmt: sea_orm::Statement) -> anyhow::Result<()> {
    let backend = db.get_database_backend();
    let prefix = match backend {
        DbBackend::Postgres => "EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) ",
        _ => "EXPLAIN QUERY PLAN ",
    };
    let explain = sea_orm::Statement {
        sql: format!("{prefix}{}", stmt.sql),
        ..stmt
    };
    for row in db.query_all_raw(explain).await? {
        let line: String = match backend {
            DbBackend::Postgres => row.try_get_by_index(0)?,
            _ => row.try_get_by_index(3)?,
        };
        println!("    {line}");
    }
    Ok(())
}

/// Runs the scenario on one backend.
pub async fn run(_opts: &Options, report: &mut Report, backend: Backend) -> anyhow::Result<()> {
    let name = match backend {
        Backend::Sqlite => "sqlite",
        Backend::Postgres => "postgres",
    };
    let small = std::env::var("ZHIGANG_BENCH_INBOX_SMALL")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000u64);
    let large = std::env::var("ZHIGANG_BENCH_INBOX_LARGE")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000u64);
    // `proportional` (default): every 100th application open at both sizes, so the
    // district's to-do queue grows from 100 to 10,000 tasks; `constant`: the copies added
    // beyond the small size are all decided, so only the table grows.
    let constant = std::env::var("ZHIGANG_BENCH_INBOX_QUEUE").is_ok_and(|v| v == "constant");
    let open_below = if constant { small } else { i64::MAX as u64 };
    let requests = 200;
    println!(
        "\n== inbox at scale on {name}: {small} then {large} applications, {} to-do queue ==",
        if constant { "constant" } else { "proportional" }
    );
    let Some(t) = TestDb::new(backend).await else {
        report.not_run(
            format!("inbox/{name}"),
            format!("no PostgreSQL server at {}", helpers::pg_admin_url()),
        );
        return Ok(());
    };
    let data = common::temp_dir()?;
    let (company, applicant) = helpers::company(&t.db).await;
    let app = helpers::submitted_yqyc(&t.db, company, applicant, &["rd_funding"]).await;
    let template_task = helpers::live_tasks(&t.db, app)
        .await
        .first()
        .map(|(_, id)| id.0)
        .context("no task")?;
    // A reviewer of the district who logs in on the web and holds an API token.
    let hash = zhigang::passwords::hash_blocking(PASSWORD)?;
    let email = "inbox-reviewer@bench.test";
    let reviewer = zhigang::seed::create_user_row(&t.db, email, "Inbox reviewer", &hash).await?;
    let district = helpers::org(&t.db, "D-120116").await;
    entity::org_membership::ActiveModel {
        id: Set(Uuid::now_v7()),
        org_id: Set(district.0),
        user_id: Set(reviewer),
        role: Set(entity::enums::OrgRole::Reviewer),
        active: Set(true),
        created_at: Set(zhigang::store::now()),
    }
    .insert(&t.db)
    .await?;
    let token = zhigang::api::tokens::create(&t.db, reviewer, "bench", None)
        .await?
        .map_err(|e| anyhow::anyhow!("token refused: {e:?}"))?
        .secret;

    let started = Instant::now();
    bulk_copy(
        &t.db,
        app.0,
        template_task,
        1,
        small.saturating_sub(1),
        open_below,
    )
    .await?;
    println!(
        "  {small} applications in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let s = measure_both(&t, data.path(), email, &token, requests).await?;
    diagnose(&t.db, reviewer, district.0).await?;
    println!(
        "  {small}: {} open tasks; /inbox {}; /api/v1/tasks {}",
        s.open,
        common::quantiles(&s.web),
        common::quantiles(&s.api)
    );
    let started = Instant::now();
    let step = 250_000u64;
    let mut from = small;
    while from < large {
        let to = (from + step - 1).min(large - 1);
        bulk_copy(&t.db, app.0, template_task, from, to, open_below).await?;
        from = to + 1;
    }
    println!(
        "  grown to {large} applications in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let l = measure_both(&t, data.path(), email, &token, requests).await?;
    diagnose(&t.db, reviewer, district.0).await?;
    println!(
        "  {large}: {} open tasks; /inbox {}; /api/v1/tasks {}",
        l.open,
        common::quantiles(&l.web),
        common::quantiles(&l.api)
    );
    for (what, a, b) in [
        ("web /inbox", &s.web, &l.web),
        ("GET /api/v1/tasks", &s.api, &l.api),
    ] {
        let (p_small, p_large) = (common::ms(a, 0.95), common::ms(b, 0.95));
        let ratio = if p_small > 0.0 {
            p_large / p_small
        } else {
            f64::INFINITY
        };
        report.row(
            format!("inbox/{name} {what} p95 at {large} apps"),
            format!("{p_large:.1} ms ({} open tasks)", l.open),
            format!("{p_small:.1} ms at {small} ({} open)", s.open),
            format!("{ratio:.2}×"),
            "≤ 1.5×",
            if ratio <= 1.5 {
                Verdict::Met
            } else {
                Verdict::NotMet
            },
        );
    }
    Ok(())
}
