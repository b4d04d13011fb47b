//! Uploads (CONTRACT §11): one-shot handles for putting a file into Cadenza's object storage,
//! later consumed by a memory entry or an OpenAPI tool set.

use crate::error::{Error, Result};
use crate::meta::Meta;
use crate::reasons::Reason;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UploadStatus {
    Pending,
    Complete,
    Consumed,
    Expired,
}

impl UploadStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "PENDING",
            Self::Complete => "COMPLETE",
            Self::Consumed => "CONSUMED",
            Self::Expired => "EXPIRED",
        }
    }

    pub fn from_db(raw: &str) -> Self {
        match raw {
            "COMPLETE" => Self::Complete,
            "CONSUMED" => Self::Consumed,
            "EXPIRED" => Self::Expired,
            _ => Self::Pending,
        }
    }
}

#[derive(Debug, Clone)]
pub struct Upload {
    pub meta: Meta,
    pub workspace_id: String,
    pub filename: String,
    pub content_type: String,
    pub size_bytes: i64,
    pub status: UploadStatus,
    /// When the signed PUT URL stops working.
    pub url_expires_at: i64,
    /// Where the bytes are, once the PUT succeeded.
    pub object_key: String,
}

/// Checks a declared content type: `type/subtype`, optional parameters, no spaces or controls
/// in the essence.
pub fn check_content_type(raw: &str) -> Result<()> {
    let essence = raw.split(';').next().unwrap_or("").trim();
    let ok_token = |t: &str| !t.is_empty() && t.bytes().all(|b| b.is_ascii_alphanumeric() || b"!#$&^_.+-".contains(&b));
    match essence.split_once('/') {
        Some((t, sub)) if ok_token(t) && ok_token(sub) && !raw.chars().any(char::is_control) => Ok(()),
        _ => Err(Error::invalid_field(
            "spec.contentType",
            format!("spec.contentType must be a MIME type like \"text/plain\", not {raw:?}"),
        )),
    }
}

/// Checks a declared size against the server's maximum.
pub fn check_size(size: i64, max: i64) -> Result<()> {
    if size <= 0 {
        return Err(Error::invalid_field("spec.sizeBytes", "spec.sizeBytes must be greater than 0"));
    }
    if size > max {
        return Err(Error::of(
            Reason::UploadTooLarge,
            format!("spec.sizeBytes {size} is over this server's upload limit of {max} bytes"),
        )
        .with_meta("field", "spec.sizeBytes")
        .with_meta("maxBytes", max.to_string()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_types_and_sizes() {
        for ok in ["text/plain", "application/json; charset=utf-8", "application/vnd.oai.openapi+json"] {
            assert!(check_content_type(ok).is_ok(), "{ok}");
        }
        for bad in ["", "text", "text/", "/plain", "te xt/plain", "text/pl\u{7}ain"] {
            assert!(check_content_type(bad).is_err(), "{bad:?}");
        }
        assert!(check_size(1, 10).is_ok());
        assert!(check_size(0, 10).is_err());
        assert_eq!(check_size(11, 10).map_err(|e| e.reason), Err(Reason::UploadTooLarge));
    }
}
