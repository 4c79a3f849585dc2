//! The delivery worker: claim, render, send, record — in batches, concurrently within a
//! batch.

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
use tracing::Instrument;

use super::compose::{self, ComposeError, DefinitionCache};
use super::prefs;
use super::queue;
use super::render::{Lang, Renderer};
use super::transport::{SendError, Transport};
use crate::organizations::OrgDirectory;
use crate::settings::Settings;
use crate::store;

/// Rows claimed at once. All of a batch are sent concurrently, so none waits long enough
/// in the batch for its lease to run out.
const BATCH: u64 = 16;
/// How often an idle worker looks for due rows.
const POLL: Duration = Duration::from_secs(1);
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
    defs: DefinitionCache,
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
            Some(url) => Transport::smtp(&url, smtp_timeout, BATCH as u32)?,
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
                defs: DefinitionCache::default(),
                escalate_after: settings.escalate_after_working_days,
                digest_hour: settings.digest_hour,
            }),
        })
    }

    /// One batch: claims due rows, renders and sends them, records each outcome. Returns
    /// how many rows it processed (0 when nothing was due). An error means the database
    /// failed; rows it could not record are sent again after their lease, with the same
    /// Message-ID.
    pub async fn run_once(&self) -> anyhow::Result<usize> {
        let inner = &self.inner;
        let now = store::now();
        let lease_until = now + chrono::Duration::from_std(inner.lease)?;
        let rows = queue::claim(&inner.db, now, lease_until, BATCH).await?;
        if rows.is_empty() {
            return Ok(0);
        }
        let orgs = Arc::new(store::load_orgs(&inner.db).await?);
        let n = rows.len();
        let mut set = JoinSet::new();
        for row in rows {
            let inner = self.inner.clone();
            let orgs = orgs.clone();
            let span = tracing::info_span!(
                "mail_delivery",
                outbox_id = %row.id,
                kind = %row.kind,
                application_id = ?row.application_id,
                reference = row.payload.get("reference").and_then(serde_json::Value::as_str).unwrap_or(""),
                attempt = row.attempts,
            );
            set.spawn(async move { inner.deliver(row, lease_until, &orgs).await }.instrument(span));
        }
        let mut failure = None;
        while let Some(joined) = set.join_next().await {
            match joined {
                Ok(Ok(())) => {}
                Ok(Err(e)) => {
                    failure.get_or_insert(e);
                }
                Err(e) => {
                    failure.get_or_insert(anyhow::anyhow!("delivery task failed: {e}"));
                }
            }
        }
        match failure {
            Some(e) => Err(e),
            None => Ok(n),
        }
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

    /// Runs batches until `shutdown` resolves, polling every second when idle, and scans
    /// the timers every minute. A batch in progress is finished before stopping; database
    /// failures are logged and retried with a growing pause.
    pub async fn run(self, shutdown: impl Future<Output = ()>) {
        tokio::pin!(shutdown);
        let mut failures: u32 = 0;
        let mut next_timer_scan = tokio::time::Instant::now();
        loop {
            if tokio::time::Instant::now() >= next_timer_scan {
                next_timer_scan = tokio::time::Instant::now() + TIMER_SCAN;
                if let Err(e) = self.run_timers_once().await {
                    tracing::warn!(error = %format!("{e:#}"), "timer scan failed");
                }
            }
            let pause = match self.run_once().await {
                Ok(n) => {
                    failures = 0;
                    if n > 0 { Duration::ZERO } else { POLL }
                }
                Err(e) => {
                    failures = failures.saturating_add(1);
                    tracing::warn!(error = %format!("{e:#}"), "mail worker batch failed");
                    (POLL * 2u32.saturating_pow(failures.min(5))).min(MAX_ERROR_PAUSE)
                }
            };
            tokio::select! {
                biased;
                () = &mut shutdown => break,
                () = tokio::time::sleep(pause) => {}
            }
        }
        tracing::info!("mail worker stopped");
    }
}

/// A worker running in the background (see [`Worker::spawn`]).
#[derive(Debug)]
pub struct RunningWorker {
    stop: tokio::sync::oneshot::Sender<()>,
    handle: tokio::task::JoinHandle<()>,
}

impl RunningWorker {
    /// Asks the worker to stop after its current batch and waits for it (at most the
    /// send deadline plus a little: an unfinished send is safe, its lease runs out and
    /// another worker sends it again with the same Message-ID).
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
    async fn deliver(
        &self,
        row: outbox::Model,
        lease: DateTime<Utc>,
        orgs: &OrgDirectory,
    ) -> anyhow::Result<()> {
        // The recipient's preference, as it is now (account emails are always immediate).
        if let Some(user) = row.recipient_user_id {
            let recorded = match prefs::effective_mode(&self.db, user, &row.kind).await? {
                NotificationMode::Immediate => None,
                NotificationMode::Off => {
                    tracing::info!("not sent: switched off by the recipient");
                    Some(queue::mark_switched_off(&self.db, &row, lease).await?)
                }
                NotificationMode::Digest => {
                    tracing::info!("parked for the daily digest");
                    Some(queue::hold_for_digest(&self.db, &row, lease).await?)
                }
            };
            if let Some(recorded) = recorded {
                if !recorded {
                    tracing::warn!(
                        "the lease on this outbox row ran out before the outcome was recorded"
                    );
                }
                return Ok(());
            }
        }
        let outcome = self.attempt(&row, orgs).await;
        let now = store::now();
        // A digest's outcome is also that of the rows it carries: one transaction.
        let carried = if row.kind == prefs::DIGEST_KIND {
            super::digest::carried(&row)
        } else {
            Vec::new()
        };
        let txn = self.db.begin().await?;
        let recorded = match &outcome {
            Ok(()) => {
                tracing::info!("mail sent");
                let ok = queue::mark_sent(&txn, &row, lease, now).await?;
                if ok {
                    queue::settle_digested(&txn, &carried, Ok(now)).await?;
                }
                ok
            }
            Err(SendError::Permanent(e)) => {
                tracing::warn!(error = %e, "mail failed permanently; the row is dead");
                let ok = queue::mark_failed(&txn, &row, lease, e, None).await?;
                if ok {
                    queue::settle_digested(&txn, &carried, Err(e)).await?;
                }
                ok
            }
            Err(SendError::Transient(e)) if row.attempts >= self.max_attempts => {
                tracing::warn!(error = %e, "mail failed and is out of attempts; the row is dead");
                let ok = queue::mark_failed(&txn, &row, lease, e, None).await?;
                if ok {
                    queue::settle_digested(&txn, &carried, Err(e)).await?;
                }
                ok
            }
            Err(SendError::Transient(e)) => {
                let delay = backoff(self.retry_base, row.attempts);
                let at = now + chrono::Duration::from_std(delay)?;
                tracing::info!(error = %e, retry_in_seconds = delay.as_secs(), "mail failed temporarily; will retry");
                queue::mark_failed(&txn, &row, lease, e, Some(at)).await?
            }
        };
        txn.commit().await?;
        if !recorded {
            tracing::warn!("the lease on this outbox row ran out before the outcome was recorded");
        }
        Ok(())
    }

    async fn attempt(&self, row: &outbox::Model, orgs: &OrgDirectory) -> Result<(), SendError> {
        let ctx = compose::context(&self.db, row, orgs, &self.defs, &self.base_url)
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
        match tokio::time::timeout(self.send_deadline, self.transport.send(message)).await {
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
