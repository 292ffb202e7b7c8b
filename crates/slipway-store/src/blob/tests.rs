//! Tests for the disk blob store: round trips, dedupe, atomic publication, streaming.

use super::*;
use tokio::io::AsyncReadExt;

fn store() -> (tempfile::TempDir, BlobStore) {
    let dir = tempfile::tempdir().unwrap();
    let store = BlobStore::open(dir.path().join("data")).unwrap();
    (dir, store)
}

fn tmp_entries(store: &BlobStore) -> usize {
    std::fs::read_dir(&store.inner.tmp).unwrap().count()
}

async fn read_all(store: &BlobStore, d: &Digest) -> Vec<u8> {
    let mut out = Vec::new();
    store
        .open_blob(d)
        .await
        .unwrap()
        .read_to_end(&mut out)
        .await
        .unwrap();
    out
}

#[tokio::test]
async fn round_trip_through_writer() {
    let (_dir, store) = store();
    let mut w = store.writer().await.unwrap();
    w.write(b"hello ").await.unwrap();
    w.write(b"world").await.unwrap();
    assert_eq!(w.bytes_written(), 11);
    let (d, n) = w.finish().await.unwrap();
    assert_eq!(n, 11);
    assert_eq!(d, Digest::of(b"hello world"));
    assert!(store.contains(&d));
    assert_eq!(store.size(&d).await.unwrap(), 11);
    assert_eq!(read_all(&store, &d).await, b"hello world");
    let hex = d.hex();
    assert!(
        store
            .path(&d)
            .ends_with(format!("blobs/sha256/{}/{hex}", &hex[..2]))
    );
    assert_eq!(tmp_entries(&store), 0);
}

#[tokio::test]
async fn empty_blob_is_a_blob() {
    let (_dir, store) = store();
    let (d, n) = store.writer().await.unwrap().finish().await.unwrap();
    assert_eq!((d, n), (Digest::of(b""), 0));
}

#[tokio::test]
async fn unknown_blob_is_named_in_the_error() {
    let (_dir, store) = store();
    let d = Digest::of(b"absent");
    assert!(!store.contains(&d));
    let err = store.open_blob(&d).await.unwrap_err();
    assert!(matches!(&err, StoreError::BlobUnknown(x) if *x == d));
    assert!(err.to_string().contains(d.as_str()), "{err}");
    assert!(matches!(
        store.size(&d).await,
        Err(StoreError::BlobUnknown(_))
    ));
}

#[tokio::test]
async fn identical_content_is_stored_once() {
    let (_dir, store) = store();
    let (a, _) = store.put_reader(&b"same bytes"[..]).await.unwrap();
    let (b, _) = store.put_reader(&b"same bytes"[..]).await.unwrap();
    assert_eq!(a, b);
    let shard = store.path(&a).parent().unwrap().to_path_buf();
    assert_eq!(std::fs::read_dir(shard).unwrap().count(), 1);
    assert_eq!(
        tmp_entries(&store),
        0,
        "the duplicate's temporary file is dropped"
    );
}

#[tokio::test]
async fn concurrent_writers_of_the_same_content_agree() {
    let (_dir, store) = store();
    let content: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    let content = std::sync::Arc::new(content);
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let (store, content) = (store.clone(), content.clone());
        tasks.push(tokio::spawn(async move {
            let mut w = store.writer().await.unwrap();
            for chunk in content.chunks(7_000) {
                w.write(chunk).await.unwrap();
            }
            w.finish().await.unwrap()
        }));
    }
    let mut digests = Vec::new();
    for t in tasks {
        digests.push(t.await.unwrap());
    }
    assert!(digests.windows(2).all(|w| w[0] == w[1]));
    let (d, n) = &digests[0];
    assert_eq!(*n, content.len() as u64);
    assert_eq!(read_all(&store, d).await, *content);
    assert_eq!(tmp_entries(&store), 0);
}

#[tokio::test]
async fn dropped_writer_leaves_nothing() {
    let (_dir, store) = store();
    let mut w = store.writer().await.unwrap();
    w.write(b"half a blob").await.unwrap();
    assert_eq!(tmp_entries(&store), 1);
    drop(w);
    assert_eq!(tmp_entries(&store), 0);
    assert!(!store.contains(&Digest::of(b"half a blob")));

    let mut w = store.sync_writer().unwrap();
    std::io::Write::write_all(&mut w, b"half").unwrap();
    drop(w);
    assert_eq!(tmp_entries(&store), 0);
}

