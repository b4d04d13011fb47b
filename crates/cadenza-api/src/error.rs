//! The HTTP edge of errors: every failure leaves as the contract's `{code, message, details}`.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use cadenza_domain::{Code, Error};
use serde_json::json;

/// A domain error on its way out, with an optional HTTP status override (413 for oversized
/// bodies, which has no gRPC code of its own).
#[derive(Debug)]
pub struct ApiError {
    pub error: Error,
    pub status: Option<StatusCode>,
}

pub type ApiResult<T> = Result<T, ApiError>;

impl ApiError {
    pub fn with_status(status: StatusCode, code: Code, message: impl Into<String>) -> Self {
        Self { error: Error::new(code, message), status: Some(status) }
    }
}

impl From<Error> for ApiError {
    fn from(error: Error) -> Self {
        Self { error, status: None }
    }
}

impl From<cadenza_store::StoreError> for ApiError {
    fn from(e: cadenza_store::StoreError) -> Self {
        Error::from(e).into()
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self
            .status
            .or_else(|| StatusCode::from_u16(self.error.code.http_status()).ok())
            .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let body = json!({ "code": self.error.code as i32, "message": self.error.message, "details": [] });
        let mut resp = (status, Json(body)).into_response();
        if status == StatusCode::CONFLICT {
            // A genuine conflict does not go away by retrying (CONTRACT §1.9).
            resp.headers_mut().insert("x-should-retry", axum::http::HeaderValue::from_static("false"));
        }
        if status == StatusCode::SERVICE_UNAVAILABLE {
            resp.headers_mut().insert("retry-after", axum::http::HeaderValue::from_static("1"));
        }
        resp
    }
}
