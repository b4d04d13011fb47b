//! Workspaces: the tenancy boundary.

use crate::tx::on_tx;
use crate::{Reads, Tx};
use cadenza_domain::IdRef;
use cadenza_domain::page::{ListParams, Page};
use cadenza_domain::workspaces::{Workspace, WorkspaceStatus};

use crate::list::{Bind, ListQuery};
use crate::rows::{HasMeta, MetaRow, id_ref_column, labels_to};
use crate::{StoreError, StoreResult};

#[derive(sqlx::FromRow)]
struct WorkspaceRow {
    #[sqlx(flatten)]
    meta: MetaRow,
    description: String,
    status: String,
}

impl HasMeta for WorkspaceRow {
    fn meta_row(&self) -> &MetaRow {
        &self.meta
    }
}

impl WorkspaceRow {
    fn into_domain(self) -> StoreResult<Workspace> {
        Ok(Workspace {
            status: WorkspaceStatus::parse(&self.status)
                .ok_or_else(|| StoreError::Corrupt(format!("workspace status {}", self.status)))?,
            meta: self.meta.into_meta()?,
            description: self.description,
        })
    }
}

const SELECT: &str = "SELECT id, account_id, name, external_id, labels, profile_id, created_at, updated_at, description, status FROM workspaces WHERE 1 = 1";

macro_rules! insert_workspace {
    ($tx:expr, $w:expr) => {
        sqlx::query(
            "INSERT INTO workspaces (id, account_id, name, external_id, labels, profile_id, created_at, updated_at, description, status) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        )
        .bind(&$w.meta.id)
        .bind(&$w.meta.account_id)
        .bind(&$w.meta.name)
        .bind(&$w.meta.external_id)
        .bind(crate::rows::labels_to(&$w.meta.labels))
        .bind(&$w.meta.profile_id)
        .bind($w.meta.created_at)
        .bind($w.meta.updated_at)
        .bind(&$w.description)
        .bind($w.status.as_str())
        .execute(&mut *$tx)
        .await?
    };
}
pub(crate) use insert_workspace;

impl Reads {
    /// A workspace of `account_id` by id or external id.
    pub async fn get_workspace(&self, account_id: &str, r: &IdRef) -> StoreResult<Option<Workspace>> {
        let (col, val) = id_ref_column(r);
        let mut q = ListQuery::new(SELECT);
        q.and_eq("account_id", Bind::Text(account_id.into())).and_eq(col, Bind::Text(val));
        let row: Option<WorkspaceRow> = self.fetch_row(&q).await?;
        row.map(WorkspaceRow::into_domain).transpose()
    }

    /// Workspaces of the account; `only` restricts to the one workspace a key belongs to.
    pub async fn list_workspaces(
        &self,
        account_id: &str,
        only: Option<&str>,
        params: &ListParams,
    ) -> StoreResult<Page<Workspace>> {
        let mut q = ListQuery::new(SELECT);
        q.and_eq("account_id", Bind::Text(account_id.into()));
        if let Some(ws) = only {
            q.and_eq("id", Bind::Text(ws.into()));
        }
        let page = self.list_page::<WorkspaceRow>(q, "name", params).await?;
        let items = page.items.into_iter().map(WorkspaceRow::into_domain).collect::<StoreResult<Vec<_>>>()?;
        Ok(Page { items, next_cursor: page.next_cursor })
    }

    /// The workspace's counters for `info` (agents, variations, memory entries), one round trip.
    pub async fn workspace_totals(&self, workspace_id: &str) -> StoreResult<(i64, i64, i64)> {
        crate::on_db!(self, read, |db| {
            Ok(sqlx::query_as::<_, (i64, i64, i64)>(
                "SELECT (SELECT COUNT(*) FROM agents WHERE workspace_id = $1), \
                 (SELECT COUNT(*) FROM variations WHERE workspace_id = $1), \
                 (SELECT COUNT(*) FROM memory_entries WHERE workspace_id = $1)",
            )
            .bind(workspace_id)
            .fetch_one(db)
            .await?)
        })
    }
}

impl Tx {
    pub async fn insert_workspace(&mut self, w: &Workspace) -> StoreResult<()> {
        on_tx!(self, |tx| {
            insert_workspace!(tx, w);
        });
        Ok(())
    }

    /// Writes every mutable field of `w` (the caller read, changed, and hands it back).
    pub async fn update_workspace(&mut self, w: &Workspace) -> StoreResult<()> {
        on_tx!(self, |tx| {
            sqlx::query(
                "UPDATE workspaces SET name = $1, external_id = $2, labels = $3, description = $4, status = $5, updated_at = $6 \
                 WHERE account_id = $7 AND id = $8",
            )
            .bind(&w.meta.name)
            .bind(&w.meta.external_id)
            .bind(labels_to(&w.meta.labels))
            .bind(&w.description)
            .bind(w.status.as_str())
            .bind(w.meta.updated_at)
            .bind(&w.meta.account_id)
            .bind(&w.meta.id)
            .execute(&mut *tx)
            .await?;
        });
        self.access_changed().await?;
        Ok(())
    }

    /// The workspace, locked for the rest of this unit (PostgreSQL), so a PATCH or an archive
    /// applies to the row as it is now.
    pub async fn get_workspace_locked(&mut self, account_id: &str, r: &IdRef) -> StoreResult<Option<Workspace>> {
        let (col, val) = id_ref_column(r);
        let mut q = ListQuery::new(SELECT);
        q.and_eq("account_id", Bind::Text(account_id.into())).and_eq(col, Bind::Text(val));
        q.push(self.for_update());
        let row: Option<WorkspaceRow> = self.fetch_row(&q).await?;
        row.map(WorkspaceRow::into_domain).transpose()
    }
}
