//! Configuration: defaults, then an optional TOML file, then `CADENZA_*` environment variables.
//! Every key is documented in `cadenza.example.toml` at the repository root.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

/// A configuration problem, naming the key. The binary prints it on one line and exits 2.
#[derive(Debug, thiserror::Error)]
#[error("configuration error: {key}: {problem}")]
pub struct ConfigError {
    pub key: String,
    pub problem: String,
}

fn err(key: &str, problem: impl Into<String>) -> ConfigError {
    ConfigError { key: key.to_string(), problem: problem.into() }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SqliteSynchronous {
    Full,
    Normal,
}

/// A model provider (used by the models API; see the example config).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProviderConfig {
    pub id: String,
    pub kind: String,
    pub base_url: String,
    #[serde(default)]
    pub api_key_env: String,
    /// Use the provider's streaming wire format (the answer is the same; long generations stay
    /// alive through proxies that cut idle connections).
    #[serde(default)]
    pub stream: bool,
    #[serde(default)]
    pub models: Vec<ModelConfig>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelConfig {
    pub id: String,
    #[serde(default)]
    pub family: String,
    #[serde(default)]
    pub max_input_tokens: u32,
    #[serde(default)]
    pub max_output_tokens: u32,
    /// US cents per million input tokens.
    #[serde(default)]
    pub input_price_per_million_tokens: u64,
    #[serde(default)]
    pub output_price_per_million_tokens: u64,
}

/// `[uploads]`: where uploaded files go and how their links behave.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct UploadsConfig {
    /// The base URL clients reach this server at (upload links start with it); empty means
    /// `http://<listen>`.
    pub public_url: String,
    pub url_lifetime_secs: u64,
    pub max_size_bytes: u64,
    /// How long a complete upload waits to be used before it expires.
    pub retention_secs: u64,
    /// `fs` (a directory) or `s3` (an S3-compatible bucket).
    pub store: String,
    /// For `fs`: the directory; empty means `<data_dir>/uploads`.
    pub dir: Option<PathBuf>,
    pub s3_bucket: String,
    pub s3_endpoint: String,
    pub s3_region: String,
    /// Names of the environment variables holding the S3 keys (never the keys themselves).
    pub s3_access_key_id_env: String,
    pub s3_secret_access_key_env: String,
}

impl Default for UploadsConfig {
    fn default() -> Self {
        Self {
            public_url: String::new(),
            url_lifetime_secs: 900,
            max_size_bytes: 32 * 1024 * 1024,
            retention_secs: 24 * 3600,
            store: "fs".into(),
            dir: None,
            s3_bucket: String::new(),
            s3_endpoint: String::new(),
            s3_region: "us-east-1".into(),
            s3_access_key_id_env: "AWS_ACCESS_KEY_ID".into(),
            s3_secret_access_key_env: "AWS_SECRET_ACCESS_KEY".into(),
        }
    }
}

/// The file's shape. Unknown keys are an error, so a typo never silently does nothing.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    listen: Option<String>,
    data_dir: Option<PathBuf>,
    database_url: Option<String>,
    database_max_connections: Option<u32>,
    sqlite_synchronous: Option<SqliteSynchronous>,
    log_format: Option<LogFormat>,
    log_level: Option<String>,
    request_timeout_secs: Option<u64>,
    body_limit_bytes: Option<usize>,
    shutdown_grace_secs: Option<u64>,
    job_lease_secs: Option<u64>,
    #[serde(default)]
    providers: Vec<ProviderConfig>,
    uploads: Option<UploadsConfig>,
    #[serde(default)]
    queues: std::collections::BTreeMap<String, QueueSettings>,
    egress: Option<EgressConfig>,
}

/// One job queue's settings in this process (`[queues.<name>]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QueueSettings {
    /// Jobs of the queue this process runs at once.
    pub concurrency: usize,
}

/// Bounds of `job_lease_secs`.
pub const MIN_JOB_LEASE: Duration = Duration::from_secs(3);
pub const MAX_JOB_LEASE: Duration = Duration::from_secs(3600);

