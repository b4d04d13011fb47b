//! List requests and pages (CONTRACT §1.6): opaque cursors, limits, order, prefix and labels.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use crate::error::{Error, Result};
use crate::reasons::Reason;

/// Page size when the client sends none (or a value ≤ 0).
pub const DEFAULT_LIMIT: u32 = 50;
/// The largest page a client can ask for; larger values are clamped.
pub const MAX_LIMIT: u32 = 100;

/// The generic part of every list request, already validated.
#[derive(Debug, Clone, Default)]
pub struct ListParams {
    /// Id of the last item of the previous page; the next page starts after it.
    pub after: Option<String>,
    pub limit: u32,
    pub descending: bool,
    pub prefix: Option<String>,
    pub labels: Vec<(String, String)>,
}

impl ListParams {
    pub fn first(limit: u32) -> Self {
        Self { limit, ..Self::default() }
    }

    /// Builds params from the raw query values.
    pub fn parse(
        cursor: Option<&str>,
        limit: Option<i64>,
        sort_order: Option<&str>,
        prefix: Option<&str>,
        labels: Option<&str>,
    ) -> Result<Self> {
        let after = cursor.filter(|c| !c.is_empty()).map(decode_cursor).transpose()?;
        let limit = match limit {
            None => DEFAULT_LIMIT,
            Some(l) if l <= 0 => DEFAULT_LIMIT,
            Some(l) => u32::try_from(l).unwrap_or(MAX_LIMIT).min(MAX_LIMIT),
        };
        let descending = match sort_order.map(str::to_ascii_lowercase).as_deref() {
            None | Some("") | Some("asc") | Some("ascending") => false,
            Some("desc") | Some("descending") => true,
            Some(other) => {
                return Err(Error::of(
                    Reason::QueryInvalid,
                    format!("sortOrder must be \"asc\" or \"desc\", not {other:?}"),
                )
                .with_meta("parameter", "sortOrder"));
            }
        };
        let labels = labels.map(crate::labels::parse_filter).transpose()?.unwrap_or_default();
        Ok(Self { after, limit, descending, prefix: prefix.filter(|p| !p.is_empty()).map(str::to_string), labels })
    }
}

/// One page of results and the cursor for the next (empty on the last page).
#[derive(Debug, Clone)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next_cursor: String,
}

impl<T> Page<T> {
    /// Builds a page from up to `limit + 1` fetched rows: the extra row only proves there is more.
    pub fn from_overfetch(mut rows: Vec<T>, limit: u32, id_of: impl Fn(&T) -> &str) -> Self {
        let limit = limit as usize;
        let next_cursor = if rows.len() > limit {
            rows.truncate(limit);
            rows.last().map(|r| encode_cursor(id_of(r))).unwrap_or_default()
        } else {
            String::new()
        };
        Self { items: rows, next_cursor }
    }

    pub fn map<U>(self, f: impl FnMut(T) -> U) -> Page<U> {
        Page { items: self.items.into_iter().map(f).collect(), next_cursor: self.next_cursor }
    }
}

const CURSOR_TAG: &str = "c1:";

pub fn encode_cursor(last_id: &str) -> String {
    URL_SAFE_NO_PAD.encode(format!("{CURSOR_TAG}{last_id}"))
}

/// Exactly the `sortOrder` values `ListParams::parse` accepts (any case; empty is the default).
pub const SORT_ORDER_PATTERN: &str =
    "^(?:[Aa][Ss][Cc](?:[Ee][Nn][Dd][Ii][Nn][Gg])?|[Dd][Ee][Ss][Cc](?:[Ee][Nn][Dd][Ii][Nn][Gg])?)?$";

/// Exactly the cursors `decode_cursor` accepts (ECMA-262, for the OpenAPI document): base64url
/// of the tag (`YzE6`) and a non-empty rest, padding optional; empty is the first page.
pub const CURSOR_PATTERN: &str = "^(?:YzE6(?:[A-Za-z0-9_-]{4})*[A-Za-z0-9_-]{2,4}=*)?$";

