//! The schedule engine: due schedules fire through the queue once per due time, with the
//! schedule's message, data and variation, recorded on the objective; SKIP waits for the
//! previous objective and ALLOW does not; paused, archived and broken schedules never fire;
//! after downtime a schedule fires once and carries on; a wake-up that runs early or is lost
//! still fires on time; and replicas racing for every fire fire it once. Time is the manual
//! clock; jobs run with the test kit's helper, so every step is deterministic.

use cadenza_api::AppState;
use cadenza_domain::jobs::{FireSchedule, Maintenance, RunObjective};
use cadenza_domain::objectives::{Objective, ObjectiveFilter};
use cadenza_domain::page::ListParams;
use cadenza_domain::time::{format_ms, parse_rfc3339};
use cadenza_jobs::{JobContext, Outcome, Registry};
use cadenza_store::Store;
use cadenza_store::jobs::{NewJob, OnDuplicate};
use cadenza_testkit::{ADMIN_TOKEN, TestApp, TestBackend, both_backends};
use serde_json::{Value, json};

use crate::config_schedules::agent_with_schedules;
use crate::str_at;

const MINUTE: i64 = 60_000;

/// The jobs a replica on `store` runs here: the engine, housekeeping, and a run that leaves
/// each objective PENDING (so it stays live for the overlap policy until cancelled).
fn engine(app: &TestApp, store: &Store) -> Registry {
    let state = AppState::new(store.clone(), app.config().clone());
    let registry = cadenza_server::schedules::register(Registry::default(), state);
    let registry = cadenza_server::maintenance::register(registry, app.blobs.clone());
    registry.handle(|_: JobContext, _: RunObjective| async { Ok(Outcome::Done) })
}

struct World {
    app: TestApp,
    registry: Registry,
    agent: String,
    /// `{ws}/agents/{agent}/schedules`.
    schedules: String,
}

/// An agent (input schema `{region: string}`) with one variation whose templates use the data.
async fn world(backend: TestBackend) -> Option<World> {
    let app = TestApp::start(backend).await?;
    app.expect_jobs("objectives.run");
    let (agent, schedules) = agent_with_schedules(&app, &app.default_ws, "reporter").await;
    let registry = engine(&app, &app.store);
    let w = World { app, registry, agent, schedules };
    w.variation("daily").await;
    Some(w)
}

impl World {
    fn agent_path(&self) -> String {
        self.schedules.trim_end_matches("/schedules").to_string()
    }

    async fn variation(&self, name: &str) -> String {
        let body = json!({"metadata": {"name": name, "externalId": name},
            "spec": {"prompt": "Report on {{ region }}.", "firstUserMessageTemplate": "Start the {{ region }} report ({{ n }})"}});
        str_at(
            &self.app.post(&format!("{}/variations", self.agent_path()), ADMIN_TOKEN, body).await.expect(200),
            "/metadata/id",
        )
    }

    /// Creates a schedule from `spec` (`schedule` defaults to every ten minutes, `data` to
    /// what the templates need).
    async fn schedule(&self, name: &str, mut spec: Value) -> (String, Value) {
        if spec.get("schedule").is_none() {
            spec["schedule"] = json!({"intervals": [{"every": "600s"}]});
        }
        if spec.get("data").is_none() {
            spec["data"] = json!({"region": "eu", "n": 1});
        }
        let body = json!({"metadata": {"name": name, "externalId": name}, "spec": spec});
        let created = self.app.post(&self.schedules, ADMIN_TOKEN, body).await.expect(200);
        (str_at(&created, "/metadata/id"), created)
    }

    async fn get(&self, id: &str) -> Value {
        self.app.get(&format!("{}/{id}", self.schedules), ADMIN_TOKEN).await.expect(200)
    }

    /// Sets the clock to `at_ms` and runs everything due. Returns how many jobs ran.
    async fn at(&self, at_ms: i64) -> usize {
        self.app.clock.set_ms(at_ms);
        self.app.run_jobs(&self.registry).await
    }

    /// The objectives schedule `id` fired, as stored, in fire-time order.
    async fn fired(&self, id: &str) -> Vec<Objective> {
        fired_on(&self.app, &self.app.default_ws, id).await
    }
}

