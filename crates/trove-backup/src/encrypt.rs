//! Client-side encryption of backup objects (beyond Trove, which stopped encrypting backups
//! in Victoria): the stream is sealed before it reaches the store, so the object store only
//! ever holds ciphertext, and a restore refuses any object that was changed.
//!
//! Scheme [`SCHEME`] (recorded in the object's metadata under [`crate::META_ENCRYPTION`]):
//! AES-256-GCM over frames of at most [`FRAME`] bytes of plaintext, in the manner of the
//! STREAM construction:
//!
//! ```text
//! "TRVBKE1\0" | nonce prefix (7 random bytes) | frame*
//! frame = u32 BE (ciphertext length | LAST bit 31) | ciphertext (plaintext + 16-byte tag)
//! nonce of frame i = prefix | u32 BE i | 1 if last else 0
//! ```
//!
//! Every frame is authenticated with its position and whether it is the last one, so a
//! changed, reordered, dropped, truncated or extended stream fails to decrypt (the reader
//! ends with an `InvalidData` error, never with plausible data). The key is 32 bytes,
//! configured by the operator as base64 (`backup_encryption_key`).

use std::io;
use std::pin::Pin;
use std::sync::{Arc, RwLock};
use std::task::{ready, Context, Poll};

use aes_gcm::aead::{Aead, KeyInit};
use aes_gcm::{Aes256Gcm, Nonce};
use async_trait::async_trait;
use tokio::io::{AsyncRead, ReadBuf};

use crate::{
    BackupError, BackupStore, Metadata, ObjectInfo, ObjectReader, Result, StoredObject,
    META_ENCRYPTION,
};

/// The scheme's name in object metadata.
pub const SCHEME: &str = "aes-256-gcm-stream-v1";
/// Largest plaintext of one frame.
pub const FRAME: usize = 64 * 1024;
const MAGIC: &[u8; 8] = b"TRVBKE1\0";
const PREFIX: usize = 7;
const TAG: usize = 16;
const LAST: u32 = 1 << 31;

/// A backup encryption key (32 bytes).
#[derive(Clone)]
pub struct EncryptionKey([u8; 32]);

impl std::fmt::Debug for EncryptionKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("EncryptionKey(<redacted>)")
    }
}

impl EncryptionKey {
    /// The key from its base64 form (32 bytes once decoded).
    pub fn from_base64(text: &str) -> Result<Self> {
        use base64::Engine as _;
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(text.trim())
            .map_err(|e| BackupError::Unsupported(format!("backup_encryption_key: {e}")))?;
        let key: [u8; 32] = bytes.try_into().map_err(|b: Vec<u8>| {
            BackupError::Unsupported(format!(
                "backup_encryption_key: {} bytes once decoded, an AES-256 key has 32",
                b.len()
            ))
        })?;
        Ok(EncryptionKey(key))
    }

    fn cipher(&self) -> Aes256Gcm {
        Aes256Gcm::new((&self.0).into())
    }
}

fn nonce(prefix: &[u8; PREFIX], index: u32, last: bool) -> [u8; 12] {
    let mut n = [0u8; 12];
    n[..PREFIX].copy_from_slice(prefix);
    n[PREFIX..PREFIX + 4].copy_from_slice(&index.to_be_bytes());
    n[11] = u8::from(last);
    n
}

fn invalid(msg: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg.into())
}

/// Encrypts everything `inner` yields (see the module doc).
pub struct EncryptReader<R> {
    inner: R,
    cipher: Aes256Gcm,
    prefix: [u8; PREFIX],
    index: u32,
    plain: Vec<u8>,
    out: Vec<u8>,
    pos: usize,
    eof: bool,
    done: bool,
}

