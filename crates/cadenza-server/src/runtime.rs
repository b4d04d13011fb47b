//! The objective runtime as this process runs it: one model client per configured provider,
//! HTTP tools under the egress policy.

use std::time::Duration;

use cadenza_llm::{ProviderKind, ProviderSettings};
use cadenza_runtime::{Limits, Models, Runtime};

use crate::config::Config;

/// The runtime for `config`. A provider whose key variable is unset still gets a client (its
/// models fail with the provider's answer, and the models API says why they are unusable).
pub fn build(
    config: &Config,
    egress: cadenza_adapters::EgressPolicy,
    env: &dyn Fn(&str) -> Option<String>,
    blobs: cadenza_store::blobs::Blobs,
) -> anyhow::Result<Runtime> {
    // One pooled client for every provider; the provider clients apply their own timeouts.
    let http = reqwest::Client::builder().connect_timeout(Duration::from_secs(10)).build()?;
    let mut models = Models::default();
    for p in &config.providers {
        let kind = match p.kind.as_str() {
            "anthropic" => ProviderKind::Anthropic,
            _ => ProviderKind::OpenAi,
        };
        let key = (!p.api_key_env.is_empty()).then(|| env(&p.api_key_env)).flatten().filter(|k| !k.is_empty());
        let mut settings = ProviderSettings::new(kind, p.base_url.clone(), key);
        settings.stream = p.stream;
        let client = cadenza_llm::provider(settings, http.clone());
        let ids: Vec<String> = p.models.iter().map(|m| m.id.clone()).collect();
        models.add_provider(&p.id, client, &ids);
    }
    Ok(Runtime::new(models, egress, Limits::default())?.with_blobs(blobs))
}
