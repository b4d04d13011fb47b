//! Tool sets, their tools and their sync log. Creating or re-pointing a synced tool set
//! enqueues its sync job in the same unit of work (`cadenza_services::tool_sets`), so a
//! committed change is always synced.

use crate::Reads;
use cadenza_domain::IdRef;
use cadenza_domain::ids::IdKind;
use cadenza_domain::page::{ListParams, Page};
use cadenza_domain::tool_sets::{Adapter, SyncEvent, Tool, ToolSet, ToolSetEvent, ToolSetState, ToolState};
use cadenza_domain::variations::AssignmentKind;
use serde_json::Value;

use crate::list::{Bind, ListQuery};
use crate::rows::{HasMeta, MetaRow, id_ref_column, labels_to};
use crate::tx::on_tx;
use crate::{StoreError, StoreResult, Tx, on_db};

#[derive(sqlx::FromRow)]
struct ToolSetRow {
    #[sqlx(flatten)]
    meta: MetaRow,
    workspace_id: String,
    description: String,
    adapter: String,
    state: String,
    last_sync_at: Option<i64>,
}

impl HasMeta for ToolSetRow {
    fn meta_row(&self) -> &MetaRow {
        &self.meta
    }
}

impl ToolSetRow {
    fn into_domain(self) -> StoreResult<ToolSet> {
        let adapter: Adapter =
            serde_json::from_str(&self.adapter).map_err(|e| StoreError::Corrupt(format!("adapter: {e}")))?;
        Ok(ToolSet {
            meta: self.meta.into_meta()?,
            workspace_id: self.workspace_id,
            description: self.description,
            adapter,
            state: ToolSetState::from_db(&self.state),
            last_sync_at: self.last_sync_at,
        })
    }
}

const SELECT_SETS: &str = "SELECT id, account_id, workspace_id, name, external_id, labels, profile_id, created_at, \
     updated_at, description, adapter, state, last_sync_at FROM tool_sets WHERE 1 = 1";

#[derive(sqlx::FromRow)]
struct ToolRow {
    #[sqlx(flatten)]
    meta: MetaRow,
    workspace_id: String,
    tool_set_id: String,
    description: String,
    parameters: String,
    config: String,
    requires_approval: i64,
    state: String,
    omitted_by_user: i64,
    llm_tool_name: String,
    signature: String,
}

impl HasMeta for ToolRow {
    fn meta_row(&self) -> &MetaRow {
        &self.meta
    }
}

fn json(field: &str, text: &str) -> StoreResult<Value> {
    serde_json::from_str(text).map_err(|e| StoreError::Corrupt(format!("{field}: {e}")))
}

impl ToolRow {
    fn into_domain(self) -> StoreResult<Tool> {
        Ok(Tool {
            meta: self.meta.into_meta()?,
            workspace_id: self.workspace_id,
            tool_set_id: self.tool_set_id,
            description: self.description,
            parameters: json("parameters", &self.parameters)?,
            config: json("config", &self.config)?,
            requires_approval: self.requires_approval != 0,
            state: ToolState::from_db(&self.state),
            omitted_by_user: self.omitted_by_user != 0,
            llm_tool_name: self.llm_tool_name,
            signature: self.signature,
        })
    }
}

const SELECT_TOOLS: &str = "SELECT id, account_id, workspace_id, tool_set_id, name, external_id, labels, profile_id, \
     created_at, updated_at, description, parameters, config, requires_approval, state, omitted_by_user, llm_tool_name, \
     signature FROM tools WHERE 1 = 1";

#[derive(sqlx::FromRow)]
struct EventRow {
    #[sqlx(flatten)]
    meta: MetaRow,
    workspace_id: String,
    tool_set_id: String,
    kind: String,
    message: String,
    tools_synced: i64,
    error_type: String,
}

impl HasMeta for EventRow {
    fn meta_row(&self) -> &MetaRow {
        &self.meta
    }
}

impl EventRow {
    fn into_domain(self) -> StoreResult<ToolSetEvent> {
        let event = match self.kind.as_str() {
            "syncStarted" => SyncEvent::Started { message: self.message },
            "syncCompleted" => SyncEvent::Completed {
                tools_synced: i32::try_from(self.tools_synced).unwrap_or(i32::MAX),
                message: self.message,
            },
            "syncFailed" => SyncEvent::Failed { error_type: self.error_type, message: self.message },
            other => return Err(StoreError::Corrupt(format!("tool set event kind {other}"))),
        };
        Ok(ToolSetEvent {
            meta: self.meta.into_meta()?,
            workspace_id: self.workspace_id,
            tool_set_id: self.tool_set_id,
            event,
        })
    }
}

