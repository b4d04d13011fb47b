//! The OpenAPI 3.1 document, built from the same modules that register the routes: each area's
//! `operations()` sits next to its `routes()`, and the schemas are derived from the very types
//! the handlers serialise and parse (schemars, JSON Schema 2020-12, which OpenAPI 3.1 uses
//! as is). A test checks every documented operation is routed; a snapshot test keeps the
//! document from drifting by accident.

use schemars::generate::{Contract, SchemaSettings};
use schemars::{JsonSchema, Schema, SchemaGenerator};
use serde_json::{Map, Value, json};

/// Builds a schema (usually a `$ref`) for a wire type.
pub type SchemaFn = fn(&mut SchemaGenerator) -> Schema;

/// `SchemaFn` for `T`.
pub fn schema<T: JsonSchema>(g: &mut SchemaGenerator) -> Schema {
    g.subschema_for::<T>()
}

/// One documented operation.
pub struct Op {
    pub method: &'static str,
    /// The full path with `{param}` placeholders; `:verb` suffixes are literal.
    pub path: &'static str,
    /// `<verb>_<resource>`, also the handler's name where one handler serves one operation.
    pub id: &'static str,
    pub tag: &'static str,
    pub summary: &'static str,
    /// The permission the operation needs, if any (documentation only; handlers enforce it).
    pub scope: &'static str,
    pub request: Option<SchemaFn>,
    pub response: SchemaFn,
    /// Takes the list query parameters.
    pub list: bool,
}

impl Op {
    pub const fn new(
        method: &'static str,
        path: &'static str,
        id: &'static str,
        tag: &'static str,
        response: SchemaFn,
    ) -> Self {
        Self { method, path, id, tag, summary: "", scope: "", request: None, response, list: false }
    }
    pub const fn summary(mut self, s: &'static str) -> Self {
        self.summary = s;
        self
    }
    pub const fn scope(mut self, s: &'static str) -> Self {
        self.scope = s;
        self
    }
    pub const fn body(mut self, f: SchemaFn) -> Self {
        self.request = Some(f);
        self
    }
    pub const fn list(mut self) -> Self {
        self.list = true;
        self
    }
}

/// Every documented operation, in a stable order.
pub fn operations() -> Vec<Op> {
    let mut ops = Vec::new();
    ops.extend(crate::routes::account::operations());
    ops.extend(crate::routes::workspaces::operations());
    ops.extend(crate::routes::api_keys::operations());
    ops.extend(crate::routes::secrets::operations());
    ops.extend(crate::routes::agents::operations());
    ops.extend(crate::routes::feedback::operations());
    ops.extend(crate::routes::webhooks::operations());
    ops.extend(crate::routes::variations::operations());
    ops.extend(crate::routes::schedules::operations());
    ops.extend(crate::routes::models::operations());
    ops.extend(crate::routes::objectives::operations());
    ops.extend(crate::routes::memory::operations());
    ops.extend(crate::routes::tool_sets::operations());
    ops.extend(crate::routes::tools::operations());
    ops.extend(crate::routes::uploads::operations());
    ops.extend(crate::routes::search::operations());
    ops.extend(crate::routes::ops::operations());
    ops
}

/// The error body of every non-2xx response (docs/ERRORS.md).
#[derive(JsonSchema)]
#[schemars(rename = "Status")]
#[allow(dead_code)]
pub struct StatusSchema {
    /// gRPC status code (3 invalid argument, 5 not found, 7 permission denied, 16 unauthenticated…).
    code: i32,
    message: String,
    /// Exactly one entry: the error's `google.rpc.ErrorInfo`.
    details: Vec<ErrorInfoSchema>,
}

/// Why the request failed, in a form to match on.
#[derive(JsonSchema)]
#[schemars(rename = "ErrorInfo")]
#[allow(dead_code)]
pub struct ErrorInfoSchema {
    /// Always `type.googleapis.com/google.rpc.ErrorInfo`.
    #[serde(rename = "@type")]
    type_url: String,
    /// The stable reason (docs/ERRORS.md lists each one).
    #[schemars(schema_with = "reason_schema")]
    reason: String,
    /// Always `cadenza`.
    domain: String,
    /// Context for the reason (`field`, `resource`, `expected`, `permission`, …); may be empty.
    metadata: std::collections::BTreeMap<String, String>,
}

