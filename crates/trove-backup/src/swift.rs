//! [`SwiftStore`]: backup objects in an OpenStack Swift account, reached with the user's
//! Keystone token and the account's URL (`<swift_url>` = the `object-store` endpoint of the
//! user's catalog, e.g. `https://swift.example/v1/AUTH_<project id>`).
//!
//! ```text
//! <swift_url>/<container>                  created on the first put when missing
//! <swift_url>/<container>/<prefix>_00000000 …  segments (PUT, streamed, ETag = MD5 checked)
//! <swift_url>/<container>/<object>         one segment: a server-side copy of it (the segment
//!                                          is then deleted); several: a Static Large Object
//!                                          manifest (PUT ?multipart-manifest=put)
//!                                          metadata: X-Object-Meta-<key, '_' as '-'>
//! ```
//!
//! A segment is streamed to Swift as it is read (chunked transfer), so a `put` holds a few
//! chunks of [`CHUNK`] bytes at a time whatever the segment size. Swift's answer to each
//! PUT carries the ETag it computed; it must be the MD5 of what was sent. After the
//! manifest (or the copy) the object is HEADed and its ETag (quotes stripped: Swift quotes
//! the ETag of a large object) compared with the checksum.
//!
//! Any failure of a `put` (Swift unreachable, a refusal such as a full quota (413), an
//! error of the input stream, an ETag that does not match) deletes what was written so
//! far: the object, then the segments, retrying for [`SwiftStore::cleanup_patience`] while
//! Swift does not answer.
//!
//! Reading (`verify`, `get`) fetches every segment directly (`<container>/<segment>` from
//! the manifest, `GET ?multipart-manifest=get`) and checks its size and MD5 against the
//! manifest, and the manifest's segment MD5s against the object's checksum: a segment
//! overwritten after the backup is refused.

use std::io;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use bytes::{Bytes, BytesMut};
use md5::Digest;
use reqwest::header::{HeaderMap, HeaderValue, CONTENT_LENGTH, ETAG};
use reqwest::{Method, RequestBuilder, Response, StatusCode};
use serde::Deserialize;
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::sync::mpsc;

use crate::{
    check_name, hex, object_checksum, segment_name, BackupError, BackupStore, Metadata, ObjectInfo,
    ObjectReader, Result, Segment, StoredObject, DEFAULT_SEGMENT_SIZE,
};

/// Bytes read from the source at a time.
pub const CHUNK: usize = 256 * 1024;

/// Chunks queued between the reader of the source and the HTTP body.
const QUEUED_CHUNKS: usize = 2;

/// Prefix of Swift's user metadata headers.
const META_PREFIX: &str = "x-object-meta-";

/// Swift's default metadata constraints (`/info` `swift.max_meta_*`).
const MAX_META_NAME: usize = 128;
const MAX_META_VALUE: usize = 256;
const MAX_META_COUNT: usize = 90;
const MAX_META_OVERALL: usize = 4096;

/// Timeout of the requests that move no object data (HEAD, POST, DELETE, manifests).
const SHORT_TIMEOUT: Duration = Duration::from_secs(60);
/// Timeout of a server-side copy (a whole segment is copied inside Swift).
const COPY_TIMEOUT: Duration = Duration::from_secs(30 * 60);
/// Largest manifest read (Swift's own limit is 8 MiB).
const MAX_MANIFEST: usize = 16 * 1024 * 1024;

/// A Keystone token. Its `Debug` form does not show it.
#[derive(Clone, PartialEq, Eq)]
pub struct AuthToken(String);

impl AuthToken {
    /// Wraps `token`.
    pub fn new(token: impl Into<String>) -> Self {
        AuthToken(token.into())
    }

    /// The token itself.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for AuthToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AuthToken(<redacted>)")
    }
}

/// A [`BackupStore`] in a Swift account (see the module doc).
#[derive(Clone)]
pub struct SwiftStore {
    base: String,
    token: HeaderValue,
    client: reqwest::Client,
    segment_size: u64,
    cleanup_patience: Duration,
}

impl std::fmt::Debug for SwiftStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SwiftStore")
            .field("url", &self.base)
            .field("segment_size", &self.segment_size)
            .finish_non_exhaustive()
    }
}

/// Whether `url` is an `http://` or `https://` URL.
pub fn is_http_url(url: &str) -> bool {
    let lower = url.get(..8).unwrap_or(url).to_ascii_lowercase();
    lower.starts_with("http://") || lower.starts_with("https://")
}

