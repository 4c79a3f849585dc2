//! What every scenario shares: options from the environment, the results table, a real
//! `zhigang serve` process, latency histograms and process figures from `/proc`.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context;
use hdrhistogram::Histogram;

/// Options, all from `ZHIGANG_BENCH_*` variables so a quick run is one line.
#[derive(Debug, Clone)]
pub struct Options {
    /// Length of each timed phase (`ZHIGANG_BENCH_SECONDS`, default 30).
    pub seconds: u64,
    /// Concurrent API clients for the transitions (`ZHIGANG_BENCH_CLIENTS`, default 8).
    pub clients: usize,
    /// Scenarios to run (`ZHIGANG_BENCH_ONLY`, comma separated; default all).
    pub only: Option<Vec<String>>,
    /// Databases to run on (`ZHIGANG_BENCH_DB=sqlite,postgres`; default both).
    pub dbs: Vec<String>,
    /// Applications seeded for the transitions (`ZHIGANG_BENCH_APPS`; default 800 per
    /// second of the run, at least 500).
    pub apps: usize,
    /// Outbox rows drained (`ZHIGANG_BENCH_MAIL_ROWS`, default 5000).
    pub mail_rows: usize,
    /// Concurrent logins (`ZHIGANG_BENCH_LOGINS`, default 100).
    pub logins: usize,
    /// Connections held for the memory figure (`ZHIGANG_BENCH_CONNECTIONS`, default 200).
    pub connections: usize,
}

fn env_num<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(default)
}

fn env_list(name: &str) -> Option<Vec<String>> {
    std::env::var(name).ok().map(|v| {
        v.split(',')
            .map(|s| s.trim().to_ascii_lowercase())
            .filter(|s| !s.is_empty())
            .collect()
    })
}

impl Options {
    /// Reads the environment.
    pub fn from_env() -> Self {
        let seconds = env_num("ZHIGANG_BENCH_SECONDS", 30u64).max(1);
        Self {
            seconds,
            clients: env_num("ZHIGANG_BENCH_CLIENTS", 8usize).max(1),
            only: env_list("ZHIGANG_BENCH_ONLY"),
            dbs: env_list("ZHIGANG_BENCH_DB")
                .unwrap_or_else(|| vec!["sqlite".into(), "postgres".into()]),
            apps: env_num("ZHIGANG_BENCH_APPS", (800 * seconds as usize).max(500)),
            mail_rows: env_num("ZHIGANG_BENCH_MAIL_ROWS", 5000usize).max(1),
            logins: env_num("ZHIGANG_BENCH_LOGINS", 100usize).max(1),
            connections: env_num("ZHIGANG_BENCH_CONNECTIONS", 200usize).max(1),
        }
    }

    /// Whether the scenario `name` was asked for.
    pub fn wants(&self, name: &str) -> bool {
        self.only
            .as_ref()
            .is_none_or(|o| o.iter().any(|s| s == name))
    }

    /// Whether the database `name` was asked for.
    pub fn wants_db(&self, name: &str) -> bool {
        self.dbs.iter().any(|s| s == name)
    }

    /// A timed phase.
    pub fn duration(&self) -> Duration {
        Duration::from_secs(self.seconds)
    }
}

/// How a figure compares with its target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// The target is met.
    Met,
    /// The target is not met.
    NotMet,
    /// Informational: no target of its own.
    Info,
    /// The scenario could not run.
    NotRun,
}

/// One line of the final table.
#[derive(Debug, Clone)]
pub struct Row {
    /// Scenario and figure, e.g. `transitions/postgres rate`.
    pub figure: String,
    /// The project's figure.
    pub value: String,
    /// The baseline measured in the same run (or `-`).
    pub baseline: String,
    /// value / baseline (or `-`).
    pub ratio: String,
    /// The target as text.
    pub target: String,
    /// Met or not.
    pub verdict: Verdict,
}

/// The results table, printed at the end.
#[derive(Debug, Default)]
pub struct Report {
    rows: Vec<Row>,
    notes: Vec<String>,
}

