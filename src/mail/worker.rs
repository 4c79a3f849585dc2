//! The delivery worker: claim, render, send, record — as a pipeline. Up to `CONCURRENCY`
//! messages are in flight at once; as sends finish, their outcomes are recorded together
//! in one transaction and more rows are claimed, so the SMTP connections never wait for
//! the slowest message of a batch or for a transaction per row.

use std::collections::{BTreeMap, VecDeque};
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use chrono::{DateTime, Utc};
use entity::notification_preference::NotificationMode;
use entity::outbox;
use lettre::Message;
use lettre::message::header::{HeaderName, HeaderValue};
use lettre::message::{Mailbox, MultiPart, SinglePart};
use sea_orm::{DatabaseConnection, TransactionTrait};
use secrecy::ExposeSecret;
use serde_json::Value;
use tokio::task::JoinSet;
use tokio::time::Instant;
use tracing::Instrument;

use super::compose::{Batch, ComposeError};
use super::prefs;
use super::queue;
use super::render::{Lang, Renderer};
use super::transport::{SendError, Transport};
use crate::settings::Settings;
use crate::store;
use crate::store::config::Config;

/// Messages one worker has in flight at once, and so the most SMTP connections it holds.
const CONCURRENCY: usize = 16;
/// Rows claimed at once (by [`Worker::run_once`], and by the pipeline each time its rows
/// waiting for a free slot run out, so a claim is one statement per `BATCH` messages).
const BATCH: usize = CONCURRENCY;
/// How often an idle worker looks for due rows.
const POLL: Duration = Duration::from_secs(1);
/// SMTP connections unused this long are closed when the queue is empty.
const IDLE_CONNECTION: Duration = Duration::from_secs(30);
/// Longest pause after repeated database failures.
const MAX_ERROR_PAUSE: Duration = Duration::from_secs(30);
/// How often the timers are scanned (reminders are per day, so a minute is plenty).
const TIMER_SCAN: Duration = Duration::from_secs(60);
/// Longest retry delay, whatever the attempt count.
const MAX_RETRY_DELAY: Duration = Duration::from_secs(6 * 3600);

/// Delivers the outbox. Cheap to share: clones refer to the same pool and transport.
#[derive(Clone)]
pub struct Worker {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Worker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Worker")
            .field("transport", &self.inner.transport)
            .finish_non_exhaustive()
    }
}

struct Inner {
    db: DatabaseConnection,
    transport: Transport,
    renderer: Renderer,
    from: Mailbox,
    base_url: String,
    max_attempts: i32,
    retry_base: Duration,
    lease: Duration,
    send_deadline: Duration,
    escalate_after: u32,
    digest_hour: u32,
}

impl Worker {
    /// A worker on `db` configured by `settings`: SMTP from `smtp_url`, or `.eml` files
    /// under `data_dir/mail/` when it is unset (logged once, here).
    pub fn new(db: DatabaseConnection, settings: &Settings) -> anyhow::Result<Self> {
        if settings.mail_lease_seconds <= settings.smtp_timeout_seconds {
            anyhow::bail!(
                "mail_lease_seconds ({}) must be longer than smtp_timeout_seconds ({}), or a \
                 slow send could be taken over by another worker and mailed twice",
                settings.mail_lease_seconds,
                settings.smtp_timeout_seconds
            );
        }
        let smtp_timeout = Duration::from_secs(settings.smtp_timeout_seconds.max(1));
        let url = settings
            .smtp_url
            .as_ref()
            .map(|u| u.expose_secret().trim().to_string())
            .filter(|u| !u.is_empty());
        let transport = match url {
            Some(url) => Transport::smtp(&url, smtp_timeout, CONCURRENCY as u32)?,
            None => {
                let dir = settings.data_dir.join("mail");
                let t = Transport::files(&dir)?;
                tracing::info!(dir = %dir.display(), "no smtp_url configured: email is written as .eml files");
                t
            }
        };
        let from: Mailbox = settings
            .mail_from
            .parse()
            .map_err(|e| anyhow::anyhow!("invalid mail_from {:?}: {e}", settings.mail_from))?;
        let lease = Duration::from_secs(settings.mail_lease_seconds);
        Ok(Self {
            inner: Arc::new(Inner {
                db,
                transport,
                renderer: Renderer::new()?,
                from,
                base_url: settings.base_url.trim_end_matches('/').to_string(),
                max_attempts: i32::try_from(settings.mail_max_attempts.max(1)).unwrap_or(i32::MAX),
                retry_base: Duration::from_secs(settings.mail_retry_base_seconds.max(1)),
                lease,
                // A whole send (connect, EHLO, TLS, AUTH, MAIL, RCPT, DATA) must end well
                // inside the lease, whatever the per-command timeout.
                send_deadline: lease.mul_f64(0.75),
                escalate_after: settings.escalate_after_working_days,
                digest_hour: settings.digest_hour,
            }),
        })
    }