impl<R> EncryptReader<R> {
    /// Encrypts `inner` with `key` and a fresh random nonce prefix.
    pub fn new(inner: R, key: &EncryptionKey) -> Self {
        let mut prefix = [0u8; PREFIX];
        rand::Rng::fill(&mut rand::thread_rng(), &mut prefix[..]);
        let mut out = Vec::with_capacity(MAGIC.len() + PREFIX);
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&prefix);
        EncryptReader {
            inner,
            cipher: key.cipher(),
            prefix,
            index: 0,
            plain: Vec::with_capacity(FRAME),
            out,
            pos: 0,
            eof: false,
            done: false,
        }
    }

    fn seal(&mut self) -> io::Result<()> {
        let last = self.eof;
        let n = nonce(&self.prefix, self.index, last);
        let sealed = self
            .cipher
            .encrypt(Nonce::from_slice(&n), self.plain.as_slice())
            .map_err(|_| invalid("backup encryption failed"))?;
        self.index = self
            .index
            .checked_add(1)
            .ok_or_else(|| invalid("backup stream too long to encrypt"))?;
        let len =
            u32::try_from(sealed.len()).expect("frame fits u32") | if last { LAST } else { 0 };
        self.out.clear();
        self.pos = 0;
        self.out.extend_from_slice(&len.to_be_bytes());
        self.out.extend_from_slice(&sealed);
        self.plain.clear();
        if last {
            self.done = true;
        }
        Ok(())
    }
}

impl<R: AsyncRead + Unpin> AsyncRead for EncryptReader<R> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        loop {
            if this.pos < this.out.len() {
                let n = (this.out.len() - this.pos).min(buf.remaining());
                buf.put_slice(&this.out[this.pos..this.pos + n]);
                this.pos += n;
                return Poll::Ready(Ok(()));
            }
            if this.done {
                return Poll::Ready(Ok(()));
            }
            // Fill a frame's worth of plaintext (or up to the end of the input).
            while !this.eof && this.plain.len() < FRAME {
                let start = this.plain.len();
                this.plain.resize(FRAME, 0);
                let mut rb = ReadBuf::new(&mut this.plain[start..]);
                let polled = Pin::new(&mut this.inner).poll_read(cx, &mut rb);
                let got = rb.filled().len();
                this.plain.truncate(start + got);
                match polled {
                    Poll::Pending => return Poll::Pending,
                    Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                    Poll::Ready(Ok(())) if got == 0 => this.eof = true,
                    Poll::Ready(Ok(())) => {}
                }
            }
            this.seal()?;
        }
    }
}

/// Decrypts a stream [`EncryptReader`] made; any change ends it with `InvalidData`.
pub struct DecryptReader<R> {
    inner: R,
    cipher: Aes256Gcm,
    prefix: Option<[u8; PREFIX]>,
    index: u32,
    /// Bytes read towards the current header or frame.
    buf: Vec<u8>,
    /// Length of the current frame once its length word is read (with the LAST bit).
    frame: Option<u32>,
    out: Vec<u8>,
    pos: usize,
    last_seen: bool,
}

impl<R> DecryptReader<R> {
    /// Decrypts `inner` with `key`.
    pub fn new(inner: R, key: &EncryptionKey) -> Self {
        DecryptReader {
            inner,
            cipher: key.cipher(),
            prefix: None,
            index: 0,
            buf: Vec::new(),
            frame: None,
            out: Vec::new(),
            pos: 0,
            last_seen: false,
        }
    }
}

impl<R: AsyncRead + Unpin> DecryptReader<R> {
    /// Reads until `buf` holds `want` bytes; `Ok(false)` at a clean end of input.
    fn poll_fill(&mut self, cx: &mut Context<'_>, want: usize) -> Poll<io::Result<bool>> {
        while self.buf.len() < want {
            let start = self.buf.len();
            self.buf.resize(want, 0);
            let mut rb = ReadBuf::new(&mut self.buf[start..]);
            let polled = Pin::new(&mut self.inner).poll_read(cx, &mut rb);
            let got = rb.filled().len();
            self.buf.truncate(start + got);
            match polled {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Ready(Ok(())) if got == 0 => return Poll::Ready(Ok(false)),
                Poll::Ready(Ok(())) => {}
            }
        }
        Poll::Ready(Ok(true))
    }
}

