//! Faults: the database going away under load.
//!
//! PostgreSQL is reached through a TCP proxy in this test, and "stopping" it closes every
//! connection and refuses new ones for the outage — to the portal exactly what a stopped
//! server looks like, without stopping the server the other tests run on.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use secrecy::SecretString;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use zhigang::startup::Application;

use crate::db_test;
use crate::helpers::*;
use crate::web::{TestApp, client, settings_for};

/// A TCP proxy to PostgreSQL that can be switched off.
struct Switch {
    port: u16,
    down: Arc<AtomicBool>,
    cut: watch::Sender<u64>,
}

impl Switch {
    async fn start(upstream: String) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let down = Arc::new(AtomicBool::new(false));
        let (cut, _) = watch::channel(0u64);
        let (d, c) = (down.clone(), cut.clone());
        tokio::spawn(async move {
            loop {
                let Ok((mut inbound, _)) = listener.accept().await else {
                    return;
                };
                if d.load(Ordering::SeqCst) {
                    drop(inbound);
                    continue;
                }
                let upstream = upstream.clone();
                let mut cut = c.subscribe();
                tokio::spawn(async move {
                    let Ok(mut outbound) = TcpStream::connect(&upstream).await else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                        _ = cut.changed() => {}
                    }
                });
            }
        });
        Self { port, down, cut }
    }

    /// Closes every connection and refuses new ones.
    fn stop(&self) {
        self.down.store(true, Ordering::SeqCst);
        self.cut.send_modify(|n| *n += 1);
    }

    fn start_again(&self) {
        self.down.store(false, Ordering::SeqCst);
    }
}

async fn the_portal_answers_503_while_the_database_is_down_and_recovers(t: &TestDb) {
    if t.backend == Backend::Sqlite {
        eprintln!(
            "NOTE: faults::database_down runs on PostgreSQL only (SQLite is a file in the process)."
        );
        return;
    }
    // postgres://user@host:port/db → the same database through the switch.
    let url = reqwest::Url::parse(&t.url).expect("url");
    let upstream = format!(
        "{}:{}",
        url.host_str().expect("host"),
        url.port().unwrap_or(5432)
    );
    let switch = Switch::start(upstream).await;
    let mut via = url.clone();
    via.set_port(Some(switch.port)).expect("port");
    let mut settings = settings_for(t, "http://portal.test");
    settings.database_url = Some(SecretString::from(via.to_string()));
    let db = zhigang::db::connect(via.as_str(), 5)
        .await
        .expect("connect");
    let app = Application::with_database(&settings, db)
        .await
        .expect("build");
    let web = TestApp {
        base: format!("http://{}", app.addr()),
        client: client(),
    };
    tokio::spawn(app.run());
    assert_eq!(web.get("/login").await.status(), StatusCode::OK);
    assert_eq!(web.get("/readyz").await.status(), StatusCode::OK);

    // Down for the outage (ZHIGANG_TEST_OUTAGE_SECONDS, 30 in CI): every page answers
    // promptly, 503 with the friendly page, or 200 where it needs no database.
    let outage = std::env::var("ZHIGANG_TEST_OUTAGE_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(8u64);
    switch.stop();
    let until = Instant::now() + Duration::from_secs(outage);
    let mut answered = 0;
    let mut unavailable = 0;
    let mut slowest = Duration::ZERO;
    while Instant::now() < until {
        for path in ["/", "/login", "/register", "/readyz"] {
            let started = Instant::now();
            let resp = tokio::time::timeout(Duration::from_secs(15), web.get(path))
                .await
                .unwrap_or_else(|_| panic!("{path} hung while the database was down"));
            slowest = slowest.max(started.elapsed());
            let status = resp.status();
            answered += 1;
            let body = resp.text().await.unwrap_or_default();
            assert!(
                status == StatusCode::OK || status.is_server_error(),
                "{path}: {status}"
            );
            assert_ne!(
                status,
                StatusCode::INTERNAL_SERVER_ERROR,
                "{path}: a database outage is not an internal error: {body}"
            );
            if status == StatusCode::SERVICE_UNAVAILABLE {
                unavailable += 1;
                if path != "/readyz" {
                    assert!(
                        body.contains("<html") && body.contains("503"),
                        "{path}: the friendly page: {body}"
                    );
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(unavailable > 0, "the outage was noticed");
    eprintln!(
        "database down {outage} s: {answered} requests answered, {unavailable} with 503, \
         slowest {slowest:?}"
    );

    // Back: the portal recovers by itself, without a restart.
    switch.start_again();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let ready = web.get("/readyz").await.status() == StatusCode::OK;
        let login = web.get("/login").await.status() == StatusCode::OK;
        if ready && login {
            break;
        }
        assert!(Instant::now() < deadline, "did not recover within a minute");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}
db_test!(
    database_down,
    the_portal_answers_503_while_the_database_is_down_and_recovers
);
