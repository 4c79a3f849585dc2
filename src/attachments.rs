//! The attachment store: documents checked by their content (magic bytes, not the name),
//! kept outside any served folder under their SHA-256, through `object_store` (the local
//! file system by default; S3-compatible storage in production uses the same interface).

use std::sync::Arc;

use bytes::Bytes;
use object_store::{
    ObjectStore, ObjectStoreExt, PutMode, PutOptions, local::LocalFileSystem, path::Path,
};
use sha2::{Digest, Sha256};

/// Content types accepted, as detected from the bytes.
pub const ALLOWED: &[&str] = &[
    "application/pdf",
    "image/png",
    "image/jpeg",
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
];

/// Why an upload was refused.
#[derive(Debug, thiserror::Error)]
pub enum UploadError {
    /// Nothing was uploaded.
    #[error("empty file")]
    Empty,
    /// Over the size limit.
    #[error("file too large")]
    TooLarge,
    /// The content is not one of the accepted types (whatever its name says).
    #[error("file type not accepted")]
    TypeNotAccepted,
    /// The store failed.
    #[error("storage failed: {0}")]
    Storage(#[from] object_store::Error),
}

/// A stored document's identity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stored {
    /// Key in the store.
    pub key: String,
    /// SHA-256 of the content (hex).
    pub sha256: String,
    /// Detected content type.
    pub content_type: &'static str,
    /// Size in bytes.
    pub size: usize,
}

/// Where attachment bytes live.
#[derive(Clone)]
pub struct AttachmentStore {
    store: Arc<dyn ObjectStore>,
    /// Largest accepted file in bytes.
    pub max_bytes: usize,
}

impl AttachmentStore {
    /// A store under `dir` on the local file system.
    pub fn local(dir: &std::path::Path, max_bytes: usize) -> anyhow::Result<Self> {
        std::fs::create_dir_all(dir)?;
        Ok(Self {
            store: Arc::new(LocalFileSystem::new_with_prefix(dir)?),
            max_bytes,
        })
    }

    /// Checks and stores a document. The same content is stored once.
    pub async fn put(&self, bytes: Bytes) -> Result<Stored, UploadError> {
        if bytes.is_empty() {
            return Err(UploadError::Empty);
        }
        if bytes.len() > self.max_bytes {
            return Err(UploadError::TooLarge);
        }
        let content_type = detect(&bytes).ok_or(UploadError::TypeNotAccepted)?;
        let sha256 = hex::encode(Sha256::digest(&bytes));
        let key = format!("sha256/{}/{}", &sha256[..2], sha256);
        let size = bytes.len();
        let opts = PutOptions {
            mode: PutMode::Create,
            ..PutOptions::default()
        };
        match self
            .store
            .put_opts(&Path::from(key.as_str()), bytes.into(), opts)
            .await
        {
            Ok(_) | Err(object_store::Error::AlreadyExists { .. }) => {}
            Err(e) => return Err(UploadError::Storage(e)),
        }
        Ok(Stored {
            key,
            sha256,
            content_type,
            size,
        })
    }

    /// Reads a stored document.
    pub async fn get(&self, key: &str) -> Result<Bytes, object_store::Error> {
        self.store.get(&Path::from(key)).await?.bytes().await
    }
}

/// The accepted content type of `bytes`, if any.
pub fn detect(bytes: &[u8]) -> Option<&'static str> {
    let kind = infer::get(bytes)?;
    ALLOWED.iter().copied().find(|a| *a == kind.mime_type())
}

/// A file name safe to put in a `Content-Disposition` header: no path, no control or
/// quoting characters, at most 200 characters.
pub fn safe_filename(name: &str) -> String {
    let base = name.rsplit(['/', '\\']).next().unwrap_or("");
    let cleaned: String = base
        .chars()
        .filter(|c| !c.is_control() && !matches!(c, '"' | ';' | '\\'))
        .take(200)
        .collect();
    if cleaned.trim().is_empty() {
        "document".to_string()
    } else {
        cleaned
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn types_are_detected_from_content_not_names() {
        assert_eq!(detect(b"%PDF-1.7\n%..."), Some("application/pdf"));
        assert_eq!(detect(b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR"), Some("image/png"));
        assert_eq!(detect(b"<html><script>alert(1)</script>"), None);
        assert_eq!(
            detect(b"MZ\x90\0\x03\0\0\0"),
            None,
            "executables are refused"
        );
    }

    #[test]
    fn file_names_lose_paths_and_quotes() {
        assert_eq!(safe_filename("../../etc/passwd"), "passwd");
        assert_eq!(safe_filename("C:\\temp\\营业执照.pdf"), "营业执照.pdf");
        assert_eq!(safe_filename("a\"b;c\r\n.pdf"), "abc.pdf");
        assert_eq!(safe_filename(""), "document");
    }
}
