//! [`LocalStore`]: backup objects in a directory.
//!
//! ```text
//! <root>/<container>/
//! ├── <object>             one segment: the data itself; several: the manifest, a JSON list
//! │                        of {"path": "<container>/<segment>", "etag", "size_bytes"}
//! ├── .<object>.meta       checksum, size, whether <object> is a manifest, metadata
//! └── <prefix>_00000000 …  the segments of a large object (<prefix> = object name up to '.')
//! ```
//!
//! Writing order: segments (each synced), then the metadata file, then the object itself
//! (manifest written under a temporary name and renamed; a single segment renamed to the
//! object's name, as Swift copies it and deletes the segment). An object without its metadata
//! file is not a backup object and is refused.

use std::io;
use std::path::{Component, Path, PathBuf};
use std::pin::Pin;
use std::task::{Context, Poll};

use async_trait::async_trait;
use bytes::Bytes;
use md5::Digest;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;

use crate::{
    check_name, hex, object_checksum, segment_name, BackupError, BackupStore, Metadata, ObjectInfo,
    ObjectReader, Result, Segment, StoredObject, DEFAULT_SEGMENT_SIZE,
};

/// Bytes read from the source at a time; the only buffer of a `put`.
const CHUNK: usize = 256 * 1024;

/// Scheme of local locations.
pub const FILE_SCHEME: &str = "file://";

/// The metadata file beside an object.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Sidecar {
    etag: String,
    size: u64,
    static_large_object: bool,
    #[serde(default)]
    metadata: Metadata,
}

/// A [`BackupStore`] in a local directory (see the module doc).
#[derive(Debug, Clone)]
pub struct LocalStore {
    root: PathBuf,
    segment_size: u64,
}

impl LocalStore {
    /// A store rooted at `root` (an absolute path; created on the first `put`), with
    /// segments of at most [`DEFAULT_SEGMENT_SIZE`].
    pub fn new(root: impl Into<PathBuf>) -> Result<Self> {
        let root = root.into();
        if !root.is_absolute() || root.components().any(|c| c == Component::ParentDir) {
            return Err(BackupError::InvalidLocation {
                location: root.display().to_string(),
                reason: "the backup directory must be an absolute path without '..'".into(),
            });
        }
        Ok(LocalStore {
            root,
            segment_size: DEFAULT_SEGMENT_SIZE,
        })
    }

    /// A store from a `file:///<root>` URL (the form a local store's base URL takes where
    /// Trove has its `swift_url`).
    pub fn from_url(url: &str) -> Result<Self> {
        let path = url
            .strip_prefix(FILE_SCHEME)
            .ok_or_else(|| BackupError::InvalidLocation {
                location: url.into(),
                reason: "a local backup store URL starts with file://".into(),
            })?;
        Self::new(path.trim_end_matches('/'))
    }

    /// The store that holds the object at `location` (`file://<root>/<container>/<object>`).
    pub fn for_location(location: &str) -> Result<Self> {
        let path = parse_location(location)?;
        let root =
            path.parent()
                .and_then(Path::parent)
                .ok_or_else(|| BackupError::InvalidLocation {
                    location: location.into(),
                    reason: "expected file://<root>/<container>/<object>".into(),
                })?;
        Self::new(root)
    }

    /// The same store with segments of at most `bytes` (at least 1).
    pub fn with_segment_size(mut self, bytes: u64) -> Self {
        self.segment_size = bytes.max(1);
        self
    }

    /// The store's directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Maximum segment size in bytes.
    pub fn segment_size(&self) -> u64 {
        self.segment_size
    }

    /// The URL of this store (`file://<root>`).
    pub fn url(&self) -> String {
        format!("{FILE_SCHEME}{}", self.root.display())
    }

    /// Location of `object` in `container`.
    pub fn location(&self, container: &str, object: &str) -> String {
        format!("{}/{container}/{object}", self.url())
    }

