//! Scenario 1: workflow transitions (claim + approve) through the JSON API of a real
//! `zhigang serve`, against the raw rate of one transition's writes on the same database.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use entity::enums::TaskStatus;
use entity::{history_event, outbox, task};
use futures::StreamExt;
use hdrhistogram::Histogram;
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, ConnectionTrait, DatabaseConnection,
    DbBackend, EntityTrait, QueryFilter, QuerySelect, Statement, TransactionTrait,
};
use uuid::Uuid;
use zhigang::ids::{CompanyId, UserId};

use crate::common::{self, Options, Report, Server, Verdict};
use crate::helpers::{self, Backend, TestDb};

/// Reviewers of the company's district (the first step of 一企一策), each with a token.
pub async fn reviewer_tokens(db: &DatabaseConnection, n: usize) -> anyhow::Result<Vec<String>> {
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let u = helpers::reviewer(db, "D-120116").await;
        let token = zhigang::api::tokens::create(db, u.0, "bench", None)
            .await?
            .map_err(|e| anyhow::anyhow!("token refused: {e:?}"))?;
        out.push(token.secret);
    }
    Ok(out)
}

/// Files and submits `n` 一企一策 applications through the store (several at once), each
/// opening one district review task.
pub async fn seed_submitted(
    db: &DatabaseConnection,
    company: CompanyId,
    applicant: UserId,
    n: usize,
    parallel: usize,
) -> anyhow::Result<()> {
    let done = futures::stream::iter(0..n)
        .map(|_| helpers::submitted_yqyc(db, company, applicant, &["rd_funding"]))
        .buffer_unordered(parallel.max(1))
        .count()
        .await;
    anyhow::ensure!(done == n, "seeded {done} of {n}");
    Ok(())
}

/// The open tasks, oldest first.
pub async fn open_tasks(db: &DatabaseConnection) -> anyhow::Result<Vec<Uuid>> {
    Ok(task::Entity::find()
        .select_only()
        .column(task::Column::Id)
        .filter(task::Column::Status.eq(TaskStatus::Open))
        .into_tuple::<Uuid>()
        .all(db)
        .await?)
}

struct ClientResult {
    ok: u64,
    failed: u64,
    first_error: Option<String>,
    latency: Histogram<u64>,
    ran_out_at: Option<Duration>,
}

/// Claims and approves each of `tasks` in turn until the deadline.
async fn drive(
    base: Arc<String>,
    token: String,
    tasks: Vec<Uuid>,
    start: Instant,
    deadline: Instant,
) -> ClientResult {
    let mut r = ClientResult {
        ok: 0,
        failed: 0,
        first_error: None,
        latency: common::histogram(),
        ran_out_at: None,
    };
    let client = match reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
    {
        Ok(c) => c,
        Err(e) => {
            r.first_error = Some(e.to_string());
            return r;
        }
    };
    let auth = format!("Bearer {token}");
    let approve = serde_json::json!({"action": "approve", "comment": "同意 (bench)"});
    for t in tasks {
        for step in 0..2 {
            if Instant::now() >= deadline {
                return r;
            }
            let req = if step == 0 {
                client.post(format!("{base}/api/v1/tasks/{t}/claim"))
            } else {
                client
                    .post(format!("{base}/api/v1/tasks/{t}/decision"))
                    .json(&approve)
            };
            let sent = Instant::now();
            let outcome = req.header("authorization", &auth).send().await;
            let status = match outcome {
                Ok(resp) => {
                    let s = resp.status();
                    // Read the body: the response is complete only then.
                    let body = resp.text().await.unwrap_or_default();
                    if s.is_success() {
                        Ok(())
                    } else {
                        Err(format!("{s}: {body}"))
                    }
                }
                Err(e) => Err(e.to_string()),
            };
            common::record(&mut r.latency, sent.elapsed());
            match status {
                Ok(()) => r.ok += 1,
                Err(e) => {
                    r.failed += 1;
                    if r.first_error.is_none() {
                        r.first_error = Some(e);
                    }
                }
            }
        }
    }
    r.ran_out_at = Some(start.elapsed());
    r
}

/// The measured rate of the API run.
struct ApiRun {
    rate: f64,
    ok: u64,
    failed: u64,
    latency: Histogram<u64>,
    elapsed: Duration,
    note: Option<String>,
}