impl SwiftStore {
    /// A store for the account at `url` (`http(s)://host[:port]/v1/AUTH_<project>`), acting
    /// with `token`, with segments of at most [`DEFAULT_SEGMENT_SIZE`].
    pub fn new(url: &str, token: &str) -> Result<Self> {
        let base = url.trim().trim_end_matches('/').to_owned();
        let invalid = |reason: &str| BackupError::InvalidLocation {
            location: url.into(),
            reason: reason.into(),
        };
        if !is_http_url(&base) {
            return Err(invalid("a Swift URL starts with http:// or https://"));
        }
        let parsed = reqwest::Url::parse(&base).map_err(|e| invalid(&e.to_string()))?;
        if parsed.host_str().is_none_or(str::is_empty)
            || parsed.query().is_some()
            || parsed.fragment().is_some()
        {
            return Err(invalid(
                "expected http(s)://<host>[:<port>]/<path of the account>",
            ));
        }
        let token = token.trim();
        if token.is_empty() {
            return Err(BackupError::NoToken(base));
        }
        let mut token = HeaderValue::from_str(token).map_err(|_| BackupError::Unauthorized {
            url: base.clone(),
            detail: "the token is not a valid HTTP header value".into(),
        })?;
        token.set_sensitive(true);
        let client = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .tcp_keepalive(Duration::from_secs(30))
            .build()
            .map_err(|e| BackupError::Remote {
                context: "creating the HTTP client of the Swift store".into(),
                status: None,
                detail: e.to_string(),
            })?;
        Ok(SwiftStore {
            base,
            token,
            client,
            segment_size: DEFAULT_SEGMENT_SIZE,
            cleanup_patience: Duration::from_secs(20),
        })
    }

    /// The store that holds the object at `location` (`<swift_url>/<container>/<object>`).
    pub fn for_location(location: &str, token: &str) -> Result<Self> {
        let (base, container, object) = split_location(location)?;
        check_name("container", container)?;
        check_name("object", object)?;
        Self::new(base, token)
    }

    /// The same store with segments of at most `bytes` (at least 1).
    pub fn with_segment_size(mut self, bytes: u64) -> Self {
        self.segment_size = bytes.max(1);
        self
    }

    /// The same store retrying the removal of a failed upload's objects for `patience`
    /// while Swift does not answer (default 20 s).
    pub fn with_cleanup_patience(mut self, patience: Duration) -> Self {
        self.cleanup_patience = patience;
        self
    }

    /// Maximum segment size in bytes.
    pub fn segment_size(&self) -> u64 {
        self.segment_size
    }

    /// How long a failed upload's removal is retried.
    pub fn cleanup_patience(&self) -> Duration {
        self.cleanup_patience
    }

    /// The account URL.
    pub fn url(&self) -> &str {
        &self.base
    }

    /// Location of `object` in `container`: its URL.
    pub fn location(&self, container: &str, object: &str) -> String {
        format!("{}/{container}/{object}", self.base)
    }

