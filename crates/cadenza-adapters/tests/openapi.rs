//! OpenAPI documents → tools.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use cadenza_adapters::openapi::{OpenApiOptions, tools_from_openapi, tools_from_openapi_value};
use cadenza_adapters::{DiscoveredTool, SpecErrorKind};
use serde_json::{Value, json};

fn pet_store_30() -> Value {
    json!({
        "openapi": "3.0.3",
        "info": {"title": "Pets", "version": "1"},
        "servers": [
            {"url": "https://api.example.com/v1", "description": "Production"},
            {"url": "https://{env}.example.com/v1", "description": "Staging", "variables": {"env": {"default": "staging"}}}
        ],
        "paths": {
            "/pets": {
                "get": {
                    "operationId": "listPets",
                    "summary": "List pets",
                    "parameters": [
                        {"name": "limit", "in": "query", "description": "How many", "schema": {"type": "integer", "minimum": 0, "exclusiveMinimum": true, "nullable": true}},
                        {"name": "X-Request-Id", "in": "header", "required": true, "schema": {"type": "string"}},
                        {"name": "Accept", "in": "header", "schema": {"type": "string"}},
                        {"name": "session", "in": "cookie", "schema": {"type": "string"}}
                    ],
                    "responses": {"200": {"description": "ok", "content": {"application/json": {"schema": {"type": "array", "items": {"$ref": "#/components/schemas/Pet"}}}}}}
                },
                "post": {
                    "operationId": "createPet",
                    "description": "Adds a pet to the store.",
                    "requestBody": {"required": true, "description": "The pet", "content": {
                        "application/xml": {"schema": {"type": "string"}},
                        "application/json": {"schema": {"$ref": "#/components/schemas/NewPet"}}
                    }},
                    "responses": {"201": {"description": "created"}}
                }
            },
            "/pets/{petId}": {
                "parameters": [{"$ref": "#/components/parameters/PetId"}],
                "get": {"operationId": "showPetById", "responses": {"200": {"description": "ok"}}},
                "delete": {"responses": {"204": {"description": "gone"}}},
                "put": {
                    "operationId": "updatePet",
                    "parameters": [{"name": "petId", "in": "path", "required": true, "description": "Overridden", "schema": {"type": "integer"}}],
                    "requestBody": {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/Pet"}}}},
                    "responses": {"200": {"description": "ok"}}
                }
            },
            "/categories": {
                "post": {
                    "operationId": "createCategory",
                    "requestBody": {"required": true, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Category"}}}},
                    "responses": {"200": {"description": "ok"}}
                }
            }
        },
        "components": {
            "parameters": {"PetId": {"name": "petId", "in": "path", "required": true, "schema": {"type": "string"}}},
            "schemas": {
                "NewPet": {
                    "type": "object", "required": ["name"],
                    "properties": {"name": {"type": "string"}, "tag": {"type": "string", "nullable": true, "example": "cat"}},
                    "xml": {"name": "pet"}
                },
                "Pet": {"allOf": [{"$ref": "#/components/schemas/NewPet"}, {"type": "object", "properties": {"id": {"type": "integer", "format": "int64"}}}]},
                "Category": {
                    "type": "object",
                    "properties": {
                        "name": {"type": "string"},
                        "parent": {"$ref": "#/components/schemas/Category"},
                        "children": {"type": "array", "items": {"$ref": "#/components/schemas/Category"}}
                    }
                }
            }
        }
    })
}

fn by_name<'a>(tools: &'a [DiscoveredTool], name: &str) -> &'a DiscoveredTool {
    tools.iter().find(|t| t.name == name).unwrap_or_else(|| panic!("no tool {name}"))
}

fn assert_valid_schemas(tools: &[DiscoveredTool]) {
    for t in tools {
        if let Err(e) = cadenza_domain::json_schema::check(&t.name, &t.input_schema) {
            panic!("{}: {e}\n{}", t.name, t.input_schema);
        }
    }
}

