//! Every JSON answer a test gets from a documented operation is held to the schema the OpenAPI document gives its
//! operation (the 200 response, or `default` for an error, whose status the operation must list
//! when it is a client error or a 503), made strict: an object may hold only
//! the properties its schema names. So a field a handler sends that the document leaves out, a
//! documented required field missing, or a value of another type fails the test that saw it,
//! whichever story it was telling. The document's own schemas stay open, as JSON Schema's
//! default is (a client generated from them must ignore what it does not know); strictness is
//! what the tests ask of the server.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use reqwest::Method;
use serde_json::{Map, Value, json};

/// Panics, naming the operation and the first mismatch, when `body` is not what the document
/// says `method path` answers with `status`. Answers that are not JSON, and paths the document
/// does not name (under `/v1/` the gate refuses those), are not checked here.
#[track_caller]
pub fn check(method: &Method, path: &str, status: u16, content_type: &str, body: &Value) {
    if let Some(mismatch) = mismatch(method, path, status, content_type, body) {
        panic!("{mismatch}; body: {body}");
    }
}

/// What [`check`] finds wrong, if anything.
pub fn mismatch(method: &Method, path: &str, status: u16, content_type: &str, body: &Value) -> Option<String> {
    let path = path.split('?').next().unwrap_or_default();
    if !content_type.starts_with("application/json") {
        return None;
    }
    let id = cadenza_api::gate::operation_id(method, path)?;
    let success = (200..300).contains(&status);
    // The client errors and the retryable 503 an operation may give are listed by status
    // (`openapi::error_statuses`); others (a 500, say) only fall under `default`.
    let listed = [400, 401, 403, 404, 409, 413, 503];
    if listed.contains(&status)
        && let Some(op) = document().1.get(id)
        && op["responses"].get(status.to_string()).is_none()
    {
        return Some(format!("{method} {path} ({id}) answered {status}, a status its document does not list"));
    }
    let validator = validator(id, success);
    let err = validator.iter_errors(body).next()?;
    Some(format!(
        "{method} {path} ({id}) answered {status} with a body its document does not allow: {err} at {} (schema {})",
        err.instance_path(),
        err.schema_path(),
    ))
}

type Validators = Mutex<HashMap<(&'static str, bool), Arc<jsonschema::Validator>>>;

/// The strict validator of `id`'s success (or error) answer, built once per test binary.
fn validator(id: &'static str, success: bool) -> Arc<jsonschema::Validator> {
    static CACHE: OnceLock<Validators> = OnceLock::new();
    let cache = CACHE.get_or_init(Validators::default);
    if let Some(v) = cache.lock().unwrap_or_else(|e| e.into_inner()).get(&(id, success)) {
        return v.clone();
    }
    let (doc, ops) = document();
    // An operation known but not served yet (`Op::unimplemented`) is out of the document; the
    // gate answers it with the error every operation documents.
    let error = json!({"$ref": "#/components/schemas/Status"});
    let schema = match ops.get(id) {
        Some(op) if success => op["responses"]["200"]["content"]["application/json"]
            .get("schema")
            .unwrap_or_else(|| panic!("{id}: the document has no JSON 200 response")),
        Some(op) => &op["responses"]["default"]["content"]["application/json"]["schema"],
        None if success => panic!("{id} answered a success but is not in the document"),
        None => &error,
    };
    if std::env::var_os("CADENZA_DOCUMENTED_TRACE").is_some() {
        eprintln!("documented: checking {id} {success}");
    }
    let root = json!({"allOf": [schema], "components": doc["components"]});
    let built = jsonschema::options()
        .should_validate_formats(true)
        .build(&root)
        .unwrap_or_else(|e| panic!("{id}: the documented response schema does not compile: {e}"));
    let built = Arc::new(built);
    cache.lock().unwrap_or_else(|e| e.into_inner()).insert((id, success), built.clone());
    built
}

/// The document with every object schema closed, and its operations by `operationId`.
fn document() -> &'static (Value, HashMap<String, Value>) {
    static DOC: OnceLock<(Value, HashMap<String, Value>)> = OnceLock::new();
    DOC.get_or_init(|| {
        let mut doc = cadenza_api::openapi::document();
        close_objects(&mut doc["components"]);
        let mut ops = HashMap::new();
        for item in doc["paths"].as_object().into_iter().flat_map(Map::values) {
            for op in item.as_object().into_iter().flat_map(Map::values) {
                let mut op = op.clone();
                close_objects(&mut op["responses"]);
                if let Some(id) = op["operationId"].as_str() {
                    ops.insert(id.to_string(), op);
                }
            }
        }
        (doc, ops)
    })
}

/// Every schema that names its `properties` and says nothing of the others allows no others.
fn close_objects(v: &mut Value) {
    match v {
        Value::Object(map) => {
            let names_properties = map.get("properties").is_some_and(Value::is_object);
            if names_properties && !map.contains_key("additionalProperties") {
                map.insert("additionalProperties".into(), Value::Bool(false));
            }
            map.values_mut().for_each(close_objects);
        }
        Value::Array(items) => items.iter_mut().for_each(close_objects),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const JSON: &str = "application/json";

    #[test]
    fn answers_are_held_to_their_operation_schema_closed() {
        let get = Method::GET;
        let error = json!({"code": 5, "message": "no such agent", "details": [{
            "@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "NOT_FOUND",
            "domain": "cadenza", "metadata": {"resource": "agent"}}]});
        let path = "/v1/workspaces/ws_01JZ0000000000000000000000/agents/agt_01JZ0000000000000000000000";
        assert_eq!(mismatch(&get, path, 404, JSON, &error), None);
        // A field the document does not name, one it requires left out, a value of another type.
        let mut extra = error.clone();
        extra["details"][0]["hint"] = json!("x");
        assert!(mismatch(&get, path, 404, JSON, &extra).is_some_and(|m| m.contains("get_agent")));
        let mut missing = error.clone();
        missing.as_object_mut().map(|o| o.remove("details"));
        assert!(mismatch(&get, path, 404, JSON, &missing).is_some());
        let mut typed = error.clone();
        typed["code"] = json!("5");
        assert!(mismatch(&get, path, 404, JSON, &typed).is_some());
        // A success is held to the 200 schema, not the error's.
        assert!(mismatch(&get, path, 200, JSON, &error).is_some());
        // Not JSON, or not a documented route: nothing to hold it to.
        assert_eq!(mismatch(&get, path, 200, "text/plain", &error), None);
        assert_eq!(mismatch(&get, "/metrics", 200, JSON, &json!(1)), None);
        assert_eq!(mismatch(&get, "/v1/nothing", 404, JSON, &json!(1)), None);
    }
}