/// The queues every replica works, with their default concurrency.
pub const QUEUES: &[(&str, usize)] =
    &[("maintenance", 1), ("tool_sets", 4), ("runs", 256), ("webhooks", 64), ("schedules", 8)];

/// Where outbound requests may go (`[egress]`). Link-local and cloud-metadata addresses are
/// always refused; loopback and private ranges are allowed unless turned off.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EgressConfig {
    #[serde(default = "yes")]
    pub allow_loopback: bool,
    #[serde(default = "yes")]
    pub allow_private: bool,
}

fn yes() -> bool {
    true
}

impl Default for EgressConfig {
    fn default() -> Self {
        Self { allow_loopback: true, allow_private: true }
    }
}

/// The effective configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub listen: String,
    pub data_dir: PathBuf,
    /// `None` means the SQLite file in the data directory.
    pub database_url: Option<String>,
    pub database_max_connections: u32,
    pub sqlite_synchronous: SqliteSynchronous,
    pub log_format: LogFormat,
    pub log_level: String,
    pub request_timeout: Duration,
    pub body_limit_bytes: usize,
    pub shutdown_grace: Duration,
    /// How long this process's worker lease lasts without a heartbeat: after a crash, the
    /// longest its jobs wait before another worker (a restart included) takes them over.
    pub job_lease: Duration,
    pub providers: Vec<ProviderConfig>,
    pub uploads: UploadsConfig,
    /// Concurrency per queue name (every queue of [`QUEUES`] present).
    pub queues: std::collections::BTreeMap<String, QueueSettings>,
    pub egress: EgressConfig,
    /// Base64 of the 32-byte master key (`CADENZA_SECRET_KEY`); environment only.
    pub secret_key: Option<String>,
    /// A token to use for the global key on first start (`CADENZA_BOOTSTRAP_API_KEY`).
    pub bootstrap_api_key: Option<String>,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:8080".to_string(),
            data_dir: PathBuf::from("./cadenza-data"),
            database_url: None,
            database_max_connections: 8,
            sqlite_synchronous: SqliteSynchronous::Full,
            log_format: LogFormat::Text,
            log_level: "info".to_string(),
            request_timeout: Duration::from_secs(30),
            body_limit_bytes: 4 * 1024 * 1024,
            shutdown_grace: Duration::from_secs(20),
            job_lease: Duration::from_secs(30),
            providers: Vec::new(),
            uploads: UploadsConfig::default(),
            queues: QUEUES.iter().map(|(q, c)| (q.to_string(), QueueSettings { concurrency: *c })).collect(),
            egress: EgressConfig::default(),
            secret_key: None,
            bootstrap_api_key: None,
        }
    }
}

