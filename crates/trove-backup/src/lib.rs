//! trove-backup: where backups are kept and how their bytes travel.
//!
//! * [`BackupStore`]: the storage of backup objects behind one trait. An object is written from
//!   a byte stream in bounded memory, cut into segments of at most
//!   [`LocalStore::segment_size`] bytes, each with its MD5; one segment becomes the object
//!   itself, several are tied together by a manifest. This is the shape Trove gives backups
//!   in Swift (segments `<id>_00000000`, `<id>_00000001`, ... whose ETag is their MD5, and a
//!   Static Large Object manifest `[{"path", "etag", "size_bytes"}]` whose checksum is the MD5
//!   of the concatenated hex MD5s of the segments), so a Swift store follows the same layout.
//!   Reading verifies every segment and the whole-object checksum: a tampered object is
//!   refused ([`BackupError::Corrupt`], [`BackupError::ChecksumMismatch`]).
//! * [`SwiftStore`]: the user's Swift account, as Trove keeps backups, reached with the
//!   user's Keystone token and the account's URL from the catalog (`<swift_url>`, e.g.
//!   `https://swift.example/v1/AUTH_<project id>`). The container is created when missing;
//!   segments are streamed to Swift (chunked PUTs, a few 256 KiB chunks in memory whatever
//!   the segment size) and the ETag Swift answers must be their MD5; one segment is then
//!   copied to the object's name (and deleted), several are tied by a Static Large Object
//!   manifest (`PUT ?multipart-manifest=put`), and the object's ETag (quotes stripped) must
//!   be the checksum. Metadata goes into `X-Object-Meta-<key>` headers (`_` sent as `-`, as
//!   Trove does; keys `[a-z0-9_]`, values printable ASCII; Swift's limits of 90 items, 128-byte
//!   keys, 256-byte values, 4096 bytes in all are checked before anything is written).
//!   Reads fetch every segment and check it against the manifest (`GET
//!   ?multipart-manifest=get`); delete uses `?multipart-manifest=delete`, which removes the
//!   segments too. A failed `put` (Swift unreachable, 413 from a full quota, an error of the
//!   input stream) deletes what it wrote, retrying for a while when Swift does not answer.
//!   Locations are the objects' URLs, `<swift_url>/<container>/<object>`, as Trove stores them.
//! * [`LocalStore`]: a directory, for the all-in-one mode. Locations are
//!   `file://<root>/<container>/<object>`, the counterpart of Swift's
//!   `<swift_url>/<container>/<object>`.
//! * [`open_store_for_url`], [`open_store_for_location`]: the store behind a base URL or an
//!   object's location, by scheme (`file://`: [`LocalStore`]; `http(s)://`: [`SwiftStore`],
//!   which needs the user's token), for callers that do not care which store it is.
//! * [`compress`]: zstd compression and decompression of streams.
//!
//! Compression: zstd (level 3) through `async-compression`'s tokio adapters. zstd compresses
//! several times faster than gzip at a similar or better ratio and decompresses faster still;
//! `async-compression` is already in the workspace's dependency graph, so choosing its zstd
//! feature adds only the zstd library itself, and its adapters plug an `AsyncRead` (the backup
//! tool's stdout) straight into [`BackupStore::put`] without a blocking thread.
//!
//! Encryption ([`encrypt`]): with an operator's key the stream is sealed with AES-256-GCM in
//! authenticated frames before it reaches any store ([`encrypt::CryptStore`], which every
//! store opened by URL or location is wrapped in), the object's metadata naming the scheme
//! under [`META_ENCRYPTION`]; reads decrypt and refuse any change. An object encrypted with
//! a scheme this build does not know is refused on read rather than handed out as plain.

mod error;
mod local;
mod swift;

pub mod compress;
pub mod encrypt;

use std::collections::BTreeMap;
use std::pin::Pin;
use std::sync::Arc;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use tokio::io::AsyncRead;

pub use error::{BackupError, Result};
pub use local::{LocalStore, FILE_SCHEME};
pub use swift::{is_http_url, AuthToken, SwiftStore};

/// Object metadata (Swift's `X-Object-Meta-<key>` headers): `datastore`,
/// `datastore_version`, `lsn`, `parent_location`, `parent_checksum`, ...
pub type Metadata = BTreeMap<String, String>;

