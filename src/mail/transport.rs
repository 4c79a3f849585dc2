//! Transport: SMTP connections configured by one URL and kept open between messages, or
//! `.eml` files when no SMTP server is configured (so the portal runs offline).
//!
//! Why not lettre's `AsyncSmtpTransport`: it opens its sockets without `TCP_NODELAY`, and
//! lettre writes a message's body and its final `<CRLF>.<CRLF>` in two writes. The second,
//! small write then waits (Nagle) for the server to acknowledge the first, and the server
//! delays that acknowledgement (delayed ACK, 40 ms on Linux) because it has nothing to say
//! before the final dot: every message cost ≈ 40 ms per connection, whatever the network.
//! lettre's executor is sealed, so the socket cannot be reached through that transport;
//! here the TCP connection is opened by us, with `TCP_NODELAY`, and handed to lettre's
//! public [`AsyncSmtpConnection::connect_with_transport`], which then does the SMTP
//! itself: greeting, EHLO, STARTTLS (rustls, upgraded in place on our socket), AUTH.
//!
//! The one exception is implicit TLS (`smtps://`): lettre's only public way to start TLS
//! before the greeting is [`AsyncSmtpConnection::connect_tokio1`], which opens its own
//! socket, so those connections still pay the delay.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use lettre::address::Envelope;
use lettre::transport::smtp::authentication::{Credentials, DEFAULT_MECHANISMS};
use lettre::transport::smtp::client::{AsyncSmtpConnection, Tls, TlsParameters};
use lettre::transport::smtp::extension::ClientId;
use lettre::transport::smtp::{SMTP_PORT, SUBMISSION_PORT, SUBMISSIONS_PORT};
use lettre::{AsyncFileTransport, AsyncTransport, Message, Tokio1Executor};

/// A connection left unused this long is closed rather than reused (lettre's pool default).
const IDLE_TIMEOUT: Duration = Duration::from_secs(60);

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

impl From<lettre::transport::smtp::Error> for SendError {
    fn from(e: lettre::transport::smtp::Error) -> Self {
        // 5xx only is permanent; everything else (4xx, connection refused, TLS, timeouts,
        // a dropped connection) may succeed later.
        if e.is_permanent() {
            Self::Permanent(e.to_string())
        } else {
            Self::Transient(e.to_string())
        }
    }
}

/// Where messages go.
pub enum Transport {
    /// An SMTP server.
    Smtp(SmtpPool),
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
    /// `smtps://user:pass@host:465` (implicit TLS); a path names the EHLO host
    /// (`smtp://host/mail.example.com`). The same forms, defaults and meanings as lettre's
    /// `AsyncSmtpTransport::from_url`. Percent-encode special characters of the user and
    /// password. `timeout` bounds the TCP connection; at most `pool_size` idle
    /// connections are kept.
    pub fn smtp(url: &str, timeout: Duration, pool_size: u32) -> anyhow::Result<Self> {
        // Neither the URL nor its password may appear in an error.
        let server =
            SmtpServer::from_url(url).map_err(|e| anyhow::anyhow!("invalid smtp_url: {e}"))?;
        Ok(Self::Smtp(SmtpPool {
            server,
            timeout,
            max_idle: usize::try_from(pool_size).unwrap_or(usize::MAX).max(1),
            idle: Mutex::new(Vec::new()),
        }))
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
            Self::Smtp(pool) => {
                pool.send_raw(message.envelope(), &message.formatted())
                    .await
            }
            Self::File(t, _) => t
                .send(message)
                .await
                .map(|_| ())
                .map_err(|e| SendError::Transient(format!("writing the .eml file failed: {e}"))),
        }
    }

    /// Sends bytes that are already a formatted message (the benchmark's raw baseline).
    pub async fn send_raw(&self, envelope: &Envelope, raw: &[u8]) -> Result<(), SendError> {
        match self {
            Self::Smtp(pool) => pool.send_raw(envelope, raw).await,
            Self::File(t, _) => t
                .send_raw(envelope, raw)
                .await
                .map(|_| ())
                .map_err(|e| SendError::Transient(format!("writing the .eml file failed: {e}"))),
        }
    }

    /// Closes SMTP connections unused for longer than `idle` (the worker calls this when
    /// the queue is empty, so idle sockets do not linger until the server drops them).
    pub async fn close_idle(&self, idle: Duration) {
        if let Self::Smtp(pool) = self {
            pool.close_idle(idle).await;
        }
    }
}

