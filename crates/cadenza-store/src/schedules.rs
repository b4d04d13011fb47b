//! Agent schedules, and what the schedule engine writes: the fire (or skip) recorded on the
//! row with a compare-and-set on its due time, and the schedules whose wake-up job is missing.

use crate::tx::on_tx;
use crate::{Reads, Tx};
use cadenza_domain::IdRef;
use cadenza_domain::page::{ListParams, Page};
use cadenza_domain::schedules::{OverlapPolicy, Rule, Schedule, ScheduleState};
use serde_json::Value;

use crate::list::{Bind, ListQuery};
use crate::rows::{HasMeta, MetaRow, id_ref_column, labels_to};
use crate::{StoreError, StoreResult, on_db};

#[derive(sqlx::FromRow)]
struct ScheduleRow {
    #[sqlx(flatten)]
    meta: MetaRow,
    workspace_id: String,
    agent_id: String,
    first_user_message: String,
    system_prompt_data: Option<String>,
    first_user_message_data: Option<String>,
    rule: String,
    overlap_policy: String,
    state: String,
    variation_id: String,
    next_fire_at: Option<i64>,
    last_fire_at: Option<i64>,
    last_objective_id: String,
    last_skipped_at: Option<i64>,
    last_skip_reason: String,
    total_fires: i64,
}

impl HasMeta for ScheduleRow {
    fn meta_row(&self) -> &MetaRow {
        &self.meta
    }
}

fn json_value(field: &str, text: Option<&str>) -> StoreResult<Option<Value>> {
    text.map(|t| serde_json::from_str(t).map_err(|e| StoreError::Corrupt(format!("{field}: {e}")))).transpose()
}

impl ScheduleRow {
    fn into_domain(self) -> StoreResult<Schedule> {
        let rule: Rule = serde_json::from_str(&self.rule).map_err(|e| StoreError::Corrupt(format!("rule: {e}")))?;
        Ok(Schedule {
            meta: self.meta.into_meta()?,
            workspace_id: self.workspace_id,
            agent_id: self.agent_id,
            first_user_message: self.first_user_message,
            system_prompt_data: json_value("system_prompt_data", self.system_prompt_data.as_deref())?,
            first_user_message_data: json_value("first_user_message_data", self.first_user_message_data.as_deref())?,
            rule,
            overlap: OverlapPolicy::parse(&self.overlap_policy).unwrap_or(OverlapPolicy::Skip),
            state: ScheduleState::from_db(&self.state),
            variation_id: self.variation_id,
            next_fire_at: self.next_fire_at,
            last_fire_at: self.last_fire_at,
            last_objective_id: self.last_objective_id,
            last_skipped_at: self.last_skipped_at,
            last_skip_reason: self.last_skip_reason,
            total_fires: self.total_fires,
        })
    }
}

const SELECT: &str = "SELECT id, account_id, workspace_id, agent_id, name, external_id, labels, profile_id, created_at, \
     updated_at, first_user_message, system_prompt_data, first_user_message_data, rule, overlap_policy, state, \
     variation_id, next_fire_at, last_fire_at, last_objective_id, last_skipped_at, last_skip_reason, total_fires \
     FROM schedules WHERE 1 = 1";

fn rule_json(s: &Schedule) -> String {
    serde_json::to_string(&s.rule).unwrap_or_else(|_| "{}".to_string())
}

impl Reads {
    pub async fn get_schedule(&self, workspace_id: &str, agent_id: &str, r: &IdRef) -> StoreResult<Option<Schedule>> {
        let (col, val) = id_ref_column(r);
        let mut q = ListQuery::new(SELECT);
        q.and_eq("workspace_id", Bind::Text(workspace_id.into()))
            .and_eq("agent_id", Bind::Text(agent_id.into()))
            .and_eq(col, Bind::Text(val));
        let row: Option<ScheduleRow> = self.fetch_row(&q).await?;
        row.map(ScheduleRow::into_domain).transpose()
    }

    pub async fn list_schedules(
        &self,
        workspace_id: &str,
        agent_id: &str,
        params: &ListParams,
    ) -> StoreResult<Page<Schedule>> {
        let mut q = ListQuery::new(SELECT);
        q.and_eq("workspace_id", Bind::Text(workspace_id.into())).and_eq("agent_id", Bind::Text(agent_id.into()));
        let page = self.list_page::<ScheduleRow>(q, "name", params).await?;
        let items = page.items.into_iter().map(ScheduleRow::into_domain).collect::<StoreResult<Vec<_>>>()?;
        Ok(Page { items, next_cursor: page.next_cursor })
    }

