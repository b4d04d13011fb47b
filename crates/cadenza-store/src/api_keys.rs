//! API keys. Tokens exist here only as SHA-256 hashes.

use crate::tx::on_tx;
use crate::{Reads, Tx};
use cadenza_domain::IdRef;
use cadenza_domain::account::Profile;
use cadenza_domain::api_keys::ApiKey;
use cadenza_domain::page::{ListParams, Page};

use crate::StoreResult;
use crate::account::insert_profile;
use crate::list::{Bind, ListQuery};
use crate::rows::{HasMeta, MetaRow, id_ref_column, labels_to, strings_from, strings_to};

#[derive(sqlx::FromRow)]
struct ApiKeyRow {
    #[sqlx(flatten)]
    meta: MetaRow,
    workspace_id: Option<String>,
    key_profile_id: String,
    description: String,
    permissions: String,
    system: i64,
    enabled: i64,
}

impl HasMeta for ApiKeyRow {
    fn meta_row(&self) -> &MetaRow {
        &self.meta
    }
}

impl ApiKeyRow {
    fn into_domain(self) -> StoreResult<ApiKey> {
        Ok(ApiKey {
            permissions: strings_from(&self.permissions)?,
            meta: self.meta.into_meta()?,
            workspace_id: self.workspace_id,
            key_profile_id: self.key_profile_id,
            description: self.description,
            system: self.system != 0,
            enabled: self.enabled != 0,
        })
    }
}

const SELECT: &str = "SELECT id, account_id, workspace_id, name, external_id, labels, profile_id, key_profile_id, created_at, updated_at, description, permissions, system, enabled FROM api_keys WHERE 1 = 1";

/// Inserts a key inside an open transaction; shared by bootstrap and key creation.
macro_rules! insert_api_key {
    ($tx:expr, $k:expr, $hash:expr) => {
        sqlx::query(
            "INSERT INTO api_keys (id, account_id, workspace_id, name, external_id, labels, profile_id, key_profile_id, \
             created_at, updated_at, description, permissions, system, enabled, token_hash) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)",
        )
        .bind(&$k.meta.id)
        .bind(&$k.meta.account_id)
        .bind(&$k.workspace_id)
        .bind(&$k.meta.name)
        .bind(&$k.meta.external_id)
        .bind(crate::rows::labels_to(&$k.meta.labels))
        .bind(&$k.meta.profile_id)
        .bind(&$k.key_profile_id)
        .bind($k.meta.created_at)
        .bind($k.meta.updated_at)
        .bind(&$k.description)
        .bind(crate::rows::strings_to(&$k.permissions))
        .bind(i64::from($k.system))
        .bind(i64::from($k.enabled))
        .bind($hash)
        .execute(&mut *$tx)
        .await?
    };
}
pub(crate) use insert_api_key;

/// Which keys a lookup may see: one workspace's, or the whole account's.
#[derive(Debug, Clone, Copy)]
pub enum KeyScope<'a> {
    Workspace(&'a str),
    Account,
}

impl KeyScope<'_> {
    fn apply(&self, q: &mut ListQuery) {
        if let KeyScope::Workspace(ws) = self {
            q.and_eq("workspace_id", Bind::Text((*ws).to_string()));
        }
    }
}

fn key_query(account_id: &str, scope: KeyScope<'_>, r: &IdRef) -> ListQuery {
    let (col, val) = id_ref_column(r);
    let mut q = ListQuery::new(SELECT);
    q.and_eq("account_id", Bind::Text(account_id.into()));
    scope.apply(&mut q);
    q.and_eq(col, Bind::Text(val));
    q
}

impl Reads {
    pub async fn get_api_key(&self, account_id: &str, scope: KeyScope<'_>, r: &IdRef) -> StoreResult<Option<ApiKey>> {
        let q = key_query(account_id, scope, r);
        let row: Option<ApiKeyRow> = self.fetch_row(&q).await?;
        row.map(ApiKeyRow::into_domain).transpose()
    }

    /// The account's global (system) key.
    pub async fn get_system_api_key(&self, account_id: &str) -> StoreResult<Option<ApiKey>> {
        let mut q = ListQuery::new(SELECT);
        q.and_eq("account_id", Bind::Text(account_id.into())).and_eq("system", Bind::Int(1));
        let row: Option<ApiKeyRow> = self.fetch_row(&q).await?;
        row.map(ApiKeyRow::into_domain).transpose()
    }

