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
use object_store::{MultipartUpload, ObjectStore, ObjectStoreExt, PutPayload};

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

    /// Starts writing a payload under `key` piece by piece (a document too large to hold
    /// in memory). Nothing is visible under `key` until [`PayloadWriter::finish`]: then
    /// the whole payload replaces what was there, atomically, as with [`PayloadStore::put`].
    /// A writer dropped unfinished (or a process killed while writing) leaves `key` as it
    /// was.
    pub async fn writer(&self, key: &str) -> Result<PayloadWriter, PayloadError> {
        let path = Self::path(key)?;
        let upload = self
            .inner
            .put_multipart(&path)
            .await
            .map_err(|e| io_error(key, e))?;
        Ok(PayloadWriter {
            key: key.to_string(),
            upload,
            buffer: Vec::new(),
            written: 0,
        })
    }

    /// Copies the payload under `from` to `to` (replacing what was there). On disk this is
    /// a hard link: no bytes are read or written, however large the payload.
    pub async fn copy(&self, from: &str, to: &str) -> Result<(), PayloadError> {
        let (source, target) = (Self::path(from)?, Self::path(to)?);
        self.inner
            .copy(&source, &target)
            .await
            .map_err(|e| match e {
                object_store::Error::NotFound { .. } => PayloadError::NotFound(from.to_string()),
                other => io_error(from, other),
            })
    }

    /// The size in bytes of the payload under `key`.
    pub async fn size(&self, key: &str) -> Result<u64, PayloadError> {
        let path = Self::path(key)?;
        let meta = self.inner.head(&path).await.map_err(|e| match e {
            object_store::Error::NotFound { .. } => PayloadError::NotFound(key.to_string()),
            other => io_error(key, other),
        })?;
        Ok(meta.size)
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

    /// Bytes `range` of the payload under `key` (a piece of a large payload).
    pub async fn get_range(
        &self,
        key: &str,
        range: std::ops::Range<u64>,
    ) -> Result<Bytes, PayloadError> {
        let path = Self::path(key)?;
        self.inner
            .get_range(&path, range)
            .await
            .map_err(|e| match e {
                object_store::Error::NotFound { .. } => PayloadError::NotFound(key.to_string()),
                other => io_error(key, other),
            })
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

fn io_error(key: &str, e: object_store::Error) -> PayloadError {
    PayloadError::Io {
        key: key.to_string(),
        message: e.to_string(),
    }
}

/// A payload being written piece by piece ([`PayloadStore::writer`]). Pieces are gathered
/// into parts of [`PayloadWriter::PART_BYTES`] (what S3-like stores need at least) and
/// written as each fills, so memory stays at one part whatever the payload's size.
pub struct PayloadWriter {
    key: String,
    upload: Box<dyn MultipartUpload>,
    buffer: Vec<u8>,
    written: u64,
}

impl std::fmt::Debug for PayloadWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PayloadWriter")
            .field("key", &self.key)
            .field("written", &self.written)
            .finish_non_exhaustive()
    }
}

impl PayloadWriter {
    /// The size of the parts written (the last may be smaller).
    pub const PART_BYTES: usize = 8 * 1024 * 1024;

    /// Appends `bytes`.
    pub async fn write(&mut self, bytes: &[u8]) -> Result<(), PayloadError> {
        self.written += bytes.len() as u64;
        let mut rest = bytes;
        while !rest.is_empty() {
            if self.buffer.capacity() == 0 {
                self.buffer.reserve_exact(Self::PART_BYTES);
            }
            let take = rest.len().min(Self::PART_BYTES - self.buffer.len());
            self.buffer.extend_from_slice(&rest[..take]);
            rest = &rest[take..];
            if self.buffer.len() == Self::PART_BYTES {
                self.flush_part().await?;
            }
        }
        Ok(())
    }

    /// Appends `bytes`, taking the buffer itself when nothing is waiting to be written and
    /// it is smaller than a part (a decoded piece is then not copied again, and no buffer
    /// of a whole part is set aside for a small payload).
    pub async fn write_vec(&mut self, bytes: Vec<u8>) -> Result<(), PayloadError> {
        if self.buffer.is_empty() && bytes.len() < Self::PART_BYTES {
            self.written += bytes.len() as u64;
            self.buffer = bytes;
            return Ok(());
        }
        self.write(&bytes).await
    }

    /// How many bytes have been written so far.
    pub fn written(&self) -> u64 {
        self.written
    }

    async fn flush_part(&mut self) -> Result<(), PayloadError> {
        let part = Bytes::from(std::mem::take(&mut self.buffer));
        self.upload
            .put_part(PutPayload::from_bytes(part))
            .await
            .map_err(|e| io_error(&self.key, e))
    }

    /// Writes what is left and makes the payload visible under its key. Returns its size.
    pub async fn finish(mut self) -> Result<u64, PayloadError> {
        if !self.buffer.is_empty() {
            self.flush_part().await?;
        }
        self.upload
            .complete()
            .await
            .map_err(|e| io_error(&self.key, e))?;
        Ok(self.written)
    }

    /// Gives up: nothing is stored under the key (what was there stays).
    pub async fn abort(mut self) -> Result<(), PayloadError> {
        self.upload
            .abort()
            .await
            .map_err(|e| io_error(&self.key, e))
    }
}
