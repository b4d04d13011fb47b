//! Validation of the tool filters and approval filters a synced tool set carries (§12.2),
//! with the same types the sync applies them with, so what is accepted is what runs.

use cadenza_adapters::filters::{ApprovalRequirementFilter, MAX_REGEX_LEN, ToolFilter};
use cadenza_domain::{Error, Reason};
use serde_json::{Value, json};

use crate::error::ApiResult;

/// Checks one filter (`includeTools`, `excludeTools`) or approval filter (`toolApprovals`).
pub(crate) fn check(field: &str, key: &str, v: &Value) -> ApiResult<()> {
    let bad = |e: serde_json::Error| Error::invalid_field(field, format!("{field} is not a valid filter: {e}"));
    // The adapter layer's error names the field in its text; the reason names it too.
    let refused = |e| Error::from(e).with_reason(Reason::FieldInvalid).with_meta("field", field);
    if key == "toolApprovals" {
        let f: ApprovalRequirementFilter = crate::strict_json::from_value(v).map_err(bad)?;
        f.validate(field).map_err(refused)?;
    } else {
        let f: ToolFilter = crate::strict_json::from_value(v).map_err(bad)?;
        f.validate(field).map_err(refused)?;
    }
    Ok(())
}

/// Where the filter schemas sit among the document's components.
pub(crate) const FILTER: &str = "ToolFilterRequest";
pub(crate) const APPROVAL: &str = "ToolApprovalFilterRequest";

/// Registers both filter schemas among `g`'s components.
pub(crate) fn register(g: &mut schemars::SchemaGenerator) {
    crate::openapi::component(g, FILTER, filter_schema());
    crate::openapi::component(g, APPROVAL, approval_schema());
}

pub(crate) fn filter_ref() -> Value {
    crate::openapi::component_ref(FILTER)
}

pub(crate) fn approval_ref() -> Value {
    crate::openapi::component_ref(APPROVAL)
}

/// A `ToolFilter` exactly as `check` takes it: an operator, and attribute filters each naming
/// an attribute and one string matcher.
fn filter_schema() -> Value {
    json!({
        "type": "object",
        "properties": {
            "operator": {"enum": ["OPERATOR_UNSPECIFIED", "OPERATOR_AND", "OPERATOR_OR"]},
            "filters": {"type": "array", "items": {
                "type": "object",
                "required": ["attribute", "matcher"],
                "properties": {
                    "attribute": {"enum": ["ATTRIBUTE_NAME", "ATTRIBUTE_TITLE", "ATTRIBUTE_DESCRIPTION"]},
                    "matcher": matcher_schema(),
                },
            }},
        },
    })
}

/// A string matcher: exactly one of its kinds set (the others absent or `null`), `type`
/// naming it or left out, `caseSensitive` a boolean.
fn matcher_schema() -> Value {
    const KINDS: [&str; 5] = ["exact", "startsWith", "endsWith", "contains", "regex"];
    let one = KINDS.iter().map(|k| {
        let mut props = serde_json::Map::new();
        for other in KINDS.iter().filter(|o| *o != k) {
            props.insert((*other).into(), json!({"type": "null"}));
        }
        let value = if *k == "regex" { crate::formats::rust_regex(MAX_REGEX_LEN) } else { json!({"type": "string"}) };
        props.insert((*k).into(), value);
        props.insert("type".into(), json!({"enum": [null, "", k]}));
        json!({"required": [k], "properties": props})
    });
    json!({
        "type": "object",
        "properties": {"caseSensitive": {"type": "boolean"}},
        "anyOf": one.collect::<Vec<_>>(),
    })
}

/// An `ApprovalRequirementFilter`: `always` (a boolean) or `only` (a filter), not both; `type`
/// naming the one set, or either when neither is.
fn approval_schema() -> Value {
    let set = |k: &str, schema: Value| json!({"required": [k], "properties": {k: schema}});
    json!({
        "type": "object",
        "properties": {
            "always": {"type": ["boolean", "null"]},
            "only": crate::openapi::or_null(filter_ref()),
            "type": {"enum": [null, "", "always", "only"]},
        },
        "not": {"allOf": [set("always", json!({"type": "boolean"})), set("only", json!({"type": "object"}))]},
        "allOf": [
            {"if": set("always", json!({"type": "boolean"})), "then": {"properties": {"type": {"enum": [null, "", "always"]}}}},
            {"if": set("only", json!({"type": "object"})), "then": {"properties": {"type": {"enum": [null, "", "only"]}}}},
        ],
    })
}
