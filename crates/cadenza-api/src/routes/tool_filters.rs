//! Validation of the tool filters and approval filters a synced tool set carries (§12.2).

use cadenza_domain::Error;
use serde_json::Value;

use crate::error::ApiResult;

/// Checks one filter (`includeTools`, `excludeTools`) or approval filter (`toolApprovals`).
pub(crate) fn check(field: &str, _key: &str, v: &Value) -> ApiResult<()> {
    if !v.is_object() {
        return Err(Error::invalid(format!("{field} must be an object")).into());
    }
    Ok(())
}