async fn api_run(opts: &Options, t: &TestDb, data_dir: &std::path::Path) -> anyhow::Result<ApiRun> {
    let c = opts.clients;
    let (company, applicant) = helpers::company(&t.db).await;
    let seed_start = Instant::now();
    let parallel = if t.backend == Backend::Postgres { 4 } else { 2 };
    seed_submitted(&t.db, company, applicant, opts.apps, parallel).await?;
    let tokens = reviewer_tokens(&t.db, c).await?;
    let tasks = open_tasks(&t.db).await?;
    println!(
        "  seeded {} submitted applications ({} open tasks) and {c} reviewer tokens in {:.1} s",
        opts.apps,
        tasks.len(),
        seed_start.elapsed().as_secs_f64()
    );
    let mut queues = vec![Vec::new(); c];
    for (i, task) in tasks.into_iter().enumerate() {
        queues[i % c].push(task);
    }
    let (server, _) = Server::start(&t.url, data_dir, &[]).await?;
    let base = Arc::new(server.base.clone());
    let start = Instant::now();
    let deadline = start + opts.duration();
    let handles: Vec<_> = queues
        .into_iter()
        .zip(tokens)
        .map(|(q, tok)| tokio::spawn(drive(base.clone(), tok, q, start, deadline)))
        .collect();
    let mut latency = common::histogram();
    let (mut ok, mut failed) = (0, 0);
    let mut first_error = None;
    let mut ran_out = Vec::new();
    for h in handles {
        let r = h.await?;
        ok += r.ok;
        failed += r.failed;
        latency.add(&r.latency)?;
        if first_error.is_none() {
            first_error = r.first_error;
        }
        if let Some(at) = r.ran_out_at {
            ran_out.push(at);
        }
    }
    let elapsed = start.elapsed();
    server.stop();
    let mut note = None;
    if !ran_out.is_empty() {
        note = Some(format!(
            "{} of {c} clients ran out of seeded tasks (first after {:.1} s): raise \
             ZHIGANG_BENCH_APPS for a longer steady state",
            ran_out.len(),
            ran_out.iter().min().map_or(0.0, Duration::as_secs_f64)
        ));
    }
    if let Some(e) = first_error {
        println!("  first failed request: {e}");
    }
    Ok(ApiRun {
        rate: ok as f64 / elapsed.as_secs_f64(),
        ok,
        failed,
        latency,
        elapsed,
        note,
    })
}

/// Average payload sizes of what the run wrote, so the baseline writes as much.
async fn payload_sizes(db: &DatabaseConnection) -> anyhow::Result<(usize, usize)> {
    let backend = db.get_database_backend();
    let sql = match backend {
        DbBackend::Postgres => {
            "SELECT (SELECT COALESCE(AVG(LENGTH(payload)), 200)::float8 FROM history_events), \
                    (SELECT COALESCE(AVG(LENGTH(payload::text)), 200)::float8 FROM outbox)"
        }
        _ => {
            "SELECT (SELECT COALESCE(AVG(LENGTH(payload)), 200.0) FROM history_events), \
                    (SELECT COALESCE(AVG(LENGTH(payload)), 200.0) FROM outbox)"
        }
    };
    let row = db
        .query_one_raw(Statement::from_string(backend, sql))
        .await?
        .context("no row")?;
    let h: f64 = row.try_get_by_index(0)?;
    let o: f64 = row.try_get_by_index(1)?;
    Ok((h as usize, o as usize))
}

