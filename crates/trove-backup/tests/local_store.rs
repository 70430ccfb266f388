//! `LocalStore` end to end on a temporary directory: segmented round trips, integrity checks
//! on read, cleanup on a failed write, delete.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncReadExt, ReadBuf};
use trove_backup::compress::{zstd_compress, zstd_decompress};
use trove_backup::{md5_hex, BackupError, BackupStore, LocalStore, Metadata};

fn data(len: usize) -> Vec<u8> {
    // Not compressible by accident: a simple xorshift sequence.
    let mut x: u32 = 0x1234_5678;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect()
}

fn meta() -> Metadata {
    let mut m = Metadata::new();
    m.insert("datastore".into(), "mariadb".into());
    m.insert("datastore_version".into(), "10.11".into());
    m
}

fn files(dir: &std::path::Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .map(|r| {
            r.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

async fn read_all(store: &LocalStore, location: &str, checksum: Option<&str>) -> Vec<u8> {
    let mut r = store.get(location, checksum).await.unwrap();
    let mut out = Vec::new();
    r.read_to_end(&mut out).await.unwrap();
    out
}

#[tokio::test]
async fn several_segments_round_trip_with_manifest() {
    let dir = tempfile::tempdir().unwrap();
    let store = LocalStore::new(dir.path())
        .unwrap()
        .with_segment_size(100_000);
    let bytes = data(350_000);
    let stored = store
        .put(
            "database_backups",
            "b1.xbstream.zst",
            &mut &bytes[..],
            &meta(),
        )
        .await
        .unwrap();
    assert_eq!(stored.segments, 4);
    assert_eq!(stored.size, 350_000);
    assert_eq!(
        stored.location,
        format!(
            "file://{}/database_backups/b1.xbstream.zst",
            dir.path().display()
        )
    );
    // Checksum as Swift reports an SLO's ETag: MD5 of the segments' hex MD5s.
    let etags: String = bytes.chunks(100_000).map(md5_hex).collect();
    assert_eq!(stored.checksum, md5_hex(etags.as_bytes()));
    let c = dir.path().join("database_backups");
    assert_eq!(
        files(&c),
        vec![
            ".b1.xbstream.zst.meta",
            "b1.xbstream.zst",
            "b1_00000000",
            "b1_00000001",
            "b1_00000002",
            "b1_00000003"
        ]
    );
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(c.join("b1.xbstream.zst")).unwrap()).unwrap();
    assert_eq!(manifest[3]["path"], "database_backups/b1_00000003");
    assert_eq!(manifest[3]["size_bytes"], 50_000);
    assert_eq!(manifest[0]["etag"], md5_hex(&bytes[..100_000]));

    let info = store.head(&stored.location).await.unwrap();
    assert_eq!(info.metadata, meta());
    let mut more = meta();
    more.insert("lsn".into(), "12345".into());
    store.set_metadata(&stored.location, &more).await.unwrap();
    assert_eq!(store.head(&stored.location).await.unwrap().metadata, more);
    assert_eq!(info.checksum, stored.checksum);
    assert_eq!(
        read_all(&store, &stored.location, Some(&stored.checksum)).await,
        bytes
    );
    // The store is found again from the location alone (restore on another guest).
    let other = LocalStore::for_location(&stored.location).unwrap();
    assert_eq!(read_all(&other, &stored.location, None).await, bytes);

    // Exactly at a segment boundary: no empty trailing segment.
    let even = data(200_000);
    let s2 = store
        .put(
            "database_backups",
            "b2.xbstream.zst",
            &mut &even[..],
            &meta(),
        )
        .await
        .unwrap();
    assert_eq!(s2.segments, 2);
    assert_eq!(read_all(&store, &s2.location, None).await, even);
    // A second object of the same name is refused.
    let e = store
        .put(
            "database_backups",
            "b2.xbstream.zst",
            &mut &even[..],
            &meta(),
        )
        .await
        .unwrap_err();
    assert!(matches!(e, BackupError::AlreadyExists(_)), "{e}");
}

#[tokio::test]
async fn one_segment_is_the_object_itself() {
    let dir = tempfile::tempdir().unwrap();
    let store = LocalStore::new(dir.path()).unwrap();
    let bytes = data(10_000);
    let stored = store
        .put("c", "small.xbstream.zst", &mut &bytes[..], &Metadata::new())
        .await
        .unwrap();
    assert_eq!(stored.segments, 1);
    assert_eq!(stored.checksum, md5_hex(&bytes));
    assert_eq!(
        files(&dir.path().join("c")),
        vec![".small.xbstream.zst.meta", "small.xbstream.zst"]
    );
    assert_eq!(
        std::fs::read(dir.path().join("c/small.xbstream.zst")).unwrap(),
        bytes
    );
    let empty = store
        .put("c", "empty", &mut &b""[..], &Metadata::new())
        .await
        .unwrap();
    assert_eq!((empty.size, empty.segments), (0, 1));
    assert!(read_all(&store, &empty.location, None).await.is_empty());
}

#[tokio::test]
async fn tampered_objects_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let store = LocalStore::new(dir.path()).unwrap().with_segment_size(4096);
    let bytes = data(10_000);
    let stored = store
        .put("c", "t.xbstream.zst", &mut &bytes[..], &meta())
        .await
        .unwrap();
    // A wrong expected checksum (the one the backup row keeps) is refused.
    let e = store
        .verify(&stored.location, Some("0123456789abcdef0123456789abcdef"))
        .await
        .unwrap_err();
    assert!(matches!(e, BackupError::ChecksumMismatch { .. }), "{e}");
    // One flipped byte in the middle segment.
    let seg = dir.path().join("c/t_00000001");
    let mut s = std::fs::read(&seg).unwrap();
    s[100] ^= 0xff;
    std::fs::write(&seg, &s).unwrap();
    let e = match store.get(&stored.location, Some(&stored.checksum)).await {
        Err(e) => e,
        Ok(_) => panic!("a tampered object was handed out"),
    };
    assert!(e.is_integrity_error(), "{e}");
    let text = e.to_string();
    assert!(
        text.contains("corrupt") && text.contains("c/t_00000001"),
        "{text}"
    );
    // A truncated segment too.
    s[100] ^= 0xff;
    std::fs::write(&seg, &s[..s.len() - 1]).unwrap();
    let e = store.verify(&stored.location, None).await.unwrap_err();
    assert!(e.is_integrity_error(), "{e}");
    // A missing segment.
    std::fs::remove_file(&seg).unwrap();
    let e = store.verify(&stored.location, None).await.unwrap_err();
    assert!(e.to_string().contains("missing"), "{e}");
}

#[tokio::test]
async fn change_after_verification_fails_the_stream() {
    let dir = tempfile::tempdir().unwrap();
    let store = LocalStore::new(dir.path())
        .unwrap()
        .with_segment_size(600_000);
    let bytes = data(1_500_000);
    let stored = store.put("c", "s", &mut &bytes[..], &meta()).await.unwrap();
    let mut r = store.get(&stored.location, None).await.unwrap();
    // Read a little of the first segment, then damage the last one.
    let mut first = vec![0u8; 1000];
    r.read_exact(&mut first).await.unwrap();
    let seg = dir.path().join("c/s_00000002");
    let mut s = std::fs::read(&seg).unwrap();
    s[0] ^= 1;
    std::fs::write(&seg, &s).unwrap();
    let mut rest = Vec::new();
    let e = r.read_to_end(&mut rest).await.unwrap_err();
    assert_eq!(e.kind(), io::ErrorKind::InvalidData);
    assert!(e.to_string().contains("s_00000002"), "{e}");
}

#[tokio::test]
async fn delete_removes_segments_and_metadata() {
    let dir = tempfile::tempdir().unwrap();
    let store = LocalStore::new(dir.path()).unwrap().with_segment_size(1000);
    let keep = store
        .put("c", "keep", &mut &data(500)[..], &meta())
        .await
        .unwrap();
    let stored = store
        .put("c", "gone.xbstream.zst", &mut &data(5500)[..], &meta())
        .await
        .unwrap();
    assert_eq!(stored.segments, 6);
    assert_eq!(files(&dir.path().join("c")).len(), 2 + 8);
    store.delete(&stored.location).await.unwrap();
    assert_eq!(files(&dir.path().join("c")), vec![".keep.meta", "keep"]);
    let e = store.delete(&stored.location).await.unwrap_err();
    assert!(matches!(e, BackupError::NotFound(_)), "{e}");
    let e = match store.get(&stored.location, None).await {
        Err(e) => e,
        Ok(_) => panic!("a deleted object was read"),
    };
    assert!(matches!(e, BackupError::NotFound(_)), "{e}");
    store.delete(&keep.location).await.unwrap();
    assert!(files(&dir.path().join("c")).is_empty());
}

/// Yields `ok` bytes then fails, as a backup tool dying mid-stream.
struct Failing {
    left: usize,
}

impl AsyncRead for Failing {
    fn poll_read(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if self.left == 0 {
            return Poll::Ready(Err(io::Error::other("tool died")));
        }
        let n = self.left.min(buf.remaining()).min(700);
        buf.put_slice(&vec![7u8; n]);
        self.left -= n;
        Poll::Ready(Ok(()))
    }
}

#[tokio::test]
async fn failed_stream_leaves_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store = LocalStore::new(dir.path()).unwrap().with_segment_size(1000);
    let e = store
        .put(
            "c",
            "half.xbstream.zst",
            &mut Failing { left: 4500 },
            &meta(),
        )
        .await
        .unwrap_err();
    assert!(e.to_string().contains("tool died"), "{e}");
    assert!(files(&dir.path().join("c")).is_empty());
}

