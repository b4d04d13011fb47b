//! `cadenza admin …`: operator commands that work on the database directly.

use cadenza_domain::jobs::JobState;
use cadenza_domain::page::ListParams;
use cadenza_domain::time::format_ms;
use cadenza_store::Store;
use clap::Subcommand;
use serde_json::json;

#[derive(Debug, Subcommand)]
pub enum AdminCommand {
    /// Inspect and retry jobs of the durable queue.
    #[command(subcommand)]
    Jobs(JobsCommand),
}

#[derive(Debug, Subcommand)]
pub enum JobsCommand {
    /// List jobs (default: dead ones), one JSON object per line, oldest first.
    List {
        /// queued, running, succeeded, dead, or all.
        #[arg(long, default_value = "dead")]
        state: String,
        #[arg(long, default_value_t = 50)]
        limit: i64,
        /// Continue after a previous page (the `next_cursor` it printed).
        #[arg(long)]
        cursor: Option<String>,
    },
    /// Put a dead job back in the queue with fresh attempts.
    Retry { id: String },
}

/// Runs an admin command; returns the lines to print, or a message for stderr.
pub async fn run(store: &Store, cmd: AdminCommand) -> Result<Vec<String>, String> {
    match cmd {
        AdminCommand::Jobs(JobsCommand::List { state, limit, cursor }) => {
            let state = match state.as_str() {
                "all" => None,
                s => Some(
                    JobState::parse(s)
                        .ok_or_else(|| format!("unknown state {s:?}: use queued, running, succeeded, dead or all"))?,
                ),
            };
            let params = ListParams::parse(cursor.as_deref(), Some(limit), None, None, None).map_err(|e| e.message)?;
            let page = store.list_jobs(state, &params).await.map_err(|e| e.to_string())?;
            let mut lines: Vec<String> = page
                .items
                .iter()
                .map(|j| {
                    json!({
                        "id": j.id, "kind": j.kind, "queue": j.queue, "state": j.state.as_str(),
                        "attempts": j.attempts, "maxAttempts": j.max_attempts, "runAt": format_ms(j.run_at),
                        "lastError": j.last_error, "createdAt": format_ms(j.created_at), "payload": j.payload,
                    })
                    .to_string()
                })
                .collect();
            if !page.next_cursor.is_empty() {
                lines.push(json!({ "next_cursor": page.next_cursor }).to_string());
            }
            Ok(lines)
        }
        AdminCommand::Jobs(JobsCommand::Retry { id }) => {
            if store.retry_dead(&id).await.map_err(|e| e.to_string())? {
                Ok(vec![format!("job {id} queued again")])
            } else {
                Err(format!("no dead job {id}"))
            }
        }
    }
}
