//! API keys: a key grants only permissions its creator holds, and only a caller holding every
//! permission of a key may manage it (update, rotate, disable, delete); the account's global
//! key keeps every permission, is never disabled and never deleted (it is the way back in).
//!
//! Locks: every change reads the key locked ([`locked`]) and decides on the row as it is now,
//! so two changes (a permission cut and a rotation, say) cannot cross. Changes that affect
//! authentication move the access epoch at commit (`cadenza_store` queues it on the unit).

use cadenza_domain::Error;
use cadenza_domain::account::Profile;
use cadenza_domain::api_keys::ApiKey;
use cadenza_domain::ids::IdRef;
use cadenza_domain::principal::Principal;
use cadenza_domain::reasons::Reason;
use cadenza_domain::scopes::Scopes;
use cadenza_store::Tx;
use cadenza_store::api_keys::KeyScope;

use crate::Result;

/// A caller may only hand out, or take control of, permissions it holds itself.
pub fn ensure_covers(caller: &Principal, wanted: &Scopes) -> Result<()> {
    if caller.scopes.covers(wanted) {
        Ok(())
    } else {
        Err(Error::of(Reason::ScopeEscalation, "an API key cannot grant or manage permissions it does not hold itself"))
    }
}

fn ensure_can_manage(caller: &Principal, key: &ApiKey) -> Result<()> {
    ensure_covers(caller, &Scopes::parse(&key.permissions)?)
}

/// Stores a new key (with its principal profile and its token's hash) granting only what the
/// caller holds.
pub async fn create(
    tx: &mut Tx,
    caller: &Principal,
    key: &ApiKey,
    key_profile: &Profile,
    token_hash: &str,
) -> Result<()> {
    ensure_covers(caller, &Scopes::parse(&key.permissions)?)?;
    tx.insert_api_key(key, key_profile, token_hash).await?;
    Ok(())
}

/// The key `r` names in `scope`, locked for the rest of the unit, when `caller` may manage it.
pub async fn locked(tx: &mut Tx, caller: &Principal, scope: KeyScope<'_>, r: &IdRef) -> Result<ApiKey> {
    let key = tx.get_api_key_locked(&caller.account_id, scope, r).await?.ok_or_else(|| Error::not_found("api key"))?;
    ensure_can_manage(caller, &key)?;
    Ok(key)
}

/// Writes `key` (read with [`locked`], then changed), with new `permissions` when given: never
/// the global key's, never more than the caller holds.
pub async fn update(tx: &mut Tx, caller: &Principal, key: &mut ApiKey, permissions: Option<Scopes>) -> Result<()> {
    if let Some(scopes) = permissions {
        if key.system {
            return Err(Error::of(Reason::SystemKeyProtected, "the global API key always has every permission"));
        }
        ensure_covers(caller, &scopes)?;
        key.permissions = scopes.to_strings();
    }
    key.meta.updated_at = tx.now();
    tx.update_api_key(key).await?;
    Ok(())
}

/// Replaces the key's token (read with [`locked`]): every earlier token stops working at commit.
pub async fn rotate(tx: &mut Tx, key: &mut ApiKey, token_hash: &str) -> Result<()> {
    tx.set_api_key_token(&key.meta.account_id, &key.meta.id, token_hash).await?;
    key.meta.updated_at = tx.now();
    Ok(())
}

/// Turns the key (read with [`locked`]) on or off; the global key is never turned off.
pub async fn set_enabled(tx: &mut Tx, key: &mut ApiKey, enabled: bool) -> Result<()> {
    if !enabled && key.system {
        return Err(Error::of(
            Reason::SystemKeyProtected,
            "the account's global API key cannot be disabled (it is the only way back in); rotate it instead",
        ));
    }
    if key.enabled != enabled {
        key.enabled = enabled;
        key.meta.updated_at = tx.now();
        tx.update_api_key(key).await?;
    }
    Ok(())
}

/// Deletes the key `r` names; never the global key.
pub async fn delete(tx: &mut Tx, caller: &Principal, scope: KeyScope<'_>, r: &IdRef) -> Result<ApiKey> {
    let key = tx.get_api_key_locked(&caller.account_id, scope, r).await?.ok_or_else(|| Error::not_found("api key"))?;
    if key.system {
        return Err(Error::of(
            Reason::KeyNotDeletable,
            "the account's global API key cannot be deleted; rotate it instead",
        ));
    }
    ensure_can_manage(caller, &key)?;
    tx.delete_api_key(&key.meta.account_id, &key.meta.id).await?;
    Ok(key)
}
