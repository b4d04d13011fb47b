//! Secrets of both kinds (CONTRACT §17, §12.6): workspace secrets in `workspace_secrets`,
//! tool-set secrets in `tool_set_secrets`. One mechanism serves both: every query is built by
//! [`owned`], which picks the table of the scope and narrows it to the owner. Values are sealed
//! with the vault, bound to the owner and the secret id ([`binding`]), and only ever opened by
//! the resolve functions.

use crate::{Reads, Tx};
use cadenza_domain::IdRef;
use cadenza_domain::crypto::Vault;
use cadenza_domain::page::{ListParams, Page};
use cadenza_domain::secrets::{Secret, SecretScope};

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
    /// The row as a secret of `scope` (the query that read it was narrowed to that owner).
    fn into_domain(self, scope: &SecretScope) -> StoreResult<Secret> {
        Ok(Secret {
            meta: self.meta.into_meta()?,
            workspace_id: self.workspace_id,
            scope: scope.clone(),
            last_used_at: self.last_used_at,
        })
    }
}

const COLUMNS: &str =
    "id, account_id, workspace_id, name, external_id, labels, profile_id, created_at, updated_at, last_used_at";

fn table(scope: &SecretScope) -> &'static str {
    match scope {
        SecretScope::Workspace => "workspace_secrets",
        SecretScope::ToolSet(_) => "tool_set_secrets",
    }
}

/// `head` (a `SELECT … FROM {table}` or `DELETE FROM {table}`, `{table}` standing for the
/// scope's table) narrowed to the secrets of one owner.
fn owned(head: &str, scope: &SecretScope, workspace_id: &str) -> ListQuery {
    narrowed(ListQuery::new(&head.replace("{table}", table(scope))), scope, workspace_id)
}

/// `q` with a `WHERE` keeping the rows of one owner: the workspace, and the tool set.
fn narrowed(mut q: ListQuery, scope: &SecretScope, workspace_id: &str) -> ListQuery {
    q.push(" WHERE 1 = 1").and_eq("workspace_id", Bind::Text(workspace_id.into()));
    if let Some(ts) = scope.tool_set_id() {
        q.and_eq("tool_set_id", Bind::Text(ts.into()));
    }
    q
}

fn select(scope: &SecretScope, workspace_id: &str) -> ListQuery {
    owned(&format!("SELECT {COLUMNS} FROM {{table}}"), scope, workspace_id)
}

/// What a value is sealed to: the workspace, the tool set for tool-set secrets, the secret id.
fn binding<'a>(scope: &'a SecretScope, workspace_id: &'a str, id: &'a str) -> Vec<&'a str> {
    match scope {
        SecretScope::Workspace => vec![workspace_id, id],
        SecretScope::ToolSet(ts) => vec![workspace_id, ts, id],
    }
}

fn seal(vault: &Vault, s: &Secret, value: &str) -> Vec<u8> {
    vault.seal(&binding(&s.scope, &s.workspace_id, &s.meta.id), value.as_bytes())
}

fn by_ref(q: &mut ListQuery, r: &IdRef) {
    let (col, val) = id_ref_column(r);
    q.and_eq(col, Bind::Text(val));
}

impl Reads {
    pub async fn get_secret(&self, workspace_id: &str, scope: &SecretScope, r: &IdRef) -> StoreResult<Option<Secret>> {
        let mut q = select(scope, workspace_id);
        by_ref(&mut q, r);
        let row: Option<SecretRow> = self.fetch_row(&q).await?;
        row.map(|r| r.into_domain(scope)).transpose()
    }

    pub async fn list_secrets(
        &self,
        workspace_id: &str,
        scope: &SecretScope,
        params: &ListParams,
    ) -> StoreResult<Page<Secret>> {
        let page = self.list_page::<SecretRow>(select(scope, workspace_id), "name", params).await?;
        let items = page.items.into_iter().map(|r| r.into_domain(scope)).collect::<StoreResult<Vec<_>>>()?;
        Ok(Page { items, next_cursor: page.next_cursor })
    }
}

impl Tx {
    pub async fn insert_secret(&mut self, s: &Secret, value: &str) -> StoreResult<()> {
        let owner = s.scope.tool_set_id();
        let mut q = ListQuery::new(&format!(
            "INSERT INTO {} (id, account_id, workspace_id, name, external_id, labels, profile_id, created_at, \
             updated_at, value_sealed{}) VALUES (",
            table(&s.scope),
            if owner.is_some() { ", tool_set_id" } else { "" },
        ));
        let mut values = vec![
            Bind::Text(s.meta.id.clone()),
            Bind::Text(s.meta.account_id.clone()),
            Bind::Text(s.workspace_id.clone()),
            Bind::Text(s.meta.name.clone()),
            Bind::Text(s.meta.external_id.clone()),
            Bind::Text(labels_to(&s.meta.labels)),
            Bind::Text(s.meta.profile_id.clone()),
            Bind::Int(s.meta.created_at),
            Bind::Int(s.meta.updated_at),
            Bind::Bytes(seal(&self.shared.vault, s, value)),
        ];
        values.extend(owner.map(|ts| Bind::Text(ts.into())));
        for (i, v) in values.into_iter().enumerate() {
            q.push(if i == 0 { "" } else { ", " }).bind(v);
        }
        q.push(")");
        self.execute(&q).await?;
        Ok(())
    }