async fn fired_on(app: &TestApp, ws: &str, id: &str) -> Vec<Objective> {
    let filter = ObjectiveFilter { schedule_id: Some(id.to_string()), ..ObjectiveFilter::default() };
    let mut all = app.store.list_objectives(ws, &filter, &ListParams::first(1000)).await.expect("list").items;
    all.sort_by_key(|o| o.schedule_fire_at);
    all
}

fn fire_times(objectives: &[Objective]) -> Vec<i64> {
    objectives.iter().map(|o| o.schedule_fire_at.expect("a fired objective keeps its fire time")).collect()
}

fn time(v: &Value, pointer: &str) -> i64 {
    parse_rfc3339(&str_at(v, pointer)).expect("a time")
}

both_backends!(a_due_schedule_fires_once_per_due_time_with_its_spec, fires_on_time);
async fn fires_on_time(backend: TestBackend) {
    let Some(w) = world(backend).await else { return };
    let pinned = w.variation("pinned").await;
    let (id, created) = w
        .schedule(
            "report",
            json!({"initialMessage": "Run the report", "data": {"region": "eu"}, "variationId": pinned,
                   "overlapPolicy": "OVERLAP_POLICY_ALLOW"}),
        )
        .await;
    // From 2026-01-01T00:00:00Z: every ten minutes.
    let first = time(&created, "/info/nextFireAt");
    assert_eq!(format_ms(first), "2026-01-01T00:10:00.000Z");
    assert_eq!(w.at(first - 1).await, 0, "the wake-up waits for the due time");
    assert!(w.fired(&id).await.is_empty());

    // Due: one objective, recorded on both sides.
    w.at(first).await;
    let objectives = w.fired(&id).await;
    assert_eq!(fire_times(&objectives), [first]);
    let o = &objectives[0];
    let info = w.get(&id).await["info"].clone();
    assert_eq!(info["totalFires"], 1);
    assert_eq!(info["lastFireAt"], format_ms(first).as_str());
    assert_eq!(info["lastObjectiveId"], o.meta.id.as_str());
    assert_eq!(time(&json!({"t": info["nextFireAt"]}), "/t"), first + 10 * MINUTE);
    assert!(info.get("lastSkippedAt").is_none());
    // The objective is the schedule's: its message, data and pinned variation, its snapshot.
    let api = w.app.get(&w.app.ws_path(&w.app.default_ws, &format!("/objectives/{}", o.meta.id)), ADMIN_TOKEN).await;
    let api = api.expect(200);
    assert_eq!(api["initialMessage"], "Run the report");
    assert_eq!(api["data"], json!({"region": "eu"}));
    assert_eq!(api["systemPrompt"], "Report on eu.");
    assert_eq!(api["configSnapshot"]["agentVariation"]["metadata"]["id"], pinned.as_str());
    assert_eq!(api["configSnapshot"]["agent"]["metadata"]["id"], w.agent.as_str());
    assert_eq!(api["configSnapshot"]["agentSchedule"]["metadata"]["id"], id.as_str());
    assert_eq!(api["configSnapshot"]["agentSchedule"]["spec"]["initialMessage"], "Run the report");
    for filter in [id.clone(), "external_id:report".to_string()] {
        let listed = w
            .app
            .list_all(
                &w.app.ws_path(&w.app.default_ws, &format!("/objectives?agentScheduleId={filter}")),
                ADMIN_TOKEN,
                10,
            )
            .await;
        assert_eq!(listed.len(), 1, "listed by agentScheduleId={filter}");
        assert_eq!(listed[0]["metadata"]["id"], o.meta.id.as_str());
    }
    // Running again at the same moment fires nothing more.
    w.at(first).await;
    assert_eq!(w.fired(&id).await.len(), 1);

    // Tick by tick: once per due time, never twice, nothing between.
    for k in 1..=5 {
        w.at(first + k * 10 * MINUTE - 1).await;
        assert_eq!(w.fired(&id).await.len(), k as usize, "not yet due");
        w.at(first + k * 10 * MINUTE).await;
    }
    let times = fire_times(&w.fired(&id).await);
    assert_eq!(times, (0..=5).map(|k| first + k * 10 * MINUTE).collect::<Vec<_>>());
    assert_eq!(w.get(&id).await["info"]["totalFires"], 6);

    // No message: the variation's template, rendered with firstUserMessageData; no variation:
    // the agent's selection mode picks one (only `daily` has a weight: variations start at 0).
    let daily = format!("{}/variations/external_id:daily", w.agent_path());
    w.app.patch(&daily, ADMIN_TOKEN, json!({"spec": {"weight": 100}, "updateMask": "spec.weight"})).await.expect(200);
    let (templated, _) = w
        .schedule("templated", json!({"data": {"region": "us"}, "firstUserMessageData": {"region": "us", "n": 7}}))
        .await;
    w.at(first + 60 * MINUTE).await;
    let o = w.fired(&templated).await;
    assert_eq!(o.len(), 1);
    assert_eq!(o[0].initial_message, "Start the us report (7)");
    assert_eq!(o[0].config_snapshot["agentSchedule"]["metadata"]["id"], templated.as_str());
    assert_eq!(o[0].config_snapshot["agentVariation"]["metadata"]["externalId"], "daily");
}