/// Tool counts of one set: (all, available, omitted).
pub struct ToolCounts {
    pub total: i64,
    pub available: i64,
    pub omitted: i64,
}

/// The tools list's filters (§12.3).
#[derive(Debug, Clone, Default)]
pub struct ToolFilter {
    /// Exact names, OR'ed.
    pub names: Vec<String>,
    pub requires_approval: Option<bool>,
    /// Empty: every state.
    pub states: Vec<ToolState>,
}

fn adapter_json(a: &Adapter) -> String {
    serde_json::to_string(a).unwrap_or_else(|_| "{}".to_string())
}

/// Assignments that reach a tool set: of the set itself or of one of its tools.
const SET_ASSIGNMENTS: &str = "FROM variation_assignments a WHERE a.workspace_id = $1 AND \
     ((a.kind = 'toolSet' AND a.target_id = $2) OR \
      (a.kind = 'tool' AND a.target_id IN (SELECT id FROM tools WHERE tool_set_id = $2)))";

/// Inside a transaction: consumes a COMPLETE upload (refusing any other state) and keeps its
/// text as the set's OpenAPI document.
macro_rules! consume_upload_into_set {
    ($tx:expr, $ts:expr, $upload_id:expr, $document:expr, $now:expr) => {{
        let n = sqlx::query(
            "UPDATE uploads SET status = 'CONSUMED', updated_at = $1, due_at = $1 \
             WHERE workspace_id = $2 AND id = $3 AND status = 'COMPLETE'",
        )
        .bind($now)
        .bind(&$ts.workspace_id)
        .bind($upload_id)
        .execute(&mut *$tx)
        .await?
        .rows_affected();
        if n != 1 {
            return Err(StoreError::Precondition("the upload is no longer COMPLETE (already used?)".into()));
        }
        sqlx::query("UPDATE tool_sets SET openapi_document = $1 WHERE workspace_id = $2 AND id = $3")
            .bind($document)
            .bind(&$ts.workspace_id)
            .bind(&$ts.meta.id)
            .execute(&mut *$tx)
            .await?;
    }};
}

/// One variation that has the set assigned, or (asked with a tool) that tool (TS10).
#[derive(Debug, Clone)]
pub struct ToolSetUse {
    pub assignment_id: String,
    pub variation_id: String,
    pub agent_id: String,
    /// When the assignment was made.
    pub assigned_at: i64,
}

#[derive(sqlx::FromRow)]
struct UseRow {
    id: String,
    variation_id: String,
    agent_id: String,
    created_at: i64,
    labels: String,
}

/// Usage lists page through assignments (ids in assignment order); `prefix` and `labels`
/// filter on the variation's name and labels.
impl crate::list::Listed for UseRow {
    fn id(&self) -> &str {
        &self.id
    }
    fn labels_json(&self) -> &str {
        &self.labels
    }
}

const SELECT_USES: &str = "SELECT id, variation_id, agent_id, created_at, labels FROM \
     (SELECT a.id, a.workspace_id, a.kind, a.target_id, a.variation_id, v.agent_id, a.created_at, v.name, v.labels \
      FROM variation_assignments a JOIN variations v ON v.id = a.variation_id) u WHERE 1 = 1";

impl Reads {
    pub async fn get_tool_set(&self, workspace_id: &str, r: &IdRef) -> StoreResult<Option<ToolSet>> {
        let (col, val) = id_ref_column(r);
        let mut q = ListQuery::new(SELECT_SETS);
        q.and_eq("workspace_id", Bind::Text(workspace_id.into())).and_eq(col, Bind::Text(val));
        let row: Option<ToolSetRow> = self.fetch_row(&q).await?;
        row.map(ToolSetRow::into_domain).transpose()
    }

    /// Tool sets in `states` (archived ones are hidden unless asked for).
    pub async fn list_tool_sets(
        &self,
        workspace_id: &str,
        states: &[ToolSetState],
        params: &ListParams,
    ) -> StoreResult<Page<ToolSet>> {
        let mut q = ListQuery::new(SELECT_SETS);
        q.and_eq("workspace_id", Bind::Text(workspace_id.into()));
        push_in(&mut q, "state", states.iter().map(|s| s.as_str()));
        let page = self.list_page::<ToolSetRow>(q, "name", params).await?;
        let items = page.items.into_iter().map(ToolSetRow::into_domain).collect::<StoreResult<Vec<_>>>()?;
        Ok(Page { items, next_cursor: page.next_cursor })
    }

