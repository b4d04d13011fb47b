//! The first start: account, system profile, `default` workspace and the global API key,
//! all in one transaction guarded by a single-row table so concurrent replicas bootstrap once.

use crate::Reads;
use cadenza_domain::account::{self, Account, Profile, ProfileType};
use cadenza_domain::api_keys::ApiKey;
use cadenza_domain::crypto::token_hash;
use cadenza_domain::ids::IdKind;
use cadenza_domain::workspaces::{DEFAULT_WORKSPACE, Workspace, WorkspaceStatus};
use cadenza_domain::{Labels, Meta, scopes::Scopes};

use crate::account::insert_profile;
use crate::api_keys::insert_api_key;
use crate::workspaces::insert_workspace;
use crate::{Store, StoreResult, in_tx, on_db};

/// Everything the first start creates, built by the caller.
#[derive(Debug, Clone)]
pub struct Bootstrap {
    pub account: Account,
    pub system_profile: Profile,
    pub workspace: Workspace,
    pub key: ApiKey,
    pub key_profile: Profile,
    pub token_hash: String,
}

impl Bootstrap {
    /// Plans the first start: the global key will authenticate with `token`.
    pub fn new(now: i64, token: &str) -> Self {
        let account_id = IdKind::Account.new_id(now);
        let profile = |kind, name: &str| Profile {
            id: IdKind::Profile.new_id(now),
            account_id: account_id.clone(),
            kind,
            name: name.to_string(),
            email: String::new(),
            created_at: now,
        };
        let system_profile = profile(ProfileType::System, "cadenza");
        let key_profile = profile(ProfileType::ApiKey, "global API key");
        let meta = |kind: IdKind, name: &str, external_id: &str| Meta {
            id: kind.new_id(now),
            account_id: account_id.clone(),
            name: name.to_string(),
            external_id: external_id.to_string(),
            labels: Labels::new(),
            profile_id: system_profile.id.clone(),
            created_at: now,
            updated_at: now,
        };
        let account = Account {
            meta: Meta { id: account_id.clone(), ..meta(IdKind::Account, "cadenza", "") },
            billing_email: String::new(),
            description: String::new(),
            domain: String::new(),
            webhook_secret: account::new_webhook_secret(),
            challenge_token: account::new_challenge_token(),
        };
        let workspace = Workspace {
            meta: meta(IdKind::Workspace, DEFAULT_WORKSPACE, DEFAULT_WORKSPACE),
            description: String::new(),
            status: WorkspaceStatus::Enabled,
        };
        let key = ApiKey {
            meta: meta(IdKind::ApiKey, "global API key", ""),
            workspace_id: None,
            key_profile_id: key_profile.id.clone(),
            description: "The account's global key: every permission in every workspace.".to_string(),
            permissions: Scopes::all().to_strings(),
            system: true,
            enabled: true,
        };
        Self { account, system_profile, workspace, key, key_profile, token_hash: token_hash(token) }
    }
}

impl Reads {
    /// The account created by bootstrap, if it ran.
    pub async fn bootstrapped_account(&self) -> StoreResult<Option<String>> {
        Ok(on_db!(self, read, |db| sqlx::query_scalar("SELECT account_id FROM bootstrap WHERE id = 1")
            .fetch_optional(db)
            .await?))
    }
}

impl Store {
    /// Creates everything in `b` unless bootstrap already ran. Returns whether it ran now.
    pub async fn bootstrap(&self, b: &Bootstrap) -> StoreResult<bool> {
        let sealed = self.seal_webhook_secret(&b.account.meta.id, &b.account.webhook_secret);
        let a = &b.account;
        let ran = in_tx!(self, |tx| {
            let claimed = sqlx::query(
                "INSERT INTO bootstrap (id, account_id, created_at) VALUES (1, $1, $2) ON CONFLICT (id) DO NOTHING",
            )
            .bind(&a.meta.id)
            .bind(a.meta.created_at)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if claimed == 1 {
                sqlx::query(
                    "INSERT INTO accounts (id, name, external_id, labels, profile_id, created_at, updated_at, billing_email, \
                     description, domain, webhook_secret_sealed, challenge_token) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
                )
                .bind(&a.meta.id)
                .bind(&a.meta.name)
                .bind(&a.meta.external_id)
                .bind(crate::rows::labels_to(&a.meta.labels))
                .bind(&a.meta.profile_id)
                .bind(a.meta.created_at)
                .bind(a.meta.updated_at)
                .bind(&a.billing_email)
                .bind(&a.description)
                .bind(&a.domain)
                .bind(&sealed)
                .bind(&a.challenge_token)
                .execute(&mut *tx)
                .await?;
                insert_profile!(tx, b.system_profile);
                insert_profile!(tx, b.key_profile);
                insert_workspace!(tx, b.workspace);
                insert_api_key!(tx, b.key, &b.token_hash);
            }
            claimed == 1
        });
        Ok(ran)
    }
}