both_backends!(schedule_overlap_skip_waits_for_the_previous_objective_allow_does_not, overlap);
async fn overlap(backend: TestBackend) {
    let Some(w) = world(backend).await else { return };
    let (skip, created) = w.schedule("skip", json!({"initialMessage": "go", "data": {"region": "eu"}})).await;
    assert_eq!(created["spec"]["overlapPolicy"], "OVERLAP_POLICY_SKIP");
    let (allow, _) =
        w.schedule("allow", json!({"initialMessage": "go", "overlapPolicy": "OVERLAP_POLICY_ALLOW"})).await;
    let first = time(&created, "/info/nextFireAt");
    w.at(first).await;
    let previous = w.fired(&skip).await;
    assert_eq!(previous.len(), 1);

    // The previous objective is still PENDING: SKIP records why and moves on; ALLOW fires.
    let second = first + 10 * MINUTE;
    w.at(second).await;
    assert_eq!(w.fired(&skip).await.len(), 1, "skipped");
    let info = w.get(&skip).await["info"].clone();
    assert_eq!(info["lastSkippedAt"], format_ms(second).as_str());
    let reason = info["lastSkipReason"].as_str().expect("reason").to_string();
    assert!(reason.contains(&previous[0].meta.id) && reason.contains("STATE_PENDING"), "{reason}");
    assert_eq!(info["totalFires"], 1);
    assert_eq!(info["lastObjectiveId"], previous[0].meta.id.as_str());
    assert_eq!(info["nextFireAt"], format_ms(second + 10 * MINUTE).as_str(), "a skip still advances");
    assert_eq!(w.fired(&allow).await.len(), 2, "ALLOW fires regardless");

    // Once it has ended, the next due time fires again.
    let cancel = w.app.ws_path(&w.app.default_ws, &format!("/objectives/{}:cancel", previous[0].meta.id));
    w.app.post(&cancel, ADMIN_TOKEN, json!({})).await.expect(200);
    w.at(second + 10 * MINUTE).await;
    let fired = w.fired(&skip).await;
    assert_eq!(fire_times(&fired), [first, second + 10 * MINUTE]);
    let info = w.get(&skip).await["info"].clone();
    assert_eq!(info["totalFires"], 2);
    assert_eq!(info["lastSkippedAt"], format_ms(second).as_str(), "the skip stays in the history");
    assert_eq!(w.fired(&allow).await.len(), 3);
}

