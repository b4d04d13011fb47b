//! One OpenAPI operation → one tool.
//!
//! The input schema is an object with one property per path, query and header parameter (path
//! parameters always required) and, when the operation takes a request body, a `body` property
//! holding the body schema, required when the body is. `Accept`, `Content-Type` and
//! `Authorization` header parameters are dropped (OpenAPI says they are ignored; the tool set's
//! headers carry credentials), and so are cookie parameters, which tool calls do not send.
//!
//! Names: the `operationId`, else `<method>_<path>` with everything outside `[A-Za-z0-9_]`
//! folded to `_` (e.g. `get_pets_petId`). A name already taken gets `_2`, `_3`….

use std::collections::BTreeSet;

use serde_json::{Map, Value, json};

use super::refs::{SchemaResolver, deref};
use crate::discovered::{DiscoveredTool, HttpBody, HttpCall, HttpParam};
use crate::error::SpecError;

// `query` is the QUERY method of OpenAPI 3.2.
pub const METHODS: &[&str] = &["get", "put", "post", "delete", "options", "head", "patch", "trace", "query"];
const IGNORED_HEADERS: &[&str] = &["accept", "content-type", "authorization"];

/// Every operation of the document, in path order then method order.
pub fn tools(doc: &Value) -> Result<Vec<DiscoveredTool>, SpecError> {
    let mut names = BTreeSet::new();
    let mut out = Vec::new();
    let Some(paths) = doc.get("paths").and_then(Value::as_object) else { return Ok(out) };
    for (path, item) in paths {
        let item = deref(doc, item)?;
        let Some(item) = item.as_object() else {
            return Err(SpecError::invalid(format!("paths[{path:?}] is not an object")));
        };
        for method in METHODS {
            if let Some(op) = item.get(*method) {
                let Some(op) = op.as_object() else {
                    return Err(SpecError::invalid(format!("paths[{path:?}].{method} is not an object")));
                };
                let at = format!("paths[{path:?}].{method}");
                out.push(
                    tool(doc, path, method, item, op, &mut names)
                        .map_err(|e| SpecError::new(e.kind, format!("{at}: {}", e.message)))?,
                );
            }
        }
    }
    Ok(out)
}

struct Param<'d> {
    name: String,
    location: String,
    object: &'d Map<String, Value>,
}

fn parameters<'d>(doc: &'d Value, list: Option<&'d Value>, out: &mut Vec<Param<'d>>) -> Result<(), SpecError> {
    let Some(list) = list else { return Ok(()) };
    let list = list.as_array().ok_or_else(|| SpecError::invalid("parameters is not an array"))?;
    for (i, p) in list.iter().enumerate() {
        let object = deref(doc, p)?
            .as_object()
            .ok_or_else(|| SpecError::invalid(format!("parameters[{i}] is not an object")))?;
        let name = object
            .get("name")
            .and_then(Value::as_str)
            .ok_or_else(|| SpecError::invalid(format!("parameters[{i}] has no name")))?;
        let location = object
            .get("in")
            .and_then(Value::as_str)
            .ok_or_else(|| SpecError::invalid(format!("parameters[{i}] has no `in`")))?;
        if !matches!(location, "path" | "query" | "header" | "cookie" | "querystring") {
            return Err(SpecError::invalid(format!("parameters[{i}] has an unknown location {location:?}")));
        }
        let param = Param { name: name.to_owned(), location: location.to_owned(), object };
        // An operation-level parameter overrides the path-level one with the same name and location.
        match out.iter_mut().find(|q| q.name == param.name && q.location == param.location) {
            Some(slot) => *slot = param,
            None => out.push(param),
        }
    }
    Ok(())
}

fn tool(
    doc: &Value,
    path: &str,
    method: &str,
    item: &Map<String, Value>,
    op: &Map<String, Value>,
    names: &mut BTreeSet<String>,
) -> Result<DiscoveredTool, SpecError> {
    let mut params = Vec::new();
    parameters(doc, item.get("parameters"), &mut params)?;
    parameters(doc, op.get("parameters"), &mut params)?;

    let mut resolver = SchemaResolver::new(doc);
    let mut properties = Map::new();
    let mut required = Vec::new();
    let mut taken: BTreeSet<String> = BTreeSet::new();
    let body = match op.get("requestBody") {
        Some(b) => Some(deref(doc, b)?.as_object().ok_or_else(|| SpecError::invalid("requestBody is not an object"))?),
        None => None,
    };
    if body.is_some() {
        taken.insert("body".into());
    }
    let mut call = HttpCall {
        method: method.to_uppercase(),
        path: path.to_owned(),
        operation_id: op.get("operationId").and_then(Value::as_str).map(str::to_owned),
        path_params: Vec::new(),
        query_params: Vec::new(),
        header_params: Vec::new(),
        body: None,
    };
    for p in params {
        let is_required = p.location == "path" || p.object.get("required").and_then(Value::as_bool).unwrap_or(false);
        let list = match p.location.as_str() {
            "path" => &mut call.path_params,
            "query" | "querystring" => &mut call.query_params,
            "header" if !IGNORED_HEADERS.contains(&p.name.to_ascii_lowercase().as_str()) => &mut call.header_params,
            _ => continue,
        };
        let property = unique(&mut taken, &p.name, &p.location);
        let schema = param_schema(&mut resolver, p.object)?;
        if is_required {
            required.push(Value::String(property.clone()));
        }
        properties.insert(property.clone(), schema);
        list.push(HttpParam {
            name: p.name,
            property,
            required: is_required,
            style: p.object.get("style").and_then(Value::as_str).map(str::to_owned),
            explode: p.object.get("explode").and_then(Value::as_bool),
            content_type: if p.object.contains_key("schema") {
                None
            } else {
                p.object.get("content").and_then(Value::as_object).and_then(|c| c.keys().next()).cloned()
            },
        });
    }
    if let Some(body) = body {
        let content = body.get("content").and_then(Value::as_object);
        let (content_type, media) = content.and_then(pick_media_type).unwrap_or(("application/json", None));
        let mut schema = match media.and_then(|m| m.get("schema")) {
            Some(s) => resolver.resolve(s)?,
            None => json!({}),
        };
        describe(&mut schema, body.get("description"));
        let is_required = body.get("required").and_then(Value::as_bool).unwrap_or(false);
        if is_required {
            required.push(Value::String("body".into()));
        }
        properties.insert("body".into(), schema);
        call.body =
            Some(HttpBody { property: "body".into(), content_type: content_type.to_owned(), required: is_required });
    }

    let mut input = Map::new();
    input.insert("type".into(), Value::String("object".into()));
    input.insert("properties".into(), Value::Object(properties));
    if !required.is_empty() {
        input.insert("required".into(), Value::Array(required));
    }
    let defs = resolver.finish()?;
    if !defs.is_empty() {
        input.insert("$defs".into(), Value::Object(defs));
    }

    let text = |k: &str| op.get(k).and_then(Value::as_str).map(str::trim).filter(|s| !s.is_empty()).map(str::to_owned);
    let summary = text("summary");
    let description =
        text("description").or_else(|| summary.clone()).unwrap_or_else(|| format!("{} {path}", call.method));
    let name = claim_name(names, call.operation_id.as_deref().map(str::trim).filter(|s| !s.is_empty()), method, path);
    Ok(DiscoveredTool::new(name, summary, description, Value::Object(input), Some(call), None))
}