#[test]
fn openapi_30_document() -> anyhow::Result<()> {
    let doc = pet_store_30();
    let out = tools_from_openapi(doc.to_string().as_bytes(), &OpenApiOptions::default())?;
    assert_eq!(out.version, "3.0.3");
    assert_eq!(out.base_url.as_deref(), Some("https://api.example.com/v1"));
    assert_eq!(out.document, doc, "the consumed document is kept as given");
    assert_eq!(serde_json::from_str::<Value>(&out.document_json())?, doc);
    assert_eq!(out.normalised["openapi"], "3.1.0");
    let names: Vec<&str> = out.tools.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names, ["createCategory", "listPets", "createPet", "showPetById", "updatePet", "delete_pets_petId"]);
    assert_valid_schemas(&out.tools);

    let list = by_name(&out.tools, "listPets");
    assert_eq!(list.title.as_deref(), Some("List pets"));
    assert_eq!(list.description, "List pets");
    assert_eq!(
        list.input_schema,
        json!({"type": "object",
               "properties": {
                   "limit": {"type": ["integer", "null"], "exclusiveMinimum": 0, "description": "How many"},
                   "X-Request-Id": {"type": "string"}},
               "required": ["X-Request-Id"]})
    );
    let call =
        list.http.as_ref().map(|h| (h.method.as_str(), h.path.as_str(), h.query_params.len(), h.header_params.len()));
    assert_eq!(call, Some(("GET", "/pets", 1, 1)), "Accept and cookie parameters are dropped");

    let create = by_name(&out.tools, "createPet");
    assert_eq!(create.description, "Adds a pet to the store.");
    assert_eq!(create.title, None);
    assert_eq!(
        create.input_schema,
        json!({"type": "object", "required": ["body"], "properties": {"body": {
            "type": "object", "required": ["name"], "description": "The pet",
            "properties": {"name": {"type": "string"}, "tag": {"type": ["string", "null"], "examples": ["cat"]}}}}})
    );
    let body = create.http.as_ref().and_then(|h| h.body.clone());
    assert_eq!(body.map(|b| (b.content_type, b.required)), Some(("application/json".to_owned(), true)));

    // Path-level parameter by $ref; the operation-level one overrides it.
    let show = by_name(&out.tools, "showPetById");
    assert_eq!(show.input_schema["properties"]["petId"], json!({"type": "string"}));
    assert_eq!(show.input_schema["required"], json!(["petId"]));
    assert_eq!(show.description, "GET /pets/{petId}");
    let update = by_name(&out.tools, "updatePet");
    assert_eq!(update.input_schema["properties"]["petId"], json!({"type": "integer", "description": "Overridden"}));
    assert_eq!(update.input_schema["required"], json!(["petId"]), "an optional body is not required");
    assert_eq!(update.input_schema["properties"]["body"]["allOf"][0]["properties"]["name"], json!({"type": "string"}));
    let delete = by_name(&out.tools, "delete_pets_petId");
    assert_eq!(delete.http.as_ref().and_then(|h| h.operation_id.clone()), None);

    // Recursion: inlined once, then `$defs`.
    let cat = &by_name(&out.tools, "createCategory").input_schema;
    assert_eq!(cat["properties"]["body"]["properties"]["parent"], json!({"$ref": "#/$defs/Category"}));
    assert_eq!(cat["properties"]["body"]["properties"]["children"]["items"], json!({"$ref": "#/$defs/Category"}));
    assert_eq!(cat["$defs"]["Category"]["properties"]["parent"], json!({"$ref": "#/$defs/Category"}));
    Ok(())
}

#[test]
fn server_choice() -> anyhow::Result<()> {
    let doc = pet_store_30().to_string();
    let named = OpenApiOptions { server_name: Some("Staging".into()), ..Default::default() };
    assert_eq!(tools_from_openapi(doc.as_bytes(), &named)?.base_url.as_deref(), Some("https://staging.example.com/v1"));
    let explicit = OpenApiOptions {
        base_url: Some("http://127.0.0.1:8080/".into()),
        server_name: Some("Staging".into()),
        ..Default::default()
    };
    assert_eq!(tools_from_openapi(doc.as_bytes(), &explicit)?.base_url.as_deref(), Some("http://127.0.0.1:8080"));
    let unknown = OpenApiOptions { server_name: Some("qa".into()), ..Default::default() };
    let err = tools_from_openapi(doc.as_bytes(), &unknown).err();
    assert_eq!(err.as_ref().map(|e| e.kind()), Some("unknown_server"));
    assert!(err.map(|e| e.message).unwrap_or_default().contains("\"Production\""));
    Ok(())
}

const PETS_31_YAML: &str = r##"
openapi: 3.1.0
info: {title: Things, version: "2"}
servers:
  - url: /api
    name: local
