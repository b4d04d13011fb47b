//! The account: rotating its webhook signing secret and its challenge token. Each rotation is
//! one UPDATE of the account row, so two racing rotations serialize on it; the last wins.

use cadenza_store::Tx;

use crate::Result;

/// Replaces the webhook signing secret; returns the new one (shown once).
pub async fn rotate_webhook_secret(tx: &mut Tx, account_id: &str) -> Result<String> {
    Ok(tx.rotate_webhook_secret(account_id).await?)
}

/// Replaces the challenge token; returns the new one.
pub async fn rotate_challenge_token(tx: &mut Tx, account_id: &str) -> Result<String> {
    Ok(tx.rotate_challenge_token(account_id).await?)
}
