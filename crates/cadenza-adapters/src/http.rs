//! Fetching a document (an OpenAPI spec given by URL): bounded in time and size, failures sorted
//! into [`SyncErrorKind`]s. Header values are credentials and never appear in errors or logs.
//!
//! Every request goes through the [`EgressPolicy`] of [`FetchOptions::egress`]: the URL before
//! sending, each resolved address, and each redirect hop. A refusal fails with
//! [`SyncErrorKind::EgressRefused`] before anything is sent to the refused destination.

use std::collections::BTreeMap;
use std::time::Duration;

use reqwest::header::{ACCEPT, HeaderMap, HeaderName, HeaderValue};

use crate::egress::{EgressPolicy, Redirects, refusal_in};
use crate::error::{SyncError, SyncErrorKind};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchOptions {
    /// For the whole exchange, body included.
    pub timeout: Duration,
    pub connect_timeout: Duration,
    /// Larger bodies fail with `TooLarge` without being read past the cap.
    pub max_bytes: usize,
    /// Redirects followed within the origin; more fail with `Protocol`.
    pub max_redirects: usize,
    /// Where requests may go (defaults: loopback and private networks allowed, cloud metadata
    /// and link-local refused).
    pub egress: EgressPolicy,
}

impl Default for FetchOptions {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(10),
            max_bytes: 10 * 1024 * 1024,
            max_redirects: 5,
            egress: EgressPolicy::default(),
        }
    }
}

/// A reusable fetcher (one connection pool).
#[derive(Debug, Clone)]
pub struct Fetcher {
    client: reqwest::Client,
    opts: FetchOptions,
}

impl Fetcher {
    pub fn new(opts: FetchOptions) -> Result<Self, SyncError> {
        let builder = reqwest::Client::builder().connect_timeout(opts.connect_timeout).timeout(opts.timeout);
        let client =
            opts.egress.apply(builder, Redirects::SameOrigin { max: opts.max_redirects }).build().map_err(|e| {
                SyncError::new(SyncErrorKind::InvalidConfig, format!("cannot build an HTTP client: {}", describe(&e)))
            })?;
        Ok(Self { client, opts })
    }

    /// GETs `url` with `headers` and returns the body.
    pub async fn fetch(&self, url: &str, headers: &BTreeMap<String, String>) -> Result<Vec<u8>, SyncError> {
        let parsed = check_url(url)?;
        self.opts.egress.check_parsed(&parsed)?;
        let mut request = self.client.get(parsed).headers(header_map(headers)?);
        if !headers.keys().any(|k| k.eq_ignore_ascii_case("accept")) {
            request = request.header(ACCEPT, "application/json, application/yaml;q=0.9, */*;q=0.5");
        }
        let mut response = request.send().await.map_err(|e| from_reqwest(&e, "fetching the document"))?;
        let status = response.status();
        if !status.is_success() {
            return Err(status_error(status.as_u16(), "fetching the document"));
        }
        if let Some(len) = response.content_length()
            && len > self.opts.max_bytes as u64
        {
            return Err(too_large(self.opts.max_bytes));
        }
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(|e| from_reqwest(&e, "reading the document"))? {
            if body.len() + chunk.len() > self.opts.max_bytes {
                return Err(too_large(self.opts.max_bytes));
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body)
    }
}

/// One-off fetch with its own client.
pub async fn fetch_document(
    url: &str,
    headers: &BTreeMap<String, String>,
    opts: &FetchOptions,
) -> Result<Vec<u8>, SyncError> {
    Fetcher::new(opts.clone())?.fetch(url, headers).await
}

fn too_large(max: usize) -> SyncError {
    SyncError::new(SyncErrorKind::TooLarge, format!("the response is larger than {max} bytes"))
}

pub(crate) fn check_url(url: &str) -> Result<reqwest::Url, SyncError> {
    let parsed = reqwest::Url::parse(url.trim())
        .map_err(|e| SyncError::new(SyncErrorKind::InvalidConfig, format!("{url:?} is not a valid URL: {e}")))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(SyncError::new(SyncErrorKind::InvalidConfig, format!("{url:?} is not an http or https URL")));
    }
    Ok(parsed)
}

/// The configured headers as a header map; a bad name or value is named without its value.
pub(crate) fn header_map(headers: &BTreeMap<String, String>) -> Result<HeaderMap, SyncError> {
    let mut map = HeaderMap::new();
    for (name, value) in headers {
        let header = HeaderName::from_bytes(name.trim().as_bytes()).map_err(|_| {
            SyncError::new(SyncErrorKind::InvalidConfig, format!("{name:?} is not a valid header name"))
        })?;
        let mut value = HeaderValue::from_str(value.trim()).map_err(|_| {
            SyncError::new(SyncErrorKind::InvalidConfig, format!("the value of header {name:?} is not valid"))
        })?;
        value.set_sensitive(true);
        map.append(header, value);
    }
    Ok(map)
}

pub(crate) fn status_error(status: u16, doing: &str) -> SyncError {
    let kind = if matches!(status, 401 | 403) { SyncErrorKind::AuthFailure } else { SyncErrorKind::HttpStatus };
    let note = if (300..400).contains(&status) { " (redirects to another origin are not followed)" } else { "" };
    SyncError::new(kind, format!("HTTP {status} while {doing}{note}"))
}

/// Sorts a reqwest failure; an egress refusal anywhere in its cause chain (at resolution or on a
/// redirect hop) wins over what reqwest calls it.
pub(crate) fn from_reqwest(e: &reqwest::Error, doing: &str) -> SyncError {
    if let Some(refusal) = refusal_in(e) {
        return SyncError::new(SyncErrorKind::EgressRefused, format!("{doing}: {refusal}"));
    }
    let kind = if e.is_timeout() {
        SyncErrorKind::Timeout
    } else if e.is_connect() {
        SyncErrorKind::Unreachable
    } else if e.is_builder() {
        SyncErrorKind::InvalidConfig
    } else if e.is_redirect() || e.is_decode() || e.is_body() {
        SyncErrorKind::Protocol
    } else if let Some(status) = e.status() {
        return status_error(status.as_u16(), doing);
    } else {
        SyncErrorKind::Unreachable
    };
    SyncError::new(kind, format!("{doing}: {}", describe(e)))
}

/// The error and its causes on one line, without the URL (it may carry a token in its query).
pub(crate) fn describe(e: &(dyn std::error::Error + 'static)) -> String {
    let mut parts = Vec::new();
    let mut current = Some(e);
    while let Some(err) = current {
        let text = match err.downcast_ref::<reqwest::Error>() {
            Some(r) => r.to_string().split(" for url (").next().unwrap_or_default().to_owned(),
            None => err.to_string(),
        };
        if !text.is_empty() && !parts.iter().any(|p: &String| p.contains(&text)) {
            parts.push(text);
        }
        current = err.source();
    }
    parts.join(": ")
}
