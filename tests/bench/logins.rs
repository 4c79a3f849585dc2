//! Scenario 4: a burst of concurrent logins (Argon2id per login) while another client polls
//! `/healthz`; the server's threads and memory show whether hashing is bounded.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

use crate::common::{self, Options, Report, Server, Verdict};
use crate::helpers::{Backend, TestDb};

const PASSWORD: &str = "violet-harbour-tractor-58";

fn csrf_of(html: &str) -> Option<String> {
    let marker = "name=\"_csrf\" value=\"";
    let start = html.find(marker)? + marker.len();
    html[start..].split('"').next().map(str::to_string)
}

/// One login: GET /login for the CSRF token, POST the form; Ok(latency of the POST).
async fn login(base: &str, email: &str) -> anyhow::Result<Duration> {
    let client = reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(120))
        .build()?;
    let html = client
        .get(format!("{base}/login"))
        .send()
        .await?
        .text()
        .await?;
    let token = csrf_of(&html).ok_or_else(|| anyhow::anyhow!("no CSRF field on /login"))?;
    let started = Instant::now();
    let resp = client
        .post(format!("{base}/login"))
        .form(&[
            ("_csrf", token.as_str()),
            ("email", email),
            ("password", PASSWORD),
        ])
        .send()
        .await?;
    let took = started.elapsed();
    let location = resp
        .headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    anyhow::ensure!(
        resp.status().is_redirection() && location.ends_with("/account"),
        "login refused: {} {location}",
        resp.status()
    );
    Ok(took)
}

