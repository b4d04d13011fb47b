//! Start-up: master key, store, migrations, first-start bootstrap, serving with graceful
//! shutdown.

use std::io::Write;
use std::path::Path;
use std::sync::Arc;

use cadenza_api::{ApiConfig, AppState};
use cadenza_domain::SystemClock;
use cadenza_domain::api_keys::TOKEN_PREFIX;
use cadenza_domain::crypto::{Vault, new_token};
use cadenza_jobs::{Registry, Runner};
use cadenza_store::bootstrap::Bootstrap;
use cadenza_store::{SqliteSync, Store, StoreOptions};
use tokio_util::sync::CancellationToken;

use crate::config::{Config, SqliteSynchronous};

/// Why start-up failed. `Config` problems exit with status 2, the rest with 1.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    #[error("{0}")]
    Other(String),
}

fn other(e: impl std::fmt::Display) -> StartError {
    StartError::Other(e.to_string())
}

const MASTER_KEY_FILE: &str = "master.key";
const ADMIN_KEY_FILE: &str = "admin-api-key";

/// The master key: `CADENZA_SECRET_KEY`, or on SQLite a key generated once into the data dir.
/// PostgreSQL replicas must share one key, so there it has to be given.
pub fn resolve_vault(config: &Config) -> Result<Vault, StartError> {
    if let Some(k) = &config.secret_key {
        return Vault::from_base64(k).map_err(|_| {
            crate::config::ConfigError {
                key: "CADENZA_SECRET_KEY".into(),
                problem: "must be base64 of 32 bytes".into(),
            }
            .into()
        });
    }
    if config.is_postgres() {
        return Err(crate::config::ConfigError {
            key: "CADENZA_SECRET_KEY".into(),
            problem: "is required with PostgreSQL so every replica shares the key that seals secrets \
                      (generate one with: head -c 32 /dev/urandom | base64)"
                .into(),
        }
        .into());
    }
    let path = config.data_dir.join(MASTER_KEY_FILE);
    let b64 = match std::fs::read_to_string(&path) {
        Ok(text) => text.trim().to_string(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let key = Vault::generate_key_base64();
            write_private(&path, &key).map_err(|e| other(format!("cannot write {}: {e}", path.display())))?;
            tracing::info!(path = %path.display(), "generated a new master key");
            key
        }
        Err(e) => return Err(other(format!("cannot read {}: {e}", path.display()))),
    };
    Vault::from_base64(&b64).map_err(|_| other(format!("{} does not hold base64 of 32 bytes", path.display())))
}

/// Creates a file readable only by its owner.
fn write_private(path: &Path, content: &str) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(path)?;
    f.write_all(content.as_bytes())?;
    f.write_all(b"\n")?;
    f.sync_all()
}

/// Opens and migrates the configured store.
pub async fn open_store(config: &Config) -> Result<Store, StartError> {
    std::fs::create_dir_all(&config.data_dir)
        .map_err(|e| other(format!("cannot create data dir {}: {e}", config.data_dir.display())))?;
    let vault = resolve_vault(config)?;
    let mut opts = StoreOptions::new(config.effective_database_url());
    opts.max_connections = config.database_max_connections;
    opts.sqlite_sync = match config.sqlite_synchronous {
        SqliteSynchronous::Full => SqliteSync::Full,
        SqliteSynchronous::Normal => SqliteSync::Normal,
    };
    let store =
        Store::connect(&opts, Arc::new(SystemClock), vault).await.map_err(|e| other(format!("database: {e}")))?;
    store.migrate().await.map_err(|e| other(format!("migrations: {e}")))?;
    Ok(store)
}

/// First start on an empty database: create the account, the `default` workspace and the global
/// key. Returns the token when this call created it. Later starts create nothing.
pub async fn bootstrap(store: &Store, config: &Config) -> Result<Option<String>, StartError> {
    if store.bootstrapped_account().await.map_err(other)?.is_some() {
        return Ok(None);
    }
    let token = config.bootstrap_api_key.clone().unwrap_or_else(|| new_token(TOKEN_PREFIX));
    let plan = Bootstrap::new(store.now_ms(), &token);
    if !store.bootstrap(&plan).await.map_err(other)? {
        // Another replica won the race.
        return Ok(None);
    }
    let path = config.data_dir.join(ADMIN_KEY_FILE);
    write_private(&path, &token).map_err(|e| other(format!("cannot write {}: {e}", path.display())))?;
    tracing::info!(account.id = %plan.account.meta.id, path = %path.display(), "bootstrapped: account, default workspace, global API key");
    Ok(Some(token))
}

