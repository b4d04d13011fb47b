//! Labels: validation on write and the `labels=k=v,k2=v2` list filter (CONTRACT §1.6).

use crate::Labels;
use crate::error::{Error, Result, within_chars};
use crate::reasons::Reason;

/// The most labels a resource carries.
pub const MAX_LABELS: usize = 64;
/// The longest label key or value, in characters (Unicode scalar values, as JSON Schema's
/// `maxLength` counts them), not bytes.
pub const MAX_LEN: usize = 256;
const FIELD: &str = "metadata.labels";

/// Rejects label maps a client could use to bloat storage or that cannot be filtered on.
pub fn validate(labels: &Labels) -> Result<()> {
    if labels.len() > MAX_LABELS {
        return Err(Error::invalid_field(FIELD, format!("at most {MAX_LABELS} labels are allowed"))
            .with_meta("limit", MAX_LABELS.to_string()));
    }
    for (k, v) in labels {
        if k.is_empty() || !within_chars(k, MAX_LEN) || !within_chars(v, MAX_LEN) {
            return Err(Error::invalid_field(
                FIELD,
                format!("label keys must be 1 to {MAX_LEN} characters and values at most {MAX_LEN} characters"),
            )
            .with_meta("maxChars", MAX_LEN.to_string()));
        }
        if k.contains([',', '=']) || v.contains(',') {
            return Err(Error::invalid_field(FIELD, format!("label {k:?} may not contain ',' (or '=' in the key)")));
        }
    }
    Ok(())
}

/// Exactly the filters `parse_filter` accepts (ECMA-262): comma-separated `key=value` pairs,
/// the key not blank; blank pieces are skipped. "Blank" is Rust's `trim`, Unicode White_Space,
/// written out: `\s` differs between regex dialects (ECMA-262's has U+FEFF and lacks U+0085),
/// and the fuzzer reads the document's patterns as ECMA-262 does.
pub const FILTER_PATTERN: &str = "^(?:[\\t\\n\\v\\f\\r \\u0085\\u00a0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000]*|[^,=]*[^,=\\t\\n\\v\\f\\r \\u0085\\u00a0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000][^,=]*=[^,]*)(?:,(?:[\\t\\n\\v\\f\\r \\u0085\\u00a0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000]*|[^,=]*[^,=\\t\\n\\v\\f\\r \\u0085\\u00a0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000][^,=]*=[^,]*))*$";

/// Parses the list filter: every `k=v` pair must match exactly.
pub fn parse_filter(raw: &str) -> Result<Vec<(String, String)>> {
    raw.split(',')
        .filter(|p| !p.trim().is_empty())
        .map(|pair| {
            pair.split_once('=')
                .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
                .filter(|(k, _)| !k.is_empty())
                .ok_or_else(|| {
                    Error::of(Reason::QueryInvalid, format!("labels filter {pair:?} is not key=value"))
                        .with_meta("parameter", "labels")
                })
        })
        .collect()
}

/// Whether `labels` carries every pair of `filter`.
pub fn matches(labels: &Labels, filter: &[(String, String)]) -> bool {
    filter.iter().all(|(k, v)| labels.get(k) == Some(v))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filter_requires_every_pair() {
        let f = parse_filter("env=prod, team=core").unwrap_or_default();
        let mut l = Labels::new();
        l.insert("env".into(), "prod".into());
        assert!(!matches(&l, &f));
        l.insert("team".into(), "core".into());
        assert!(matches(&l, &f));
        assert!(parse_filter("nope").is_err());
    }

    #[test]
    fn limits_count_characters_not_bytes() {
        let one = |k: String, v: String| -> Labels { [(k, v)].into_iter().collect() };
        // 256 characters of three bytes each (768 bytes) fit; 257 do not.
        let most = "€".repeat(MAX_LEN);
        let over = "€".repeat(MAX_LEN + 1);
        assert!(validate(&one(most.clone(), most.clone())).is_ok());
        for l in [one(over.clone(), "v".into()), one("k".into(), over.clone())] {
            let e = validate(&l).err();
            assert_eq!(e.as_ref().and_then(|e| e.metadata.get("maxChars")).map(String::as_str), Some("256"));
        }
        // Four-byte characters count once too.
        assert!(validate(&one("🙂".repeat(MAX_LEN), "🙂".repeat(MAX_LEN))).is_ok());
    }

    #[test]
    fn filter_pattern_agrees_with_parse() {
        let Ok(v) = jsonschema::validator_for(&serde_json::json!({"type": "string", "pattern": FILTER_PATTERN})) else {
            panic!("the filter pattern compiles")
        };
        for s in [
            "",
            "a=b",
            "a=",
            " a = b ,c=d",
            "a=b,,",
            ",",
            "=b",
            " =b",
            "a",
            "a=b,c",
            "a=b=c",
            "a\n=b",
            "\u{85}=b",
            "\u{85}",
            "\u{feff}=b",
            "\u{3000}=b",
            "\u{a0}a=b",
            "\u{200b}=b",
            "\u{2029},a=b",
        ] {
            assert_eq!(v.is_valid(&serde_json::json!(s)), parse_filter(s).is_ok(), "{s:?}");
        }
    }
}
