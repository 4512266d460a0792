//! Content-addressed blob store for message bodies (DESIGN.md "Storage").
//!
//! A blob is immutable and named by the SHA-256 of its content, so storing the same message
//! twice (IMAP COPY, forwarding with keep, an import run twice) stores it once. Reference
//! counting lives in the metadata store next to the rows that point at blobs.

use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use async_trait::async_trait;
use sha2::{Digest, Sha256};

use crate::{Result, StoreError};

/// SHA-256 of a blob's content, as 64 lower-case hex digits.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BlobId(String);

impl BlobId {
    pub fn of(data: &[u8]) -> Self {
        BlobId(hex::encode(Sha256::digest(data)))
    }

    /// Accepts only a well-formed id (64 lower-case hex digits), so an id can never name a path
    /// outside the store.
    pub fn parse(s: &str) -> Option<Self> {
        (s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')))
            .then(|| BlobId(s.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The id of a body kept in the metadata store (`inline_blobs`): "i" and the SHA-256 of the
/// content. The different form tells readers where to look, and can never name a file.
pub fn inline_id(data: &[u8]) -> String {
    format!("i{}", hex::encode(Sha256::digest(data)))
}

/// Whether `id` has the form of [`inline_id`].
pub fn is_inline_id(id: &str) -> bool {
    id.strip_prefix('i')
        .is_some_and(|hash| BlobId::parse(hash).is_some())
}

/// `data` as the inline body `id`, verified against its id like the files are.
pub fn verify_inline(id: &str, data: Vec<u8>) -> Result<Vec<u8>> {
    if inline_id(&data) == id {
        Ok(data)
    } else {
        Err(StoreError::Corrupt(id.to_string()))
    }
}

impl fmt::Display for BlobId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Where message bodies live. `put` returns only once the blob is durable.
#[async_trait]
pub trait BlobStore: Send + Sync {
    /// Stores `data` durably and returns its id; storing existing content is a cheap no-op.
    async fn put(&self, data: &[u8]) -> Result<BlobId>;
    /// The blob's content, verified against its id ([`StoreError::Corrupt`] otherwise).
    async fn get(&self, id: &BlobId) -> Result<Vec<u8>>;
    /// Several blobs, each verified like `get`, in the order asked. One hand-off for all:
    /// an IMAP FETCH of a message list reads a hundred small blobs.
    /// `expected_bytes`: what the caller knows the blobs add up to (0: not known); at most
    /// [`READ_IN_PLACE_MAX`] lets a store read them without a hand-off.
    async fn get_many(&self, ids: &[BlobId], expected_bytes: u64) -> Vec<Result<Vec<u8>>> {
        let _ = expected_bytes;
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            out.push(self.get(id).await);
        }
        out
    }
    async fn exists(&self, id: &BlobId) -> Result<bool>;
    /// Removes a blob; `false` if it was not there.
    async fn delete(&self, id: &BlobId) -> Result<bool>;
}

/// Reads known to add up to at most this many bytes are done on the calling (async) thread:
/// a small file in the page cache, the usual case for mail being read, takes a few
/// microseconds to open, read and hash, less than the two thread switches of a hand-off to
/// the blocking pool. Measured (`bench/RESULTS.md`): IMAP FETCH BODY.PEEK[] of 4 KiB
/// messages 23k → 35k ops/s. A read that has to wait for the disk holds up that worker
/// thread for as long; larger reads keep going through the pool.
pub const READ_IN_PLACE_MAX: u64 = 64 * 1024;

/// Blobs as files under `ROOT/ab/cd/abcd…` (two fan-out levels keep directories small).
pub struct FsBlobStore {
    root: PathBuf,
}

static TMP_SEQ: AtomicU64 = AtomicU64::new(0);

impl FsBlobStore {
    pub fn open(root: impl Into<PathBuf>) -> Result<Self> {
        let root = root.into();
        std::fs::create_dir_all(root.join("tmp"))?;
        Ok(Self { root })
    }

    fn path_of(&self, id: &BlobId) -> PathBuf {
        let h = id.as_str();
        self.root.join(&h[0..2]).join(&h[2..4]).join(h)
    }

    fn get_blocking(path: &Path, id: &BlobId) -> Result<Vec<u8>> {
        let data = match std::fs::read(path) {
            Ok(d) => d,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(StoreError::NotFound),
            Err(e) => return Err(e.into()),
        };
        if BlobId::of(&data) != *id {
            return Err(StoreError::Corrupt(id.to_string()));
        }
        Ok(data)
    }

    /// Write to a temporary file, fsync it, rename it into place, fsync the directory: a crash
    /// at any point leaves either no blob or the whole blob, never a partial one under its name.
    fn put_blocking(root: &Path, final_path: &Path, data: &[u8]) -> Result<()> {
        if final_path.exists() {
            return Ok(());
        }
        let dir = final_path.parent().expect("blob path has a parent");
        if !dir.exists() {
            std::fs::create_dir_all(dir)?;
            // Make the new directory entries durable too.
            sync_dir(dir.parent().expect("fan-out dir has a parent"))?;
            sync_dir(root)?;
        }
        let tmp = root.join("tmp").join(format!(
            "{}.{}.tmp",
            std::process::id(),
            TMP_SEQ.fetch_add(1, Ordering::Relaxed)
        ));
        let result = (|| {
            let mut f = std::fs::File::create(&tmp)?;
            f.write_all(data)?;
            f.sync_all()?;
            std::fs::rename(&tmp, final_path)?;
            sync_dir(dir)
        })();
        if result.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        Ok(result?)
    }
}

fn sync_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::File::open(dir)?.sync_all()
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| StoreError::Io(std::io::Error::other(e)))?
}

#[async_trait]
impl BlobStore for FsBlobStore {
    async fn put(&self, data: &[u8]) -> Result<BlobId> {
        let id = BlobId::of(data);
        let (root, path, data) = (self.root.clone(), self.path_of(&id), data.to_vec());
        blocking(move || Self::put_blocking(&root, &path, &data)).await?;
        Ok(id)
    }

    async fn get(&self, id: &BlobId) -> Result<Vec<u8>> {
        let (path, id) = (self.path_of(id), id.clone());
        blocking(move || Self::get_blocking(&path, &id)).await
    }

    async fn get_many(&self, ids: &[BlobId], expected_bytes: u64) -> Vec<Result<Vec<u8>>> {
        if expected_bytes > 0 && expected_bytes <= READ_IN_PLACE_MAX {
            return ids
                .iter()
                .map(|id| Self::get_blocking(&self.path_of(id), id))
                .collect();
        }
        let wanted: Vec<(PathBuf, BlobId)> = ids
            .iter()
            .map(|id| (self.path_of(id), id.clone()))
            .collect();
        let n = wanted.len();
        match tokio::task::spawn_blocking(move || {
            wanted
                .iter()
                .map(|(path, id)| Self::get_blocking(path, id))
                .collect::<Vec<_>>()
        })
        .await
        {
            Ok(all) => all,
            Err(e) => (0..n)
                .map(|_| Err(StoreError::Io(std::io::Error::other(e.to_string()))))
                .collect(),
        }
    }

    async fn exists(&self, id: &BlobId) -> Result<bool> {
        Ok(tokio::fs::try_exists(self.path_of(id)).await?)
    }

    async fn delete(&self, id: &BlobId) -> Result<bool> {
        match tokio::fs::remove_file(self.path_of(id)).await {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(e.into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_validated() {
        let id = BlobId::of(b"hello");
        assert_eq!(
            id.as_str(),
            "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"
        );
        assert_eq!(BlobId::parse(id.as_str()), Some(id));
        assert_eq!(BlobId::parse("../../etc/passwd"), None);
        assert_eq!(BlobId::parse(&"A".repeat(64)), None);
    }

    #[tokio::test]
    async fn get_many_reads_in_order_and_verifies_each_blob_like_get() {
        let dir = crate::testing::TempDir::new("blob-get-many");
        let store = FsBlobStore::open(dir.path()).unwrap();
        let a = store.put(b"first").await.unwrap();
        let b = store.put(b"second").await.unwrap();
        let c = store.put(b"third").await.unwrap();
        std::fs::write(store.path_of(&c), b"tampered").unwrap();
        let missing = BlobId::of(b"never stored");
        let ids = [b.clone(), missing, a, c];
        // Through the blocking pool (size unknown, or large) and in place (known small).
        for expected in [0, 64, READ_IN_PLACE_MAX + 1] {
            let got = store.get_many(&ids, expected).await;
            assert_eq!(got[0].as_deref().unwrap(), b"second");
            assert!(matches!(got[1], Err(StoreError::NotFound)));
            assert_eq!(got[2].as_deref().unwrap(), b"first");
            assert!(matches!(got[3], Err(StoreError::Corrupt(_))));
        }
        assert_eq!(store.get(&b).await.unwrap(), b"second");
    }
}