both_backends!(paused_archived_and_broken_schedules_never_fire, never_fire);
async fn never_fire(backend: TestBackend) {
    let Some(w) = world(backend).await else { return };
    let spec = json!({"initialMessage": "go", "data": {"region": "eu"}, "overlapPolicy": "OVERLAP_POLICY_ALLOW",
                      "schedule": {"intervals": [{"every": "600s"}]}});
    let (paused, created) = w.schedule("paused", spec.clone()).await;
    let first = time(&created, "/info/nextFireAt");
    let (archived, _) = w.schedule("archived", spec.clone()).await;
    let (broken, _) = w.schedule("broken", spec.clone()).await;
    for (id, verb) in [(&paused, "pause"), (&archived, "archive")] {
        w.app.post_empty(&format!("{}/{id}:{verb}", w.schedules), ADMIN_TOKEN).await.expect(200);
    }
    // Another agent, archived (its schedules are paused with it); and one with no variation.
    let (gone_agent, gone) = agent_with_schedules(&w.app, &w.app.default_ws, "retired").await;
    let gone_path = gone.trim_end_matches("/schedules").to_string();
    w.app.post(&format!("{gone_path}/variations"), ADMIN_TOKEN, json!({"metadata": {"name": "v"}})).await.expect(200);
    let retired = str_at(
        &w.app.post(&gone, ADMIN_TOKEN, json!({"metadata": {"name": "r"}, "spec": spec.clone()})).await.expect(200),
        "/metadata/id",
    );
    w.app.patch(&gone_path, ADMIN_TOKEN, json!({"spec": {"status": "AGENT_STATUS_ARCHIVED"}})).await.expect(200);
    let (_, bare) = agent_with_schedules(&w.app, &w.app.default_ws, "bare").await;
    let novar = str_at(
        &w.app.post(&bare, ADMIN_TOKEN, json!({"metadata": {"name": "n"}, "spec": spec.clone()})).await.expect(200),
        "/metadata/id",
    );
    // One in a workspace archived since (the API refuses every request in it).
    let elsewhere = crate::create_workspace(&w.app, "Elsewhere", "elsewhere").await;
    let (_, far) = agent_with_schedules(&w.app, &elsewhere, "far").await;
    let far_variations = format!("{}/variations", far.trim_end_matches("/schedules"));
    w.app.post(&far_variations, ADMIN_TOKEN, json!({"metadata": {"name": "v"}})).await.expect(200);
    let shelved = str_at(
        &w.app.post(&far, ADMIN_TOKEN, json!({"metadata": {"name": "w"}, "spec": spec.clone()})).await.expect(200),
        "/metadata/id",
    );
    w.app.delete(&format!("/v1/account/workspaces/{elsewhere}"), ADMIN_TOKEN).await.expect(200);
    // The broken one's data no longer fits the agent's input schema.
    let schema = json!({"type": "object", "properties": {"region": {"type": "integer"}}});
    w.app.patch(&w.agent_path(), ADMIN_TOKEN, json!({"spec": {"inputDataSchema": schema}})).await.expect(200);

    let ticks = 4;
    for k in 0..ticks {
        w.at(first + k * 10 * MINUTE).await;
    }
    let last = first + (ticks - 1) * 10 * MINUTE;
    for id in [&paused, &archived, &broken] {
        assert!(w.fired(id).await.is_empty(), "{id} created no objective");
    }
    assert!(
        fired_on(&w.app, &w.app.default_ws, &retired).await.is_empty()
            && fired_on(&w.app, &w.app.default_ws, &novar).await.is_empty()
    );
    assert!(fired_on(&w.app, &elsewhere, &shelved).await.is_empty());
    let s = w.app.store.find_schedule(&elsewhere, &shelved).await.expect("read").expect("schedule");
    assert!(s.last_skip_reason.contains("WORKSPACE_ARCHIVED"), "{}", s.last_skip_reason);
    assert_eq!((s.total_fires, s.last_skipped_at), (0, Some(last)));
    for id in [&paused, &archived] {
        let info = w.get(id).await["info"].clone();
        assert_eq!((info["totalFires"].clone(), info.get("lastSkippedAt")), (json!(0), None), "{id} never fired");
        assert!(info.get("nextFireAt").is_none());
    }
    let retired_state = w.app.get(&format!("{gone}/{retired}"), ADMIN_TOKEN).await.expect(200);
    assert_eq!(retired_state["state"], "STATE_PAUSED");
    assert_eq!(retired_state["info"]["totalFires"], 0, "{gone_agent}'s schedule never fired");
    // A fire the client's data or configuration makes impossible is a skip with the reason,
    // each due time once; the schedule carries on and its wake-up stays alive.
    for (path, id, needle) in [(&w.schedules, &broken, "SCHEMA_MISMATCH"), (&bare, &novar, "AGENT_HAS_NO_VARIATION")] {
        let info = w.app.get(&format!("{path}/{id}"), ADMIN_TOKEN).await.expect(200)["info"].clone();
        assert_eq!(info["lastSkippedAt"], format_ms(last).as_str(), "{id}");
        assert!(info["lastSkipReason"].as_str().is_some_and(|r| r.contains(needle)), "{id}: {info}");
        assert_eq!(info["nextFireAt"], format_ms(last + 10 * MINUTE).as_str());
        assert_eq!(info["totalFires"], 0);
    }
    // Only the live schedules keep a wake-up queued.
    let queued = w.app.store.list_jobs(Some(cadenza_domain::jobs::JobState::Queued), &ListParams::first(100)).await;
    let mut armed: Vec<String> = queued
        .expect("jobs")
        .items
        .iter()
        .filter(|j| j.kind == crate::SCHEDULE_WAKE_UP)
        .map(|j| j.payload["scheduleId"].as_str().unwrap_or_default().to_string())
        .collect();
    armed.sort();
    let mut live = vec![broken.clone(), novar.clone(), shelved.clone()];
    live.sort();
    assert_eq!(armed, live);

    // Resumed, it fires from the next due time on: the paused ones are not caught up.
    let now = last + 3 * MINUTE;
    w.app.clock.set_ms(now);
    let resumed = w.app.post_empty(&format!("{}/{paused}:resume", w.schedules), ADMIN_TOKEN).await.expect(200);
    assert_eq!(time(&resumed, "/info/nextFireAt"), last + 10 * MINUTE);
    w.app
        .patch(&w.agent_path(), ADMIN_TOKEN, json!({"spec": {"inputDataSchema": {"type": "object"}}}))
        .await
        .expect(200);
    w.at(last + 10 * MINUTE).await;
    assert_eq!(fire_times(&w.fired(&paused).await), [last + 10 * MINUTE]);
    assert_eq!(fire_times(&w.fired(&broken).await), [last + 10 * MINUTE], "fixed, it fires again");
}