    /// How many distinct agents use the set (directly or through its tools).
    pub async fn count_tool_set_agents(&self, workspace_id: &str, tool_set_id: &str) -> StoreResult<i64> {
        let sql = format!(
            "SELECT COUNT(DISTINCT v.agent_id) FROM variations v WHERE v.id IN (SELECT a.variation_id {SET_ASSIGNMENTS})"
        );
        self.scalar2(&sql, workspace_id, tool_set_id).await
    }

    /// The variations assigned the whole set, or with `tool_id` (a tool of the set) the ones
    /// assigned that tool directly (TS10).
    pub async fn list_tool_set_uses(
        &self,
        workspace_id: &str,
        tool_set_id: &str,
        tool_id: Option<&str>,
        params: &ListParams,
    ) -> StoreResult<Page<ToolSetUse>> {
        let (kind, target) = match tool_id {
            Some(t) => (AssignmentKind::Tool, t),
            None => (AssignmentKind::ToolSet, tool_set_id),
        };
        let mut q = ListQuery::new(SELECT_USES);
        q.and_eq("workspace_id", Bind::Text(workspace_id.into()))
            .and_eq("kind", Bind::Text(kind.as_str().into()))
            .and_eq("target_id", Bind::Text(target.into()));
        let page = self.list_page::<UseRow>(q, "name", params).await?;
        let items = page
            .items
            .into_iter()
            .map(|r| ToolSetUse {
                assignment_id: r.id,
                variation_id: r.variation_id,
                agent_id: r.agent_id,
                assigned_at: r.created_at,
            })
            .collect();
        Ok(Page { items, next_cursor: page.next_cursor })
    }

    /// A `COUNT` whose SQL takes the workspace as `$1` and one id as `$2`.
    async fn scalar2(&self, sql: &str, workspace_id: &str, id: &str) -> StoreResult<i64> {
        on_db!(self, read, |db| {
            Ok(sqlx::query_scalar::<_, i64>(sqlx::AssertSqlSafe(sql.to_string()))
                .bind(workspace_id)
                .bind(id)
                .fetch_one(db)
                .await?)
        })
    }

    pub async fn tool_counts(&self, workspace_id: &str, tool_set_id: &str) -> StoreResult<ToolCounts> {
        on_db!(self, read, |db| {
            let (total, available, omitted): (i64, i64, i64) = sqlx::query_as(
                "SELECT COUNT(*), \
                 COALESCE(SUM(CASE WHEN state = 'AVAILABLE' THEN 1 ELSE 0 END), 0), \
                 COALESCE(SUM(CASE WHEN state = 'OMITTED' THEN 1 ELSE 0 END), 0) \
                 FROM tools WHERE workspace_id = $1 AND tool_set_id = $2",
            )
            .bind(workspace_id)
            .bind(tool_set_id)
            .fetch_one(db)
            .await?;
            Ok(ToolCounts { total, available, omitted })
        })
    }

    /// Available tools of the workspace's active tool sets (the workspace `info` counter).
    pub async fn count_available_tools(&self, workspace_id: &str) -> StoreResult<i64> {
        let mut q = ListQuery::new(
            "SELECT COUNT(*) FROM tools t JOIN tool_sets s ON s.id = t.tool_set_id \
             WHERE t.state = 'AVAILABLE' AND s.state = 'ACTIVE'",
        );
        q.and_eq("t.workspace_id", Bind::Text(workspace_id.into()));
        self.fetch_scalar_i64(&q).await
    }

    pub async fn get_tool(&self, workspace_id: &str, tool_set_id: &str, r: &IdRef) -> StoreResult<Option<Tool>> {
        let (col, val) = id_ref_column(r);
        let mut q = ListQuery::new(SELECT_TOOLS);
        q.and_eq("workspace_id", Bind::Text(workspace_id.into()))
            .and_eq("tool_set_id", Bind::Text(tool_set_id.into()))
            .and_eq(col, Bind::Text(val));
        let row: Option<ToolRow> = self.fetch_row(&q).await?;
        row.map(ToolRow::into_domain).transpose()
    }

    /// A tool of the workspace by id alone (assignments name tools without their set).
    pub async fn find_tool(&self, workspace_id: &str, r: &IdRef) -> StoreResult<Option<Tool>> {
        let (col, val) = id_ref_column(r);
        let mut q = ListQuery::new(SELECT_TOOLS);
        q.and_eq("workspace_id", Bind::Text(workspace_id.into())).and_eq(col, Bind::Text(val));
        let row: Option<ToolRow> = self.fetch_row(&q).await?;
        row.map(ToolRow::into_domain).transpose()
    }