    /// `(container dir, container, object)` of a location of this store.
    fn resolve(&self, location: &str) -> Result<(PathBuf, String, String)> {
        let path = parse_location(location)?;
        let invalid = |reason: &str| BackupError::InvalidLocation {
            location: location.into(),
            reason: reason.into(),
        };
        let object = path
            .file_name()
            .and_then(|n| n.to_str())
            .ok_or_else(|| invalid("no object name"))?
            .to_owned();
        let dir = path
            .parent()
            .ok_or_else(|| invalid("no container"))?
            .to_path_buf();
        let container = dir
            .file_name()
            .and_then(|n| n.to_str())
            .ok_or_else(|| invalid("no container"))?
            .to_owned();
        if dir.parent() != Some(self.root.as_path()) {
            return Err(invalid(&format!(
                "not in this store ({})",
                self.root.display()
            )));
        }
        check_name("container", &container)?;
        check_name("object", &object)?;
        Ok((dir, container, object))
    }

    async fn read_sidecar(&self, dir: &Path, object: &str, location: &str) -> Result<Sidecar> {
        let path = sidecar_path(dir, object);
        let text = match tokio::fs::read(&path).await {
            Ok(t) => t,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(BackupError::NotFound(location.into()))
            }
            Err(e) => return Err(BackupError::io(format!("reading {}", path.display()), e)),
        };
        serde_json::from_slice(&text).map_err(|e| BackupError::Corrupt {
            location: location.into(),
            detail: format!("unreadable metadata file {}: {e}", path.display()),
        })
    }

    /// The segments of an object, as files, with what they should contain.
    async fn segments_of(
        &self,
        dir: &Path,
        container: &str,
        object: &str,
        side: &Sidecar,
        location: &str,
    ) -> Result<Vec<(PathBuf, Segment)>> {
        let obj_path = dir.join(object);
        if !side.static_large_object {
            return Ok(vec![(
                obj_path,
                Segment {
                    path: format!("{container}/{object}"),
                    etag: side.etag.clone(),
                    size_bytes: side.size,
                },
            )]);
        }
        let text = match tokio::fs::read(&obj_path).await {
            Ok(t) => t,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(BackupError::NotFound(location.into()))
            }
            Err(e) => {
                return Err(BackupError::io(
                    format!("reading {}", obj_path.display()),
                    e,
                ))
            }
        };
        let corrupt = |detail: String| BackupError::Corrupt {
            location: location.into(),
            detail,
        };
        let manifest: Vec<Segment> = serde_json::from_slice(&text)
            .map_err(|e| corrupt(format!("unreadable manifest: {e}")))?;
        let mut out = Vec::with_capacity(manifest.len());
        for seg in manifest {
            let name = seg
                .path
                .strip_prefix(container)
                .and_then(|p| p.strip_prefix('/'))
                .ok_or_else(|| {
                    corrupt(format!(
                        "manifest names segment '{}' outside container {container}",
                        seg.path
                    ))
                })?;
            check_name("segment", name).map_err(|e| corrupt(e.to_string()))?;
            out.push((dir.join(name), seg));
        }
        if out.is_empty() {
            return Err(corrupt("the manifest lists no segment".into()));
        }
        Ok(out)
    }

    async fn info(&self, location: &str) -> Result<(ObjectInfo, Vec<PathBuf>)> {
        let (dir, container, object) = self.resolve(location)?;
        let side = self.read_sidecar(&dir, &object, location).await?;
        let segs = self
            .segments_of(&dir, &container, &object, &side, location)
            .await?;
        let (paths, segments): (Vec<_>, Vec<_>) = segs.into_iter().unzip();
        Ok((
            ObjectInfo {
                location: location.into(),
                checksum: side.etag,
                size: side.size,
                metadata: side.metadata,
                segments,
            },
            paths,
        ))
    }

    /// Writes one segment from `data`: at most `segment_size` bytes. Returns its MD5, its
    /// length and whether `data` ended.
    async fn write_segment(
        &self,
        path: &Path,
        data: &mut (dyn AsyncRead + Send + Unpin),
        buf: &mut [u8],
    ) -> Result<(String, u64, bool)> {
        let ctx = || format!("writing backup segment {}", path.display());
        let mut file = tokio::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(path)
            .await
            .map_err(|e| BackupError::io(ctx(), e))?;
        let mut md5 = md5::Md5::new();
        let mut written = 0u64;
        let mut ended = false;
        while written < self.segment_size {
            let want = usize::try_from(self.segment_size - written)
                .unwrap_or(usize::MAX)
                .min(buf.len());
            let n = data
                .read(&mut buf[..want])
                .await
                .map_err(|e| BackupError::io("reading the backup stream", e))?;
            if n == 0 {
                ended = true;
                break;
            }
            file.write_all(&buf[..n])
                .await
                .map_err(|e| BackupError::io(ctx(), e))?;
            md5.update(&buf[..n]);
            written += n as u64;
        }
        file.sync_all()
            .await
            .map_err(|e| BackupError::io(ctx(), e))?;
        Ok((hex(&md5.finalize()), written, ended))
    }

    async fn put_inner(
        &self,
        dir: &Path,
        container: &str,
        object: &str,
        data: &mut (dyn AsyncRead + Send + Unpin),
        metadata: &Metadata,
        created: &mut Vec<PathBuf>,
    ) -> Result<StoredObject> {
        let mut buf = vec![0u8; CHUNK];
        let mut segments: Vec<Segment> = Vec::new();
        loop {
            let name = segment_name(object, segments.len());
            let path = dir.join(&name);
            created.push(path.clone());
            let (etag, size, ended) = self.write_segment(&path, data, &mut buf).await?;
            if size == 0 && !segments.is_empty() {
                // The stream ended exactly at a segment boundary.
                remove_quiet(&path).await;
                created.pop();
                break;
            }
            segments.push(Segment {
                path: format!("{container}/{name}"),
                etag,
                size_bytes: size,
            });
            if ended {
                break;
            }
        }
        let checksum = object_checksum(&segments);
        let size: u64 = segments.iter().map(|s| s.size_bytes).sum();
        let large = segments.len() > 1;
        let side = Sidecar {
            etag: checksum.clone(),
            size,
            static_large_object: large,
            metadata: metadata.clone(),
        };
        let side_path = sidecar_path(dir, object);
        let side_json = serde_json::to_vec(&side)
            .map_err(|e| BackupError::io("encoding object metadata", io::Error::other(e)))?;
        created.push(side_path.clone());
        write_atomic(&side_path, &side_json).await?;
        let obj_path = dir.join(object);
        if large {
            let manifest = serde_json::to_vec(&segments)
                .map_err(|e| BackupError::io("encoding the manifest", io::Error::other(e)))?;
            created.push(obj_path.clone());
            write_atomic(&obj_path, &manifest).await?;
        } else {
            let seg_path = created
                .first()
                .cloned()
                .unwrap_or_else(|| dir.join(segment_name(object, 0)));
            created.push(obj_path.clone());
            tokio::fs::rename(&seg_path, &obj_path)
                .await
                .map_err(|e| BackupError::io(format!("renaming to {}", obj_path.display()), e))?;
        }
        sync_dir(dir).await;
        Ok(StoredObject {
            location: self.location(container, object),
            checksum,
            size,
            segments: segments.len(),
        })
    }
}

