//! Shapes shared by every resource on the wire (CONTRACT §1.4, §1.5): metadata out and in,
//! list envelopes, and the empty `{}` response.

use axum::Json;
use cadenza_domain::ids::IdKind;
use cadenza_domain::mask::UpdateMask;
use cadenza_domain::page::Page;
use cadenza_domain::time::format_ms;
use cadenza_domain::{Error, Labels, Meta, Result, labels};
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
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(rename = "MetadataRequest")]
pub struct MetadataIn {
    pub name: Option<String>,
    pub external_id: Option<String>,
    pub labels: Option<Labels>,
}

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

const MAX_NAME: usize = 256;

fn check_name(name: &str) -> Result<()> {
    if name.trim().is_empty() {
        return Err(Error::required("metadata.name", "metadata.name is required"));
    }
    if name.len() > MAX_NAME {
        return Err(Error::invalid_field("metadata.name", format!("metadata.name must be at most {MAX_NAME} bytes"))
            .with_meta("maxBytes", MAX_NAME.to_string()));
    }
    Ok(())
}

fn check_external_id(ext: &str) -> Result<()> {
    if ext.len() > MAX_NAME || ext.chars().any(|c| c == '/' || c.is_control() || c.is_whitespace()) {
        return Err(Error::invalid_field(
            "metadata.externalId",
            "metadata.externalId must be at most 256 bytes with no '/', whitespace or control characters",
        )
        .with_meta("maxBytes", MAX_NAME.to_string()));
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
