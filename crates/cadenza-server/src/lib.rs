//! The `cadenza` binary's library half: configuration, start-up (master key, store, bootstrap)
//! and the serve loop, kept out of `main.rs` so tests drive exactly what the binary runs.

/// Many concurrent runs allocate and free small buffers on every step from every worker
/// thread; glibc's malloc showed among the top entries of a profile of 10,000 waiting runs, and
/// its per-thread arenas grow the heap. mimalloc is faster there and returns memory sooner.
#[cfg(feature = "mimalloc")]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

pub mod admin;
pub mod config;
pub mod maintenance;
pub mod runtime;
pub mod schedules;
pub mod startup;
pub mod tool_sets;
pub mod webhooks;

/// The process's log output, as `cadenza` sets it up: `RUST_LOG`, else the configured level, to
/// standard error. Benchmarks call it too, so they pay for logging what the server pays.
pub fn init_logging(config: &config::Config) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("RUST_LOG")
        .or_else(|_| tracing_subscriber::EnvFilter::try_new(&config.log_level))
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    match config.log_format {
        config::LogFormat::Json => builder.json().init(),
        config::LogFormat::Text => builder.init(),
    }
}