impl Config {
    /// Where upload bytes go, with S3 keys read from the environment variables the
    /// configuration names (`env` injected for tests).
    pub fn blob_config(
        &self,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<cadenza_store::blobs::BlobConfig, ConfigError> {
        let u = &self.uploads;
        if u.store == "s3" {
            let key = |name: &str| {
                env(name).ok_or_else(|| err("uploads.store", format!("s3 needs the environment variable {name}")))
            };
            return Ok(cadenza_store::blobs::BlobConfig::S3 {
                bucket: u.s3_bucket.clone(),
                endpoint: u.s3_endpoint.clone(),
                region: u.s3_region.clone(),
                access_key_id: key(&u.s3_access_key_id_env)?,
                secret_access_key: key(&u.s3_secret_access_key_env)?,
            });
        }
        Ok(cadenza_store::blobs::BlobConfig::Local {
            dir: u.dir.clone().unwrap_or_else(|| self.data_dir.join("uploads")),
        })
    }

    /// The base of upload links.
    pub fn public_url(&self) -> String {
        if self.uploads.public_url.is_empty() {
            format!("http://{}", self.listen)
        } else {
            self.uploads.public_url.trim_end_matches('/').to_string()
        }
    }

    /// Loads the layers. `env` is injected so tests need not touch the process environment.
    pub fn load(file: Option<&Path>, env: &dyn Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let mut c = Config::default();
        if let Some(path) = file {
            let text = std::fs::read_to_string(path)
                .map_err(|e| err("--config", format!("cannot read {}: {e}", path.display())))?;
            let f: FileConfig = toml::from_str(&text).map_err(|e| file_error(&e))?;
            c.apply_file(f);
        }
        c.apply_env(env)?;
        c.validate()?;
        Ok(c)
    }

    fn apply_file(&mut self, f: FileConfig) {
        if let Some(v) = f.listen {
            self.listen = v;
        }
        if let Some(v) = f.data_dir {
            self.data_dir = v;
        }
        if f.database_url.is_some() {
            self.database_url = f.database_url;
        }
        if let Some(v) = f.database_max_connections {
            self.database_max_connections = v;
        }
        if let Some(v) = f.sqlite_synchronous {
            self.sqlite_synchronous = v;
        }
        if let Some(v) = f.log_format {
            self.log_format = v;
        }
        if let Some(v) = f.log_level {
            self.log_level = v;
        }
        if let Some(v) = f.request_timeout_secs {
            self.request_timeout = Duration::from_secs(v);
        }
        if let Some(v) = f.body_limit_bytes {
            self.body_limit_bytes = v;
        }
        if let Some(v) = f.shutdown_grace_secs {
            self.shutdown_grace = Duration::from_secs(v);
        }
        if let Some(v) = f.job_lease_secs {
            self.job_lease = Duration::from_secs(v);
        }
        self.providers = f.providers;
        if let Some(u) = f.uploads {
            self.uploads = u;
        }
        self.queues.extend(f.queues);
        if let Some(e) = f.egress {
            self.egress = e;
        }
    }

    /// This process's worker lease and how often it is renewed (three beats per lease, so one
    /// slow or failed beat does not lose it).
    pub fn lease_config(&self) -> cadenza_jobs::LeaseConfig {
        cadenza_jobs::LeaseConfig { lease: self.job_lease, heartbeat: self.job_lease / 3 }
    }

    /// This process's concurrency for `queue`.
    pub fn queue_concurrency(&self, queue: &str) -> usize {
        self.queues.get(queue).map(|q| q.concurrency).unwrap_or(1).max(1)
    }

    fn apply_env(&mut self, env: &dyn Fn(&str) -> Option<String>) -> Result<(), ConfigError> {
        let get = |k: &str| env(k).filter(|v| !v.is_empty());
        if let Some(v) = get("CADENZA_LISTEN") {
            self.listen = v;
        }
        if let Some(v) = get("CADENZA_DATA_DIR") {
            self.data_dir = PathBuf::from(v);
        }
        if let Some(v) = get("CADENZA_DATABASE_URL") {
            self.database_url = Some(v);
        }
        if let Some(v) = get("CADENZA_DATABASE_MAX_CONNECTIONS") {
            self.database_max_connections = parse_num("CADENZA_DATABASE_MAX_CONNECTIONS", &v)?;
        }
        if let Some(v) = get("CADENZA_SQLITE_SYNCHRONOUS") {
            self.sqlite_synchronous = match v.to_ascii_lowercase().as_str() {
                "full" => SqliteSynchronous::Full,
                "normal" => SqliteSynchronous::Normal,
                _ => return Err(err("CADENZA_SQLITE_SYNCHRONOUS", "must be \"full\" or \"normal\"")),
            };
        }
        if let Some(v) = get("CADENZA_LOG_FORMAT") {
            self.log_format = match v.to_ascii_lowercase().as_str() {
                "text" => LogFormat::Text,
                "json" => LogFormat::Json,
                _ => return Err(err("CADENZA_LOG_FORMAT", "must be \"text\" or \"json\"")),
            };
        }
        if let Some(v) = get("CADENZA_LOG_LEVEL") {
            self.log_level = v;
        }
        if let Some(v) = get("CADENZA_REQUEST_TIMEOUT_SECS") {
            self.request_timeout = Duration::from_secs(parse_num("CADENZA_REQUEST_TIMEOUT_SECS", &v)?);
        }
        if let Some(v) = get("CADENZA_BODY_LIMIT_BYTES") {
            self.body_limit_bytes = parse_num("CADENZA_BODY_LIMIT_BYTES", &v)?;
        }
        if let Some(v) = get("CADENZA_SHUTDOWN_GRACE_SECS") {
            self.shutdown_grace = Duration::from_secs(parse_num("CADENZA_SHUTDOWN_GRACE_SECS", &v)?);
        }
        if let Some(v) = get("CADENZA_JOB_LEASE_SECS") {
            self.job_lease = Duration::from_secs(parse_num("CADENZA_JOB_LEASE_SECS", &v)?);
        }
        if let Some(v) = get("CADENZA_UPLOADS_PUBLIC_URL") {
            self.uploads.public_url = v;
        }
        if let Some(v) = get("CADENZA_UPLOADS_MAX_SIZE_BYTES") {
            self.uploads.max_size_bytes = parse_num("CADENZA_UPLOADS_MAX_SIZE_BYTES", &v)?;
        }
        if let Some(v) = get("CADENZA_UPLOADS_STORE") {
            self.uploads.store = v;
        }
        if let Some(v) = get("CADENZA_UPLOADS_DIR") {
            self.uploads.dir = Some(PathBuf::from(v));
        }
        if let Some(v) = get("CADENZA_UPLOADS_S3_BUCKET") {
            self.uploads.s3_bucket = v;
        }
        if let Some(v) = get("CADENZA_UPLOADS_S3_ENDPOINT") {
            self.uploads.s3_endpoint = v;
        }
        for (queue, _) in QUEUES {
            let key = format!("CADENZA_QUEUES_{}_CONCURRENCY", queue.to_uppercase());
            if let Some(v) = get(&key) {
                self.queues.insert(queue.to_string(), QueueSettings { concurrency: parse_num(&key, &v)? });
            }
        }
        for (key, field) in [
            ("CADENZA_EGRESS_ALLOW_LOOPBACK", &mut self.egress.allow_loopback),
            ("CADENZA_EGRESS_ALLOW_PRIVATE", &mut self.egress.allow_private),
        ] {
            if let Some(v) = get(key) {
                *field = match v.as_str() {
                    "true" | "1" => true,
                    "false" | "0" => false,
                    _ => return Err(err(key, "must be true or false")),
                };
            }
        }
        self.secret_key = get("CADENZA_SECRET_KEY");
        self.bootstrap_api_key = get("CADENZA_BOOTSTRAP_API_KEY");
        Ok(())
    }

    fn validate(&self) -> Result<(), ConfigError> {
        self.listen
            .parse::<std::net::SocketAddr>()
            .map_err(|_| err("listen", format!("{:?} is not a host:port socket address", self.listen)))?;
        if let Some(url) = &self.database_url
            && cadenza_store::Backend::of_url(url).is_none()
        {
            return Err(err("database_url", "must start with postgres://, postgresql:// or sqlite:"));
        }
        if self.database_max_connections == 0 {
            return Err(err("database_max_connections", "must be at least 1"));
        }
        for (queue, settings) in &self.queues {
            if !QUEUES.iter().any(|(q, _)| q == queue) {
                let known: Vec<&str> = QUEUES.iter().map(|(q, _)| *q).collect();
                return Err(err(&format!("queues.{queue}"), format!("is not a queue (known: {})", known.join(", "))));
            }
            if settings.concurrency == 0 {
                return Err(err(&format!("queues.{queue}.concurrency"), "must be at least 1"));
            }
        }
        if self.request_timeout.is_zero() {
            return Err(err("request_timeout_secs", "must be at least 1"));
        }
        if self.body_limit_bytes < 1024 {
            return Err(err("body_limit_bytes", "must be at least 1024"));
        }
        // The heartbeat renews the lease every third of it, and a handler refuses to start a
        // side effect with less than a second of lease left: a shorter lease leaves no margin
        // for one slow beat.
        if !(MIN_JOB_LEASE..=MAX_JOB_LEASE).contains(&self.job_lease) {
            return Err(err(
                "job_lease_secs",
                format!("must be between {} and {}", MIN_JOB_LEASE.as_secs(), MAX_JOB_LEASE.as_secs()),
            ));
        }
        if let Some(k) = &self.secret_key {
            cadenza_domain::crypto::Vault::from_base64(k)
                .map_err(|_| err("CADENZA_SECRET_KEY", "must be standard base64 of exactly 32 bytes"))?;
        }
        if let Some(t) = &self.bootstrap_api_key
            && t.len() < cadenza_domain::api_keys::MIN_BOOTSTRAP_TOKEN_LEN
        {
            return Err(err(
                "CADENZA_BOOTSTRAP_API_KEY",
                format!("must be at least {} characters", cadenza_domain::api_keys::MIN_BOOTSTRAP_TOKEN_LEN),
            ));
        }
        let u = &self.uploads;
        if !(u.public_url.is_empty() || u.public_url.starts_with("http://") || u.public_url.starts_with("https://")) {
            return Err(err("uploads.public_url", "must be an http:// or https:// URL"));
        }
        if u.url_lifetime_secs == 0 {
            return Err(err("uploads.url_lifetime_secs", "must be at least 1"));
        }
        if u.retention_secs == 0 {
            return Err(err("uploads.retention_secs", "must be at least 1"));
        }
        if u.max_size_bytes == 0 || u.max_size_bytes > 1 << 40 {
            return Err(err("uploads.max_size_bytes", "must be between 1 and 2^40"));
        }
        match u.store.as_str() {
            "fs" => {}
            "s3" if u.s3_bucket.is_empty() => {
                return Err(err("uploads.s3_bucket", "is required when uploads.store = \"s3\""));
            }
            "s3" => {}
            _ => return Err(err("uploads.store", "must be \"fs\" or \"s3\"")),
        }
        let mut seen = std::collections::BTreeSet::new();
        for (i, p) in self.providers.iter().enumerate() {
            let key = format!("providers[{i}]");
            if p.id.is_empty() || p.id.contains('/') {
                return Err(err(&format!("{key}.id"), "must be non-empty and contain no '/'"));
            }
            if !seen.insert(p.id.clone()) {
                return Err(err(&format!("{key}.id"), format!("duplicate provider id {:?}", p.id)));
            }
            if p.kind != "openai" && p.kind != "anthropic" {
                return Err(err(&format!("{key}.kind"), "must be \"openai\" or \"anthropic\""));
            }
            if !(p.base_url.starts_with("http://") || p.base_url.starts_with("https://")) {
                return Err(err(&format!("{key}.base_url"), "must be an http:// or https:// URL"));
            }
            let mut ids = std::collections::BTreeSet::new();
            for (j, m) in p.models.iter().enumerate() {
                if m.id.is_empty() || m.id.contains(char::is_whitespace) || !ids.insert(m.id.clone()) {
                    return Err(err(&format!("{key}.models[{j}].id"), "must be non-empty, without spaces, and unique"));
                }
            }
        }
        Ok(())
    }

    /// The database URL in effect: the configured one, or SQLite in the data directory.
    pub fn effective_database_url(&self) -> String {
        self.database_url.clone().unwrap_or_else(|| format!("sqlite://{}", self.data_dir.join("cadenza.db").display()))
    }

    /// The model catalog every workspace sees. A provider whose key variable is unset keeps its
    /// models in the catalog, marked unusable, so nobody wonders where they went.
    pub fn model_catalog(&self, env: &dyn Fn(&str) -> Option<String>) -> Vec<cadenza_domain::models::CatalogModel> {
        let mut out = Vec::new();
        for p in &self.providers {
            let missing = !p.api_key_env.is_empty() && env(&p.api_key_env).is_none_or(|v| v.is_empty());
            let reason = missing.then(|| format!("the provider's API key variable {} is not set", p.api_key_env));
            for m in &p.models {
                out.push(cadenza_domain::models::CatalogModel {
                    name: format!("{}/{}", p.id, m.id),
                    provider: p.id.clone(),
                    provider_kind: p.kind.clone(),
                    model: m.id.clone(),
                    family: if m.family.is_empty() { m.id.clone() } else { m.family.clone() },
                    max_input_tokens: m.max_input_tokens,
                    max_output_tokens: m.max_output_tokens,
                    input_price: m.input_price_per_million_tokens,
                    output_price: m.output_price_per_million_tokens,
                    unusable_reason: reason.clone(),
                });
            }
        }
        out
    }

    pub fn is_postgres(&self) -> bool {
        matches!(cadenza_store::Backend::of_url(&self.effective_database_url()), Some(cadenza_store::Backend::Postgres))
    }
}

fn parse_num<T: std::str::FromStr>(key: &str, v: &str) -> Result<T, ConfigError> {
    v.trim().parse().map_err(|_| err(key, format!("{v:?} is not a valid non-negative number")))
}

/// Names the offending key of a TOML error when toml tells us where it is.
fn file_error(e: &toml::de::Error) -> ConfigError {
    let msg = e.message().trim().to_string();
    let key = msg
        .strip_prefix("unknown field `")
        .and_then(|rest| rest.split('`').next())
        .map(str::to_string)
        .unwrap_or_else(|| "config file".to_string());
    let line = e.span().map(|s| format!(" (at byte {})", s.start)).unwrap_or_default();
    err(&key, format!("{msg}{line}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_env(_: &str) -> Option<String> {
        None
    }

    #[test]
    fn defaults_then_file_then_env() {
        let dir = std::env::temp_dir().join(format!("cadenza-cfg-{}", std::process::id()));
        std::fs::create_dir_all(&dir).ok();
        let path = dir.join("c.toml");
        std::fs::write(&path, "listen = \"127.0.0.1:9000\"\ndata_dir = \"/tmp/x\"\n").ok();
        let c = Config::load(Some(&path), &no_env).expect("loads");
        assert_eq!(c.listen, "127.0.0.1:9000");
        let env = |k: &str| (k == "CADENZA_LISTEN").then(|| "0.0.0.0:7000".to_string());
        let c = Config::load(Some(&path), &env).expect("loads");
        assert_eq!(c.listen, "0.0.0.0:7000");
        assert_eq!(c.data_dir, PathBuf::from("/tmp/x"));
        assert_eq!(Config::load(None, &no_env).expect("defaults").listen, "127.0.0.1:8080");
    }

    #[test]
    fn bad_values_name_the_key() {
        let dir = std::env::temp_dir().join(format!("cadenza-cfg-bad-{}", std::process::id()));
        std::fs::create_dir_all(&dir).ok();
        let path = dir.join("c.toml");
        std::fs::write(&path, "lissten = \"x\"\n").ok();
        let e = Config::load(Some(&path), &no_env).expect_err("unknown key");
        assert_eq!(e.key, "lissten");
        let env = |k: &str| (k == "CADENZA_BODY_LIMIT_BYTES").then(|| "lots".to_string());
        assert_eq!(Config::load(None, &env).expect_err("bad number").key, "CADENZA_BODY_LIMIT_BYTES");
        let env = |k: &str| (k == "CADENZA_LISTEN").then(|| "nowhere".to_string());
        assert_eq!(Config::load(None, &env).expect_err("bad listen").key, "listen");
        let env = |k: &str| (k == "CADENZA_BOOTSTRAP_API_KEY").then(|| "short".to_string());
        assert_eq!(Config::load(None, &env).expect_err("short token").key, "CADENZA_BOOTSTRAP_API_KEY");
    }
}

#[cfg(test)]
mod example_tests {
    use super::*;

    /// The shipped example must load as-is, so every documented key is a real key.
    #[test]
    fn example_config_loads() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../cadenza.example.toml");
        let c = Config::load(Some(&path), &|_| None).expect("example config loads");
        assert_eq!(c.providers.len(), 2);
        assert_eq!(c.listen, "127.0.0.1:8080");
        let env = |k: &str| (k == "OPENAI_API_KEY").then(|| "sk-test".to_string());
        let catalog = c.model_catalog(&env);
        assert_eq!(catalog.len(), 2);
        assert_eq!(catalog[0].name, "openai/gpt-4.1-mini");
        assert_eq!(catalog[0].unusable_reason, None);
        assert!(catalog[1].unusable_reason.as_deref().is_some_and(|r| r.contains("ANTHROPIC_API_KEY")));
    }

    #[test]
    fn uploads_settings_and_refusals() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../cadenza.example.toml");
        let c = Config::load(Some(&path), &|_| None).expect("example config loads");
        assert_eq!(c.public_url(), "http://127.0.0.1:8080");
        assert!(matches!(c.blob_config(&|_| None), Ok(cadenza_store::blobs::BlobConfig::Local { .. })));
        for (var, value, key) in [
            ("CADENZA_UPLOADS_STORE", "ftp", "uploads.store"),
            ("CADENZA_UPLOADS_STORE", "s3", "uploads.s3_bucket"),
            ("CADENZA_UPLOADS_PUBLIC_URL", "cadenza.example.com", "uploads.public_url"),
            ("CADENZA_UPLOADS_MAX_SIZE_BYTES", "0", "uploads.max_size_bytes"),
        ] {
            let env = |k: &str| (k == var).then(|| value.to_string());
            assert_eq!(Config::load(None, &env).expect_err("refused").key, key, "{var}={value}");
        }
        // S3 keys come from the variables the configuration names; missing ones are named.
        let env = |k: &str| match k {
            "CADENZA_UPLOADS_STORE" => Some("s3".to_string()),
            "CADENZA_UPLOADS_S3_BUCKET" => Some("files".to_string()),
            _ => None,
        };
        let c = Config::load(None, &env).expect("s3 config");
        let missing = c.blob_config(&|_| None).expect_err("no keys");
        assert!(missing.problem.contains("AWS_ACCESS_KEY_ID"));
    }

