//! Agents.

use crate::tx::on_tx;
use crate::{Reads, Tx};
use cadenza_domain::IdRef;
use cadenza_domain::agents::{Agent, AgentStatus, SelectionMode};
use cadenza_domain::page::{ListParams, Page};
use cadenza_domain::variations::Variation;
use serde_json::Value;

use crate::list::{Bind, ListQuery};
use crate::rows::{HasMeta, MetaRow, id_ref_column, labels_to};
use crate::{StoreError, StoreResult};

#[derive(sqlx::FromRow)]
struct AgentRow {
    #[sqlx(flatten)]
    meta: MetaRow,
    workspace_id: String,
    status: String,
    selection_mode: String,
    description: String,
    input_schema: Option<String>,
    output_definition: Option<String>,
    webhook_events_url: String,
    enable_episodic_memory: i64,
    episodic_memory_ttl: Option<i64>,
}

impl HasMeta for AgentRow {
    fn meta_row(&self) -> &MetaRow {
        &self.meta
    }
}

fn json_from(field: &str, text: Option<String>) -> StoreResult<Option<Value>> {
    text.map(|t| serde_json::from_str(&t).map_err(|e| StoreError::Corrupt(format!("{field}: {e}")))).transpose()
}

impl AgentRow {
    fn into_domain(self) -> StoreResult<Agent> {
        Ok(Agent {
            status: AgentStatus::parse(&self.status)
                .ok_or_else(|| StoreError::Corrupt(format!("agent status {}", self.status)))?,
            selection_mode: SelectionMode::parse_wire(&self.selection_mode)
                .ok_or_else(|| StoreError::Corrupt(format!("selection mode {}", self.selection_mode)))?,
            input_schema: json_from("input_schema", self.input_schema)?,
            output_definition: json_from("output_definition", self.output_definition)?,
            meta: self.meta.into_meta()?,
            workspace_id: self.workspace_id,
            description: self.description,
            webhook_events_url: self.webhook_events_url,
            enable_episodic_memory: self.enable_episodic_memory != 0,
            episodic_memory_ttl: self.episodic_memory_ttl,
        })
    }
}

const SELECT: &str = "SELECT id, account_id, workspace_id, name, external_id, labels, profile_id, created_at, updated_at, \
     status, selection_mode, description, input_schema, output_definition, webhook_events_url, enable_episodic_memory, \
     episodic_memory_ttl FROM agents WHERE 1 = 1";

/// Filters of the agent list beyond the generic ones.
#[derive(Debug, Clone, Default)]
pub struct AgentFilter {
    /// Only these statuses; empty means every status except archived.
    pub statuses: Vec<AgentStatus>,
    pub selection_mode: Option<SelectionMode>,
}

impl Reads {
    pub async fn get_agent(&self, workspace_id: &str, r: &IdRef) -> StoreResult<Option<Agent>> {
        let (col, val) = id_ref_column(r);
        let mut q = ListQuery::new(SELECT);
        q.and_eq("workspace_id", Bind::Text(workspace_id.into())).and_eq(col, Bind::Text(val));
        let row: Option<AgentRow> = self.fetch_row(&q).await?;
        row.map(AgentRow::into_domain).transpose()
    }

    pub async fn list_agents(
        &self,
        workspace_id: &str,
        filter: &AgentFilter,
        params: &ListParams,
    ) -> StoreResult<Page<Agent>> {
        let mut q = ListQuery::new(SELECT);
        q.and_eq("workspace_id", Bind::Text(workspace_id.into()));
        if filter.statuses.is_empty() {
            q.push(" AND status <> ").bind(Bind::Text(AgentStatus::Archived.as_str().into()));
        } else {
            q.push(" AND status IN (");
            for (i, s) in filter.statuses.iter().enumerate() {
                if i > 0 {
                    q.push(", ");
                }
                q.bind(Bind::Text(s.as_str().into()));
            }
            q.push(")");
        }
        if let Some(m) = filter.selection_mode {
            q.and_eq("selection_mode", Bind::Text(m.as_wire().into()));
        }
        let page = self.list_page::<AgentRow>(q, "name", params).await?;
        let items = page.items.into_iter().map(AgentRow::into_domain).collect::<StoreResult<Vec<_>>>()?;
        Ok(Page { items, next_cursor: page.next_cursor })
    }

    /// How many agents the workspace has (archived included).
    pub async fn count_agents(&self, workspace_id: &str) -> StoreResult<i64> {
        let mut q = ListQuery::new("SELECT COUNT(*) FROM agents WHERE 1 = 1");
        q.and_eq("workspace_id", Bind::Text(workspace_id.into()));
        self.fetch_scalar_i64(&q).await
    }
}

