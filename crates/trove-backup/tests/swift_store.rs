//! `SwiftStore` against a real OpenStack Swift behind a real Keystone, as the `demo` user with
//! a token from Keystone and the account URL from the token's catalog.
//!
//! The stack comes from `scripts/swift-test-stack.sh` (Keystone on 127.0.0.1:29705, Swift on
//! 29700-29703), started once per test run and shared by the tests through its lock file;
//! `scripts/test.sh` stops it at the end (`scripts/swift-test-stack.sh --stop`). Each test
//! works in a container of its own and removes it at the end.

use std::collections::BTreeMap;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::Value;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt, ReadBuf};
use trove_backup::{
    md5_hex, open_store_for_location, open_store_for_url, BackupError, BackupStore, Metadata,
    SwiftStore,
};

/// The stack's env file, read once per test process.
struct Stack {
    auth_url: String,
    password: String,
    storage_url: String,
    proxy: SocketAddr,
}

fn stack() -> &'static Stack {
    static STACK: OnceLock<Stack> = OnceLock::new();
    STACK.get_or_init(|| {
        let repo = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");
        let out = std::process::Command::new("bash")
            .arg(format!("{repo}/scripts/swift-test-stack.sh"))
            .stdin(std::process::Stdio::null())
            .output()
            .expect("cannot run bash scripts/swift-test-stack.sh");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "scripts/swift-test-stack.sh failed:\n{stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let path = stdout
            .lines()
            .last()
            .expect("env file path")
            .trim()
            .to_owned();
        let text = std::fs::read_to_string(&path).expect("read the stack's env file");
        let env: BTreeMap<&str, &str> = text.lines().filter_map(|l| l.split_once('=')).collect();
        let proxy_url = env["SWIFT_PROXY_URL"];
        Stack {
            auth_url: env["OS_AUTH_URL"].to_owned(),
            password: env["DEMO_PASSWORD"].to_owned(),
            storage_url: env["DEMO_STORAGE_URL"].to_owned(),
            proxy: proxy_url
                .trim_start_matches("http://")
                .parse()
                .expect("proxy address"),
        }
    })
}

/// The demo user's token and the object-store URL of its catalog.
struct Tenant {
    token: String,
    url: String,
    http: reqwest::Client,
}

async fn demo() -> Tenant {
    let s = tokio::task::spawn_blocking(stack).await.unwrap();
    let http = reqwest::Client::new();
    let body = serde_json::json!({"auth": {"identity": {"methods": ["password"], "password": {
        "user": {"name": "demo", "domain": {"id": "default"}, "password": s.password}}},
        "scope": {"project": {"name": "demo", "domain": {"id": "default"}}}}});
    let resp = http
        .post(format!("{}/auth/tokens", s.auth_url))
        .json(&body)
        .send()
        .await
        .expect("POST /v3/auth/tokens");
    assert_eq!(resp.status(), StatusCode::CREATED);
    let token = resp.headers()["x-subject-token"]
        .to_str()
        .unwrap()
        .to_owned();
    let doc: Value = resp.json().await.unwrap();
    let url = doc["token"]["catalog"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|svc| svc["type"] == "object-store")
        .flat_map(|svc| svc["endpoints"].as_array().unwrap().iter())
        .find(|e| e["interface"] == "public")
        .and_then(|e| e["url"].as_str())
        .expect("an object-store endpoint in the demo user's catalog")
        .to_owned();
    assert_eq!(url, s.storage_url, "the catalog names the demo account");
    Tenant { token, url, http }
}

impl Tenant {
    fn store(&self) -> SwiftStore {
        SwiftStore::new(&self.url, &self.token).unwrap()
    }

    /// A raw request to Swift as this user.
    async fn swift(&self, method: Method, path: &str) -> reqwest::Response {
        self.http
            .request(method, format!("{}/{path}", self.url))
            .header("X-Auth-Token", &self.token)
            .send()
            .await
            .expect("Swift answers")
    }