/// Metadata key reserved for the encryption scheme of an object (see the crate doc).
pub const META_ENCRYPTION: &str = "encryption";

/// Metadata key of the compression of an object's contents (`zstd`).
pub const META_COMPRESSION: &str = "compression";

/// Default maximum segment size: 2 GiB, as Trove's Swift upload.
pub const DEFAULT_SEGMENT_SIZE: u64 = 2 * 1024 * 1024 * 1024;

/// A byte stream read back from a store.
pub type ObjectReader = Pin<Box<dyn AsyncRead + Send>>;

/// One segment of a large object: an entry of the manifest, in Swift's SLO shape.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Segment {
    /// `<container>/<segment name>`.
    pub path: String,
    /// Hex MD5 of the segment's bytes.
    pub etag: String,
    /// Length in bytes.
    pub size_bytes: u64,
}

/// What [`BackupStore::put`] stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredObject {
    /// Where the object is (`file:///...`, `https://swift/...`); what the backup row keeps.
    pub location: String,
    /// Hex checksum: the MD5 of a one-segment object, else the MD5 of the concatenated hex
    /// MD5s of its segments (Swift's ETag of a Static Large Object).
    pub checksum: String,
    /// Bytes stored (after compression).
    pub size: u64,
    /// Number of segments.
    pub segments: usize,
}

/// What a store knows about one object without reading it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectInfo {
    /// The object's location.
    pub location: String,
    /// Its recorded checksum (see [`StoredObject::checksum`]).
    pub checksum: String,
    /// Total bytes.
    pub size: u64,
    /// Metadata given to [`BackupStore::put`].
    pub metadata: Metadata,
    /// The segments, in order (one entry for an object stored whole).
    pub segments: Vec<Segment>,
}

/// Storage of backup objects (see the crate doc).
#[async_trait]
pub trait BackupStore: Send + Sync + std::fmt::Debug {
    /// Stores everything `data` yields as object `object` in `container`, in segments, with
    /// `metadata`. Memory use does not depend on the object's size. On any error (including
    /// one from `data`) the segments already written are removed and nothing is left behind.
    /// An existing object of that name is refused ([`BackupError::AlreadyExists`]).
    async fn put(
        &self,
        container: &str,
        object: &str,
        data: &mut (dyn AsyncRead + Send + Unpin),
        metadata: &Metadata,
    ) -> Result<StoredObject>;

    /// Checksum, size, metadata and segments of the object at `location`.
    async fn head(&self, location: &str) -> Result<ObjectInfo>;

    /// Reads every segment and checks it against its MD5 and the whole object against its
    /// recorded checksum and, if given, `expected_checksum`. Returns the object's info.
    async fn verify(&self, location: &str, expected_checksum: Option<&str>) -> Result<ObjectInfo>;

    /// The object's bytes. The object is verified first ([`BackupStore::verify`]), so a
    /// tampered object is refused before any byte is handed out; segments are checked again
    /// while they stream (a change in between ends the stream with an `InvalidData` error,
    /// never with a silent truncation).
    async fn get(&self, location: &str, expected_checksum: Option<&str>) -> Result<ObjectReader>;

    /// Replaces the object's metadata (Swift: `POST` with `X-Object-Meta-*`), e.g. to add
    /// what is only known once the stream has ended (the `lsn` of a MariaDB backup).
    async fn set_metadata(&self, location: &str, metadata: &Metadata) -> Result<()>;

    /// Deletes the object and its segments.
    async fn delete(&self, location: &str) -> Result<()>;
}

/// Largest segment the stores of [`open_store_for_url`] write (see
/// [`set_process_segment_size`]).
static SEGMENT_SIZE: std::sync::atomic::AtomicU64 =
    std::sync::atomic::AtomicU64::new(DEFAULT_SEGMENT_SIZE);