/// Decodes what `CURSOR_PATTERN` describes: unused trailing bits and bytes that are not UTF-8
/// are tolerated, so every cursor of that shape reads as a position (at worst past the end).
const CURSOR_DECODER: base64::engine::GeneralPurpose = base64::engine::GeneralPurpose::new(
    &base64::alphabet::URL_SAFE,
    base64::engine::GeneralPurposeConfig::new()
        .with_decode_allow_trailing_bits(true)
        .with_decode_padding_mode(base64::engine::DecodePaddingMode::RequireNone),
);

pub fn decode_cursor(raw: &str) -> Result<String> {
    let bad = || Error::of(Reason::CursorInvalid, "invalid cursor");
    let bytes = CURSOR_DECODER.decode(raw.trim_end_matches('=')).map_err(|_| bad())?;
    let text = String::from_utf8_lossy(&bytes);
    text.strip_prefix(CURSOR_TAG).filter(|id| !id.is_empty()).map(str::to_string).ok_or_else(bad)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursor_round_trip_and_limits() {
        let p = ListParams::parse(Some(&encode_cursor("apikey_X")), Some(1000), Some("DESC"), None, None)
            .unwrap_or_default();
        assert_eq!(p.after.as_deref(), Some("apikey_X"));
        assert_eq!(p.limit, MAX_LIMIT);
        assert!(p.descending);
        assert_eq!(ListParams::parse(None, Some(0), None, None, None).map(|p| p.limit).ok(), Some(DEFAULT_LIMIT));
        let reason = |r: Result<ListParams>| r.err().map(|e| e.reason);
        assert_eq!(reason(ListParams::parse(Some("!!"), None, None, None, None)), Some(Reason::CursorInvalid));
        assert_eq!(reason(ListParams::parse(None, None, Some("sideways"), None, None)), Some(Reason::QueryInvalid));
        assert_eq!(reason(ListParams::parse(None, None, None, None, Some("novalue"))), Some(Reason::QueryInvalid));
    }

    /// The documented cursor pattern accepts exactly what `decode_cursor` accepts.
    #[test]
    fn cursor_pattern_agrees_with_decode() {
        let Ok(v) = jsonschema::validator_for(&serde_json::json!({"type": "string", "pattern": CURSOR_PATTERN})) else {
            panic!("the cursor pattern compiles")
        };
        let good = encode_cursor("agent_01ARZ3NDEKTSV4RRFFQ69G5FAV");
        for s in [good.clone(), format!("{good}=="), "YzE6AB".into(), "YzE6_-_".into(), "YzE6//".into(), "YzE6A".into()]
            .into_iter()
            .chain(["YzE6", "", "c1:x", "YzE7AAAA", "YzE6AAAAA", "!!", "YzE6AA\n"].map(String::from))
        {
            let parsed = ListParams::parse(Some(&s), None, None, None, None).is_ok();
            assert_eq!(v.is_valid(&serde_json::json!(s)), parsed, "{s:?}");
        }
        let Ok(v) = jsonschema::validator_for(&serde_json::json!({"type": "string", "pattern": SORT_ORDER_PATTERN}))
        else {
            panic!("the sort order pattern compiles")
        };
        for s in ["", "asc", "DESC", "Descending", "ascending", "up", "asc ", "descend"] {
            let parsed = ListParams::parse(None, None, Some(s), None, None).is_ok();
            assert_eq!(v.is_valid(&serde_json::json!(s)), parsed, "{s:?}");
        }
    }

    #[test]
    fn overfetch_sets_cursor_only_when_more() {
        let p = Page::from_overfetch(vec!["a".to_string(), "b".into(), "c".into()], 2, |s| s);
        assert_eq!(p.items.len(), 2);
        assert_eq!(p.next_cursor, encode_cursor("b"));
        let last = Page::from_overfetch(vec!["a".to_string()], 2, |s| s);
        assert_eq!(last.next_cursor, "");
    }
}
