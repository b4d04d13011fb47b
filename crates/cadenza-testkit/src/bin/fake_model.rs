//! `fake-model`: the test kit's fake model provider as a standalone server, for benchmarks and
//! manual tries.
//!
//! ```text
//! fake-model --listen 127.0.0.1:9100 [--latency-ms N] [--tool-rounds K [--tool NAME]]
//! ```
//!
//! Every request is answered after N ms. With `--tool-rounds K` the answer is a call to `NAME`
//! (default: the first tool the request offers) until the conversation holds K tool results,
//! then the text "done"; without it, always "ok". Requests are not recorded or logged, so memory
//! and speed stay flat however long it runs.

use std::process::ExitCode;
use std::time::Duration;

use cadenza_testkit::fake_model::{FakeModel, Reply, tool_rounds};

const USAGE: &str = "usage: fake-model --listen ADDR [--latency-ms N] [--tool-rounds K] [--tool NAME]";

struct Args {
    listen: String,
    latency: Duration,
    tool_rounds: Option<usize>,
    tool: Option<String>,
}

fn parse(mut argv: impl Iterator<Item = String>) -> Result<Args, String> {
    let mut args = Args { listen: "127.0.0.1:9100".to_owned(), latency: Duration::ZERO, tool_rounds: None, tool: None };
    while let Some(flag) = argv.next() {
        let mut value = || argv.next().ok_or_else(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--listen" => args.listen = value()?,
            "--latency-ms" => {
                let ms = value()?.parse::<u64>().map_err(|e| format!("--latency-ms: {e}"))?;
                args.latency = Duration::from_millis(ms);
            }
            "--tool-rounds" => args.tool_rounds = Some(value()?.parse().map_err(|e| format!("--tool-rounds: {e}"))?),
            "--tool" => args.tool = Some(value()?),
            "-h" | "--help" => return Err(USAGE.to_owned()),
            other => return Err(format!("unknown argument {other}\n{USAGE}")),
        }
    }
    Ok(args)
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = match parse(std::env::args().skip(1)) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    let model = match FakeModel::start_on(&args.listen).await {
        Ok(m) => m,
        Err(e) => {
            eprintln!("fake-model: cannot listen on {}: {e}", args.listen);
            return ExitCode::FAILURE;
        }
    };
    model.set_recording(false);
    let latency = args.latency;
    match args.tool_rounds {
        Some(rounds) => {
            let play = tool_rounds(rounds, args.tool);
            model.set_responder(move |req| play(req).delay(latency));
        }
        None => model.set_fallback(Reply::text("ok").delay(latency)),
    }
    println!("fake-model listening");
    println!("  openai:    {}", model.openai_base_url());
    println!("  anthropic: {}", model.anthropic_base_url());
    if tokio::signal::ctrl_c().await.is_err() {
        // No signal handling (odd environments): serve until killed.
        std::future::pending::<()>().await;
    }
    ExitCode::SUCCESS
}
