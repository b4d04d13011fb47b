//! Uploads (CONTRACT §11): create a handle with a signed, expiring, single-use PUT URL served by
//! cadenza itself, read it back, and the PUT that stores the bytes in the object store.
//!
//! The URL's token is `<upload id>.<workspace id>.<expiry ms>.<signature>`, the signature an
//! HMAC of the rest under a key derived from the master key: the token is the credential, any
//! replica can check it, and nothing about it needs a lookup before the signature holds.

use axum::Json;
use axum::Router;
use axum::body::Body;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{HeaderMap, header};
use axum::routing::{get, post, put};
use cadenza_domain::ids::{IdKind, IdRef};
use cadenza_domain::time::format_ms;
use cadenza_domain::uploads::{Upload, UploadStatus, check_content_type, check_size};
use cadenza_domain::{Error, Reason};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use cadenza_services as services;

use crate::AppState;
use crate::auth::WsCaller;
use crate::error::{ApiError, ApiResult};
use crate::extract::JsonBody;
use crate::openapi::{Op, TRIMMED, component, schema};
use crate::signed;
use crate::wire::{Empty, MetadataIn, ResourceMetadata, empty, resource_meta};

const PURPOSE: &str = "upload-url";

#[derive(Debug, Serialize, JsonSchema)]
#[schemars(rename = "Upload")]
pub struct UploadOut {
    metadata: ResourceMetadata,
    spec: UploadSpecOut,
    info: UploadInfoOut,
}

#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(rename = "UploadSpec")]
struct UploadSpecOut {
    filename: String,
    content_type: String,
    /// int64 as a string.
    size_bytes: String,
}

#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(rename = "UploadInfo")]
struct UploadInfoOut {
    /// PUT the bytes here with exactly `spec.contentType` and `spec.sizeBytes`.
    upload_url: String,
    upload_url_expires_at: String,
    /// `UPLOAD_STATUS_PENDING`, `_COMPLETE`, `_CONSUMED` or `_EXPIRED`.
    status: String,
}

fn token(s: &AppState, u: &Upload) -> String {
    signed::seal(&s.store, PURPOSE, [&u.meta.id, &u.workspace_id], u.url_expires_at)
}

impl UploadOut {
    fn new(s: &AppState, u: &Upload) -> Self {
        let base = s.config.uploads.public_url.trim_end_matches('/');
        Self {
            metadata: resource_meta(&u.meta, &u.workspace_id),
            spec: UploadSpecOut {
                filename: u.filename.clone(),
                content_type: u.content_type.clone(),
                size_bytes: u.size_bytes.to_string(),
            },
            info: UploadInfoOut {
                upload_url: format!("{base}/v1/uploads/{}", token(s, u)),
                upload_url_expires_at: format_ms(u.url_expires_at),
                status: format!("UPLOAD_STATUS_{}", u.status.as_str()),
            },
        }
    }
}