    /// One batch: claims up to `BATCH` due rows, renders and sends them, records their
    /// outcomes. Returns how many rows it claimed (0 when nothing was due). An error means
    /// the database failed; the other rows of the batch are still sent and recorded, and
    /// rows it could not record are sent again after their lease, with the same Message-ID.
    pub async fn run_once(&self) -> anyhow::Result<usize> {
        let mut pipeline = Pipeline::new(self.inner.clone());
        let mut failure = pipeline.step(true, BATCH).await.err();
        loop {
            match pipeline.step(false, BATCH).await {
                Ok(Step::Idle) => break,
                Ok(Step::Busy) => {}
                Err(e) => {
                    failure.get_or_insert(e);
                }
            }
        }
        failure.map_or(Ok(pipeline.claimed), Err)
    }

    /// Delivers until no row is due: the pipeline kept full, up to `CONCURRENCY` messages
    /// in flight. Returns how many rows it claimed. On a database failure it stops
    /// claiming, finishes and records what is in flight, and returns the first error.
    pub async fn drain(&self) -> anyhow::Result<usize> {
        let mut pipeline = Pipeline::new(self.inner.clone());
        let mut failure = None;
        loop {
            match pipeline.step(failure.is_none(), CONCURRENCY).await {
                Ok(Step::Idle) => break,
                Ok(Step::Busy) => {}
                Err(e) => {
                    failure.get_or_insert(e);
                }
            }
        }
        failure.map_or(Ok(pipeline.claimed), Err)
    }

    /// One scan of the timers (reminders, escalations, 补正 warnings, the daily digest):
    /// fires each due timer that has not fired, writing its outbox rows. Returns how many
    /// fired (for the digest: how many digest emails it queued).
    pub async fn run_timers_once(&self) -> anyhow::Result<usize> {
        let now = store::now();
        let fired = super::timers::run_once(&self.inner.db, now, self.inner.escalate_after).await?;
        let digests = self.run_digest_at(now).await?;
        self.housekeeping(now).await?;
        Ok(fired + digests)
    }

    /// Forgets what has expired: sessions past their end, API idempotency keys older than
    /// a day. Safe on several instances at once (plain deletes by time).
    pub async fn housekeeping(&self, now: DateTime<Utc>) -> anyhow::Result<()> {
        let db = &self.inner.db;
        let keys = crate::api::idempotency::prune(db, now).await?;
        let sessions = crate::web::session::sweep_expired(db, now).await?;
        if keys + sessions > 0 {
            tracing::info!(keys, sessions, "housekeeping: expired rows removed");
        }
        Ok(())
    }

    /// Fires the daily digest of the local day at `now`, unless its hour (`digest_hour`)
    /// has not come or it fired already (here or in another worker). Returns how many
    /// digest emails it queued (none for reviewers with nothing new).
    pub async fn run_digest_at(&self, now: DateTime<Utc>) -> anyhow::Result<usize> {
        Ok(super::digest::run_once(&self.inner.db, now, self.inner.digest_hour).await?)
    }