/// The server and how to talk to it, from `smtp_url`.
struct SmtpServer {
    host: String,
    port: u16,
    tls: Tls,
    hello: ClientId,
    credentials: Option<Credentials>,
}

impl SmtpServer {
    /// Parses the URL as lettre's `from_url` does (same schemes, `tls` values, default
    /// ports, EHLO name from the path, percent-decoded credentials when a password is
    /// given). Errors never contain the URL.
    fn from_url(url: &str) -> Result<Self, String> {
        let url = url::Url::parse(url).map_err(|e| format!("cannot parse the URL: {e}"))?;
        let host = url.host_str().ok_or("the host is missing")?.to_string();
        let tls_param = url
            .query_pairs()
            .find(|(k, _)| k == "tls")
            .map(|(_, v)| v.to_string());
        let params = || TlsParameters::new(host.clone()).map_err(|e| format!("TLS: {e}"));
        let (default_port, tls) = match (url.scheme(), tls_param.as_deref()) {
            ("smtp", None) => (SMTP_PORT, Tls::None),
            ("smtp", Some("required")) => (SUBMISSION_PORT, Tls::Required(params()?)),
            ("smtp", Some("opportunistic")) => (SUBMISSION_PORT, Tls::Opportunistic(params()?)),
            ("smtps", _) => (SUBMISSIONS_PORT, Tls::Wrapper(params()?)),
            (scheme, tls) => {
                return Err(format!(
                    "unknown scheme '{scheme}' or tls parameter '{tls:?}' (smtp://, \
                     smtp://…?tls=required, smtp://…?tls=opportunistic, smtps://)"
                ));
            }
        };
        let hello = if url.path().len() > 1 {
            ClientId::Domain(url.path().trim_matches('/').to_string())
        } else {
            ClientId::default()
        };
        let credentials = match url.password() {
            Some(password) => {
                let decode = |s: &str| {
                    percent_encoding::percent_decode_str(s)
                        .decode_utf8()
                        .map(|s| s.into_owned())
                        .map_err(|_| "the user or password is not valid percent-encoded UTF-8")
                };
                Some(Credentials::new(decode(url.username())?, decode(password)?))
            }
            None => None,
        };
        Ok(Self {
            port: url.port().unwrap_or(default_port),
            host,
            tls,
            hello,
            credentials,
        })
    }
}

/// Open SMTP connections to one server, reused from message to message. There is no
/// limit on how many are open at once: the worker's concurrency bounds that.
pub struct SmtpPool {
    server: SmtpServer,
    timeout: Duration,
    max_idle: usize,
    idle: Mutex<Vec<(AsyncSmtpConnection, Instant)>>,
}

impl SmtpPool {
    async fn send_raw(&self, envelope: &Envelope, raw: &[u8]) -> Result<(), SendError> {
        let mut conn = self.connection().await?;
        let result = conn.send(envelope, raw).await;
        // lettre closes the connection itself on an error reply or a network failure
        // (`has_broken`); a healthy one goes back for the next message.
        if !conn.has_broken() {
            self.park(conn).await;
        }
        result.map(|_| ()).map_err(SendError::from)
    }

    /// A parked connection that still answers NOOP (as lettre's pool checks), or a new one.
    async fn connection(&self) -> Result<AsyncSmtpConnection, SendError> {
        loop {
            let parked = self.idle.lock().ok().and_then(|mut idle| idle.pop());
            let Some((mut conn, since)) = parked else {
                return self.connect().await;
            };
            if since.elapsed() < IDLE_TIMEOUT && conn.test_connected().await {
                return Ok(conn);
            }
            conn.abort().await;
        }
    }

    async fn park(&self, mut conn: AsyncSmtpConnection) {
        let overflow = match self.idle.lock() {
            Ok(mut idle) if idle.len() < self.max_idle => {
                idle.push((conn, Instant::now()));
                return;
            }
            _ => true,
        };
        if overflow {
            conn.abort().await;
        }
    }

    async fn close_idle(&self, older_than: Duration) {
        let stale: Vec<AsyncSmtpConnection> = match self.idle.lock() {
            Ok(mut idle) => {
                let (stale, keep): (Vec<_>, Vec<_>) = idle
                    .drain(..)
                    .partition(|(_, since)| since.elapsed() >= older_than);
                *idle = keep;
                stale.into_iter().map(|(c, _)| c).collect()
            }
            Err(_) => Vec::new(),
        };
        for mut conn in stale {
            conn.abort().await;
        }
    }

