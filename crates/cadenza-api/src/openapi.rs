//! The OpenAPI 3.1 document, built from the same modules that register the routes: each area's
//! `operations()` sits next to its `routes()`, and the schemas are derived from the very types
//! the handlers serialise and parse (schemars, JSON Schema 2020-12, which OpenAPI 3.1 uses
//! as is). The same list authorizes every request (`gate.rs`): an operation's access is what the
//! document says it needs. A test checks every documented operation is routed; a snapshot test
//! keeps the document from drifting by accident.

use cadenza_domain::ids::{IdKind, IdRef};
use cadenza_domain::scopes::{self, Verb};
use cadenza_domain::{labels, page};
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
    /// Who may call it: the gate (`gate.rs`) enforces exactly this, before any handler runs.
    pub access: Access,
    pub request: Option<SchemaFn>,
    pub response: SchemaFn,
    /// Takes the list query parameters.
    pub list: bool,
    /// Its own query parameters, besides the list ones.
    pub query: &'static [QueryParam],
    /// The media types of a success that is not JSON (bytes served as stored).
    pub served_as: &'static [&'static str],
    /// Known to the API but not served yet: left out of the document, answered 501 by the gate.
    pub unimplemented: bool,
}

/// Who may call an operation. Unless an operation says otherwise, only the account's global key
/// may: an operation documented without its access is closed, never open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// No API key: health and readiness, and the routes whose signed path token is the credential.
    Public,
    /// Any valid API key.
    AnyKey,
    /// A key holding this permission.
    Permission(&'static str, Verb),
    /// The account's global key (it always holds every permission).
    System,
}

impl Access {
    /// What the document says of it.
    fn description(self) -> Option<String> {
        match self {
            Access::Public => None,
            Access::AnyKey => Some("Any valid API key.".to_string()),
            Access::Permission(resource, verb) => {
                Some(format!("Requires the `{}` permission.", scopes::permission(resource, verb)))
            }
            Access::System => Some("Requires the account's global API key.".to_string()),
        }
    }
}

/// A query parameter an operation reads, with the schema of exactly what it accepts.
pub struct QueryParam {
    pub name: &'static str,
    pub required: bool,
    pub schema: fn() -> Value,
    pub description: &'static str,
}

impl Op {
    pub const fn new(
        method: &'static str,
        path: &'static str,
        id: &'static str,
        tag: &'static str,
        response: SchemaFn,
    ) -> Self {
        Self {
            method,
            path,
            id,
            tag,
            summary: "",
            access: Access::System,
            request: None,
            response,
            list: false,
            query: &[],
            served_as: &[],
            unimplemented: false,
        }
    }
    pub const fn summary(mut self, s: &'static str) -> Self {
        self.summary = s;
        self
    }
    /// Needs a key with `resource:read` (or `resource:manage`, which implies it).
    pub const fn read(mut self, resource: &'static str) -> Self {
        self.access = Access::Permission(resource, Verb::Read);
        self
    }
    /// Needs a key with `resource:manage`.
    pub const fn manage(mut self, resource: &'static str) -> Self {
        self.access = Access::Permission(resource, Verb::Manage);
        self
    }
    /// Any valid key.
    pub const fn any_key(mut self) -> Self {
        self.access = Access::AnyKey;
        self
    }
    /// No key at all (the path's signed token, where there is one, is the credential).
    pub const fn public(mut self) -> Self {
        self.access = Access::Public;
        self
    }
    pub const fn body(mut self, f: SchemaFn) -> Self {
        self.request = Some(f);
        self
    }
    pub const fn query(mut self, q: &'static [QueryParam]) -> Self {
        self.query = q;
        self
    }
    pub const fn list(mut self) -> Self {
        self.list = true;
        self
    }
    pub const fn served_as(mut self, types: &'static [&'static str]) -> Self {
        self.served_as = types;
        self
    }
    pub const fn unimplemented(mut self) -> Self {
        self.unimplemented = true;
        self
    }
}

/// Every documented operation, in a stable order.
pub fn operations() -> Vec<Op> {
    all_operations().into_iter().filter(|op| !op.unimplemented).collect()
}

/// Every operation the API knows, the ones not served yet too: what the gate routes by.
pub fn all_operations() -> Vec<Op> {
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
    ops.extend(crate::media::operations());
    ops.extend(crate::routes::memory::operations());
    ops.extend(crate::routes::tool_sets::operations());
    ops.extend(crate::routes::tools::operations());
    ops.extend(crate::routes::uploads::operations());
    ops.extend(crate::routes::search::operations());
    ops.extend(crate::routes::ops::operations());
    ops
}