    /// Delivers until `shutdown` resolves, keeping up to `CONCURRENCY` messages in flight,
    /// polling every second when nothing is due, and scans the timers every minute. On
    /// shutdown it claims nothing more, and finishes and records what is in flight;
    /// database failures are logged and claiming resumes after a growing pause.
    pub async fn run(self, shutdown: impl Future<Output = ()>) {
        tokio::pin!(shutdown);
        let mut stopping = false;
        let mut failures: u32 = 0;
        let mut next_timer_scan = Instant::now();
        let mut claims_resume = Instant::now();
        let mut pipeline = Pipeline::new(self.inner.clone());
        loop {
            if !stopping {
                // A look at `shutdown` without waiting (and never again once it resolved).
                stopping = tokio::select! {
                    biased;
                    () = &mut shutdown => true,
                    () = std::future::ready(()) => false,
                };
            }
            if !stopping && Instant::now() >= next_timer_scan {
                next_timer_scan = Instant::now() + TIMER_SCAN;
                if let Err(e) = self.run_timers_once().await {
                    tracing::warn!(error = %format!("{e:#}"), "timer scan failed");
                }
            }
            let claim = !stopping && Instant::now() >= claims_resume;
            match pipeline.step(claim, CONCURRENCY).await {
                Ok(Step::Busy) => failures = 0,
                Ok(Step::Idle) => {
                    if stopping {
                        break;
                    }
                    let wake = if claim {
                        // Nothing is due: a good moment to let idle connections go.
                        self.inner.transport.close_idle(IDLE_CONNECTION).await;
                        Instant::now() + POLL
                    } else {
                        claims_resume
                    };
                    tokio::select! {
                        biased;
                        () = &mut shutdown => stopping = true,
                        () = tokio::time::sleep_until(wake) => {}
                    }
                }
                Err(e) => {
                    failures = failures.saturating_add(1);
                    tracing::warn!(error = %format!("{e:#}"), "mail worker batch failed");
                    claims_resume = Instant::now()
                        + (POLL * 2u32.saturating_pow(failures.min(5))).min(MAX_ERROR_PAUSE);
                }
            }
        }
        tracing::info!("mail worker stopped");
    }
}

/// What one [`Pipeline::step`] found.
enum Step {
    /// Nothing in flight (and, when claiming was allowed, nothing due).
    Idle,
    /// Sends finished and their outcomes were recorded.
    Busy,
}

/// The outcome of one claimed row, to be recorded.
enum Outcome {
    Sent,
    /// Back to the queue at `retry_at`, or dead when it is `None`.
    Failed {
        error: String,
        retry_at: Option<DateTime<Utc>>,
    },
    SwitchedOff,
    HeldForDigest,
}

/// A row whose delivery ended (or failed on the database: `outcome` is then an error and
/// the row is left to its lease).
struct Finished {
    row: outbox::Model,
    lease: DateTime<Utc>,
    outcome: anyhow::Result<Outcome>,
    span: tracing::Span,
}

/// A claimed row waiting for a free slot. Its send must end by `deadline` (well inside its
/// lease), however long it waited.
struct Claimed {
    row: outbox::Model,
    lease: DateTime<Utc>,
    deadline: Instant,
    config: Arc<Config>,
    /// What composing the rows of its claim needs, read once for the claim.
    batch: Arc<Batch>,
}

/// Rows in flight, each in its own task, at most one claim's worth waiting for a slot,
/// and the loop that records and refills.
struct Pipeline {
    inner: Arc<Inner>,
    in_flight: JoinSet<Finished>,
    ready: VecDeque<Claimed>,
    /// The last claim found nothing due: no more claims until the pipeline is empty.
    dry: bool,
    /// Rows claimed so far.
    claimed: usize,
}

impl Pipeline {
    fn new(inner: Arc<Inner>) -> Self {
        Self {
            inner,
            in_flight: JoinSet::new(),
            ready: VecDeque::new(),
            dry: false,
            claimed: 0,
        }
    }

    /// Starts sends in the free slots and waits for at least one send to finish; then,
    /// while the replacement sends run, records every finished one together and, when
    /// `claim` and what it holds would not exceed two claims' worth, claims up to `limit`
    /// more rows — the two at once, so the loop waits for one database round trip (on
    /// PostgreSQL mostly the commit's flush), not two in a row, and not with free slots.
    async fn step(&mut self, claim: bool, limit: usize) -> anyhow::Result<Step> {
        self.fill();
        // At most one claim per step (`run_once` relies on it).
        let mut claim = claim;
        if self.in_flight.is_empty() && self.may_claim(claim, limit) {
            let claimed = claim_batch(&self.inner, limit).await?;
            self.add(claimed);
            self.fill();
            claim = false;
        }
        let Some(first) = self.in_flight.join_next().await else {
            return Ok(Step::Idle);
        };
        let mut finished = Vec::new();
        let mut failure = None;
        let mut joined = Some(first);
        while let Some(j) = joined {
            match j {
                Ok(f) => finished.push(f),
                // A panicked task: its row is sent again after its lease.
                Err(e) => {
                    failure.get_or_insert(anyhow::anyhow!("delivery task failed: {e}"));
                }
            }
            joined = self.in_flight.try_join_next();
        }
        self.fill();
        let more = self.may_claim(claim, limit);
        let inner = self.inner.clone();
        let (recorded, claimed) = tokio::join!(inner.record(finished), async {
            if more {
                Some(claim_batch(&inner, limit).await)
            } else {
                None
            }
        });
        let claimed = match claimed {
            Some(Ok(c)) => {
                self.add(c);
                self.fill();
                Ok(())
            }
            Some(Err(e)) => Err(e),
            None => Ok(()),
        };
        match (failure, recorded, claimed) {
            (Some(e), _, _) | (None, Err(e), _) | (None, Ok(()), Err(e)) => Err(e),
            (None, Ok(()), Ok(())) => Ok(Step::Busy),
        }
    }