/// The argument name for a parameter: its own name unless taken, then `<in>_<name>`, then numbered.
fn unique(taken: &mut BTreeSet<String>, name: &str, location: &str) -> String {
    let mut candidate = name.to_owned();
    if taken.contains(&candidate) {
        candidate = format!("{location}_{name}");
    }
    let base = candidate.clone();
    let mut n = 2;
    while taken.contains(&candidate) {
        candidate = format!("{base}_{n}");
        n += 1;
    }
    taken.insert(candidate.clone());
    candidate
}

fn param_schema(resolver: &mut SchemaResolver<'_>, p: &Map<String, Value>) -> Result<Value, SpecError> {
    let raw = p.get("schema").or_else(|| {
        p.get("content").and_then(Value::as_object).and_then(|c| c.values().next()).and_then(|m| m.get("schema"))
    });
    let mut schema = match raw {
        Some(s) => resolver.resolve(s)?,
        None => json!({}),
    };
    describe(&mut schema, p.get("description"));
    if p.get("deprecated") == Some(&Value::Bool(true))
        && let Value::Object(m) = &mut schema
    {
        m.insert("deprecated".into(), Value::Bool(true));
    }
    Ok(schema)
}

/// Carries a parameter's or body's description onto its schema, where the model will read it.
fn describe(schema: &mut Value, description: Option<&Value>) {
    let Some(Value::String(d)) = description else { return };
    if d.trim().is_empty() {
        return;
    }
    if let Value::Bool(true) = schema {
        *schema = json!({});
    }
    if let Value::Object(m) = schema
        && !m.contains_key("description")
    {
        m.insert("description".into(), Value::String(d.clone()));
    }
}

/// JSON first (it maps onto the tool's arguments), then forms, then whatever comes first.
fn pick_media_type(content: &Map<String, Value>) -> Option<(&str, Option<&Map<String, Value>>)> {
    let is_json = |k: &str| {
        let k = k.to_ascii_lowercase();
        let essence = k.split(';').next().unwrap_or("").trim().to_owned();
        essence == "application/json" || essence.ends_with("+json")
    };
    let rank = |k: &str| {
        let lower = k.to_ascii_lowercase();
        if lower.starts_with("application/json") {
            0
        } else if is_json(k) {
            1
        } else if lower.starts_with("application/x-www-form-urlencoded") {
            2
        } else if lower.starts_with("multipart/form-data") {
            3
        } else {
            4
        }
    };
    content.iter().min_by_key(|(k, _)| rank(k)).map(|(k, v)| (k.as_str(), v.as_object()))
}

fn claim_name(names: &mut BTreeSet<String>, operation_id: Option<&str>, method: &str, path: &str) -> String {
    let base = match operation_id {
        Some(id) => id.to_owned(),
        None => {
            let raw = format!("{method}_{path}");
            let mut out = String::new();
            for c in raw.chars() {
                let c = if c.is_ascii_alphanumeric() { c } else { '_' };
                if !(c == '_' && out.ends_with('_')) {
                    out.push(c);
                }
            }
            out.trim_end_matches('_').to_owned()
        }
    };
    let mut name = base.clone();
    let mut n = 2;
    while names.contains(&name) {
        name = format!("{base}_{n}");
        n += 1;
    }
    names.insert(name.clone());
    name
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fallback_names_are_sanitised_and_unique() {
        let mut names = BTreeSet::new();
        assert_eq!(claim_name(&mut names, None, "get", "/pets/{petId}/"), "get_pets_petId");
        assert_eq!(claim_name(&mut names, Some("get_pets_petId"), "get", "/x"), "get_pets_petId_2");
    }

    #[test]
    fn media_type_preference() {
        let c = json!({"text/plain": {}, "application/x-www-form-urlencoded": {}, "application/vnd.api+json": {}});
        let picked = c.as_object().and_then(pick_media_type).map(|(k, _)| k.to_owned());
        assert_eq!(picked.as_deref(), Some("application/vnd.api+json"));
    }
}