/// The body of a create whose type `T` it shares with the update: the create also requires
/// `metadata.name` (`MetadataIn::into_new`).
pub fn create_body<T: JsonSchema>(g: &mut SchemaGenerator) -> Schema {
    let write = g.subschema_for::<T>();
    schemars::json_schema!({
        "allOf": [write],
        "required": ["metadata"],
        "properties": {"metadata": {"type": "object", "required": ["name"], "properties": {"name": crate::wire::name_schema()}}},
    })
}

/// A request schema written out by hand, under `name` in the components: for bodies whose
/// rules (exactly one of, required together, per-operation variants) a derive cannot state.
pub fn component(g: &mut SchemaGenerator, name: &str, schema: Value) -> Schema {
    g.definitions_mut().insert(name.to_string(), schema);
    Schema::try_from(component_ref(name)).unwrap_or_default()
}

/// A `$ref` to the component `name` (registered with `component` or derived).
pub fn component_ref(name: &str) -> Value {
    json!({"$ref": format!("#/components/schemas/{name}")})
}

/// An anchored pattern (`^…$`, as `IdKind::pattern` gives) without its anchors, to be one
/// alternative of a larger one.
pub fn unanchored(pattern: &str) -> &str {
    pattern.trim_start_matches('^').trim_end_matches('$')
}

/// `schema`, or `null` (which a handler reads as not sent).
pub fn or_null(schema: Value) -> Value {
    json!({"anyOf": [{"type": "null"}, schema]})
}

/// Two spellings of one field, read as the handlers read them: `first` unless it is left out or
/// `null`, then `second` (left out or `null`: not sent); the one read must match `schema`.
pub fn either_spelling(first: &str, second: &str, schema: Value) -> Value {
    json!({"anyOf": [
        {"required": [first], "properties": {first: schema.clone()}},
        {"properties": {first: {"type": "null"}, second: or_null(schema)}},
    ]})
}

/// A field of an update body that `updateMask` governs, as `UpdateMask::covers` decides: with
/// no mask it is applied when sent (`null` reads as not sent), with a mask only when the mask
/// names it or a parent (`metadata`), and then a value left out or `null` applies its zero
/// value (`""`, `{}`, `[]`). Whatever the mask, a value sent is checked as though applied
/// (`wire::apply_checked`).
pub struct MaskedField {
    /// Its camelCase path (`spec.value`).
    pub path: &'static str,
    /// What the body's type takes, whatever the mask (a value of another type is a 400 anyway).
    pub shape: fn() -> Value,
    /// What the handler requires of a value it applies (never `null`).
    pub rule: fn() -> Value,
    /// The zero value breaks `rule` (an empty name, say): a field the mask names must be sent.
    pub required_when_named: bool,
}

/// The spellings `UpdateMask::parse` takes of `path` (camelCase), as a regex: each segment in
/// camelCase or snake_case.
fn mask_spellings(path: &str) -> String {
    path.split('.')
        .map(|seg| {
            let snake = cadenza_domain::mask::camel_to_snake(seg);
            if snake == seg { seg.to_string() } else { format!("(?:{seg}|{snake})") }
        })
        .collect::<Vec<_>>()
        .join("\\.")
}

/// Every path `allowed` lets a mask name: the paths and their parents.
fn mask_paths(allowed: &[&str]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for a in allowed {
        let segs: Vec<&str> = a.split('.').collect();
        for n in 1..=segs.len() {
            let p = segs[..n].join(".");
            if !out.contains(&p) {
                out.push(p);
            }
        }
    }
    out
}

/// `updateMask` exactly as `UpdateMask::parse` takes it with these allowed paths: items
/// separated by commas, each trimmed, blank ones skipped; `null` or blank is no mask.
fn update_mask(allowed: &[&str]) -> Value {
    let items: Vec<String> = mask_paths(allowed).iter().map(|p| mask_spellings(p)).collect();
    let list = value_list(&items.join("|"));
    or_null(list)
}

