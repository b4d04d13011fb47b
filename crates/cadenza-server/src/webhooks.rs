//! The webhook delivery job (CONTRACT §13): works one objective's outbox messages in sequence
//! order, each POSTed with its Standard Webhooks headers, every attempt logged. A failed attempt
//! is retried on the schedule of `cadenza_domain::webhooks::RETRY_DELAYS_MS`, and until it is
//! delivered or out of attempts the objective's later messages wait behind it, so a receiver
//! sees each objective's events in order. Objectives are delivered in parallel.
//!
//! One slow or dead receiver must not starve the others: each receiver (by origin) gets at
//! most [`Settings::per_endpoint`] requests in flight from this process, and a circuit breaker
//! that opens after [`Settings::breaker_failures`] failures in a row parks that receiver's
//! deliveries for [`Settings::breaker_open`] (no attempt is spent while it is open) before one
//! probe is let through. A delivery that finds its receiver busy or open yields its queue slot.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use cadenza_adapters::EgressPolicy;
use cadenza_adapters::egress::Redirects;
use cadenza_api::media::MediaLinks;
use cadenza_api::routes::objectives::{Profiles, webhook_payload};
use cadenza_domain::jobs::{DeliverWebhooks, JobSpec};
use cadenza_domain::objectives::{Event, Objective};
use cadenza_domain::webhooks::{Delivery, DeliveryStatus, OutboxMessage, retry_at, signature_header};
use cadenza_domain::{IdKind, IdRef, Labels, Meta};
use cadenza_jobs::{JobContext, Outcome, QueueConfig, Registry};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// How deliveries behave; the defaults are what `cadenza serve` uses.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Per attempt: connecting, sending, and the receiver's answer.
    pub timeout: Duration,
    pub per_endpoint: usize,
    pub breaker_failures: u32,
    pub breaker_open: Duration,
    /// How long a delivery waits for a free slot at a busy receiver before it gives its queue
    /// slot back (and tries again [`BUSY_RETRY_MS`] later).
    pub busy_wait: Duration,
    /// Messages one claim of an objective's job delivers before it gives the slot back.
    pub per_claim: usize,
    /// Where media links in payloads point and how long they work (the server's upload
    /// settings).
    pub media: cadenza_api::UploadSettings,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(15),
            per_endpoint: 16,
            breaker_failures: 5,
            breaker_open: Duration::from_secs(30),
            busy_wait: Duration::from_secs(1),
            per_claim: 256,
            media: cadenza_api::UploadSettings::default(),
        }
    }
}

/// After a receiver was too busy: when its delivery is tried again.
const BUSY_RETRY_MS: i64 = 100;

/// The most of a receiver's answer kept in the log (as part of `errorMessage` on failures).
const EXCERPT_BYTES: usize = 256;

pub struct Deliverer {
    http: reqwest::Client,
    settings: Settings,
    endpoints: Endpoints,
}

impl Deliverer {
    pub fn new(egress: &EgressPolicy, settings: Settings) -> anyhow::Result<Self> {
        let http = egress.apply(reqwest::Client::builder(), Redirects::None).timeout(settings.timeout).build()?;
        Ok(Self { http, endpoints: Endpoints::default(), settings })
    }
}

pub fn register(registry: Registry, deliverer: Deliverer) -> Registry {
    let d = Arc::new(deliverer);
    registry.handle(move |ctx: JobContext, job: DeliverWebhooks| {
        let d = d.clone();
        async move { deliver(&ctx, &job, &d).await }
    })
}

pub fn queue(concurrency: usize) -> QueueConfig {
    QueueConfig::new(DeliverWebhooks::QUEUE, concurrency)
}

/// Messages read from the outbox at a time.
const BATCH: usize = 64;

