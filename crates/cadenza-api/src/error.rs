//! The HTTP edge of errors: every failure leaves as the contract's `{code, message, details}`,
//! `details` holding exactly one `google.rpc.ErrorInfo` with the error's reason (docs/ERRORS.md).

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use cadenza_domain::Error;
use serde_json::{Value, json};

/// The `@type` of the one entry of `details`.
pub const ERROR_INFO_TYPE: &str = "type.googleapis.com/google.rpc.ErrorInfo";
/// The `domain` of every ErrorInfo this server sends.
pub const ERROR_DOMAIN: &str = "cadenza";

/// A domain error on its way out, with an optional HTTP status override (by default the
/// status follows the error: its code, or its reason's own status for 405 and 413).
#[derive(Debug)]
pub struct ApiError {
    pub error: Error,
    pub status: Option<StatusCode>,
}

pub type ApiResult<T> = Result<T, ApiError>;

impl ApiError {
    pub fn with_status(status: StatusCode, error: Error) -> Self {
        Self { error, status: Some(status) }
    }

    /// For a value parser shared by bodies and queries, used on a query: `QUERY_INVALID` naming
    /// `parameter` (see [`Error::in_query`]).
    pub fn in_query(self, parameter: &str) -> Self {
        Self { error: self.error.in_query(parameter), status: self.status }
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

/// The error body: `{code, message, details: [ErrorInfo]}`.
pub fn body(error: &Error) -> Value {
    json!({
        "code": error.code as i32,
        "message": error.message,
        "details": [{
            "@type": ERROR_INFO_TYPE,
            "reason": error.reason.as_str(),
            "domain": ERROR_DOMAIN,
            "metadata": error.metadata,
        }],
    })
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self
            .status
            .or_else(|| StatusCode::from_u16(self.error.http_status()).ok())
            .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut resp = (status, Json(body(&self.error))).into_response();
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

#[cfg(test)]
mod tests {
    use cadenza_domain::{Code, Reason};

    use super::*;

    #[test]
    fn the_body_carries_one_error_info() {
        let e = Error::of(Reason::VariationCycle, "that sub-agent would make the agent its own ancestor");
        let b = body(&e);
        assert_eq!(b["code"], 3);
        assert_eq!(b["message"], "that sub-agent would make the agent its own ancestor");
        assert_eq!(
            b["details"],
            json!([{"@type": ERROR_INFO_TYPE, "reason": "VARIATION_CYCLE", "domain": "cadenza", "metadata": {}}])
        );
        let b = body(&Error::not_found("agent"));
        assert_eq!(b["details"][0]["metadata"], json!({"resource": "agent"}));
        assert_eq!(b["details"][0]["reason"], "NOT_FOUND");
    }

    #[test]
    fn status_follows_code_or_reason() {
        let status = |e: Error| ApiError::from(e).into_response().status().as_u16();
        assert_eq!(status(Error::of(Reason::BodyTooLarge, "big")), 413);
        assert_eq!(status(Error::of(Reason::MethodNotAllowed, "no")), 405);
        assert_eq!(status(Error::new(Code::Unimplemented, "no")), 501);
        assert_eq!(status(Error::invalid("x").with_reason(Reason::ToolSetArchived)), 400);
        assert_eq!(status(Error::of(Reason::ModelInUse, "x")), 400);
        assert_eq!(status(Error::of(Reason::TokenMissing, "x")), 401);
    }
}