    /// Connects, says EHLO, upgrades to TLS and authenticates as configured.
    async fn connect(&self) -> Result<AsyncSmtpConnection, SendError> {
        let s = &self.server;
        let mut conn = match &s.tls {
            Tls::Wrapper(params) => {
                AsyncSmtpConnection::connect_tokio1(
                    (s.host.as_str(), s.port),
                    Some(self.timeout),
                    &s.hello,
                    Some(params.clone()),
                    None,
                )
                .await?
            }
            _ => {
                let tcp = self.tcp().await?;
                let mut conn = tokio::time::timeout(
                    self.timeout,
                    AsyncSmtpConnection::connect_with_transport(Box::new(tcp), &s.hello),
                )
                .await
                .map_err(|_| self.timed_out("greeting"))??;
                match &s.tls {
                    Tls::Required(params) => conn.starttls(params.clone(), &s.hello).await?,
                    Tls::Opportunistic(params) if conn.can_starttls() => {
                        conn.starttls(params.clone(), &s.hello).await?;
                    }
                    _ => {}
                }
                conn
            }
        };
        if let Some(credentials) = &s.credentials {
            conn.auth(DEFAULT_MECHANISMS, credentials).await?;
        }
        Ok(conn)
    }

    /// A TCP connection to the first address of the host that answers, with
    /// `TCP_NODELAY` (see the module's documentation).
    async fn tcp(&self) -> Result<tokio::net::TcpStream, SendError> {
        let s = &self.server;
        let network = |e: std::io::Error| {
            SendError::Transient(format!(
                "network error: cannot connect to the SMTP server: {e}"
            ))
        };
        let addrs = tokio::net::lookup_host((s.host.as_str(), s.port))
            .await
            .map_err(network)?;
        let mut last = None;
        for addr in addrs {
            match tokio::time::timeout(self.timeout, tokio::net::TcpStream::connect(addr)).await {
                Ok(Ok(stream)) => {
                    stream.set_nodelay(true).map_err(network)?;
                    return Ok(stream);
                }
                Ok(Err(e)) => last = Some(network(e)),
                Err(_) => last = Some(self.timed_out("TCP connection")),
            }
        }
        Err(last.unwrap_or_else(|| {
            SendError::Transient("network error: the SMTP host resolved to no address".into())
        }))
    }

    fn timed_out(&self, what: &str) -> SendError {
        SendError::Transient(format!(
            "network error: the SMTP server's {what} did not come within {} s",
            self.timeout.as_secs()
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_parse_like_lettres_from_url() {
        let s = SmtpServer::from_url("smtp://127.0.0.1:2525").expect("plain");
        assert_eq!((s.host.as_str(), s.port), ("127.0.0.1", 2525));
        assert!(matches!(s.tls, Tls::None));
        assert!(s.credentials.is_none());

        let s = SmtpServer::from_url("smtp://mailer:s3cr%40t%20pw@mx.example.com?tls=required")
            .expect("starttls");
        assert_eq!((s.host.as_str(), s.port), ("mx.example.com", 587));
        assert!(matches!(s.tls, Tls::Required(_)));
        assert!(s.credentials == Some(Credentials::new("mailer".into(), "s3cr@t pw".into())));

        let s = SmtpServer::from_url("smtp://mx.example.com?tls=opportunistic").expect("opp");
        assert!(matches!(s.tls, Tls::Opportunistic(_)));
        assert_eq!(s.port, 587);

        let s =
            SmtpServer::from_url("smtps://u:p@mx.example.com/portal.example.com").expect("smtps");
        assert!(matches!(s.tls, Tls::Wrapper(_)));
        assert_eq!(s.port, 465);
        assert_eq!(s.hello, ClientId::Domain("portal.example.com".into()));

        // A user without a password is no credentials, as in lettre.
        assert!(
            SmtpServer::from_url("smtp://mailer@mx.example.com")
                .expect("user only")
                .credentials
                .is_none()
        );
    }

    #[test]
    fn bad_urls_are_refused_without_echoing_the_password() {
        for url in [
            "http://u:hunter2@mx.example.com",
            "smtp://u:hunter2@mx.example.com?tls=sometimes",
            "smtp://u:hunter2@",
            "not a url hunter2",
        ] {
            let e = Transport::smtp(url, Duration::from_secs(1), 1)
                .expect_err(url)
                .to_string();
            assert!(!e.contains("hunter2"), "{e}");
        }
    }
}
