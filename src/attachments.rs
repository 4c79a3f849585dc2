//! The attachment store: documents checked by their content (magic bytes, not the name),
//! kept outside any served folder under their SHA-256, through `object_store`: the local
//! file system by default, or S3-compatible storage (AWS S3, MinIO, Ceph, …) shared by
//! several instances.

use std::{sync::Arc, time::Duration};

use bytes::Bytes;
use object_store::{
    BackoffConfig, ClientOptions, ObjectStore, ObjectStoreExt, PutMode, PutOptions, RetryConfig,
    aws::AmazonS3Builder, local::LocalFileSystem, path::Path, prefix::PrefixStore,
};
use secrecy::ExposeSecret;
use sha2::{Digest, Sha256};

use crate::settings::{Settings, StoreSettings};

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
    /// The store the settings choose: `file` (under `data_dir/attachments`) or an
    /// `s3://bucket[/prefix]` URL.
    pub fn from_settings(settings: &Settings) -> anyhow::Result<Self> {
        let max_bytes = settings.attachment_max_mb * 1024 * 1024;
        match settings.store.attachment_store.as_str() {
            "file" => Self::local(&settings.data_dir.join("attachments"), max_bytes),
            url if url.starts_with("s3://") => Self::s3(&settings.store, max_bytes),
            other => anyhow::bail!(
                "attachment_store must be `file` or an `s3://bucket[/prefix]` URL, not `{other}`"
            ),
        }
    }

    /// A store in an S3-compatible bucket, as `store` describes it. Credentials, region and
    /// endpoint not set there come from the standard `AWS_*` environment variables. Keys are
    /// content hashes, so instances sharing the bucket store each document once.
    pub fn s3(store: &StoreSettings, max_bytes: usize) -> anyhow::Result<Self> {
        let rest = store
            .attachment_store
            .strip_prefix("s3://")
            .ok_or_else(|| anyhow::anyhow!("attachment_store is not an s3:// URL"))?;
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        anyhow::ensure!(!bucket.is_empty(), "attachment_store names no bucket");
        let mut builder = AmazonS3Builder::from_env()
            .with_bucket_name(bucket)
            // An unreachable store must reach the user as an error within seconds, not after
            // the default three minutes of retries while the upload form hangs.
            .with_retry(RetryConfig {
                backoff: BackoffConfig::default(),
                max_retries: 3,
                retry_timeout: Duration::from_secs(10),
            })
            .with_client_options(
                ClientOptions::new()
                    .with_connect_timeout(Duration::from_secs(5))
                    .with_timeout(Duration::from_secs(60)),
            )
            // After the client options, which would reset it.
            .with_allow_http(store.s3_allow_http);
        if let Some(endpoint) = &store.s3_endpoint {
            builder = builder.with_endpoint(endpoint);
        }
        if let Some(region) = &store.s3_region {
            builder = builder.with_region(region);
        }
        if let Some(id) = &store.s3_access_key_id {
            builder = builder.with_access_key_id(id);
        }
        if let Some(secret) = &store.s3_secret_access_key {
            builder = builder.with_secret_access_key(secret.expose_secret());
        }
        let s3 = builder.build()?;
        let prefix = prefix.trim_matches('/');
        let store: Arc<dyn ObjectStore> = if prefix.is_empty() {
            Arc::new(s3)
        } else {
            Arc::new(PrefixStore::new(s3, prefix))
        };
        Ok(Self { store, max_bytes })
    }

    /// A store under `dir` on the local file system.
    pub fn local(dir: &std::path::Path, max_bytes: usize) -> anyhow::Result<Self> {
        std::fs::create_dir_all(dir)?;
        Ok(Self {
            store: Arc::new(LocalFileSystem::new_with_prefix(dir)?),
            max_bytes,
        })
    }

    /// Checks and stores a document. The same content is stored once: the put is
    /// conditional (create only; on S3 `If-None-Match: *`), and an object already under the
    /// content's hash is that same content.
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