    pub async fn list_tools(
        &self,
        workspace_id: &str,
        tool_set_id: &str,
        filter: &ToolFilter,
        params: &ListParams,
    ) -> StoreResult<Page<Tool>> {
        let mut q = ListQuery::new(SELECT_TOOLS);
        q.and_eq("workspace_id", Bind::Text(workspace_id.into())).and_eq("tool_set_id", Bind::Text(tool_set_id.into()));
        push_in(&mut q, "name", filter.names.iter().map(String::as_str));
        push_in(&mut q, "state", filter.states.iter().map(|s| s.as_str()));
        if let Some(r) = filter.requires_approval {
            q.and_eq("requires_approval", Bind::Int(i64::from(r)));
        }
        let page = self.list_page::<ToolRow>(q, "name", params).await?;
        let items = page.items.into_iter().map(ToolRow::into_domain).collect::<StoreResult<Vec<_>>>()?;
        Ok(Page { items, next_cursor: page.next_cursor })
    }

    // ---- the sync log ----

    pub async fn list_tool_set_events(
        &self,
        workspace_id: &str,
        tool_set_id: &str,
        params: &ListParams,
    ) -> StoreResult<Page<ToolSetEvent>> {
        let mut q = ListQuery::new(
            "SELECT id, account_id, workspace_id, tool_set_id, name, external_id, labels, profile_id, created_at, \
             updated_at, kind, message, tools_synced, error_type FROM tool_set_events WHERE 1 = 1",
        );
        q.and_eq("workspace_id", Bind::Text(workspace_id.into())).and_eq("tool_set_id", Bind::Text(tool_set_id.into()));
        let page = self.list_page::<EventRow>(q, "kind", params).await?;
        let items = page.items.into_iter().map(EventRow::into_domain).collect::<StoreResult<Vec<_>>>()?;
        Ok(Page { items, next_cursor: page.next_cursor })
    }

    /// The OpenAPI document a sync consumed, if any.
    pub async fn openapi_document(&self, workspace_id: &str, tool_set_id: &str) -> StoreResult<Option<String>> {
        on_db!(self, read, |db| {
            let doc: Option<Option<String>> =
                sqlx::query_scalar("SELECT openapi_document FROM tool_sets WHERE workspace_id = $1 AND id = $2")
                    .bind(workspace_id)
                    .bind(tool_set_id)
                    .fetch_optional(db)
                    .await?;
            Ok(doc.flatten())
        })
    }
}

impl Tx {
    /// Stores a new tool set, with its first sync job when it has one. `from_upload` is an
    /// OpenAPI document read from a COMPLETE upload: the upload is consumed and the document
    /// kept, in the same transaction.
    pub async fn insert_tool_set(&mut self, ts: &ToolSet, from_upload: Option<(&str, &str)>) -> StoreResult<()> {
        let now = self.now();
        on_tx!(self, |tx| {
            sqlx::query(
                "INSERT INTO tool_sets (id, account_id, workspace_id, name, external_id, labels, profile_id, \
                 created_at, updated_at, description, adapter, state) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
            )
            .bind(&ts.meta.id)
            .bind(&ts.meta.account_id)
            .bind(&ts.workspace_id)
            .bind(&ts.meta.name)
            .bind(&ts.meta.external_id)
            .bind(labels_to(&ts.meta.labels))
            .bind(&ts.meta.profile_id)
            .bind(ts.meta.created_at)
            .bind(ts.meta.updated_at)
            .bind(&ts.description)
            .bind(adapter_json(&ts.adapter))
            .bind(ts.state.as_str())
            .execute(&mut *tx)
            .await?;
            crate::bump_catalog!(tx, &ts.workspace_id);
            if let Some((upload_id, document)) = from_upload {
                consume_upload_into_set!(tx, ts, upload_id, document, now);
            }
            Ok::<(), StoreError>(())
        })?;
        Ok(())
    }

    /// Writes a changed tool set, with a sync job when its source changed (and, as on insert,
    /// the document of a newly named upload).
    pub async fn update_tool_set(&mut self, ts: &ToolSet, from_upload: Option<(&str, &str)>) -> StoreResult<()> {
        let now = self.now();
        on_tx!(self, |tx| {
            sqlx::query(
                "UPDATE tool_sets SET name = $1, external_id = $2, labels = $3, updated_at = $4, description = $5, \
                 adapter = $6, state = $7 WHERE workspace_id = $8 AND id = $9",
            )
            .bind(&ts.meta.name)
            .bind(&ts.meta.external_id)
            .bind(labels_to(&ts.meta.labels))
            .bind(ts.meta.updated_at)
            .bind(&ts.description)
            .bind(adapter_json(&ts.adapter))
            .bind(ts.state.as_str())
            .bind(&ts.workspace_id)
            .bind(&ts.meta.id)
            .execute(&mut *tx)
            .await?;
            crate::bump_catalog!(tx, &ts.workspace_id);
            if let Some((upload_id, document)) = from_upload {
                consume_upload_into_set!(tx, ts, upload_id, document, now);
            }
            Ok::<(), StoreError>(())
        })?;
        Ok(())
    }

