//! Where the subschemas of a JSON Schema sit. Both the 3.0 normaliser and the tool builder must
//! tell a schema keyword from a property name or an example value, so they walk by keyword.

use serde_json::{Map, Value};

/// Keywords whose value is one schema.
pub const SINGLE: &[&str] = &[
    "items",
    "additionalItems",
    "additionalProperties",
    "unevaluatedItems",
    "unevaluatedProperties",
    "not",
    "if",
    "then",
    "else",
    "contains",
    "propertyNames",
    "contentSchema",
];

/// Keywords whose value is an array of schemas.
pub const LIST: &[&str] = &["allOf", "anyOf", "oneOf", "prefixItems"];

/// Keywords whose value maps names to schemas.
pub const MAP: &[&str] = &["properties", "patternProperties", "dependentSchemas", "$defs", "definitions"];

/// Calls `f` on every direct subschema of `schema` (an `items` array counts as a list).
pub fn for_each_child_mut(schema: &mut Map<String, Value>, f: &mut dyn FnMut(&mut Value)) {
    for (key, value) in schema.iter_mut() {
        let key = key.as_str();
        if SINGLE.contains(&key) {
            match value {
                Value::Array(items) if key == "items" => items.iter_mut().for_each(&mut *f),
                other => f(other),
            }
        } else if LIST.contains(&key) {
            if let Value::Array(items) = value {
                items.iter_mut().for_each(&mut *f);
            }
        } else if MAP.contains(&key)
            && let Value::Object(members) = value
        {
            members.values_mut().for_each(&mut *f);
        }
    }
}
