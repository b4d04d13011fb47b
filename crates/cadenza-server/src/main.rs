//! `cadenza`: the agent platform server. See README.md.

use std::path::PathBuf;
use std::process::ExitCode;

use cadenza_server::admin::{self, AdminCommand};
use cadenza_server::config::Config;
use cadenza_server::startup::{self, StartError};
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "cadenza", version, about = "Self-hostable agent platform server")]
struct Cli {
    /// TOML configuration file (see cadenza.example.toml). Environment variables override it.
    #[arg(long, global = true, value_name = "PATH")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the API and the workers in one process.
    Serve,
    /// Apply database migrations and exit.
    Migrate,
    /// Operator commands (dead jobs, …).
    #[command(subcommand)]
    Admin(AdminCommand),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let config = match Config::load(cli.config.as_deref(), &|k| std::env::var(k).ok()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("cadenza: {e}");
            return ExitCode::from(2);
        }
    };
    cadenza_server::init_logging(&config);
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("cadenza: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Serve => startup::serve(config).await,
            Command::Migrate => startup::open_store(&config).await.map(|s| {
                tracing::info!(backend = ?s.backend(), "migrations applied");
            }),
            Command::Admin(cmd) => {
                let store = startup::open_store(&config).await?;
                match admin::run(&store, cmd).await {
                    Ok(lines) => {
                        for l in lines {
                            println!("{l}");
                        }
                        Ok(())
                    }
                    Err(msg) => Err(StartError::Other(msg)),
                }
            }
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(StartError::Config(e)) => {
            eprintln!("cadenza: {e}");
            ExitCode::from(2)
        }
        Err(e) => {
            eprintln!("cadenza: {e}");
            ExitCode::FAILURE
        }
    }
}