impl<R: AsyncRead + Unpin> AsyncRead for DecryptReader<R> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        out: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        loop {
            if this.pos < this.out.len() {
                let n = (this.out.len() - this.pos).min(out.remaining());
                out.put_slice(&this.out[this.pos..this.pos + n]);
                this.pos += n;
                return Poll::Ready(Ok(()));
            }
            let Some(prefix) = this.prefix else {
                let header = MAGIC.len() + PREFIX;
                if !ready!(this.poll_fill(cx, header))? || &this.buf[..MAGIC.len()] != MAGIC {
                    return Poll::Ready(Err(invalid(
                        "backup object is not an encrypted backup stream",
                    )));
                }
                let mut p = [0u8; PREFIX];
                p.copy_from_slice(&this.buf[MAGIC.len()..header]);
                this.prefix = Some(p);
                this.buf.clear();
                continue;
            };
            let Some(word) = this.frame else {
                if !ready!(this.poll_fill(cx, 4))? {
                    if this.buf.is_empty() && this.last_seen {
                        return Poll::Ready(Ok(()));
                    }
                    return Poll::Ready(Err(invalid("encrypted backup stream is truncated")));
                }
                if this.last_seen {
                    return Poll::Ready(Err(invalid(
                        "encrypted backup stream has data after its last frame",
                    )));
                }
                let word = u32::from_be_bytes(this.buf[..4].try_into().expect("4 bytes"));
                let len = (word & !LAST) as usize;
                if !(TAG..=FRAME + TAG).contains(&len) {
                    return Poll::Ready(Err(invalid("encrypted backup frame has a bad length")));
                }
                this.frame = Some(word);
                this.buf.clear();
                continue;
            };
            let len = (word & !LAST) as usize;
            if !ready!(this.poll_fill(cx, len))? {
                return Poll::Ready(Err(invalid("encrypted backup stream is truncated")));
            }
            let last = word & LAST != 0;
            let n = nonce(&prefix, this.index, last);
            let plain = this
                .cipher
                .decrypt(Nonce::from_slice(&n), this.buf.as_slice())
                .map_err(|_| {
                    invalid(
                        "encrypted backup frame does not authenticate (changed, or another key)",
                    )
                })?;
            this.index = this.index.wrapping_add(1);
            this.out = plain;
            this.pos = 0;
            this.buf.clear();
            this.frame = None;
            this.last_seen = last;
        }
    }
}

static KEY: RwLock<Option<EncryptionKey>> = RwLock::new(None);

/// Sets the key the stores opened by [`crate::open_store_for_url`] and
/// [`crate::open_store_for_location`] encrypt new objects with (`None`: new objects are
/// not encrypted; encrypted ones cannot be read).
pub fn set_process_key(key: Option<EncryptionKey>) {
    *KEY.write().unwrap_or_else(|e| e.into_inner()) = key;
}

fn process_key() -> Option<EncryptionKey> {
    KEY.read().unwrap_or_else(|e| e.into_inner()).clone()
}

/// A store whose objects are encrypted with a key (see the module doc): new objects when a
/// key is set, and reads of objects encrypted under [`SCHEME`].
#[derive(Debug)]
pub struct CryptStore {
    inner: Arc<dyn BackupStore>,
    key: Option<EncryptionKey>,
}

impl CryptStore {
    /// `inner` with `key`.
    pub fn new(inner: Arc<dyn BackupStore>, key: Option<EncryptionKey>) -> Self {
        CryptStore { inner, key }
    }

    /// `inner` with the process's key ([`set_process_key`]).
    pub fn with_process_key(inner: Arc<dyn BackupStore>) -> Self {
        Self::new(inner, process_key())
    }
}

#[async_trait]
impl BackupStore for CryptStore {
    async fn put(
        &self,
        container: &str,
        object: &str,
        data: &mut (dyn AsyncRead + Send + Unpin),
        metadata: &Metadata,
    ) -> Result<StoredObject> {
        match &self.key {
            None => self.inner.put(container, object, data, metadata).await,
            Some(key) => {
                let mut metadata = metadata.clone();
                metadata.insert(META_ENCRYPTION.into(), SCHEME.into());
                let mut sealed = EncryptReader::new(data, key);
                self.inner
                    .put(container, object, &mut sealed, &metadata)
                    .await
            }
        }
    }

    async fn head(&self, location: &str) -> Result<ObjectInfo> {
        self.inner.head(location).await
    }

    async fn verify(&self, location: &str, expected_checksum: Option<&str>) -> Result<ObjectInfo> {
        self.inner.verify(location, expected_checksum).await
    }

    async fn get(&self, location: &str, expected_checksum: Option<&str>) -> Result<ObjectReader> {
        let info = self.inner.head(location).await?;
        match info.metadata.get(META_ENCRYPTION).map(String::as_str) {
            None => self.inner.get(location, expected_checksum).await,
            Some(SCHEME) => {
                let Some(key) = &self.key else {
                    return Err(BackupError::Unsupported(format!(
                        "backup object {location} is encrypted and no backup_encryption_key is configured here"
                    )));
                };
                let reader = self.inner.get(location, expected_checksum).await?;
                Ok(Box::pin(DecryptReader::new(reader, key)))
            }
            Some(other) => Err(BackupError::Unsupported(format!(
                "backup object {location} is encrypted with {other}, which this build cannot decrypt"
            ))),
        }
    }

