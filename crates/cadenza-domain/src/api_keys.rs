//! API keys (CONTRACT §16): tokens stored only as hashes, scoped permissions, one workspace each
//! except the account's global (system) key.

use crate::Meta;

/// Every token Cadenza mints starts with this, so leaked tokens are easy to recognise and scan for.
pub const TOKEN_PREFIX: &str = "cdz_sk_";
/// The shortest token accepted from `CADENZA_BOOTSTRAP_API_KEY`.
pub const MIN_BOOTSTRAP_TOKEN_LEN: usize = 32;

#[derive(Debug, Clone)]
pub struct ApiKey {
    pub meta: Meta,
    /// The one workspace an ordinary key belongs to; `None` for the global system key.
    pub workspace_id: Option<String>,
    /// The key's own principal profile (`PROFILE_TYPE_API_KEY`).
    pub key_profile_id: String,
    pub description: String,
    pub permissions: Vec<String>,
    pub system: bool,
    pub enabled: bool,
}