paths:
  /things/{id}:
    patch:
      operationId: patchThing
      summary: Patch a thing
      parameters:
        - {name: id, in: path, required: true, schema: {type: string}}
        - {name: id, in: header, schema: {type: string}}
        - {name: body, in: query, schema: {type: boolean}}
        - name: filter
          in: query
          required: true
          content:
            application/json:
              schema: {type: object, properties: {q: {type: string}}}
      requestBody:
        $ref: '#/components/requestBodies/ThingPatch'
      responses:
        200:
          description: ok
        default:
          description: error
  /upload:
    post:
      requestBody:
        content:
          multipart/form-data:
            schema:
              type: object
              properties:
                file: {type: string, contentMediaType: application/octet-stream}
      responses:
        '204': {description: done}
components:
  requestBodies:
    ThingPatch:
      required: true
      content:
        application/merge-patch+json:
          schema: {$ref: '#/components/schemas/Thing'}
  schemas:
    Thing:
      type: object
      properties:
        name: {type: [string, "null"]}
        size: {type: number, exclusiveMaximum: 10}
        owner: {$ref: '#/components/schemas/Owner', description: The owner}
        x-internal: {type: string}
      x-vendor: true
      discriminator: {propertyName: name}
    Owner:
      type: object
      properties:
        email: {type: string, format: email}
webhooks:
  thingChanged:
    post:
      requestBody:
        content:
          application/json:
            schema: {type: object}
      responses:
        '200': {description: ok}
"##;

#[test]
fn openapi_31_yaml_document() -> anyhow::Result<()> {
    let opts = OpenApiOptions { spec_url: Some("http://127.0.0.1:9/specs/things.yaml".into()), ..Default::default() };
    let out = tools_from_openapi(PETS_31_YAML.as_bytes(), &opts)?;
    assert_eq!(out.version, "3.1.0");
    assert_eq!(
        out.base_url.as_deref(),
        Some("http://127.0.0.1:9/api"),
        "relative server resolved against the spec URL"
    );
    assert_eq!(out.document["paths"]["/things/{id}"]["patch"]["responses"]["200"]["description"], "ok");
    let names: Vec<&str> = out.tools.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names, ["patchThing", "post_upload"], "webhooks are not tools");
    assert_valid_schemas(&out.tools);

    let patch = &out.tools[0];
    let http = patch.http.clone().unwrap_or_else(|| panic!("no http"));
    assert_eq!(http.method, "PATCH");
    let props = |list: &[cadenza_adapters::HttpParam]| -> Vec<(String, String)> {
        list.iter().map(|p| (p.name.clone(), p.property.clone())).collect()
    };
    assert_eq!(props(&http.path_params), [("id".to_owned(), "id".to_owned())]);
    assert_eq!(
        props(&http.header_params),
        [("id".to_owned(), "header_id".to_owned())],
        "clashing names get their location"
    );
    assert_eq!(
        props(&http.query_params),
        [("body".to_owned(), "query_body".to_owned()), ("filter".to_owned(), "filter".to_owned())],
        "`body` is reserved for the request body"
    );
    assert_eq!(http.query_params[1].content_type.as_deref(), Some("application/json"));
    assert_eq!(http.query_params[0].content_type, None);
    assert_eq!(http.body.as_ref().map(|b| b.content_type.as_str()), Some("application/merge-patch+json"));
    let schema = &patch.input_schema;
    assert_eq!(schema["required"], json!(["id", "filter", "body"]));
    assert_eq!(schema["properties"]["filter"], json!({"type": "object", "properties": {"q": {"type": "string"}}}));
    let thing = &schema["properties"]["body"];
    assert_eq!(thing["properties"]["name"], json!({"type": ["string", "null"]}));
    assert_eq!(thing["properties"]["size"], json!({"type": "number", "exclusiveMaximum": 10}));
    assert_eq!(
        thing["properties"]["owner"],
        json!({"type": "object", "description": "The owner", "properties": {"email": {"type": "string", "format": "email"}}}),
        "a $ref with annotation siblings merges into its target"
    );
    assert_eq!(thing["properties"]["x-internal"], json!({"type": "string"}), "property names are not keywords");
    assert!(thing.get("x-vendor").is_none() && thing.get("discriminator").is_none(), "OpenAPI-only keywords dropped");

    let upload = &out.tools[1];
    assert_eq!(
        upload.http.as_ref().and_then(|h| h.body.as_ref()).map(|b| b.content_type.as_str()),
        Some("multipart/form-data")
    );
    assert_eq!(upload.description, "POST /upload");
    Ok(())
}

