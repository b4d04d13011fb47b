//! The account and profiles.

use crate::tx::on_tx;
use crate::{Reads, Tx};
use cadenza_domain::Meta;
use cadenza_domain::account::{self, Account, Profile, ProfileType};
use cadenza_domain::ids::IdKind;

use crate::rows::labels_from;
use crate::{StoreError, StoreResult, on_db};

#[derive(sqlx::FromRow)]
struct AccountRow {
    id: String,
    name: String,
    external_id: String,
    labels: String,
    profile_id: String,
    created_at: i64,
    updated_at: i64,
    billing_email: String,
    description: String,
    domain: String,
    webhook_secret_sealed: Vec<u8>,
    challenge_token: String,
}

/// The signing secrets of an account: the current one and, after a rotation, the previous.
#[derive(sqlx::FromRow)]
struct SigningRow {
    webhook_secret_sealed: Vec<u8>,
    previous_webhook_secret_sealed: Option<Vec<u8>>,
    webhook_secret_rotated_at: Option<i64>,
}

#[derive(sqlx::FromRow)]
pub(crate) struct ProfileRow {
    id: String,
    account_id: String,
    kind: String,
    name: String,
    email: String,
    created_at: i64,
}

impl ProfileRow {
    fn into_domain(self) -> StoreResult<Profile> {
        let kind =
            ProfileType::parse(&self.kind).ok_or_else(|| StoreError::Corrupt(format!("profile kind {}", self.kind)))?;
        Ok(Profile {
            id: self.id,
            account_id: self.account_id,
            kind,
            name: self.name,
            email: self.email,
            created_at: self.created_at,
        })
    }
}

const ACCOUNT_COLUMNS: &str = "SELECT id, name, external_id, labels, profile_id, created_at, updated_at, billing_email, description, domain, webhook_secret_sealed, challenge_token FROM accounts";

impl Reads {
    pub async fn get_account(&self, account_id: &str) -> StoreResult<Option<Account>> {
        let sql = const_format(ACCOUNT_COLUMNS, " WHERE id = $1");
        let row: Option<AccountRow> = on_db!(self, read, |db| sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .bind(account_id)
            .fetch_optional(db)
            .await?);
        row.map(|r| self.account_from_row(r)).transpose()
    }

    fn account_from_row(&self, r: AccountRow) -> StoreResult<Account> {
        let secret = self
            .vault()
            .open(&[&r.id, "webhook"], &r.webhook_secret_sealed)
            .map_err(|e| StoreError::Corrupt(e.message))?;
        Ok(Account {
            meta: Meta {
                labels: labels_from(&r.labels)?,
                account_id: r.id.clone(),
                id: r.id,
                name: r.name,
                external_id: r.external_id,
                profile_id: r.profile_id,
                created_at: r.created_at,
                updated_at: r.updated_at,
            },
            billing_email: r.billing_email,
            description: r.description,
            domain: r.domain,
            webhook_secret: String::from_utf8(secret).map_err(|_| StoreError::Corrupt("webhook secret".into()))?,
            challenge_token: r.challenge_token,
        })
    }

    /// The secrets deliveries are signed with at `now`: the current one, and the one before the
    /// last rotation while the grace period lasts.
    pub async fn webhook_signing_secrets(&self, account_id: &str, now: i64) -> StoreResult<Vec<String>> {
        let row: Option<SigningRow> = on_db!(self, read, |db| {
            sqlx::query_as(
            "SELECT webhook_secret_sealed, previous_webhook_secret_sealed, webhook_secret_rotated_at FROM accounts WHERE id = $1"
        )
        .bind(account_id)
        .fetch_optional(db)
        .await?
        });
        let Some(SigningRow {
            webhook_secret_sealed: current,
            previous_webhook_secret_sealed: previous,
            webhook_secret_rotated_at: rotated_at,
        }) = row
        else {
            return Ok(Vec::new());
        };
        let open = |sealed: &[u8]| -> StoreResult<String> {
            let plain =
                self.vault().open(&[account_id, "webhook"], sealed).map_err(|e| StoreError::Corrupt(e.message))?;
            String::from_utf8(plain).map_err(|_| StoreError::Corrupt("webhook secret".into()))
        };
        let mut out = vec![open(&current)?];
        if let (Some(previous), Some(at)) = (previous, rotated_at)
            && now < at.saturating_add(cadenza_domain::webhooks::ROTATION_GRACE_MS)
        {
            out.push(open(&previous)?);
        }
        Ok(out)
    }