    /// Whether to claim now: allowed, what the pipeline holds plus `limit` stays within
    /// two claims' worth, and either it holds nothing or its waiting rows ran out and the
    /// last claim found some.
    fn may_claim(&self, claim: bool, limit: usize) -> bool {
        let held = self.ready.len() + self.in_flight.len();
        claim
            && held + limit <= 2 * CONCURRENCY
            && (held == 0 || (!self.dry && self.ready.is_empty()))
    }

    /// Starts sends in the free slots.
    fn fill(&mut self) {
        while self.in_flight.len() < CONCURRENCY
            && let Some(c) = self.ready.pop_front()
        {
            self.start(c);
        }
    }

    /// Takes claimed rows in, to wait for a free slot.
    fn add(&mut self, claimed: Vec<Claimed>) {
        self.dry = claimed.is_empty();
        self.claimed += claimed.len();
        self.ready.extend(claimed);
    }

    fn start(&mut self, c: Claimed) {
        let Claimed {
            row,
            lease,
            deadline,
            config,
            batch,
        } = c;
        let inner = self.inner.clone();
        let span = tracing::info_span!(
            "mail_delivery",
            outbox_id = %row.id,
            kind = %row.kind,
            application_id = ?row.application_id,
            reference = row.payload.get("reference").and_then(serde_json::Value::as_str).unwrap_or(""),
            attempt = row.attempts,
        );
        let task_span = span.clone();
        self.in_flight.spawn(
            async move {
                let outcome = inner.deliver(&row, &batch, &config, deadline).await;
                Finished {
                    row,
                    lease,
                    outcome,
                    span,
                }
            }
            .instrument(task_span),
        );
    }
}

/// Claims up to `n` due rows, with what composing them needs.
async fn claim_batch(inner: &Inner, n: usize) -> anyhow::Result<Vec<Claimed>> {
    // Organizations and definitions for composing, as they are now (one small read when
    // nothing changed: see `store::config`).
    let config = store::config::current(&inner.db).await?;
    let now = store::now();
    let lease = now + chrono::Duration::from_std(inner.lease)?;
    // A whole send (connect, EHLO, TLS, AUTH, MAIL, RCPT, DATA) must end well inside the
    // lease, whatever the per-command timeout and the wait for a slot.
    let deadline = Instant::now() + inner.send_deadline;
    let rows = queue::claim(&inner.db, now, lease, n as u64).await?;
    if rows.is_empty() {
        return Ok(Vec::new());
    }
    // Everything the claimed rows need (recipients, their choices, applications,
    // companies, tasks, memberships), read once for the claim rather than row by row.
    // Should this fail, the rows are left to their lease, as when recording fails.
    let batch = Arc::new(Batch::load(&inner.db, &rows).await?);
    Ok(rows
        .into_iter()
        .map(|row| Claimed {
            row,
            lease,
            deadline,
            config: config.clone(),
            batch: batch.clone(),
        })
        .collect())
}

/// A worker running in the background (see [`Worker::spawn`]).
#[derive(Debug)]
pub struct RunningWorker {
    stop: tokio::sync::oneshot::Sender<()>,
    handle: tokio::task::JoinHandle<()>,
}

impl RunningWorker {
    /// Asks the worker to stop once the messages in flight are sent and recorded, and waits
    /// for it (at most the send deadline plus a little: an unfinished send is safe, its
    /// lease runs out and another worker sends it again with the same Message-ID).
    pub async fn stop(self) {
        let _ = self.stop.send(());
        let mut handle = self.handle;
        if tokio::time::timeout(Duration::from_secs(60), &mut handle)
            .await
            .is_err()
        {
            handle.abort();
        }
    }
}

impl Worker {
    /// Runs the worker on the current runtime until [`RunningWorker::stop`].
    pub fn spawn(self) -> RunningWorker {
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let handle = tokio::spawn(self.run(async move {
            // A dropped sender also means stop.
            let _ = stopped.await;
        }));
        RunningWorker { stop, handle }
    }
}

