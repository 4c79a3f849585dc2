//! Scenario 3: start-up to ready on a migrated database, and resident memory while many
//! connections hold requests.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::common::{self, Options, Report, Server, Verdict};
use crate::helpers::{self, Backend, TestDb};
use crate::transitions;

/// Start-ups measured per database; the median is reported.
const STARTS: usize = 5;

/// Runs the scenario on one backend.
pub async fn run(opts: &Options, report: &mut Report, backend: Backend) -> anyhow::Result<()> {
    let name = match backend {
        Backend::Sqlite => "sqlite",
        Backend::Postgres => "postgres",
    };
    println!("\n== footprint on {name} ==");
    let Some(t) = TestDb::new(backend).await else {
        report.not_run(
            format!("footprint/{name}"),
            format!("no PostgreSQL server at {}", helpers::pg_admin_url()),
        );
        return Ok(());
    };
    let data = common::temp_dir()?;
    // Some work for the requests to read: a reviewer's inbox of 200 tasks.
    let (company, applicant) = helpers::company(&t.db).await;
    transitions::seed_submitted(&t.db, company, applicant, 200, 2).await?;
    let tokens = transitions::reviewer_tokens(&t.db, 4).await?;

    // Start-up: the database is migrated and seeded already (TestDb did it, as a first
    // `zhigang serve` or `zhigang migrate` would have).
    let mut times = Vec::new();
    for _ in 0..STARTS {
        let (server, ready) = Server::start(&t.url, data.path(), &[]).await?;
        times.push(ready);
        server.stop();
    }
    times.sort();
    let median = times[times.len() / 2];
    let worst = times[times.len() - 1];
    println!(
        "  start-up to /readyz 200: {}",
        times
            .iter()
            .map(|d| format!("{:.0} ms", d.as_secs_f64() * 1000.0))
            .collect::<Vec<_>>()
            .join(", ")
    );
    report.row(
        format!("footprint/{name} start-up to ready (median of {STARTS})"),
        format!(
            "{:.0} ms (worst {:.0} ms)",
            median.as_secs_f64() * 1000.0,
            worst.as_secs_f64() * 1000.0
        ),
        "-",
        "-",
        "< 1 s",
        if worst < Duration::from_secs(1) {
            Verdict::Met
        } else {
            Verdict::NotMet
        },
    );

    // Memory: N connections, each with a request in flight at all times (the API inbox,
    // which needs the database, and the login page, which renders a template and opens a
    // session), for the run's length (at most 20 s).
    let (server, _) = Server::start(&t.url, data.path(), &[]).await?;
    let idle_kb = common::proc_status(server.pid, "VmRSS").unwrap_or(0);
    let n = opts.connections;
    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let base = Arc::new(server.base.clone());
    let mut handles = Vec::new();
    for i in 0..n {
        let (stop, done, errors, base) = (stop.clone(), done.clone(), errors.clone(), base.clone());
        let token = tokens[i % tokens.len()].clone();
        handles.push(tokio::spawn(async move {
            // One client per task: its own connection, kept alive.
            let Ok(client) = reqwest::Client::builder()
                .pool_max_idle_per_host(1)
                .timeout(Duration::from_secs(60))
                .build()
            else {
                errors.fetch_add(1, Ordering::Relaxed);
                return;
            };
            while !stop.load(Ordering::Relaxed) {
                let req = if i % 2 == 0 {
                    client
                        .get(format!("{base}/api/v1/tasks?limit=50"))
                        .header("authorization", format!("Bearer {token}"))
                } else {
                    client.get(format!("{base}/login"))
                };
                match req.send().await {
                    Ok(r) if r.status().is_success() => {
                        let _ = r.bytes().await;
                        done.fetch_add(1, Ordering::Relaxed);
                    }
                    _ => {
                        errors.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        }));
    }
    let hold = opts.duration().min(Duration::from_secs(20));
    let start = Instant::now();
    let mut peak_kb = 0;
    let mut peak_threads = 0;
    while start.elapsed() < hold {
        peak_kb = peak_kb.max(common::proc_status(server.pid, "VmRSS").unwrap_or(0));
        peak_threads = peak_threads.max(common::proc_status(server.pid, "Threads").unwrap_or(0));
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let hwm_kb = common::proc_status(server.pid, "VmHWM").unwrap_or(0);
    let conns = established_connections(&server.base);
    stop.store(true, Ordering::Relaxed);
    for h in handles {
        let _ = h.await;
    }
    let served = done.load(Ordering::Relaxed);
    let failed = errors.load(Ordering::Relaxed);
    server.stop();
    println!(
        "  {n} clients for {:.0} s: {served} requests ({:.0}/s), {failed} failed; {conns} \
         established connections to the server at the end; VmRSS idle {:.1} MB, peak {:.1} MB, \
         VmHWM {:.1} MB; peak threads {peak_threads}",
        hold.as_secs_f64(),
        served as f64 / hold.as_secs_f64(),
        idle_kb as f64 / 1024.0,
        peak_kb as f64 / 1024.0,
        hwm_kb as f64 / 1024.0
    );
    let peak_mb = hwm_kb.max(peak_kb) as f64 / 1024.0;
    report.row(
        format!("footprint/{name} resident memory, {n} connections"),
        format!("{peak_mb:.1} MB peak"),
        format!("{:.1} MB idle", idle_kb as f64 / 1024.0),
        "-",
        "< 100 MB",
        if peak_mb < 100.0 {
            Verdict::Met
        } else {
            Verdict::NotMet
        },
    );
    if failed > 0 {
        report.note(format!(
            "footprint/{name}: {failed} of the held requests failed"
        ));
    }
    Ok(())
}

/// Established TCP connections to the server's port (from /proc/net/tcp), to show the
/// connections were really held.
fn established_connections(base: &str) -> usize {
    let Some(port) = base.rsplit(':').next().and_then(|p| p.parse::<u16>().ok()) else {
        return 0;
    };
    let local = format!(":{port:04X}");
    std::fs::read_to_string("/proc/net/tcp")
        .unwrap_or_default()
        .lines()
        .skip(1)
        .filter(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            // local address ends with the port, state 01 = ESTABLISHED
            f.len() > 3 && f[1].ends_with(&local) && f[3] == "01"
        })
        .count()
}
