//! Models (CONTRACT §14): the catalog comes from the configured providers; each workspace keeps
//! its own enabled/disabled switch per model.

use crate::Meta;

/// One model of a configured provider, as every workspace sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CatalogModel {
    /// `<provider id>/<model id>`: the model's name and external id in every workspace.
    pub name: String,
    pub provider: String,
    /// `openai` (any OpenAI-compatible endpoint) or `anthropic`.
    pub provider_kind: String,
    pub model: String,
    pub family: String,
    pub max_input_tokens: u32,
    pub max_output_tokens: u32,
    /// US cents per million tokens.
    pub input_price: u64,
    pub output_price: u64,
    /// Why the model cannot be called right now (its provider's key variable is not set), if so.
    pub unusable_reason: Option<String>,
}

/// A workspace's record of a catalog model.
#[derive(Debug, Clone)]
pub struct Model {
    pub meta: Meta,
    pub workspace_id: String,
    pub enabled: bool,
    pub last_used_at: Option<i64>,
}