    /// `(container, object)` of a location of this store.
    fn resolve<'a>(&self, location: &'a str) -> Result<(&'a str, &'a str)> {
        let (base, container, object) = split_location(location)?;
        if base != self.base {
            return Err(BackupError::InvalidLocation {
                location: location.into(),
                reason: format!("not in this Swift account ({})", self.base),
            });
        }
        check_name("container", container)?;
        check_name("object", object)?;
        Ok((container, object))
    }

    fn request(&self, method: Method, url: &str) -> RequestBuilder {
        self.client
            .request(method, url)
            .header("X-Auth-Token", self.token.clone())
    }

    /// Sends `req`; a transport error becomes [`BackupError::Remote`] without a status.
    async fn send(&self, req: RequestBuilder, context: impl Fn() -> String) -> Result<Response> {
        req.send().await.map_err(|e| BackupError::Remote {
            context: context(),
            status: None,
            detail: format!("Swift did not answer: {}", error_chain(&e)),
        })
    }

    /// Sends `req` and requires a 2xx answer (404 is [`BackupError::NotFound`] of
    /// `not_found`, when given).
    async fn send_ok(
        &self,
        req: RequestBuilder,
        not_found: Option<&str>,
        context: impl Fn() -> String,
    ) -> Result<Response> {
        let resp = self.send(req, &context).await?;
        if resp.status().is_success() {
            return Ok(resp);
        }
        if resp.status() == StatusCode::NOT_FOUND {
            if let Some(what) = not_found {
                return Err(BackupError::NotFound(what.into()));
            }
        }
        Err(refusal(resp, &context()).await)
    }

    fn container_url(&self, container: &str) -> String {
        format!("{}/{container}", self.base)
    }

    fn object_url(&self, container: &str, object: &str) -> String {
        format!("{}/{container}/{object}", self.base)
    }

    /// Creates `container` unless it exists.
    async fn ensure_container(&self, container: &str) -> Result<()> {
        let url = self.container_url(container);
        let ctx = || format!("checking Swift container {url}");
        let resp = self
            .send(self.request(Method::HEAD, &url).timeout(SHORT_TIMEOUT), ctx)
            .await?;
        if resp.status().is_success() {
            return Ok(());
        }
        if resp.status() != StatusCode::NOT_FOUND {
            return Err(refusal(resp, &ctx()).await);
        }
        self.send_ok(
            self.request(Method::PUT, &url)
                .header(CONTENT_LENGTH, 0)
                .timeout(SHORT_TIMEOUT),
            None,
            || format!("creating Swift container {url}"),
        )
        .await?;
        tracing::info!(container = %url, "Swift container created");
        Ok(())
    }

    /// HEAD of an object: `None` when it does not exist.
    async fn head_object(&self, container: &str, object: &str) -> Result<Option<HeaderMap>> {
        let url = self.object_url(container, object);
        let ctx = || format!("reading the headers of Swift object {url}");
        let resp = self
            .send(self.request(Method::HEAD, &url).timeout(SHORT_TIMEOUT), ctx)
            .await?;
        if resp.status() == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        if !resp.status().is_success() {
            return Err(refusal(resp, &ctx()).await);
        }
        Ok(Some(resp.headers().clone()))
    }

    /// Uploads one segment: `first` (already read, not empty unless the whole stream is
    /// empty) and then what `data` yields, up to the segment size. Returns the MD5, the
    /// size and whether `data` ended.
    async fn put_segment(
        &self,
        container: &str,
        name: &str,
        first: Bytes,
        data: &mut (dyn AsyncRead + Send + Unpin),
    ) -> Result<(String, u64, bool)> {
        let url = self.object_url(container, name);
        let ctx = || format!("uploading backup segment {url}");
        let (tx, rx) = mpsc::channel::<io::Result<Bytes>>(QUEUED_CHUNKS);
        let body = reqwest::Body::wrap_stream(futures::stream::unfold(rx, |mut rx| async move {
            rx.recv().await.map(|item| (item, rx))
        }));
        let upload = self.send(self.request(Method::PUT, &url).body(body), ctx);
        let segment_size = self.segment_size;
        let feed = async move {
            let mut md5 = md5::Md5::new();
            let mut size = 0u64;
            let mut next = Some(first);
            loop {
                let chunk = match next.take() {
                    Some(c) => c,
                    None if size >= segment_size => break,
                    None => {
                        let want = usize::try_from(segment_size - size)
                            .unwrap_or(usize::MAX)
                            .min(CHUNK);
                        match read_chunk(data, want).await {
                            Ok(c) => c,
                            Err(e) => {
                                // Abort the request: Swift must not store a short segment.
                                let _ = tx
                                    .send(Err(io::Error::new(e.kind(), "backup stream failed")))
                                    .await;
                                return Err(BackupError::io("reading the backup stream", e));
                            }
                        }
                    }
                };
                if chunk.is_empty() {
                    return Ok(Some((hex(&md5.finalize()), size, true)));
                }
                md5.update(&chunk);
                size += chunk.len() as u64;
                if tx.send(Ok(chunk)).await.is_err() {
                    // The request ended before its body: its outcome says why.
                    return Ok(None);
                }
            }
            Ok(Some((hex(&md5.finalize()), size, false)))
        };
        let (resp, fed) = tokio::join!(upload, feed);
        let fed = fed?;
        let resp = resp?;
        if !resp.status().is_success() {
            return Err(refusal(resp, &ctx()).await);
        }
        let Some((md5, size, ended)) = fed else {
            return Err(BackupError::Remote {
                context: ctx(),
                status: Some(resp.status().as_u16()),
                detail: "Swift answered before the segment was sent".into(),
            });
        };
        let etag = header_etag(resp.headers());
        if !etag.eq_ignore_ascii_case(&md5) {
            return Err(BackupError::Remote {
                context: ctx(),
                status: Some(resp.status().as_u16()),
                detail: format!("Swift stored it with ETag '{etag}', the data sent has MD5 {md5}"),
            });
        }
        Ok((md5, size, ended))
    }

    async fn put_inner(
        &self,
        container: &str,
        object: &str,
        data: &mut (dyn AsyncRead + Send + Unpin),
        metadata: &Metadata,
        written: &mut Written,
    ) -> Result<StoredObject> {
        let mut segments: Vec<Segment> = Vec::new();
        loop {
            let want = usize::try_from(self.segment_size)
                .unwrap_or(usize::MAX)
                .min(CHUNK);
            let first = read_chunk(data, want)
                .await
                .map_err(|e| BackupError::io("reading the backup stream", e))?;
            if first.is_empty() && !segments.is_empty() {
                // The stream ended exactly at a segment boundary.
                break;
            }
            let name = segment_name(object, segments.len());
            written.segments.push(name.clone());
            let (etag, size, ended) = self.put_segment(container, &name, first, data).await?;
            tracing::debug!(segment = %name, size, "backup segment stored");
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
        let url = self.object_url(container, object);
        let meta = metadata_headers(metadata)?;
        written.object = true;
        let resp = if let [only] = segments.as_slice() {
            // One segment: the object is a server-side copy of it; the segment goes.
            let resp = self
                .send_ok(
                    self.request(Method::PUT, &url)
                        .header("X-Copy-From", format!("/{}", only.path))
                        .header(CONTENT_LENGTH, 0)
                        .headers(meta)
                        .timeout(COPY_TIMEOUT),
                    None,
                    || format!("copying backup segment {} to {url}", only.path),
                )
                .await?;
            let seg_url = format!("{}/{}", self.base, only.path);
            self.send_ok(
                self.request(Method::DELETE, &seg_url)
                    .timeout(SHORT_TIMEOUT),
                None,
                || format!("deleting backup segment {seg_url} after copying it"),
            )
            .await?;
            written.segments.clear();
            resp
        } else {
            let manifest = serde_json::to_vec(&segments)
                .map_err(|e| BackupError::io("encoding the manifest", io::Error::other(e)))?;
            self.send_ok(
                self.request(Method::PUT, &format!("{url}?multipart-manifest=put"))
                    .headers(meta)
                    .body(manifest)
                    .timeout(SHORT_TIMEOUT),
                None,
                || format!("storing the manifest of {url}"),
            )
            .await?
        };
        let put_etag = header_etag(resp.headers());
        if !put_etag.is_empty() && !put_etag.eq_ignore_ascii_case(&checksum) {
            return Err(BackupError::Remote {
                context: format!("storing {url}"),
                status: Some(resp.status().as_u16()),
                detail: format!("Swift answered ETag '{put_etag}', expected {checksum}"),
            });
        }
        let headers =
            self.head_object(container, object)
                .await?
                .ok_or_else(|| BackupError::Remote {
                    context: format!("checking {url}"),
                    status: Some(404),
                    detail: "the object just stored is not there".into(),
                })?;
        let etag = header_etag(&headers);
        if !etag.eq_ignore_ascii_case(&checksum) {
            return Err(BackupError::Corrupt {
                location: url,
                detail: format!("Swift reports ETag '{etag}' for the object just stored, its segments give {checksum}"),
            });
        }
        Ok(StoredObject {
            location: self.location(container, object),
            checksum,
            size,
            segments: segments.len(),
        })
    }

    /// Deletes what a failed `put` wrote: the object first, then the segments; retries
    /// while Swift does not answer, for [`Self::cleanup_patience`]. Returns what is left.
    async fn remove_written(&self, container: &str, object: &str, written: Written) -> Vec<String> {
        let mut left: Vec<String> = Vec::new();
        if written.object {
            left.push(object.to_owned());
        }
        left.extend(written.segments);
        let deadline = Instant::now() + self.cleanup_patience;
        let mut delay = Duration::from_millis(250);
        loop {
            let mut still = Vec::new();
            for name in left {
                let url = self.object_url(container, &name);
                let r = self
                    .send_ok(
                        self.request(Method::DELETE, &url).timeout(SHORT_TIMEOUT),
                        Some(&url),
                        || format!("removing {url}"),
                    )
                    .await;
                match r {
                    Ok(_) | Err(BackupError::NotFound(_)) => {}
                    Err(e) => {
                        tracing::debug!(error = %e, "removal failed; will retry");
                        still.push(name);
                    }
                }
            }
            if still.is_empty() || Instant::now() + delay > deadline {
                return still;
            }
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(Duration::from_secs(4));
            left = still;
        }
    }

    /// The object's info, from its HEAD and, for a large object, its manifest.
    async fn info(&self, location: &str) -> Result<(ObjectInfo, bool)> {
        let (container, object) = self.resolve(location)?;
        let headers = self
            .head_object(container, object)
            .await?
            .ok_or_else(|| BackupError::NotFound(location.into()))?;
        let checksum = header_etag(&headers);
        let size = headers
            .get(CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0);
        let large = headers
            .get("x-static-large-object")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.eq_ignore_ascii_case("true"));
        let segments = if large {
            self.manifest(container, object, location).await?
        } else {
            vec![Segment {
                path: format!("{container}/{object}"),
                etag: checksum.clone(),
                size_bytes: size,
            }]
        };
        Ok((
            ObjectInfo {
                location: location.into(),
                checksum,
                size,
                metadata: parse_metadata(&headers),
                segments,
            },
            large,
        ))
    }

    /// The segments of a Static Large Object, from `GET ?multipart-manifest=get`.
    async fn manifest(
        &self,
        container: &str,
        object: &str,
        location: &str,
    ) -> Result<Vec<Segment>> {
        let url = self.object_url(container, object);
        let mut resp = self
            .send_ok(
                self.request(Method::GET, &format!("{url}?multipart-manifest=get"))
                    .timeout(SHORT_TIMEOUT),
                Some(location),
                || format!("reading the manifest of {url}"),
            )
            .await?;
        let mut body = Vec::new();
        while let Some(chunk) = resp.chunk().await.map_err(|e| BackupError::Remote {
            context: format!("reading the manifest of {url}"),
            status: None,
            detail: error_chain(&e),
        })? {
            body.extend_from_slice(&chunk);
            if body.len() > MAX_MANIFEST {
                return Err(BackupError::Corrupt {
                    location: location.into(),
                    detail: format!("the manifest is larger than {MAX_MANIFEST} bytes"),
                });
            }
        }
        let corrupt = |detail: String| BackupError::Corrupt {
            location: location.into(),
            detail,
        };
        let entries: Vec<ManifestEntry> = serde_json::from_slice(&body)
            .map_err(|e| corrupt(format!("unreadable manifest: {e}")))?;
        if entries.is_empty() {
            return Err(corrupt("the manifest lists no segment".into()));
        }
        let mut out = Vec::with_capacity(entries.len());
        for e in entries {
            let path = e.name.trim_start_matches('/').to_owned();
            let ok = path.split_once('/').is_some_and(|(c, n)| {
                check_name("container", c).is_ok() && check_name("segment", n).is_ok()
            });
            if !ok {
                return Err(BackupError::Unsupported(format!(
                    "backup object {location} has a segment '{path}' this store does not read (expected <container>/<segment name>)"
                )));
            }
            let etag = e.hash.trim_matches('"').to_ascii_lowercase();
            out.push(Segment {
                path,
                etag,
                size_bytes: e.bytes,
            });
        }
        Ok(out)
    }

    /// GETs one segment (or the whole object of a one-segment backup) and passes its
    /// chunks to `each`; checks its size and MD5 at the end.
    async fn read_segment<F>(&self, location: &str, seg: &Segment, mut each: F) -> Result<bool>
    where
        F: FnMut(Bytes) -> futures::future::BoxFuture<'static, bool>,
    {
        let url = format!("{}/{}", self.base, seg.path);
        let ctx = || format!("reading backup segment {url}");
        let resp = self.send(self.request(Method::GET, &url), ctx).await?;
        if resp.status() == StatusCode::NOT_FOUND {
            return Err(BackupError::Corrupt {
                location: location.into(),
                detail: format!("segment {} is missing", seg.path),
            });
        }
        if !resp.status().is_success() {
            return Err(refusal(resp, &ctx()).await);
        }
        let mut resp = resp;
        let mut md5 = md5::Md5::new();
        let mut size = 0u64;
        while let Some(chunk) = resp.chunk().await.map_err(|e| BackupError::Remote {
            context: ctx(),
            status: None,
            detail: error_chain(&e),
        })? {
            md5.update(&chunk);
            size += chunk.len() as u64;
            if size > seg.size_bytes {
                return check_segment(location, seg, "", size).map(|_| false);
            }
            if !each(chunk).await {
                return Ok(false);
            }
        }
        check_segment(location, seg, &hex(&md5.finalize()), size)?;
        Ok(true)
    }
}