#[async_trait]
impl BackupStore for LocalStore {
    async fn put(
        &self,
        container: &str,
        object: &str,
        data: &mut (dyn AsyncRead + Send + Unpin),
        metadata: &Metadata,
    ) -> Result<StoredObject> {
        check_name("container", container)?;
        check_name("object", object)?;
        let dir = self.root.join(container);
        tokio::fs::create_dir_all(&dir)
            .await
            .map_err(|e| BackupError::io(format!("creating {}", dir.display()), e))?;
        let location = self.location(container, object);
        if tokio::fs::try_exists(dir.join(object))
            .await
            .unwrap_or(true)
            || tokio::fs::try_exists(sidecar_path(&dir, object))
                .await
                .unwrap_or(true)
        {
            return Err(BackupError::AlreadyExists(location));
        }
        let mut created = Vec::new();
        match self
            .put_inner(&dir, container, object, data, metadata, &mut created)
            .await
        {
            Ok(stored) => {
                tracing::info!(location = %stored.location, size = stored.size,
                    segments = stored.segments, checksum = %stored.checksum, "backup object stored");
                Ok(stored)
            }
            Err(e) => {
                for p in created.iter().rev() {
                    remove_quiet(p).await;
                }
                tracing::warn!(location = %location, error = %e, "backup object not stored; its segments were removed");
                Err(e)
            }
        }
    }