#[test]
fn signatures_are_stable_and_track_changes() -> anyhow::Result<()> {
    let doc = pet_store_30();
    let a = tools_from_openapi_value(doc.clone(), &OpenApiOptions::default())?;
    let b = tools_from_openapi_value(doc.clone(), &OpenApiOptions::default())?;
    assert_eq!(a.tools, b.tools);
    let mut changed = doc;
    changed["paths"]["/pets"]["get"]["parameters"][0]["description"] = json!("How many, at most");
    let c = tools_from_openapi_value(changed, &OpenApiOptions::default())?;
    for (x, y) in a.tools.iter().zip(&c.tools) {
        assert_eq!(x.signature == y.signature, x.name != "listPets", "{}", x.name);
    }
    Ok(())
}

#[test]
fn versions_and_malformed_documents() {
    let kind = |doc: &[u8]| tools_from_openapi(doc, &OpenApiOptions::default()).err().map(|e| e.kind);
    assert_eq!(kind(br#"{"swagger": "2.0", "info": {}, "paths": {}}"#), Some(SpecErrorKind::UnsupportedVersion));
    assert_eq!(
        kind(br#"{"openapi": "4.0.0", "info": {"title": "x", "version": "1"}}"#),
        Some(SpecErrorKind::UnsupportedVersion)
    );
    assert_eq!(
        kind(br#"{"openapi": "3.10.0", "info": {"title": "x", "version": "1"}}"#),
        Some(SpecErrorKind::UnsupportedVersion)
    );
    assert_eq!(kind(b"{not json"), Some(SpecErrorKind::InvalidSpec));
    assert_eq!(kind(b"- just\n- a list\n"), Some(SpecErrorKind::InvalidSpec));
    assert_eq!(kind(b""), Some(SpecErrorKind::InvalidSpec));
    assert_eq!(kind(&[0xff, 0xfe, 0x00]), Some(SpecErrorKind::InvalidSpec));
    assert_eq!(kind(br#"{"info": {"title": "x", "version": "1"}}"#), Some(SpecErrorKind::InvalidSpec));
    assert_eq!(kind(br#"{"openapi": "3.1.0"}"#), Some(SpecErrorKind::InvalidSpec), "info is required");
    assert_eq!(
        kind(br##"{"openapi": "3.1.0", "info": {"title": "x", "version": "1"}, "paths": {"/a": {"get": {"parameters": [{"$ref": "#/components/parameters/Nope"}]}}}}"##),
        Some(SpecErrorKind::InvalidSpec),
        "a dangling ref"
    );
    assert_eq!(
        kind(br##"{"openapi": "3.1.0", "info": {"title": "x", "version": "1"}, "paths": {"/a": {"get": {"parameters": [{"name": "q", "in": "body"}]}}}}"##),
        Some(SpecErrorKind::InvalidSpec)
    );
    // YAML's unquoted `openapi: 3.1` is a number; it still counts.
    let ok =
        tools_from_openapi(b"openapi: 3.1\ninfo: {title: x, version: '1'}\npaths: {}\n", &OpenApiOptions::default());
    assert_eq!(ok.map(|o| o.tools.len()).ok(), Some(0));
}

/// Counts TCP connections to a loopback port, to prove nothing was fetched.
struct Probe {
    port: u16,
    connections: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl Probe {
    async fn start() -> anyhow::Result<Self> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let port = listener.local_addr()?.port();
        let connections = Arc::new(AtomicUsize::new(0));
        let seen = connections.clone();
        let task = tokio::spawn(async move {
            while listener.accept().await.is_ok() {
                seen.fetch_add(1, Ordering::SeqCst);
            }
        });
        Ok(Self { port, connections, task })
    }
}

#[tokio::test]
async fn remote_refs_are_refused_and_never_fetched() -> anyhow::Result<()> {
    let probe = Probe::start().await?;
    let remote = [
        format!("http://127.0.0.1:{}/schemas/pet.json", probe.port),
        format!("https://127.0.0.1:{}/pet.json#/Pet", probe.port),
        "file:///etc/passwd".to_owned(),
        "pet.yaml#/Pet".to_owned(),
        "./schemas/pet.json".to_owned(),
        "//127.0.0.1/pet.json".to_owned(),
    ];
    for r in &remote {
        for placement in ["used", "unused", "parameter"] {
            let mut doc = json!({
                "openapi": "3.0.3", "info": {"title": "x", "version": "1"},
                "paths": {"/pets": {"post": {"operationId": "create", "requestBody": {"content": {"application/json": {
                    "schema": {"type": "object", "properties": {"pet": {"$ref": "#/components/schemas/Local"}}}}}},
                    "responses": {"200": {"description": "ok"}}}}},
                "components": {"schemas": {"Local": {"type": "object"}}}
            });
            match placement {
                "used" => doc["components"]["schemas"]["Local"] = json!({"$ref": r}),
                "unused" => doc["components"]["schemas"]["Unused"] = json!({"type": "array", "items": {"$ref": r}}),
                _ => doc["paths"]["/pets"]["post"]["parameters"] = json!([{"$ref": r}]),
            }
            let err = tools_from_openapi(doc.to_string().as_bytes(), &OpenApiOptions::default()).err();
            assert_eq!(
                err.as_ref().map(|e| e.kind),
                Some(SpecErrorKind::RemoteRefRefused),
                "{r} ({placement}): {err:?}"
            );
            assert!(err.map(|e| e.message).unwrap_or_default().contains(r.as_str()));
        }
    }
    // Give a stray connection time to land before checking there was none.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(probe.connections.load(Ordering::SeqCst), 0, "a remote $ref was fetched");
    probe.task.abort();
    Ok(())
}

#[test]
fn refs_inside_examples_are_data() -> anyhow::Result<()> {
    let doc = json!({
        "openapi": "3.1.0", "info": {"title": "x", "version": "1"},
        "paths": {"/a": {"post": {"operationId": "a", "requestBody": {"content": {"application/json": {
            "schema": {"type": "object", "examples": [{"$ref": "http://example.invalid/not-a-ref"}]},
            "example": {"$ref": "http://example.invalid/also-data"}}}},
            "responses": {"200": {"description": "ok"}}}}}
    });
    let out = tools_from_openapi_value(doc, &OpenApiOptions::default())?;
    assert_eq!(out.tools.len(), 1);
    Ok(())
}

#[test]
fn deep_and_wide_ref_graphs_stay_bounded() -> anyhow::Result<()> {
    // Each schema refers to the next twice: inlining everything would be 2^30 copies.
    let mut schemas = serde_json::Map::new();
    for i in 0..30 {
        let next = json!({"$ref": format!("#/components/schemas/S{}", i + 1)});
        schemas.insert(format!("S{i}"), json!({"type": "object", "properties": {"left": next, "right": next}}));
    }
    schemas.insert("S30".into(), json!({"type": "string"}));
    let doc = json!({
        "openapi": "3.1.0", "info": {"title": "x", "version": "1"},
        "paths": {"/a": {"post": {"operationId": "a", "requestBody": {"content": {"application/json": {
            "schema": {"$ref": "#/components/schemas/S0"}}}}, "responses": {"200": {"description": "ok"}}}}},
        "components": {"schemas": schemas}
    });
    let started = std::time::Instant::now();
    let out = tools_from_openapi_value(doc, &OpenApiOptions::default())?;
    assert!(started.elapsed() < Duration::from_secs(10));
    let size = out.tools[0].input_schema.to_string().len();
    assert!(size < 5_000_000, "input schema is {size} bytes");
    assert!(out.tools[0].input_schema.get("$defs").is_some());
    assert_valid_schemas(&out.tools);
    Ok(())
}

#[test]
fn yaml_alias_bombs_are_refused() {
    let mut doc = String::from(
        "openapi: 3.1.0\ninfo: {title: x, version: '1'}\nx-a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n",
    );
    for i in 1..12 {
        let p = i - 1;
        doc.push_str(&format!("x-a{i}: &a{i} [*a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}]\n"));
    }
    let started = std::time::Instant::now();
    let err = tools_from_openapi(doc.as_bytes(), &OpenApiOptions::default()).err();
    assert_eq!(err.map(|e| e.kind), Some(SpecErrorKind::InvalidSpec));
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[test]
fn openapi_32_named_server_and_query_method() -> anyhow::Result<()> {
    let doc = br#"{"openapi": "3.2.0", "info": {"title": "x", "version": "1"},
        "servers": [{"url": "https://a.example", "name": "a"}, {"url": "https://b.example", "name": "b"}],
        "paths": {"/search": {"query": {"operationId": "search", "requestBody": {"content": {"application/json": {"schema": {"type": "object"}}}}}}}}"#;
    let out = tools_from_openapi(doc, &OpenApiOptions { server_name: Some("b".into()), ..Default::default() })?;
    assert_eq!(out.base_url.as_deref(), Some("https://b.example"));
    assert_eq!(out.tools.len(), 1);
    assert_eq!(out.tools[0].http.as_ref().map(|h| h.method.as_str()), Some("QUERY"));
    Ok(())
}