fn reason_schema(_: &mut SchemaGenerator) -> Schema {
    let reasons: Vec<&str> = cadenza_domain::Reason::ALL.iter().map(|r| r.as_str()).collect();
    schemars::json_schema!({"type": "string", "enum": reasons})
}

fn generator(contract: Contract) -> SchemaGenerator {
    let mut settings = SchemaSettings::draft2020_12();
    settings.definitions_path = "/components/schemas".into();
    settings.meta_schema = None;
    settings.contract = contract;
    settings.into_generator()
}

/// The document served at `/openapi.json`.
pub fn document() -> Value {
    let mut responses = generator(Contract::Serialize);
    let mut requests = generator(Contract::Deserialize);
    let error = responses.subschema_for::<StatusSchema>();
    let mut paths: Map<String, Value> = Map::new();
    for op in operations() {
        let mut params: Vec<Value> = op
            .path
            .split('/')
            .filter_map(|seg| seg.strip_prefix('{').and_then(|s| s.split('}').next()))
            .map(|name| {
                json!({"name": name, "in": "path", "required": true, "schema": {"type": "string"},
                       "description": "An id, or `external_id:<value>`."})
            })
            .collect();
        if op.list {
            for (name, ty, desc) in [
                ("cursor", "string", "Opaque cursor from the previous page's `pagination.nextCursor`."),
                ("limit", "integer", "Page size: default 50, maximum 100."),
                ("sortOrder", "string", "`asc` (default) or `desc` by creation time."),
                ("prefix", "string", "Only items whose name (API keys: id) starts with this."),
                ("labels", "string", "`k=v,k2=v2`: every pair must match."),
                ("includeInfo", "boolean", "Populate `info` on each item."),
            ] {
                params.push(json!({"name": name, "in": "query", "required": false, "schema": {"type": ty}, "description": desc}));
            }
        }
        let mut operation = json!({
            "operationId": op.id,
            "tags": [op.tag],
            "summary": op.summary,
            "parameters": params,
            "responses": {
                "200": {"description": "Success", "content": {"application/json": {"schema": (op.response)(&mut responses)}}},
                "default": {"description": "Error", "content": {"application/json": {"schema": error.clone()}}},
            },
        });
        if !op.scope.is_empty() {
            operation["description"] = json!(format!("Requires the `{}` permission.", op.scope));
        }
        if let Some(req) = op.request {
            operation["requestBody"] =
                json!({"required": false, "content": {"application/json": {"schema": req(&mut requests)}}});
        }
        if op.path.starts_with("/v1/") {
            operation["security"] = json!([{"bearer": []}]);
        }
        let item = paths.entry(op.path.to_string()).or_insert_with(|| json!({}));
        item[op.method] = operation;
    }
    let mut schemas = responses.take_definitions(true);
    for (k, v) in requests.take_definitions(true) {
        schemas.entry(k).or_insert(v);
    }
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "Cadenza API",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Self-hosted implementation of the Cadenya agent-platform API.",
        },
        "servers": [{"url": "/"}],
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer", "description": "An API key token (cdz_sk_…)."}},
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The committed `docs/openapi.json` must equal what the code generates, so the document
    /// never drifts by accident. Regenerate with `UPDATE_SNAPSHOTS=1 cargo test -p cadenza-api`.
    #[test]
    fn openapi_snapshot() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/openapi.json");
        let generated = serde_json::to_string_pretty(&document()).unwrap_or_default() + "\n";
        if std::env::var("UPDATE_SNAPSHOTS").is_ok() {
            std::fs::write(&path, &generated).ok();
        }
        let committed = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(committed == generated, "docs/openapi.json is stale: run UPDATE_SNAPSHOTS=1 cargo test -p cadenza-api");
    }

    #[test]
    fn operation_ids_are_unique_and_documents_are_3_1() {
        let ops = operations();
        let mut ids: Vec<&str> = ops.iter().map(|o| o.id).collect();
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(ids.len(), ops.len(), "duplicate operationId");
        let doc = document();
        assert_eq!(doc["openapi"], "3.1.0");
        assert!(doc["components"]["schemas"]["APIKey"].is_object());
        assert!(doc["components"]["schemas"]["Status"].is_object());
        let text = doc.to_string();
        assert!(!text.contains("$defs"), "every schema lives under components");
    }
}
