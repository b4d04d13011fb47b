//! Media in tool results: the images and audio a client sends with `:setContent` (base64 in the
//! request) are kept in the object store under a key of their own, and served by cadenza itself
//! at short-lived signed URLs, minted each time a result is rendered (CONTRACT: media blocks
//! carry `url`, `mimeType`, `sizeBytes`, `expiresAt`).
//!
//! The URL's token is `<key>.<mime type>.<expiry ms>.<signature>` (key and type in URL-safe
//! base64), the signature an HMAC of the rest under a key derived from the master key: any
//! replica checks it without a lookup, and a link cannot be turned to another object or type.

use axum::Router;
use axum::extract::{Path, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use base64::Engine;
use base64::alphabet;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig, URL_SAFE_NO_PAD};
use cadenza_domain::objectives::{ResultBlock, StoredMedia};
use cadenza_domain::time::format_ms;
use cadenza_domain::{Error, Reason};
use cadenza_store::Reads;
use cadenza_store::blobs::Blobs;
use serde_json::{Value, json};

use crate::error::{ApiError, ApiResult};
use crate::openapi::Op;
use crate::signed;
use crate::{AppState, UploadSettings};

const PURPOSE: &str = "media-url";

/// Standard base64, padded, as the document's pattern states it (which cannot say that the
/// unused bits of the last character are zero, so they are not required to be).
const MEDIA_BASE64: GeneralPurpose =
    GeneralPurpose::new(&alphabet::STANDARD, GeneralPurposeConfig::new().with_decode_allow_trailing_bits(true));

/// Image types every provider takes inline (OpenAI and Anthropic alike).
pub const IMAGE_TYPES: &[&str] = &["image/png", "image/jpeg", "image/gif", "image/webp"];

/// Mints the signed links of media blocks for one rendering.
pub struct MediaLinks {
    reads: Reads,
    base: String,
    expires_at: i64,
}

impl MediaLinks {
    /// Links that work for the upload link lifetime from now (`[uploads] url_lifetime`).
    pub fn new(reads: &Reads, uploads: &UploadSettings) -> Self {
        let lifetime = i64::try_from(uploads.url_lifetime.as_millis()).unwrap_or(i64::MAX);
        Self {
            reads: reads.clone(),
            base: uploads.public_url.trim_end_matches('/').to_string(),
            expires_at: reads.now_ms().saturating_add(lifetime),
        }
    }

    /// A media block's payload as clients see it.
    pub fn render(&self, m: &StoredMedia) -> Value {
        let (key, mime) = (URL_SAFE_NO_PAD.encode(&m.key), URL_SAFE_NO_PAD.encode(&m.mime_type));
        let token = signed::seal(&self.reads, PURPOSE, [&key, &mime], self.expires_at);
        json!({
            "url": format!("{}/v1/media/{token}", self.base),
            "mimeType": m.mime_type,
            "sizeBytes": m.size_bytes.to_string(),
            "expiresAt": format_ms(self.expires_at),
        })
    }
}

/// Reads `:setContent` blocks (`{"type": "text", "text": {"text"}}`, `{"type": "image",
/// "image": {"data": base64, "mimeType"}}`, the same for `audio`). Refusals name the block.
pub enum ContentIn {
    Text(String),
    Media { image: bool, mime_type: String, bytes: Vec<u8> },
}

pub fn parse_block(field: &str, b: &Value) -> ApiResult<ContentIn> {
    let kind =
        b.get("type").and_then(Value::as_str).unwrap_or_else(|| if b.get("text").is_some() { "text" } else { "" });
    match kind {
        "text" => match b.pointer("/text/text").and_then(Value::as_str) {
            Some(t) => Ok(ContentIn::Text(t.to_string())),
            None => {
                Err(Error::required(&format!("{field}.text.text"), format!("{field}.text.text is required")).into())
            }
        },
        "image" | "audio" => {
            let at = |k: &str| b.get(kind).and_then(|m| m.get(k)).and_then(Value::as_str);
            let mime_type = at("mimeType").ok_or_else(|| {
                Error::required(&format!("{field}.{kind}.mimeType"), format!("{field}.{kind}.mimeType is required"))
            })?;
            let image = kind == "image";
            let known = if image { IMAGE_TYPES.contains(&mime_type) } else { is_audio_type(mime_type) };
            if !known {
                let allowed = if image { IMAGE_TYPES.join(", ") } else { "audio/<subtype>".to_string() };
                return Err(Error::invalid_field(
                    &format!("{field}.{kind}.mimeType"),
                    format!("{field}.{kind}.mimeType must be one of {allowed}"),
                )
                .into());
            }
            let data = at("data").ok_or_else(|| {
                Error::required(&format!("{field}.{kind}.data"), format!("{field}.{kind}.data is required"))
            })?;
            let bytes = MEDIA_BASE64.decode(data).ok().filter(|b| !b.is_empty()).ok_or_else(|| {
                Error::invalid_field(
                    &format!("{field}.{kind}.data"),
                    format!("{field}.{kind}.data must be non-empty standard base64"),
                )
            })?;
            Ok(ContentIn::Media { image, mime_type: mime_type.to_string(), bytes })
        }
        _ => Err(Error::invalid_field(field, format!("{field}.type must be text, image or audio")).into()),
    }
}