    async fn head(&self, location: &str) -> Result<ObjectInfo> {
        Ok(self.info(location).await?.0)
    }

    async fn verify(&self, location: &str, expected_checksum: Option<&str>) -> Result<ObjectInfo> {
        let (info, paths) = self.info(location).await?;
        crate::refuse_unsupported(&info)?;
        crate::check_expected(&info, expected_checksum)?;
        let actual = object_checksum(&info.segments);
        if actual != info.checksum {
            return Err(BackupError::Corrupt {
                location: location.into(),
                detail: format!(
                    "the segments' checksum {actual} differs from the recorded {}",
                    info.checksum
                ),
            });
        }
        let mut buf = vec![0u8; CHUNK];
        for (path, seg) in paths.iter().zip(&info.segments) {
            let mut file = open_segment(path, location).await?;
            let mut md5 = md5::Md5::new();
            let mut size = 0u64;
            loop {
                let n = file
                    .read(&mut buf)
                    .await
                    .map_err(|e| BackupError::io(format!("reading {}", path.display()), e))?;
                if n == 0 {
                    break;
                }
                md5.update(&buf[..n]);
                size += n as u64;
            }
            check_segment(location, seg, &hex(&md5.finalize()), size)?;
        }
        Ok(info)
    }

    async fn get(&self, location: &str, expected_checksum: Option<&str>) -> Result<ObjectReader> {
        let info = self.verify(location, expected_checksum).await?;
        let (_, paths) = self.info(location).await?;
        let (tx, rx) = mpsc::channel::<io::Result<Bytes>>(4);
        let location = location.to_owned();
        tokio::spawn(async move {
            for (path, seg) in paths.iter().zip(&info.segments) {
                if let Err(e) = stream_segment(path, seg, &location, &tx).await {
                    let _ = tx
                        .send(Err(io::Error::new(io::ErrorKind::InvalidData, e)))
                        .await;
                    return;
                }
            }
        });
        Ok(Box::pin(tokio_util::io::StreamReader::new(ChunkStream(rx))))
    }

    async fn set_metadata(&self, location: &str, metadata: &Metadata) -> Result<()> {
        let (dir, _, object) = self.resolve(location)?;
        let mut side = self.read_sidecar(&dir, &object, location).await?;
        side.metadata = metadata.clone();
        let json = serde_json::to_vec(&side)
            .map_err(|e| BackupError::io("encoding object metadata", io::Error::other(e)))?;
        write_atomic(&sidecar_path(&dir, &object), &json).await
    }

    async fn delete(&self, location: &str) -> Result<()> {
        let (dir, container, object) = self.resolve(location)?;
        let side = self.read_sidecar(&dir, &object, location).await?;
        if side.static_large_object {
            match self
                .segments_of(&dir, &container, &object, &side, location)
                .await
            {
                Ok(segs) => {
                    for (path, _) in segs {
                        remove_file(&path).await?;
                    }
                }
                // A manifest that cannot be read still leaves segments named after the object.
                Err(e) => {
                    tracing::warn!(location, error = %e, "manifest unreadable; removing segments by name");
                    for i in 0.. {
                        let p = dir.join(segment_name(&object, i));
                        if !tokio::fs::try_exists(&p).await.unwrap_or(false) {
                            break;
                        }
                        remove_file(&p).await?;
                    }
                }
            }
        }
        remove_file(&dir.join(&object)).await?;
        remove_file(&sidecar_path(&dir, &object)).await?;
        sync_dir(&dir).await;
        tracing::info!(location, "backup object deleted");
        Ok(())
    }
}

