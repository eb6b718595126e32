//! Payload storage: message bodies and attachments, outside the database.
//!
//! Payloads are large (an attachment can be 100 MB), written once and read rarely, so
//! they live in an object store keyed by path-like keys (`gp2gp/<conversation>/<message>`),
//! on the local disk by default. The same interface fronts S3-compatible storage when
//! Lloyd is scaled out.

use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use futures::TryStreamExt;
use object_store::local::LocalFileSystem;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};

/// What went wrong storing or reading a payload.
#[derive(Debug, thiserror::Error)]
pub enum PayloadError {
    #[error("cannot use {0} for payloads: {1}")]
    Setup(String, String),
    #[error("payload key '{0}' is not usable: keys are path-like, e.g. gp2gp/CONVERSATION/MESSAGE")]
    BadKey(String),
    #[error("no payload stored under '{0}'")]
    NotFound(String),
    #[error("payload storage failed for '{key}': {message}")]
    Io { key: String, message: String },
}

/// Where payloads are kept.
#[derive(Debug, Clone)]
pub struct PayloadStore {
    inner: Arc<dyn ObjectStore>,
}

impl PayloadStore {
    /// Payloads in files under `dir` (created if missing).
    pub fn on_disk(dir: &Path) -> Result<PayloadStore, PayloadError> {
        std::fs::create_dir_all(dir)
            .map_err(|e| PayloadError::Setup(dir.display().to_string(), e.to_string()))?;
        let fs = LocalFileSystem::new_with_prefix(dir)
            .map_err(|e| PayloadError::Setup(dir.display().to_string(), e.to_string()))?;
        Ok(PayloadStore {
            inner: Arc::new(fs),
        })
    }

    /// Any object store (S3 and the like).
    pub fn from_object_store(store: Arc<dyn ObjectStore>) -> PayloadStore {
        PayloadStore { inner: store }
    }

    fn path(key: &str) -> Result<ObjectPath, PayloadError> {
        let bad = key.is_empty()
            || key.starts_with('/')
            || key
                .split('/')
                .any(|part| part.is_empty() || part == "." || part == "..");
        if bad {
            return Err(PayloadError::BadKey(key.to_string()));
        }
        ObjectPath::parse(key).map_err(|_| PayloadError::BadKey(key.to_string()))
    }

    /// Stores `bytes` under `key`, replacing what was there. The write is atomic: a reader
    /// sees the old payload or the new one, never half of one.
    pub async fn put(&self, key: &str, bytes: Bytes) -> Result<(), PayloadError> {
        let path = Self::path(key)?;
        self.inner
            .put(&path, PutPayload::from_bytes(bytes))
            .await
            .map_err(|e| PayloadError::Io {
                key: key.to_string(),
                message: e.to_string(),
            })?;
        Ok(())
    }

    /// The payload stored under `key`.
    pub async fn get(&self, key: &str) -> Result<Bytes, PayloadError> {
        let path = Self::path(key)?;
        let result = self.inner.get(&path).await.map_err(|e| match e {
            object_store::Error::NotFound { .. } => PayloadError::NotFound(key.to_string()),
            other => PayloadError::Io {
                key: key.to_string(),
                message: other.to_string(),
            },
        })?;
        result.bytes().await.map_err(|e| PayloadError::Io {
            key: key.to_string(),
            message: e.to_string(),
        })
    }

    /// Removes the payload under `key`; removing one that is not there is not an error.
    pub async fn delete(&self, key: &str) -> Result<(), PayloadError> {
        let path = Self::path(key)?;
        match self.inner.delete(&path).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(PayloadError::Io {
                key: key.to_string(),
                message: e.to_string(),
            }),
        }
    }

    /// The keys under a prefix (`gp2gp/CONVERSATION`), sorted.
    pub async fn list(&self, prefix: &str) -> Result<Vec<String>, PayloadError> {
        let path = Self::path(prefix)?;
        let mut keys: Vec<String> = self
            .inner
            .list(Some(&path))
            .map_ok(|meta| meta.location.to_string())
            .try_collect()
            .await
            .map_err(|e| PayloadError::Io {
                key: prefix.to_string(),
                message: e.to_string(),
            })?;
        keys.sort();
        Ok(keys)
    }
}