/// Polls /healthz until `stop`, one request at a time.
async fn poll_health(base: String, stop: Arc<AtomicBool>) -> anyhow::Result<Histogram<u64>> {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()?;
    let mut h = common::histogram();
    while !stop.load(Ordering::Relaxed) {
        let t = Instant::now();
        let r = client.get(format!("{base}/healthz")).send().await?;
        anyhow::ensure!(r.status().is_success(), "/healthz answered {}", r.status());
        let _ = r.bytes().await?;
        common::record(&mut h, t.elapsed());
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    Ok(h)
}

/// Runs the scenario (SQLite: the hashing cost does not depend on the database).
pub async fn run(opts: &Options, report: &mut Report) -> anyhow::Result<()> {
    let n = opts.logins;
    println!("\n== logins: {n} at once while /healthz is polled (SQLite) ==");
    let t = TestDb::new(Backend::Sqlite)
        .await
        .ok_or_else(|| anyhow::anyhow!("no SQLite"))?;
    // One real Argon2id hash shared by every account (the salt does not change the cost).
    let hash = zhigang::passwords::hash_blocking(PASSWORD)?;
    let mut emails = Vec::with_capacity(n);
    for i in 0..n {
        let email = format!("login{i}@bench.test");
        zhigang::seed::create_user_row(&t.db, &email, &format!("Login {i}"), &hash).await?;
        emails.push(email);
    }
    let data = common::temp_dir()?;
    let (server, _) = Server::start(&t.url, data.path(), &[]).await?;
    let base = server.base.clone();

    // Idle: /healthz alone for 2 s, the baseline.
    let stop = Arc::new(AtomicBool::new(false));
    let idle = tokio::spawn(poll_health(base.clone(), stop.clone()));
    tokio::time::sleep(Duration::from_secs(2)).await;
    stop.store(true, Ordering::Relaxed);
    let idle = idle.await??;
    let idle_threads = common::proc_status(server.pid, "Threads").unwrap_or(0);
    let idle_kb = common::proc_status(server.pid, "VmRSS").unwrap_or(0);

    // The burst.
    let stop = Arc::new(AtomicBool::new(false));
    let poller = tokio::spawn(poll_health(base.clone(), stop.clone()));
    let sampler = {
        let stop = stop.clone();
        let pid = server.pid;
        tokio::spawn(async move {
            let (mut threads, mut kb) = (0, 0);
            while !stop.load(Ordering::Relaxed) {
                threads = threads.max(common::proc_status(pid, "Threads").unwrap_or(0));
                kb = kb.max(common::proc_status(pid, "VmRSS").unwrap_or(0));
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            (threads, kb)
        })
    };
    let start = Instant::now();
    let handles: Vec<_> = emails
        .into_iter()
        .map(|e| {
            let base = base.clone();
            tokio::spawn(async move { login(&base, &e).await })
        })
        .collect();
    let mut latency = common::histogram();
    let mut failed = Vec::new();
    for h in handles {
        match h.await? {
            Ok(d) => common::record(&mut latency, d),
            Err(e) => failed.push(format!("{e:#}")),
        }
    }
    let burst = start.elapsed();
    stop.store(true, Ordering::Relaxed);
    let health = poller.await??;
    let (peak_threads, peak_kb) = sampler.await?;
    server.stop();
    let cores = std::thread::available_parallelism().map_or(1, |c| c.get());
    println!(
        "  {} logins in {:.2} s ({:.1}/s; {cores} cores at ≈ 30 ms a hash allow ≈ {:.0}/s); POST /login {}",
        latency.len(),
        burst.as_secs_f64(),
        latency.len() as f64 / burst.as_secs_f64(),
        cores as f64 / 0.030,
        common::quantiles(&latency)
    );
    println!(
        "  /healthz idle: {} ({} requests); during the burst: {} ({} requests)",
        common::quantiles(&idle),
        idle.len(),
        common::quantiles(&health),
        health.len()
    );
    println!(
        "  server threads idle {idle_threads}, peak {peak_threads}; VmRSS idle {:.1} MB, peak {:.1} MB (Argon2 m = 19 MiB per hash)",
        idle_kb as f64 / 1024.0,
        peak_kb as f64 / 1024.0
    );
    if let Some(e) = failed.first() {
        report.note(format!("logins: {} failed, first: {e}", failed.len()));
    }
    let p99 = common::ms(&health, 0.99);
    report.row(
        format!("logins: /healthz p99 during {n} concurrent logins"),
        format!("{p99:.1} ms"),
        format!("{:.1} ms idle", common::ms(&idle, 0.99)),
        if common::ms(&idle, 0.99) > 0.0 {
            format!("{:.1}×", p99 / common::ms(&idle, 0.99))
        } else {
            "-".into()
        },
        "< 50 ms",
        if p99 < 50.0 && failed.is_empty() {
            Verdict::Met
        } else {
            Verdict::NotMet
        },
    );
    // Unbounded, every login's hash would run at once: on C cores each of N hashes gets
    // C/N of a core, so the first login completes only near the end of the burst. Bounded
    // to the cores (the hashing threads in src/passwords.rs), hashes complete one after another
    // from the start. (Thread counts do not show it: SQLite's connection threads come and
    // go too; memory neither: glibc keeps freed 19 MiB Argon2 blocks per thread arena.)
    let first = common::ms(&latency, 0.0);
    let spread_ok = latency.len() > 1 && first < 0.25 * burst.as_secs_f64() * 1000.0;
    report.row(
        "logins: concurrent Argon2 hashes",
        format!(
            "first login after {first:.0} ms of {:.0} ms",
            burst.as_secs_f64() * 1000.0
        ),
        format!("{cores} cores"),
        "-",
        "≤ cores (first < 25 % of burst)",
        if spread_ok {
            Verdict::Met
        } else {
            Verdict::NotMet
        },
    );
    report.row(
        "logins: server memory and threads in the burst",
        format!(
            "VmRSS {:.0} → {:.0} MB, threads {idle_threads} → {peak_threads}",
            idle_kb as f64 / 1024.0,
            peak_kb as f64 / 1024.0
        ),
        "-",
        "-",
        "-",
        Verdict::Info,
    );
    report.row(
        format!("logins: {n} logins"),
        format!(
            "{:.1} s, {:.1}/s; {}",
            burst.as_secs_f64(),
            latency.len() as f64 / burst.as_secs_f64(),
            common::quantiles(&latency)
        ),
        "-",
        "-",
        "-",
        Verdict::Info,
    );
    Ok(())
}
