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
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use cadenza_domain::ids::{IdKind, IdRef};
use cadenza_domain::scopes::Verb;
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
use crate::openapi::{Op, schema};
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
    let body = format!("{}.{}.{}", u.meta.id, u.workspace_id, u.url_expires_at);
    let sig = s.store.sign(PURPOSE, body.as_bytes());
    format!("{body}.{}", URL_SAFE_NO_PAD.encode(sig))
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
    #[schemars(with = "Option<String>")]
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
        Some(Value::Number(n)) => n.as_i64().ok_or_else(bad),
        None | Some(Value::Null) => Err(Error::required(FIELD, "spec.sizeBytes is required").into()),
        Some(_) => Err(bad()),
    }
}

/// An upload storage backend, or `UPLOADS_NOT_CONFIGURED`.
fn blobs(s: &AppState) -> ApiResult<&cadenza_store::blobs::Blobs> {
    Ok(s.config.uploads.blobs.as_ref().ok_or_else(|| Error::of(Reason::UploadsNotConfigured, "no upload storage"))?)
}

async fn create(State(s): State<AppState>, c: WsCaller, JsonBody(b): JsonBody<CreateIn>) -> ApiResult<Json<UploadOut>> {
    c.require("memory", Verb::Manage)?;
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
    c.require("memory", Verb::Read)?;
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
    let (signed, sig) = token.rsplit_once('.').ok_or_else(denied)?;
    let sig = URL_SAFE_NO_PAD.decode(sig).map_err(|_| denied())?;
    if !s.store.verify_signature(PURPOSE, signed.as_bytes(), &sig) {
        return Err(denied());
    }
    let mut parts = signed.splitn(3, '.');
    let (Some(id), Some(ws), Some(expires)) = (parts.next(), parts.next(), parts.next()) else { return Err(denied()) };
    let expires: i64 = expires.parse().map_err(|_| denied())?;
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
            .scope("memory:manage")
            .body(schema::<CreateIn>),
        Op::new("get", "/v1/workspaces/{workspace_id}/uploads/{upload_id}", "get_upload", T, schema::<UploadOut>)
            .scope("memory:read"),
        Op::new("put", "/v1/uploads/{token}", "put_upload_bytes", T, schema::<Empty>)
            .summary("Send the bytes: exactly the declared Content-Type and size; the token is the credential"),
    ]
}
