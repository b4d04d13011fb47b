//! Shapes shared by every resource on the wire (CONTRACT §1.4, §1.5): metadata out and in,
//! list envelopes, and the empty `{}` response.

use axum::Json;
use cadenza_domain::ids::IdKind;
use cadenza_domain::mask::UpdateMask;
use cadenza_domain::page::Page;
use cadenza_domain::time::format_ms;
use cadenza_domain::{Error, Labels, Meta, Result, labels, within_chars};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// `ResourceMetadata` (workspace resources).
#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ResourceMetadata {
    pub id: String,
    pub account_id: String,
    pub workspace_id: String,
    pub name: String,
    pub profile_id: String,
    pub created_at: String,
    pub updated_at: String,
    pub external_id: String,
    pub labels: Labels,
    pub bundle_key: String,
}

/// `OperationMetadata` (records made by execution: feedback, deliveries, events): no name.
#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct OperationMetadata {
    pub id: String,
    pub account_id: String,
    pub workspace_id: String,
    pub profile_id: String,
    pub created_at: String,
    pub external_id: String,
    pub labels: Labels,
}

/// `OperationMetadata` of a workspace record.
pub fn operation_meta(m: &Meta, workspace_id: &str) -> OperationMetadata {
    OperationMetadata {
        id: m.id.clone(),
        account_id: m.account_id.clone(),
        workspace_id: workspace_id.to_string(),
        profile_id: m.profile_id.clone(),
        created_at: format_ms(m.created_at),
        external_id: m.external_id.clone(),
        labels: m.labels.clone(),
    }
}

/// `AccountResourceMetadata` (account, workspaces, API keys, profiles).
#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(rename = "AccountResourceMetadata")]
pub struct AccountMetadata {
    pub id: String,
    pub account_id: String,
    pub name: String,
    pub profile_id: String,
    pub external_id: String,
    pub labels: Labels,
    pub created_at: String,
    pub updated_at: String,
}

/// `ResourceMetadata` of a workspace resource.
pub fn resource_meta(m: &Meta, workspace_id: &str) -> ResourceMetadata {
    ResourceMetadata {
        id: m.id.clone(),
        account_id: m.account_id.clone(),
        workspace_id: workspace_id.to_string(),
        name: m.name.clone(),
        profile_id: m.profile_id.clone(),
        created_at: format_ms(m.created_at),
        updated_at: format_ms(m.updated_at),
        external_id: m.external_id.clone(),
        labels: m.labels.clone(),
        bundle_key: String::new(),
    }
}

/// `AccountResourceMetadata` of an account-level record.
pub fn account_meta(m: &Meta) -> AccountMetadata {
    AccountMetadata {
        id: m.id.clone(),
        account_id: m.account_id.clone(),
        name: m.name.clone(),
        profile_id: m.profile_id.clone(),
        external_id: m.external_id.clone(),
        labels: m.labels.clone(),
        created_at: format_ms(m.created_at),
        updated_at: format_ms(m.updated_at),
    }
}

/// Metadata as a client sends it on create or update. Read-only fields a client echoes back
/// (`id`, `createdAt`, …) are ignored.
#[derive(Debug, Default, Clone, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(rename = "MetadataRequest")]
pub struct MetadataIn {
    pub name: Option<String>,
    /// At most 256 characters, no `/`, whitespace or control characters.
    // `default` only tells schemars the field may be left out, as the `Option` did before
    // `schema_with` hid it.
    #[serde(default)]
    #[schemars(schema_with = "external_id_or_null")]
    pub external_id: Option<String>,
    /// At most 64 pairs; keys 1–256 characters without `,` or `=`, values at most 256
    /// characters without `,`.
    #[serde(default)]
    #[schemars(schema_with = "labels_or_null")]
    pub labels: Option<Labels>,
}

/// `schema` with `null` besides its type (`null` reads as not sent).
fn or_null(mut schema: serde_json::Value) -> schemars::Schema {
    if let Some(t) = schema.get("type").cloned() {
        schema["type"] = serde_json::json!([t, "null"]);
    }
    schemars::Schema::try_from(schema).unwrap_or_default()
}

fn external_id_or_null(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    or_null(external_id_schema())
}

fn labels_or_null(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    or_null(labels_schema())
}

/// `check_external_id` (`None` and `null` read as empty). Rust's `is_control` is Unicode Cc and
/// its `is_whitespace` Unicode White_Space: both written out, as ECMA-262's `\s` differs.
const EXTERNAL_ID_PATTERN: &str =
    "^[^/\\x00-\\x20\\x7f-\\xa0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000]*$";

/// An external id as `check_external_id` takes it.
pub fn external_id_schema() -> serde_json::Value {
    serde_json::json!({"type": "string", "maxLength": MAX_NAME, "pattern": EXTERNAL_ID_PATTERN})
}

