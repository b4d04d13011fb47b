//! Agent variations, their assignments (tools, tool sets, sub-agents) and their memory-layer
//! stacks.

use crate::tx::on_tx;
use crate::{Reads, Tx};
use cadenza_domain::IdRef;
use cadenza_domain::ids::IdKind;
use cadenza_domain::page::{ListParams, Page};
use cadenza_domain::variations::{
    Assignment, AssignmentKind, CompactionConfig, Constraints, LayerAssignment, ModelConfig, ProgressiveDiscovery,
    Variation,
};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::list::{Bind, ListQuery};
use crate::rows::{HasMeta, MetaRow, id_ref_column, labels_to};
use crate::{StoreError, StoreResult, on_db};

#[derive(sqlx::FromRow)]
struct VariationRow {
    #[sqlx(flatten)]
    meta: MetaRow,
    workspace_id: String,
    agent_id: String,
    prompt: String,
    first_user_message_template: String,
    description: String,
    model_id: Option<String>,
    model_config: Option<String>,
    constraints: String,
    compaction: String,
    progressive_discovery: Option<String>,
    enable_episodic_memory: i64,
    episodic_memory_ttl: Option<i64>,
    weight: i64,
}

impl HasMeta for VariationRow {
    fn meta_row(&self) -> &MetaRow {
        &self.meta
    }
}

fn from_json<T: DeserializeOwned>(field: &str, text: &str) -> StoreResult<T> {
    serde_json::from_str(text).map_err(|e| StoreError::Corrupt(format!("{field}: {e}")))
}

pub(crate) fn to_json<T: Serialize>(v: &T) -> String {
    serde_json::to_string(v).unwrap_or_else(|_| "{}".to_string())
}

impl VariationRow {
    fn into_domain(self) -> StoreResult<Variation> {
        let mut model_config: Option<ModelConfig> =
            self.model_config.as_deref().map(|t| from_json("model_config", t)).transpose()?;
        // The model lives in its own column (swaps update only that); the JSON carries the rest.
        if let Some(mc) = model_config.as_mut() {
            mc.model_id = self.model_id.clone().unwrap_or_default();
        }
        Ok(Variation {
            meta: self.meta.into_meta()?,
            workspace_id: self.workspace_id,
            agent_id: self.agent_id,
            prompt: self.prompt,
            first_user_message_template: self.first_user_message_template,
            description: self.description,
            model_config,
            constraints: from_json::<Constraints>("constraints", &self.constraints)?,
            compaction: from_json::<CompactionConfig>("compaction", &self.compaction)?,
            progressive_discovery: self
                .progressive_discovery
                .as_deref()
                .map(|t| from_json::<ProgressiveDiscovery>("progressive_discovery", t))
                .transpose()?,
            enable_episodic_memory: self.enable_episodic_memory != 0,
            episodic_memory_ttl: self.episodic_memory_ttl,
            weight: i32::try_from(self.weight).unwrap_or(0),
        })
    }
}

const SELECT: &str = "SELECT id, account_id, workspace_id, agent_id, name, external_id, labels, profile_id, created_at, \
     updated_at, prompt, first_user_message_template, description, model_id, model_config, constraints, compaction, \
     progressive_discovery, enable_episodic_memory, episodic_memory_ttl, weight FROM variations WHERE 1 = 1";

const ASSIGNMENTS: &str = "SELECT a.id, a.variation_id, a.kind, a.target_id, \
     COALESCE(g.name, t.name, ts.name) AS target_name, a.created_at \
     FROM variation_assignments a \
     LEFT JOIN agents g ON a.kind = 'agent' AND g.id = a.target_id \
     LEFT JOIN tools t ON a.kind = 'tool' AND t.id = a.target_id \
     LEFT JOIN tool_sets ts ON a.kind = 'toolSet' AND ts.id = a.target_id \
     WHERE a.workspace_id = $1 AND a.variation_id = $2 ORDER BY a.id";

