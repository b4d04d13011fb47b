//! OpenAPI document → tools (CONTRACT §12.2, the `openapi` adapter).
//!
//! Steps: parse (JSON, or YAML when the text does not start with `{`), check the version
//! (3.0.x, 3.1.x, 3.2.x; Swagger 2.0 is refused as `UnsupportedVersion`), refuse any `$ref` that
//! leaves the document (`RemoteRefRefused`; see [`refs`]), normalise 3.0 to 3.1, check the
//! structure with the oas3 model, then build one tool per operation and pick the base URL.

mod normalise;
mod operations;
mod refs;
mod schema_walk;
mod servers;

use serde_json::Value;

pub use normalise::normalise_30_to_31;
pub use refs::{INLINE_BUDGET, MAX_INLINE_DEPTH, MAX_INLINE_NESTING};

use crate::discovered::DiscoveredTool;
use crate::error::{SpecError, SpecErrorKind};

/// Largest document accepted, in bytes; larger is `InvalidSpec` (fetches are capped earlier).
pub const MAX_DOCUMENT_BYTES: usize = 16 * 1024 * 1024;

/// The adapter settings that shape the result.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OpenApiOptions {
    /// Overrides the document's servers.
    pub base_url: Option<String>,
    /// Picks a server by its `name` (OpenAPI 3.2), else `x-name`, else `description`; exact
    /// matches win over case-insensitive ones. Naming no server is `UnknownServer`.
    pub server_name: Option<String>,
    /// Where the document was fetched from, to resolve a relative server URL.
    pub spec_url: Option<String>,
}

/// What a document yields.
#[derive(Debug, Clone, PartialEq)]
pub struct OpenApiTools {
    pub tools: Vec<DiscoveredTool>,
    /// Where calls go (no trailing slash); `None` when the document only has a relative server
    /// URL and no `spec_url` to resolve it against.
    pub base_url: Option<String>,
    /// The document's own `openapi` version string, e.g. `3.0.3`.
    pub version: String,
    /// The consumed document as parsed (YAML turned into JSON), before normalisation: what
    /// `openapi_spec` (TS7) returns.
    pub document: Value,
    /// The same document in its 3.1 form, which the tools were built from.
    pub normalised: Value,
}

impl OpenApiTools {
    /// The consumed document as JSON text, for storing.
    pub fn document_json(&self) -> String {
        self.document.to_string()
    }
}

/// Parses `doc` (JSON or YAML bytes) and turns every operation into a tool.
///
/// CPU-bound (a large document takes a noticeable fraction of a second): from async code, run it
/// on a blocking thread.
pub fn tools_from_openapi(doc: &[u8], opts: &OpenApiOptions) -> Result<OpenApiTools, SpecError> {
    tools_from_openapi_value(parse_document(doc)?, opts)
}

/// Like [`tools_from_openapi`] for a document already parsed into JSON.
pub fn tools_from_openapi_value(document: Value, opts: &OpenApiOptions) -> Result<OpenApiTools, SpecError> {
    let version = check_version(&document)?;
    refs::refuse_remote_refs(&document)?;
    let normalised = normalise_30_to_31(document.clone());
    validate_structure(&normalised)?;
    let tools = operations::tools(&normalised)?;
    let base_url = servers::base_url(&normalised, opts)?;
    Ok(OpenApiTools { tools, base_url, version, document, normalised })
}

/// JSON when the text starts with `{` (after a BOM and whitespace), YAML otherwise.
pub fn parse_document(doc: &[u8]) -> Result<Value, SpecError> {
    if doc.len() > MAX_DOCUMENT_BYTES {
        return Err(SpecError::invalid(format!("document is larger than {MAX_DOCUMENT_BYTES} bytes")));
    }
    let text = std::str::from_utf8(doc).map_err(|e| SpecError::invalid(format!("document is not UTF-8: {e}")))?;
    let text = text.trim_start_matches('\u{feff}').trim_start();
    if text.is_empty() {
        return Err(SpecError::invalid("document is empty"));
    }
    let value: Value = if text.starts_with('{') {
        serde_json::from_str(text).map_err(|e| SpecError::invalid(format!("document is not valid JSON: {e}")))?
    } else {
        yaml_serde::from_str(text)
            .map_err(|e| SpecError::invalid(format!("document is neither JSON nor valid YAML: {e}")))?
    };
    if !value.is_object() {
        return Err(SpecError::invalid("document is not a JSON/YAML object"));
    }
    Ok(value)
}

fn check_version(doc: &Value) -> Result<String, SpecError> {
    let version = match doc.get("openapi") {
        Some(Value::String(v)) => v.trim().to_owned(),
        // An unquoted `openapi: 3.1` in YAML reads as a number.
        Some(Value::Number(n)) => n.to_string(),
        Some(_) => return Err(SpecError::invalid("`openapi` must be a version string")),
        None if doc.get("swagger").is_some() => {
            return Err(SpecError::new(
                SpecErrorKind::UnsupportedVersion,
                "Swagger 2.0 documents are not supported; convert the document to OpenAPI 3",
            ));
        }
        None => return Err(SpecError::invalid("not an OpenAPI document: no `openapi` version field")),
    };
    let supported = ["3.0", "3.1", "3.2"].iter().any(|p| version == *p || version.starts_with(&format!("{p}.")));
    if !supported {
        return Err(SpecError::new(
            SpecErrorKind::UnsupportedVersion,
            format!("OpenAPI version {version:?} is not supported (3.0.x, 3.1.x and 3.2.x are)"),
        ));
    }
    Ok(version)
}

/// Structural check with the oas3 model. It only knows 3.1, so a 3.2 document is checked as 3.1
/// (3.2 only adds fields, which the model ignores).
fn validate_structure(normalised: &Value) -> Result<(), SpecError> {
    let mut copy = normalised.clone();
    if let Some(obj) = copy.as_object_mut() {
        obj.insert("openapi".into(), Value::String("3.1.0".into()));
    }
    serde_json::from_value::<oas3::Spec>(copy)
        .map(|_| ())
        .map_err(|e| SpecError::invalid(format!("not a valid OpenAPI document: {e}")))
}