    /// The workspace's schedule `id`, whatever its agent (the engine knows only the id).
    pub async fn find_schedule(&self, workspace_id: &str, id: &str) -> StoreResult<Option<Schedule>> {
        let mut q = ListQuery::new(SELECT);
        q.and_eq("workspace_id", Bind::Text(workspace_id.into())).and_eq("id", Bind::Text(id.into()));
        let row: Option<ScheduleRow> = self.fetch_row(&q).await?;
        row.map(ScheduleRow::into_domain).transpose()
    }

    /// Active schedules with a due time and no queued or running job under the key
    /// `key_prefix || id` (their wake-up), soonest first, across all workspaces: `(workspace
    /// id, schedule id, due time)`. Served by `schedules_due` and the jobs' key index.
    pub async fn unarmed_schedules(&self, key_prefix: &str, limit: i64) -> StoreResult<Vec<(String, String, i64)>> {
        Ok(on_db!(self, read, |db| sqlx::query_as(
            "SELECT s.workspace_id, s.id, s.next_fire_at FROM schedules s \
             WHERE s.next_fire_at IS NOT NULL AND s.state = 'ACTIVE' AND NOT EXISTS \
             (SELECT 1 FROM jobs j WHERE j.job_key = $1 || s.id AND j.state IN ('queued', 'running')) \
             ORDER BY s.next_fire_at, s.id LIMIT $2"
        )
        .bind(key_prefix)
        .bind(limit)
        .fetch_all(db)
        .await?))
    }
}

impl Tx {
    pub async fn delete_schedule(&mut self, workspace_id: &str, id: &str) -> StoreResult<bool> {
        self.delete_in_workspace("schedules", workspace_id, id).await
    }

    /// The schedule, locked for the rest of this unit (PostgreSQL), so a PATCH or a state
    /// change applies to the row as it is now.
    pub async fn get_schedule_locked(
        &mut self,
        workspace_id: &str,
        agent_id: &str,
        r: &IdRef,
    ) -> StoreResult<Option<Schedule>> {
        let (col, val) = id_ref_column(r);
        let mut q = ListQuery::new(SELECT);
        q.and_eq("workspace_id", Bind::Text(workspace_id.into()))
            .and_eq("agent_id", Bind::Text(agent_id.into()))
            .and_eq(col, Bind::Text(val));
        q.push(self.for_update());
        let row: Option<ScheduleRow> = self.fetch_row(&q).await?;
        row.map(ScheduleRow::into_domain).transpose()
    }

    /// The id of the agent's schedule `r` names, as this unit sees it, without locking it.
    pub async fn schedule_id(&mut self, workspace_id: &str, agent_id: &str, r: &IdRef) -> StoreResult<Option<String>> {
        let (col, val) = id_ref_column(r);
        let mut q = ListQuery::new("SELECT id FROM schedules WHERE 1 = 1");
        q.and_eq("workspace_id", Bind::Text(workspace_id.into()))
            .and_eq("agent_id", Bind::Text(agent_id.into()))
            .and_eq(col, Bind::Text(val));
        let row: Option<(String,)> = self.fetch_row(&q).await?;
        Ok(row.map(|(id,)| id))
    }

    pub async fn insert_schedule(&mut self, s: &Schedule) -> StoreResult<()> {
        on_tx!(self, |tx| {
            sqlx::query(
                "INSERT INTO schedules (id, account_id, workspace_id, agent_id, name, external_id, labels, profile_id, \
                 created_at, updated_at, first_user_message, system_prompt_data, first_user_message_data, rule, \
                 overlap_policy, state, variation_id, next_fire_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18)",
            )
            .bind(&s.meta.id)
            .bind(&s.meta.account_id)
            .bind(&s.workspace_id)
            .bind(&s.agent_id)
            .bind(&s.meta.name)
            .bind(&s.meta.external_id)
            .bind(labels_to(&s.meta.labels))
            .bind(&s.meta.profile_id)
            .bind(s.meta.created_at)
            .bind(s.meta.updated_at)
            .bind(&s.first_user_message)
            .bind(s.system_prompt_data.as_ref().map(Value::to_string))
            .bind(s.first_user_message_data.as_ref().map(Value::to_string))
            .bind(rule_json(s))
            .bind(s.overlap.as_wire())
            .bind(s.state.as_str())
            .bind(&s.variation_id)
            .bind(s.next_fire_at)
            .execute(&mut *tx)
            .await?;
        });
        Ok(())
    }