/// The mask names `path`: one of its items is the path or a parent of it.
fn mask_names(path: &str) -> Value {
    let segs: Vec<&str> = path.split('.').collect();
    let alts: Vec<String> = (1..=segs.len()).map(|n| mask_spellings(&segs[..n].join("."))).collect();
    // Items before it (`[^,]*` takes newlines too), the item, and anything after it.
    let pattern = format!("^(?:[^,]*,)*[{TRIMMED}]*(?:{})[{TRIMMED}]*(?:,[\\s\\S]*)?$", alts.join("|"));
    let named = json!({"type": "string", "pattern": pattern});
    json!({"anyOf": [
        {"required": ["updateMask"], "properties": {"updateMask": named}},
        {"required": ["update_mask"], "properties": {"update_mask": named}},
    ]})
}

/// `schema` at `path` of the body (`metadata.name` → `{properties: {metadata: {properties:
/// {name: …}}}}`), the path's objects required along with it when `required`.
fn at_path(path: &str, schema: Value, required: bool) -> Value {
    let mut out = schema;
    for seg in path.rsplit('.') {
        let mut wrapped = json!({"properties": {seg: out}});
        if required {
            wrapped["required"] = json!([seg]);
        }
        out = wrapped;
    }
    out
}

/// The body of an update under `updateMask` (or `update_mask`, never both), exact: each field's
/// shape, and its rule whenever it is sent and not `null` (the handler checks a value sent
/// whatever the mask, `wire::apply_checked`); a field whose zero value breaks its rule must be
/// sent when the mask names it. `allowed` is what the handler passes `UpdateMask::parse`. Other
/// properties are free (a client may echo read-only ones). One condition per such field, not
/// per field: schemathesis' generator gives up on bodies of 8 or more conditions.
pub fn masked_update(allowed: &[&str], fields: &[MaskedField]) -> Value {
    let mut body = json!({"type": "object", "properties": {}, "allOf": []});
    for f in fields {
        let segs: Vec<&str> = f.path.split('.').collect();
        // Each field's shape and rule in one schema, where the field is; the body's `allOf`
        // holds only the conditions on the mask.
        let mut leaf = (f.shape)();
        leaf["anyOf"] = json!([(f.rule)(), {"type": "null"}]);
        insert_shape(&mut body, &segs, leaf);
    }
    let named: Vec<(&str, Value)> =
        fields.iter().filter(|f| f.required_when_named).map(|f| (f.path, (f.rule)())).collect();
    add_mask(&mut body, allowed, &named);
    body
}

/// An update body from `fields`, a schema of its fields' rules (a derived request type, with
/// what a create adds to a field it checks), each holding whenever the field is sent and not
/// `null`, as the handler checks it whatever the mask (`wire::apply_checked`); made exact for
/// the mask: `updateMask` (or `update_mask`, never both) as `UpdateMask::parse` takes it with
/// `allowed`, and each field of `named` (one whose zero value breaks its rule: a name, say) held
/// to `rule` when sent, and required when the mask names it. `masked_update` writes the same from
/// a list of fields; this one is for bodies whose type already carries them.
pub fn masked_fields(fields: Value, allowed: &[&str], named: &[(&str, Value)]) -> Value {
    let mut all = vec![fields];
    all.extend(named.iter().map(|(path, rule)| at_path(path, or_null(rule.clone()), false)));
    let mut body = json!({"type": "object", "allOf": all});
    add_mask(&mut body, allowed, named);
    body
}

/// What both forms of an update body add to `body` (an object schema with an `allOf`): the mask
/// in either spelling, never both, and each of `named` required and held to its rule when the
/// mask names it.
fn add_mask(body: &mut Value, allowed: &[&str], named: &[(&str, Value)]) {
    let mask = update_mask(allowed);
    body["properties"]["updateMask"] = mask.clone();
    body["properties"]["update_mask"] = mask;
    body["not"] = json!({"required": ["updateMask", "update_mask"]});
    if let Some(rules) = body["allOf"].as_array_mut() {
        rules.extend(
            named.iter().map(|(path, rule)| json!({"if": mask_names(path), "then": at_path(path, rule.clone(), true)})),
        );
    }
}

/// Puts `leaf` at `segs` under `node`'s properties, with an object of the body's type on the
/// way (`null` is refused there, left out is `{}`).
pub fn insert_shape(node: &mut Value, segs: &[&str], leaf: Value) {
    let props = &mut node["properties"];
    match segs {
        [] => {}
        [last] => props[*last] = leaf,
        [first, rest @ ..] => {
            if props.get(*first).is_none() {
                props[*first] = json!({"type": "object", "properties": {}});
            }
            insert_shape(&mut props[*first], rest, leaf);
        }
    }
}

