//! Memory layers and entries. Entries are always addressed through their layer, and layers
//! through their workspace.

use crate::Reads;
use cadenza_domain::IdRef;
use cadenza_domain::memory::{LayerType, MemoryEntry, MemoryLayer};
use cadenza_domain::page::{ListParams, Page};

use crate::list::{Bind, ListQuery};
use crate::rows::{HasMeta, MetaRow, id_ref_column, labels_to};
use crate::tx::on_tx;
use crate::{StoreError, StoreResult, Tx};

#[derive(sqlx::FromRow)]
struct LayerRow {
    #[sqlx(flatten)]
    meta: MetaRow,
    workspace_id: String,
    layer_type: String,
    description: String,
    system_managed: i64,
    expires_at: Option<i64>,
    agent_id: String,
    episodic_key: String,
    last_used_at: Option<i64>,
    entry_count: i64,
}

impl HasMeta for LayerRow {
    fn meta_row(&self) -> &MetaRow {
        &self.meta
    }
}

impl LayerRow {
    fn into_domain(self) -> StoreResult<(MemoryLayer, i64)> {
        let layer = MemoryLayer {
            layer_type: LayerType::parse_wire(&self.layer_type)
                .ok_or_else(|| StoreError::Corrupt(format!("layer type {}", self.layer_type)))?,
            meta: self.meta.into_meta()?,
            workspace_id: self.workspace_id,
            description: self.description,
            system_managed: self.system_managed != 0,
            expires_at: self.expires_at,
            agent_id: self.agent_id,
            episodic_key: self.episodic_key,
            last_used_at: self.last_used_at,
        };
        Ok((layer, self.entry_count))
    }
}

const LAYER_SELECT: &str = "SELECT id, account_id, workspace_id, name, external_id, labels, profile_id, created_at, \
     updated_at, layer_type, description, system_managed, expires_at, agent_id, episodic_key, last_used_at, \
     (SELECT COUNT(*) FROM memory_entries e WHERE e.layer_id = memory_layers.id) AS entry_count \
     FROM memory_layers WHERE 1 = 1";

#[derive(sqlx::FromRow)]
struct EntryRow {
    #[sqlx(flatten)]
    meta: MetaRow,
    workspace_id: String,
    layer_id: String,
    entry_key: String,
    description: String,
    content: String,
}

impl HasMeta for EntryRow {
    fn meta_row(&self) -> &MetaRow {
        &self.meta
    }
}

impl EntryRow {
    fn into_domain(self) -> StoreResult<MemoryEntry> {
        Ok(MemoryEntry {
            meta: self.meta.into_meta()?,
            workspace_id: self.workspace_id,
            layer_id: self.layer_id,
            key: self.entry_key,
            description: self.description,
            content: self.content,
        })
    }
}

/// Lists skip the body (`''`); single reads carry it.
const ENTRY_SUMMARY: &str = "SELECT id, account_id, workspace_id, layer_id, name, external_id, labels, profile_id, \
     created_at, updated_at, entry_key, description, '' AS content FROM memory_entries WHERE 1 = 1";
const ENTRY_DETAIL: &str = "SELECT id, account_id, workspace_id, layer_id, name, external_id, labels, profile_id, \
     created_at, updated_at, entry_key, description, content FROM memory_entries WHERE 1 = 1";

/// Filters of the layer list beyond the generic ones.
#[derive(Debug, Clone, Default)]
pub struct LayerFilter {
    pub layer_type: Option<LayerType>,
    pub agent_id: Option<String>,
    pub episodic_key_prefix: Option<String>,
}

/// The INSERT of one memory entry, bound and ready to execute.
macro_rules! insert_entry_query {
    ($e:expr) => {{
        let e: &cadenza_domain::memory::MemoryEntry = $e;
        sqlx::query(
            "INSERT INTO memory_entries (id, account_id, workspace_id, layer_id, name, external_id, labels, \
             profile_id, created_at, updated_at, entry_key, description, content) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
        )
        .bind(&e.meta.id)
        .bind(&e.meta.account_id)
        .bind(&e.workspace_id)
        .bind(&e.layer_id)
        .bind(&e.meta.name)
        .bind(&e.meta.external_id)
        .bind($crate::rows::labels_to(&e.meta.labels))
        .bind(&e.meta.profile_id)
        .bind(e.meta.created_at)
        .bind(e.meta.updated_at)
        .bind(&e.key)
        .bind(&e.description)
        .bind(&e.content)
    }};
}