#[derive(sqlx::FromRow)]
struct AssignmentRow {
    id: String,
    variation_id: String,
    kind: String,
    target_id: String,
    target_name: Option<String>,
    created_at: i64,
}

const STACK: &str = "SELECT m.id, m.variation_id, m.layer_id, l.name AS layer_name, m.position, m.created_at \
     FROM variation_memory_layers m JOIN memory_layers l ON l.id = m.layer_id \
     WHERE m.workspace_id = $1 AND m.variation_id = $2 ORDER BY m.position ASC";

impl AssignmentRow {
    fn into_domain(self) -> StoreResult<Assignment> {
        Ok(Assignment {
            kind: AssignmentKind::parse(&self.kind)
                .ok_or_else(|| StoreError::Corrupt(format!("assignment kind {}", self.kind)))?,
            id: self.id,
            variation_id: self.variation_id,
            target_id: self.target_id,
            target_name: self.target_name.unwrap_or_default(),
            created_at: self.created_at,
        })
    }
}

#[derive(sqlx::FromRow)]
struct LayerAssignmentRow {
    id: String,
    variation_id: String,
    layer_id: String,
    layer_name: String,
    position: i64,
    created_at: i64,
}

/// The INSERT of one variation, bound and ready to execute; a macro so the agent's create can
/// run it inside its own transaction on either backend.
macro_rules! insert_variation_query {
    ($v:expr) => {{
        let v: &cadenza_domain::variations::Variation = $v;
            sqlx::query(
                "INSERT INTO variations (id, account_id, workspace_id, agent_id, name, external_id, labels, profile_id, \
                 created_at, updated_at, prompt, first_user_message_template, description, model_id, model_config, \
                 constraints, compaction, progressive_discovery, enable_episodic_memory, episodic_memory_ttl, weight) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21)",
            )
            .bind(&v.meta.id)
            .bind(&v.meta.account_id)
            .bind(&v.workspace_id)
            .bind(&v.agent_id)
            .bind(&v.meta.name)
            .bind(&v.meta.external_id)
            .bind($crate::rows::labels_to(&v.meta.labels))
            .bind(&v.meta.profile_id)
            .bind(v.meta.created_at)
            .bind(v.meta.updated_at)
            .bind(&v.prompt)
            .bind(&v.first_user_message_template)
            .bind(&v.description)
            .bind(v.model_config.as_ref().map(|m| m.model_id.clone()))
            .bind(v.model_config.as_ref().map($crate::variations::to_json))
            .bind($crate::variations::to_json(&v.constraints))
            .bind($crate::variations::to_json(&v.compaction))
            .bind(v.progressive_discovery.as_ref().map($crate::variations::to_json))
            .bind(i64::from(v.enable_episodic_memory))
            .bind(v.episodic_memory_ttl)
            .bind(i64::from(v.weight))
    }};
}
pub(crate) use insert_variation_query;

impl Reads {
    pub async fn get_variation(&self, workspace_id: &str, agent_id: &str, r: &IdRef) -> StoreResult<Option<Variation>> {
        let (col, val) = id_ref_column(r);
        let mut q = ListQuery::new(SELECT);
        q.and_eq("workspace_id", Bind::Text(workspace_id.into()))
            .and_eq("agent_id", Bind::Text(agent_id.into()))
            .and_eq(col, Bind::Text(val));
        let row: Option<VariationRow> = self.fetch_row(&q).await?;
        row.map(VariationRow::into_domain).transpose()
    }

    pub async fn list_variations(
        &self,
        workspace_id: &str,
        agent_id: &str,
        params: &ListParams,
    ) -> StoreResult<Page<Variation>> {
        let mut q = ListQuery::new(SELECT);
        q.and_eq("workspace_id", Bind::Text(workspace_id.into())).and_eq("agent_id", Bind::Text(agent_id.into()));
        let page = self.list_page::<VariationRow>(q, "name", params).await?;
        let items = page.items.into_iter().map(VariationRow::into_domain).collect::<StoreResult<Vec<_>>>()?;
        Ok(Page { items, next_cursor: page.next_cursor })
    }