impl Inner {
    /// Decides and, when it is to be mailed now, sends one claimed row; the outcome is
    /// recorded by [`Inner::record`]. An error means the database failed.
    async fn deliver(
        &self,
        row: &outbox::Model,
        batch: &Batch,
        config: &Config,
        deadline: Instant,
    ) -> anyhow::Result<Outcome> {
        // The recipient's preference, as read at the claim (account emails are always
        // immediate).
        if let Some(user) = row.recipient_user_id {
            match batch.mode(user, &row.kind) {
                NotificationMode::Immediate => {}
                NotificationMode::Off => {
                    tracing::info!("not sent: switched off by the recipient");
                    return Ok(Outcome::SwitchedOff);
                }
                NotificationMode::Digest => {
                    tracing::info!("parked for the daily digest");
                    return Ok(Outcome::HeldForDigest);
                }
            }
        }
        Ok(match self.attempt(row, batch, config, deadline).await {
            Ok(()) => {
                tracing::info!("mail sent");
                Outcome::Sent
            }
            Err(SendError::Permanent(e)) => {
                tracing::warn!(error = %e, "mail failed permanently; the row is dead");
                Outcome::Failed {
                    error: e,
                    retry_at: None,
                }
            }
            Err(SendError::Transient(e)) if row.attempts >= self.max_attempts => {
                tracing::warn!(error = %e, "mail failed and is out of attempts; the row is dead");
                Outcome::Failed {
                    error: e,
                    retry_at: None,
                }
            }
            Err(SendError::Transient(e)) => {
                let delay = backoff(self.retry_base, row.attempts);
                tracing::info!(error = %e, retry_in_seconds = delay.as_secs(), "mail failed temporarily; will retry");
                Outcome::Failed {
                    error: e,
                    retry_at: Some(store::now() + chrono::Duration::from_std(delay)?),
                }
            }
        })
    }

    /// Records finished rows in one transaction: each update still requires the row's
    /// own lease, so an outcome whose lease ran out (another worker may have the row now)
    /// changes nothing. A digest's outcome is also that of the rows it carries. Rows whose
    /// delivery failed on the database are left to their lease; the first such error is
    /// returned after the others are recorded.
    async fn record(&self, finished: Vec<Finished>) -> anyhow::Result<()> {
        if finished.is_empty() {
            return Ok(());
        }
        let now = store::now();
        // The common case, sent rows of one claim, is one statement: no transaction.
        let lease = finished[0].lease;
        if finished.iter().all(|f| {
            f.lease == lease
                && matches!(f.outcome, Ok(Outcome::Sent))
                && f.row.kind != prefs::DIGEST_KIND
        }) {
            let ids: Vec<uuid::Uuid> = finished.iter().map(|f| f.row.id).collect();
            let recorded = queue::mark_sent_many(&self.db, &ids, lease, now).await?;
            for f in finished.iter().filter(|f| !recorded.contains(&f.row.id)) {
                f.span.in_scope(|| {
                    tracing::warn!(
                        "the lease on this outbox row ran out before the outcome was recorded"
                    );
                });
            }
            return Ok(());
        }
        let mut failure = None;
        let mut lost: Vec<&Finished> = Vec::new();
        // Plain sent rows, by lease (one per claim): one statement each.
        let mut sent: BTreeMap<DateTime<Utc>, Vec<&Finished>> = BTreeMap::new();
        let txn = self.db.begin().await?;
        for f in &finished {
            let (row, lease) = (&f.row, f.lease);
            let digest = row.kind == prefs::DIGEST_KIND;
            let ok = match &f.outcome {
                Err(e) => {
                    failure.get_or_insert(anyhow::anyhow!("{e:#}"));
                    continue;
                }
                Ok(Outcome::Sent) if !digest => {
                    sent.entry(lease).or_default().push(f);
                    continue;
                }
                Ok(Outcome::Sent) => {
                    let ok = queue::mark_sent(&txn, row, lease, now).await?;
                    if ok {
                        let carried = super::digest::carried(row);
                        queue::settle_digested(&txn, &carried, Ok(now)).await?;
                    }
                    ok
                }
                Ok(Outcome::Failed { error, retry_at }) => {
                    let ok = queue::mark_failed(&txn, row, lease, error, *retry_at).await?;
                    if ok && digest && retry_at.is_none() {
                        let carried = super::digest::carried(row);
                        queue::settle_digested(&txn, &carried, Err(error)).await?;
                    }
                    ok
                }
                Ok(Outcome::SwitchedOff) => queue::mark_switched_off(&txn, row, lease).await?,
                Ok(Outcome::HeldForDigest) => queue::hold_for_digest(&txn, row, lease).await?,
            };
            if !ok {
                lost.push(f);
            }
        }
        for (lease, rows) in &sent {
            let ids: Vec<uuid::Uuid> = rows.iter().map(|f| f.row.id).collect();
            let recorded = queue::mark_sent_many(&txn, &ids, *lease, now).await?;
            if recorded.len() < ids.len() {
                lost.extend(rows.iter().filter(|f| !recorded.contains(&f.row.id)));
            }
        }
        txn.commit().await?;
        for f in lost {
            f.span.in_scope(|| {
                tracing::warn!(
                    "the lease on this outbox row ran out before the outcome was recorded"
                );
            });
        }
        failure.map_or(Ok(()), Err)
    }