impl Report {
    /// Adds a line.
    pub fn row(
        &mut self,
        figure: impl Into<String>,
        value: impl Into<String>,
        baseline: impl Into<String>,
        ratio: impl Into<String>,
        target: impl Into<String>,
        verdict: Verdict,
    ) {
        let row = Row {
            figure: figure.into(),
            value: value.into(),
            baseline: baseline.into(),
            ratio: ratio.into(),
            target: target.into(),
            verdict,
        };
        println!(
            "  => {}: {} (baseline {}, ratio {}) target {} {}",
            row.figure,
            row.value,
            row.baseline,
            row.ratio,
            row.target,
            verdict_text(row.verdict)
        );
        self.rows.push(row);
    }

    /// A scenario that could not run, with the reason (never a silent skip).
    pub fn not_run(&mut self, figure: impl Into<String>, why: impl Into<String>) {
        let figure = figure.into();
        let why = why.into();
        println!("  => {figure}: NOT RUN — {why}");
        self.notes.push(format!("{figure}: NOT RUN — {why}"));
        self.rows.push(Row {
            figure,
            value: "-".into(),
            baseline: "-".into(),
            ratio: "-".into(),
            target: "-".into(),
            verdict: Verdict::NotRun,
        });
    }

    /// A remark printed under the table.
    pub fn note(&mut self, text: impl Into<String>) {
        let text = text.into();
        println!("  note: {text}");
        self.notes.push(text);
    }

    /// The table.
    pub fn print(&self) {
        let headers = ["figure", "value", "baseline", "ratio", "target", "verdict"];
        let cells: Vec<[String; 6]> = self
            .rows
            .iter()
            .map(|r| {
                [
                    r.figure.clone(),
                    r.value.clone(),
                    r.baseline.clone(),
                    r.ratio.clone(),
                    r.target.clone(),
                    verdict_text(r.verdict).to_string(),
                ]
            })
            .collect();
        let mut widths = headers.map(|h| h.chars().count());
        for c in &cells {
            for (w, s) in widths.iter_mut().zip(c) {
                *w = (*w).max(s.chars().count());
            }
        }
        let line = |c: &[String]| {
            c.iter()
                .zip(widths)
                .map(|(s, w)| format!("{s}{}", " ".repeat(w - s.chars().count())))
                .collect::<Vec<_>>()
                .join(" | ")
        };
        println!();
        println!("{}", line(&headers.map(String::from)));
        println!(
            "{}",
            widths
                .iter()
                .map(|w| "-".repeat(*w))
                .collect::<Vec<_>>()
                .join("-|-")
        );
        for c in &cells {
            println!("{}", line(c));
        }
        if !self.notes.is_empty() {
            println!();
            for n in &self.notes {
                println!("- {n}");
            }
        }
    }
}

fn verdict_text(v: Verdict) -> &'static str {
    match v {
        Verdict::Met => "MET",
        Verdict::NotMet => "NOT MET",
        Verdict::Info => "info",
        Verdict::NotRun => "NOT RUN",
    }
}

/// `value / baseline` as a percentage.
pub fn percent(value: f64, baseline: f64) -> String {
    if baseline > 0.0 {
        format!("{:.0} %", 100.0 * value / baseline)
    } else {
        "-".into()
    }
}

/// A latency histogram in microseconds.
pub fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 600_000_000, 3).expect("valid histogram bounds")
}

/// Records one duration.
pub fn record(h: &mut Histogram<u64>, d: Duration) {
    let us = u64::try_from(d.as_micros()).unwrap_or(u64::MAX).max(1);
    h.saturating_record(us);
}

/// A quantile in milliseconds.
pub fn ms(h: &Histogram<u64>, q: f64) -> f64 {
    h.value_at_quantile(q) as f64 / 1000.0
}

/// p50/p95/p99 as text.
pub fn quantiles(h: &Histogram<u64>) -> String {
    format!(
        "p50 {:.1} ms, p95 {:.1} ms, p99 {:.1} ms",
        ms(h, 0.50),
        ms(h, 0.95),
        ms(h, 0.99)
    )
}