both_backends!(schedule_catch_up_after_downtime_fires_once_then_carries_on, catch_up);
async fn catch_up(backend: TestBackend) {
    let Some(w) = world(backend).await else { return };
    let spec = json!({"initialMessage": "go", "overlapPolicy": "OVERLAP_POLICY_ALLOW",
                      "schedule": {"intervals": [{"every": "60s"}]}});
    let (minutely, created) = w.schedule("minutely", spec).await;
    let daily_rule = json!({"calendars": [{"hour": [{"start": 9}]}], "timezone": "America/New_York"});
    let (daily, _) = w.schedule("daily", json!({"initialMessage": "go", "schedule": daily_rule})).await;
    let first = time(&created, "/info/nextFireAt");

    // No server ran for a week. A write in the meantime does not lose the fire that is due.
    let back = parse_rfc3339("2026-01-08T20:00:30Z").expect("time");
    w.app.clock.set_ms(back);
    let patched = w
        .app
        .patch(
            &format!("{}/{minutely}", w.schedules),
            ADMIN_TOKEN,
            json!({"metadata": {"labels": {"team": "ops"}}, "updateMask": "metadata.labels"}),
        )
        .await
        .expect(200);
    assert_eq!(time(&patched, "/info/nextFireAt"), back + 30_000, "shown as the next one ahead");
    w.at(back).await;
    // Once each, for the latest time missed; then from the next time after now.
    let fired = w.fired(&minutely).await;
    assert_eq!(fire_times(&fired), [parse_rfc3339("2026-01-08T20:00:00Z").expect("time")]);
    assert!(fire_times(&fired)[0] > first);
    assert_eq!(fire_times(&w.fired(&daily).await), [parse_rfc3339("2026-01-08T14:00:00Z").expect("time")]);
    for (id, next) in [(&minutely, "2026-01-08T20:01:00.000Z"), (&daily, "2026-01-09T14:00:00.000Z")] {
        let info = w.get(id).await["info"].clone();
        assert_eq!(info["totalFires"], 1, "{id}: never a burst");
        assert_eq!(info["nextFireAt"], next);
        assert!(time(&json!({"t": info["nextFireAt"]}), "/t") > back, "in the future");
    }
    w.at(back + 29_999).await;
    assert_eq!(w.fired(&minutely).await.len(), 1);
    w.at(back + 30_000).await;
    assert_eq!(w.fired(&minutely).await.len(), 2, "and on it goes");
}