/// The UPDATE of one memory entry's fields, bound and ready to execute (see `insert_entry_query!`).
macro_rules! update_entry_query {
    ($e:expr) => {{
        let e: &cadenza_domain::memory::MemoryEntry = $e;
        sqlx::query(
            "UPDATE memory_entries SET name = $1, external_id = $2, labels = $3, updated_at = $4, entry_key = $5, \
             description = $6, content = $7 WHERE workspace_id = $8 AND layer_id = $9 AND id = $10",
        )
        .bind(&e.meta.name)
        .bind(&e.meta.external_id)
        .bind($crate::rows::labels_to(&e.meta.labels))
        .bind(e.meta.updated_at)
        .bind(&e.key)
        .bind(&e.description)
        .bind(&e.content)
        .bind(&e.workspace_id)
        .bind(&e.layer_id)
        .bind(&e.meta.id)
    }};
}

impl Reads {
    /// A layer and its entry count.
    pub async fn get_memory_layer(&self, workspace_id: &str, r: &IdRef) -> StoreResult<Option<(MemoryLayer, i64)>> {
        let (col, val) = id_ref_column(r);
        let mut q = ListQuery::new(LAYER_SELECT);
        q.and_eq("workspace_id", Bind::Text(workspace_id.into())).and_eq(col, Bind::Text(val));
        let row: Option<LayerRow> = self.fetch_row(&q).await?;
        row.map(LayerRow::into_domain).transpose()
    }

    pub async fn list_memory_layers(
        &self,
        workspace_id: &str,
        filter: &LayerFilter,
        params: &ListParams,
    ) -> StoreResult<Page<(MemoryLayer, i64)>> {
        let mut q = ListQuery::new(LAYER_SELECT);
        q.and_eq("workspace_id", Bind::Text(workspace_id.into()));
        if let Some(t) = filter.layer_type {
            q.and_eq("layer_type", Bind::Text(t.as_wire().into()));
        }
        if let Some(a) = &filter.agent_id {
            q.and_eq("agent_id", Bind::Text(a.clone()));
        }
        if let Some(p) = &filter.episodic_key_prefix {
            q.push(" AND substr(episodic_key, 1, length(")
                .bind(Bind::Text(p.clone()))
                .push(")) = ")
                .bind(Bind::Text(p.clone()));
        }
        let page = self.list_page::<LayerRow>(q, "name", params).await?;
        let items = page.items.into_iter().map(LayerRow::into_domain).collect::<StoreResult<Vec<_>>>()?;
        Ok(Page { items, next_cursor: page.next_cursor })
    }

    /// An entry of a layer, with its body.
    pub async fn get_memory_entry(
        &self,
        workspace_id: &str,
        layer_id: &str,
        r: &IdRef,
    ) -> StoreResult<Option<MemoryEntry>> {
        let (col, val) = id_ref_column(r);
        let mut q = ListQuery::new(ENTRY_DETAIL);
        q.and_eq("workspace_id", Bind::Text(workspace_id.into()))
            .and_eq("layer_id", Bind::Text(layer_id.into()))
            .and_eq(col, Bind::Text(val));
        let row: Option<EntryRow> = self.fetch_row(&q).await?;
        row.map(EntryRow::into_domain).transpose()
    }

    /// Entries of a layer without their bodies; `prefix` filters on the key.
    pub async fn list_memory_entries(
        &self,
        workspace_id: &str,
        layer_id: &str,
        params: &ListParams,
    ) -> StoreResult<Page<MemoryEntry>> {
        let mut q = ListQuery::new(ENTRY_SUMMARY);
        q.and_eq("workspace_id", Bind::Text(workspace_id.into())).and_eq("layer_id", Bind::Text(layer_id.into()));
        let page = self.list_page::<EntryRow>(q, "entry_key", params).await?;
        let items = page.items.into_iter().map(EntryRow::into_domain).collect::<StoreResult<Vec<_>>>()?;
        Ok(Page { items, next_cursor: page.next_cursor })
    }
}

impl Tx {
    pub async fn insert_memory_layer(&mut self, l: &MemoryLayer) -> StoreResult<()> {
        on_tx!(self, |tx| {
            sqlx::query(
                "INSERT INTO memory_layers (id, account_id, workspace_id, name, external_id, labels, profile_id, \
                 created_at, updated_at, layer_type, description, system_managed, expires_at, agent_id, episodic_key) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)",
            )
            .bind(&l.meta.id)
            .bind(&l.meta.account_id)
            .bind(&l.workspace_id)
            .bind(&l.meta.name)
            .bind(&l.meta.external_id)
            .bind(labels_to(&l.meta.labels))
            .bind(&l.meta.profile_id)
            .bind(l.meta.created_at)
            .bind(l.meta.updated_at)
            .bind(l.layer_type.as_wire())
            .bind(&l.description)
            .bind(i64::from(l.system_managed))
            .bind(l.expires_at)
            .bind(&l.agent_id)
            .bind(&l.episodic_key)
            .execute(&mut *tx)
            .await?;
        });
        Ok(())
    }