/// Sends one segment's bytes, checking its MD5 and size at its end.
async fn stream_segment(
    path: &Path,
    seg: &Segment,
    location: &str,
    tx: &mpsc::Sender<io::Result<Bytes>>,
) -> Result<()> {
    let mut file = open_segment(path, location).await?;
    let mut md5 = md5::Md5::new();
    let mut size = 0u64;
    loop {
        let mut buf = vec![0u8; CHUNK];
        let n = file
            .read(&mut buf)
            .await
            .map_err(|e| BackupError::io(format!("reading {}", path.display()), e))?;
        if n == 0 {
            break;
        }
        buf.truncate(n);
        md5.update(&buf);
        size += n as u64;
        if size > seg.size_bytes {
            return check_segment(location, seg, "", size);
        }
        if tx.send(Ok(Bytes::from(buf))).await.is_err() {
            // The reader is gone.
            return Ok(());
        }
    }
    check_segment(location, seg, &hex(&md5.finalize()), size)
}

struct ChunkStream(mpsc::Receiver<io::Result<Bytes>>);

impl futures::Stream for ChunkStream {
    type Item = io::Result<Bytes>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.0.poll_recv(cx)
    }
}

fn check_segment(location: &str, seg: &Segment, md5: &str, size: u64) -> Result<()> {
    if size != seg.size_bytes {
        return Err(BackupError::Corrupt {
            location: location.into(),
            detail: format!(
                "segment {} has {size} bytes or more, the manifest records {}",
                seg.path, seg.size_bytes
            ),
        });
    }
    if md5 != seg.etag {
        return Err(BackupError::Corrupt {
            location: location.into(),
            detail: format!(
                "segment {} has MD5 {md5}, the manifest records {}",
                seg.path, seg.etag
            ),
        });
    }
    Ok(())
}

fn parse_location(location: &str) -> Result<PathBuf> {
    let invalid = |reason: &str| BackupError::InvalidLocation {
        location: location.into(),
        reason: reason.into(),
    };
    let path = location
        .strip_prefix(FILE_SCHEME)
        .ok_or_else(|| invalid("a local backup location starts with file://"))?;
    let path = PathBuf::from(path);
    if !path.is_absolute() {
        return Err(invalid("the path must be absolute"));
    }
    if path
        .components()
        .any(|c| matches!(c, Component::ParentDir | Component::CurDir))
    {
        return Err(invalid("the path must not contain '.' or '..'"));
    }
    Ok(path)
}

fn sidecar_path(dir: &Path, object: &str) -> PathBuf {
    dir.join(format!(".{object}.meta"))
}

async fn open_segment(path: &Path, location: &str) -> Result<tokio::fs::File> {
    match tokio::fs::File::open(path).await {
        Ok(f) => Ok(f),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Err(BackupError::Corrupt {
            location: location.into(),
            detail: format!("segment {} is missing", path.display()),
        }),
        Err(e) => Err(BackupError::io(format!("opening {}", path.display()), e)),
    }
}

async fn write_atomic(path: &Path, contents: &[u8]) -> Result<()> {
    let tmp = path.with_file_name(format!(
        ".{}.tmp",
        path.file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("object")
    ));
    let ctx = || format!("writing {}", path.display());
    let mut f = tokio::fs::File::create(&tmp)
        .await
        .map_err(|e| BackupError::io(ctx(), e))?;
    let r = async {
        f.write_all(contents).await?;
        f.sync_all().await?;
        tokio::fs::rename(&tmp, path).await
    }
    .await;
    if let Err(e) = r {
        remove_quiet(&tmp).await;
        return Err(BackupError::io(ctx(), e));
    }
    Ok(())
}

async fn remove_file(path: &Path) -> Result<()> {
    match tokio::fs::remove_file(path).await {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(BackupError::io(format!("removing {}", path.display()), e)),
    }
}

async fn remove_quiet(path: &Path) {
    if let Err(e) = remove_file(path).await {
        tracing::warn!(error = %e, "cleanup failed");
    }
}

async fn sync_dir(dir: &Path) {
    if let Ok(d) = tokio::fs::File::open(dir).await {
        let _ = d.sync_all().await;
    }
}
