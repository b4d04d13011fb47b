//! The objective runtime: the durable step machine behind every objective.
//!
//! One `objectives.run` job per objective drives it step after step while its worker holds the
//! lease. A step reads the objective and its log, does one thing outside any transaction (a
//! model call, or the batch of tool calls the model asked for), then commits what happened in
//! one unit of work fenced by the lease: the step's events with the next sequence numbers, the
//! objective's state and usage, and any job it enqueues. A worker that dies mid-step loses only
//! the uncommitted step; the next claim of the job resumes from the last committed event.
//!
//! Before an HTTP tool is called its `toolCalled` event is committed, so a call whose result
//! was committed is never made again, and one that was in flight when a worker died is retried
//! (with the same `Idempotency-Key`) and says so in a `notice`. An objective that waits (for a
//! continue, an approval or a tool's content) ends its run: it holds no job, lease or task.

mod conversation;
mod run;
mod tools;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use cadenza_adapters::EgressPolicy;
use cadenza_domain::jobs::{JobSpec, RunObjective};
use cadenza_jobs::{JobContext, QueueConfig, Registry};
use cadenza_llm::ChatModel;
use cadenza_store::blobs::Blobs;
use cadenza_store::jobs::OnClaim;

/// The configured models, by catalog name (`<provider id>/<model id>`).
#[derive(Clone, Default)]
pub struct Models {
    by_name: HashMap<String, (Arc<dyn ChatModel>, String)>,
}

impl Models {
    /// Adds every model of one provider: `provider_id/model` runs `model` on `client`.
    pub fn add_provider(&mut self, provider_id: &str, client: Arc<dyn ChatModel>, models: &[String]) {
        for m in models {
            self.by_name.insert(format!("{provider_id}/{m}"), (client.clone(), m.clone()));
        }
    }

    /// The client and the provider's own model id for a catalog name.
    pub fn get(&self, name: &str) -> Option<(Arc<dyn ChatModel>, &str)> {
        self.by_name.get(name).map(|(c, m)| (c.clone(), m.as_str()))
    }
}

/// Limits of one run.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Steps one claim of the job takes before it hands the objective back to the queue
    /// (uncharged), so one long objective cannot keep a slot forever.
    pub steps_per_claim: u32,
    /// Per HTTP tool call.
    pub tool_timeout: Duration,
    /// The most of a tool's response body kept (and shown to the model).
    pub tool_response_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self { steps_per_claim: 64, tool_timeout: Duration::from_secs(30), tool_response_bytes: 256 * 1024 }
    }
}

/// What the runtime reaches the outside world with.
#[derive(Clone)]
pub struct Runtime {
    pub models: Models,
    /// For HTTP tools: built with the egress policy's resolver and redirect checks.
    pub http: reqwest::Client,
    pub egress: EgressPolicy,
    pub limits: Limits,
    /// Where media of tool results are kept (read to send them to the model).
    pub blobs: Option<Blobs>,
}

impl Runtime {
    pub fn new(models: Models, egress: EgressPolicy, limits: Limits) -> anyhow::Result<Self> {
        let http = egress
            .apply(reqwest::Client::builder(), cadenza_adapters::egress::Redirects::SameOrigin { max: 5 })
            .build()?;
        Ok(Self { models, http, egress, limits, blobs: None })
    }

    /// Media of tool results are read from `blobs` (without, the model is told what it missed).
    pub fn with_blobs(mut self, blobs: Blobs) -> Self {
        self.blobs = Some(blobs);
        self
    }
}

/// Registers the run handler, and marks a run's PENDING objective RUNNING in the unit that
/// claims it: one statement for a whole batch of claims (a run's loop is active from its
/// claim), where a unit of its own would cost every run a commit before its first model call
/// (10,000 of them when 10,000 objectives start at once).
pub fn register(registry: Registry, runtime: Runtime) -> Registry {
    let rt = Arc::new(runtime);
    let mark: OnClaim = Arc::new(|tx, jobs| {
        Box::pin(async move {
            let runs: Vec<RunObjective> = jobs
                .iter()
                .filter(|j| j.kind == RunObjective::KIND)
                .filter_map(|j| serde_json::from_value(j.payload.clone()).ok())
                .collect();
            let ids: Vec<(&str, &str)> =
                runs.iter().map(|r| (r.workspace_id.as_str(), r.objective_id.as_str())).collect();
            tx.mark_objectives_running(&ids).await.map(|_| ())
        })
    });
    registry.on_claim(RunObjective::QUEUE, mark).handle(move |ctx: JobContext, job: RunObjective| {
        let rt = rt.clone();
        async move { run::drive(&ctx, &job, &rt).await }
    })
}

/// The `runs` queue. Runs spend almost all their time waiting on models, so many can share a
/// process: each is an async task, not a thread.
pub fn queue(concurrency: usize) -> QueueConfig {
    QueueConfig::new(RunObjective::QUEUE, concurrency)
}