    // ---- tools ----

    pub async fn insert_tool(&mut self, t: &Tool) -> StoreResult<()> {
        on_tx!(self, |tx| {
            sqlx::query(
                "INSERT INTO tools (id, account_id, workspace_id, tool_set_id, name, external_id, labels, profile_id, \
                 created_at, updated_at, description, parameters, config, requires_approval, state, omitted_by_user, \
                 llm_tool_name, signature) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18)",
            )
            .bind(&t.meta.id)
            .bind(&t.meta.account_id)
            .bind(&t.workspace_id)
            .bind(&t.tool_set_id)
            .bind(&t.meta.name)
            .bind(&t.meta.external_id)
            .bind(labels_to(&t.meta.labels))
            .bind(&t.meta.profile_id)
            .bind(t.meta.created_at)
            .bind(t.meta.updated_at)
            .bind(&t.description)
            .bind(t.parameters.to_string())
            .bind(t.config.to_string())
            .bind(i64::from(t.requires_approval))
            .bind(t.state.as_str())
            .bind(i64::from(t.omitted_by_user))
            .bind(&t.llm_tool_name)
            .bind(&t.signature)
            .execute(&mut *tx)
            .await?;
            crate::bump_catalog!(tx, &t.workspace_id);
        });
        Ok(())
    }

    pub async fn update_tool(&mut self, t: &Tool) -> StoreResult<()> {
        on_tx!(self, |tx| {
            sqlx::query(
                "UPDATE tools SET name = $1, external_id = $2, labels = $3, updated_at = $4, description = $5, \
                 parameters = $6, config = $7, requires_approval = $8, state = $9, omitted_by_user = $10, \
                 llm_tool_name = $11, signature = $12 WHERE workspace_id = $13 AND id = $14",
            )
            .bind(&t.meta.name)
            .bind(&t.meta.external_id)
            .bind(labels_to(&t.meta.labels))
            .bind(t.meta.updated_at)
            .bind(&t.description)
            .bind(t.parameters.to_string())
            .bind(t.config.to_string())
            .bind(i64::from(t.requires_approval))
            .bind(t.state.as_str())
            .bind(i64::from(t.omitted_by_user))
            .bind(&t.llm_tool_name)
            .bind(&t.signature)
            .bind(&t.workspace_id)
            .bind(&t.meta.id)
            .execute(&mut *tx)
            .await?;
            crate::bump_catalog!(tx, &t.workspace_id);
        });
        Ok(())
    }

    pub async fn delete_tool(&mut self, workspace_id: &str, id: &str) -> StoreResult<bool> {
        let n = on_tx!(self, |tx| {
            crate::bump_catalog!(tx, workspace_id);
            sqlx::query("DELETE FROM tools WHERE workspace_id = $1 AND id = $2")
                .bind(workspace_id)
                .bind(id)
                .execute(&mut *tx)
                .await?
                .rows_affected()
        });
        Ok(n > 0)
    }

    /// A tool of the set, locked for the rest of this unit (PostgreSQL), so a PATCH applies its
    /// mask to the row as it is now.
    pub async fn get_tool_locked(
        &mut self,
        workspace_id: &str,
        tool_set_id: &str,
        r: &IdRef,
    ) -> StoreResult<Option<Tool>> {
        let (col, val) = id_ref_column(r);
        let mut q = ListQuery::new(SELECT_TOOLS);
        q.and_eq("workspace_id", Bind::Text(workspace_id.into()))
            .and_eq("tool_set_id", Bind::Text(tool_set_id.into()))
            .and_eq(col, Bind::Text(val));
        q.push(self.for_update());
        let row: Option<ToolRow> = self.fetch_row(&q).await?;
        row.map(ToolRow::into_domain).transpose()
    }