/// Labels as `labels::validate` takes them.
pub fn labels_schema() -> serde_json::Value {
    serde_json::json!({
        "type": "object",
        "maxProperties": labels::MAX_LABELS,
        "propertyNames": {"minLength": 1, "maxLength": labels::MAX_LEN, "pattern": "^[^,=]*$"},
        "additionalProperties": {"type": "string", "maxLength": labels::MAX_LEN, "pattern": "^[^,]*$"},
    })
}

/// The name a create requires (`check_name`): not blank.
pub fn name_schema() -> serde_json::Value {
    serde_json::json!({
        "type": "string",
        "maxLength": MAX_NAME,
        "pattern": cadenza_domain::json_schema::NOT_BLANK_PATTERN,
    })
}

/// Integers read as JSON Schema reads them (`3`, `3.0`, `3e0`): every integer field of a request
/// body takes `#[serde(default, deserialize_with = "crate::wire::integral")]`.
pub use cadenza_domain::serde_ints::{integral, whole_i64};

/// Validated name, external id and labels of a new resource.
pub struct NewMeta {
    pub name: String,
    pub external_id: String,
    pub labels: Labels,
}

impl NewMeta {
    /// The full metadata of a resource of `kind` created now by `profile_id`.
    pub fn into_meta(self, kind: IdKind, now: i64, account_id: &str, profile_id: &str) -> Meta {
        Meta::new(kind, now, account_id, profile_id, self.name, self.external_id, self.labels)
    }
}

/// The longest name and external id, in characters (Unicode scalar values, as JSON Schema's
/// `maxLength` counts them), not bytes.
pub const MAX_NAME: usize = 256;

fn check_name(name: &str) -> Result<()> {
    if name.trim().is_empty() {
        return Err(Error::required("metadata.name", "metadata.name is required"));
    }
    if !within_chars(name, MAX_NAME) {
        return Err(Error::too_long("metadata.name", MAX_NAME));
    }
    Ok(())
}

fn check_external_id(ext: &str) -> Result<()> {
    if !within_chars(ext, MAX_NAME) || ext.chars().any(|c| c == '/' || c.is_control() || c.is_whitespace()) {
        return Err(Error::invalid_field(
            "metadata.externalId",
            format!("metadata.externalId must be at most {MAX_NAME} characters with no '/', whitespace or control characters"),
        )
        .with_meta("maxChars", MAX_NAME.to_string()));
    }
    Ok(())
}

impl MetadataIn {
    /// Validates the metadata of a new operation record (objectives, feedback): no name.
    pub fn into_operation(self) -> Result<NewMeta> {
        let external_id = self.external_id.unwrap_or_default();
        check_external_id(&external_id)?;
        let labels = self.labels.unwrap_or_default();
        labels::validate(&labels)?;
        Ok(NewMeta { name: String::new(), external_id, labels })
    }

    /// Validates create metadata: a name is required.
    pub fn into_new(self) -> Result<NewMeta> {
        let name = self.name.unwrap_or_default();
        check_name(&name)?;
        let external_id = self.external_id.unwrap_or_default();
        check_external_id(&external_id)?;
        let labels = self.labels.unwrap_or_default();
        labels::validate(&labels)?;
        Ok(NewMeta { name, external_id, labels })
    }

    /// Applies an update to the mutable metadata fields under `mask`.
    pub fn apply(self, mask: &UpdateMask, meta: &mut Meta) -> Result<()> {
        if mask.covers("metadata.name", self.name.is_some()) {
            let n = self.name.unwrap_or_default();
            check_name(&n)?;
            meta.name = n;
        }
        if mask.covers("metadata.externalId", self.external_id.is_some()) {
            let e = self.external_id.unwrap_or_default();
            check_external_id(&e)?;
            meta.external_id = e;
        }
        if mask.covers("metadata.labels", self.labels.is_some()) {
            let l = self.labels.unwrap_or_default();
            labels::validate(&l)?;
            meta.labels = l;
        }
        Ok(())
    }
}

/// Applies an update body under `mask` to `row` with `apply`, having first checked the whole
/// body: when a mask is given, `apply` runs once more before, with no mask, on copies, so every
/// field the body sends (not `null`) is held to the rules `apply` holds it to when it applies it
/// (what a field names elsewhere, looked up by the caller afterwards, only when applied). The
/// mask picks what changes, never what is checked: a body is valid or not by itself, whatever
/// its mask, and the document states it in one rule per field (docs/API.md §1.7).
pub fn apply_checked<B: Clone, R: Clone, T, E>(
    body: B,
    mask: &UpdateMask,
    row: &mut R,
    apply: impl Fn(B, &UpdateMask, &mut R) -> std::result::Result<T, E>,
) -> std::result::Result<T, E> {
    if mask.is_given() {
        apply(body.clone(), &UpdateMask::default(), &mut row.clone())?;
    }
    apply(body, mask, row)
}

/// The metadata paths every resource allows in `updateMask`.
pub const METADATA_MASK: [&str; 3] = ["metadata.name", "metadata.externalId", "metadata.labels"];

