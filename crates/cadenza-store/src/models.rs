//! A workspace's models: one row per catalog model, created on first sight.

use crate::Reads;
use cadenza_domain::ids::IdKind;
use cadenza_domain::models::Model;
use cadenza_domain::page::{ListParams, Page};
use cadenza_domain::{IdRef, Labels, Meta};

use crate::list::{Bind, ListQuery};
use crate::rows::{HasMeta, MetaRow, id_ref_column, labels_to};
use crate::tx::on_tx;
use crate::{StoreResult, Tx};

#[derive(sqlx::FromRow)]
struct ModelRow {
    #[sqlx(flatten)]
    meta: MetaRow,
    workspace_id: String,
    enabled: i64,
    last_used_at: Option<i64>,
}

impl HasMeta for ModelRow {
    fn meta_row(&self) -> &MetaRow {
        &self.meta
    }
}

impl ModelRow {
    fn into_domain(self) -> StoreResult<Model> {
        Ok(Model {
            meta: self.meta.into_meta()?,
            workspace_id: self.workspace_id,
            enabled: self.enabled != 0,
            last_used_at: self.last_used_at,
        })
    }
}

const SELECT: &str = "SELECT id, account_id, workspace_id, name, external_id, labels, profile_id, created_at, updated_at, \
     enabled, last_used_at FROM models WHERE 1 = 1";

fn in_names(q: &mut ListQuery, names: &[String]) {
    if names.is_empty() {
        q.push(" AND 1 = 0");
        return;
    }
    q.push(" AND name IN (");
    for (i, n) in names.iter().enumerate() {
        if i > 0 {
            q.push(", ");
        }
        q.bind(Bind::Text(n.clone()));
    }
    q.push(")");
}

impl Reads {
    /// A model of the workspace by id or external id, if it is among `names` (the catalog).
    pub async fn get_model(&self, workspace_id: &str, r: &IdRef, names: &[String]) -> StoreResult<Option<Model>> {
        let (col, val) = id_ref_column(r);
        let mut q = ListQuery::new(SELECT);
        q.and_eq("workspace_id", Bind::Text(workspace_id.into())).and_eq(col, Bind::Text(val));
        in_names(&mut q, names);
        let row: Option<ModelRow> = self.fetch_row(&q).await?;
        row.map(ModelRow::into_domain).transpose()
    }

    /// The workspace's models among `names`, optionally only enabled or disabled ones.
    pub async fn list_models(
        &self,
        workspace_id: &str,
        names: &[String],
        enabled: Option<bool>,
        params: &ListParams,
    ) -> StoreResult<Page<Model>> {
        let mut q = ListQuery::new(SELECT);
        q.and_eq("workspace_id", Bind::Text(workspace_id.into()));
        in_names(&mut q, names);
        if let Some(e) = enabled {
            q.and_eq("enabled", Bind::Int(i64::from(e)));
        }
        let page = self.list_page::<ModelRow>(q, "name", params).await?;
        let items = page.items.into_iter().map(ModelRow::into_domain).collect::<StoreResult<Vec<_>>>()?;
        Ok(Page { items, next_cursor: page.next_cursor })
    }
}

impl Tx {
    /// Gives the workspace a row for every catalog model it has not seen yet (enabled).
    pub async fn ensure_models(
        &mut self,
        account_id: &str,
        workspace_id: &str,
        profile_id: &str,
        names: &[String],
    ) -> StoreResult<()> {
        let now = self.now();
        on_tx!(self, |tx| {
            for name in names {
                let meta =
                    Meta::new(IdKind::Model, now, account_id, profile_id, name.clone(), name.clone(), Labels::new());
                sqlx::query(
                    "INSERT INTO models (id, account_id, workspace_id, name, external_id, labels, profile_id, created_at, \
                     updated_at, enabled) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8, 1) \
                     ON CONFLICT (workspace_id, name) DO NOTHING",
                )
                .bind(&meta.id)
                .bind(account_id)
                .bind(workspace_id)
                .bind(&meta.name)
                .bind(&meta.external_id)
                .bind(labels_to(&meta.labels))
                .bind(profile_id)
                .bind(now)
                .execute(&mut *tx)
                .await?;
            }
        });
        Ok(())
    }

    pub async fn set_model_enabled(&mut self, workspace_id: &str, id: &str, enabled: bool) -> StoreResult<()> {
        let now = self.now();
        on_tx!(self, |tx| {
            sqlx::query("UPDATE models SET enabled = $1, updated_at = $2 WHERE workspace_id = $3 AND id = $4")
                .bind(i64::from(enabled))
                .bind(now)
                .bind(workspace_id)
                .bind(id)
                .execute(&mut *tx)
                .await?;
        });
        Ok(())
    }

    /// The model, locked for the rest of this unit (PostgreSQL): "not disabled while variations
    /// use it" is checked under this lock, and assigning the model to a variation takes it too.
    pub async fn get_model_locked(&mut self, workspace_id: &str, id: &str) -> StoreResult<Option<Model>> {
        let mut q = ListQuery::new(SELECT);
        q.and_eq("workspace_id", Bind::Text(workspace_id.into())).and_eq("id", Bind::Text(id.into()));
        q.push(self.for_update());
        let row: Option<ModelRow> = self.fetch_row(&q).await?;
        row.map(ModelRow::into_domain).transpose()
    }
}
