//! Integers of request bodies read as JSON Schema reads them. JSON Schema's `integer` is any
//! number with no fractional part, however it is written: `3`, `3.0` and `3e0` are all the
//! integer 3. serde's own `i32`/`i64` take only the first, so a body the OpenAPI document calls
//! valid would be a 400. Every integer field of a request body reads through [`integral`]:
//!
//! ```text
//! #[serde(default, deserialize_with = "cadenza_domain::serde_ints::integral")]
//! weight: Option<i32>,
//! ```
//!
//! A fraction (`3.5`), a value out of the field's range, or anything not a number (`"3"`) is
//! refused as before: a deserialisation error, which the API answers with 400 `BODY_INVALID`.

use serde::{Deserialize, Deserializer};
use serde_json::Number;

/// A JSON number as JSON Schema's `integer` reads it, when it fits an `i64`: `3`, and also `3.0`
/// or `3e0` (no fractional part; written with a fraction or an exponent, only up to 2^53, where
/// a double still holds every whole number exactly).
pub fn whole_i64(n: &Number) -> Option<i64> {
    match n.as_i64() {
        Some(i) => Some(i),
        None => n.as_f64().filter(|f| f.fract() == 0.0 && f.abs() <= 2f64.powi(53)).map(|f| f as i64),
    }
}

/// An optional integer field of type `T` (`i32`, `i64`, `u32`, …) read as JSON Schema's
/// `integer`: any whole number in `T`'s range, however written; `null` reads as not sent (with
/// `#[serde(default)]`, so does a missing field).
pub fn integral<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: TryFrom<i64>,
{
    let Some(n) = Option::<Number>::deserialize(d)? else { return Ok(None) };
    whole_i64(&n).and_then(|i| T::try_from(i).ok()).map(Some).ok_or_else(|| {
        serde::de::Error::custom(format!(
            "invalid value: {n}, expected a whole number that fits {}",
            std::any::type_name::<T>()
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    #[derive(Debug, Deserialize)]
    struct Ints {
        #[serde(default, deserialize_with = "integral")]
        small: Option<i32>,
        #[serde(default, deserialize_with = "integral")]
        big: Option<i64>,
        #[serde(default, deserialize_with = "integral")]
        unsigned: Option<u32>,
    }

    fn read(text: &str) -> Option<(Option<i32>, Option<i64>, Option<u32>)> {
        // Through the text (the `JsonBody` path) and through a `Value` (the `:verb` path) alike.
        let from_text = serde_json::from_str::<Ints>(text).ok().map(|i| (i.small, i.big, i.unsigned));
        let value: Value = serde_json::from_str(text).unwrap_or_default();
        let from_value = serde_json::from_value::<Ints>(value).ok().map(|i| (i.small, i.big, i.unsigned));
        assert_eq!(from_text, from_value, "{text}");
        from_text
    }

    #[test]
    fn whole_numbers_however_written() {
        for text in [r#"{"small": 3}"#, r#"{"small": 3.0}"#, r#"{"small": 3e0}"#, r#"{"small": 0.3e1}"#] {
            assert_eq!(read(text), Some((Some(3), None, None)), "{text}");
        }
        assert_eq!(read(r#"{"big": 86400.0, "unsigned": 7E2}"#), Some((None, Some(86_400), Some(700))));
        assert_eq!(read(r#"{"small": -13580.0}"#), Some((Some(-13_580), None, None)));
        assert_eq!(read(r#"{"small": -0.0}"#), Some((Some(0), None, None)));
        assert_eq!(read(r#"{"small": null, "big": null}"#), Some((None, None, None)));
        assert_eq!(read("{}"), Some((None, None, None)));
        assert_eq!(
            read(r#"{"small": -2147483648, "big": 9223372036854775807}"#),
            Some((Some(i32::MIN), Some(i64::MAX), None))
        );
    }

    #[test]
    fn fractions_out_of_range_and_other_types_are_refused() {
        for text in [
            r#"{"small": 3.5}"#,
            r#"{"small": 1e-1}"#,
            r#"{"small": "3"}"#,
            r#"{"small": true}"#,
            r#"{"small": [3]}"#,
            r#"{"small": {}}"#,
            r#"{"small": 2147483648}"#,
            r#"{"small": 2147483648.0}"#,
            r#"{"small": -2147483649}"#,
            r#"{"big": 9223372036854775808}"#,
            r#"{"big": 1e300}"#,
            r#"{"unsigned": -1}"#,
            r#"{"unsigned": 4294967296}"#,
        ] {
            assert_eq!(read(text), None, "{text}");
        }
        let e = serde_json::from_str::<Ints>(r#"{"small": 3.5}"#).err().map(|e| e.to_string()).unwrap_or_default();
        assert!(e.contains("3.5") && e.contains("i32"), "{e}");
    }

    #[test]
    fn whole_i64_reads_json_schema_integers() {
        let n = |v: Value| v.as_number().and_then(whole_i64);
        assert_eq!(n(json!(3)), Some(3));
        assert_eq!(n(json!(3.0)), Some(3));
        assert_eq!(n(serde_json::from_str("1e3").unwrap_or_default()), Some(1000));
        assert_eq!(n(json!(i64::MAX)), Some(i64::MAX));
        assert_eq!(n(json!(3.5)), None);
        assert_eq!(n(json!(u64::MAX)), None);
        assert_eq!(n(json!(1e300)), None);
    }
}