/// What a `put` has written so far.
#[derive(Debug, Default)]
struct Written {
    segments: Vec<String>,
    object: bool,
}

#[derive(Deserialize)]
struct ManifestEntry {
    #[serde(alias = "path")]
    name: String,
    #[serde(alias = "etag")]
    hash: String,
    #[serde(alias = "size_bytes")]
    bytes: u64,
}

#[async_trait]
impl BackupStore for SwiftStore {
    async fn put(
        &self,
        container: &str,
        object: &str,
        data: &mut (dyn AsyncRead + Send + Unpin),
        metadata: &Metadata,
    ) -> Result<StoredObject> {
        check_name("container", container)?;
        check_name("object", object)?;
        metadata_headers(metadata)?;
        let location = self.location(container, object);
        self.ensure_container(container).await?;
        if self.head_object(container, object).await?.is_some() {
            return Err(BackupError::AlreadyExists(location));
        }
        let mut written = Written::default();
        match self
            .put_inner(container, object, data, metadata, &mut written)
            .await
        {
            Ok(stored) => {
                tracing::info!(location = %stored.location, size = stored.size,
                    segments = stored.segments, checksum = %stored.checksum, "backup object stored in Swift");
                Ok(stored)
            }
            Err(e) => {
                let left = self.remove_written(container, object, written).await;
                if left.is_empty() {
                    tracing::warn!(location = %location, error = %e,
                        "backup object not stored; what was written is removed");
                } else {
                    tracing::error!(location = %location, error = %e, left = ?left,
                        "backup object not stored; these objects could not be removed");
                }
                Err(e)
            }
        }
    }