/// The metadata fields of an update, `name` held to `name` when applied (every resource's own
/// rule on top of not blank).
pub fn masked_metadata(name: fn() -> Value) -> [MaskedField; 3] {
    [
        MaskedField {
            path: "metadata.name",
            shape: || json!({"type": ["string", "null"]}),
            rule: name,
            required_when_named: true,
        },
        MaskedField {
            path: "metadata.externalId",
            shape: || json!({"type": ["string", "null"]}),
            rule: crate::wire::external_id_schema,
            required_when_named: false,
        },
        MaskedField {
            path: "metadata.labels",
            shape: || json!({"type": ["object", "null"], "additionalProperties": {"type": "string"}}),
            rule: crate::wire::labels_schema,
            required_when_named: false,
        },
    ]
}

/// A string naming a `kind` exactly as `IdRef::parse` reads it: its id or `external_id:<value>`.
pub fn id_ref(kind: IdKind) -> Value {
    json!({"type": "string", "pattern": IdRef::pattern(kind)})
}

/// What a handler reads as "not sent" for an optional string: absent, `null` or `""`.
pub fn nothing() -> Value {
    json!({"enum": [null, ""]})
}

/// An `i32` the handler takes only when it is not negative (`null` reads as not sent).
pub fn non_negative_i32_or_null() -> Value {
    json!({"type": ["integer", "null"], "format": "int32", "minimum": 0, "maximum": i32::MAX})
}

/// Rust's `str::trim` whitespace (Unicode White_Space), as the body of an ECMA-262 class.
pub(crate) const TRIMMED: &str =
    "\\t\\n\\v\\f\\r \\u0085\\u00a0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000";

/// A filter read with `QueryPairs::all`: comma-separated values, each trimmed, blank ones
/// skipped; `value` is the regex of one value (repeating the parameter is the same as joining).
pub fn value_list(value: &str) -> Value {
    let item = format!("[{TRIMMED}]*(?:{value})?[{TRIMMED}]*");
    json!({"type": "string", "pattern": format!("^{item}(?:,{item})*$")})
}

/// A flag read with `QueryPairs::bool`: `true`/`false`, `1`/`0`, or empty for not sent.
pub fn flag() -> Value {
    json!({"anyOf": [{"type": "boolean"}, {"type": "string", "enum": ["1", "0", ""]}]})
}