/// A fresh private directory under the system temp dir, removed on drop.
pub fn temp_dir() -> anyhow::Result<tempfile::TempDir> {
    Ok(tempfile::Builder::new()
        .prefix("zhigang-bench-")
        .tempdir()?)
}

/// A `zhigang serve` process; killed when dropped.
pub struct Server {
    child: Child,
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    /// Its process id.
    pub pid: u32,
    log: PathBuf,
}

fn free_port() -> anyhow::Result<u16> {
    let l = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(l.local_addr()?.port())
}

impl Server {
    /// Starts the release binary on `database_url` and waits for `/readyz`; returns the
    /// server and the time from spawn to the first 200.
    pub async fn start(
        database_url: &str,
        data_dir: &Path,
        env: &[(&str, String)],
    ) -> anyhow::Result<(Self, Duration)> {
        let port = free_port()?;
        let base = format!("http://127.0.0.1:{port}");
        let log = data_dir.join(format!("serve-{port}.log"));
        let log_file = std::fs::File::create(&log)?;
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_zhigang"));
        cmd.arg("serve")
            .env("ZHIGANG_DATABASE_URL", database_url)
            .env("ZHIGANG_LISTEN", format!("127.0.0.1:{port}"))
            .env("ZHIGANG_DATA_DIR", data_dir)
            .env("ZHIGANG_BASE_URL", &base)
            .env("ZHIGANG_LOG", "warn")
            .env("ZHIGANG_RUN_WORKER", "false")
            // The limit is per token and instance; the benchmark measures the engine, not
            // the limiter.
            .env("ZHIGANG_API_REQUESTS_PER_MINUTE", "100000000")
            .env_remove("ZHIGANG_SMTP_URL")
            .current_dir(data_dir)
            .stdin(Stdio::null())
            .stdout(log_file.try_clone()?)
            .stderr(log_file);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let started = Instant::now();
        let child = cmd.spawn().context("starting zhigang serve")?;
        let pid = child.id();
        let mut server = Self {
            child,
            base,
            pid,
            log,
        };
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(2))
            .build()?;
        let deadline = started + Duration::from_secs(120);
        loop {
            if let Ok(r) = client.get(format!("{}/readyz", server.base)).send().await
                && r.status() == reqwest::StatusCode::OK
            {
                return Ok((server, started.elapsed()));
            }
            if let Some(status) = server.child.try_wait()? {
                anyhow::bail!(
                    "zhigang serve exited with {status} before it was ready:\n{}",
                    server.log_tail()
                );
            }
            if Instant::now() > deadline {
                anyhow::bail!(
                    "zhigang serve not ready after 120 s:\n{}",
                    server.log_tail()
                );
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }

    /// The last lines of its log.
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }

    /// Stops it with SIGTERM (graceful), then SIGKILL if it lingers.
    pub fn stop(mut self) {
        self.terminate();
    }

    fn terminate(&mut self) {
        if matches!(self.child.try_wait(), Ok(Some(_))) {
            return;
        }
        let _ = Command::new("kill")
            .args(["-TERM", &self.pid.to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.terminate();
    }
}

/// A field of `/proc/PID/status` in kB or as a count (`VmRSS`, `VmHWM`, `Threads`).
pub fn proc_status(pid: u32, field: &str) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|rest| rest.split_whitespace().next()?.parse().ok())
}

/// The machine, for the report.
pub fn machine() -> String {
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find_map(|l| l.strip_prefix("model name"))
                .map(|s| s.trim_start_matches([' ', '\t', ':']).to_string())
        })
        .unwrap_or_default();
    let mem = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find_map(|l| l.strip_prefix("MemTotal:"))
                .and_then(|s| s.split_whitespace().next()?.parse::<u64>().ok())
        })
        .map_or(0.0, |kb| kb as f64 / 1024.0 / 1024.0);
    format!("{cores} cores ({cpu}), {mem:.1} GiB RAM")
}

/// The load average now (1 min), to say whether the machine was busy.
pub fn load_now() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .next()
        .unwrap_or("?")
        .to_string()
}