    /// Seals the webhook signing secret of an account (also used by bootstrap).
    pub(crate) fn seal_webhook_secret(&self, account_id: &str, secret: &str) -> Vec<u8> {
        seal_webhook(self.vault(), account_id, secret)
    }

    pub async fn get_profile(&self, account_id: &str, profile_id: &str) -> StoreResult<Option<Profile>> {
        let row: Option<ProfileRow> = on_db!(self, read, |db| sqlx::query_as(
            "SELECT id, account_id, kind, name, email, created_at FROM profiles WHERE account_id = $1 AND id = $2"
        )
        .bind(account_id)
        .bind(profile_id)
        .fetch_optional(db)
        .await?);
        row.map(ProfileRow::into_domain).transpose()
    }

    /// A new profile record (not yet stored) for an account.
    pub fn new_profile(&self, account_id: &str, kind: ProfileType, name: &str) -> Profile {
        Profile {
            id: IdKind::Profile.new_id(self.now_ms()),
            account_id: account_id.to_string(),
            kind,
            name: name.to_string(),
            email: String::new(),
            created_at: self.now_ms(),
        }
    }
}

impl Tx {
    /// Replaces the webhook signing secret and returns the new one.
    pub async fn rotate_webhook_secret(&mut self, account_id: &str) -> StoreResult<String> {
        let secret = account::new_webhook_secret();
        let sealed = seal_webhook(&self.shared.vault, account_id, &secret);
        let now = self.now();
        on_tx!(self, |tx| {
            // The secret being replaced keeps signing for the grace period.
            sqlx::query(
                "UPDATE accounts SET previous_webhook_secret_sealed = webhook_secret_sealed, \
                 webhook_secret_sealed = $1, webhook_secret_rotated_at = $2, updated_at = $2 WHERE id = $3",
            )
            .bind(sealed)
            .bind(now)
            .bind(account_id)
            .execute(&mut *tx)
            .await?;
        });
        Ok(secret)
    }

    pub async fn rotate_challenge_token(&mut self, account_id: &str) -> StoreResult<String> {
        let token = account::new_challenge_token();
        let now = self.now();
        on_tx!(self, |tx| {
            sqlx::query("UPDATE accounts SET challenge_token = $1, updated_at = $2 WHERE id = $3")
                .bind(&token)
                .bind(now)
                .bind(account_id)
                .execute(&mut *tx)
                .await?;
        });
        Ok(token)
    }
}

/// The webhook signing secret sealed with the vault, bound to its account.
fn seal_webhook(vault: &cadenza_domain::crypto::Vault, account_id: &str, secret: &str) -> Vec<u8> {
    vault.seal(&[account_id, "webhook"], secret.as_bytes())
}

/// Inserts a profile inside an open transaction; shared by bootstrap and key creation.
macro_rules! insert_profile {
    ($tx:expr, $p:expr) => {
        sqlx::query(
            "INSERT INTO profiles (id, account_id, kind, name, email, created_at) VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(&$p.id)
        .bind(&$p.account_id)
        .bind($p.kind.as_str())
        .bind(&$p.name)
        .bind(&$p.email)
        .bind($p.created_at)
        .execute(&mut *$tx)
        .await?
    };
}
pub(crate) use insert_profile;

fn const_format(a: &str, b: &str) -> String {
    format!("{a}{b}")
}