both_backends!(a_schedule_wake_up_that_runs_early_or_is_lost_still_fires_on_time, wake_ups);
async fn wake_ups(backend: TestBackend) {
    let Some(w) = world(backend).await else { return };
    w.app.expect_jobs("maintenance");
    let (id, created) =
        w.schedule("moved", json!({"initialMessage": "go", "overlapPolicy": "OVERLAP_POLICY_ALLOW"})).await;
    let first = time(&created, "/info/nextFireAt");
    // Moved later: the queued wake-up keeps its earlier time, runs early, finds nothing due,
    // and re-arms itself for the new due time.
    let item = format!("{}/{id}", w.schedules);
    let moved = w
        .app
        .patch(&item, ADMIN_TOKEN, json!({"spec": {"schedule": {"intervals": [{"every": "3600s"}]}}}))
        .await
        .expect(200);
    let due = time(&moved, "/info/nextFireAt");
    assert_eq!(format_ms(due), "2026-01-01T01:00:00.000Z");
    assert_eq!(w.at(first).await, 1, "the early run");
    assert!(w.fired(&id).await.is_empty());
    w.at(due - 1).await;
    assert!(w.fired(&id).await.is_empty());
    w.at(due).await;
    assert_eq!(fire_times(&w.fired(&id).await), [due]);

    // The wake-up is lost: the sweep arms it again, and the fire due meanwhile happens.
    let removed = w.app.db.query_strings("DELETE FROM jobs WHERE kind = 'schedules.fire' RETURNING id").await;
    assert_eq!(removed.len(), 1);
    w.at(due + 60 * MINUTE).await;
    assert_eq!(w.fired(&id).await.len(), 1, "nothing wakes it");
    let mut sweep = NewJob::of(&Maintenance::ArmSchedules);
    sweep.on_duplicate = OnDuplicate::RunAgain;
    w.app.store.enqueue(sweep).await.expect("enqueue");
    w.at(due + 60 * MINUTE).await;
    assert_eq!(fire_times(&w.fired(&id).await), [due, due + 60 * MINUTE]);
    // Armed once: another sweep adds nothing.
    let mut sweep = NewJob::of(&Maintenance::ArmSchedules);
    sweep.on_duplicate = OnDuplicate::RunAgain;
    sweep.run_at = Some(due + 61 * MINUTE);
    w.app.store.enqueue(sweep).await.expect("enqueue");
    w.at(due + 61 * MINUTE).await;
    let wake_ups =
        w.app.db.query_strings("SELECT id FROM jobs WHERE kind = 'schedules.fire' AND state = 'queued'").await;
    assert_eq!(wake_ups.len(), 1);
}