async fn deliver(ctx: &JobContext, job: &DeliverWebhooks, d: &Deliverer) -> anyhow::Result<Outcome> {
    let reads = ctx.reads();
    let mut claim = Claim::default();
    let mut left = d.settings.per_claim;
    while left > 0 {
        let want = BATCH.min(left);
        // Every read and unit takes its turn at the database (as runs do; see `work_turn`), and
        // gives it back before anything that waits on the outside: a receiver's slot, its answer.
        let turn = reads.work_turn().await;
        let batch = reads.pending_messages(&job.objective_id, i64::try_from(want).unwrap_or(i64::MAX)).await?;
        let exhausted = batch.len() < want;
        claim.events(ctx, &batch).await?;
        drop(turn);
        let n = batch.len();
        for (i, mut m) in batch.into_iter().enumerate() {
            left -= 1;
            if ctx.shutting_down() {
                return Ok(Outcome::Yield { at_ms: ctx.now_ms() });
            }
            let now = ctx.now_ms();
            if m.next_attempt_at > now {
                return Ok(Outcome::Yield { at_ms: m.next_attempt_at });
            }
            let turn = reads.work_turn().await;
            if claim.target(ctx, &m).await? != Some(m.url.as_str()) {
                disable(ctx, &mut m).await?;
                continue;
            }
            drop(turn);
            let origin = origin_of(&m.url);
            let permit = match d.endpoints.admit(&origin, &d.settings).await {
                Admission::Go(permit) => permit,
                Admission::Busy => return Ok(Outcome::Yield { at_ms: ctx.now_ms() + BUSY_RETRY_MS }),
                Admission::Open { for_ms } => return Ok(Outcome::Yield { at_ms: now + for_ms }),
            };
            let turn = reads.work_turn().await;
            let body = match &m.payload {
                Some(p) => p.clone(),
                None => match claim.payload(ctx, &m, &d.settings.media).await? {
                    Some(p) => p,
                    None => {
                        // The event is gone (its objective was deleted): nothing to send.
                        disable(ctx, &mut m).await?;
                        continue;
                    }
                },
            };
            let secrets = claim.secrets(ctx, &m.account_id, now).await?;
            drop(turn);
            let attempt = post(d, &m, &body, secrets).await;
            d.endpoints.report(&origin, attempt.ok, &d.settings);
            drop(permit);

            m.attempts += 1;
            m.payload = Some(body);
            let failed_at = ctx.now_ms();
            m.status = if attempt.ok {
                DeliveryStatus::Completed
            } else {
                match retry_at(failed_at, m.attempts, rand::random::<f64>()) {
                    Some(at) => {
                        m.next_attempt_at = at;
                        DeliveryStatus::Pending
                    }
                    None => DeliveryStatus::Failed,
                }
            };
            let log = logged(&m, failed_at, attempt);
            let _turn = reads.work_turn().await;
            let mut tx = ctx.begin().await?;
            tx.record_attempt(&m, Some(&log)).await?;
            // When this attempt is the claim's last, the job's outcome commits with it. Done
            // when the outbox is empty: a message written meanwhile marked the job to run
            // again (its key is RunAgain).
            let outcome = if m.status == DeliveryStatus::Pending {
                Some(Outcome::Yield { at_ms: m.next_attempt_at })
            } else {
                (exhausted && i + 1 == n).then_some(Outcome::Done)
            };
            match outcome {
                Some(outcome) => {
                    ctx.commit_finishing(tx, &outcome).await?;
                    return Ok(outcome);
                }
                None => tx.commit().await?,
            }
        }
        if exhausted {
            return Ok(Outcome::Done);
        }
    }
    Ok(Outcome::Yield { at_ms: ctx.now_ms() })
}

/// What one claim reads once and uses for every message it delivers: the agent's current URL,
/// the objective, the batch's events, the profiles they name, the account's signing secrets.
/// A claim lasts seconds at most, so a URL removed or a key rotated meanwhile takes effect at
/// the next claim (a rotation's old key stays valid for its grace period anyway).
/// Every message of a claim is of one objective, hence of one agent.
#[derive(Default)]
struct Claim {
    target: Option<Option<String>>,
    objective: Option<Option<Objective>>,
    events: HashMap<i64, Event>,
    profiles: Profiles,
    secrets: Option<Vec<String>>,
}