    /// A new container of this test (removed by `drop_container`).
    fn container(&self, what: &str) -> String {
        static N: AtomicU64 = AtomicU64::new(0);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos();
        format!(
            "t-{what}-{}-{nanos}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        )
    }

    /// Object names in `container` (none when it does not exist).
    async fn list(&self, container: &str) -> Vec<String> {
        let resp = self
            .swift(Method::GET, &format!("{container}?format=json"))
            .await;
        if resp.status() == StatusCode::NOT_FOUND {
            return Vec::new();
        }
        assert!(resp.status().is_success(), "{}", resp.status());
        let v: Value = resp.json().await.unwrap();
        v.as_array()
            .unwrap()
            .iter()
            .map(|o| o["name"].as_str().unwrap().to_owned())
            .collect()
    }

    /// Removes every object of `container` and the container.
    async fn drop_container(&self, container: &str) {
        for name in self.list(container).await {
            self.swift(Method::DELETE, &format!("{container}/{name}"))
                .await;
        }
        self.swift(Method::DELETE, container).await;
    }
}

fn data(len: usize, seed: u32) -> Vec<u8> {
    // Not compressible by accident: a simple xorshift sequence.
    let mut x: u32 = 0x1234_5678 ^ seed;
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

async fn read_all(store: &dyn BackupStore, location: &str, checksum: Option<&str>) -> Vec<u8> {
    let mut r = store.get(location, checksum).await.unwrap();
    let mut out = Vec::new();
    r.read_to_end(&mut out).await.unwrap();
    out
}

fn header(resp: &reqwest::Response, name: &str) -> Option<String> {
    resp.headers()
        .get(name)
        .map(|v| v.to_str().unwrap().to_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_segment_object_round_trip_with_metadata() {
    let t = demo().await;
    let c = t.container("small");
    let store = t.store().with_segment_size(64 * 1024);
    let bytes = data(10_000, 1);
    let stored = store
        .put(&c, "b1.xbstream.zst", &mut bytes.as_slice(), &meta())
        .await
        .unwrap();
    assert_eq!(stored.location, format!("{}/{c}/b1.xbstream.zst", t.url));
    assert_eq!(stored.checksum, md5_hex(&bytes));
    assert_eq!((stored.size, stored.segments), (10_000, 1));
    // The object itself, its segment removed after the copy.
    assert_eq!(t.list(&c).await, ["b1.xbstream.zst"]);

    let raw = t.swift(Method::HEAD, &format!("{c}/b1.xbstream.zst")).await;
    assert_eq!(raw.status(), StatusCode::OK);
    assert_eq!(header(&raw, "etag").unwrap(), md5_hex(&bytes));
    assert_eq!(header(&raw, "x-object-meta-datastore").unwrap(), "mariadb");
    assert_eq!(
        header(&raw, "x-object-meta-datastore-version").unwrap(),
        "10.11"
    );
    assert_eq!(header(&raw, "x-static-large-object"), None);

    let info = store.head(&stored.location).await.unwrap();
    assert_eq!(info.checksum, stored.checksum);
    assert_eq!(info.size, 10_000);
    assert_eq!(info.metadata, meta());
    assert_eq!(info.segments.len(), 1);
    store
        .verify(&stored.location, Some(&stored.checksum))
        .await
        .unwrap();
    assert_eq!(
        read_all(&store, &stored.location, Some(&stored.checksum)).await,
        bytes
    );
    // Through the scheme dispatch, as the rest of the system opens stores.
    let by_location = open_store_for_location(&stored.location, Some(&t.token)).unwrap();
    assert_eq!(
        read_all(by_location.as_ref(), &stored.location, None).await,
        bytes
    );
    let e = store
        .verify(&stored.location, Some("0123456789abcdef0123456789abcdef"))
        .await
        .unwrap_err();
    assert!(matches!(e, BackupError::ChecksumMismatch { .. }), "{e:?}");

    // Metadata replaced by POST, visible as X-Object-Meta-*.
    let mut more = meta();
    more.insert("lsn".into(), "1234567".into());
    store.set_metadata(&stored.location, &more).await.unwrap();
    let raw = t.swift(Method::HEAD, &format!("{c}/b1.xbstream.zst")).await;
    assert_eq!(header(&raw, "x-object-meta-lsn").unwrap(), "1234567");
    assert_eq!(store.head(&stored.location).await.unwrap().metadata, more);

    // No overwriting; metadata Swift cannot keep is refused before anything is written.
    let e = store
        .put(&c, "b1.xbstream.zst", &mut &b"x"[..], &meta())
        .await
        .unwrap_err();
    assert!(matches!(e, BackupError::AlreadyExists(_)), "{e:?}");
    let big = Metadata::from([("k".to_owned(), "v".repeat(300))]);
    let e = store
        .put(&c, "b2.xbstream.zst", &mut &b"x"[..], &big)
        .await
        .unwrap_err();
    assert!(matches!(e, BackupError::InvalidMetadata(_)), "{e:?}");

    // An empty stream is an empty object.
    let empty = store
        .put(&c, "empty.xbstream.zst", &mut &b""[..], &meta())
        .await
        .unwrap();
    assert_eq!(
        (empty.size, empty.checksum.as_str()),
        (0, md5_hex(b"").as_str())
    );
    assert!(read_all(&store, &empty.location, None).await.is_empty());

    // A token Swift does not accept, and no token at all.
    let bad = SwiftStore::new(&t.url, "gAAAAA-not-a-token").unwrap();
    let e = bad.head(&stored.location).await.unwrap_err();
    assert!(matches!(e, BackupError::Unauthorized { .. }), "{e:?}");
    let e = open_store_for_url(&t.url, None).unwrap_err();
    assert!(matches!(e, BackupError::NoToken(_)), "{e:?}");

    store.delete(&stored.location).await.unwrap();
    store.delete(&empty.location).await.unwrap();
    assert!(t.list(&c).await.is_empty());
    let e = store.head(&stored.location).await.unwrap_err();
    assert!(matches!(e, BackupError::NotFound(_)), "{e:?}");
    t.drop_container(&c).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn several_segments_are_a_static_large_object() {
    let t = demo().await;
    let c = t.container("slo");
    let store = open_store_for_url(&t.url, Some(&t.token)).unwrap();
    let store_small = t.store().with_segment_size(100_000);
    let _ = store; // the dispatching constructor gives the same kind of store
    let bytes = data(350_000, 2);
    let stored = store_small
        .put(&c, "b2.xbstream.zst", &mut bytes.as_slice(), &meta())
        .await
        .unwrap();
    assert_eq!((stored.size, stored.segments), (350_000, 4));
    let md5s: String = bytes.chunks(100_000).map(md5_hex).collect();
    assert_eq!(stored.checksum, md5_hex(md5s.as_bytes()));
    let mut names = t.list(&c).await;
    names.sort();
    assert_eq!(
        names,
        [
            "b2.xbstream.zst",
            "b2_00000000",
            "b2_00000001",
            "b2_00000002",
            "b2_00000003"
        ]
    );

    // Swift sees a Static Large Object: quoted ETag = the checksum, its manifest lists
    // the segments with their MD5s and sizes.
    let raw = t.swift(Method::HEAD, &format!("{c}/b2.xbstream.zst")).await;
    assert_eq!(header(&raw, "x-static-large-object").unwrap(), "True");
    assert_eq!(
        header(&raw, "etag").unwrap(),
        format!("\"{}\"", stored.checksum)
    );
    assert_eq!(header(&raw, "content-length").unwrap(), "350000");
    assert_eq!(header(&raw, "x-object-meta-datastore").unwrap(), "mariadb");
    let manifest: Value = t
        .swift(
            Method::GET,
            &format!("{c}/b2.xbstream.zst?multipart-manifest=get"),
        )
        .await
        .json()
        .await
        .unwrap();
    let entries = manifest.as_array().unwrap();
    assert_eq!(entries.len(), 4);
    for (i, (e, chunk)) in entries.iter().zip(bytes.chunks(100_000)).enumerate() {
        assert_eq!(e["name"], format!("/{c}/b2_{i:08}"));
        assert_eq!(e["hash"], md5_hex(chunk));
        assert_eq!(e["bytes"], chunk.len());
    }
    // Swift itself serves the whole object from the segments.
    let whole = t
        .swift(Method::GET, &format!("{c}/b2.xbstream.zst"))
        .await
        .bytes()
        .await
        .unwrap();
    assert_eq!(whole.as_ref(), bytes.as_slice());

    let info = store_small
        .verify(&stored.location, Some(&stored.checksum))
        .await
        .unwrap();
    assert_eq!(info.segments.len(), 4);
    assert_eq!(info.segments[1].path, format!("{c}/b2_00000001"));
    assert_eq!(
        read_all(&store_small, &stored.location, Some(&stored.checksum)).await,
        bytes
    );

    // A stream ending exactly at a segment boundary leaves no empty segment.
    let exact = data(300_000, 3);
    let s3 = store_small
        .put(&c, "b3.xbstream.zst", &mut exact.as_slice(), &meta())
        .await
        .unwrap();
    assert_eq!(s3.segments, 3);
    assert!(!t.list(&c).await.contains(&"b3_00000003".to_owned()));
    assert_eq!(read_all(&store_small, &s3.location, None).await, exact);

    // Delete removes the manifest and its segments.
    store_small.delete(&stored.location).await.unwrap();
    let mut names = t.list(&c).await;
    names.sort();
    assert_eq!(
        names,
        [
            "b3.xbstream.zst",
            "b3_00000000",
            "b3_00000001",
            "b3_00000002"
        ]
    );
    let e = store_small.delete(&stored.location).await.unwrap_err();
    assert!(matches!(e, BackupError::NotFound(_)), "{e:?}");
    store_small.delete(&s3.location).await.unwrap();
    assert!(t.list(&c).await.is_empty());
    t.drop_container(&c).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tampered_objects_are_refused() {
    let t = demo().await;
    let c = t.container("tamper");
    let store = t.store().with_segment_size(100_000);
    let bytes = data(250_000, 4);
    let stored = store
        .put(&c, "b4.xbstream.zst", &mut bytes.as_slice(), &meta())
        .await
        .unwrap();
    store.verify(&stored.location, None).await.unwrap();

    // Overwrite the second segment through the Swift API (same size, other bytes).
    let mut forged = data(100_000, 5);
    forged[0] ^= 1;
    let resp = t
        .http
        .put(format!("{}/{c}/b4_00000001", t.url))
        .header("X-Auth-Token", &t.token)
        .body(forged)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::CREATED);
    let e = store.verify(&stored.location, None).await.unwrap_err();
    assert!(e.is_integrity_error(), "{e:?}");
    assert!(e.to_string().contains("b4_00000001"), "{e}");
    let e = store
        .get(&stored.location, Some(&stored.checksum))
        .await
        .err()
        .expect("a tampered object is not handed out");
    assert!(e.is_integrity_error(), "{e:?}");

    // A missing segment.
    t.swift(Method::DELETE, &format!("{c}/b4_00000002")).await;
    let e = store.verify(&stored.location, None).await.unwrap_err();
    assert!(e.is_integrity_error(), "{e:?}");

    // A one-segment object replaced whole: Swift's ETag follows the new bytes, the
    // checksum the backup row keeps does not.
    let small = data(5_000, 6);
    let one = store
        .put(&c, "b5.xbstream.zst", &mut small.as_slice(), &meta())
        .await
        .unwrap();
    let resp = t
        .http
        .put(format!("{}/{c}/b5.xbstream.zst", t.url))
        .header("X-Auth-Token", &t.token)
        .body(data(5_000, 7))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::CREATED);
    let e = store
        .verify(&one.location, Some(&one.checksum))
        .await
        .unwrap_err();
    assert!(matches!(e, BackupError::ChecksumMismatch { .. }), "{e:?}");
    assert!(store.get(&one.location, Some(&one.checksum)).await.is_err());

    store.delete(&stored.location).await.unwrap();
    store.delete(&one.location).await.unwrap();
    assert!(t.list(&c).await.is_empty(), "{:?}", t.list(&c).await);
    t.drop_container(&c).await;
}

/// A source that yields `ok_bytes` and then fails.
struct Failing {
    data: Vec<u8>,
    pos: usize,
}

impl AsyncRead for Failing {
    fn poll_read(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if self.pos >= self.data.len() {
            return Poll::Ready(Err(io::Error::other("the backup tool died")));
        }
        let n = buf.remaining().min(self.data.len() - self.pos).min(7_000);
        let start = self.pos;
        buf.put_slice(&self.data[start..start + n]);
        self.pos += n;
        Poll::Ready(Ok(()))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_stream_leaves_no_segments() {
    let t = demo().await;
    let c = t.container("stream");
    let store = t.store().with_segment_size(100_000);
    for (len, name) in [(250_000, "b6.xbstream.zst"), (30_000, "b7.xbstream.zst")] {
        let mut src = Failing {
            data: data(len, 8),
            pos: 0,
        };
        let e = store.put(&c, name, &mut src, &meta()).await.unwrap_err();
        assert!(matches!(e, BackupError::Io { .. }), "{e:?}");
        assert!(e.to_string().contains("the backup tool died"), "{e}");
        assert_eq!(t.list(&c).await, Vec::<String>::new(), "after {name}");
    }
    t.drop_container(&c).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_container_quota_ends_in_an_error_with_no_segments() {
    let t = demo().await;
    let c = t.container("quota");
    let resp = t
        .http
        .put(format!("{}/{c}", t.url))
        .header("X-Auth-Token", &t.token)
        .header("X-Container-Meta-Quota-Bytes", "250000")
        .send()
        .await
        .unwrap();
    assert!(resp.status().is_success(), "{}", resp.status());
    let store = t.store().with_segment_size(100_000);
    let bytes = data(1_000_000, 9);
    let e = store
        .put(&c, "b8.xbstream.zst", &mut bytes.as_slice(), &meta())
        .await
        .unwrap_err();
    assert_eq!(e.http_status(), Some(413), "{e:?}");
    assert!(e.to_string().contains("quota"), "{e}");
    assert_eq!(t.list(&c).await, Vec::<String>::new());
    // Below the quota the same container takes a backup.
    let small = data(120_000, 10);
    let ok = store
        .put(&c, "b9.xbstream.zst", &mut small.as_slice(), &meta())
        .await
        .unwrap();
    assert_eq!(
        read_all(&store, &ok.location, Some(&ok.checksum)).await,
        small
    );
    store.delete(&ok.location).await.unwrap();
    t.drop_container(&c).await;
}

/// A TCP relay to the Swift proxy that, once `cut_after` bytes went upstream, drops every
/// connection and refuses new ones for `down_for`, then relays again.
struct Relay {
    addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn relay(upstream: SocketAddr, cut_after: u64, down_for: Duration) -> Relay {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let sent = Arc::new(AtomicU64::new(0));
    let down_until: Arc<Mutex<Option<Instant>>> = Arc::new(Mutex::new(None));
    let (cut_tx, cut_rx) = tokio::sync::watch::channel(false);
    let cut_tx = Arc::new(cut_tx);
    let task = tokio::spawn(async move {
        let mut conns = tokio::task::JoinSet::new();
        loop {
            let Ok((client, _)) = listener.accept().await else {
                return;
            };
            let down = down_until
                .lock()
                .unwrap()
                .is_some_and(|t| Instant::now() < t);
            if down {
                drop(client);
                continue;
            }
            let (sent, down_until, cut_tx, mut cut_rx) = (
                sent.clone(),
                down_until.clone(),
                cut_tx.clone(),
                cut_rx.clone(),
            );
            let already_cut = *cut_rx.borrow_and_update();
            conns.spawn(async move {
                let Ok(server) = tokio::net::TcpStream::connect(upstream).await else {
                    return;
                };
                let (mut cr, mut cw) = client.into_split();
                let (mut sr, mut sw) = server.into_split();
                let up = async {
                    let mut buf = vec![0u8; 16 * 1024];
                    loop {
                        let n = match cr.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => n,
                        };
                        let total = sent.fetch_add(n as u64, Ordering::SeqCst) + n as u64;
                        if !already_cut && total > cut_after && !*cut_tx.borrow() {
                            *down_until.lock().unwrap() = Some(Instant::now() + down_for);
                            let _ = cut_tx.send(true);
                            return;
                        }
                        if sw.write_all(&buf[..n]).await.is_err() {
                            return;
                        }
                    }
                };
                let down = async {
                    let _ = tokio::io::copy(&mut sr, &mut cw).await;
                };
                let cut = async {
                    if already_cut {
                        std::future::pending::<()>().await;
                    }
                    let _ = cut_rx.changed().await;
                };
                tokio::select! {
                    _ = async { tokio::join!(up, down) } => {}
                    _ = cut => {}
                }
            });
        }
    });
    Relay { addr, task }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn swift_unreachable_mid_upload_leaves_no_segments() {
    let t = demo().await;
    let s = stack();
    let c = t.container("outage");
    // The same account, through the relay.
    let path = t.url.split_once("/v1/").unwrap().1;
    let cut = relay(s.proxy, 260_000, Duration::from_secs(2)).await;
    let via = format!("http://{}/v1/{path}", cut.addr);
    let store = SwiftStore::new(&via, &t.token)
        .unwrap()
        .with_segment_size(100_000)
        .with_cleanup_patience(Duration::from_secs(30));
    let bytes = data(1_000_000, 11);
    let started = Instant::now();
    let e = store
        .put(&c, "b10.xbstream.zst", &mut bytes.as_slice(), &meta())
        .await
        .unwrap_err();
    assert!(
        matches!(e, BackupError::Remote { status: None, .. }),
        "{e:?}"
    );
    // Segments were written before the cut, and removed once Swift answered again.
    assert!(
        started.elapsed() >= Duration::from_millis(1500),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(t.list(&c).await, Vec::<String>::new());
    drop(cut);

    // Nothing listening at all: an error, nothing written.
    let dead = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let store = SwiftStore::new(&format!("http://{dead}/v1/{path}"), &t.token)
        .unwrap()
        .with_cleanup_patience(Duration::from_secs(1));
    let e = store
        .put(&c, "b11.xbstream.zst", &mut &b"abc"[..], &meta())
        .await
        .unwrap_err();
    assert!(
        matches!(e, BackupError::Remote { status: None, .. }),
        "{e:?}"
    );
    assert!(e.to_string().contains("did not answer"), "{e}");
    assert_eq!(t.list(&c).await, Vec::<String>::new());
    t.drop_container(&c).await;
}