/// Sets the largest segment (bytes) the stores opened by [`open_store_for_url`] write:
/// `[DEFAULT] backup_segment_max_size`. A larger backup is stored in segments (in Swift a
/// Static Large Object and its segment objects). Zero or less means
/// [`DEFAULT_SEGMENT_SIZE`].
pub fn set_process_segment_size(bytes: i64) {
    let bytes = u64::try_from(bytes)
        .ok()
        .filter(|b| *b > 0)
        .unwrap_or(DEFAULT_SEGMENT_SIZE);
    SEGMENT_SIZE.store(bytes, std::sync::atomic::Ordering::Relaxed);
}

/// The segment size set by [`set_process_segment_size`].
pub fn process_segment_size() -> u64 {
    SEGMENT_SIZE.load(std::sync::atomic::Ordering::Relaxed)
}

/// The store whose base URL is `url`: `file://<dir>` is a [`LocalStore`], `http(s)://...`
/// a Swift account ([`SwiftStore`]) reached with `token`, which it needs
/// ([`BackupError::NoToken`] without one). Either writes segments of at most
/// [`process_segment_size`] bytes.
pub fn open_store_for_url(url: &str, token: Option<&str>) -> Result<Arc<dyn BackupStore>> {
    let url = url.trim();
    let segment_size = process_segment_size();
    let store: Arc<dyn BackupStore> = if url.starts_with(FILE_SCHEME) {
        Arc::new(LocalStore::from_url(url)?.with_segment_size(segment_size))
    } else if is_http_url(url) {
        let token = token.map(str::trim).filter(|t| !t.is_empty());
        let Some(token) = token else {
            return Err(BackupError::NoToken(url.trim_end_matches('/').to_owned()));
        };
        Arc::new(SwiftStore::new(url, token)?.with_segment_size(segment_size))
    } else {
        return Err(unknown_scheme(url));
    };
    Ok(Arc::new(encrypt::CryptStore::with_process_key(store)))
}

/// The store holding the object at `location` (`file://<root>/<container>/<object>` or
/// `<swift_url>/<container>/<object>`), as [`open_store_for_url`] chooses it.
pub fn open_store_for_location(
    location: &str,
    token: Option<&str>,
) -> Result<Arc<dyn BackupStore>> {
    let location = location.trim();
    let store: Arc<dyn BackupStore> = if location.starts_with(FILE_SCHEME) {
        Arc::new(LocalStore::for_location(location)?)
    } else if is_http_url(location) {
        let token = token.map(str::trim).filter(|t| !t.is_empty());
        let Some(token) = token else {
            let base = location.rsplitn(3, '/').nth(2).unwrap_or(location);
            return Err(BackupError::NoToken(base.to_owned()));
        };
        Arc::new(SwiftStore::for_location(location, token)?)
    } else {
        return Err(unknown_scheme(location));
    };
    Ok(Arc::new(encrypt::CryptStore::with_process_key(store)))
}

fn unknown_scheme(url: &str) -> BackupError {
    let scheme = url.split_once("://").map(|(s, _)| s).unwrap_or("");
    BackupError::InvalidLocation {
        location: url.into(),
        reason: format!(
            "no backup store for '{scheme}' locations (file:// is a local directory, http(s):// Swift)"
        ),
    }
}

/// Checks a container or object name: 1 to 255 characters from `[A-Za-z0-9._-]`, not
/// starting with a dot (so it can name neither a parent directory nor a hidden file).
pub fn check_name(kind: &str, name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 255
        && !name.starts_with('.')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if ok {
        Ok(())
    } else {
        Err(BackupError::InvalidName(format!(
            "{kind} name '{name}' is not valid (1 to 255 characters from A-Z a-z 0-9 . _ -, not starting with a dot)"
        )))
    }
}

/// The segment name prefix of an object: its name up to the first `.` (Trove's rule).
pub fn segment_prefix(object: &str) -> &str {
    object.split('.').next().unwrap_or(object)
}

/// Name of segment `index` of `object`: `<prefix>_<8-digit index>`.
pub fn segment_name(object: &str, index: usize) -> String {
    format!("{}_{index:08}", segment_prefix(object))
}

/// Hex MD5 of `bytes`.
pub fn md5_hex(bytes: &[u8]) -> String {
    use md5::Digest;
    hex(&md5::Md5::digest(bytes))
}

