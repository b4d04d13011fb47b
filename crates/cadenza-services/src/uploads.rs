//! Uploads: a PENDING upload is completed once, by the first PUT while its link is valid; it is
//! consumed once, by the write that uses its bytes (`memory::write_entry`, tool sets), and
//! expired by the maintenance pass.
//!
//! Locks: none read before writing here; completion is a compare-and-set on the row (status
//! PENDING and the link unexpired), so of two racing PUTs exactly one wins.

use cadenza_domain::Error;
use cadenza_domain::reasons::Reason;
use cadenza_domain::uploads::Upload;
use cadenza_store::Tx;

use crate::Result;

pub async fn create(tx: &mut Tx, u: &Upload) -> Result<()> {
    tx.insert_upload(u).await?;
    Ok(())
}

/// PENDING → COMPLETE with its bytes at `object_key`, kept for `retention_ms` unused. Refused
/// when another PUT won or the link expired (the caller then removes its object).
pub async fn complete(
    tx: &mut Tx,
    workspace_id: &str,
    upload_id: &str,
    object_key: &str,
    retention_ms: i64,
) -> Result<()> {
    if !tx.complete_upload(workspace_id, upload_id, object_key, retention_ms).await? {
        return Err(Error::of(Reason::UploadConsumed, "this upload link was already used or has expired")
            .with_meta("uploadId", upload_id));
    }
    Ok(())
}