    pub async fn count_variations(&self, workspace_id: &str, agent_id: &str) -> StoreResult<i64> {
        let mut q = ListQuery::new("SELECT COUNT(*) FROM variations WHERE 1 = 1");
        q.and_eq("workspace_id", Bind::Text(workspace_id.into())).and_eq("agent_id", Bind::Text(agent_id.into()));
        self.fetch_scalar_i64(&q).await
    }

    /// How many variations of the workspace run on `model_id`.
    pub async fn count_variations_on_model(&self, workspace_id: &str, model_id: &str) -> StoreResult<i64> {
        let mut q = ListQuery::new("SELECT COUNT(*) FROM variations WHERE 1 = 1");
        q.and_eq("workspace_id", Bind::Text(workspace_id.into())).and_eq("model_id", Bind::Text(model_id.into()));
        self.fetch_scalar_i64(&q).await
    }

    /// The workspace's models that at least one variation uses.
    pub async fn models_in_use(&self, workspace_id: &str) -> StoreResult<Vec<String>> {
        Ok(on_db!(self, read, |db| sqlx::query_scalar(
            "SELECT DISTINCT model_id FROM variations WHERE workspace_id = $1 AND model_id IS NOT NULL"
        )
        .bind(workspace_id)
        .fetch_all(db)
        .await?))
    }

    // ---- assignments ----

    pub async fn list_assignments(&self, workspace_id: &str, variation_id: &str) -> StoreResult<Vec<Assignment>> {
        let rows: Vec<AssignmentRow> = on_db!(self, read, |db| sqlx::query_as(ASSIGNMENTS)
            .bind(workspace_id)
            .bind(variation_id)
            .fetch_all(db)
            .await?);
        rows.into_iter().map(AssignmentRow::into_domain).collect()
    }

    // ---- memory-layer stacks ----

    pub async fn list_layer_assignments(
        &self,
        workspace_id: &str,
        variation_id: &str,
    ) -> StoreResult<Vec<LayerAssignment>> {
        let rows: Vec<LayerAssignmentRow> =
            on_db!(self, read, |db| sqlx::query_as(STACK).bind(workspace_id).bind(variation_id).fetch_all(db).await?);
        Ok(rows.into_iter().map(LayerAssignmentRow::into_domain).collect())
    }
}

impl Tx {
    pub async fn insert_variation(&mut self, v: &Variation) -> StoreResult<()> {
        on_tx!(self, |tx| {
            insert_variation_query!(v).execute(&mut *tx).await?;
        });
        Ok(())
    }

    /// Moves every variation of the workspace from one model to another. Returns how many.
    pub async fn swap_variation_model(&mut self, workspace_id: &str, from: &str, to: &str) -> StoreResult<u64> {
        let now = self.now();
        Ok(on_tx!(self, |tx| {
            sqlx::query(
                "UPDATE variations SET model_id = $1, updated_at = $2 WHERE workspace_id = $3 AND model_id = $4",
            )
            .bind(to)
            .bind(now)
            .bind(workspace_id)
            .bind(from)
            .execute(&mut *tx)
            .await?
            .rows_affected()
        }))
    }

    pub async fn remove_assignment(
        &mut self,
        workspace_id: &str,
        variation_id: &str,
        assignment_id: &str,
    ) -> StoreResult<bool> {
        let n = on_tx!(self, |tx| {
            sqlx::query("DELETE FROM variation_assignments WHERE workspace_id = $1 AND variation_id = $2 AND id = $3")
                .bind(workspace_id)
                .bind(variation_id)
                .bind(assignment_id)
                .execute(&mut *tx)
                .await?
                .rows_affected()
        });
        Ok(n > 0)
    }