/// `{items, pagination: {nextCursor}}` (CONTRACT §1.6).
#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(rename = "{T}List")]
pub struct ListResponse<T> {
    pub items: Vec<T>,
    pub pagination: Pagination,
}

#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Pagination {
    pub next_cursor: String,
}

impl<T> ListResponse<T> {
    pub fn from_page<U>(page: Page<U>, f: impl FnMut(U) -> T) -> Json<Self> {
        Json(Self {
            items: page.items.into_iter().map(f).collect(),
            pagination: Pagination { next_cursor: page.next_cursor },
        })
    }
}

/// The `{}` a DELETE returns.
#[derive(Debug, Serialize, JsonSchema)]
pub struct Empty {}

pub fn empty() -> Json<Empty> {
    Json(Empty {})
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::openapi::accepts;
    use serde_json::json;

    fn metadata_schema() -> serde_json::Value {
        let mut g = schemars::generate::SchemaSettings::draft2020_12().into_generator();
        serde_json::to_value(g.root_schema_for::<MetadataIn>()).unwrap_or_default()
    }

    #[test]
    fn external_id_schema_agrees_with_check() {
        let schema = metadata_schema();
        let long = "x".repeat(MAX_NAME);
        let too_long = "x".repeat(MAX_NAME + 1);
        // Characters, not bytes: 256 of three bytes each (768 bytes) fit, 257 do not.
        let wide = "€".repeat(MAX_NAME);
        let too_wide = "€".repeat(MAX_NAME + 1);
        let astral = "🙂".repeat(MAX_NAME);
        for ext in [
            "", "a", "ext-1:é", "\u{feff}", "\u{200b}", "a/b", "a b", "a\tb", "\u{a0}", "\u{85}", "\u{7f}", "\u{9f}",
            "\u{3000}", "\u{2028}", &long, &too_long, &wide, &too_wide, &astral,
        ] {
            let body = json!({"externalId": ext});
            assert_eq!(accepts(&schema, &body), check_external_id(ext).is_ok(), "{ext:?}");
        }
        assert!(accepts(&schema, &json!({"externalId": null, "labels": null, "name": null})));
    }

    #[test]
    fn labels_schema_agrees_with_validate() {
        let schema = metadata_schema();
        let many: Labels = (0..65).map(|i| (format!("k{i}"), String::new())).collect();
        let most: Labels = (0..64).map(|i| (format!("k{i}"), String::new())).collect();
        let one = |k: &str, v: &str| -> Labels { [(k.to_string(), v.to_string())].into_iter().collect() };
        let long = "x".repeat(256);
        let too_long = "x".repeat(257);
        let wide = "€".repeat(256);
        let too_wide = "€".repeat(257);
        for l in [
            one(&wide, &wide),
            one(&too_wide, "v"),
            one("k", &too_wide),
            many,
            most,
            one("", "v"),
            one("k", ""),
            one("a=b", "v"),
            one("a,b", "v"),
            one("k", "a=b"),
            one("k", "a,b"),
            one(&long, &long),
            one(&too_long, "v"),
            one("k", &too_long),
        ] {
            let body = json!({"labels": l});
            assert_eq!(accepts(&schema, &body), labels::validate(&l).is_ok(), "{l:?}");
        }
    }

    #[test]
    fn name_schema_agrees_with_check() {
        let schema = name_schema();
        let long = "n".repeat(MAX_NAME);
        let too_long = "n".repeat(MAX_NAME + 1);
        let wide = "€".repeat(MAX_NAME);
        let too_wide = "€".repeat(MAX_NAME + 1);
        for name in ["", " ", "\u{3000}\t", "a", " a ", "\u{feff}", &long, &too_long, &wide, &too_wide] {
            assert_eq!(accepts(&schema, &json!(name)), check_name(name).is_ok(), "{name:?}");
        }
    }

    #[test]
    fn limits_count_characters_not_bytes() {
        // A 256-character name of 3-byte characters (768 bytes) is taken, 257 characters are not.
        let wide = "€".repeat(MAX_NAME);
        assert_eq!(wide.len(), 3 * MAX_NAME);
        assert!(check_name(&wide).is_ok());
        assert!(check_external_id(&wide).is_ok());
        let too_wide = "€".repeat(MAX_NAME + 1);
        for e in [check_name(&too_wide), check_external_id(&too_wide)] {
            let e = e.err();
            assert_eq!(e.as_ref().and_then(|e| e.metadata.get("maxChars")).map(String::as_str), Some("256"));
            assert!(e.is_some_and(|e| e.message.contains("256 characters")));
        }
        let meta = MetadataIn {
            name: Some(wide.clone()),
            external_id: Some(wide.clone()),
            labels: Some([(wide.clone(), wide.clone())].into_iter().collect()),
        };
        assert!(meta.into_new().is_ok());
    }
}