    async fn head(&self, location: &str) -> Result<ObjectInfo> {
        Ok(self.info(location).await?.0)
    }

    async fn verify(&self, location: &str, expected_checksum: Option<&str>) -> Result<ObjectInfo> {
        let (info, large) = self.info(location).await?;
        crate::refuse_unsupported(&info)?;
        crate::check_expected(&info, expected_checksum)?;
        if large {
            let actual = object_checksum(&info.segments);
            let total: u64 = info.segments.iter().map(|s| s.size_bytes).sum();
            if actual != info.checksum || total != info.size {
                return Err(BackupError::Corrupt {
                    location: location.into(),
                    detail: format!(
                        "the manifest's segments give checksum {actual} and {total} bytes, the object records {} and {} bytes",
                        info.checksum, info.size
                    ),
                });
            }
        }
        for seg in &info.segments {
            self.read_segment(location, seg, |_| Box::pin(async { true }))
                .await?;
        }
        Ok(info)
    }

    async fn get(&self, location: &str, expected_checksum: Option<&str>) -> Result<ObjectReader> {
        let info = self.verify(location, expected_checksum).await?;
        let (tx, rx) = mpsc::channel::<io::Result<Bytes>>(4);
        let store = self.clone();
        let location = location.to_owned();
        tokio::spawn(async move {
            for seg in &info.segments {
                let sender = tx.clone();
                let r = store
                    .read_segment(&location, seg, move |chunk| {
                        let sender = sender.clone();
                        Box::pin(async move { sender.send(Ok(chunk)).await.is_ok() })
                    })
                    .await;
                match r {
                    Ok(true) => {}
                    // The reader is gone.
                    Ok(false) => return,
                    Err(e) => {
                        let _ = tx
                            .send(Err(io::Error::new(io::ErrorKind::InvalidData, e)))
                            .await;
                        return;
                    }
                }
            }
        });
        let stream = futures::stream::unfold(rx, |mut rx| async move {
            rx.recv().await.map(|item| (item, rx))
        });
        Ok(Box::pin(tokio_util::io::StreamReader::new(stream)))
    }