    /// Writes the mutable fields of `s`, and the value when `new_value` is given.
    pub async fn update_secret(&mut self, s: &Secret, new_value: Option<&str>) -> StoreResult<()> {
        let mut head = ListQuery::new(&format!("UPDATE {} SET name = ", table(&s.scope)));
        head.bind(Bind::Text(s.meta.name.clone()))
            .push(", external_id = ")
            .bind(Bind::Text(s.meta.external_id.clone()))
            .push(", labels = ")
            .bind(Bind::Text(labels_to(&s.meta.labels)))
            .push(", updated_at = ")
            .bind(Bind::Int(s.meta.updated_at));
        if let Some(v) = new_value {
            head.push(", value_sealed = ").bind(Bind::Bytes(seal(&self.shared.vault, s, v)));
        }
        let mut q = narrowed(head, &s.scope, &s.workspace_id);
        q.and_eq("id", Bind::Text(s.meta.id.clone()));
        self.execute(&q).await?;
        Ok(())
    }

    pub async fn delete_secret(&mut self, workspace_id: &str, scope: &SecretScope, id: &str) -> StoreResult<bool> {
        let mut q = owned("DELETE FROM {table}", scope, workspace_id);
        q.and_eq("id", Bind::Text(id.into()));
        Ok(self.execute(&q).await? > 0)
    }

    /// The secret, locked for the rest of this unit (PostgreSQL), so a PATCH applies its mask
    /// to the row as it is now.
    pub async fn get_secret_locked(
        &mut self,
        workspace_id: &str,
        scope: &SecretScope,
        r: &IdRef,
    ) -> StoreResult<Option<Secret>> {
        let mut q = select(scope, workspace_id);
        by_ref(&mut q, r);
        q.push(self.for_update());
        let row: Option<SecretRow> = self.fetch_row(&q).await?;
        row.map(|r| r.into_domain(scope)).transpose()
    }
}

impl Tx {
    /// A workspace secret's value by name, for use in memory only (never stored elsewhere or
    /// logged); records when it was last used.
    pub async fn resolve_secret(&mut self, workspace_id: &str, name: &str) -> StoreResult<Option<String>> {
        self.resolve_in(workspace_id, &SecretScope::Workspace, name).await
    }

    /// A tool-set secret's value by name, as [`Tx::resolve_secret`] does for workspace secrets.
    /// Only the tool set's own secrets: callers that fall back to the workspace's ask again.
    pub async fn resolve_tool_set_secret(
        &mut self,
        workspace_id: &str,
        tool_set_id: &str,
        name: &str,
    ) -> StoreResult<Option<String>> {
        self.resolve_in(workspace_id, &SecretScope::ToolSet(tool_set_id.to_string()), name).await
    }

    async fn resolve_in(&mut self, workspace_id: &str, scope: &SecretScope, name: &str) -> StoreResult<Option<String>> {
        let now = self.now();
        let vault = self.shared.vault.clone();
        let mut q = owned("SELECT id, value_sealed FROM {table}", scope, workspace_id);
        q.and_eq("name", Bind::Text(name.into()));
        let row: Option<(String, Vec<u8>)> = self.fetch_row(&q).await?;
        let Some((id, sealed)) = row else { return Ok(None) };
        let plain =
            vault.open(&binding(scope, workspace_id, &id), &sealed).map_err(|e| StoreError::Corrupt(e.message))?;
        let mut used = ListQuery::new(&format!("UPDATE {} SET last_used_at = ", table(scope)));
        used.bind(Bind::Int(now));
        let mut used = narrowed(used, scope, workspace_id);
        used.and_eq("id", Bind::Text(id));
        self.execute(&used).await?;
        String::from_utf8(plain).map(Some).map_err(|_| StoreError::Corrupt("secret value".into()))
    }
}

impl Store {
    /// [`Tx::resolve_secret`] in a unit of its own.
    pub async fn resolve_secret(&self, workspace_id: &str, name: &str) -> StoreResult<Option<String>> {
        self.resolve_in(workspace_id, &SecretScope::Workspace, name).await
    }

    /// [`Tx::resolve_tool_set_secret`] in a unit of its own.
    pub async fn resolve_tool_set_secret(
        &self,
        workspace_id: &str,
        tool_set_id: &str,
        name: &str,
    ) -> StoreResult<Option<String>> {
        self.resolve_in(workspace_id, &SecretScope::ToolSet(tool_set_id.to_string()), name).await
    }

    async fn resolve_in(&self, workspace_id: &str, scope: &SecretScope, name: &str) -> StoreResult<Option<String>> {
        let mut tx = self.begin().await?;
        let value = tx.resolve_in(workspace_id, scope, name).await?;
        tx.commit().await?;
        Ok(value)
    }
}
