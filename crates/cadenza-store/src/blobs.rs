//! File bytes (uploads) in an object store: a local directory by default, an S3-compatible
//! bucket by configuration, one API over both through `object_store`.

use std::sync::Arc;

use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};

/// Where the bytes go. `Debug` never shows the S3 keys.
#[derive(Clone)]
pub enum BlobConfig {
    /// A directory on this machine (created if missing).
    Local { dir: std::path::PathBuf },
    /// An S3-compatible bucket. Keys are given as values here; configuration reads them from
    /// the environment variables it names, and they are never logged.
    S3 { bucket: String, endpoint: String, region: String, access_key_id: String, secret_access_key: String },
}

impl std::fmt::Debug for BlobConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Local { dir } => f.debug_struct("Local").field("dir", dir).finish(),
            Self::S3 { bucket, endpoint, region, .. } => f
                .debug_struct("S3")
                .field("bucket", bucket)
                .field("endpoint", endpoint)
                .field("region", region)
                .finish_non_exhaustive(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum BlobError {
    #[error("object storage: {0}")]
    Store(#[from] object_store::Error),
    #[error("object storage: {0}")]
    Setup(String),
}

impl BlobError {
    /// The object does not exist (deleted, or never stored).
    pub fn is_not_found(&self) -> bool {
        matches!(self, BlobError::Store(object_store::Error::NotFound { .. }))
    }
}

/// A handle on the object store; cheap to clone.
#[derive(Debug, Clone)]
pub struct Blobs(Arc<dyn ObjectStore>);

impl Blobs {
    pub fn open(config: &BlobConfig) -> Result<Self, BlobError> {
        let store: Arc<dyn ObjectStore> = match config {
            BlobConfig::Local { dir } => {
                std::fs::create_dir_all(dir)
                    .map_err(|e| BlobError::Setup(format!("cannot create {}: {e}", dir.display())))?;
                Arc::new(object_store::local::LocalFileSystem::new_with_prefix(dir)?)
            }
            BlobConfig::S3 { bucket, endpoint, region, access_key_id, secret_access_key } => {
                let mut b = object_store::aws::AmazonS3Builder::new()
                    .with_bucket_name(bucket)
                    .with_region(region)
                    .with_access_key_id(access_key_id)
                    .with_secret_access_key(secret_access_key);
                if !endpoint.is_empty() {
                    b = b.with_endpoint(endpoint).with_allow_http(endpoint.starts_with("http://"));
                }
                Arc::new(b.build()?)
            }
        };
        Ok(Self(store))
    }

    pub async fn put(&self, key: &str, bytes: Vec<u8>) -> Result<(), BlobError> {
        self.0.put(&Path::from(key), PutPayload::from(bytes)).await?;
        Ok(())
    }

    pub async fn get(&self, key: &str) -> Result<Vec<u8>, BlobError> {
        Ok(self.0.get(&Path::from(key)).await?.bytes().await?.to_vec())
    }

    /// Removes an object; one already gone is fine.
    pub async fn delete(&self, key: &str) -> Result<(), BlobError> {
        match self.0.delete(&Path::from(key)).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }
}