/// Everything `cadenza serve` runs, until SIGTERM/SIGINT: stop accepting, finish in-flight
/// requests, close the database, return.
pub async fn serve(config: Config) -> Result<(), StartError> {
    let store = open_store(&config).await?;
    if let Some(token) = bootstrap(&store, &config).await? {
        // The only time the token is shown. Printed on stdout (logs go to stderr).
        println!(
            "Global admin API key (shown once, also saved to {}):",
            config.data_dir.join(ADMIN_KEY_FILE).display()
        );
        println!("{token}");
    }
    let shutdown = shutdown_signal().map_err(other)?;
    let listener = tokio::net::TcpListener::bind(&config.listen)
        .await
        .map_err(|e| other(format!("cannot listen on {}: {e}", config.listen)))?;
    tracing::info!(listen = %config.listen, backend = ?store.backend(), "cadenza serving");
    let models = config.model_catalog(&|k| std::env::var(k).ok());
    for m in models.iter().filter(|m| m.unusable_reason.is_some()) {
        tracing::warn!(model = %m.name, reason = m.unusable_reason.as_deref().unwrap_or_default(), "model configured but unusable");
    }
    let blobs = cadenza_store::blobs::Blobs::open(&config.blob_config(&|k| std::env::var(k).ok()).map_err(other)?)
        .map_err(other)?;
    let uploads = cadenza_api::UploadSettings {
        blobs: Some(blobs.clone()),
        public_url: config.public_url(),
        url_lifetime: std::time::Duration::from_secs(config.uploads.url_lifetime_secs),
        max_size_bytes: i64::try_from(config.uploads.max_size_bytes).unwrap_or(i64::MAX),
        retention: std::time::Duration::from_secs(config.uploads.retention_secs),
    };
    let egress = cadenza_adapters::EgressPolicy {
        allow_loopback: config.egress.allow_loopback,
        allow_private: config.egress.allow_private,
    };
    let api = ApiConfig {
        egress: egress.clone(),
        body_limit_bytes: config.body_limit_bytes,
        request_timeout: config.request_timeout,
        models,
        uploads: uploads.clone(),
    };
    let state = AppState::new(store.clone(), api);
    let app = cadenza_api::router(state.clone());
    let grace = config.shutdown_grace;

    // Workers share the process with the API; every replica runs them.
    let stop_workers = CancellationToken::new();
    let registry = crate::maintenance::register(Registry::default(), blobs.clone());
    let registry =
        crate::tool_sets::register(registry, crate::tool_sets::SyncDeps::with_egress(egress.clone()).map_err(other)?);
    let deliveries = crate::webhooks::Settings { media: uploads.clone(), ..crate::webhooks::Settings::default() };
    let deliverer = crate::webhooks::Deliverer::new(&egress, deliveries).map_err(other)?;
    let registry = crate::webhooks::register(registry, deliverer);
    let runtime = crate::runtime::build(&config, egress, &|k| std::env::var(k).ok(), blobs).map_err(other)?;
    let registry = cadenza_runtime::register(registry, runtime);
    let registry = crate::schedules::register(registry, state);
    let queues = vec![
        crate::maintenance::queue(config.queue_concurrency("maintenance")),
        crate::tool_sets::queue(config.queue_concurrency("tool_sets")),
        cadenza_runtime::queue(config.queue_concurrency("runs")),
        crate::webhooks::queue(config.queue_concurrency("webhooks")),
        crate::schedules::queue(config.queue_concurrency("schedules")),
    ];
    let owner = format!("{}:{}", hostname(), std::process::id());
    let runner = Runner::new(store.clone(), registry, &owner, config.lease_config(), queues);
    tracing::info!(worker = runner.owner(), "job runner starting");
    let workers = runner.start(stop_workers.clone(), grace);
    let ticker = tokio::spawn(crate::maintenance::tick(store.clone(), stop_workers.clone()));

    axum::serve(listener, app).with_graceful_shutdown(shutdown).await.map_err(other)?;
    tracing::info!("requests drained; stopping workers");
    stop_workers.cancel();
    let _ = tokio::time::timeout(grace, async {
        let _ = workers.await;
        let _ = ticker.await;
    })
    .await;
    tracing::info!("closing the database");
    let _ = tokio::time::timeout(grace, store.close()).await;
    Ok(())
}

/// Resolves on SIGTERM or SIGINT. The handlers are installed when this is called, not when
/// the future is first polled, so a signal that arrives while the server is still starting is
/// a graceful shutdown rather than the default action (an abrupt kill).
fn shutdown_signal() -> std::io::Result<impl std::future::Future<Output = ()>> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    Ok(async move {
        tokio::select! {
            _ = term.recv() => {},
            _ = int.recv() => {},
        }
        tracing::info!("shutdown requested: no new connections, finishing in-flight requests");
    })
}

fn hostname() -> String {
    std::fs::read_to_string("/etc/hostname").map(|h| h.trim().to_string()).unwrap_or_else(|_| "cadenza".to_string())
}