#[tokio::test]
async fn locations_outside_the_store_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let store = LocalStore::new(dir.path()).unwrap();
    for bad in [
        "file:///etc/passwd".to_string(),
        format!("file://{}/c/../../x", dir.path().display()),
        format!("{}/c/x", dir.path().display()),
        "https://swift.example/v1/AUTH_x/c/o".to_string(),
    ] {
        let e = store.head(&bad).await.unwrap_err();
        assert!(
            matches!(e, BackupError::InvalidLocation { .. }),
            "{bad}: {e}"
        );
    }
    assert!(store.put("..", "x", &mut &b""[..], &meta()).await.is_err());
    assert!(store.put("c", "a/b", &mut &b""[..], &meta()).await.is_err());
    // A file without the store's metadata is not a backup object.
    std::fs::create_dir_all(dir.path().join("c")).unwrap();
    std::fs::write(dir.path().join("c/plain"), b"x").unwrap();
    let e = store
        .head(&format!("file://{}/c/plain", dir.path().display()))
        .await
        .unwrap_err();
    assert!(matches!(e, BackupError::NotFound(_)), "{e}");
}

#[tokio::test]
async fn encrypted_objects_are_refused_by_this_build() {
    let dir = tempfile::tempdir().unwrap();
    let store = LocalStore::new(dir.path()).unwrap();
    let mut m = meta();
    m.insert(trove_backup::META_ENCRYPTION.into(), "aes-256-gcm".into());
    let s = store.put("c", "enc", &mut &b"x"[..], &m).await.unwrap();
    let e = match store.get(&s.location, None).await {
        Err(e) => e,
        Ok(_) => panic!("an encrypted object was handed out as plain"),
    };
    assert!(matches!(e, BackupError::Unsupported(_)), "{e}");
}

#[tokio::test]
async fn compressed_stream_through_the_store() {
    let dir = tempfile::tempdir().unwrap();
    let store = LocalStore::new(dir.path())
        .unwrap()
        .with_segment_size(50_000);
    // Compressible: repeated text with a counter.
    let plain: Vec<u8> = (0..100_000u32)
        .flat_map(|i| format!("row {i} some payload\n").into_bytes())
        .collect();
    let mut src = zstd_compress(&plain[..]);
    let stored = store.put("c", "z.zst", &mut src, &meta()).await.unwrap();
    assert!(stored.size < plain.len() as u64 / 5, "{}", stored.size);
    assert!(stored.segments >= 2, "{}", stored.segments);
    let r = store.get(&stored.location, None).await.unwrap();
    let mut back = Vec::new();
    zstd_decompress(r).read_to_end(&mut back).await.unwrap();
    assert_eq!(back, plain);
}