    pub async fn remove_layer_assignment(
        &mut self,
        workspace_id: &str,
        variation_id: &str,
        id: &str,
    ) -> StoreResult<bool> {
        let n = on_tx!(self, |tx| {
            sqlx::query("DELETE FROM variation_memory_layers WHERE workspace_id = $1 AND variation_id = $2 AND id = $3")
                .bind(workspace_id)
                .bind(variation_id)
                .bind(id)
                .execute(&mut *tx)
                .await?
                .rows_affected()
        });
        Ok(n > 0)
    }

    /// Locks every variation of the workspace running on `model_id` (PostgreSQL): a swap takes
    /// these before the models' locks, the order a variation's update takes them in.
    pub async fn lock_variations_on_model(&mut self, workspace_id: &str, model_id: &str) -> StoreResult<()> {
        let mut q = ListQuery::new("SELECT COUNT(*) FROM (SELECT id FROM variations WHERE 1 = 1");
        q.and_eq("workspace_id", Bind::Text(workspace_id.into())).and_eq("model_id", Bind::Text(model_id.into()));
        let lock = self.for_update();
        q.push(lock).push(") locked");
        self.fetch_scalar_i64(&q).await?;
        Ok(())
    }

    /// How many variations of the workspace run on `model_id`, as this unit sees them.
    pub async fn count_variations_on_model(&mut self, workspace_id: &str, model_id: &str) -> StoreResult<i64> {
        let mut q = ListQuery::new("SELECT COUNT(*) FROM variations WHERE 1 = 1");
        q.and_eq("workspace_id", Bind::Text(workspace_id.into())).and_eq("model_id", Bind::Text(model_id.into()));
        self.fetch_scalar_i64(&q).await
    }

    /// How many variation stacks hold the layer, as this unit sees them.
    pub async fn count_layer_uses(&mut self, workspace_id: &str, layer_id: &str) -> StoreResult<i64> {
        let mut q = ListQuery::new("SELECT COUNT(*) FROM variation_memory_layers WHERE 1 = 1");
        q.and_eq("workspace_id", Bind::Text(workspace_id.into())).and_eq("layer_id", Bind::Text(layer_id.into()));
        self.fetch_scalar_i64(&q).await
    }
}

impl Tx {
    pub async fn update_variation(&mut self, v: &Variation) -> StoreResult<()> {
        let model_id = v.model_config.as_ref().map(|m| m.model_id.clone());
        on_tx!(self, |tx| {
            sqlx::query(
                "UPDATE variations SET name = $1, external_id = $2, labels = $3, updated_at = $4, prompt = $5, \
                 first_user_message_template = $6, description = $7, model_id = $8, model_config = $9, constraints = $10, \
                 compaction = $11, progressive_discovery = $12, enable_episodic_memory = $13, episodic_memory_ttl = $14, \
                 weight = $15 WHERE workspace_id = $16 AND id = $17",
            )
            .bind(&v.meta.name)
            .bind(&v.meta.external_id)
            .bind(labels_to(&v.meta.labels))
            .bind(v.meta.updated_at)
            .bind(&v.prompt)
            .bind(&v.first_user_message_template)
            .bind(&v.description)
            .bind(&model_id)
            .bind(v.model_config.as_ref().map(to_json))
            .bind(to_json(&v.constraints))
            .bind(to_json(&v.compaction))
            .bind(v.progressive_discovery.as_ref().map(to_json))
            .bind(i64::from(v.enable_episodic_memory))
            .bind(v.episodic_memory_ttl)
            .bind(i64::from(v.weight))
            .bind(&v.workspace_id)
            .bind(&v.meta.id)
            .execute(&mut *tx)
            .await?;
        });
        Ok(())
    }