    async fn set_metadata(&self, location: &str, metadata: &Metadata) -> Result<()> {
        let (container, object) = self.resolve(location)?;
        let headers = metadata_headers(metadata)?;
        let url = self.object_url(container, object);
        self.send_ok(
            self.request(Method::POST, &url)
                .headers(headers)
                .header(CONTENT_LENGTH, 0)
                .timeout(SHORT_TIMEOUT),
            Some(location),
            || format!("setting the metadata of {url}"),
        )
        .await?;
        Ok(())
    }

    async fn delete(&self, location: &str) -> Result<()> {
        let (container, object) = self.resolve(location)?;
        let headers = self
            .head_object(container, object)
            .await?
            .ok_or_else(|| BackupError::NotFound(location.into()))?;
        let large = headers
            .get("x-static-large-object")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.eq_ignore_ascii_case("true"));
        let url = self.object_url(container, object);
        if !large {
            self.send_ok(
                self.request(Method::DELETE, &url).timeout(SHORT_TIMEOUT),
                Some(location),
                || format!("deleting {url}"),
            )
            .await?;
            tracing::info!(location, "backup object deleted from Swift");
            return Ok(());
        }
        let ctx = || format!("deleting {url} and its segments");
        let resp = self
            .send_ok(
                self.request(Method::DELETE, &format!("{url}?multipart-manifest=delete"))
                    .header("Accept", "application/json")
                    .timeout(COPY_TIMEOUT),
                Some(location),
                ctx,
            )
            .await?;
        // Swift answers 200 and reports the outcome of each deletion in the body.
        let text = resp.text().await.map_err(|e| BackupError::Remote {
            context: ctx(),
            status: None,
            detail: error_chain(&e),
        })?;
        #[derive(Deserialize)]
        struct BulkDelete {
            #[serde(rename = "Response Status", default)]
            status: String,
            #[serde(rename = "Errors", default)]
            errors: Vec<serde_json::Value>,
        }
        let outcome: BulkDelete = serde_json::from_str(&text).map_err(|e| BackupError::Remote {
            context: ctx(),
            status: None,
            detail: format!("unreadable answer ({e}): {}", excerpt(&text)),
        })?;
        if !outcome.errors.is_empty() || !outcome.status.starts_with('2') {
            return Err(BackupError::Remote {
                context: ctx(),
                status: outcome.status.get(..3).and_then(|s| s.parse().ok()),
                detail: format!("{} {:?}", outcome.status, outcome.errors),
            });
        }
        tracing::info!(
            location,
            "backup object and its segments deleted from Swift"
        );
        Ok(())
    }
}

