//! What the model can call: the objective's tools (snapshotted at creation) and the built-in
//! ones (finish, the task checklist), and how an HTTP tool is called.

use std::collections::BTreeMap;
use std::time::Duration;

use cadenza_domain::objectives::{ObjectiveTool, ResolvedSecret, ResultBlock, ToolKind};
use cadenza_domain::variations::{render_template, secret_refs};
use cadenza_llm::ToolDef;
use futures::StreamExt;
use serde_json::{Value, json};

/// Ends the objective; with an output definition its arguments are the structured output.
pub const FINISH: &str = "cadenza_finish";
pub const CREATE_TASK: &str = "cadenza_create_task";
pub const COMPLETE_TASK: &str = "cadenza_complete_task";

pub fn is_builtin(name: &str) -> bool {
    matches!(name, FINISH | CREATE_TASK | COMPLETE_TASK)
}

/// Everything offered to the model: the objective's tools, then the built-ins.
pub fn definitions(tools: &[ObjectiveTool], output_schema: Option<&Value>) -> Vec<ToolDef> {
    let mut out: Vec<ToolDef> = tools
        .iter()
        .map(|t| ToolDef {
            name: t.exec.llm_name.clone(),
            description: t.exec.description.clone(),
            parameters: object_schema(&t.exec.parameters),
        })
        .collect();
    out.push(ToolDef {
        name: FINISH.into(),
        description: match output_schema {
            Some(_) => "Finish the objective with its final result; the parameters are the result's schema.".into(),
            None => "Finish the objective once it is done.".into(),
        },
        parameters: output_schema.map(object_schema).unwrap_or_else(|| json!({"type": "object", "properties": {}})),
    });
    out.push(ToolDef {
        name: CREATE_TASK.into(),
        description: "Add a task to your checklist for this objective.".into(),
        parameters: json!({"type": "object", "properties": {"task": {"type": "string", "description": "What to do"}}, "required": ["task"]}),
    });
    out.push(ToolDef {
        name: COMPLETE_TASK.into(),
        description: "Mark a task of your checklist done, by its number.".into(),
        parameters: json!({"type": "object", "properties": {"number": {"type": "integer", "minimum": 1}}, "required": ["number"]}),
    });
    out
}

/// Model APIs want an object schema for parameters.
fn object_schema(v: &Value) -> Value {
    match v {
        Value::Object(m) if !m.is_empty() => v.clone(),
        _ => json!({"type": "object", "properties": {}}),
    }
}

/// A secret a call's templates name, with its value (kept in memory for the call only).
pub struct Secret {
    pub name: String,
    pub value: String,
    pub source: cadenza_domain::objectives::SecretSource,
}

/// Every secret name an HTTP tool's templates (its set's headers included) reference.
pub fn referenced_secrets(kind: &ToolKind) -> Vec<String> {
    let ToolKind::Http { set_headers, path, query, headers, body, .. } = kind else { return Vec::new() };
    let mut names: Vec<String> = Vec::new();
    let texts = set_headers.values().chain(headers.values()).chain([path, query, body]);
    for t in texts {
        for n in secret_refs(t) {
            if !names.contains(&n) {
                names.push(n);
            }
        }
    }
    names
}

/// The outcome of one HTTP call: the result blocks, or an error message for the model.
pub type CallResult = Result<Vec<ResultBlock>, String>;