    /// Deletes a variation with its assignments and memory-layer stack.
    pub async fn delete_variation(&mut self, workspace_id: &str, id: &str) -> StoreResult<bool> {
        let n = on_tx!(self, |tx| {
            sqlx::query("DELETE FROM variation_assignments WHERE workspace_id = $1 AND variation_id = $2")
                .bind(workspace_id)
                .bind(id)
                .execute(&mut *tx)
                .await?;
            sqlx::query("DELETE FROM variation_memory_layers WHERE workspace_id = $1 AND variation_id = $2")
                .bind(workspace_id)
                .bind(id)
                .execute(&mut *tx)
                .await?;
            sqlx::query("DELETE FROM variations WHERE workspace_id = $1 AND id = $2")
                .bind(workspace_id)
                .bind(id)
                .execute(&mut *tx)
                .await?
                .rows_affected()
        });
        Ok(n > 0)
    }

    /// Assigns `target` to the variation; assigning it again returns the existing assignment.
    pub async fn add_assignment(
        &mut self,
        workspace_id: &str,
        variation_id: &str,
        kind: AssignmentKind,
        target: &str,
    ) -> StoreResult<String> {
        let now = self.now();
        let id = IdKind::Assignment.new_id(now);
        Ok(on_tx!(self, |tx| {
            sqlx::query(
                "INSERT INTO variation_assignments (id, workspace_id, variation_id, kind, target_id, created_at) \
                 VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (variation_id, kind, target_id) DO NOTHING",
            )
            .bind(&id)
            .bind(workspace_id)
            .bind(variation_id)
            .bind(kind.as_str())
            .bind(target)
            .bind(now)
            .execute(&mut *tx)
            .await?;
            sqlx::query_scalar::<_, String>(
                "SELECT id FROM variation_assignments WHERE variation_id = $1 AND kind = $2 AND target_id = $3",
            )
            .bind(variation_id)
            .bind(kind.as_str())
            .bind(target)
            .fetch_one(&mut *tx)
            .await?
        }))
    }

    /// Puts a layer on the variation's stack at `position` (default: above the top). Returns
    /// the assignment id. Conflicts (layer already there, position taken) are `Conflict`.
    pub async fn add_layer_assignment(
        &mut self,
        workspace_id: &str,
        variation_id: &str,
        layer_id: &str,
        position: Option<i32>,
    ) -> StoreResult<(String, i32)> {
        let now = self.now();
        let id = IdKind::LayerAssignment.new_id(now);
        on_tx!(self, |tx| {
            let position = match position {
                Some(p) => i64::from(p),
                None => {
                    let top: Option<i64> = sqlx::query_scalar(
                        "SELECT MAX(position) FROM variation_memory_layers WHERE workspace_id = $1 AND variation_id = $2",
                    )
                    .bind(workspace_id)
                    .bind(variation_id)
                    .fetch_one(&mut *tx)
                    .await?;
                    top.map_or(0, |t| t + 1)
                }
            };
            sqlx::query(
                "INSERT INTO variation_memory_layers (id, workspace_id, variation_id, layer_id, position, created_at) \
                 VALUES ($1, $2, $3, $4, $5, $6)",
            )
            .bind(&id)
            .bind(workspace_id)
            .bind(variation_id)
            .bind(layer_id)
            .bind(position)
            .bind(now)
            .execute(&mut *tx)
            .await?;
            Ok((id, i32::try_from(position).unwrap_or(0)))
        })
    }

    pub async fn move_layer_assignment(
        &mut self,
        workspace_id: &str,
        variation_id: &str,
        id: &str,
        position: i32,
    ) -> StoreResult<bool> {
        let n = on_tx!(self, |tx| {
            sqlx::query("UPDATE variation_memory_layers SET position = $1 WHERE workspace_id = $2 AND variation_id = $3 AND id = $4")
                .bind(i64::from(position))
                .bind(workspace_id)
                .bind(variation_id)
                .bind(id)
                .execute(&mut *tx)
                .await?
                .rows_affected()
        });
        Ok(n > 0)
    }
}