/// pgbench with UPDATE by key + INSERT history + INSERT outbox in one transaction, on the
/// benchmark's own database (the real tables, indexes and row counts).
async fn pgbench_baseline(opts: &Options, t: &TestDb) -> anyhow::Result<(f64, String)> {
    let version = std::process::Command::new("pgbench")
        .arg("--version")
        .output()
        .map_err(|e| anyhow::anyhow!("pgbench is not installed or not on PATH: {e}"))?;
    let version = String::from_utf8_lossy(&version.stdout).trim().to_string();
    let (hist_len, outbox_len) = payload_sizes(&t.db).await?;
    t.db.execute_unprepared(
        "DROP TABLE IF EXISTS bench_keys; \
         CREATE TABLE bench_keys (k serial PRIMARY KEY, app_id uuid NOT NULL); \
         INSERT INTO bench_keys (app_id) SELECT id FROM applications ORDER BY id; \
         ANALYZE bench_keys;",
    )
    .await?;
    let n: i64 =
        t.db.query_one_raw(Statement::from_string(
            DbBackend::Postgres,
            "SELECT COUNT(*) FROM bench_keys",
        ))
        .await?
        .context("count")?
        .try_get_by_index(0)?;
    let script = format!(
        "\\set k random(1, {n})\n\
         BEGIN;\n\
         UPDATE applications SET version = version + 1, updated_at = now() \
           WHERE id = (SELECT app_id FROM bench_keys WHERE k = :k) RETURNING id AS app, version AS v \\gset\n\
         INSERT INTO history_events (id, application_id, seq, kind, actor_user_id, actor_org_id, internal, payload, created_at, prev_hash, hash) \
           VALUES (gen_random_uuid(), :app, 1000000 + :v, 'approved', NULL, NULL, false, repeat('x', {hist_len}), now(), repeat('0', 64), repeat('1', 64));\n\
         INSERT INTO outbox (id, kind, application_id, recipient_user_id, recipient_email, locale, payload, status, attempts, next_attempt_at, lease_until, last_error, message_id, created_at, sent_at) \
           VALUES (gen_random_uuid(), 'bench', :app, NULL, 'bench@example.test', 'zh-CN', jsonb_build_object('p', repeat('x', {pad})), 'sent', 0, now(), NULL, NULL, gen_random_uuid()::text, now(), now());\n\
         END;\n",
        pad = outbox_len.saturating_sub(8).max(1)
    );
    let dir = common::temp_dir()?;
    let path = dir.path().join("transition.sql");
    std::fs::write(&path, script)?;
    // libpq takes the connection URI as the database name.
    let mut cmd = std::process::Command::new("pgbench");
    cmd.args(["-n", "-M", "prepared", "-f"])
        .arg(&path)
        .args(["-c", &opts.clients.to_string(), "-j", "2", "-T"])
        .arg(opts.seconds.to_string())
        .arg(&t.url);
    let out = tokio::task::spawn_blocking(move || cmd.output()).await??;
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    anyhow::ensure!(
        out.status.success(),
        "pgbench failed: {}\n{stdout}",
        String::from_utf8_lossy(&out.stderr)
    );
    let tps = stdout
        .lines()
        .find(|l| l.starts_with("tps = "))
        .and_then(|l| {
            l.trim_start_matches("tps = ")
                .split_whitespace()
                .next()?
                .parse()
                .ok()
        })
        .with_context(|| format!("no tps in pgbench output:\n{stdout}"))?;
    let latency = stdout
        .lines()
        .find(|l| l.starts_with("latency average"))
        .unwrap_or("")
        .to_string();
    Ok((
        tps,
        format!("{version}; -M prepared -c {} -j 2; {latency}", opts.clients),
    ))
}

/// The same three statements through sea-orm/sqlx with the app's pool and pragmas
/// (`zhigang::db::connect`: WAL, synchronous=NORMAL, busy timeout 30 s, 10 connections).
async fn sqlite_baseline(opts: &Options, t: &TestDb) -> anyhow::Result<(f64, Histogram<u64>)> {
    let (hist_len, outbox_len) = payload_sizes(&t.db).await?;
    let db = zhigang::db::connect(&t.url, 10).await?;
    let ids: Arc<Vec<Uuid>> = Arc::new(
        entity::application::Entity::find()
            .select_only()
            .column(entity::application::Column::Id)
            .into_tuple::<Uuid>()
            .all(&db)
            .await?,
    );
    anyhow::ensure!(!ids.is_empty(), "no applications");
    let hist_payload = Arc::new("x".repeat(hist_len));
    let outbox_payload =
        Arc::new(serde_json::json!({"p": "x".repeat(outbox_len.saturating_sub(8).max(1))}));
    let start = Instant::now();
    let deadline = start + opts.duration();
    let handles: Vec<_> = (0..opts.clients)
        .map(|_| {
            let db = db.clone();
            let ids = ids.clone();
            let hist_payload = hist_payload.clone();
            let outbox_payload = outbox_payload.clone();
            tokio::spawn(async move {
                let mut h = common::histogram();
                let mut n = 0u64;
                while Instant::now() < deadline {
                    let id = ids[rand::random_range(0..ids.len())];
                    let sent = Instant::now();
                    let r: anyhow::Result<()> = async {
                        let txn = db.begin().await?;
                        let row = txn
                            .query_one_raw(Statement::from_sql_and_values(
                                DbBackend::Sqlite,
                                "UPDATE applications SET version = version + 1, updated_at = ? \
                                 WHERE id = ? RETURNING version",
                                [zhigang::store::now().into(), id.into()],
                            ))
                            .await?
                            .context("no application")?;
                        let v: i64 = row.try_get_by_index(0)?;
                        let now = zhigang::store::now();
                        history_event::ActiveModel {
                            id: Set(Uuid::now_v7()),
                            application_id: Set(id),
                            seq: Set(i32::try_from(1_000_000 + v)?),
                            kind: Set("approved".into()),
                            actor_user_id: Set(None),
                            actor_org_id: Set(None),
                            internal: Set(false),
                            payload: Set(hist_payload.to_string()),
                            created_at: Set(now),
                            prev_hash: Set("0".repeat(64)),
                            hash: Set("1".repeat(64)),
                        }
                        .insert(&txn)
                        .await?;
                        let oid = Uuid::now_v7();
                        outbox::ActiveModel {
                            id: Set(oid),
                            kind: Set("bench".into()),
                            application_id: Set(Some(id)),
                            recipient_user_id: Set(None),
                            recipient_email: Set("bench@example.test".into()),
                            locale: Set("zh-CN".into()),
                            payload: Set((*outbox_payload).clone()),
                            status: Set(entity::enums::OutboxStatus::Sent),
                            attempts: Set(0),
                            next_attempt_at: Set(now),
                            lease_until: Set(None),
                            last_error: Set(None),
                            message_id: Set(format!("{oid}@bench")),
                            created_at: Set(now),
                            sent_at: Set(Some(now)),
                        }
                        .insert(&txn)
                        .await?;
                        txn.commit().await?;
                        Ok(())
                    }
                    .await;
                    r?;
                    common::record(&mut h, sent.elapsed());
                    n += 1;
                }
                anyhow::Ok((n, h))
            })
        })
        .collect();
    let mut total = 0;
    let mut latency = common::histogram();
    for h in handles {
        let (n, hist) = h.await??;
        total += n;
        latency.add(&hist)?;
    }
    let rate = total as f64 / start.elapsed().as_secs_f64();
    db.close().await?;
    Ok((rate, latency))
}

