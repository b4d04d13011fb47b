//! The document's own string formats, for values whose validity JSON Schema cannot state but
//! the server checks exactly: a Liquid template (it must parse), a Rust regex (it must compile)
//! and an outbound http(s) URL (it must parse as a URL and pass the egress policy). Each is a
//! `format` beside the part of the rule JSON Schema can state (a pattern, a length), so a
//! validator that does not know the format still checks that much; docs/API.md defines each
//! one, and the property-based tests generate values of each from their own strategies
//! (tests/schemathesis/hooks.py), since a generator cannot derive them from the schema.

use serde_json::{Value, json};

use crate::openapi::TRIMMED;

/// A Liquid template as `variations::check_template` parses it (the standard tags and filters).
pub const LIQUID_TEMPLATE: &str = "liquid-template";
/// A regular expression in Rust's `regex` syntax that compiles within the matcher's size limit.
pub const RUST_REGEX: &str = "rust-regex";
/// An absolute http(s) URL the WHATWG URL standard parses, whose host the egress policy does not
/// refuse at write time.
pub const HTTP_URL: &str = "http-url";

/// A string holding a Liquid template.
pub fn liquid_template() -> Value {
    json!({"type": "string", "format": LIQUID_TEMPLATE})
}

/// A string holding a regex of at most `max_chars` characters.
pub fn rust_regex(max_chars: usize) -> Value {
    json!({"type": "string", "format": RUST_REGEX, "maxLength": max_chars})
}

/// What `tool_sets::check_url` takes of a URL (an `http://` or `https://` prefix, something
/// after it that does not start with `/`, no whitespace anywhere), with the format for the rest.
pub fn http_url() -> Value {
    json!({"type": "string", "format": HTTP_URL, "pattern": format!("^https?://[^/{TRIMMED}][^{TRIMMED}]*$")})
}