    /// Variations assigned the tool, as this unit sees them.
    pub async fn count_tool_assignments(&mut self, workspace_id: &str, tool_id: &str) -> StoreResult<i64> {
        Ok(on_tx!(self, |c| sqlx::query_scalar::<_, i64>(
            "SELECT COUNT(*) FROM variation_assignments WHERE workspace_id = $1 AND kind = 'tool' AND target_id = $2"
        )
        .bind(workspace_id)
        .bind(tool_id)
        .fetch_one(&mut *c)
        .await?))
    }
}

/// One tool as a sync found it, ready to store.
#[derive(Debug, Clone)]
pub struct SyncedTool {
    pub name: String,
    pub description: String,
    pub parameters: Value,
    pub config: Value,
    pub requires_approval: bool,
    /// False when the set's filters leave it out: stored as OMITTED.
    pub included: bool,
    pub llm_tool_name: String,
    pub signature: String,
}

/// What a sync changed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SyncOutcome {
    pub created: usize,
    pub updated: usize,
    pub archived: usize,
    /// Tools the set now offers (included by the filters).
    pub available: usize,
}

#[derive(sqlx::FromRow)]
struct ExistingTool {
    id: String,
    name: String,
    description: String,
    parameters: String,
    config: String,
    requires_approval: i64,
    state: String,
    omitted_by_user: i64,
    llm_tool_name: String,
    signature: String,
}

impl Tx {
    /// Logs a sync event; the sync job calls it on its fenced unit.
    pub async fn insert_tool_set_event(&mut self, e: &ToolSetEvent) -> StoreResult<()> {
        let (message, synced, error_type) = match &e.event {
            SyncEvent::Started { message } => (message, 0, ""),
            SyncEvent::Completed { tools_synced, message } => (message, i64::from(*tools_synced), ""),
            SyncEvent::Failed { error_type, message } => (message, 0, error_type.as_str()),
        };
        on_tx!(self, |tx| {
            sqlx::query(
                "INSERT INTO tool_set_events (id, account_id, workspace_id, tool_set_id, external_id, labels, \
                 profile_id, created_at, updated_at, kind, message, tools_synced, error_type) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
            )
            .bind(&e.meta.id)
            .bind(&e.meta.account_id)
            .bind(&e.workspace_id)
            .bind(&e.tool_set_id)
            .bind(&e.meta.external_id)
            .bind(labels_to(&e.meta.labels))
            .bind(&e.meta.profile_id)
            .bind(e.meta.created_at)
            .bind(e.meta.updated_at)
            .bind(e.event.kind())
            .bind(message)
            .bind(synced)
            .bind(error_type)
            .execute(&mut *tx)
            .await?;
        });
        Ok(())
    }