/// Runs the scenario on one backend.
pub async fn run(opts: &Options, report: &mut Report, backend: Backend) -> anyhow::Result<()> {
    let name = match backend {
        Backend::Sqlite => "sqlite",
        Backend::Postgres => "postgres",
    };
    println!(
        "\n== transitions on {name}: {} clients, {} s ==",
        opts.clients, opts.seconds
    );
    let Some(t) = TestDb::new(backend).await else {
        report.not_run(
            format!("transitions/{name}"),
            format!("no PostgreSQL server at {}", helpers::pg_admin_url()),
        );
        return Ok(());
    };
    let data = common::temp_dir()?;
    let load_before = common::load_now();
    let api = api_run(opts, &t, data.path()).await?;
    println!(
        "  API: {} transitions ({} failed) in {:.1} s = {:.1}/s; {} (load average before {load_before}, after {})",
        api.ok,
        api.failed,
        api.elapsed.as_secs_f64(),
        api.rate,
        common::quantiles(&api.latency),
        common::load_now()
    );
    let (baseline, detail) = match backend {
        Backend::Postgres => match pgbench_baseline(opts, &t).await {
            Ok((tps, detail)) => (Some(tps), detail),
            Err(e) => {
                report.not_run(format!("transitions/{name} baseline"), format!("{e:#}"));
                (None, String::new())
            }
        },
        Backend::Sqlite => {
            let (rate, h) = sqlite_baseline(opts, &t).await?;
            (
                Some(rate),
                format!(
                    "sea-orm/sqlx, same pool and pragmas, {} tasks; {}",
                    opts.clients,
                    common::quantiles(&h)
                ),
            )
        }
    };
    if let Some(b) = baseline {
        println!("  baseline: {b:.1} transactions/s ({detail})");
    }
    let ratio = baseline.map(|b| api.rate / b);
    report.row(
        format!("transitions/{name} rate (C={})", opts.clients),
        format!("{:.1}/s", api.rate),
        baseline.map_or("-".into(), |b| format!("{b:.1}/s")),
        baseline.map_or("-".into(), |b| common::percent(api.rate, b)),
        "≥ 60 % of baseline",
        match ratio {
            Some(r) if r >= 0.6 => Verdict::Met,
            Some(_) => Verdict::NotMet,
            None => Verdict::NotRun,
        },
    );
    report.row(
        format!("transitions/{name} latency"),
        common::quantiles(&api.latency),
        "-",
        "-",
        "-",
        Verdict::Info,
    );
    if api.failed > 0 {
        report.note(format!(
            "transitions/{name}: {} requests failed",
            api.failed
        ));
    }
    if let Some(n) = api.note {
        report.note(format!("transitions/{name}: {n}"));
    }
    Ok(())
}