/// The checksum of an object made of segments with these MD5s (see
/// [`StoredObject::checksum`]).
pub fn object_checksum(segments: &[Segment]) -> String {
    match segments {
        [one] => one.etag.clone(),
        many => {
            let joined: String = many.iter().map(|s| s.etag.as_str()).collect();
            md5_hex(joined.as_bytes())
        }
    }
}

/// Refuses `info` when `expected` names another checksum (quotes and case ignored).
pub(crate) fn check_expected(info: &ObjectInfo, expected: Option<&str>) -> Result<()> {
    match expected.map(|e| e.trim().trim_matches('"')) {
        Some(e) if !e.is_empty() && !e.eq_ignore_ascii_case(&info.checksum) => {
            Err(BackupError::ChecksumMismatch {
                location: info.location.clone(),
                expected: e.to_owned(),
                actual: info.checksum.clone(),
            })
        }
        _ => Ok(()),
    }
}

/// Refuses an object encrypted with a scheme this build does not decrypt.
pub(crate) fn refuse_unsupported(info: &ObjectInfo) -> Result<()> {
    // The ciphertext of the encryption this crate does is handed to its decrypting store
    // (`encrypt::CryptStore`), which every store opened by location or URL is wrapped in.
    if let Some(scheme) = info
        .metadata
        .get(META_ENCRYPTION)
        .filter(|s| *s != crate::encrypt::SCHEME)
    {
        return Err(BackupError::Unsupported(format!(
            "backup object {} is encrypted ({scheme}); this build cannot decrypt backups",
            info.location
        )));
    }
    Ok(())
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn stores_by_url_write_segments_of_the_process_segment_size() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("file://{}", dir.path().display());
        let data = vec![7u8; 2500];
        set_process_segment_size(1000);
        assert_eq!(process_segment_size(), 1000);
        let stored = open_store_for_url(&url, None)
            .unwrap()
            .put("c", "seg.tar.zst", &mut data.as_slice(), &Metadata::new())
            .await;
        set_process_segment_size(0);
        let stored = stored.unwrap();
        assert_eq!((stored.size, stored.segments), (2500, 3));
        assert_eq!(process_segment_size(), DEFAULT_SEGMENT_SIZE);
        set_process_segment_size(-1);
        assert_eq!(process_segment_size(), DEFAULT_SEGMENT_SIZE);
        let stored = open_store_for_url(&url, None)
            .unwrap()
            .put("c", "one.tar.zst", &mut data.as_slice(), &Metadata::new())
            .await
            .unwrap();
        assert_eq!(stored.segments, 1);
    }

    #[test]
    fn names() {
        assert!(check_name("object", "abc.xbstream.zst").is_ok());
        for bad in ["", ".hidden", "..", "a/b", "a b", "é"] {
            assert!(check_name("object", bad).is_err(), "{bad}");
        }
        assert_eq!(segment_name("b1.xbstream.zst", 3), "b1_00000003");
    }

    #[test]
    fn checksums() {
        assert_eq!(md5_hex(b""), "d41d8cd98f00b204e9800998ecf8427e");
        let seg = |e: &str| Segment {
            path: "c/s".into(),
            etag: e.into(),
            size_bytes: 1,
        };
        assert_eq!(object_checksum(&[seg("aa")]), "aa");
        assert_eq!(object_checksum(&[seg("aa"), seg("bb")]), md5_hex(b"aabb"));
    }

    #[test]
    fn stores_by_scheme() {
        assert!(open_store_for_url("file:///srv/backups", None).is_ok());
        assert!(open_store_for_location("file:///srv/backups/c/o", None).is_ok());
        let swift = "https://swift.example/v1/AUTH_p";
        assert!(open_store_for_url(swift, Some("tok")).is_ok());
        let e = open_store_for_url(swift, None).unwrap_err();
        assert!(matches!(&e, BackupError::NoToken(u) if u == swift), "{e}");
        let e = open_store_for_location(&format!("{swift}/c/o"), Some("")).unwrap_err();
        assert!(matches!(&e, BackupError::NoToken(u) if u == swift), "{e}");
        assert!(open_store_for_location(&format!("{swift}/c/o"), Some("t")).is_ok());
        let e = open_store_for_url("swift://x", Some("t")).unwrap_err();
        assert!(e.to_string().contains("'swift'"), "{e}");
    }
}