    /// Writes what a client may change (metadata, spec, state, and the due-time derived from
    /// them); the firing history columns belong to the engine and are left alone.
    pub async fn update_schedule(&mut self, s: &Schedule) -> StoreResult<()> {
        on_tx!(self, |tx| {
            sqlx::query(
                "UPDATE schedules SET name = $1, external_id = $2, labels = $3, updated_at = $4, \
                 first_user_message = $5, system_prompt_data = $6, first_user_message_data = $7, rule = $8, \
                 overlap_policy = $9, state = $10, variation_id = $11, next_fire_at = $12 \
                 WHERE workspace_id = $13 AND id = $14",
            )
            .bind(&s.meta.name)
            .bind(&s.meta.external_id)
            .bind(labels_to(&s.meta.labels))
            .bind(s.meta.updated_at)
            .bind(&s.first_user_message)
            .bind(s.system_prompt_data.as_ref().map(Value::to_string))
            .bind(s.first_user_message_data.as_ref().map(Value::to_string))
            .bind(rule_json(s))
            .bind(s.overlap.as_wire())
            .bind(s.state.as_str())
            .bind(&s.variation_id)
            .bind(s.next_fire_at)
            .bind(&s.workspace_id)
            .bind(&s.meta.id)
            .execute(&mut *tx)
            .await?;
        });
        Ok(())
    }

    /// Records what the engine did with the fire due at `due_ms` (read locked in this unit):
    /// the due time, the last fire or skip and the fire count. A compare-and-set on the due time
    /// and the state: `false` (nothing written) when the row no longer holds that due time.
    pub async fn record_schedule_fire(&mut self, s: &Schedule, due_ms: i64) -> StoreResult<bool> {
        let n = on_tx!(self, |tx| {
            sqlx::query(
                "UPDATE schedules SET next_fire_at = $1, last_fire_at = $2, last_objective_id = $3, \
                 last_skipped_at = $4, last_skip_reason = $5, total_fires = $6 \
                 WHERE workspace_id = $7 AND id = $8 AND next_fire_at = $9 AND state = 'ACTIVE'",
            )
            .bind(s.next_fire_at)
            .bind(s.last_fire_at)
            .bind(&s.last_objective_id)
            .bind(s.last_skipped_at)
            .bind(&s.last_skip_reason)
            .bind(s.total_fires)
            .bind(&s.workspace_id)
            .bind(&s.meta.id)
            .bind(due_ms)
            .execute(&mut *tx)
            .await?
            .rows_affected()
        });
        Ok(n == 1)
    }

    /// Pauses the agent's active schedules (unpublish and archive do this). Returns how many.
    pub async fn pause_agent_schedules(&mut self, workspace_id: &str, agent_id: &str) -> StoreResult<u64> {
        let now = self.now();
        let n = on_tx!(self, |tx| {
            sqlx::query(
                "UPDATE schedules SET state = 'PAUSED', next_fire_at = NULL, updated_at = $1 \
                 WHERE workspace_id = $2 AND agent_id = $3 AND state = 'ACTIVE'",
            )
            .bind(now)
            .bind(workspace_id)
            .bind(agent_id)
            .execute(&mut *tx)
            .await?
            .rows_affected()
        });
        Ok(n)
    }
}

impl Tx {
    /// How many schedules (not archived) fire a variation, as this unit sees them.
    pub async fn count_schedules_on_variation(&mut self, workspace_id: &str, variation_id: &str) -> StoreResult<i64> {
        let mut q = ListQuery::new("SELECT COUNT(*) FROM schedules WHERE state <> 'ARCHIVED'");
        q.and_eq("workspace_id", Bind::Text(workspace_id.into()))
            .and_eq("variation_id", Bind::Text(variation_id.into()));
        self.fetch_scalar_i64(&q).await
    }
}