    /// The key a bearer token belongs to, by the token's hash. Disabled keys are returned too;
    /// the caller decides.
    pub async fn api_key_by_token_hash(&self, token_hash: &str) -> StoreResult<Option<ApiKey>> {
        let mut q = ListQuery::new(SELECT);
        q.and_eq("token_hash", Bind::Text(token_hash.into()));
        let row: Option<ApiKeyRow> = self.fetch_row(&q).await?;
        row.map(ApiKeyRow::into_domain).transpose()
    }

    /// Lists keys; `prefix` filters on the key id (CONTRACT §16).
    pub async fn list_api_keys(
        &self,
        account_id: &str,
        scope: KeyScope<'_>,
        params: &ListParams,
    ) -> StoreResult<Page<ApiKey>> {
        let mut q = ListQuery::new(SELECT);
        q.and_eq("account_id", Bind::Text(account_id.into()));
        scope.apply(&mut q);
        let page = self.list_page::<ApiKeyRow>(q, "id", params).await?;
        let items = page.items.into_iter().map(ApiKeyRow::into_domain).collect::<StoreResult<Vec<_>>>()?;
        Ok(Page { items, next_cursor: page.next_cursor })
    }
}

impl Tx {
    /// Stores a new key and its principal profile in one transaction.
    pub async fn insert_api_key(&mut self, key: &ApiKey, key_profile: &Profile, token_hash: &str) -> StoreResult<()> {
        on_tx!(self, |tx| {
            insert_profile!(tx, key_profile);
            insert_api_key!(tx, key, token_hash);
        });
        Ok(())
    }

    /// Writes every mutable field of `key`. The token is not among them.
    pub async fn update_api_key(&mut self, key: &ApiKey) -> StoreResult<()> {
        on_tx!(self, |tx| {
            sqlx::query(
                "UPDATE api_keys SET name = $1, external_id = $2, labels = $3, description = $4, permissions = $5, \
                 enabled = $6, workspace_id = $7, updated_at = $8 WHERE account_id = $9 AND id = $10",
            )
            .bind(&key.meta.name)
            .bind(&key.meta.external_id)
            .bind(labels_to(&key.meta.labels))
            .bind(&key.description)
            .bind(strings_to(&key.permissions))
            .bind(i64::from(key.enabled))
            .bind(&key.workspace_id)
            .bind(key.meta.updated_at)
            .bind(&key.meta.account_id)
            .bind(&key.meta.id)
            .execute(&mut *tx)
            .await?;
        });
        self.access_changed().await?;
        Ok(())
    }

    /// Replaces the token hash: every earlier token of the key stops working at commit.
    pub async fn set_api_key_token(&mut self, account_id: &str, id: &str, token_hash: &str) -> StoreResult<()> {
        let now = self.now();
        on_tx!(self, |tx| {
            sqlx::query("UPDATE api_keys SET token_hash = $1, updated_at = $2 WHERE account_id = $3 AND id = $4")
                .bind(token_hash)
                .bind(now)
                .bind(account_id)
                .bind(id)
                .execute(&mut *tx)
                .await?;
        });
        self.access_changed().await?;
        Ok(())
    }

    /// Deletes a non-system key. Returns whether a row went away.
    pub async fn delete_api_key(&mut self, account_id: &str, id: &str) -> StoreResult<bool> {
        let n = on_tx!(self, |tx| {
            sqlx::query("DELETE FROM api_keys WHERE account_id = $1 AND id = $2 AND system = 0")
                .bind(account_id)
                .bind(id)
                .execute(&mut *tx)
                .await?
                .rows_affected()
        });
        self.access_changed().await?;
        Ok(n > 0)
    }

    /// The key, locked for the rest of this unit (PostgreSQL): a PATCH or a state change
    /// applies to the row as it is now, and the rules about who may manage it see it so.
    pub async fn get_api_key_locked(
        &mut self,
        account_id: &str,
        scope: KeyScope<'_>,
        r: &IdRef,
    ) -> StoreResult<Option<ApiKey>> {
        let mut q = key_query(account_id, scope, r);
        q.push(self.for_update());
        let row: Option<ApiKeyRow> = self.fetch_row(&q).await?;
        row.map(ApiKeyRow::into_domain).transpose()
    }
}