    pub async fn update_memory_layer(&mut self, l: &MemoryLayer) -> StoreResult<()> {
        on_tx!(self, |tx| {
            sqlx::query(
                "UPDATE memory_layers SET name = $1, external_id = $2, labels = $3, updated_at = $4, description = $5 \
                 WHERE workspace_id = $6 AND id = $7 AND system_managed = 0",
            )
            .bind(&l.meta.name)
            .bind(&l.meta.external_id)
            .bind(labels_to(&l.meta.labels))
            .bind(l.meta.updated_at)
            .bind(&l.description)
            .bind(&l.workspace_id)
            .bind(&l.meta.id)
            .execute(&mut *tx)
            .await?;
        });
        Ok(())
    }

    /// Deletes a layer with all its entries, in one transaction.
    pub async fn delete_memory_layer(&mut self, workspace_id: &str, id: &str) -> StoreResult<bool> {
        let n = on_tx!(self, |tx| {
            sqlx::query("DELETE FROM memory_entries WHERE workspace_id = $1 AND layer_id = $2")
                .bind(workspace_id)
                .bind(id)
                .execute(&mut *tx)
                .await?;
            sqlx::query("DELETE FROM memory_layers WHERE workspace_id = $1 AND id = $2 AND system_managed = 0")
                .bind(workspace_id)
                .bind(id)
                .execute(&mut *tx)
                .await?
                .rows_affected()
        });
        Ok(n > 0)
    }

    pub async fn insert_memory_entry(&mut self, e: &MemoryEntry) -> StoreResult<()> {
        on_tx!(self, |tx| {
            insert_entry_query!(e).execute(&mut *tx).await?;
        });
        Ok(())
    }

    pub async fn update_memory_entry(&mut self, e: &MemoryEntry) -> StoreResult<()> {
        on_tx!(self, |tx| {
            update_entry_query!(e).execute(&mut *tx).await?;
        });
        Ok(())
    }

    pub async fn delete_memory_entry(&mut self, workspace_id: &str, layer_id: &str, id: &str) -> StoreResult<bool> {
        let n = on_tx!(self, |tx| {
            sqlx::query("DELETE FROM memory_entries WHERE workspace_id = $1 AND layer_id = $2 AND id = $3")
                .bind(workspace_id)
                .bind(layer_id)
                .bind(id)
                .execute(&mut *tx)
                .await?
                .rows_affected()
        });
        Ok(n > 0)
    }

    /// The layer and its entry count, locked for the rest of this unit (PostgreSQL): deleting
    /// it, assigning it to a stack and writing its entries all take this lock first.
    pub async fn get_memory_layer_locked(
        &mut self,
        workspace_id: &str,
        r: &IdRef,
    ) -> StoreResult<Option<(MemoryLayer, i64)>> {
        let (col, val) = id_ref_column(r);
        // FOR UPDATE cannot lock a row read with an aggregate: lock the row, then read it.
        let mut lock = ListQuery::new("SELECT COUNT(*) FROM (SELECT id FROM memory_layers WHERE 1 = 1");
        lock.and_eq("workspace_id", Bind::Text(workspace_id.into())).and_eq(col, Bind::Text(val.clone()));
        let how = self.for_update();
        lock.push(how).push(") locked");
        if self.fetch_scalar_i64(&lock).await? == 0 {
            return Ok(None);
        }
        let mut q = ListQuery::new(LAYER_SELECT);
        q.and_eq("workspace_id", Bind::Text(workspace_id.into())).and_eq(col, Bind::Text(val));
        let row: Option<LayerRow> = self.fetch_row(&q).await?;
        row.map(LayerRow::into_domain).transpose()
    }

    /// An entry of a layer, with its body, locked for the rest of this unit (PostgreSQL), so a
    /// PATCH applies its mask to the row as it is now.
    pub async fn get_memory_entry_locked(
        &mut self,
        workspace_id: &str,
        layer_id: &str,
        r: &IdRef,
    ) -> StoreResult<Option<MemoryEntry>> {
        let (col, val) = id_ref_column(r);
        let mut q = ListQuery::new(ENTRY_DETAIL);
        q.and_eq("workspace_id", Bind::Text(workspace_id.into()))
            .and_eq("layer_id", Bind::Text(layer_id.into()))
            .and_eq(col, Bind::Text(val));
        q.push(self.for_update());
        let row: Option<EntryRow> = self.fetch_row(&q).await?;
        row.map(EntryRow::into_domain).transpose()
    }
}