    async fn set_metadata(&self, location: &str, metadata: &Metadata) -> Result<()> {
        // The scheme stays recorded whatever the caller replaces.
        let mut metadata = metadata.clone();
        if let Some(s) = self
            .inner
            .head(location)
            .await?
            .metadata
            .get(META_ENCRYPTION)
        {
            metadata.insert(META_ENCRYPTION.into(), s.clone());
        }
        self.inner.set_metadata(location, &metadata).await
    }

    async fn delete(&self, location: &str) -> Result<()> {
        self.inner.delete(location).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;

    fn key(b: u8) -> EncryptionKey {
        EncryptionKey([b; 32])
    }

    async fn seal(plain: &[u8], k: &EncryptionKey) -> Vec<u8> {
        let mut out = Vec::new();
        EncryptReader::new(plain, k)
            .read_to_end(&mut out)
            .await
            .unwrap();
        out
    }

    async fn open(sealed: &[u8], k: &EncryptionKey) -> io::Result<Vec<u8>> {
        let mut out = Vec::new();
        DecryptReader::new(sealed, k).read_to_end(&mut out).await?;
        Ok(out)
    }

    #[tokio::test]
    async fn round_trips_of_every_shape() {
        let k = key(7);
        for len in [0, 1, FRAME - 1, FRAME, FRAME + 1, 3 * FRAME + 17] {
            let plain: Vec<u8> = (0..len).map(|i| (i * 31 % 251) as u8).collect();
            let sealed = seal(&plain, &k).await;
            if len >= 32 {
                assert!(
                    !sealed.windows(32).any(|w| w == &plain[..32]),
                    "plaintext visible in the sealed stream"
                );
            }
            assert_eq!(open(&sealed, &k).await.unwrap(), plain, "length {len}");
        }
    }

    #[tokio::test]
    async fn changes_truncation_extension_and_other_keys_are_refused() {
        let k = key(7);
        let plain = vec![5u8; 2 * FRAME + 100];
        let sealed = seal(&plain, &k).await;
        // A flipped bit anywhere after the header.
        for at in [20, FRAME, sealed.len() - 1] {
            let mut bad = sealed.clone();
            bad[at] ^= 1;
            assert!(open(&bad, &k).await.is_err(), "bit at {at}");
        }
        // Cut at a frame boundary (the last frame missing) and anywhere else.
        let first_frame = 15 + 4 + FRAME + TAG;
        for cut in [
            first_frame,
            first_frame + 4 + FRAME + TAG,
            sealed.len() - 3,
            10,
        ] {
            assert!(open(&sealed[..cut], &k).await.is_err(), "cut at {cut}");
        }
        // Extra bytes after the last frame.
        let mut longer = sealed.clone();
        longer.extend_from_slice(&sealed[15..15 + 4 + FRAME + TAG]);
        assert!(open(&longer, &k).await.is_err());
        // Frames swapped.
        let mut swapped = sealed[..15].to_vec();
        let f = 4 + FRAME + TAG;
        swapped.extend_from_slice(&sealed[15 + f..15 + 2 * f]);
        swapped.extend_from_slice(&sealed[15..15 + f]);
        swapped.extend_from_slice(&sealed[15 + 2 * f..]);
        assert!(open(&swapped, &k).await.is_err());
        // Another key.
        assert!(open(&sealed, &key(8)).await.is_err());
        // Plain data is not taken for a stream.
        assert!(open(&plain, &k).await.is_err());
    }

    #[test]
    fn keys_are_32_bytes_of_base64() {
        use base64::Engine as _;
        let b64 = base64::engine::general_purpose::STANDARD.encode([1u8; 32]);
        assert!(EncryptionKey::from_base64(&b64).is_ok());
        assert!(EncryptionKey::from_base64("c2hvcnQ=").is_err());
        assert!(EncryptionKey::from_base64("not base64!").is_err());
        assert_eq!(
            format!("{:?}", EncryptionKey::from_base64(&b64).unwrap()),
            "EncryptionKey(<redacted>)"
        );
    }
}
