//! Building and running the application: database, reference data, HTTP server.

use std::net::SocketAddr;

use poem::{
    Server,
    listener::{Acceptor, Listener, TcpListener},
};
use sea_orm::DatabaseConnection;

use crate::{db, seed, settings::Settings};

/// A built application: migrated database, bound listener.
pub struct Application {
    addr: SocketAddr,
    acceptor: poem::listener::TcpAcceptor,
    endpoint: poem::endpoint::BoxEndpoint<'static, poem::Response>,
    /// The mail worker to run alongside the server (`run_worker`).
    worker: Option<crate::mail::Worker>,
}

/// Connects, migrates and seeds the database named by the settings.
pub async fn prepare_database(settings: &Settings) -> anyhow::Result<DatabaseConnection> {
    Ok(prepare(settings, false).await?.0)
}

/// Connects, then under the start-up lock (instances starting together take turns)
/// migrates, seeds and, when asked, creates the first administrator (returned so the
/// caller can print the password once).
async fn prepare(
    settings: &Settings,
    first_admin: bool,
) -> anyhow::Result<(DatabaseConnection, Option<(String, String)>)> {
    let url = settings.database_url();
    let conn = db::connect(&url, settings.db_max_connections).await?;
    let admin = db::with_startup_lock(&url, async {
        db::migrate(&conn).await?;
        seed::all(&conn).await?;
        if first_admin {
            seed::first_admin(&conn).await
        } else {
            Ok(None)
        }
    })
    .await?;
    Ok((conn, admin))
}

impl Application {
    /// Prepares the database and binds the listener (port 0 picks a free port).
    pub async fn build(settings: &Settings) -> anyhow::Result<Self> {
        // A setting that cannot work stops the start before the database is touched (no
        // migration run by an instance that could not serve).
        crate::attachments::AttachmentStore::from_settings(settings)?;
        let (db, admin) = prepare(settings, true).await?;
        if let Some((email, password)) = admin {
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
        let endpoint = crate::web::app(db.clone(), settings)?;
        let worker = if settings.run_worker {
            Some(crate::mail::Worker::new(db.clone(), settings)?)
        } else {
            None
        };
        Ok(Self {
            addr,
            acceptor,
            endpoint,
            worker,
        })
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Serves until the process is stopped.
    pub async fn run(self) -> anyhow::Result<()> {
        let worker = self.worker.map(crate::mail::Worker::spawn);
        tracing::info!(addr = %self.addr, "serving");
        Server::new_with_acceptor(self.acceptor)
            .run_with_graceful_shutdown(self.endpoint, shutdown_signal(), None)
            .await?;
        if let Some(w) = worker {
            w.stop().await;
        }
        Ok(())
    }
}

/// Resolves on Ctrl-C or SIGTERM (what process managers send), for a graceful stop.
/// A handler that cannot be installed never resolves: the server then runs until killed,
/// rather than stopping at once.
pub async fn shutdown_signal() {
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
