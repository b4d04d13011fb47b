//! OpenAPI 3.0 → 3.1, on the raw document.
//!
//! 3.1 Schema Objects are JSON Schema 2020-12, which is what tools hand to models and what the
//! OpenAPI model (oas3) accepts; 3.0 schemas are an older dialect. The differences that change
//! meaning are rewritten:
//! * `nullable: true` → `"null"` added to `type` (and to `enum`); with no `type` but a `$ref` or a
//!   combinator, the schema becomes `anyOf: [schema, {type: null}]`;
//! * boolean `exclusiveMinimum`/`exclusiveMaximum` → the numeric 2020-12 form;
//! * `example` → `examples: [example]`;
//! * `format: byte` → also `contentEncoding: base64`, `format: binary` → also
//!   `contentMediaType: application/octet-stream`.
//!
//! Only places that hold schemas are touched: an example payload that happens to contain a key
//! called `nullable` is left alone.

use serde_json::{Map, Value, json};

use super::schema_walk::for_each_child_mut;

const METHODS: &[&str] = &["get", "put", "post", "delete", "options", "head", "patch", "trace", "query"];

/// Rewrites a 3.0.x document into its 3.1 form (`openapi` becomes `3.1.0`). Any other input is
/// returned with only its schemas touched, so calling it on a 3.1 document is harmless for
/// documents that do not use 3.0-only forms.
pub fn normalise_30_to_31(mut doc: Value) -> Value {
    let Value::Object(root) = &mut doc else { return doc };
    if root.get("openapi").and_then(Value::as_str).is_some_and(|v| v.starts_with("3.0")) {
        root.insert("openapi".into(), Value::String("3.1.0".into()));
    }
    if let Some(Value::Object(paths)) = root.get_mut("paths") {
        paths.values_mut().for_each(path_item);
    }
    if let Some(Value::Object(hooks)) = root.get_mut("webhooks") {
        hooks.values_mut().for_each(path_item);
    }
    if let Some(Value::Object(components)) = root.get_mut("components") {
        each_member(components, "schemas", schema);
        each_member(components, "parameters", parameter);
        each_member(components, "headers", parameter);
        each_member(components, "requestBodies", request_body);
        each_member(components, "responses", response);
        each_member(components, "callbacks", callback);
        each_member(components, "pathItems", path_item);
    }
    doc
}

fn each_member(obj: &mut Map<String, Value>, key: &str, f: fn(&mut Value)) {
    if let Some(Value::Object(members)) = obj.get_mut(key) {
        members.values_mut().for_each(f);
    }
}

fn path_item(item: &mut Value) {
    let Value::Object(item) = item else { return };
    if let Some(Value::Array(params)) = item.get_mut("parameters") {
        params.iter_mut().for_each(parameter);
    }
    for method in METHODS {
        if let Some(Value::Object(op)) = item.get_mut(*method) {
            operation(op);
        }
    }
    each_member(item, "additionalOperations", |op| {
        if let Value::Object(op) = op {
            operation(op);
        }
    });
}

fn operation(op: &mut Map<String, Value>) {
    if let Some(Value::Array(params)) = op.get_mut("parameters") {
        params.iter_mut().for_each(parameter);
    }
    if let Some(body) = op.get_mut("requestBody") {
        request_body(body);
    }
    each_member(op, "responses", response);
    each_member(op, "callbacks", callback);
}

fn callback(cb: &mut Value) {
    if let Value::Object(cb) = cb {
        cb.values_mut().for_each(path_item);
    }
}

/// Parameter and Header Objects: a `schema` or a `content` map.
fn parameter(p: &mut Value) {
    let Value::Object(p) = p else { return };
    if let Some(s) = p.get_mut("schema") {
        schema(s);
    }
    each_member(p, "content", media_type);
}

fn request_body(b: &mut Value) {
    if let Value::Object(b) = b {
        each_member(b, "content", media_type);
    }
}

fn response(r: &mut Value) {
    let Value::Object(r) = r else { return };
    each_member(r, "content", media_type);
    each_member(r, "headers", parameter);
}

fn media_type(m: &mut Value) {
    let Value::Object(m) = m else { return };
    if let Some(s) = m.get_mut("schema") {
        schema(s);
    }
    each_member(m, "encoding", |enc| {
        if let Value::Object(enc) = enc {
            each_member(enc, "headers", parameter);
        }
    });
}

