//! Validation of the tool filters and approval filters a synced tool set carries (§12.2),
//! with the same types the sync applies them with, so what is accepted is what runs.

use cadenza_adapters::filters::{ApprovalRequirementFilter, ToolFilter};
use cadenza_domain::{Error, Reason};
use serde_json::Value;

use crate::error::ApiResult;

/// Checks one filter (`includeTools`, `excludeTools`) or approval filter (`toolApprovals`).
pub(crate) fn check(field: &str, key: &str, v: &Value) -> ApiResult<()> {
    let bad = |e: serde_json::Error| Error::invalid_field(field, format!("{field} is not a valid filter: {e}"));
    // The adapter layer's error names the field in its text; the reason names it too.
    let refused = |e| Error::from(e).with_reason(Reason::FieldInvalid).with_meta("field", field);
    if key == "toolApprovals" {
        let f: ApprovalRequirementFilter = crate::strict_json::from_value(v).map_err(bad)?;
        f.validate(field).map_err(refused)?;
    } else {
        let f: ToolFilter = crate::strict_json::from_value(v).map_err(bad)?;
        f.validate(field).map_err(refused)?;
    }
    Ok(())
}