    #[test]
    fn queues_and_egress_from_file_and_env() {
        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().join("c.toml");
        std::fs::write(&path, "[queues.tool_sets]\nconcurrency = 9\n[egress]\nallow_private = false\n").expect("write");
        let env = |k: &str| (k == "CADENZA_QUEUES_MAINTENANCE_CONCURRENCY").then(|| "3".to_string());
        let c = Config::load(Some(&path), &env).expect("load");
        assert_eq!((c.queue_concurrency("tool_sets"), c.queue_concurrency("maintenance")), (9, 3));
        assert_eq!(c.egress, EgressConfig { allow_loopback: true, allow_private: false });
        std::fs::write(&path, "[queues.tool_set]\nconcurrency = 2\n").expect("write");
        assert_eq!(Config::load(Some(&path), &|_| None).expect_err("typo").key, "queues.tool_set");
        let env = |k: &str| (k == "CADENZA_EGRESS_ALLOW_LOOPBACK").then(|| "nope".to_string());
        assert_eq!(Config::load(None, &env).expect_err("bad bool").key, "CADENZA_EGRESS_ALLOW_LOOPBACK");
    }

    #[test]
    fn job_lease_from_file_and_env_within_bounds() {
        let c = Config::load(None, &|_| None).expect("defaults");
        assert_eq!(c.lease_config().lease, Duration::from_secs(30));
        assert_eq!(c.lease_config().heartbeat, Duration::from_secs(10));
        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().join("c.toml");
        std::fs::write(&path, "job_lease_secs = 12\n").expect("write");
        let c = Config::load(Some(&path), &|_| None).expect("load");
        assert_eq!(
            (c.lease_config().lease, c.lease_config().heartbeat),
            (Duration::from_secs(12), Duration::from_secs(4))
        );
        let env = |k: &str| (k == "CADENZA_JOB_LEASE_SECS").then(|| "3".to_string());
        assert_eq!(Config::load(Some(&path), &env).expect("env wins").job_lease, Duration::from_secs(3));
        for bad in ["2", "0", "3601"] {
            let env = |k: &str| (k == "CADENZA_JOB_LEASE_SECS").then(|| bad.to_string());
            assert_eq!(Config::load(None, &env).expect_err("out of bounds").key, "job_lease_secs", "{bad}");
        }
        let env = |k: &str| (k == "CADENZA_JOB_LEASE_SECS").then(|| "soon".to_string());
        assert_eq!(Config::load(None, &env).expect_err("not a number").key, "CADENZA_JOB_LEASE_SECS");
    }
}