fn schema(s: &mut Value) {
    let Value::Object(m) = s else { return };
    for_each_child_mut(m, &mut schema);
    for bound in ["Minimum", "Maximum"] {
        let exclusive = format!("exclusive{bound}");
        if let Some(Value::Bool(flag)) = m.get(&exclusive).cloned() {
            m.remove(&exclusive);
            if flag && let Some(limit) = m.remove(&bound.to_lowercase()) {
                m.insert(exclusive, limit);
            }
        }
    }
    if let Some(example) = m.remove("example")
        && !m.contains_key("examples")
    {
        m.insert("examples".into(), Value::Array(vec![example]));
    }
    let format = m.get("format").and_then(Value::as_str).map(str::to_owned);
    match format.as_deref() {
        Some("byte") if !m.contains_key("contentEncoding") => {
            m.insert("contentEncoding".into(), Value::String("base64".into()));
        }
        Some("binary") if !m.contains_key("contentMediaType") => {
            m.insert("contentMediaType".into(), Value::String("application/octet-stream".into()));
        }
        _ => {}
    }
    if m.remove("nullable") == Some(Value::Bool(true)) {
        make_nullable(s);
    }
}

fn make_nullable(s: &mut Value) {
    let Value::Object(m) = s else { return };
    let null = Value::String("null".into());
    match m.get_mut("type") {
        Some(Value::String(t)) => {
            let t = Value::String(std::mem::take(t));
            m.insert("type".into(), Value::Array(vec![t, null]));
        }
        Some(Value::Array(types)) => {
            if !types.contains(&null) {
                types.push(null);
            }
        }
        Some(_) => {}
        None => {
            let composite = ["$ref", "allOf", "anyOf", "oneOf"].iter().any(|k| m.contains_key(*k));
            if composite {
                let inner = std::mem::take(m);
                *s = json!({"anyOf": [Value::Object(inner), {"type": "null"}]});
            }
            return;
        }
    }
    if let Some(Value::Array(values)) = m.get_mut("enum")
        && !values.contains(&Value::Null)
    {
        values.push(Value::Null);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rewrites_30_schema_forms() {
        let doc = json!({
            "openapi": "3.0.3",
            "paths": {"/a": {"get": {"parameters": [{"name": "n", "in": "query",
                "schema": {"type": "integer", "minimum": 1, "exclusiveMinimum": true, "maximum": 9, "exclusiveMaximum": false, "nullable": true}}]}}},
            "components": {"schemas": {
                "S": {"type": "string", "enum": ["a"], "nullable": true, "example": "a"},
                "R": {"allOf": [{"$ref": "#/components/schemas/S"}], "nullable": true},
                "O": {"type": "object", "properties": {"nullable": {"type": "boolean", "nullable": false}}},
                "B": {"type": "string", "format": "byte"}
            }}
        });
        let out = normalise_30_to_31(doc);
        assert_eq!(out["openapi"], "3.1.0");
        assert_eq!(
            out["paths"]["/a"]["get"]["parameters"][0]["schema"],
            json!({"type": ["integer", "null"], "exclusiveMinimum": 1, "maximum": 9})
        );
        let s = &out["components"]["schemas"];
        assert_eq!(s["S"], json!({"type": ["string", "null"], "enum": ["a", null], "examples": ["a"]}));
        assert_eq!(s["R"], json!({"anyOf": [{"allOf": [{"$ref": "#/components/schemas/S"}]}, {"type": "null"}]}));
        assert_eq!(s["O"], json!({"type": "object", "properties": {"nullable": {"type": "boolean"}}}));
        assert_eq!(s["B"]["contentEncoding"], "base64");
    }

    #[test]
    fn leaves_examples_and_non_objects_alone() {
        let doc = json!({"openapi": "3.0.0", "paths": {"/a": {"post": {"requestBody": {"content": {"application/json": {
            "schema": {"type": "object"}, "example": {"nullable": true, "exclusiveMinimum": true}}}}}}}});
        let out = normalise_30_to_31(doc.clone());
        assert_eq!(
            out["paths"]["/a"]["post"]["requestBody"]["content"]["application/json"]["example"],
            doc["paths"]["/a"]["post"]["requestBody"]["content"]["application/json"]["example"]
        );
        assert_eq!(normalise_30_to_31(json!([1, 2])), json!([1, 2]));
    }
}
