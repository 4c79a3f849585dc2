//! Scenario 2: the outbox drained by the mail worker to a loopback SMTP server, against raw
//! sends of the same bytes to the same server over as many connections.
//!
//! The baseline is the best raw path: the worker's own transport (`Transport::send_raw`,
//! lettre's SMTP client on sockets with `TCP_NODELAY`). lettre's pooled
//! `AsyncSmtpTransport`, which the worker used before, is measured too and printed for
//! reference: its sockets wait out the delayed ACK on every message (see
//! src/mail/transport.rs).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use entity::enums::OutboxStatus;
use entity::outbox;
use futures::StreamExt;
use lettre::address::Envelope;
use lettre::transport::smtp::PoolConfig;
use lettre::{Address, AsyncSmtpTransport, AsyncTransport, Tokio1Executor};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, DatabaseConnection, EntityTrait, PaginatorTrait, QueryFilter,
    QueryOrder,
};
use secrecy::SecretString;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use uuid::Uuid;
use zhigang::mail::{Transport, Worker};
use zhigang::settings::Settings;

use crate::common::{Options, Report, Verdict};
use crate::helpers::{self, Backend, TestDb};

/// Messages the worker has in flight (and SMTP connections it holds): `CONCURRENCY` in
/// src/mail/worker.rs.
const WORKER_BATCH: usize = 16;

/// A minimal SMTP server that accepts everything and counts; it keeps the first message.
pub struct Sink {
    /// Where it listens.
    pub addr: std::net::SocketAddr,
    count: Arc<AtomicU64>,
    first: First,
    task: tokio::task::JoinHandle<()>,
}

impl Sink {
    /// Listens on a free loopback port.
    pub async fn start() -> anyhow::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let count = Arc::new(AtomicU64::new(0));
        let first = Arc::new(Mutex::new(None));
        let (c, f) = (count.clone(), first.clone());
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(session(stream, c.clone(), f.clone()));
            }
        });
        Ok(Self {
            addr,
            count,
            first,
            task,
        })
    }

    /// Messages accepted so far.
    pub fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }
}