both_backends!(replicas_fire_each_schedule_due_time_exactly_once, replicas);
async fn replicas(backend: TestBackend) {
    let Some(w) = world(backend).await else { return };
    let mut ids = Vec::new();
    for i in 0..4 {
        let spec = json!({"initialMessage": "go", "overlapPolicy": "OVERLAP_POLICY_ALLOW",
                          "schedule": {"intervals": [{"every": "60s"}]}});
        ids.push(w.schedule(&format!("s{i}"), spec).await.0);
    }
    // Two replicas, two workers each; besides each schedule's own wake-up, two more without a
    // key, so three handlers race for every fire.
    let other = w.app.db.store(std::sync::Arc::new(w.app.clock.clone())).await;
    let replicas = [(w.app.store.clone(), w.registry.clone()), (other.clone(), engine(&w.app, &other))];
    for id in &ids {
        for _ in 0..2 {
            let mut extra =
                NewJob::of(&FireSchedule { workspace_id: w.app.default_ws.clone(), schedule_id: id.clone() });
            extra.key = None;
            w.app.store.enqueue(extra).await.expect("enqueue");
        }
    }
    let start = w.app.store.now_ms();
    let ticks = 12;
    for k in 1..=ticks {
        w.app.clock.set_ms(start + k * MINUTE);
        let mut workers = tokio::task::JoinSet::new();
        for (r, (store, registry)) in replicas.iter().enumerate() {
            for n in 0..2 {
                let (store, registry) = (store.clone(), registry.clone());
                workers.spawn(async move {
                    let owner = format!("replica-{r}-{n}");
                    while cadenza_jobs::run_next(&store, &registry, "schedules", &owner).await.expect("run") {}
                });
            }
        }
        while let Some(done) = workers.join_next().await {
            done.expect("worker");
        }
        w.app.run_jobs(&w.registry).await;
    }
    let expected: Vec<i64> = (1..=ticks).map(|k| start + k * MINUTE).collect();
    for id in &ids {
        let fired = w.fired(id).await;
        assert_eq!(fire_times(&fired), expected, "{id}: each due time once");
        let info = w.get(id).await["info"].clone();
        assert_eq!(info["totalFires"], ticks);
        assert_eq!(info["lastObjectiveId"], fired.last().expect("fired").meta.id.as_str());
    }

    // The constraint under it: a second objective for a fire time cannot be stored.
    let s = w.app.store.find_schedule(&w.app.default_ws, &ids[0]).await.expect("read").expect("schedule");
    let (who, input) = cadenza_server::schedules::request(&s);
    let state = AppState::new(w.app.store.clone(), w.app.config().clone());
    let mut p = cadenza_api::routes::objectives::prepare(&state, &who, input, Some(&s)).await.expect("prepare");
    p.objective.schedule_fire_at = Some(expected[0]);
    let mut tx = w.app.store.begin().await.expect("begin");
    let err = cadenza_services::objectives::create(&mut tx, p).await.expect_err("a second objective for a fire time");
    assert_eq!(err.reason.as_str(), "ALREADY_EXISTS", "{err:?}");
}

both_backends!(schedule_writes_racing_its_fires_neither_fail_nor_lose_a_fire, writes_vs_fires);
async fn writes_vs_fires(backend: TestBackend) {
    let Some(w) = world(backend).await else { return };
    let (replica, _guard) = w.app.replica().await;
    let spec = json!({"initialMessage": "go", "overlapPolicy": "OVERLAP_POLICY_ALLOW",
                      "schedule": {"intervals": [{"every": "60s"}]}});
    let (id, _) = w.schedule("raced", spec).await;
    let item = format!("{}/{id}", w.schedules);
    let start = w.app.store.now_ms();
    let rounds = 20;
    for round in 1..=rounds {
        // The fire (its unit holds the wake-up's row, then the agent and the schedule) and a
        // write of the schedule on the other replica (which re-arms that wake-up), at once.
        w.app.clock.set_ms(start + round * MINUTE);
        let labels = json!({"metadata": {"labels": {"round": round.to_string()}}, "updateMask": "metadata.labels"});
        let verb = if round % 2 == 0 { "pause" } else { "resume" };
        let (fired, patched, toggled) = tokio::join!(
            cadenza_jobs::run_next(&w.app.store, &w.registry, "schedules", "racer"),
            crate::races::send(&w.app, &replica, reqwest::Method::PATCH, &item, Some(labels)),
            async {
                // Every fourth round a pause and a resume race the fire too.
                if round % 4 >= 2 {
                    crate::races::send(&w.app, &replica, reqwest::Method::POST, &format!("{item}:{verb}"), None).await
                } else {
                    (200, Value::Null, String::new())
                }
            },
        );
        fired.expect("the fire's job ran (or none was due: paused)");
        assert_eq!(patched.0, 200, "round {round}: {:?}", patched.1);
        assert_eq!(toggled.0, 200, "round {round}: {:?}", toggled.1);
        w.app.run_jobs(&w.registry).await;
    }
    // Each due time fired at most once, and every one at which the schedule was active fired.
    let times = fire_times(&w.fired(&id).await);
    assert!(times.windows(2).all(|p| p[0] < p[1]), "{times:?}");
    assert!(times.iter().all(|t| (t - start) % MINUTE == 0 && *t > start), "{times:?}");
    let info = w.get(&id).await["info"].clone();
    assert_eq!(info["totalFires"], times.len());
    assert!(times.len() >= rounds as usize / 2, "{times:?}");
}