impl LayerAssignmentRow {
    fn into_domain(self) -> LayerAssignment {
        LayerAssignment {
            id: self.id,
            variation_id: self.variation_id,
            layer_id: self.layer_id,
            layer_name: self.layer_name,
            position: i32::try_from(self.position).unwrap_or(0),
            created_at: self.created_at,
        }
    }
}

impl Tx {
    /// A variation's assignments, as this unit sees them.
    pub async fn list_assignments(&mut self, workspace_id: &str, variation_id: &str) -> StoreResult<Vec<Assignment>> {
        let rows: Vec<AssignmentRow> = on_tx!(self, |c| sqlx::query_as(ASSIGNMENTS)
            .bind(workspace_id)
            .bind(variation_id)
            .fetch_all(&mut *c)
            .await?);
        rows.into_iter().map(AssignmentRow::into_domain).collect()
    }

    /// A variation's memory stack, bottom first, as this unit sees it.
    pub async fn list_layer_assignments(
        &mut self,
        workspace_id: &str,
        variation_id: &str,
    ) -> StoreResult<Vec<LayerAssignment>> {
        let rows: Vec<LayerAssignmentRow> =
            on_tx!(self, |c| sqlx::query_as(STACK).bind(workspace_id).bind(variation_id).fetch_all(&mut *c).await?);
        Ok(rows.into_iter().map(LayerAssignmentRow::into_domain).collect())
    }

    /// The variation, locked for the rest of this unit (PostgreSQL): every rule about it (its
    /// stack's cap, "not while a schedule fires it") is checked under this lock.
    pub async fn get_variation_locked(
        &mut self,
        workspace_id: &str,
        agent_id: &str,
        r: &IdRef,
    ) -> StoreResult<Option<Variation>> {
        let (col, val) = id_ref_column(r);
        let mut q = ListQuery::new(SELECT);
        q.and_eq("workspace_id", Bind::Text(workspace_id.into()))
            .and_eq("agent_id", Bind::Text(agent_id.into()))
            .and_eq(col, Bind::Text(val));
        q.push(self.for_update());
        let row: Option<VariationRow> = self.fetch_row(&q).await?;
        row.map(VariationRow::into_domain).transpose()
    }

    /// Locks a variation by id (PostgreSQL); whether it exists in the workspace.
    pub async fn lock_variation(&mut self, workspace_id: &str, id: &str) -> StoreResult<bool> {
        let mut q = ListQuery::new("SELECT COUNT(*) FROM (SELECT id FROM variations WHERE 1 = 1");
        q.and_eq("workspace_id", Bind::Text(workspace_id.into())).and_eq("id", Bind::Text(id.into()));
        let lock = self.for_update();
        q.push(lock).push(") locked");
        Ok(self.fetch_scalar_i64(&q).await? > 0)
    }

    pub async fn count_variations(&mut self, workspace_id: &str, agent_id: &str) -> StoreResult<i64> {
        let mut q = ListQuery::new("SELECT COUNT(*) FROM variations WHERE 1 = 1");
        q.and_eq("workspace_id", Bind::Text(workspace_id.into())).and_eq("agent_id", Bind::Text(agent_id.into()));
        self.fetch_scalar_i64(&q).await
    }

    /// (parent agent, sub-agent) pairs of the workspace, as this unit sees them.
    pub async fn sub_agent_edges(&mut self, workspace_id: &str) -> StoreResult<Vec<(String, String)>> {
        Ok(on_tx!(self, |c| sqlx::query_as(
            "SELECT v.agent_id, a.target_id FROM variation_assignments a JOIN variations v ON v.id = a.variation_id \
             WHERE a.workspace_id = $1 AND a.kind = 'agent'"
        )
        .bind(workspace_id)
        .fetch_all(&mut *c)
        .await?))
    }
}