    /// Applies a successful sync; call on a unit fenced by the sync job's lease: new tools are
    /// created, changed ones updated, tools gone from the source ARCHIVED (never deleted), the
    /// consumed document kept, and `completed` logged. A stale worker changes nothing.
    pub async fn apply_tool_sync(
        &mut self,
        set: &ToolSet,
        tools: &[SyncedTool],
        document: Option<&str>,
        completed: &ToolSetEvent,
    ) -> StoreResult<SyncOutcome> {
        let now = self.now();
        let (message, synced) = match &completed.event {
            SyncEvent::Completed { tools_synced, message } => (message.clone(), i64::from(*tools_synced)),
            other => (format!("{other:?}"), 0),
        };
        let outcome = on_tx!(self, |tx| {
            crate::bump_catalog!(tx, &set.workspace_id);
            let existing: Vec<ExistingTool> = sqlx::query_as(
                "SELECT id, name, description, parameters, config, requires_approval, state, omitted_by_user, \
                 llm_tool_name, signature FROM tools WHERE workspace_id = $1 AND tool_set_id = $2",
            )
            .bind(&set.workspace_id)
            .bind(&set.meta.id)
            .fetch_all(&mut *tx)
            .await?;
            let mut outcome = SyncOutcome::default();
            for t in tools {
                let state = match (t.included, existing.iter().find(|e| e.name == t.name)) {
                    (false, _) => ToolState::Omitted,
                    (true, Some(e)) if e.omitted_by_user != 0 => ToolState::Omitted,
                    (true, _) => ToolState::Available,
                };
                if state == ToolState::Available {
                    outcome.available += 1;
                }
                match existing.iter().find(|e| e.name == t.name) {
                    Some(e) => {
                        let unchanged = e.signature == t.signature
                            && e.description == t.description
                            && serde_json::from_str::<Value>(&e.parameters).ok().as_ref() == Some(&t.parameters)
                            && serde_json::from_str::<Value>(&e.config).ok().as_ref() == Some(&t.config)
                            && (e.requires_approval != 0) == t.requires_approval
                            && e.llm_tool_name == t.llm_tool_name
                            && e.state == state.as_str();
                        if unchanged {
                            continue;
                        }
                        sqlx::query(
                            "UPDATE tools SET description = $1, parameters = $2, config = $3, requires_approval = $4, \
                             state = $5, llm_tool_name = $6, signature = $7, updated_at = $8 \
                             WHERE workspace_id = $9 AND id = $10",
                        )
                        .bind(&t.description)
                        .bind(t.parameters.to_string())
                        .bind(t.config.to_string())
                        .bind(i64::from(t.requires_approval))
                        .bind(state.as_str())
                        .bind(&t.llm_tool_name)
                        .bind(&t.signature)
                        .bind(now)
                        .bind(&set.workspace_id)
                        .bind(&e.id)
                        .execute(&mut *tx)
                        .await?;
                        outcome.updated += 1;
                    }
                    None => {
                        sqlx::query(
                            "INSERT INTO tools (id, account_id, workspace_id, tool_set_id, name, external_id, labels, \
                             profile_id, created_at, updated_at, description, parameters, config, requires_approval, \
                             state, omitted_by_user, llm_tool_name, signature) \
                             VALUES ($1, $2, $3, $4, $5, '', '{}', $6, $7, $7, $8, $9, $10, $11, $12, 0, $13, $14)",
                        )
                        .bind(IdKind::Tool.new_id(now))
                        .bind(&set.meta.account_id)
                        .bind(&set.workspace_id)
                        .bind(&set.meta.id)
                        .bind(&t.name)
                        .bind(&set.meta.profile_id)
                        .bind(now)
                        .bind(&t.description)
                        .bind(t.parameters.to_string())
                        .bind(t.config.to_string())
                        .bind(i64::from(t.requires_approval))
                        .bind(state.as_str())
                        .bind(&t.llm_tool_name)
                        .bind(&t.signature)
                        .execute(&mut *tx)
                        .await?;
                        outcome.created += 1;
                    }
                }
            }
            for gone in existing.iter().filter(|e| e.state != "ARCHIVED" && !tools.iter().any(|t| t.name == e.name)) {
                sqlx::query("UPDATE tools SET state = 'ARCHIVED', updated_at = $1 WHERE workspace_id = $2 AND id = $3")
                    .bind(now)
                    .bind(&set.workspace_id)
                    .bind(&gone.id)
                    .execute(&mut *tx)
                    .await?;
                outcome.archived += 1;
            }
            sqlx::query(
                "UPDATE tool_sets SET last_sync_at = $1, openapi_document = COALESCE($2, openapi_document) \
                 WHERE workspace_id = $3 AND id = $4",
            )
            .bind(now)
            .bind(document)
            .bind(&set.workspace_id)
            .bind(&set.meta.id)
            .execute(&mut *tx)
            .await?;
            sqlx::query(
                "INSERT INTO tool_set_events (id, account_id, workspace_id, tool_set_id, external_id, labels, \
                 profile_id, created_at, updated_at, kind, message, tools_synced, error_type) \
                 VALUES ($1, $2, $3, $4, '', '{}', $5, $6, $6, 'syncCompleted', $7, $8, '')",
            )
            .bind(&completed.meta.id)
            .bind(&completed.meta.account_id)
            .bind(&completed.workspace_id)
            .bind(&completed.tool_set_id)
            .bind(&completed.meta.profile_id)
            .bind(completed.meta.created_at)
            .bind(&message)
            .bind(synced)
            .execute(&mut *tx)
            .await?;
            outcome
        });
        Ok(outcome)
    }
}

/// `AND column IN ($n, …)` for a non-empty list; nothing for an empty one.
fn push_in<'a>(q: &mut ListQuery, column: &str, values: impl Iterator<Item = &'a str>) {
    let values: Vec<&str> = values.collect();
    if values.is_empty() {
        return;
    }
    q.push(" AND ").push(column).push(" IN (");
    for (i, v) in values.iter().enumerate() {
        if i > 0 {
            q.push(", ");
        }
        q.bind(Bind::Text((*v).to_string()));
    }
    q.push(")");
}

impl Reads {
    /// Every active tool set of every workspace (for the engine's resync check).
    pub async fn active_tool_sets_everywhere(&self) -> StoreResult<Vec<ToolSet>> {
        let mut q = ListQuery::new(SELECT_SETS);
        q.and_eq("state", Bind::Text("ACTIVE".into())).push(" ORDER BY id LIMIT 100000");
        let rows: Vec<ToolSetRow> = self.fetch_rows(&q).await?;
        rows.into_iter().map(ToolSetRow::into_domain).collect()
    }

