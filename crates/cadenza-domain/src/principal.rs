//! Who is calling: the result of authentication, checked by every route.

use crate::scopes::{Scopes, Verb};

/// What kind of credential authenticated the request. Only API keys exist today; a JWT verifier
/// for human users would add a variant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PrincipalKind {
    ApiKey,
    User,
}

#[derive(Debug, Clone)]
pub struct Principal {
    pub kind: PrincipalKind,
    pub account_id: String,
    pub profile_id: String,
    pub api_key_id: Option<String>,
    /// The only workspace this principal may touch; `None` means every workspace of the account.
    pub workspace_id: Option<String>,
    /// The account's global key: may administer workspaces and keys account-wide.
    pub system: bool,
    pub scopes: Scopes,
}

impl Principal {
    pub fn is_api_key(&self) -> bool {
        self.kind == PrincipalKind::ApiKey
    }

    pub fn can(&self, resource: &str, verb: Verb) -> bool {
        self.scopes.allows(resource, verb)
    }

    /// Whether this principal may act inside workspace `ws`.
    pub fn can_access_workspace(&self, ws: &str) -> bool {
        self.workspace_id.as_deref().is_none_or(|own| own == ws)
    }
}