impl Claim {
    async fn target(&mut self, ctx: &JobContext, m: &OutboxMessage) -> anyhow::Result<Option<&str>> {
        if self.target.is_none() {
            self.target = Some(ctx.reads().webhook_target(&m.workspace_id, &m.agent_id).await?);
        }
        Ok(self.target.as_ref().and_then(|u| u.as_deref()))
    }

    /// Reads the events of the batch's messages that have no stored body yet, in one range read.
    async fn events(&mut self, ctx: &JobContext, batch: &[OutboxMessage]) -> anyhow::Result<()> {
        let seqs = batch.iter().filter(|m| m.payload.is_none()).map(|m| m.seq);
        let (Some(first), Some(last)) = (seqs.clone().min(), seqs.max()) else { return Ok(()) };
        let objective = &batch[0].objective_id;
        for e in ctx.reads().events_after(objective, first - 1, last - first + 1).await? {
            self.events.insert(e.seq, e);
        }
        Ok(())
    }

    /// The message's body, rendered from the committed event; `None` when the event is gone.
    async fn payload(
        &mut self,
        ctx: &JobContext,
        m: &OutboxMessage,
        media: &cadenza_api::UploadSettings,
    ) -> anyhow::Result<Option<String>> {
        let reads = ctx.reads();
        if self.objective.is_none() {
            let o = reads.get_objective(&m.workspace_id, &IdRef::Id(m.objective_id.clone())).await?;
            self.objective = Some(o);
        }
        let (Some(Some(o)), Some(e)) = (&self.objective, self.events.get(&m.seq)) else { return Ok(None) };
        let links = MediaLinks::new(reads, media);
        let body = webhook_payload(reads, o, e, &mut self.profiles, &links)
            .await
            .map_err(|e| anyhow::anyhow!("rendering the webhook payload: {}", e.error.message))?;
        Ok(Some(body.to_string()))
    }

    async fn secrets(&mut self, ctx: &JobContext, account_id: &str, now: i64) -> anyhow::Result<&[String]> {
        if self.secrets.is_none() {
            self.secrets = Some(ctx.reads().webhook_signing_secrets(account_id, now).await?);
        }
        Ok(self.secrets.as_deref().unwrap_or_default())
    }
}

/// The message will not be sent: its agent no longer sends events there (the URL changed or
/// was removed, or the agent was archived).
async fn disable(ctx: &JobContext, m: &mut OutboxMessage) -> anyhow::Result<()> {
    m.status = DeliveryStatus::Disabled;
    let log = logged(
        m,
        ctx.now_ms(),
        Attempt {
            ok: false,
            status: 0,
            latency_ms: 0,
            length: 0,
            headers: BTreeMap::new(),
            error: "not sent: the agent no longer sends its events to this URL".into(),
        },
    );
    let mut tx = ctx.begin().await?;
    tx.record_attempt(m, Some(&log)).await?;
    tx.commit().await?;
    Ok(())
}

struct Attempt {
    ok: bool,
    status: u16,
    latency_ms: i64,
    length: i64,
    headers: BTreeMap<String, String>,
    error: String,
}

