//! What every stored, named resource carries: the `metadata` block on the wire.

use crate::Labels;
use crate::ids::IdKind;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Meta {
    pub id: String,
    pub account_id: String,
    pub name: String,
    /// Caller-chosen key, unique per scope; `""` when unset.
    pub external_id: String,
    pub labels: Labels,
    /// The profile (principal) that created the resource.
    pub profile_id: String,
    pub created_at: i64,
    pub updated_at: i64,
}

impl Meta {
    /// Metadata of a resource created now by `profile_id`.
    pub fn new(
        kind: IdKind,
        now: i64,
        account_id: &str,
        profile_id: &str,
        name: String,
        external_id: String,
        labels: Labels,
    ) -> Self {
        Self {
            id: kind.new_id(now),
            account_id: account_id.to_string(),
            name,
            external_id,
            labels,
            profile_id: profile_id.to_string(),
            created_at: now,
            updated_at: now,
        }
    }
}