/// One of `values`, or empty for not sent.
pub fn one_of_or_empty(values: &[&str]) -> Value {
    let mut all: Vec<&str> = values.to_vec();
    all.push("");
    json!({"type": "string", "enum": all})
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

/// Whether the request schema refuses `{}`, what an empty body reads as: then the body is
/// required. Checked with the schema itself (its references resolved against the components), so
/// a rule inside `oneOf` or `allOf` counts too.
fn body_refuses_empty(schema: &Schema, g: &SchemaGenerator) -> bool {
    let root = json!({"allOf": [schema], "components": {"schemas": g.definitions()}});
    cadenza_domain::json_schema::validate("body", &root, &json!({})).is_err()
}

/// The resource a path segment's collection holds, and whether its routes take the
/// `external_id:` form besides the id (as the handler parses it: `IdRef::parse` or
/// `IdKind::parse`).
fn collection_kind(collection: &str) -> Option<(IdKind, bool)> {
    Some(match collection {
        "api_keys" => (IdKind::ApiKey, true),
        "workspaces" => (IdKind::Workspace, true),
        "agents" => (IdKind::Agent, true),
        "schedules" => (IdKind::Schedule, true),
        "variations" => (IdKind::Variation, true),
        "assignments" => (IdKind::Assignment, false),
        "memory_layer_assignments" => (IdKind::LayerAssignment, false),
        "memory_layers" => (IdKind::MemoryLayer, true),
        "entries" => (IdKind::MemoryEntry, true),
        "models" => (IdKind::Model, true),
        "objectives" => (IdKind::Objective, true),
        "tasks" => (IdKind::Task, false),
        "tool_calls" => (IdKind::ToolCall, false),
        "tool_sets" => (IdKind::ToolSet, true),
        "secrets" => (IdKind::ToolSetSecret, true),
        "workspace_secrets" => (IdKind::WorkspaceSecret, true),
        "tools" => (IdKind::Tool, true),
        "uploads" => (IdKind::Upload, true),
        _ => return None,
    })
}

/// The path parameters of `path`, each with the schema of exactly what the route accepts.
fn path_params(path: &str) -> Vec<(String, Value, String)> {
    let segments: Vec<&str> = path.split('/').collect();
    let mut out = Vec::new();
    for (i, seg) in segments.iter().enumerate() {
        let Some(name) = seg.strip_prefix('{').and_then(|s| s.split('}').next()) else { continue };
        let collection = if i > 0 { segments[i - 1] } else { "" };
        let (schema, description) = match (name, collection_kind(collection)) {
            ("token", _) => (
                json!({"type": "string", "minLength": 1}),
                "The signed token of the link (an upload's `uploadUrl`, a media block's `url`).".to_string(),
            ),
            (_, Some((kind, true))) => (
                json!({"type": "string", "pattern": IdRef::pattern(kind)}),
                format!("The {}'s id (`{}_…`), or `external_id:<value>`.", kind.noun(), kind.prefix()),
            ),
            (_, Some((kind, false))) => (
                json!({"type": "string", "pattern": kind.pattern()}),
                format!("The {}'s id (`{}_…`).", kind.noun(), kind.prefix()),
            ),
            (_, None) => (json!({"type": "string"}), String::new()),
        };
        out.push((name.to_string(), schema, description));
    }
    out
}

/// `schema`, or the empty string: a query parameter sent empty (`limit=`) reads as not sent.
pub fn or_empty(schema: Value) -> Value {
    json!({"anyOf": [schema, {"type": "string", "maxLength": 0}]})
}

/// The query parameters every list takes (CONTRACT §1.6), as `QueryPairs::list_params` reads them.
fn list_params() -> Vec<Value> {
    let int64 = or_empty(json!({"type": "integer", "format": "int64", "minimum": i64::MIN, "maximum": i64::MAX}));
    [
        ("cursor", json!({"type": "string", "pattern": page::CURSOR_PATTERN}), "Opaque cursor from the previous page's `pagination.nextCursor`."),
        ("limit", int64, "Page size: default 50 (also for 0 or less), at most 100 (larger asks get 100)."),
        ("sortOrder", json!({"type": "string", "pattern": page::SORT_ORDER_PATTERN}), "`asc` (default) or `desc` (also `ascending`, `descending`; any case) by creation time."),
        ("prefix", json!({"type": "string"}), "Only items whose name (API keys: id) starts with this."),
        ("labels", json!({"type": "string", "pattern": labels::FILTER_PATTERN}), "`k=v,k2=v2`: every pair must match."),
        ("includeInfo", or_empty(json!({"type": "boolean"})), "Populate `info` on each item."),
    ]
    .into_iter()
    .map(|(name, schema, desc)| json!({"name": name, "in": "query", "required": false, "schema": schema, "description": desc}))
    .collect()
}

/// OpenAPI links from each create (`POST` on a collection) to the operations on the item it
/// made (`GET`, `PATCH`, `PUT`, `DELETE` and `:verb`s of `<collection>/{id}`, and the operations
/// of the collections under it, `<collection>/{id}/<child>`): the id comes from the response's
/// `metadata.id`, the parent ids from the create's own path.
fn add_links(paths: &mut Map<String, Value>) {
    let mut links: Vec<(String, String, Value)> = Vec::new();
    for (coll, item) in paths.iter() {
        if item.get("post").is_none() {
            continue;
        }
        let parents: Vec<String> = path_params(coll).into_iter().map(|(n, _, _)| n).collect();
        for (target, target_item) in paths.iter() {
            let Some(rest) = target.strip_prefix(coll.as_str()).and_then(|r| r.strip_prefix("/{")) else { continue };
            let Some((name, tail)) = rest.split_once('}') else { continue };
            // The item itself, its `:verb`s, and the collections right under it (`…/{id}/variations`),
            // so the stateful phase can go on from an agent to its variations and from there on.
            let verb = tail.starts_with(':') && !tail.contains('/');
            let child = tail.strip_prefix('/').is_some_and(|c| !c.is_empty() && !c.contains(['/', '{', ':']));
            if !(tail.is_empty() || verb || child) {
                continue;
            }
            for (method, op) in target_item.as_object().into_iter().flatten() {
                let mut params = Map::new();
                for p in &parents {
                    params.insert(p.clone(), json!(format!("$request.path.{p}")));
                }
                params.insert(name.to_string(), json!("$response.body#/metadata/id"));
                let id = op["operationId"].as_str().unwrap_or_default().to_string();
                let link = json!({"operationId": id, "parameters": params,
                                  "description": format!("`{method}` the item just created")});
                links.push((coll.clone(), id, link));
            }
        }
    }
    // Resources named in a body rather than a path: an objective names its agent.
    for (from, to, field) in BODY_LINKS {
        let Some(coll) = paths.iter().find(|(_, i)| i["post"]["operationId"] == *from).map(|(c, _)| c.clone()) else {
            continue;
        };
        let params: Map<String, Value> =
            path_params(&coll).into_iter().map(|(n, _, _)| (n.clone(), json!(format!("$request.path.{n}")))).collect();
        let link = json!({"operationId": to, "parameters": params, "requestBody": {*field: "$response.body#/metadata/id"},
                          "description": format!("`{field}` of the body: the item just created")});
        links.push((coll, (*to).to_string(), link));
    }
    for (coll, id, link) in links {
        if let Some(resp) =
            paths.get_mut(&coll).and_then(|i| i.get_mut("post")).and_then(|o| o["responses"].get_mut("200"))
        {
            resp["links"][id] = link;
        }
    }
}

/// Links from a create to an operation whose body names what it made: (from, to, body field).
/// The rest of the body is the generator's (schemathesis merges the two).
const BODY_LINKS: &[(&str, &str, &str)] = &[("create_agent", "create_objective", "agentId")];

/// `true` (any value) as a property schema becomes `{}`: the same meaning, and the form every
/// OpenAPI tool reads.
fn open_true_schemas(v: &mut Value) {
    match v {
        Value::Object(map) => {
            for (k, child) in map.iter_mut() {
                if k == "properties"
                    && let Value::Object(props) = child
                {
                    for p in props.values_mut() {
                        if *p == Value::Bool(true) {
                            *p = json!({});
                        }
                    }
                }
                open_true_schemas(child);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(open_true_schemas),
        _ => {}
    }
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
        let mut params: Vec<Value> = path_params(op.path)
            .into_iter()
            .map(|(name, schema, description)| {
                json!({"name": name, "in": "path", "required": true, "schema": schema, "description": description})
            })
            .collect();
        if op.list {
            params.extend(list_params());
        }
        for q in op.query {
            params.push(json!({"name": q.name, "in": "query", "required": q.required, "schema": (q.schema)(),
                               "description": q.description}));
        }
        let mut results = json!({
            "200": {"description": "Success", "content": {"application/json": {"schema": (op.response)(&mut responses)}}},
            "default": {"description": "Error", "content": {"application/json": {"schema": error.clone()}}},
        });
        for (status, name) in error_statuses(&op, !params.is_empty()) {
            results[status] = json!({"$ref": format!("#/components/responses/{name}")});
        }
        let mut operation = json!({
            "operationId": op.id,
            "tags": [op.tag],
            "summary": op.summary,
            "parameters": params,
            "responses": results,
        });
        if !op.served_as.is_empty() {
            let schema = (op.response)(&mut responses);
            let content: Map<String, Value> =
                op.served_as.iter().map(|t| (t.to_string(), json!({"schema": schema.clone()}))).collect();
            operation["responses"]["200"]["content"] = Value::Object(content);
        }
        if let Some(d) = op.access.description() {
            operation["description"] = json!(d);
        }
        if let Some(req) = op.request {
            let schema = req(&mut requests);
            // An empty body reads as `{}` (`JsonBody`), so it may be left out unless `{}` is refused.
            let required = body_refuses_empty(&schema, &requests);
            operation["requestBody"] =
                json!({"required": required, "content": {"application/json": {"schema": schema}}});
        }
        if op.access != Access::Public {
            operation["security"] = json!([{"bearer": []}]);
        }
        let item = paths.entry(op.path.to_string()).or_insert_with(|| json!({}));
        item[op.method] = operation;
    }
    add_links(&mut paths);
    let mut schemas = responses.take_definitions(true);
    for (k, v) in requests.take_definitions(true) {
        schemas.entry(k).or_insert(v);
    }
    let mut doc = json!({
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
            "responses": error_responses(&error.to_value()),
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer", "description": "An API key token (cdz_sk_…)."}},
        },
    });
    open_true_schemas(&mut doc);
    doc
}

/// The error answers an operation can give besides `default`, by what it takes (docs/ERRORS.md
/// maps each reason's code to its status): a 400 for what it reads (parameters, a body) and for a
/// write refused for the state of what it acts on, 401 and
/// 403 for its access (and 403 for a workspace that is archived or not the key's, or a signed
/// link that is not valid), 404 for what
/// its path names, 409 for a write that may meet a unique value or a concurrent change, 413 for
/// a body over the limit, 503 for the database or storage being away (or, on `/readyz`, the
/// migrations not applied). The statuses only; the reasons are in `details`.
fn error_statuses(op: &Op, has_params: bool) -> Vec<(&'static str, &'static str)> {
    let mut out = Vec::new();
    // A write may also be refused for the state of what it acts on (FAILED_PRECONDITION).
    if has_params || op.request.is_some() || op.method != "get" {
        out.push(("400", "BadRequest"));
    }
    if op.access != Access::Public {
        out.push(("401", "Unauthenticated"));
    }
    let in_workspace = op.path.starts_with("/v1/workspaces/{workspace_id}");
    // The signed links (`/v1/media/{token}`, `/v1/uploads/{token}`): the token is the credential.
    let signed = op.path.contains("{token}");
    if matches!(op.access, Access::Permission(..) | Access::System) || in_workspace || signed {
        out.push(("403", "PermissionDenied"));
    }
    if op.path.contains('{') || op.request.is_some() {
        out.push(("404", "NotFound"));
    }
    let sends_body = (op.request.is_some() || signed) && op.method != "get";
    if sends_body {
        out.push(("409", "Conflict"));
        out.push(("413", "PayloadTooLarge"));
    }
    // Everything but the process's own liveness reads the database or storage.
    if op.id != "healthz" {
        out.push(("503", "Unavailable"));
    }
    out
}

/// `components.responses`: each error status once, all of them the error shape.
fn error_responses(error: &Value) -> Value {
    let answer =
        |description: &str| json!({"description": description, "content": {"application/json": {"schema": error}}});
    json!({
        "BadRequest": answer("The request is invalid (`INVALID_ARGUMENT`, `OUT_OF_RANGE`), or what it names is not in a state that allows it (`FAILED_PRECONDITION`); `details` names the reason and field."),
        "Unauthenticated": answer("No valid API key (`UNAUTHENTICATED`)."),
        "PermissionDenied": answer("The key may not do this, or the workspace is archived or not the key's (`PERMISSION_DENIED`)."),
        "NotFound": answer("What the path or body names does not exist or is not visible to the key (`NOT_FOUND`; `details` names the resource)."),
        "Conflict": answer("A unique value is taken (`ALREADY_EXISTS`) or a concurrent change won (`ABORTED`); not to be retried as is (`x-should-retry: false`)."),
        "PayloadTooLarge": answer("The body is over the server's limit (`BODY_TOO_LARGE`)."),
        "Unavailable": answer("The database or storage is unavailable (`UNAVAILABLE`, `DATABASE_UNAVAILABLE`, `STORAGE_UNAVAILABLE`; on `/readyz` also `MIGRATIONS_PENDING`); retry later (`retry-after`)."),
    })
}

/// Whether `schema` (self-contained) accepts `value`: for tests that hold a documented schema
/// against the parser it describes.
#[cfg(test)]
pub(crate) fn accepts(schema: &Value, value: &Value) -> bool {
    cadenza_domain::json_schema::validate("value", schema, value).is_ok()
}

/// The metadata of a stored resource named `name`, for tests that apply an update to one.
#[cfg(test)]
pub(crate) fn stored_meta(kind: IdKind, name: &str) -> cadenza_domain::meta::Meta {
    cadenza_domain::meta::Meta::new(kind, 0, "acc", "prof", name.into(), String::new(), Default::default())
}

/// Holds an update body's schema against its handler (`takes`: the body parses and applies),
/// for each of `bodies` under every way a mask can govern it: none (absent, `null`, blank),
/// each path `allowed` names and each parent of one, in camelCase and snake_case, two at once,
/// one naming nothing, and masks the handler refuses; each under both spellings of the key.
#[cfg(test)]
pub(crate) fn assert_masked_agrees(schema: &Value, allowed: &[&str], bodies: &[Value], takes: impl Fn(&Value) -> bool) {
    let mut masks = vec![None, Some(json!(null)), Some(json!("")), Some(json!(" \u{3000}")), Some(json!(","))];
    for p in mask_paths(allowed) {
        let snake: Vec<String> = p.split('.').map(cadenza_domain::mask::camel_to_snake).collect();
        masks.push(Some(json!(p)));
        masks.push(Some(json!(format!(" {} ,", snake.join(".")))));
    }
    masks.push(Some(json!(allowed.join(",\n"))));
    masks.push(Some(json!(format!("{},{}", allowed[0], allowed[allowed.len() - 1]))));
    for bad in ["metadata.external__id", "metadata.name_", "spec.token", "metadata.name.x", "x"] {
        masks.push(Some(json!(bad)));
    }
    masks.push(Some(json!(7)));
    for body in bodies {
        for mask in &masks {
            for key in ["updateMask", "update_mask"] {
                let mut b = body.clone();
                if let Some(m) = mask {
                    b[key] = m.clone();
                }
                assert_eq!(accepts(schema, &b), takes(&b), "{b}");
            }
        }
        let mut both = body.clone();
        both["updateMask"] = json!(allowed[0]);
        both["update_mask"] = json!(allowed[0]);
        assert!(!accepts(schema, &both) && !takes(&both), "{both}");
    }
}

/// The request schema `f` builds, self-contained (the schemas it refers to under `$defs`, where
/// derived ones point, and under `components`, where hand-written ones do): for tests that hold
/// a body schema against its handler.
#[cfg(test)]
pub(crate) fn request_schema(f: SchemaFn) -> Value {
    let mut g = SchemaSettings::draft2020_12().into_generator();
    let body = f(&mut g);
    json!({"allOf": [body], "$defs": g.definitions(), "components": {"schemas": g.definitions()}})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn value_list_reads_like_query_pairs_all() {
        let list = value_list("A|B_C");
        for (raw, ok) in [
            ("", true),
            ("A", true),
            ("A,B_C", true),
            (" A , ,B_C ", true),
            ("\u{3000}A", true),
            ("A,", true),
            ("AB", false),
            ("A;B_C", false),
            ("a", false),
            ("A B_C", false),
        ] {
            assert_eq!(accepts(&list, &json!(raw)), ok, "{raw:?}");
        }
        let f = flag();
        for (raw, ok) in [(json!(true), true), (json!("1"), true), (json!(""), true), (json!("yes"), false)] {
            assert_eq!(accepts(&f, &raw), ok, "{raw}");
        }
    }

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
        for (path, item) in doc["paths"].as_object().into_iter().flatten() {
            for (_, op) in item.as_object().into_iter().flatten() {
                for p in op["parameters"].as_array().into_iter().flatten() {
                    let known = p["schema"].get("pattern").is_some() || p["name"] == "token" || p["in"] == "query";
                    assert!(known, "{path}: parameter {} has no exact schema", p["name"]);
                }
            }
        }
        // A body is required exactly when its schema refuses `{}` (what an empty body reads as),
        // also by a rule inside `oneOf`.
        let put_status = &doc["paths"]["/v1/workspaces/{workspace_id}/models/{id}/status"]["put"];
        assert_eq!(put_status["requestBody"]["required"], true);
        let variation = "/v1/workspaces/{workspace_id}/agents/{agent_id}/variations/{variation_id}";
        assert_eq!(doc["paths"][format!("{variation}:removeAssignment")]["post"]["requestBody"]["required"], true);
        let cancel = &doc["paths"]["/v1/workspaces/{workspace_id}/objectives/{objective_id}:cancel"]["post"];
        assert_eq!(cancel["requestBody"]["required"], false);
        // A create needs `metadata.name`; an update reads `{}` as "change nothing".
        assert_eq!(doc["paths"]["/v1/workspaces/{workspace_id}/agents"]["post"]["requestBody"]["required"], true);
        let agent = &doc["paths"]["/v1/workspaces/{workspace_id}/agents/{agent_id}"]["patch"];
        assert_eq!(agent["requestBody"]["required"], false);
        // A create links to its item, the item's verbs and the collections under it, never further.
        let links = &doc["paths"]["/v1/workspaces/{workspace_id}/agents"]["post"]["responses"]["200"]["links"];
        for id in ["get_agent", "publish_agent", "create_variation", "list_variations"] {
            assert!(links[id].is_object(), "create_agent links to {id}");
        }
        assert_eq!(links["create_variation"]["parameters"]["agent_id"], "$response.body#/metadata/id");
        assert!(links["get_variation"].is_null() && links["add_assignment"].is_null());
        let text = doc.to_string();
        assert!(!text.contains("$defs"), "every schema lives under components");
    }
}