#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(rename = "UploadSpecRequest")]
struct SpecIn {
    filename: Option<String>,
    content_type: Option<String>,
    /// int64 as a string (a JSON number is accepted too).
    #[schemars(schema_with = "size_component")]
    size_bytes: Option<Value>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[schemars(rename = "CreateUploadRequest")]
struct CreateIn {
    #[serde(default)]
    metadata: MetadataIn,
    #[serde(default)]
    spec: SpecIn,
}

fn size_of(v: Option<&Value>) -> ApiResult<i64> {
    const FIELD: &str = "spec.sizeBytes";
    let bad = || {
        ApiError::from(Error::invalid_field(FIELD, "spec.sizeBytes must be an integer number of bytes (as a string)"))
    };
    match v {
        Some(Value::String(s)) => s.trim().parse::<i64>().map_err(|_| bad()),
        // As JSON Schema's `integer` reads it: `3.0` and `3e0` are 3 too.
        Some(Value::Number(n)) => crate::wire::whole_i64(n).ok_or_else(bad),
        None | Some(Value::Null) => Err(Error::required(FIELD, "spec.sizeBytes is required").into()),
        Some(_) => Err(bad()),
    }
}

/// `check_content_type`: `type/subtype` of token characters, Rust's whitespace around it (none
/// of it a control character, which the whole value may not hold), then any parameters.
const CONTENT_TYPE_PATTERN: &str = "^[ \\u00a0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000]*\
    [A-Za-z0-9!#$&^_.+-]+/[A-Za-z0-9!#$&^_.+-]+\
    [ \\u00a0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000]*\
    (?:;[^\\x00-\\x1f\\x7f-\\x9f]*)?$";

/// The decimal numbers 1 to `max` (`max` ≥ 1), without leading zeros, as a regex alternation.
fn up_to(max: i64) -> String {
    let digits: Vec<u8> = max.max(1).to_string().bytes().map(|b| b - b'0').collect();
    let n = digits.len();
    let mut alts = Vec::new();
    if n > 1 {
        alts.push(format!("[1-9][0-9]{{0,{}}}", n - 2));
    }
    for i in 0..n {
        let lowest = u8::from(i == 0);
        if digits[i] > lowest {
            let prefix: String = digits[..i].iter().map(|d| char::from(b'0' + d)).collect();
            let rest = n - i - 1;
            alts.push(format!("{prefix}[{lowest}-{}][0-9]{{{rest}}}", digits[i] - 1));
        }
    }
    alts.push(max.max(1).to_string());
    alts.join("|")
}

/// `spec.sizeBytes` as `size_of` and `check_size` read it on a server whose limit is `max`
/// bytes: a whole number from 1 to `max`, or a string of one (`str::parse::<i64>` after
/// `str::trim`: a `+` and leading zeros allowed).
pub(crate) fn size_schema(max: i64) -> Value {
    serde_json::json!({
        "anyOf": [
            {"type": "integer", "minimum": 1, "maximum": max},
            {"type": "string", "pattern": format!("^[{TRIMMED}]*\\+?0*(?:{})[{TRIMMED}]*$", up_to(max))},
        ],
        "description": "int64 as a string (a JSON number is accepted too), from 1 to this server's upload limit.",
    })
}

/// The component `spec.sizeBytes` refers to; the served document states this server's limit in it.
pub(crate) const SIZE_COMPONENT: &str = "UploadSizeBytes";

/// `spec.sizeBytes` by reference (the document is built with the default limit).
fn size_component(g: &mut schemars::SchemaGenerator) -> schemars::Schema {
    component(g, SIZE_COMPONENT, size_schema(crate::UploadSettings::default().max_size_bytes))
}

/// A new upload, as `create` reads it: a filename not blank, a content type, a size within the
/// limit; the name is the filename's when `metadata.name` is left out, `null` or `""` (then the
/// filename must be a name too: at most 256 characters), else a name like any create's.
fn create_upload_body(g: &mut schemars::SchemaGenerator) -> schemars::Schema {
    let write = g.subschema_for::<CreateIn>();
    let size = size_component(g);
    let not_blank = cadenza_domain::json_schema::NOT_BLANK_PATTERN;
    schemars::json_schema!({
        "allOf": [write],
        "required": ["spec"],
        "properties": {
            "spec": {
                "type": "object",
                "required": ["filename", "contentType", "sizeBytes"],
                "properties": {
                    "filename": {"type": "string", "pattern": not_blank},
                    "contentType": {"type": "string", "pattern": CONTENT_TYPE_PATTERN},
                    "sizeBytes": size,
                },
            },
        },
        "anyOf": [
            {"required": ["metadata"],
             "properties": {"metadata": {"type": "object", "required": ["name"],
                                         "properties": {"name": crate::wire::name_schema()}}}},
            {"properties": {"metadata": {"properties": {"name": {"enum": [null, ""]}}},
                            "spec": {"properties": {"filename": {"maxLength": crate::wire::MAX_NAME}}}}},
        ],
    })
}

/// An upload storage backend, or `UPLOADS_NOT_CONFIGURED`.
fn blobs(s: &AppState) -> ApiResult<&cadenza_store::blobs::Blobs> {
    Ok(s.config.uploads.blobs.as_ref().ok_or_else(|| Error::of(Reason::UploadsNotConfigured, "no upload storage"))?)
}

async fn create(State(s): State<AppState>, c: WsCaller, JsonBody(b): JsonBody<CreateIn>) -> ApiResult<Json<UploadOut>> {
    let cfg = &s.config.uploads;
    if cfg.blobs.is_none() {
        return Err(Error::of(Reason::UploadsNotConfigured, "this server has no upload storage configured").into());
    }
    let filename = b
        .spec
        .filename
        .filter(|f| !f.trim().is_empty())
        .ok_or_else(|| Error::required("spec.filename", "spec.filename is required"))?;
    let content_type = b.spec.content_type.unwrap_or_default();
    check_content_type(&content_type)?;
    let size = size_of(b.spec.size_bytes.as_ref())?;
    check_size(size, cfg.max_size_bytes)?;
    let mut metadata = b.metadata;
    // Uploads are named by their file when the client gives no name.
    if metadata.name.as_deref().is_none_or(str::is_empty) {
        metadata.name = Some(filename.clone());
    }
    let meta = metadata.into_new()?;
    let now = s.store.now_ms();
    let lifetime = i64::try_from(cfg.url_lifetime.as_millis()).unwrap_or(i64::MAX);
    let u = Upload {
        meta: meta.into_meta(IdKind::Upload, now, &c.workspace.meta.account_id, &c.principal.profile_id),
        workspace_id: c.ws().to_string(),
        filename,
        content_type,
        size_bytes: size,
        status: UploadStatus::Pending,
        url_expires_at: now.saturating_add(lifetime),
        object_key: String::new(),
    };
    let mut tx = s.store.begin().await?;
    services::uploads::create(&mut tx, &u).await?;
    tx.commit().await?;
    Ok(Json(UploadOut::new(&s, &u)))
}

pub(crate) async fn load(s: &AppState, c: &WsCaller, raw: &str) -> ApiResult<Upload> {
    let r = IdRef::parse(IdKind::Upload, raw)?;
    Ok(s.store.get_upload(c.ws(), &r).await?.ok_or_else(|| Error::not_found("upload"))?)
}

async fn get_one(
    State(s): State<AppState>,
    c: WsCaller,
    Path((_, raw)): Path<(String, String)>,
) -> ApiResult<Json<UploadOut>> {
    Ok(Json(UploadOut::new(&s, &load(&s, &c, &raw).await?)))
}

/// The bytes of a COMPLETE upload, for a consumer that is about to consume it.
pub(crate) async fn read_complete(s: &AppState, u: &Upload) -> ApiResult<Vec<u8>> {
    if u.status != UploadStatus::Complete {
        let reason = match u.status {
            UploadStatus::Consumed => Reason::UploadConsumed,
            UploadStatus::Expired => Reason::UploadExpired,
            UploadStatus::Pending | UploadStatus::Complete => Reason::UploadNotComplete,
        };
        return Err(Error::precondition(format!(
            "upload {} is {}, not COMPLETE: upload its bytes first, and use each upload once",
            u.meta.id,
            u.status.as_str()
        ))
        .with_reason(reason)
        .with_meta("uploadId", u.meta.id.clone())
        .into());
    }
    blobs(s)?.get(&u.object_key).await.map_err(|e| {
        tracing::error!(upload.id = %u.meta.id, error = %e, "reading an upload failed");
        ApiError::from(Error::of(Reason::StorageUnavailable, "the upload's bytes cannot be read right now"))
    })
}

/// The signed PUT. Refusals change nothing; the bytes count only if they match the
/// declaration exactly.
async fn put_bytes(
    State(s): State<AppState>,
    Path(token): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Json<Empty>> {
    let denied = || ApiError::from(Error::of(Reason::UploadSignatureInvalid, "this upload link is not valid"));
    let ([id, ws], expires) = signed::open(&s.store, PURPOSE, &token).ok_or_else(denied)?;
    if s.store.now_ms() >= expires {
        return Err(Error::of(Reason::UploadExpired, "this upload link has expired: create a new upload").into());
    }
    let u = s.store.get_upload(ws, &IdRef::Id(id.to_string())).await?.ok_or_else(denied)?;
    if u.status != UploadStatus::Pending {
        return Err(Error::of(Reason::UploadConsumed, "this upload link was already used")
            .with_meta("uploadId", u.meta.id.clone())
            .into());
    }
    let sent = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    if sent != u.content_type {
        return Err(Error::of(
            Reason::UploadTypeMismatch,
            format!("Content-Type must be exactly {:?} as declared, not {sent:?}", u.content_type),
        )
        .with_meta("uploadId", u.meta.id.clone())
        .into());
    }
    let size_mismatch = |msg: String| {
        ApiError::from(
            Error::of(Reason::UploadSizeMismatch, msg)
                .with_meta("uploadId", u.meta.id.clone())
                .with_meta("sizeBytes", u.size_bytes.to_string()),
        )
    };
    let limit = usize::try_from(u.size_bytes).unwrap_or(usize::MAX).saturating_add(1);
    let bytes = axum::body::to_bytes(body, limit)
        .await
        .map_err(|_| size_mismatch(format!("the body is larger than the declared {} bytes", u.size_bytes)))?;
    if i64::try_from(bytes.len()).ok() != Some(u.size_bytes) {
        return Err(size_mismatch(format!("the body has {} bytes, not the declared {}", bytes.len(), u.size_bytes)));
    }
    let blobs = blobs(&s)?;
    // A key of its own per attempt: of two racing PUTs, only the winner's object is kept.
    let key = format!("{}/{}/{:016x}", u.workspace_id, u.meta.id, rand::random::<u64>());
    blobs.put(&key, bytes.to_vec()).await.map_err(|e| {
        tracing::error!(upload.id = %u.meta.id, error = %e, "storing an upload failed");
        ApiError::from(Error::of(Reason::StorageUnavailable, "the upload could not be stored; try again"))
    })?;
    let retention = i64::try_from(s.config.uploads.retention.as_millis()).unwrap_or(i64::MAX);
    let mut tx = s.store.begin().await?;
    let completed = match services::uploads::complete(&mut tx, &u.workspace_id, &u.meta.id, &key, retention).await {
        Ok(()) => tx.commit().await.map_err(ApiError::from),
        Err(e) => Err(e.into()),
    };
    if let Err(e) = completed {
        // The object is nobody's: the row never named it.
        let _ = blobs.delete(&key).await;
        return Err(e);
    }
    tracing::info!(upload.id = %u.meta.id, bytes = u.size_bytes, "upload stored");
    Ok(empty())
}

pub fn workspace_routes() -> Router<AppState> {
    Router::new().route("/uploads", post(create)).route("/uploads/{upload_id}", get(get_one))
}

/// The upload PUT, mounted outside the API's body limit and request deadline.
pub fn put_route(max_size_bytes: i64) -> Router<AppState> {
    let limit = usize::try_from(max_size_bytes).unwrap_or(usize::MAX).saturating_add(1);
    Router::new().route("/v1/uploads/{token}", put(put_bytes)).layer(DefaultBodyLimit::max(limit))
}

pub fn operations() -> Vec<Op> {
    const T: &str = "Uploads";
    vec![
        Op::new("post", "/v1/workspaces/{workspace_id}/uploads", "create_upload", T, schema::<UploadOut>)
            .summary("A handle with a signed, single-use PUT URL")
            .manage("memory")
            .body(create_upload_body),
        Op::new("get", "/v1/workspaces/{workspace_id}/uploads/{upload_id}", "get_upload", T, schema::<UploadOut>)
            .read("memory"),
        Op::new("put", "/v1/uploads/{token}", "put_upload_bytes", T, schema::<Empty>)
            .summary("Send the bytes: exactly the declared Content-Type and size; the token is the credential")
            .public(),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::openapi::{accepts, request_schema};
    use serde_json::json;

    #[test]
    fn content_type_pattern_agrees_with_check() {
        let schema = json!({"type": "string", "pattern": CONTENT_TYPE_PATTERN});
        for t in [
            "text/plain",
            "application/json; charset=utf-8",
            "application/vnd.oai.openapi+json",
            " text/plain ",
            "\u{3000}text/plain",
            "text/plain;",
            "text/plain;a=\u{e9}",
            "",
            "text",
            "text/",
            "/plain",
            "te xt/plain",
            "text/pl\u{7}ain",
            "\ttext/plain",
            "text/plain\n",
            "text/plain; a=\u{85}",
            "text/plain/x",
            "t\u{e9}xt/plain",
            "text/plain ;x",
            "text/plain x",
        ] {
            assert_eq!(accepts(&schema, &json!(t)), check_content_type(t).is_ok(), "{t:?}");
        }
    }

    #[test]
    fn size_schema_agrees_with_size_of() {
        for max in [1_i64, 9, 10, 100, 1000, 33_554_432, 1 << 40] {
            let schema = size_schema(max);
            let mut values: Vec<Value> = Vec::new();
            for n in [0, 1, 2, 9, 10, 11, 99, 100, 101, max - 1, max, max + 1, max * 10, -1, i64::MAX] {
                values.extend([json!(n), json!(n.to_string()), json!(format!(" +{n}\t")), json!(format!("000{n}"))]);
            }
            values.extend([
                json!(""),
                json!("+"),
                json!("-0"),
                json!("1.0"),
                json!("1e3"),
                json!("0x10"),
                json!("1 0"),
                json!(1.0),
                json!(2.0),
                json!(1.5),
                json!(null),
                json!(true),
                json!("\u{3000}1"),
                json!("٣"),
                json!(format!("{}1", "0".repeat(40))),
                json!("99999999999999999999"),
            ]);
            for v in values {
                let read = size_of(Some(&v)).ok().is_some_and(|n| check_size(n, max).is_ok());
                assert_eq!(accepts(&schema, &v), read, "max {max}: {v}");
            }
        }
    }

    /// What `create` reads of a body before the store.
    fn create_reads(body: &Value) -> bool {
        let Ok(b) = crate::strict_json::from_value::<CreateIn>(body) else { return false };
        let Some(filename) = b.spec.filename.filter(|f| !f.trim().is_empty()) else { return false };
        let sized = size_of(b.spec.size_bytes.as_ref())
            .ok()
            .is_some_and(|n| check_size(n, crate::UploadSettings::default().max_size_bytes).is_ok());
        let mut metadata = b.metadata;
        if metadata.name.as_deref().is_none_or(str::is_empty) {
            metadata.name = Some(filename);
        }
        sized && check_content_type(&b.spec.content_type.unwrap_or_default()).is_ok() && metadata.into_new().is_ok()
    }

    #[test]
    fn create_schema_agrees_with_create() {
        let schema = request_schema(create_upload_body);
        let long = "€".repeat(256);
        let spec = |filename: &str| json!({"filename": filename, "contentType": "text/plain", "sizeBytes": "12"});
        for body in [
            json!({}),
            json!({"spec": spec("notes.md")}),
            json!({"spec": spec(" ")}),
            json!({"spec": spec(&long)}),
            json!({"spec": spec(&format!("{long}x"))}),
            json!({"metadata": {"name": "n"}, "spec": spec(&format!("{long}x"))}),
            json!({"metadata": {"name": ""}, "spec": spec(&format!("{long}x"))}),
            json!({"metadata": {"name": null}, "spec": spec("a")}),
            json!({"metadata": {"name": " "}, "spec": spec("a")}),
            json!({"metadata": {"name": format!("{long}x")}, "spec": spec("a")}),
            json!({"metadata": {"externalId": "a b"}, "spec": spec("a")}),
            json!({"spec": {"filename": "a", "contentType": "text/plain", "sizeBytes": 12.0}}),
            json!({"spec": {"filename": "a", "contentType": "text/plain", "sizeBytes": 0}}),
            json!({"spec": {"filename": "a", "contentType": "text/plain", "sizeBytes": "33554433"}}),
            json!({"spec": {"filename": "a", "contentType": "text/plain"}}),
            json!({"spec": {"filename": "a", "contentType": "text", "sizeBytes": 1}}),
            json!({"spec": {"filename": "a", "contentType": null, "sizeBytes": 1}}),
            json!({"spec": {"filename": null, "contentType": "text/plain", "sizeBytes": 1}}),
        ] {
            assert_eq!(accepts(&schema, &body), create_reads(&body), "{body}");
        }
    }
}
