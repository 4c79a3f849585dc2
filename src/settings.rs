//! Typed settings: defaults < optional TOML file < `ZHIGANG_*` environment variables.
//! Secrets are [`SecretString`]s, whose `Debug` is redacted, so they never reach a log line.

use std::path::{Path, PathBuf};

use figment::{
    Figment,
    providers::{Env, Format, Serialized, Toml},
};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};

/// All settings of a zhigang process.
#[derive(Debug, Clone, Deserialize)]
pub struct Settings {
    /// Database URL (`sqlite://…` or `postgres://…`); SQLite under `data_dir` when unset.
    pub database_url: Option<SecretString>,
    /// Address to listen on.
    pub listen: String,
    /// Where the SQLite file, attachments and mail files live.
    pub data_dir: PathBuf,
    /// The public URL of the portal, for links in email.
    pub base_url: String,
    /// SMTP server (`smtp://`, `smtps://user:pass@host:465`); `.eml` files when unset.
    pub smtp_url: Option<SecretString>,
    /// Largest database pool.
    pub db_max_connections: u32,
    /// Sender address of the portal's email.
    pub mail_from: String,
    /// Attempts before an outbox row is given up as dead.
    pub mail_max_attempts: u32,
    /// First retry delay in seconds; doubles with each attempt (plus jitter).
    pub mail_retry_base_seconds: u64,
    /// How long a worker holds a claimed outbox row (longer than the SMTP timeout).
    pub mail_lease_seconds: u64,
    /// SMTP command timeout in seconds.
    pub smtp_timeout_seconds: u64,
    /// Whether `serve` runs the mail and timer worker in-process.
    pub run_worker: bool,
    /// Working days overdue before a task escalates to the org admin.
    pub escalate_after_working_days: u32,
    /// Local hour (Asia/Shanghai, 0–23) at which the daily digest of new tasks is sent.
    pub digest_hour: u32,
    /// Working days past a step's promised date before the admin pages list it as stuck.
    pub stuck_after_working_days: u32,
    /// A session ends after this many minutes without a request.
    pub session_idle_minutes: u64,
    /// A session ends this many hours after login, whatever the activity.
    pub session_absolute_hours: u64,
    /// Largest attachment in MiB.
    pub attachment_max_mb: usize,
    /// Where attachment bytes live: the local file system or S3-compatible storage.
    #[serde(flatten)]
    pub store: StoreSettings,
    /// API requests per token per minute, per instance (429 with `Retry-After` beyond).
    pub api_requests_per_minute: u32,
    /// Behind a reverse proxy: take the client's address from the last `X-Forwarded-For`
    /// hop (the one the proxy appended) instead of the connection's peer.
    pub trust_forwarded_for: bool,
    /// Failed logins on one account before it is blocked for a while (30 s, doubling).
    pub login_account_free_failures: u32,
    /// Failed logins from one client address before it is blocked for a while.
    pub login_address_free_failures: u32,
}

/// Where attachment bytes live. Flattened into [`Settings`], so the keys (and the
/// `ZHIGANG_*` variables) are the field names themselves.
#[derive(Debug, Clone, Deserialize)]
pub struct StoreSettings {
    /// `file` (under `data_dir/attachments`) or `s3://bucket` / `s3://bucket/prefix`.
    pub attachment_store: String,
    /// S3 endpoint for MinIO, Ceph and other S3-compatible servers; AWS when unset.
    pub s3_endpoint: Option<String>,
    /// S3 region (`us-east-1` when unset and `AWS_REGION` is not set either).
    pub s3_region: Option<String>,
    /// Allow plain-HTTP endpoints (tests only).
    pub s3_allow_http: bool,
    /// S3 access key id; the standard `AWS_ACCESS_KEY_ID` when unset.
    pub s3_access_key_id: Option<String>,
    /// S3 secret access key; the standard `AWS_SECRET_ACCESS_KEY` when unset.
    pub s3_secret_access_key: Option<SecretString>,
}

impl Default for StoreSettings {
    /// The local file system under `data_dir`.
    fn default() -> Self {
        Self {
            attachment_store: "file".into(),
            s3_endpoint: None,
            s3_region: None,
            s3_allow_http: false,
            s3_access_key_id: None,
            s3_secret_access_key: None,
        }
    }
}

#[derive(Serialize)]
struct Defaults {
    listen: &'static str,
    data_dir: &'static str,
    base_url: &'static str,
    db_max_connections: u32,
    mail_from: &'static str,
    mail_max_attempts: u32,
    mail_retry_base_seconds: u64,
    mail_lease_seconds: u64,
    smtp_timeout_seconds: u64,
    run_worker: bool,
    escalate_after_working_days: u32,
    digest_hour: u32,
    stuck_after_working_days: u32,
    session_idle_minutes: u64,
    session_absolute_hours: u64,
    attachment_max_mb: usize,
    attachment_store: &'static str,
    s3_allow_http: bool,
    api_requests_per_minute: u32,
    trust_forwarded_for: bool,
    login_account_free_failures: u32,
    login_address_free_failures: u32,
}

