//! JSON Schema checks for schemas clients store (agent input schemas, output definitions):
//! draft 2020-12 unless the schema names another draft; never fetches a remote `$ref` (the
//! jsonschema crate is built without its HTTP and file resolvers, so such a schema is refused).

use serde_json::Value;

use crate::error::{Error, Result};
use crate::reasons::Reason;

/// Exactly the strings `str::trim` leaves non-empty (ECMA-262, for the OpenAPI document): one
/// character outside Rust's whitespace (Unicode White_Space; unlike ECMA's `\s`, U+FEFF counts).
pub const NOT_BLANK_PATTERN: &str =
    "[^\\t\\n\\v\\f\\r \\u0085\\u00a0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000]";

/// Checks that `schema` is a JSON object and a valid, self-contained JSON Schema. `field` names
/// it in the error message.
pub fn check(field: &str, schema: &Value) -> Result<()> {
    if !schema.is_object() {
        return Err(schema_error(Reason::SchemaInvalid, field, format!("{field} must be a JSON Schema object")));
    }
    if let Err(e) = jsonschema::meta::validate(schema) {
        let message = format!("{field} is not a valid JSON Schema: {e} (at {})", e.instance_path());
        return Err(schema_error(Reason::SchemaInvalid, field, message));
    }
    jsonschema::validator_for(schema)
        .map(|_| ())
        .map_err(|e| schema_error(Reason::SchemaInvalid, field, format!("{field} is not a usable JSON Schema: {e}")))
}

fn schema_error(reason: Reason, field: &str, message: String) -> Error {
    Error::of(reason, message).with_meta("field", field)
}

/// Checks `instance` against a stored `schema` (already accepted by [`check`]); the error names
/// `field` and the first failing location.
pub fn validate(field: &str, schema: &Value, instance: &Value) -> Result<()> {
    let validator = jsonschema::validator_for(schema).map_err(|e| {
        schema_error(Reason::SchemaInvalid, field, format!("the agent's schema for {field} is unusable: {e}"))
    })?;
    match validator.iter_errors(instance).next() {
        None => Ok(()),
        Some(e) => {
            let at = e.instance_path().to_string();
            let at = if at.is_empty() { "the top level".to_string() } else { at };
            let message = format!("{field} does not match the agent's input schema at {at}: {e}");
            Err(schema_error(Reason::SchemaMismatch, field, message))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn accepts_ordinary_schemas() {
        let s = json!({"type": "object", "properties": {"customer": {"type": "string"}}, "required": ["customer"],
                       "$defs": {"x": {"type": "integer"}}, "additionalProperties": {"$ref": "#/$defs/x"}});
        assert!(check("inputDataSchema", &s).is_ok());
        assert!(check("s", &json!({})).is_ok());
    }

    #[test]
    fn refuses_bad_schemas_without_panicking() {
        for bad in [
            json!([1, 2]),
            json!("string"),
            json!({"type": 5}),
            json!({"type": "strnig"}),
            json!({"pattern": "("}),
            json!({"$ref": "https://example.com/schema.json"}),
            json!({"$ref": "#/$defs/missing"}),
            json!({"minimum": "ten"}),
        ] {
            let r = std::panic::catch_unwind(|| check("s", &bad));
            assert!(matches!(r, Ok(Err(_))), "{bad} must be refused cleanly: {r:?}");
        }
    }

    #[test]
    fn validates_instances() {
        let s = json!({"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]});
        assert!(validate("data", &s, &json!({"n": 3})).is_ok());
        let err = validate("data", &s, &json!({"n": "x"})).expect_err("wrong type");
        assert!(err.message.contains("/n"), "{}", err.message);
        assert_eq!(err.reason, Reason::SchemaMismatch);
        assert_eq!(check("s", &json!({"type": 5})).map_err(|e| e.reason), Err(Reason::SchemaInvalid));
        assert!(validate("data", &s, &json!({})).is_err());
    }
}

#[cfg(test)]
mod pattern_tests {
    use super::*;

    #[test]
    fn not_blank_pattern_agrees_with_trim() {
        let Ok(v) = jsonschema::validator_for(&serde_json::json!({"type": "string", "pattern": NOT_BLANK_PATTERN}))
        else {
            panic!("the pattern compiles")
        };
        for s in ["", " ", "\t\n", "\u{3000}", "\u{feff}", "\u{85}", "\u{200b}", "a", " a ", "\u{a0}x"] {
            assert_eq!(v.is_valid(&serde_json::json!(s)), !s.trim().is_empty(), "{s:?}");
        }
    }
}