fn is_audio_type(t: &str) -> bool {
    t.strip_prefix("audio/")
        .is_some_and(|sub| !sub.is_empty() && sub.bytes().all(|c| c.is_ascii_alphanumeric() || b"+-.".contains(&c)))
}

/// Stores the media of `blocks` (each under a key of its own in `ws`), giving the result blocks;
/// on any failure, what was stored is removed again.
pub async fn store(blobs: Option<&Blobs>, ws: &str, blocks: Vec<ContentIn>) -> ApiResult<Vec<ResultBlock>> {
    let mut out = Vec::with_capacity(blocks.len());
    for b in blocks {
        match b {
            ContentIn::Text(text) => out.push(ResultBlock::Text { text }),
            ContentIn::Media { image, mime_type, bytes } => {
                let Some(blobs) = blobs else {
                    return Err(Error::of(
                        Reason::UploadsNotConfigured,
                        "this server has no object storage configured, which images and audio need",
                    )
                    .into());
                };
                let key = format!("media/{ws}/{:032x}", rand::random::<u128>());
                let size_bytes = i64::try_from(bytes.len()).unwrap_or(i64::MAX);
                if let Err(e) = blobs.put(&key, bytes).await {
                    tracing::error!(error = %e, "storing tool result media failed");
                    discard(Some(blobs), &out).await;
                    return Err(
                        Error::of(Reason::StorageUnavailable, "the media could not be stored; try again").into()
                    );
                }
                let m = StoredMedia { key, mime_type, size_bytes };
                out.push(if image { ResultBlock::Image(m) } else { ResultBlock::Audio(m) });
            }
        }
    }
    Ok(out)
}

/// Removes the stored media of `blocks` (a request that stored them was then refused).
pub async fn discard(blobs: Option<&Blobs>, blocks: &[ResultBlock]) {
    let Some(blobs) = blobs else { return };
    for m in blocks.iter().filter_map(ResultBlock::media) {
        let _ = blobs.delete(&m.key).await;
    }
}

/// The signed GET: the bytes with their type. The token is the credential.
async fn get_media(State(s): State<AppState>, Path(token): Path<String>) -> ApiResult<Response> {
    let denied = || ApiError::from(Error::of(Reason::MediaLinkInvalid, "this media link is not valid"));
    let ([key, mime], expires) = signed::open(&s.store, PURPOSE, &token).ok_or_else(denied)?;
    let text = |b64: &str| URL_SAFE_NO_PAD.decode(b64).ok().and_then(|b| String::from_utf8(b).ok());
    let (Some(key), Some(mime)) = (text(key), text(mime)) else { return Err(denied()) };
    if s.store.now_ms() >= expires {
        return Err(Error::of(
            Reason::MediaLinkExpired,
            "this media link has expired: read the result again for a new one",
        )
        .into());
    }
    let blobs = s.config.uploads.blobs.as_ref().ok_or_else(denied)?;
    let bytes = blobs.get(&key).await.map_err(|e| {
        if e.is_not_found() {
            // Gone from storage: the link outlived what it names.
            return ApiError::from(Error::not_found("media"));
        }
        tracing::warn!(error = %e, "reading tool result media failed");
        ApiError::from(Error::of(Reason::StorageUnavailable, "the media cannot be read right now"))
    })?;
    Ok(([(header::CONTENT_TYPE, mime), (header::CACHE_CONTROL, "private, max-age=300".to_string())], bytes)
        .into_response())
}

/// The media GET, outside the API's authentication (the signed token is the credential).
pub fn routes() -> Router<AppState> {
    Router::new().route("/v1/media/{token}", get(get_media))
}

pub fn operations() -> Vec<Op> {
    vec![
        Op::new("get", "/v1/media/{token}", "get_tool_result_media", "Objectives", media_schema)
            .summary("The bytes of an image or audio block of a tool result; the signed token is the credential")
            .served_as(&["image/*", "audio/*"])
            .public(),
    ]
}

fn media_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({"type": "string", "format": "binary"})
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(b: Value) -> String {
        match parse_block("content[0]", &b) {
            Ok(_) => String::new(),
            Err(e) => format!("{e:?}"),
        }
    }

    #[test]
    fn blocks_name_what_is_wrong() {
        assert!(matches!(
            parse_block("c", &json!({"type": "image", "image": {"data": "iVBORw0KGgo=", "mimeType": "image/png"}})),
            Ok(ContentIn::Media { image: true, .. })
        ));
        assert!(matches!(
            parse_block("c", &json!({"type": "audio", "audio": {"data": "UklGRg==", "mimeType": "audio/ogg"}})),
            Ok(ContentIn::Media { image: false, .. })
        ));
        assert!(
            refused(json!({"type": "image", "image": {"data": "iVBORw0KGgo=", "mimeType": "image/tiff"}}))
                .contains("mimeType")
        );
        assert!(
            refused(json!({"type": "image", "image": {"data": "not base64!", "mimeType": "image/png"}}))
                .contains("data")
        );
        assert!(refused(json!({"type": "image", "image": {"data": "", "mimeType": "image/png"}})).contains("data"));
        assert!(refused(json!({"type": "audio", "audio": {"data": "UklGRg=="}})).contains("mimeType"));
        assert!(
            refused(json!({"type": "audio", "audio": {"data": "UklGRg==", "mimeType": "audio/"}})).contains("mimeType")
        );
        assert!(refused(json!({"type": "video"})).contains("type"));
    }
}