    async fn attempt(
        &self,
        row: &outbox::Model,
        batch: &Batch,
        config: &Config,
        deadline: Instant,
    ) -> Result<(), SendError> {
        let ctx = batch
            .context(&self.db, row, config, &self.base_url)
            .await
            .map_err(|e| match e {
                ComposeError::Db(e) => SendError::Transient(format!("database: {e}")),
                ComposeError::Invalid(m) => SendError::Permanent(m),
            })?;
        let rendered = self
            .renderer
            .render(&row.kind, Lang::of(&row.locale), &ctx)
            .map_err(|e| SendError::Permanent(e.to_string()))?;
        let address = row.recipient_email.parse().map_err(|e| {
            SendError::Permanent(format!(
                "invalid recipient address {:?}: {e}",
                row.recipient_email
            ))
        })?;
        let name = ctx
            .get("recipient")
            .and_then(Value::as_str)
            .filter(|n| *n != row.recipient_email)
            .map(str::to_string);
        let mut message = Message::builder()
            .from(self.from.clone())
            .to(Mailbox::new(name, address))
            .subject(rendered.subject)
            // The row's id, so that a resend after a crash is the same message to the
            // recipient's client; the Date is the event's for the same reason.
            .message_id(Some(format!("<{}>", row.message_id)))
            .date(SystemTime::from(row.created_at))
            // A boundary derived from the row too: a resend is byte for byte the same
            // message unless its data changed. "=_" cannot occur in base64 or
            // quoted-printable bodies.
            .multipart(
                MultiPart::alternative()
                    .boundary(format!("=_zhigang_{}", row.id.simple()))
                    .singlepart(SinglePart::plain(rendered.text))
                    .singlepart(SinglePart::html(rendered.html)),
            )
            .map_err(|e| SendError::Permanent(format!("cannot build the message: {e}")))?;
        // RFC 3834: tells autoresponders (out-of-office) not to answer.
        message.headers_mut().insert_raw(HeaderValue::new(
            HeaderName::new_from_ascii_str("Auto-Submitted"),
            "auto-generated".to_string(),
        ));
        match tokio::time::timeout_at(deadline, self.transport.send(message)).await {
            Ok(result) => result,
            Err(_) => Err(SendError::Transient(format!(
                "the send did not finish within {} s",
                self.send_deadline.as_secs()
            ))),
        }
    }
}

/// Exponential backoff with jitter: attempt `n` (1-based) waits between half and all of
/// `base · 2^(n-1)`, capped at six hours. The jitter spreads out a queue that failed all at
/// once (the server was down) so it does not hit the server again all at once.
pub(crate) fn backoff(base: Duration, attempts: i32) -> Duration {
    let exp = u32::try_from(attempts.saturating_sub(1))
        .unwrap_or(0)
        .min(20);
    let full = base.saturating_mul(1u32 << exp).min(MAX_RETRY_DELAY);
    let half = full / 2;
    let jitter_ms = rand::random_range(0..=u64::try_from(half.as_millis()).unwrap_or(u64::MAX));
    half + Duration::from_millis(jitter_ms)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_with_jitter_and_is_capped() {
        let base = Duration::from_secs(30);
        for _ in 0..100 {
            let d1 = backoff(base, 1);
            assert!(
                d1 >= Duration::from_secs(15) && d1 <= Duration::from_secs(30),
                "{d1:?}"
            );
            let d3 = backoff(base, 3);
            assert!(
                d3 >= Duration::from_secs(60) && d3 <= Duration::from_secs(120),
                "{d3:?}"
            );
            let d_many = backoff(base, 40);
            assert!(
                d_many <= MAX_RETRY_DELAY && d_many >= MAX_RETRY_DELAY / 2,
                "{d_many:?}"
            );
        }
    }
}