/// `(<swift_url>, container, object)` of a location.
fn split_location(location: &str) -> Result<(&str, &str, &str)> {
    let invalid = |reason: &str| BackupError::InvalidLocation {
        location: location.into(),
        reason: reason.into(),
    };
    if !is_http_url(location) {
        return Err(invalid("a Swift location starts with http:// or https://"));
    }
    let mut parts = location.rsplitn(3, '/');
    let (Some(object), Some(container), Some(base)) = (parts.next(), parts.next(), parts.next())
    else {
        return Err(invalid("expected <swift_url>/<container>/<object>"));
    };
    // The base keeps at least a host after the scheme.
    if base
        .split_once("://")
        .is_none_or(|(_, rest)| rest.is_empty())
        || object.contains('?')
    {
        return Err(invalid("expected <swift_url>/<container>/<object>"));
    }
    Ok((base, container, object))
}

/// Reads once from `data`: up to `want` bytes, empty at the end of the stream.
async fn read_chunk(data: &mut (dyn AsyncRead + Send + Unpin), want: usize) -> io::Result<Bytes> {
    let mut buf = BytesMut::with_capacity(want.max(1));
    loop {
        match data.read_buf(&mut buf).await {
            Ok(_) => return Ok(buf.freeze()),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
}

/// The ETag header without Swift's quotes (a large object's ETag is quoted).
fn header_etag(headers: &HeaderMap) -> String {
    headers
        .get(ETAG)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.trim().trim_matches('"').to_ascii_lowercase())
        .unwrap_or_default()
}

/// Checks `metadata` against Swift's constraints and makes its headers. Keys are
/// `[a-z0-9_]` (header names ignore case, and an underscore is sent as a dash, as Trove
/// does); values printable ASCII without leading or trailing blanks.
pub(crate) fn metadata_headers(metadata: &Metadata) -> Result<HeaderMap> {
    if metadata.len() > MAX_META_COUNT {
        return Err(BackupError::InvalidMetadata(format!(
            "{} metadata items; Swift keeps at most {MAX_META_COUNT}",
            metadata.len()
        )));
    }
    let mut overall = 0usize;
    let mut headers = HeaderMap::new();
    for (key, value) in metadata {
        let key_ok = !key.is_empty()
            && key
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
        if !key_ok {
            return Err(BackupError::InvalidMetadata(format!(
                "metadata key '{key}': Swift metadata keys here are a-z, 0-9 and _"
            )));
        }
        if key.len() > MAX_META_NAME || value.len() > MAX_META_VALUE {
            return Err(BackupError::InvalidMetadata(format!(
                "metadata '{key}': Swift allows keys of {MAX_META_NAME} and values of {MAX_META_VALUE} bytes at most"
            )));
        }
        let value_ok =
            value.bytes().all(|b| (0x20..0x7f).contains(&b)) && value.trim() == value.as_str();
        if !value_ok {
            return Err(BackupError::InvalidMetadata(format!(
                "metadata '{key}': the value must be printable ASCII without leading or trailing blanks"
            )));
        }
        overall += key.len() + value.len();
        let name = format!("{META_PREFIX}{}", key.replace('_', "-"));
        let name = reqwest::header::HeaderName::from_bytes(name.as_bytes())
            .map_err(|e| BackupError::InvalidMetadata(format!("metadata key '{key}': {e}")))?;
        let value = HeaderValue::from_str(value)
            .map_err(|e| BackupError::InvalidMetadata(format!("metadata '{key}': {e}")))?;
        headers.insert(name, value);
    }
    if overall > MAX_META_OVERALL {
        return Err(BackupError::InvalidMetadata(format!(
            "metadata of {overall} bytes; Swift keeps at most {MAX_META_OVERALL}"
        )));
    }
    Ok(headers)
}

/// The object's user metadata from its headers (`X-Object-Meta-Foo-Bar` -> `foo_bar`).
pub(crate) fn parse_metadata(headers: &HeaderMap) -> Metadata {
    headers
        .iter()
        .filter_map(|(name, value)| {
            let key = name.as_str().strip_prefix(META_PREFIX)?;
            Some((
                key.replace('-', "_"),
                String::from_utf8_lossy(value.as_bytes()).into_owned(),
            ))
        })
        .collect()
}

/// A non-2xx answer as an error, with a readable reason.
async fn refusal(resp: Response, context: &str) -> BackupError {
    let status = resp.status();
    let url = resp.url().clone();
    let body = resp.text().await.unwrap_or_default();
    let why = match status {
        StatusCode::UNAUTHORIZED => {
            return BackupError::Unauthorized {
                url: strip_query(url.as_str()),
                detail: format!("{context}: Swift refused the token (401)"),
            }
        }
        StatusCode::FORBIDDEN => "the token's user may not do this in this account (403)".into(),
        StatusCode::PAYLOAD_TOO_LARGE => {
            format!(
                "the container or account quota is full, or the object too large (413): {}",
                excerpt(&body)
            )
        }
        StatusCode::INSUFFICIENT_STORAGE => "Swift is out of space (507)".into(),
        s => format!("Swift answered {s}: {}", excerpt(&body)),
    };
    BackupError::Remote {
        context: context.into(),
        status: Some(status.as_u16()),
        detail: why,
    }
}

fn strip_query(url: &str) -> String {
    url.split('?').next().unwrap_or(url).to_owned()
}

fn excerpt(text: &str) -> String {
    let t = text.trim();
    let mut end = t.len().min(300);
    while !t.is_char_boundary(end) {
        end -= 1;
    }
    t[..end].replace(['\n', '\r'], " ")
}

/// An error with its sources (reqwest's own message is terse).
fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut src = e.source();
    while let Some(s) = src {
        let more = s.to_string();
        if !out.contains(&more) {
            out.push_str(": ");
            out.push_str(&more);
        }
        src = s.source();
    }
    out
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
    if !md5.eq_ignore_ascii_case(&seg.etag) {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations() {
        let s = SwiftStore::new("http://127.0.0.1:8080/v1/AUTH_p/", "tok").unwrap();
        assert_eq!(s.url(), "http://127.0.0.1:8080/v1/AUTH_p");
        let loc = s.location("database_backups", "b1.xbstream.zst");
        assert_eq!(
            loc,
            "http://127.0.0.1:8080/v1/AUTH_p/database_backups/b1.xbstream.zst"
        );
        assert_eq!(
            s.resolve(&loc).unwrap(),
            ("database_backups", "b1.xbstream.zst")
        );
        assert!(s
            .resolve("http://127.0.0.1:8080/v1/AUTH_other/c/o")
            .is_err());
        let other = SwiftStore::for_location(&loc, "tok").unwrap();
        assert_eq!(other.url(), s.url());
        assert!(SwiftStore::for_location("http://h/c/../o", "t").is_err());
        assert!(SwiftStore::for_location("http:///c/o", "t").is_err());
        assert!(SwiftStore::for_location("ftp://h/v1/A/c/o", "t").is_err());
        assert!(matches!(
            SwiftStore::new("https://h/v1/AUTH_p", " "),
            Err(BackupError::NoToken(_))
        ));
        assert!(!format!("{s:?}").contains("tok"));
        assert_eq!(
            format!("{:?}", AuthToken::new("secret")),
            "AuthToken(<redacted>)"
        );
    }

    #[test]
    fn metadata_round_trip_and_limits() {
        let mut m = Metadata::new();
        m.insert("datastore_version".into(), "10.11".into());
        m.insert(
            "parent_location".into(),
            "http://s/v1/A/c/p.xbstream.zst".into(),
        );
        m.insert("empty".into(), String::new());
        let h = metadata_headers(&m).unwrap();
        assert_eq!(h["x-object-meta-datastore-version"], "10.11");
        assert_eq!(parse_metadata(&h), m);
        for (k, v) in [
            ("Upper", "x"),
            ("dash-key", "x"),
            ("", "x"),
            ("k", " padded"),
            ("k", "line\nbreak"),
            ("k", "é"),
        ] {
            let bad = Metadata::from([(k.to_owned(), v.to_owned())]);
            assert!(metadata_headers(&bad).is_err(), "{k:?}={v:?}");
        }
        let long = Metadata::from([("k".to_owned(), "v".repeat(MAX_META_VALUE + 1))]);
        assert!(metadata_headers(&long).is_err());
        let many: Metadata = (0..20)
            .map(|i| (format!("k{i}"), "v".repeat(250)))
            .collect();
        assert!(metadata_headers(&many).is_err(), "over 4096 bytes overall");
    }
}
