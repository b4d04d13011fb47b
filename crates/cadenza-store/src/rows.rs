//! Small conversions shared by the area modules.

use cadenza_domain::Labels;

use crate::{StoreError, StoreResult};

pub(crate) fn labels_from(json: &str) -> StoreResult<Labels> {
    serde_json::from_str(json).map_err(|e| StoreError::Corrupt(format!("labels: {e}")))
}

pub(crate) fn labels_to(labels: &Labels) -> String {
    serde_json::to_string(labels).unwrap_or_else(|_| "{}".to_string())
}

pub(crate) fn strings_from(json: &str) -> StoreResult<Vec<String>> {
    serde_json::from_str(json).map_err(|e| StoreError::Corrupt(format!("string list: {e}")))
}

pub(crate) fn strings_to(list: &[String]) -> String {
    serde_json::to_string(list).unwrap_or_else(|_| "[]".to_string())
}

/// `WHERE` clause fragment for `IdRef` lookups: by id or by external id.
pub(crate) fn id_ref_column(r: &cadenza_domain::IdRef) -> (&'static str, String) {
    match r {
        cadenza_domain::IdRef::Id(id) => ("id", id.clone()),
        cadenza_domain::IdRef::External(ext) => ("external_id", ext.clone()),
    }
}

/// The metadata columns every resource table has, decoded as one piece.
#[derive(sqlx::FromRow)]
pub(crate) struct MetaRow {
    pub(crate) id: String,
    pub(crate) account_id: String,
    pub(crate) name: String,
    pub(crate) external_id: String,
    pub(crate) labels: String,
    pub(crate) profile_id: String,
    pub(crate) created_at: i64,
    pub(crate) updated_at: i64,
}

impl MetaRow {
    pub(crate) fn into_meta(self) -> StoreResult<cadenza_domain::Meta> {
        Ok(cadenza_domain::Meta {
            labels: labels_from(&self.labels)?,
            id: self.id,
            account_id: self.account_id,
            name: self.name,
            external_id: self.external_id,
            profile_id: self.profile_id,
            created_at: self.created_at,
            updated_at: self.updated_at,
        })
    }
}

/// Every resource row lists by its metadata.
impl<T: HasMeta> crate::list::Listed for T {
    fn id(&self) -> &str {
        &self.meta_row().id
    }
    fn labels_json(&self) -> &str {
        &self.meta_row().labels
    }
}

pub(crate) trait HasMeta {
    fn meta_row(&self) -> &MetaRow;
}
