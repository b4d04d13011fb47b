//! Workspace secrets. Values are sealed with the vault, bound to (workspace, secret id).

use crate::tx::on_tx;
use crate::{Reads, Tx};
use cadenza_domain::IdRef;
use cadenza_domain::page::{ListParams, Page};
use cadenza_domain::secrets::WorkspaceSecret;

use crate::list::{Bind, ListQuery};
use crate::rows::{HasMeta, MetaRow, id_ref_column, labels_to};
use crate::{Store, StoreError, StoreResult};

#[derive(sqlx::FromRow)]
struct SecretRow {
    #[sqlx(flatten)]
    meta: MetaRow,
    workspace_id: String,
    last_used_at: Option<i64>,
}

impl HasMeta for SecretRow {
    fn meta_row(&self) -> &MetaRow {
        &self.meta
    }
}

impl SecretRow {
    fn into_domain(self) -> StoreResult<WorkspaceSecret> {
        Ok(WorkspaceSecret {
            meta: self.meta.into_meta()?,
            workspace_id: self.workspace_id,
            last_used_at: self.last_used_at,
        })
    }
}

const SELECT: &str = "SELECT id, account_id, workspace_id, name, external_id, labels, profile_id, created_at, updated_at, last_used_at FROM workspace_secrets WHERE 1 = 1";

/// The value sealed with the vault, bound to (workspace, secret id).
fn seal(vault: &cadenza_domain::crypto::Vault, s: &WorkspaceSecret, value: &str) -> Vec<u8> {
    vault.seal(&[&s.workspace_id, &s.meta.id], value.as_bytes())
}

impl Reads {
    pub async fn get_secret(&self, workspace_id: &str, r: &IdRef) -> StoreResult<Option<WorkspaceSecret>> {
        let (col, val) = id_ref_column(r);
        let mut q = ListQuery::new(SELECT);
        q.and_eq("workspace_id", Bind::Text(workspace_id.into())).and_eq(col, Bind::Text(val));
        let row: Option<SecretRow> = self.fetch_row(&q).await?;
        row.map(SecretRow::into_domain).transpose()
    }

    pub async fn list_secrets(&self, workspace_id: &str, params: &ListParams) -> StoreResult<Page<WorkspaceSecret>> {
        let mut q = ListQuery::new(SELECT);
        q.and_eq("workspace_id", Bind::Text(workspace_id.into()));
        let page = self.list_page::<SecretRow>(q, "name", params).await?;
        let items = page.items.into_iter().map(SecretRow::into_domain).collect::<StoreResult<Vec<_>>>()?;
        Ok(Page { items, next_cursor: page.next_cursor })
    }
}

impl Tx {
    pub async fn insert_secret(&mut self, s: &WorkspaceSecret, value: &str) -> StoreResult<()> {
        let sealed = seal(&self.shared.vault, s, value);
        on_tx!(self, |tx| {
            sqlx::query(
                "INSERT INTO workspace_secrets (id, account_id, workspace_id, name, external_id, labels, profile_id, \
                 created_at, updated_at, last_used_at, value_sealed) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, NULL, $10)",
            )
            .bind(&s.meta.id)
            .bind(&s.meta.account_id)
            .bind(&s.workspace_id)
            .bind(&s.meta.name)
            .bind(&s.meta.external_id)
            .bind(labels_to(&s.meta.labels))
            .bind(&s.meta.profile_id)
            .bind(s.meta.created_at)
            .bind(s.meta.updated_at)
            .bind(sealed)
            .execute(&mut *tx)
            .await?;
        });
        Ok(())
    }

    /// Writes the mutable fields of `s`, and the value when `new_value` is given.
    pub async fn update_secret(&mut self, s: &WorkspaceSecret, new_value: Option<&str>) -> StoreResult<()> {
        let sealed = new_value.map(|v| seal(&self.shared.vault, s, v));
        on_tx!(self, |tx| {
            sqlx::query(
                "UPDATE workspace_secrets SET name = $1, external_id = $2, labels = $3, updated_at = $4 \
                 WHERE workspace_id = $5 AND id = $6",
            )
            .bind(&s.meta.name)
            .bind(&s.meta.external_id)
            .bind(labels_to(&s.meta.labels))
            .bind(s.meta.updated_at)
            .bind(&s.workspace_id)
            .bind(&s.meta.id)
            .execute(&mut *tx)
            .await?;
            if let Some(sealed) = sealed {
                sqlx::query("UPDATE workspace_secrets SET value_sealed = $1 WHERE workspace_id = $2 AND id = $3")
                    .bind(sealed)
                    .bind(&s.workspace_id)
                    .bind(&s.meta.id)
                    .execute(&mut *tx)
                    .await?;
            }
        });
        Ok(())
    }

    pub async fn delete_secret(&mut self, workspace_id: &str, id: &str) -> StoreResult<bool> {
        self.delete_in_workspace("workspace_secrets", workspace_id, id).await
    }

    /// The secret, locked for the rest of this unit (PostgreSQL), so a PATCH applies its mask
    /// to the row as it is now.
    pub async fn get_secret_locked(&mut self, workspace_id: &str, r: &IdRef) -> StoreResult<Option<WorkspaceSecret>> {
        let (col, val) = id_ref_column(r);
        let mut q = ListQuery::new(SELECT);
        q.and_eq("workspace_id", Bind::Text(workspace_id.into())).and_eq(col, Bind::Text(val));
        q.push(self.for_update());
        let row: Option<SecretRow> = self.fetch_row(&q).await?;
        row.map(SecretRow::into_domain).transpose()
    }
}

impl Tx {
    /// A workspace secret's value by name, for use in memory only (never stored elsewhere or
    /// logged); records when it was last used.
    pub async fn resolve_secret(&mut self, workspace_id: &str, name: &str) -> StoreResult<Option<String>> {
        let now = self.now();
        let vault = self.shared.vault.clone();
        let row: Option<(String, Vec<u8>)> = on_tx!(self, |c| sqlx::query_as(
            "SELECT id, value_sealed FROM workspace_secrets WHERE workspace_id = $1 AND name = $2"
        )
        .bind(workspace_id)
        .bind(name)
        .fetch_optional(&mut *c)
        .await?);
        let Some((id, sealed)) = row else { return Ok(None) };
        let plain = vault.open(&[workspace_id, &id], &sealed).map_err(|e| StoreError::Corrupt(e.message))?;
        on_tx!(self, |c| {
            sqlx::query("UPDATE workspace_secrets SET last_used_at = $1 WHERE workspace_id = $2 AND id = $3")
                .bind(now)
                .bind(workspace_id)
                .bind(&id)
                .execute(&mut *c)
                .await?;
        });
        String::from_utf8(plain).map(Some).map_err(|_| StoreError::Corrupt("secret value".into()))
    }
}

impl Store {
    /// [`Tx::resolve_secret`] in a unit of its own.
    pub async fn resolve_secret(&self, workspace_id: &str, name: &str) -> StoreResult<Option<String>> {
        let mut tx = self.begin().await?;
        let value = tx.resolve_secret(workspace_id, name).await?;
        tx.commit().await?;
        Ok(value)
    }
}
