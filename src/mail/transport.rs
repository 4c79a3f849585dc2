//! Transport: lettre's pooled async SMTP client configured by one URL, or `.eml` files
//! when no SMTP server is configured (so the portal runs offline).

use std::path::{Path, PathBuf};
use std::time::Duration;

use lettre::transport::smtp::PoolConfig;
use lettre::{AsyncFileTransport, AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

/// How a send failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    /// The server refused for good (5xx), or the message cannot be sent as it is:
    /// retrying cannot help.
    #[error("{0}")]
    Permanent(String),
    /// A temporary refusal (4xx), a network or TLS failure, a timeout: try again later.
    #[error("{0}")]
    Transient(String),
}

/// Where messages go.
#[derive(Clone)]
pub enum Transport {
    /// An SMTP server.
    Smtp(AsyncSmtpTransport<Tokio1Executor>),
    /// `.eml` files in a directory.
    File(AsyncFileTransport<Tokio1Executor>, PathBuf),
}

impl std::fmt::Debug for Transport {
    // Never print the SMTP URL: it may carry the password.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Smtp(_) => f.write_str("Transport::Smtp"),
            Self::File(_, dir) => write!(f, "Transport::File({})", dir.display()),
        }
    }
}

impl Transport {
    /// An SMTP transport from a URL: `smtp://host:25` (plain),
    /// `smtp://user:pass@host:587?tls=required` (STARTTLS, or `tls=opportunistic`),
    /// `smtps://user:pass@host:465` (implicit TLS). Percent-encode special characters of
    /// the user and password.
    pub fn smtp(url: &str, timeout: Duration, pool_size: u32) -> anyhow::Result<Self> {
        // lettre's URL errors never contain the URL itself, so the password stays out of
        // the message.
        let builder = AsyncSmtpTransport::<Tokio1Executor>::from_url(url)
            .map_err(|e| anyhow::anyhow!("invalid smtp_url: {e}"))?;
        let transport = builder
            .timeout(Some(timeout))
            .pool_config(PoolConfig::new().max_size(pool_size))
            .build();
        Ok(Self::Smtp(transport))
    }

    /// A transport writing one `<uuid>.eml` per message under `dir` (created if needed).
    pub fn files(dir: &Path) -> anyhow::Result<Self> {
        std::fs::create_dir_all(dir).map_err(|e| {
            anyhow::anyhow!("cannot create the mail directory {}: {e}", dir.display())
        })?;
        Ok(Self::File(
            AsyncFileTransport::<Tokio1Executor>::new(dir),
            dir.to_path_buf(),
        ))
    }

    /// Sends one message.
    pub async fn send(&self, message: Message) -> Result<(), SendError> {
        match self {
            Self::Smtp(t) => t.send(message).await.map(|_| ()).map_err(|e| {
                // 5xx only is permanent; everything else (4xx, connection refused, TLS,
                // timeouts, a dropped connection) may succeed later.
                if e.is_permanent() {
                    SendError::Permanent(e.to_string())
                } else {
                    SendError::Transient(e.to_string())
                }
            }),
            Self::File(t, _) => t
                .send(message)
                .await
                .map(|_| ())
                .map_err(|e| SendError::Transient(format!("writing the .eml file failed: {e}"))),
        }
    }
}