#[tokio::test]
async fn digest_matches_sha256sum_of_the_file() {
    let (dir, store) = store();
    let src = dir.path().join("input.bin");
    let content: Vec<u8> = (0..1_000_003u32).map(|i| (i * 7 % 256) as u8).collect();
    std::fs::write(&src, &content).unwrap();
    let (d, n) = store.put_file(&src).await.unwrap();
    assert_eq!(n, content.len() as u64);
    let out = std::process::Command::new("sha256sum")
        .arg(&src)
        .output()
        .expect("sha256sum runs");
    let expected = String::from_utf8(out.stdout).unwrap();
    assert_eq!(d.hex(), expected.split_whitespace().next().unwrap());
}

#[tokio::test]
async fn put_file_names_a_missing_path() {
    let (dir, store) = store();
    let missing = dir.path().join("nope.txt");
    let err = store.put_file(&missing).await.unwrap_err();
    assert!(err.to_string().contains("nope.txt"), "{err}");
}

/// 50 MiB from a generator reader: the store pulls it through a fixed buffer, so memory
/// stays at the buffer sizes however large the blob.
#[tokio::test]
async fn fifty_mib_streams_through_put_reader() {
    struct Gen {
        left: u64,
    }
    impl AsyncRead for Gen {
        fn poll_read(
            mut self: Pin<&mut Self>,
            _cx: &mut Context<'_>,
            buf: &mut tokio::io::ReadBuf<'_>,
        ) -> Poll<io::Result<()>> {
            let n = (buf.remaining() as u64).min(self.left) as usize;
            buf.put_slice(&vec![b'x'; n]);
            self.left -= n as u64;
            Poll::Ready(Ok(()))
        }
    }
    const SIZE: u64 = 50 * 1024 * 1024;
    let (_dir, store) = store();
    let (d, n) = store.put_reader(Gen { left: SIZE }).await.unwrap();
    assert_eq!(n, SIZE);
    let mut h = Hasher::new();
    let block = vec![b'x'; 1024 * 1024];
    for _ in 0..50 {
        h.update(&block);
    }
    assert_eq!(d, h.finish());
    assert_eq!(store.size(&d).await.unwrap(), SIZE);
}

#[tokio::test]
async fn async_write_trait_hashes_what_it_accepts() {
    let (_dir, store) = store();
    let mut w = store.writer().await.unwrap();
    let mut src = &b"through tokio::io::copy"[..];
    tokio::io::copy(&mut src, &mut w).await.unwrap();
    let (d, n) = w.finish().await.unwrap();
    assert_eq!((d, n), (Digest::of(b"through tokio::io::copy"), 23));
}

#[tokio::test]
async fn sync_writer_round_trip() {
    let (_dir, store) = store();
    let s2 = store.clone();
    let (d, n) = tokio::task::spawn_blocking(move || {
        let mut w = s2.sync_writer().unwrap();
        for _ in 0..1000 {
            io::Write::write_all(&mut w, b"0123456789").unwrap();
        }
        w.finish().unwrap()
    })
    .await
    .unwrap();
    assert_eq!(n, 10_000);
    assert_eq!(d, Digest::of(&b"0123456789".repeat(1000)));
    assert_eq!(read_all(&store, &d).await.len(), 10_000);
}

#[tokio::test]
async fn finish_expecting_rejects_a_wrong_digest_and_publishes_nothing() {
    let (_dir, store) = store();
    let mut w = store.writer().await.unwrap();
    w.write(b"actual").await.unwrap();
    let err = w
        .finish_expecting(&Digest::of(b"claimed"))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::DigestMismatch { .. }));
    assert!(!store.contains(&Digest::of(b"actual")));
    assert_eq!(tmp_entries(&store), 0);

    let mut w = store.writer().await.unwrap();
    w.write(b"actual").await.unwrap();
    assert_eq!(w.finish_expecting(&Digest::of(b"actual")).await.unwrap(), 6);
}

#[tokio::test]
async fn sweep_tmp_removes_only_old_leftovers() {
    let (_dir, store) = store();
    std::fs::write(store.inner.tmp.join("leftover"), b"x").unwrap();
    assert_eq!(store.sweep_tmp(Duration::from_secs(3600)).unwrap(), 0);
    assert_eq!(store.sweep_tmp(Duration::ZERO).unwrap(), 1);
    assert_eq!(tmp_entries(&store), 0);
}