    /// The workspace's catalog version (0 before any write): moves with every write to its
    /// agents, tool sets and tools, on any replica.
    pub async fn catalog_version(&self, workspace_id: &str) -> StoreResult<i64> {
        on_db!(self, read, |db| {
            let v: Option<i64> = sqlx::query_scalar("SELECT version FROM catalog_versions WHERE workspace_id = $1")
                .bind(workspace_id)
                .fetch_optional(db)
                .await?;
            Ok(v.unwrap_or(0))
        })
    }

    /// Everything search indexes for a workspace: agents that are not archived, active tool
    /// sets, and their available tools.
    pub async fn search_catalog(&self, workspace_id: &str) -> StoreResult<(Vec<ToolSet>, Vec<Tool>)> {
        let mut q = ListQuery::new(SELECT_SETS);
        q.and_eq("workspace_id", Bind::Text(workspace_id.into())).and_eq("state", Bind::Text("ACTIVE".into()));
        let sets: Vec<ToolSetRow> = self.fetch_rows(&q).await?;
        let sets = sets.into_iter().map(ToolSetRow::into_domain).collect::<StoreResult<Vec<_>>>()?;
        let mut q = ListQuery::new(SELECT_TOOLS);
        q.and_eq("workspace_id", Bind::Text(workspace_id.into())).and_eq("state", Bind::Text("AVAILABLE".into()));
        q.push(" AND tool_set_id IN (SELECT id FROM tool_sets WHERE state = 'ACTIVE')");
        let tools: Vec<ToolRow> = self.fetch_rows(&q).await?;
        let tools = tools.into_iter().map(ToolRow::into_domain).collect::<StoreResult<Vec<_>>>()?;
        Ok((sets, tools))
    }
}

impl Tx {
    /// Deletes a tool set with its tools, its event log and its secrets.
    pub async fn delete_tool_set(&mut self, workspace_id: &str, id: &str) -> StoreResult<bool> {
        let n = on_tx!(self, |tx| {
            for sql in [
                "DELETE FROM tools WHERE workspace_id = $1 AND tool_set_id = $2",
                "DELETE FROM tool_set_events WHERE workspace_id = $1 AND tool_set_id = $2",
                "DELETE FROM tool_set_secrets WHERE workspace_id = $1 AND tool_set_id = $2",
            ] {
                sqlx::query(sql).bind(workspace_id).bind(id).execute(&mut *tx).await?;
            }
            crate::bump_catalog!(tx, workspace_id);
            sqlx::query("DELETE FROM tool_sets WHERE workspace_id = $1 AND id = $2")
                .bind(workspace_id)
                .bind(id)
                .execute(&mut *tx)
                .await?
                .rows_affected()
        });
        Ok(n > 0)
    }
}

impl Tx {
    /// The tool set, locked for the rest of this unit (PostgreSQL): "not while assigned" and
    /// "no new assignment while archived" are checked under this lock.
    pub async fn get_tool_set_locked(&mut self, workspace_id: &str, id: &str) -> StoreResult<Option<ToolSet>> {
        let mut q = ListQuery::new(SELECT_SETS);
        q.and_eq("workspace_id", Bind::Text(workspace_id.into())).and_eq("id", Bind::Text(id.into()));
        q.push(self.for_update());
        let row: Option<ToolSetRow> = self.fetch_row(&q).await?;
        row.map(ToolSetRow::into_domain).transpose()
    }

    /// The set a tool belongs to and the tool's state (`AVAILABLE`, …), as this unit sees them.
    pub async fn tool_set_and_state(
        &mut self,
        workspace_id: &str,
        tool_id: &str,
    ) -> StoreResult<Option<(String, String)>> {
        Ok(on_tx!(self, |c| sqlx::query_as("SELECT tool_set_id, state FROM tools WHERE workspace_id = $1 AND id = $2")
            .bind(workspace_id)
            .bind(tool_id)
            .fetch_optional(&mut *c)
            .await?))
    }

    /// Assignments of the set or of one of its tools, as this unit sees them.
    pub async fn count_tool_set_assignments(&mut self, workspace_id: &str, tool_set_id: &str) -> StoreResult<i64> {
        let sql = format!("SELECT COUNT(*) {SET_ASSIGNMENTS}");
        Ok(on_tx!(self, |c| sqlx::query_scalar::<_, i64>(sqlx::AssertSqlSafe(sql.clone()))
            .bind(workspace_id)
            .bind(tool_set_id)
            .fetch_one(&mut *c)
            .await?))
    }
}