/// Calls an HTTP tool. `idempotency_key` is the tool call's id: the same on every retry.
pub async fn call_http(
    rt: &crate::Runtime,
    kind: &ToolKind,
    arguments: &Value,
    secrets: &[Secret],
    idempotency_key: &str,
) -> CallResult {
    let ToolKind::Http { base_url, set_headers, method, path, query, headers, body } = kind else {
        return Err("this tool has no HTTP configuration".into());
    };
    let mut globals = match arguments {
        Value::Object(m) => Value::Object(m.clone()),
        _ => json!({}),
    };
    let secret_map: serde_json::Map<String, Value> =
        secrets.iter().map(|s| (s.name.clone(), Value::String(s.value.clone()))).collect();
    globals["secrets"] = Value::Object(secret_map);
    let render = |field: &str, t: &str| render_template(field, t, &globals).map_err(|e| e.message);
    let path = render("path", path)?;
    let query = render("query", query)?;
    let url = format!(
        "{}{}{}{}",
        base_url.trim_end_matches('/'),
        if path.starts_with('/') || path.is_empty() { "" } else { "/" },
        path,
        if query.is_empty() { String::new() } else { format!("?{}", query.trim_start_matches('?')) },
    );
    rt.egress.check_url(&url).map_err(|r| format!("the call was refused by the egress policy: {r}"))?;
    let method = reqwest::Method::from_bytes(method.trim_start_matches("HTTP_METHOD_").as_bytes())
        .map_err(|_| format!("unknown HTTP method {method:?}"))?;
    let mut req = rt.http.request(method.clone(), &url).timeout(rt.limits.tool_timeout);
    let mut all_headers: BTreeMap<String, String> = BTreeMap::new();
    for (k, v) in set_headers.iter().chain(headers.iter()) {
        all_headers.insert(k.clone(), render(&format!("headers.{k}"), v)?);
    }
    for (k, v) in &all_headers {
        req = req.header(k.as_str(), v.as_str());
    }
    req = req.header("idempotency-key", idempotency_key);
    let sends_body = matches!(method, reqwest::Method::POST | reqwest::Method::PUT | reqwest::Method::PATCH);
    if sends_body {
        let content = if body.is_empty() { arguments.to_string() } else { render("requestBodyTemplate", body)? };
        if !all_headers.keys().any(|k| k.eq_ignore_ascii_case("content-type")) {
            req = req.header("content-type", "application/json");
        }
        req = req.body(content);
    }
    let resp = req.send().await.map_err(|e| describe(&e, secrets))?;
    let status = resp.status();
    let text = read_capped(resp, rt.limits.tool_response_bytes, rt.limits.tool_timeout).await;
    if status.is_success() {
        Ok(vec![ResultBlock::Text { text }])
    } else {
        Err(format!("the tool's endpoint answered HTTP {}: {}", status.as_u16(), excerpt(&text, 2000)))
    }
}

/// A transport error in words, with no secret value in it.
fn describe(e: &reqwest::Error, secrets: &[Secret]) -> String {
    let kind = if e.is_timeout() {
        "the tool's endpoint did not answer in time"
    } else if e.is_connect() {
        "the tool's endpoint could not be reached"
    } else {
        "the call to the tool's endpoint failed"
    };
    let mut msg = format!("{kind}: {e}");
    for s in secrets {
        if !s.value.is_empty() {
            msg = msg.replace(&s.value, "[secret]");
        }
    }
    msg
}

/// The body as text, at most `cap` bytes (the rest is dropped and said so).
async fn read_capped(resp: reqwest::Response, cap: usize, timeout: Duration) -> String {
    let mut body = Vec::new();
    let mut stream = resp.bytes_stream();
    let mut truncated = false;
    let read = async {
        while let Some(chunk) = stream.next().await {
            let Ok(chunk) = chunk else { break };
            let room = cap.saturating_sub(body.len());
            if chunk.len() > room {
                body.extend_from_slice(&chunk[..room]);
                truncated = true;
                break;
            }
            body.extend_from_slice(&chunk);
        }
    };
    let _ = tokio::time::timeout(timeout, read).await;
    let mut text = String::from_utf8_lossy(&body).into_owned();
    if truncated {
        text.push_str(&format!("\n[response truncated at {cap} bytes]"));
    }
    text
}

fn excerpt(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// What `resolvedSecrets` records of a call: names and sources, never values.
pub fn resolved(secrets: &[Secret]) -> Vec<ResolvedSecret> {
    secrets.iter().map(|s| ResolvedSecret { key: s.name.clone(), source: s.source }).collect()
}
