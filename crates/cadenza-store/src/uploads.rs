//! Upload rows: created PENDING with a signed URL, completed once by the PUT, consumed once by
//! a memory entry or a tool set, expired by the maintenance pass.

use crate::tx::on_tx;
use crate::{Reads, Tx};
use cadenza_domain::IdRef;
use cadenza_domain::uploads::{Upload, UploadStatus};

use crate::list::{Bind, ListQuery};
use crate::rows::{HasMeta, MetaRow, id_ref_column, labels_to};
use crate::{StoreError, StoreResult};

#[derive(sqlx::FromRow)]
struct UploadRow {
    #[sqlx(flatten)]
    meta: MetaRow,
    workspace_id: String,
    filename: String,
    content_type: String,
    size_bytes: i64,
    status: String,
    url_expires_at: i64,
    object_key: String,
}

impl HasMeta for UploadRow {
    fn meta_row(&self) -> &MetaRow {
        &self.meta
    }
}

impl UploadRow {
    fn into_domain(self) -> StoreResult<Upload> {
        Ok(Upload {
            meta: self.meta.into_meta()?,
            workspace_id: self.workspace_id,
            filename: self.filename,
            content_type: self.content_type,
            size_bytes: self.size_bytes,
            status: UploadStatus::from_db(&self.status),
            url_expires_at: self.url_expires_at,
            object_key: self.object_key,
        })
    }
}

const SELECT: &str = "SELECT id, account_id, workspace_id, name, external_id, labels, profile_id, created_at, updated_at, \
     filename, content_type, size_bytes, status, url_expires_at, object_key FROM uploads WHERE 1 = 1";

/// What the expiry pass found to do.
#[derive(Debug, Clone, Default)]
pub struct ExpiredUploads {
    /// Uploads that became EXPIRED.
    pub expired: usize,
    /// Object keys whose bytes are no longer needed (expired or consumed uploads).
    pub orphaned_objects: Vec<String>,
}

impl Reads {
    pub async fn get_upload(&self, workspace_id: &str, r: &IdRef) -> StoreResult<Option<Upload>> {
        let (col, val) = id_ref_column(r);
        let mut q = ListQuery::new(SELECT);
        q.and_eq("workspace_id", Bind::Text(workspace_id.into())).and_eq(col, Bind::Text(val));
        let row: Option<UploadRow> = self.fetch_row(&q).await?;
        row.map(UploadRow::into_domain).transpose()
    }
}

impl Tx {
    pub async fn insert_upload(&mut self, u: &Upload) -> StoreResult<()> {
        on_tx!(self, |tx| {
            sqlx::query(
                "INSERT INTO uploads (id, account_id, workspace_id, name, external_id, labels, profile_id, created_at, \
                 updated_at, filename, content_type, size_bytes, status, url_expires_at, due_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $14)",
            )
            .bind(&u.meta.id)
            .bind(&u.meta.account_id)
            .bind(&u.workspace_id)
            .bind(&u.meta.name)
            .bind(&u.meta.external_id)
            .bind(labels_to(&u.meta.labels))
            .bind(&u.meta.profile_id)
            .bind(u.meta.created_at)
            .bind(u.meta.updated_at)
            .bind(&u.filename)
            .bind(&u.content_type)
            .bind(u.size_bytes)
            .bind(u.status.as_str())
            .bind(u.url_expires_at)
            .execute(&mut *tx)
            .await?;
        });
        Ok(())
    }

    /// PENDING → COMPLETE, once, while the URL is valid; the bytes are at `object_key`. Returns
    /// false when another PUT won or the URL expired (the caller removes its object).
    pub async fn complete_upload(
        &mut self,
        workspace_id: &str,
        id: &str,
        object_key: &str,
        retention_ms: i64,
    ) -> StoreResult<bool> {
        let now = self.now();
        let n = on_tx!(self, |tx| {
            sqlx::query(
                "UPDATE uploads SET status = 'COMPLETE', object_key = $1, updated_at = $2, due_at = $3 \
                 WHERE workspace_id = $4 AND id = $5 AND status = 'PENDING' AND url_expires_at > $2",
            )
            .bind(object_key)
            .bind(now)
            .bind(now + retention_ms)
            .bind(workspace_id)
            .bind(id)
            .execute(&mut *tx)
            .await?
            .rows_affected()
        });
        Ok(n == 1)
    }

    /// COMPLETE → CONSUMED, once: the write that uses the upload's bytes (a memory entry) does
    /// this in its own unit, so a second use, or a race with another consumer, finds it no
    /// longer COMPLETE and the whole unit fails.
    pub async fn consume_upload(&mut self, workspace_id: &str, upload_id: &str) -> StoreResult<()> {
        let now = self.now();
        let n = on_tx!(self, |tx| {
            sqlx::query(
                "UPDATE uploads SET status = 'CONSUMED', updated_at = $1, due_at = $1 \
                 WHERE workspace_id = $2 AND id = $3 AND status = 'COMPLETE'",
            )
            .bind(now)
            .bind(workspace_id)
            .bind(upload_id)
            .execute(&mut *tx)
            .await?
            .rows_affected()
        });
        if n != 1 {
            return Err(StoreError::Precondition("the upload is no longer COMPLETE (already used?)".into()));
        }
        Ok(())
    }
}

impl Tx {
    /// The expiry pass: PENDING uploads past their URL become EXPIRED, COMPLETE ones unused
    /// past their retention become EXPIRED, and the bytes of both and of CONSUMED uploads are
    /// handed back for deletion. Safe to run on every replica at once.
    pub async fn expire_uploads(&mut self) -> StoreResult<ExpiredUploads> {
        let now = self.now();
        let due: Vec<(String, String, String)> = on_tx!(self, |db| sqlx::query_as(
            "SELECT id, status, object_key FROM uploads WHERE due_at IS NOT NULL AND due_at <= $1 LIMIT 500"
        )
        .bind(now)
        .fetch_all(&mut *db)
        .await?);
        let mut out = ExpiredUploads::default();
        for (id, status, key) in due {
            let next = if status == "CONSUMED" { "CONSUMED" } else { "EXPIRED" };
            let n = on_tx!(self, |tx| {
                sqlx::query(
                    "UPDATE uploads SET status = $1, object_key = '', due_at = NULL, updated_at = $2 \
                     WHERE id = $3 AND status = $4 AND due_at IS NOT NULL AND due_at <= $2",
                )
                .bind(next)
                .bind(now)
                .bind(&id)
                .bind(&status)
                .execute(&mut *tx)
                .await?
                .rows_affected()
            });
            if n == 1 {
                if next == "EXPIRED" {
                    out.expired += 1;
                }
                if !key.is_empty() {
                    out.orphaned_objects.push(key);
                }
            }
        }
        Ok(out)
    }
}
