//! Request extractors that speak the contract: a tolerant JSON body, list queries that accept
//! comma-joined and repeated array parameters, and the `:verb` suffix split.

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::StatusCode;
use axum::http::request::Parts;
use cadenza_domain::page::ListParams;
use cadenza_domain::{Error, Reason};
use serde::de::DeserializeOwned;

use crate::error::ApiError;

/// A JSON body. An empty body (no bytes) reads as `{}` (custom methods are often sent
/// bodiless, with or without a JSON content type); the content type itself is not checked;
/// unknown fields are ignored by the target types; malformed JSON and wrong types are a 400.
pub struct JsonBody<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = Bytes::from_request(req, state).await.map_err(|rej| {
            if rej.status() == StatusCode::PAYLOAD_TOO_LARGE {
                Error::of(Reason::BodyTooLarge, "request body is too large")
            } else {
                Error::of(Reason::BodyInvalid, format!("could not read the request body: {rej}"))
            }
        })?;
        // Only a body of no bytes is "no body": whitespace alone is not JSON, and the document
        // (a body that may be left out) cannot say otherwise (a fuzz run sent `\n`).
        let text: &[u8] = if bytes.is_empty() { b"{}" } else { &bytes };
        crate::strict_json::from_slice(text).map(JsonBody).map_err(|e| body_invalid(&e).into())
    }
}

/// `BODY_INVALID` for a body that is not JSON or does not fit the request type.
pub fn body_invalid(e: &serde_json::Error) -> Error {
    Error::of(Reason::BodyInvalid, format!("invalid request body: {e}"))
}

/// `QUERY_INVALID` naming the query parameter.
pub fn query_invalid(parameter: &str, message: impl Into<String>) -> Error {
    Error::of(Reason::QueryInvalid, message).with_meta("parameter", parameter)
}

/// The raw query string as ordered key/value pairs, so array parameters may come comma-joined
/// (`names=a,b`) or repeated (`names=a&names=b`).
#[derive(Debug, Default, Clone)]
pub struct QueryPairs(pub Vec<(String, String)>);

impl<S: Send + Sync> FromRequestParts<S> for QueryPairs {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let raw = parts.uri.query().unwrap_or("");
        let pairs: Vec<(String, String)> = serde_urlencoded_pairs(raw)?;
        Ok(QueryPairs(pairs))
    }
}

fn serde_urlencoded_pairs(raw: &str) -> Result<Vec<(String, String)>, ApiError> {
    raw.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            Ok((percent_decode(k)?, percent_decode(v)?))
        })
        .collect()
}

fn percent_decode(s: &str) -> Result<String, ApiError> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = bytes
                    .get(i + 1..i + 3)
                    .and_then(|h| std::str::from_utf8(h).ok())
                    .and_then(|h| u8::from_str_radix(h, 16).ok());
                let Some(b) = hex else {
                    return Err(Error::of(Reason::QueryInvalid, "malformed percent-encoding in query").into());
                };
                out.push(b);
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).map_err(|_| Error::of(Reason::QueryInvalid, "query is not valid UTF-8").into())
}

impl QueryPairs {
    /// The last value of a scalar parameter.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0.iter().rev().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }

    /// The value of a scalar parameter the document declares: sent more than once, it is a
    /// `QUERY_INVALID` (which of two values to read would be a guess).
    pub fn one(&self, key: &str) -> Result<Option<&str>, ApiError> {
        let mut values = self.0.iter().filter(|(k, _)| k == key).map(|(_, v)| v.as_str());
        let first = values.next();
        if values.next().is_some() {
            return Err(query_invalid(key, format!("{key} may be given once")).into());
        }
        Ok(first)
    }

    /// Every value of an array parameter, split on commas and collected across repeats.
    pub fn all(&self, key: &str) -> Vec<String> {
        self.0
            .iter()
            .filter(|(k, _)| k == key)
            .flat_map(|(_, v)| v.split(','))
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .map(str::to_string)
            .collect()
    }

    pub fn bool(&self, key: &str) -> Result<Option<bool>, ApiError> {
        match self.one(key)? {
            None | Some("") => Ok(None),
            Some("true") | Some("1") => Ok(Some(true)),
            Some("false") | Some("0") => Ok(Some(false)),
            Some(other) => Err(query_invalid(key, format!("{key} must be true or false, not {other:?}")).into()),
        }
    }

    /// The generic list parameters of CONTRACT §1.6.
    pub fn list_params(&self) -> Result<ListParams, ApiError> {
        let limit = match self.one("limit")? {
            None | Some("") => None,
            Some(l) => Some(
                l.parse::<i64>().map_err(|_| query_invalid("limit", format!("limit must be an integer, not {l:?}")))?,
            ),
        };
        // Validated here so every list refuses a malformed flag, whether or not it uses info.
        self.include_info()?;
        let labels = self.all("labels").join(",");
        Ok(ListParams::parse(
            self.one("cursor")?,
            limit,
            self.one("sortOrder")?.or(self.one("sort_order")?),
            self.one("prefix")?,
            Some(labels.as_str()).filter(|l| !l.is_empty()),
        )?)
    }

    /// For logs listed newest first: true when the client named no sort order.
    pub fn newest_first_by_default(&self) -> bool {
        matches!(self.get("sortOrder").or(self.get("sort_order")), None | Some(""))
    }

    pub fn include_info(&self) -> Result<bool, ApiError> {
        Ok(self.bool("includeInfo")?.or(self.bool("include_info")?).unwrap_or(false))
    }
}

/// Splits a `:verb` custom method off the last path segment: `apikey_X:rotate` → (`apikey_X`,
/// `rotate`). Only verbs in `known` count, so `external_id:foo` stays an id.
pub fn split_verb<'a>(segment: &'a str, known: &[&str]) -> Result<(&'a str, &'a str), ApiError> {
    match segment.rsplit_once(':') {
        Some((id, verb)) if known.contains(&verb) && !id.is_empty() => Ok((id, verb)),
        _ => Err(Error::of(Reason::CustomMethodUnknown, format!("no such method on {segment:?}")).into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verbs_split_on_last_colon() {
        assert_eq!(split_verb("external_id:k:rotate", &["rotate"]).ok(), Some(("external_id:k", "rotate")));
        assert!(split_verb("external_id:k", &["rotate"]).is_err());
    }

    #[test]
    fn query_pairs_accept_both_array_forms() {
        let q = QueryPairs(serde_urlencoded_pairs("names=a,b&names=c").unwrap_or_default());
        assert_eq!(q.all("names"), vec!["a", "b", "c"]);
        assert!(serde_urlencoded_pairs("x=%2").is_err());
        assert!(serde_urlencoded_pairs("x=%zz").is_err());
        let q = QueryPairs(serde_urlencoded_pairs("labels=env%3Dprod&limit=5").unwrap_or_default());
        assert_eq!(q.get("labels"), Some("env=prod"));
        assert!(q.list_params().is_ok());
        let q = QueryPairs(serde_urlencoded_pairs("limit=5&limit=").unwrap_or_default());
        assert!(q.list_params().is_err(), "a scalar given twice is refused");
        assert!(q.one("limit").is_err() && q.one("cursor").ok() == Some(None));
    }
}