both_backends!(a_schedule_write_waiting_on_a_fire_in_progress_does_not_deadlock, write_during_fire);
async fn write_during_fire(backend: TestBackend) {
    let Some(w) = world(backend).await else { return };
    let (replica, _guard) = w.app.replica().await;
    let (id, created) = w.schedule("held", json!({"initialMessage": "go"})).await;
    let due = time(&created, "/info/nextFireAt");
    w.app.clock.set_ms(due);
    // A fire's unit under way: it holds its wake-up's row (the fence) and has yet to lock the
    // agent and the schedule.
    let mut claimed = w.app.store.claim("schedules", "holder", 300_000, 1).await.expect("claim");
    let (_, lease) = claimed.pop().expect("the wake-up is due");
    let mut tx = w.app.store.begin_fenced(&lease).await.expect("fenced unit");
    // Meanwhile a write of the schedule on the other replica, which re-arms the same wake-up.
    let item = format!("{}/{id}", w.schedules);
    let labels = json!({"metadata": {"labels": {"k": "v"}}, "updateMask": "metadata.labels"});
    let write = tokio::spawn({
        let (client, url) = (w.app.client.clone(), format!("{replica}{item}"));
        async move {
            let resp = client.patch(url).bearer_auth(ADMIN_TOKEN).json(&labels).send().await.expect("patch");
            (resp.status().as_u16(), resp.text().await.unwrap_or_default())
        }
    });
    // Let the write take whatever it takes before it has to wait (a pause for ordering only).
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let s = w.app.store.find_schedule(&w.app.default_ws, &id).await.expect("read").expect("schedule");
    let (who, input) = cadenza_server::schedules::request(&s);
    let state = AppState::new(w.app.store.clone(), w.app.config().clone());
    let prepared = cadenza_api::routes::objectives::prepare(&state, &who, input, Some(&s)).await.map_err(|e| e.error);
    let fired = cadenza_services::schedules::fire(&mut tx, &s, prepared).await.expect("the fire's unit is not aborted");
    assert!(matches!(fired, cadenza_services::schedules::Fired::Created { .. }), "{fired:?}");
    tx.commit().await.expect("commit");
    let (status, body) = write.await.expect("write");
    assert_eq!(status, 200, "the write waited for the fire and went through: {body}");
    let next = due + 10 * MINUTE;
    w.app.store.finish(&lease, cadenza_store::jobs::Finish::Again { at: next }).await.expect("finish");
    w.app.run_jobs(&w.registry).await;
    assert_eq!(fire_times(&w.fired(&id).await), [due]);
    let after = w.get(&id).await;
    assert_eq!((after["info"]["totalFires"].clone(), after["metadata"]["labels"]["k"].clone()), (json!(1), json!("v")));
}

both_backends!(schedule_fires_take_their_turn_at_postgresql_like_runs, fire_turns);
async fn fire_turns(backend: TestBackend) {
    use futures::FutureExt;
    let Some(w) = world(backend).await else { return };
    let (id, created) = w.schedule("turns", json!({"initialMessage": "go"})).await;
    let first = time(&created, "/info/nextFireAt");
    w.app.clock.set_ms(first);
    // Every turn of job work taken (PostgreSQL only: SQLite has none): the fire waits for one.
    let mut held = Vec::new();
    if backend == TestBackend::Postgres {
        while let Some(turn) = w.app.store.work_turn().now_or_never() {
            held.push(turn);
        }
    }
    let mut firing = Box::pin(w.app.run_jobs(&w.registry));
    if backend == TestBackend::Postgres {
        assert!(
            tokio::time::timeout(std::time::Duration::from_millis(300), &mut firing).await.is_err(),
            "a schedule fired with every turn taken"
        );
        assert!(w.fired(&id).await.is_empty());
        held.clear();
    }
    firing.await;
    assert_eq!(fire_times(&w.fired(&id).await), [first]);
}