async fn post(d: &Deliverer, m: &OutboxMessage, body: &str, secrets: &[String]) -> Attempt {
    // The receiver checks this against its own clock: real time, whatever the store's clock.
    let ts = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |t| t.as_secs() as i64);
    let started = Instant::now();
    let sent = d
        .http
        .post(&m.url)
        .header("content-type", "application/json")
        .header("webhook-id", &m.id)
        .header("webhook-timestamp", ts.to_string())
        .header("webhook-signature", signature_header(secrets, &m.id, ts, body.as_bytes()))
        .body(body.to_string())
        .send()
        .await;
    let mut a =
        Attempt { ok: false, status: 0, latency_ms: 0, length: 0, headers: BTreeMap::new(), error: String::new() };
    match sent {
        Err(e) => {
            a.error = if e.is_timeout() {
                format!("no answer within {}s", d.settings.timeout.as_secs())
            } else if e.is_connect() {
                "could not connect to the receiver".to_string()
            } else {
                // reqwest's message names the URL, which the log shows beside it anyway.
                format!("the request failed: {}", e.without_url())
            };
        }
        Ok(resp) => {
            a.status = resp.status().as_u16();
            a.ok = resp.status().is_success();
            a.headers = resp
                .headers()
                .iter()
                .filter_map(|(k, v)| Some((k.as_str().to_string(), v.to_str().ok()?.to_string())))
                .collect();
            let bytes = resp.bytes().await.unwrap_or_default();
            a.length = i64::try_from(bytes.len()).unwrap_or(i64::MAX);
            if !a.ok {
                let text = String::from_utf8_lossy(&bytes[..bytes.len().min(EXCERPT_BYTES)]).into_owned();
                a.error = format!("the receiver answered {}: {}", a.status, text.trim());
            }
        }
    }
    a.latency_ms = i64::try_from(started.elapsed().as_millis()).unwrap_or(i64::MAX);
    a
}

/// The attempt's row in the delivery log.
fn logged(m: &OutboxMessage, at: i64, a: Attempt) -> Delivery {
    Delivery {
        meta: Meta {
            id: IdKind::WebhookDelivery.new_id(at),
            account_id: m.account_id.clone(),
            name: String::new(),
            external_id: String::new(),
            labels: Labels::new(),
            profile_id: String::new(),
            created_at: at,
            updated_at: at,
        },
        workspace_id: m.workspace_id.clone(),
        agent_id: m.agent_id.clone(),
        objective_id: m.objective_id.clone(),
        objective_event_id: m.event_id.clone(),
        event_type: m.event_type.clone(),
        webhook_url: m.url.clone(),
        webhook_id: m.id.clone(),
        status: m.status,
        attempt_count: m.attempts,
        last_attempt_at: (m.status != DeliveryStatus::Disabled).then_some(at),
        http_status_code: i32::from(a.status),
        latency_ms: a.latency_ms,
        response_content_length: a.length,
        response_headers: a.headers,
        error_message: a.error,
    }
}

/// `scheme://host:port` of a URL: what the per-receiver limits count by.
fn origin_of(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(u) => {
            format!("{}://{}:{}", u.scheme(), u.host_str().unwrap_or_default(), u.port_or_known_default().unwrap_or(0))
        }
        Err(_) => url.to_string(),
    }
}

enum Admission {
    Go(OwnedSemaphorePermit),
    Busy,
    Open { for_ms: i64 },
}

#[derive(Default)]
struct Endpoints(Mutex<HashMap<String, Endpoint>>);

struct Endpoint {
    in_flight: Arc<Semaphore>,
    failures: u32,
    open_until: Option<Instant>,
    /// While half-open, the one probe is out.
    probing: bool,
    /// Deliveries waiting for a slot.
    waiting: usize,
}

