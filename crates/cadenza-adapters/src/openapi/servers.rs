//! The base URL tool calls go to (CONTRACT §12.2): `baseUrl` if given; else the server named
//! `serverName`; else the first server; else `/` (the OpenAPI default).
//!
//! A server is named by its `name` (OpenAPI 3.2), else its `x-name` extension, else its
//! `description` — the only label 3.0/3.1 documents have. Exact matches win over
//! case-insensitive ones. Server variables take their `default`. A relative server URL is resolved
//! against the URL the document came from when there is one; otherwise there is no base URL.

use reqwest::Url;
use serde_json::Value;

use super::OpenApiOptions;
use crate::error::{SpecError, SpecErrorKind};

pub fn base_url(doc: &Value, opts: &OpenApiOptions) -> Result<Option<String>, SpecError> {
    if let Some(explicit) = opts.base_url.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
        return Ok(Some(explicit.trim_end_matches('/').to_owned()));
    }
    let servers: Vec<&serde_json::Map<String, Value>> = doc
        .get("servers")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_object).collect())
        .unwrap_or_default();
    let wanted = opts.server_name.as_deref().map(str::trim).filter(|s| !s.is_empty());
    let chosen = match wanted {
        Some(name) => Some(find_named(&servers, name).ok_or_else(|| {
            let known: Vec<String> = servers.iter().filter_map(|s| label(s)).map(|l| format!("{l:?}")).collect();
            SpecError::new(
                SpecErrorKind::UnknownServer,
                format!(
                    "no server named {name:?} in the document (servers: {})",
                    if known.is_empty() { "none named".to_owned() } else { known.join(", ") }
                ),
            )
        })?),
        None => servers.first().copied(),
    };
    let raw = match chosen {
        Some(server) => substitute(server)?,
        None => "/".to_owned(),
    };
    let absolute = match Url::parse(&raw) {
        Ok(url) => Some(url),
        Err(_) => opts.spec_url.as_deref().and_then(|base| Url::parse(base).ok()).and_then(|base| base.join(&raw).ok()),
    };
    match absolute {
        Some(url) if matches!(url.scheme(), "http" | "https") => {
            Ok(Some(url.as_str().trim_end_matches('/').to_owned()))
        }
        Some(url) => Err(SpecError::invalid(format!("server url {:?} is not http or https", url.as_str()))),
        None => Ok(None),
    }
}

fn label(server: &serde_json::Map<String, Value>) -> Option<&str> {
    ["name", "x-name", "description"].iter().find_map(|k| server.get(*k).and_then(Value::as_str))
}

fn find_named<'a>(
    servers: &[&'a serde_json::Map<String, Value>],
    wanted: &str,
) -> Option<&'a serde_json::Map<String, Value>> {
    for key in ["name", "x-name", "description"] {
        let text =
            |s: &&serde_json::Map<String, Value>| s.get(key).and_then(Value::as_str).map(str::trim).map(str::to_owned);
        if let Some(s) = servers.iter().find(|s| text(s).as_deref() == Some(wanted)) {
            return Some(s);
        }
        if let Some(s) = servers.iter().find(|s| text(s).is_some_and(|t| t.eq_ignore_ascii_case(wanted))) {
            return Some(s);
        }
    }
    None
}

fn substitute(server: &serde_json::Map<String, Value>) -> Result<String, SpecError> {
    let url = server.get("url").and_then(Value::as_str).ok_or_else(|| SpecError::invalid("a server has no url"))?;
    let mut out = String::new();
    let mut rest = url;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        let close =
            after.find('}').ok_or_else(|| SpecError::invalid(format!("server url {url:?} has an unclosed {{")))?;
        let var = &after[..close];
        let default = server
            .get("variables")
            .and_then(|v| v.get(var))
            .and_then(|v| v.get("default"))
            .and_then(Value::as_str)
            .ok_or_else(|| SpecError::invalid(format!("server url {url:?} uses variable {var:?} with no default")))?;
        out.push_str(default);
        rest = &after[close + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn opts(base: Option<&str>, name: Option<&str>, spec: Option<&str>) -> OpenApiOptions {
        OpenApiOptions {
            base_url: base.map(str::to_owned),
            server_name: name.map(str::to_owned),
            spec_url: spec.map(str::to_owned),
        }
    }

    #[test]
    fn choice_order_and_variables() {
        let doc = json!({"servers": [
            {"url": "https://{region}.example.com/v1/", "variables": {"region": {"default": "eu"}}, "description": "Production"},
            {"url": "https://staging.example.com", "name": "staging"},
            {"url": "/relative", "x-name": "local"}
        ]});
        assert_eq!(
            base_url(&doc, &opts(None, None, None)).ok().flatten().as_deref(),
            Some("https://eu.example.com/v1")
        );
        assert_eq!(
            base_url(&doc, &opts(Some("http://x/"), Some("staging"), None)).ok().flatten().as_deref(),
            Some("http://x")
        );
        assert_eq!(
            base_url(&doc, &opts(None, Some("staging"), None)).ok().flatten().as_deref(),
            Some("https://staging.example.com")
        );
        assert_eq!(
            base_url(&doc, &opts(None, Some("production"), None)).ok().flatten().as_deref(),
            Some("https://eu.example.com/v1")
        );
        assert_eq!(base_url(&doc, &opts(None, Some("local"), None)).ok().flatten(), None);
        assert_eq!(
            base_url(&doc, &opts(None, Some("local"), Some("http://127.0.0.1:9/specs/a.json")))
                .ok()
                .flatten()
                .as_deref(),
            Some("http://127.0.0.1:9/relative")
        );
        let err = base_url(&doc, &opts(None, Some("nope"), None)).err();
        assert_eq!(err.map(|e| e.kind), Some(SpecErrorKind::UnknownServer));
        assert_eq!(
            base_url(&json!({}), &opts(None, None, Some("https://h/a/spec.yaml"))).ok().flatten().as_deref(),
            Some("https://h")
        );
    }
}
