//! Building and running the application: database, reference data, HTTP server.

use std::net::SocketAddr;

use poem::{
    EndpointExt, Route, Server, get, handler,
    http::StatusCode,
    listener::{Acceptor, Listener, TcpListener},
    web::Data,
};
use sea_orm::DatabaseConnection;

use crate::{db, seed, settings::Settings};

/// A built application: migrated database, bound listener.
pub struct Application {
    addr: SocketAddr,
    acceptor: poem::listener::TcpAcceptor,
    db: DatabaseConnection,
}

/// Connects, migrates and seeds the database named by the settings.
pub async fn prepare_database(settings: &Settings) -> anyhow::Result<DatabaseConnection> {
    let conn = db::connect(&settings.database_url(), settings.db_max_connections).await?;
    db::migrate(&conn).await?;
    seed::all(&conn).await?;
    Ok(conn)
}

impl Application {
    /// Prepares the database and binds the listener (port 0 picks a free port).
    pub async fn build(settings: &Settings) -> anyhow::Result<Self> {
        let db = prepare_database(settings).await?;
        if let Some((email, password)) = seed::first_admin(&db).await? {
            // Printed once to the operator's terminal, never logged.
            println!("Created the first system administrator: {email} / password: {password}");
            println!("Change this password after the first login.");
        }
        Self::with_database(settings, db).await
    }

    /// Binds the listener on an already prepared database.
    pub async fn with_database(
        settings: &Settings,
        db: DatabaseConnection,
    ) -> anyhow::Result<Self> {
        let acceptor = TcpListener::bind(settings.listen.as_str())
            .into_acceptor()
            .await?;
        let addr = acceptor
            .local_addr()
            .first()
            .and_then(|a| a.as_socket_addr().copied())
            .ok_or_else(|| anyhow::anyhow!("listener has no socket address"))?;
        Ok(Self { addr, acceptor, db })
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Serves until the process is stopped.
    pub async fn run(self) -> anyhow::Result<()> {
        let app = Route::new()
            .at("/healthz", get(healthz))
            .at("/readyz", get(readyz))
            .data(self.db);
        tracing::info!(addr = %self.addr, "serving");
        Server::new_with_acceptor(self.acceptor)
            .run_with_graceful_shutdown(app, shutdown_signal(), None)
            .await?;
        Ok(())
    }
}

/// Resolves on Ctrl-C or SIGTERM (what process managers send), for a graceful stop.
/// A handler that cannot be installed never resolves: the server then runs until killed,
/// rather than stopping at once.
async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = terminate => {}
    }
    tracing::info!("shutting down");
}

/// Liveness: the process answers.
#[handler]
fn healthz() -> &'static str {
    "ok"
}

/// Readiness: the database answers.
#[handler]
async fn readyz(db: Data<&DatabaseConnection>) -> (StatusCode, &'static str) {
    match db.ping().await {
        Ok(()) => (StatusCode::OK, "ready"),
        Err(e) => {
            tracing::warn!(error = %e, "database not ready");
            (StatusCode::SERVICE_UNAVAILABLE, "database unavailable")
        }
    }
}