impl Endpoints {
    /// A slot for one request to `origin`: at once if one is free; else, if fewer than the cap
    /// already wait for one, after waiting up to [`Settings::busy_wait`]; else `Busy` at once.
    /// So a slow receiver ties up at most twice its cap of the queue's slots.
    async fn admit(&self, origin: &str, s: &Settings) -> Admission {
        let (semaphore, probe) = {
            let mut map = self.0.lock().unwrap_or_else(|p| p.into_inner());
            let e = map.entry(origin.to_string()).or_insert_with(|| Endpoint {
                in_flight: Arc::new(Semaphore::new(s.per_endpoint.max(1))),
                failures: 0,
                open_until: None,
                probing: false,
                waiting: 0,
            });
            let mut probe = false;
            if let Some(until) = e.open_until {
                let now = Instant::now();
                if until > now {
                    let for_ms = i64::try_from((until - now).as_millis()).unwrap_or(i64::MAX).max(1);
                    return Admission::Open { for_ms };
                }
                if e.probing {
                    return Admission::Busy;
                }
                e.probing = true;
                probe = true;
            }
            match e.in_flight.clone().try_acquire_owned() {
                Ok(p) => return Admission::Go(p),
                Err(_) if e.waiting >= s.per_endpoint || probe => {
                    e.probing = false;
                    return Admission::Busy;
                }
                Err(_) => {
                    e.waiting += 1;
                    (e.in_flight.clone(), probe)
                }
            }
        };
        let got = tokio::time::timeout(s.busy_wait, semaphore.acquire_owned()).await;
        let mut map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(e) = map.get_mut(origin) {
            e.waiting = e.waiting.saturating_sub(1);
            if probe && !matches!(got, Ok(Ok(_))) {
                e.probing = false;
            }
        }
        match got {
            Ok(Ok(p)) => Admission::Go(p),
            _ => Admission::Busy,
        }
    }

    fn report(&self, origin: &str, ok: bool, s: &Settings) {
        let mut map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let Some(e) = map.get_mut(origin) else { return };
        e.probing = false;
        if ok {
            e.failures = 0;
            e.open_until = None;
            return;
        }
        e.failures = e.failures.saturating_add(1);
        if e.failures >= s.breaker_failures {
            e.open_until = Some(Instant::now() + s.breaker_open);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_breaker_opens_after_failures_and_probes_once() {
        let s = Settings {
            breaker_failures: 2,
            breaker_open: Duration::from_millis(0),
            per_endpoint: 1,
            busy_wait: Duration::from_millis(10),
            ..Settings::default()
        };
        let e = Endpoints::default();
        let Admission::Go(p) = e.admit("o", &s).await else { panic!("first admission") };
        assert!(matches!(e.admit("o", &s).await, Admission::Busy), "one in flight at most");
        drop(p);
        e.report("o", false, &s);
        e.report("o", false, &s);
        // Open for zero time: half-open at once, and only one probe goes out.
        let Admission::Go(probe) = e.admit("o", &s).await else { panic!("the probe") };
        assert!(matches!(e.admit("o", &s).await, Admission::Busy));
        drop(probe);
        e.report("o", true, &s);
        assert!(matches!(e.admit("o", &s).await, Admission::Go(_)), "closed again after a success");
        assert_eq!(origin_of("https://h.example/x?y"), "https://h.example:443");
    }

    #[tokio::test]
    async fn a_busy_receiver_hands_its_slot_to_a_waiting_delivery() {
        let s = Settings { per_endpoint: 1, busy_wait: Duration::from_secs(5), ..Settings::default() };
        let e = Arc::new(Endpoints::default());
        let Admission::Go(p) = e.admit("o", &s).await else { panic!("first admission") };
        let waiter = {
            let (e, s) = (e.clone(), s.clone());
            tokio::spawn(async move { matches!(e.admit("o", &s).await, Admission::Go(_)) })
        };
        let waiting = || e.0.lock().map(|m| m.get("o").map_or(0, |x| x.waiting)).unwrap_or(0);
        while waiting() == 0 {
            tokio::task::yield_now().await;
        }
        // One waits already (as many as the cap): the next is turned away at once.
        assert!(matches!(e.admit("o", &s).await, Admission::Busy));
        drop(p);
        assert!(waiter.await.unwrap_or(false), "the waiting delivery got the freed slot");
    }

    #[tokio::test]
    async fn an_open_breaker_parks_the_receiver() {
        let s = Settings { breaker_failures: 1, breaker_open: Duration::from_secs(30), ..Settings::default() };
        let e = Endpoints::default();
        let _ = e.admit("o", &s).await;
        e.report("o", false, &s);
        assert!(matches!(e.admit("o", &s).await, Admission::Open { for_ms } if for_ms > 20_000));
        assert!(matches!(e.admit("other", &s).await, Admission::Go(_)), "other receivers are not affected");
    }
}