impl Settings {
    /// Loads settings: defaults, then `file` (or `zhigang.toml` if it exists), then the
    /// environment variables `ZHIGANG_*`.
    pub fn load(file: Option<&Path>) -> anyhow::Result<Self> {
        let login = crate::accounts::LoginLimits::default();
        let defaults = Defaults {
            listen: "127.0.0.1:8080",
            data_dir: "./data",
            base_url: "http://127.0.0.1:8080",
            db_max_connections: 10,
            mail_from: "智港 <noreply@zhigang.localhost>",
            mail_max_attempts: 8,
            mail_retry_base_seconds: 30,
            mail_lease_seconds: 120,
            smtp_timeout_seconds: 30,
            run_worker: true,
            escalate_after_working_days: 3,
            digest_hour: 8,
            stuck_after_working_days: 3,
            session_idle_minutes: 30,
            session_absolute_hours: 12,
            attachment_max_mb: 20,
            attachment_store: "file",
            s3_allow_http: false,
            api_requests_per_minute: 1200,
            trust_forwarded_for: false,
            login_account_free_failures: login.account_free_failures,
            login_address_free_failures: login.address_free_failures,
        };
        let mut figment = Figment::from(Serialized::defaults(defaults));
        match file {
            Some(f) => figment = figment.merge(Toml::file_exact(f)),
            None => figment = figment.merge(Toml::file("zhigang.toml")),
        }
        let settings: Settings = figment.merge(Env::prefixed("ZHIGANG_")).extract()?;
        Ok(settings)
    }

    /// The login throttle's limits.
    pub fn login_limits(&self) -> crate::accounts::LoginLimits {
        crate::accounts::LoginLimits {
            account_free_failures: self.login_account_free_failures,
            address_free_failures: self.login_address_free_failures,
        }
    }

    /// The database URL to connect to.
    pub fn database_url(&self) -> String {
        match &self.database_url {
            Some(url) => url.expose_secret().to_string(),
            None => format!(
                "sqlite://{}?mode=rwc",
                self.data_dir.join("zhigang.db").display()
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_redacted_in_debug_output() -> anyhow::Result<()> {
        let s = Settings {
            database_url: Some(SecretString::from("postgres://u:hunter2@db/x")),
            listen: "127.0.0.1:0".into(),
            data_dir: "./data".into(),
            base_url: "http://x".into(),
            smtp_url: Some(SecretString::from("smtps://u:pw-secret@mail:465")),
            db_max_connections: 1,
            mail_from: "x <x@example.test>".into(),
            mail_max_attempts: 1,
            mail_retry_base_seconds: 1,
            mail_lease_seconds: 1,
            smtp_timeout_seconds: 1,
            run_worker: false,
            escalate_after_working_days: 1,
            digest_hour: 8,
            stuck_after_working_days: 1,
            session_idle_minutes: 30,
            session_absolute_hours: 12,
            attachment_max_mb: 1,
            store: StoreSettings {
                attachment_store: "s3://bucket".into(),
                s3_access_key_id: Some("AKIDEXAMPLE".into()),
                s3_secret_access_key: Some(SecretString::from("s3-secret-key")),
                ..StoreSettings::default()
            },
            api_requests_per_minute: 1200,
            trust_forwarded_for: false,
            login_account_free_failures: 5,
            login_address_free_failures: 20,
        };
        let debug = format!("{s:?}");
        assert!(
            !debug.contains("hunter2")
                && !debug.contains("pw-secret")
                && !debug.contains("s3-secret-key"),
            "{debug}"
        );
        Ok(())
    }

    #[test]
    fn the_login_throttle_limits_default_to_five_and_twenty_and_can_be_raised() -> anyhow::Result<()>
    {
        let dir = tempfile::tempdir()?;
        let defaults = Settings::load(Some(Path::new("/dev/null")))?;
        assert_eq!(
            defaults.login_limits(),
            crate::accounts::LoginLimits {
                account_free_failures: 5,
                address_free_failures: 20,
            }
        );
        let file = dir.path().join("zhigang.toml");
        std::fs::write(
            &file,
            "login_account_free_failures = 100000\nlogin_address_free_failures = 200000\n",
        )?;
        let raised = Settings::load(Some(&file))?;
        assert_eq!(raised.login_limits().account_free_failures, 100_000);
        assert_eq!(raised.login_limits().address_free_failures, 200_000);
        Ok(())
    }

    #[test]
    fn attachments_go_to_the_file_system_unless_an_s3_store_is_configured() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let defaults = Settings::load(Some(Path::new("/dev/null")))?;
        assert_eq!(defaults.store.attachment_store, "file");
        assert!(!defaults.store.s3_allow_http);
        assert!(defaults.store.s3_endpoint.is_none());
        let file = dir.path().join("zhigang.toml");
        std::fs::write(
            &file,
            "attachment_store = \"s3://city-docs/zhigang\"\n\
             s3_endpoint = \"http://minio:9000\"\n\
             s3_region = \"cn-east-1\"\n\
             s3_allow_http = true\n\
             s3_access_key_id = \"AKID\"\n\
             s3_secret_access_key = \"shh\"\n\
             attachment_max_mb = 7\n",
        )?;
        let s3 = Settings::load(Some(&file))?;
        assert_eq!(s3.store.attachment_store, "s3://city-docs/zhigang");
        assert_eq!(s3.store.s3_endpoint.as_deref(), Some("http://minio:9000"));
        assert_eq!(s3.store.s3_region.as_deref(), Some("cn-east-1"));
        assert!(s3.store.s3_allow_http);
        assert_eq!(s3.store.s3_access_key_id.as_deref(), Some("AKID"));
        assert_eq!(
            s3.store
                .s3_secret_access_key
                .as_ref()
                .map(|k| k.expose_secret().to_string())
                .as_deref(),
            Some("shh")
        );
        assert_eq!(s3.attachment_max_mb, 7, "the other settings still load");
        Ok(())
    }
}