impl Tx {
    /// Stores a new agent, and its default variation in the same transaction when one is given.
    pub async fn insert_agent(&mut self, a: &Agent, default_variation: Option<&Variation>) -> StoreResult<()> {
        on_tx!(self, |tx| {
            sqlx::query(
                "INSERT INTO agents (id, account_id, workspace_id, name, external_id, labels, profile_id, created_at, \
                 updated_at, status, selection_mode, description, input_schema, output_definition, webhook_events_url, \
                 enable_episodic_memory, episodic_memory_ttl) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17)",
            )
            .bind(&a.meta.id)
            .bind(&a.meta.account_id)
            .bind(&a.workspace_id)
            .bind(&a.meta.name)
            .bind(&a.meta.external_id)
            .bind(labels_to(&a.meta.labels))
            .bind(&a.meta.profile_id)
            .bind(a.meta.created_at)
            .bind(a.meta.updated_at)
            .bind(a.status.as_str())
            .bind(a.selection_mode.as_wire())
            .bind(&a.description)
            .bind(a.input_schema.as_ref().map(Value::to_string))
            .bind(a.output_definition.as_ref().map(Value::to_string))
            .bind(&a.webhook_events_url)
            .bind(i64::from(a.enable_episodic_memory))
            .bind(a.episodic_memory_ttl)
            .execute(&mut *tx)
            .await?;
            crate::bump_catalog!(tx, &a.workspace_id);
            if let Some(v) = default_variation {
                crate::variations::insert_variation_query!(v).execute(&mut *tx).await?;
            }
        });
        Ok(())
    }

    pub async fn delete_agent(&mut self, workspace_id: &str, id: &str) -> StoreResult<bool> {
        // The agent goes with its variations (their assignments and stacks), its schedules, and every
        // assignment that used it as a sub-agent.
        let n = on_tx!(self, |tx| {
            for sql in [
                "DELETE FROM variation_assignments WHERE workspace_id = $1 AND variation_id IN                  (SELECT id FROM variations WHERE workspace_id = $1 AND agent_id = $2)",
                "DELETE FROM variation_memory_layers WHERE workspace_id = $1 AND variation_id IN                  (SELECT id FROM variations WHERE workspace_id = $1 AND agent_id = $2)",
                "DELETE FROM variation_assignments WHERE workspace_id = $1 AND kind = 'agent' AND target_id = $2",
                "DELETE FROM variations WHERE workspace_id = $1 AND agent_id = $2",
                "DELETE FROM schedules WHERE workspace_id = $1 AND agent_id = $2",
            ] {
                sqlx::query(sql).bind(workspace_id).bind(id).execute(&mut *tx).await?;
            }
            crate::bump_catalog!(tx, workspace_id);
            sqlx::query("DELETE FROM agents WHERE workspace_id = $1 AND id = $2")
                .bind(workspace_id)
                .bind(id)
                .execute(&mut *tx)
                .await?
                .rows_affected()
        });
        Ok(n > 0)
    }
}

impl Reads {
    /// The workspace's agents that are not archived (what search indexes).
    pub async fn search_agents(&self, workspace_id: &str) -> StoreResult<Vec<Agent>> {
        let mut q = ListQuery::new(SELECT);
        q.and_eq("workspace_id", Bind::Text(workspace_id.into()));
        q.push(" AND status <> 'ARCHIVED'");
        let rows: Vec<AgentRow> = self.fetch_rows(&q).await?;
        rows.into_iter().map(AgentRow::into_domain).collect()
    }
}

impl Tx {
    /// Writes every mutable field of `a`.
    pub async fn update_agent(&mut self, a: &Agent) -> StoreResult<()> {
        on_tx!(self, |tx| {
            sqlx::query(
                "UPDATE agents SET name = $1, external_id = $2, labels = $3, updated_at = $4, status = $5, \
                 selection_mode = $6, description = $7, input_schema = $8, output_definition = $9, \
                 webhook_events_url = $10, enable_episodic_memory = $11, episodic_memory_ttl = $12 \
                 WHERE workspace_id = $13 AND id = $14",
            )
            .bind(&a.meta.name)
            .bind(&a.meta.external_id)
            .bind(labels_to(&a.meta.labels))
            .bind(a.meta.updated_at)
            .bind(a.status.as_str())
            .bind(a.selection_mode.as_wire())
            .bind(&a.description)
            .bind(a.input_schema.as_ref().map(Value::to_string))
            .bind(a.output_definition.as_ref().map(Value::to_string))
            .bind(&a.webhook_events_url)
            .bind(i64::from(a.enable_episodic_memory))
            .bind(a.episodic_memory_ttl)
            .bind(&a.workspace_id)
            .bind(&a.meta.id)
            .execute(&mut *tx)
            .await?;
            crate::bump_catalog!(tx, &a.workspace_id);
        });
        Ok(())
    }
}

impl Tx {
    /// The agent, locked for the rest of this unit (PostgreSQL), so a read-modify-write of it
    /// cannot lose a concurrent change.
    pub async fn get_agent_locked(&mut self, workspace_id: &str, r: &IdRef) -> StoreResult<Option<Agent>> {
        let (col, val) = id_ref_column(r);
        let mut q = ListQuery::new(SELECT);
        q.and_eq("workspace_id", Bind::Text(workspace_id.into())).and_eq(col, Bind::Text(val));
        q.push(self.for_update());
        let row: Option<AgentRow> = self.fetch_row(&q).await?;
        row.map(AgentRow::into_domain).transpose()
    }
}