impl Drop for Sink {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The first message: envelope sender, recipients, bytes.
type First = Arc<Mutex<Option<(String, Vec<String>, Vec<u8>)>>>;

fn angle(arg: &str) -> String {
    let start = arg.find('<').map_or(0, |i| i + 1);
    let end = arg[start..].find('>').map_or(arg.len(), |i| start + i);
    arg[start..end].to_string()
}

async fn session(stream: TcpStream, count: Arc<AtomicU64>, first: First) {
    let _ = stream.set_nodelay(true);
    let (read, mut write) = stream.into_split();
    let mut read = BufReader::new(read);
    if write
        .write_all(b"220 bench.localhost ESMTP\r\n")
        .await
        .is_err()
    {
        return;
    }
    let mut line = Vec::new();
    let (mut from, mut to) = (String::new(), Vec::new());
    loop {
        line.clear();
        if !matches!(read.read_until(b'\n', &mut line).await, Ok(n) if n > 0) {
            return;
        }
        let text = String::from_utf8_lossy(&line)
            .trim_end()
            .to_ascii_uppercase();
        let reply: &[u8] = if text.starts_with("EHLO") {
            b"250-bench.localhost\r\n250-8BITMIME\r\n250-PIPELINING\r\n250 SMTPUTF8\r\n"
        } else if text.starts_with("HELO") {
            b"250 bench.localhost\r\n"
        } else if text.starts_with("MAIL FROM:") {
            from = angle(&String::from_utf8_lossy(&line));
            to.clear();
            b"250 ok\r\n"
        } else if text.starts_with("RCPT TO:") {
            to.push(angle(&String::from_utf8_lossy(&line)));
            b"250 ok\r\n"
        } else if text == "DATA" {
            if write.write_all(b"354 go ahead\r\n").await.is_err() {
                return;
            }
            let mut raw = Vec::new();
            loop {
                line.clear();
                if !matches!(read.read_until(b'\n', &mut line).await, Ok(n) if n > 0) {
                    return;
                }
                if line == b".\r\n" || line == b".\n" {
                    break;
                }
                let body: &[u8] = if line.starts_with(b"..") {
                    &line[1..]
                } else {
                    &line
                };
                raw.extend_from_slice(body);
            }
            if let Ok(mut f) = first.lock()
                && f.is_none()
            {
                *f = Some((from.clone(), to.clone(), raw));
            }
            count.fetch_add(1, Ordering::Relaxed);
            b"250 queued\r\n"
        } else if text == "RSET" || text == "NOOP" {
            b"250 ok\r\n"
        } else if text == "QUIT" {
            let _ = write.write_all(b"221 bye\r\n").await;
            return;
        } else {
            b"502 unknown\r\n"
        };
        if write.write_all(reply).await.is_err() {
            return;
        }
    }
}

fn settings(smtp_url: String, data_dir: &std::path::Path) -> anyhow::Result<Settings> {
    let mut s = Settings::load(Some(std::path::Path::new("/dev/null")))?;
    s.smtp_url = Some(SecretString::from(smtp_url));
    s.data_dir = data_dir.to_path_buf();
    s.base_url = "https://portal.zhigang.test/".into();
    s.mail_from = "智港 <noreply@zhigang.test>".into();
    Ok(s)
}

/// Copies the first outbox row `n` times (new ids and Message-IDs), in chunks.
async fn fill_outbox(db: &DatabaseConnection, n: usize) -> anyhow::Result<()> {
    let template = outbox::Entity::find()
        .order_by_asc(outbox::Column::Id)
        .one(db)
        .await?
        .context("submitting queued no mail")?;
    outbox::Entity::delete_many().exec(db).await?;
    let now = zhigang::store::now();
    let ids: Vec<usize> = (0..n).collect();
    for chunk in ids.chunks(500) {
        let batch: Vec<outbox::ActiveModel> = chunk
            .iter()
            .map(|_| {
                let id = Uuid::now_v7();
                outbox::ActiveModel {
                    id: Set(id),
                    kind: Set(template.kind.clone()),
                    application_id: Set(template.application_id),
                    recipient_user_id: Set(template.recipient_user_id),
                    recipient_email: Set(template.recipient_email.clone()),
                    locale: Set(template.locale.clone()),
                    payload: Set(template.payload.clone()),
                    status: Set(OutboxStatus::Queued),
                    attempts: Set(0),
                    next_attempt_at: Set(now),
                    lease_until: Set(None),
                    last_error: Set(None),
                    message_id: Set(format!("{id}@zhigang")),
                    created_at: Set(now),
                    sent_at: Set(None),
                }
            })
            .collect();
        outbox::Entity::insert_many(batch).exec(db).await?;
    }
    Ok(())
}

/// Runs the scenario on one backend.
pub async fn run(opts: &Options, report: &mut Report, backend: Backend) -> anyhow::Result<()> {
    let name = match backend {
        Backend::Sqlite => "sqlite",
        Backend::Postgres => "postgres",
    };
    let n = opts.mail_rows;
    println!("\n== mail on {name}: {n} outbox rows, one worker ==");
    let Some(t) = TestDb::new(backend).await else {
        report.not_run(
            format!("mail/{name}"),
            format!("no PostgreSQL server at {}", helpers::pg_admin_url()),
        );
        return Ok(());
    };
    let (company, applicant) = helpers::company(&t.db).await;
    helpers::submitted_yqyc(&t.db, company, applicant, &["rd_funding"]).await;
    fill_outbox(&t.db, n).await?;
    let sink = Sink::start().await?;
    let url = format!("smtp://{}", sink.addr);
    let dir = crate::common::temp_dir()?;
    let worker = Worker::new(t.db.clone(), &settings(url, dir.path())?)?;
    let start = Instant::now();
    let handled = worker.drain().await?;
    let elapsed = start.elapsed();
    let sent = outbox::Entity::find()
        .filter(outbox::Column::Status.eq(OutboxStatus::Sent))
        .count(&t.db)
        .await?;
    anyhow::ensure!(
        handled == n && sent as usize == n && sink.count() as usize == n,
        "{n} rows: {handled} handled, {sent} marked sent, {} arrived",
        sink.count()
    );
    let rate = n as f64 / elapsed.as_secs_f64();
    println!(
        "  worker: {n} messages in {:.2} s = {rate:.0}/s (claim, render, send, mark sent; {WORKER_BATCH} in flight)",
        elapsed.as_secs_f64()
    );

    // Baseline: the same bytes through the worker's transport, as many in flight as the
    // worker has.
    let (from, to, raw) = sink
        .first
        .lock()
        .map_err(|_| anyhow::anyhow!("lock"))?
        .clone()
        .context("no message arrived")?;
    let envelope = Envelope::new(
        Some(from.parse::<Address>()?),
        to.iter()
            .map(|a| a.parse::<Address>())
            .collect::<Result<_, _>>()?,
    )?;
    let transport = Transport::smtp(
        &format!("smtp://{}", sink.addr),
        Duration::from_secs(30),
        WORKER_BATCH as u32,
    )?;
    let before = sink.count();
    let start = Instant::now();
    let results: Vec<_> = futures::stream::iter(0..n)
        .map(|_| transport.send_raw(&envelope, &raw))
        .buffer_unordered(WORKER_BATCH)
        .collect()
        .await;
    let base_elapsed = start.elapsed();
    let failed = results.iter().filter(|r| r.is_err()).count();
    anyhow::ensure!(failed == 0, "{failed} raw sends failed");
    anyhow::ensure!(sink.count() - before == n as u64, "raw sends lost");
    let baseline = n as f64 / base_elapsed.as_secs_f64();
    println!(
        "  baseline: {n} raw sends ({} bytes each, {WORKER_BATCH} in flight, TCP_NODELAY) in {:.2} s = {baseline:.0}/s",
        raw.len(),
        base_elapsed.as_secs_f64()
    );

    // For reference: lettre's pooled transport (no TCP_NODELAY), the same bytes.
    let lettre_pool = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous("127.0.0.1")
        .port(sink.addr.port())
        .timeout(Some(Duration::from_secs(30)))
        .pool_config(PoolConfig::new().max_size(WORKER_BATCH as u32))
        .build();
    let before = sink.count();
    let start = Instant::now();
    let results: Vec<_> = futures::stream::iter(0..n)
        .map(|_| lettre_pool.send_raw(&envelope, &raw))
        .buffer_unordered(WORKER_BATCH)
        .collect()
        .await;
    let pool_elapsed = start.elapsed();
    let failed = results.iter().filter(|r| r.is_err()).count();
    anyhow::ensure!(failed == 0, "{failed} lettre pool sends failed");
    anyhow::ensure!(sink.count() - before == n as u64, "lettre pool sends lost");
    println!(
        "  reference: the same through lettre's AsyncSmtpTransport pool ({WORKER_BATCH} in flight) in {:.2} s = {:.0}/s",
        pool_elapsed.as_secs_f64(),
        n as f64 / pool_elapsed.as_secs_f64()
    );
    report.row(
        format!("mail/{name} drain ({n} rows)"),
        format!("{rate:.0} msg/s"),
        format!("{baseline:.0} msg/s"),
        crate::common::percent(rate, baseline),
        "≥ 1,000 msg/s",
        if rate >= 1000.0 {
            Verdict::Met
        } else {
            Verdict::NotMet
        },
    );
    Ok(())
}
