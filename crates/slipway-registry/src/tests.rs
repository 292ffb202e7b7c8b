//! In-process tests of the `/v2/` API against the router (tower's `oneshot`): the spec's
//! behaviour, including what Debian's skopeo 1.9 does not speak (referrers, chunked uploads
//! with Content-Range, resuming), and garbage collection racing pushes.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, Method, Request, StatusCode};
use base64::Engine as _;
use http_body_util::BodyExt as _;
use slipway_model::Digest;
use slipway_store::{BlobStore, Db};
use tower::ServiceExt as _;

use crate::services::manifests::{OCI_INDEX, OCI_MANIFEST};
use crate::{Registry, RegistryConfig};

struct T {
    _dir: tempfile::TempDir,
    data: std::path::PathBuf,
    reg: Arc<Registry>,
    db: Arc<Db>,
    auth: String,
}

struct Resp {
    status: StatusCode,
    headers: HeaderMap,
    body: Vec<u8>,
}

impl Resp {
    fn header(&self, k: &str) -> &str {
        self.headers
            .get(k)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }
    fn code(&self) -> String {
        let v: serde_json::Value = serde_json::from_slice(&self.body).unwrap_or_default();
        v["errors"][0]["code"].as_str().unwrap_or("").to_string()
    }
    fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap()
    }
}

fn config() -> RegistryConfig {
    let mut c = RegistryConfig::new("127.0.0.1:5000");
    c.password = Some("secret".into());
    c.gc_grace = Duration::ZERO;
    c
}

impl T {
    async fn new() -> T {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().to_path_buf();
        let db = Arc::new(
            Db::connect(&format!("sqlite:{}", data.join("s.db").display()))
                .await
                .unwrap(),
        );
        db.create_project("proj", "/x", 1).await.unwrap();
        db.create_project("other", "/x", 1).await.unwrap();
        let reg = open(&data, db.clone());
        let auth = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode("slipway:secret")
        );
        T {
            _dir: dir,
            data,
            reg,
            db,
            auth,
        }
    }

    fn router(&self) -> Router {
        crate::router(self.reg.clone())
    }

    async fn send(&self, method: Method, uri: &str, headers: &[(&str, &str)], body: Body) -> Resp {
        let mut b = Request::builder().method(method).uri(uri);
        let mut authed = false;
        for (k, v) in headers {
            authed |= k.eq_ignore_ascii_case("authorization");
            b = b.header(*k, *v);
        }
        if !authed {
            b = b.header("authorization", &self.auth);
        }
        let resp = self.router().oneshot(b.body(body).unwrap()).await.unwrap();
        let status = resp.status();
        let headers = resp.headers().clone();
        let body = resp
            .into_body()
            .collect()
            .await
            .unwrap()
            .to_bytes()
            .to_vec();
        Resp {
            status,
            headers,
            body,
        }
    }

    async fn req(&self, method: Method, uri: &str, body: impl Into<Body>) -> Resp {
        self.send(method, uri, &[], body.into()).await
    }

    /// A monolithic upload; returns the digest.
    async fn blob(&self, repo: &str, bytes: &[u8]) -> Digest {
        let d = Digest::of(bytes);
        let r = self
            .req(
                Method::POST,
                &format!("/v2/{repo}/blobs/uploads/?digest={d}"),
                bytes.to_vec(),
            )
            .await;
        assert_eq!(
            r.status,
            StatusCode::CREATED,
            "{}",
            String::from_utf8_lossy(&r.body)
        );
        d
    }

    /// An image manifest over a config and layers; returns (bytes, digest).
    async fn image(
        &self,
        repo: &str,
        tag: &str,
        layers: &[&[u8]],
        subject: Option<(&Digest, usize)>,
    ) -> (Vec<u8>, Digest) {
        let cfg = self
            .blob(repo, format!("{{\"tag\":\"{tag}\"}}").as_bytes())
            .await;
        let mut ls = Vec::new();
        for l in layers {
            let d = self.blob(repo, l).await;
            ls.push(serde_json::json!({"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":d,"size":l.len()}));
        }
        let mut m = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cfg, "size": format!("{{\"tag\":\"{tag}\"}}").len()},
            "layers": ls,
        });
        if let Some((s, size)) = subject {
            m["subject"] =
                serde_json::json!({"mediaType": OCI_MANIFEST, "digest": s, "size": size});
            m["artifactType"] = "application/vnd.example.sig".into();
            m["annotations"] = serde_json::json!({"by": "test"});
        }
        let bytes = serde_json::to_vec_pretty(&m).unwrap();
        let r = self
            .send(
                Method::PUT,
                &format!("/v2/{repo}/manifests/{tag}"),
                &[("content-type", OCI_MANIFEST)],
                bytes.clone().into(),
            )
            .await;
        assert_eq!(
            r.status,
            StatusCode::CREATED,
            "{}",
            String::from_utf8_lossy(&r.body)
        );
        let d = Digest::of(&bytes);
        assert_eq!(r.header("docker-content-digest"), d.as_str());
        (bytes, d)
    }
}

fn open(data: &std::path::Path, db: Arc<Db>) -> Arc<Registry> {
    let blobs = BlobStore::open(data.join("store")).unwrap();
    Registry::open(data, config(), db, blobs, Arc::default()).unwrap()
}

#[tokio::test]
async fn the_base_endpoint_challenges_then_accepts_a_token() {
    let t = T::new().await;
    let r = t
        .send(
            Method::GET,
            "/v2/",
            &[("authorization", "Basic eDp5"), ("host", "reg.test:5000")],
            Body::empty(),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert_eq!(r.code(), "UNAUTHORIZED");
    assert_eq!(
        r.header("www-authenticate"),
        "Bearer realm=\"http://reg.test:5000/v2/token\",service=\"slipway\""
    );
    assert_eq!(r.header("docker-distribution-api-version"), "registry/2.0");
    let r = t
        .send(
            Method::GET,
            "/v2/token?service=slipway",
            &[("authorization", "Basic eDp5")],
            Body::empty(),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    let r = t
        .req(
            Method::GET,
            "/v2/token?service=slipway&scope=repository:proj/app:pull,push",
            Body::empty(),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    let tok = r.json()["token"].as_str().unwrap().to_string();
    assert_eq!(r.json()["access_token"], r.json()["token"]);
    let bearer = format!("Bearer {tok}");
    let r = t
        .send(
            Method::GET,
            "/v2/",
            &[("authorization", &bearer)],
            Body::empty(),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    // A token can push.
    let r = t
        .send(
            Method::POST,
            "/v2/proj/app/blobs/uploads/",
            &[("authorization", &bearer)],
            Body::empty(),
        )
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED);
    let r = t
        .send(
            Method::GET,
            "/v2/",
            &[("authorization", "Bearer forged.token")],
            Body::empty(),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn anonymous_pull_is_a_per_repository_switch() {
    let t = T::new().await;
    let (_, d) = t.image("proj/app", "v1", &[b"layer"], None).await;
    let anon = t
        .send(
            Method::GET,
            "/v2/token?service=slipway",
            &[("authorization", "")],
            Body::empty(),
        )
        .await;
    let tok = format!("Bearer {}", anon.json()["token"].as_str().unwrap());
    let uri = format!("/v2/proj/app/manifests/{d}");
    let r = t
        .send(Method::GET, &uri, &[("authorization", &tok)], Body::empty())
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert!(
        r.header("www-authenticate")
            .contains("scope=\"repository:proj/app:pull\"")
    );
    let repo = t.db.registry_repo("proj/app").await.unwrap().unwrap();
    t.db.registry_set_repo(repo.id, None, Some(true))
        .await
        .unwrap();
    let r = t
        .send(Method::GET, &uri, &[("authorization", &tok)], Body::empty())
        .await;
    assert_eq!(r.status, StatusCode::OK);
    // Pull only: a push still needs credentials.
    let r = t
        .send(
            Method::POST,
            "/v2/proj/app/blobs/uploads/",
            &[("authorization", &tok)],
            Body::empty(),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn blobs_upload_monolithically_and_read_back_whole_and_in_ranges() {
    let t = T::new().await;
    let d = t.blob("proj/app", b"hello, registry").await;
    let r = t
        .req(
            Method::HEAD,
            &format!("/v2/proj/app/blobs/{d}"),
            Body::empty(),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.header("content-length"), "15");
    assert_eq!(r.header("docker-content-digest"), d.as_str());
    let r = t
        .req(
            Method::GET,
            &format!("/v2/proj/app/blobs/{d}"),
            Body::empty(),
        )
        .await;
    assert_eq!(r.body, b"hello, registry");
    let r = t
        .send(
            Method::GET,
            &format!("/v2/proj/app/blobs/{d}"),
            &[("range", "bytes=7-14")],
            Body::empty(),
        )
        .await;
    assert_eq!(r.status, StatusCode::PARTIAL_CONTENT);
    assert_eq!(r.body, b"registry");
    assert_eq!(r.header("content-range"), "bytes 7-14/15");
    let r = t
        .send(
            Method::GET,
            &format!("/v2/proj/app/blobs/{d}"),
            &[("range", "bytes=99-")],
            Body::empty(),
        )
        .await;
    assert_eq!(r.status, StatusCode::RANGE_NOT_SATISFIABLE);
    // Another repository does not see it until it mounts it.
    let r = t
        .req(
            Method::GET,
            &format!("/v2/proj/other/blobs/{d}"),
            Body::empty(),
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let d2 = t.blob("proj/other", b"x").await;
    let r = t
        .req(
            Method::GET,
            &format!("/v2/proj/other/blobs/{d}"),
            Body::empty(),
        )
        .await;
    assert_eq!(
        (r.status, r.code().as_str()),
        (StatusCode::NOT_FOUND, "BLOB_UNKNOWN")
    );
    let r = t
        .req(
            Method::POST,
            &format!("/v2/proj/other/blobs/uploads/?mount={d}&from=proj/app"),
            Body::empty(),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED);
    assert_eq!(r.header("location"), format!("/v2/proj/other/blobs/{d}"));
    let r = t
        .req(
            Method::GET,
            &format!("/v2/proj/other/blobs/{d}"),
            Body::empty(),
        )
        .await;
    assert_eq!(r.body, b"hello, registry");
    // A mount of something the source lacks starts an upload instead.
    let r = t
        .req(
            Method::POST,
            &format!("/v2/proj/app/blobs/uploads/?mount={d2}&from=proj/nope"),
            Body::empty(),
        )
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED);
    // Identical bytes are stored once, in the shared store.
    let mut n = 0;
    t.reg.blobs.for_each_blob(|_, _, _| n += 1).unwrap();
    assert_eq!(n, 2);
    // DELETE unlinks it from one repository only.
    let r = t
        .req(
            Method::DELETE,
            &format!("/v2/proj/other/blobs/{d}"),
            Body::empty(),
        )
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED);
    let r = t
        .req(
            Method::GET,
            &format!("/v2/proj/other/blobs/{d}"),
            Body::empty(),
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let r = t
        .req(
            Method::GET,
            &format!("/v2/proj/app/blobs/{d}"),
            Body::empty(),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
}

#[tokio::test]
async fn a_wrong_digest_is_rejected_and_nothing_becomes_visible() {
    let t = T::new().await;
    let wrong = Digest::of(b"something else");
    let r = t
        .req(
            Method::POST,
            &format!("/v2/proj/app/blobs/uploads/?digest={wrong}"),
            b"content".to_vec(),
        )
        .await;
    assert_eq!(
        (r.status, r.code().as_str()),
        (StatusCode::BAD_REQUEST, "DIGEST_INVALID")
    );
    assert!(!t.reg.blobs.contains(&Digest::of(b"content")));
    assert!(!t.reg.blobs.contains(&wrong));
    let r = t
        .req(
            Method::POST,
            "/v2/proj/app/blobs/uploads/?digest=sha256:1234",
            b"x".to_vec(),
        )
        .await;
    assert_eq!(r.code(), "DIGEST_INVALID");
    let r = t
        .req(
            Method::POST,
            "/v2/proj/app/blobs/uploads/?digest=sha512:1234",
            b"x".to_vec(),
        )
        .await;
    assert_eq!(r.code(), "UNSUPPORTED");
}

fn upload_path(r: &Resp) -> String {
    r.header("location").to_string()
}

#[tokio::test]
async fn chunked_uploads_check_content_range_and_resume_after_a_broken_request() {
    let t = T::new().await;
    let data: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
    let r = t
        .req(Method::POST, "/v2/proj/app/blobs/uploads/", Body::empty())
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED);
    let loc = upload_path(&r);
    assert!(loc.starts_with("/v2/proj/app/blobs/uploads/"), "{loc}");
    assert!(!r.header("docker-upload-uuid").is_empty());
    let r = t
        .send(
            Method::PATCH,
            &loc,
            &[
                ("content-range", "0-999999"),
                ("content-type", "application/octet-stream"),
            ],
            data[..1_000_000].to_vec().into(),
        )
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED);
    assert_eq!(r.header("range"), "0-999999");
    // Out of order: refused with where to resume.
    let r = t
        .send(
            Method::PATCH,
            &loc,
            &[("content-range", "5-10")],
            b"zzzzzz".to_vec().into(),
        )
        .await;
    assert_eq!(r.status, StatusCode::RANGE_NOT_SATISFIABLE);
    assert_eq!(r.header("range"), "0-999999");
    // A request that breaks off mid-body: what arrived is kept.
    let first = bytes::Bytes::copy_from_slice(&data[1_000_000..1_500_000]);
    let stream = futures::stream::iter(vec![
        Ok::<_, std::io::Error>(first),
        Err(std::io::Error::new(
            std::io::ErrorKind::ConnectionReset,
            "client went away",
        )),
    ]);
    let r = t
        .send(
            Method::PATCH,
            &loc,
            &[("content-range", "1000000-2999999")],
            Body::from_stream(stream),
        )
        .await;
    assert_eq!(r.code(), "BLOB_UPLOAD_INVALID");
    let r = t.req(Method::GET, &loc, Body::empty()).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    assert_eq!(r.header("range"), "0-1499999");
    // The server restarts: the session and its bytes survive; the hash state is rebuilt.
    let t2 = T {
        reg: open(&t.data, t.db.clone()),
        ..t
    };
    let r = t2.req(Method::GET, &loc, Body::empty()).await;
    assert_eq!(r.header("range"), "0-1499999");
    let r = t2
        .send(
            Method::PATCH,
            &loc,
            &[("content-range", "1500000-2999999")],
            data[1_500_000..].to_vec().into(),
        )
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED);
    let d = Digest::of(&data);
    // Another repository cannot touch the session.
    let other = loc.replace("proj/app", "proj/else");
    let r = t2
        .req(Method::PUT, &format!("{other}?digest={d}"), Body::empty())
        .await;
    assert_eq!(r.code(), "BLOB_UPLOAD_UNKNOWN");
    let r = t2
        .req(Method::PUT, &format!("{loc}?digest={d}"), Body::empty())
        .await;
    assert_eq!(
        r.status,
        StatusCode::CREATED,
        "{}",
        String::from_utf8_lossy(&r.body)
    );
    assert_eq!(r.header("docker-content-digest"), d.as_str());
    let r = t2
        .req(
            Method::GET,
            &format!("/v2/proj/app/blobs/{d}"),
            Body::empty(),
        )
        .await;
    assert_eq!(r.body.len(), data.len());
    assert!(r.body == data);
    // The session is gone after.
    let r = t2.req(Method::GET, &loc, Body::empty()).await;
    assert_eq!(
        (r.status, r.code().as_str()),
        (StatusCode::NOT_FOUND, "BLOB_UPLOAD_UNKNOWN")
    );
    // A PUT with the last chunk in its body works too; DELETE cancels.
    let r = t2
        .req(Method::POST, "/v2/proj/app/blobs/uploads/", Body::empty())
        .await;
    let loc = upload_path(&r);
    t2.req(Method::PATCH, &loc, b"abc".to_vec()).await;
    let r = t2
        .req(
            Method::PUT,
            &format!("{loc}?digest={}", Digest::of(b"abcdef")),
            b"def".to_vec(),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED);
    let r = t2
        .req(Method::POST, "/v2/proj/app/blobs/uploads/", Body::empty())
        .await;
    let loc = upload_path(&r);
    assert_eq!(
        t2.req(Method::DELETE, &loc, Body::empty()).await.status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        t2.req(Method::GET, &loc, Body::empty()).await.code(),
        "BLOB_UPLOAD_UNKNOWN"
    );
    let r = t2
        .req(Method::PUT, &format!("{loc}?digest={d}"), Body::empty())
        .await;
    assert_eq!(r.code(), "BLOB_UPLOAD_UNKNOWN");
}

#[tokio::test]
async fn manifests_by_tag_and_digest_keep_their_bytes_and_type() {
    let t = T::new().await;
    let (bytes, d) = t.image("proj/app", "v1", &[b"l1", b"l2"], None).await;
    for r in ["v1", d.as_str()] {
        let resp = t
            .req(
                Method::GET,
                &format!("/v2/proj/app/manifests/{r}"),
                Body::empty(),
            )
            .await;
        assert_eq!(resp.status, StatusCode::OK);
        assert_eq!(resp.body, bytes, "exact bytes");
        assert_eq!(resp.header("content-type"), OCI_MANIFEST);
        assert_eq!(resp.header("docker-content-digest"), d.as_str());
        let head = t
            .req(
                Method::HEAD,
                &format!("/v2/proj/app/manifests/{r}"),
                Body::empty(),
            )
            .await;
        assert_eq!(head.header("content-length"), bytes.len().to_string());
        assert!(head.body.is_empty());
    }
    // A Docker manifest list over it, by digest.
    let list = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.docker.distribution.manifest.list.v2+json",
        "manifests": [{"mediaType": OCI_MANIFEST, "digest": d, "size": bytes.len(), "platform": {"architecture": "amd64", "os": "linux"}}]
    }))
    .unwrap();
    let ld = Digest::of(&list);
    let r = t
        .send(
            Method::PUT,
            &format!("/v2/proj/app/manifests/{ld}"),
            &[(
                "content-type",
                "application/vnd.docker.distribution.manifest.list.v2+json",
            )],
            list.clone().into(),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED);
    let r = t
        .req(
            Method::GET,
            &format!("/v2/proj/app/manifests/{ld}"),
            Body::empty(),
        )
        .await;
    assert_eq!(
        r.header("content-type"),
        "application/vnd.docker.distribution.manifest.list.v2+json"
    );
    // A PUT by a digest the bytes do not have.
    let r = t
        .send(
            Method::PUT,
            &format!("/v2/proj/app/manifests/{d}"),
            &[(
                "content-type",
                "application/vnd.docker.distribution.manifest.list.v2+json",
            )],
            list.clone().into(),
        )
        .await;
    assert_eq!(r.code(), "DIGEST_INVALID");
    // References that do not exist.
    let missing = Digest::of(b"nope");
    let m = serde_json::json!({"schemaVersion":2,"mediaType":OCI_MANIFEST,
        "config":{"mediaType":"x","digest":missing,"size":4},"layers":[]});
    let r = t
        .send(
            Method::PUT,
            "/v2/proj/app/manifests/bad",
            &[("content-type", OCI_MANIFEST)],
            serde_json::to_vec(&m).unwrap().into(),
        )
        .await;
    assert_eq!(
        (r.status, r.code().as_str()),
        (StatusCode::BAD_REQUEST, "MANIFEST_BLOB_UNKNOWN")
    );
    let idx = serde_json::json!({"schemaVersion":2,"mediaType":OCI_INDEX,"manifests":[{"mediaType":OCI_MANIFEST,"digest":missing,"size":4}]});
    let r = t
        .send(
            Method::PUT,
            "/v2/proj/app/manifests/bad",
            &[("content-type", OCI_INDEX)],
            serde_json::to_vec(&idx).unwrap().into(),
        )
        .await;
    assert_eq!(r.code(), "MANIFEST_BLOB_UNKNOWN");
    let r = t
        .send(
            Method::PUT,
            "/v2/proj/app/manifests/bad",
            &[("content-type", OCI_MANIFEST)],
            b"{not json".to_vec().into(),
        )
        .await;
    assert_eq!(r.code(), "MANIFEST_INVALID");
    let r = t
        .req(Method::GET, "/v2/proj/app/manifests/nope", Body::empty())
        .await;
    assert_eq!(
        (r.status, r.code().as_str()),
        (StatusCode::NOT_FOUND, "MANIFEST_UNKNOWN")
    );
    let r = t
        .req(
            Method::GET,
            "/v2/proj/app/manifests/-bad-tag",
            Body::empty(),
        )
        .await;
    assert_eq!(r.code(), "TAG_INVALID");
    // Deletes: a tag alone, then the manifest by digest.
    let r = t
        .req(Method::DELETE, "/v2/proj/app/manifests/v1", Body::empty())
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED);
    assert_eq!(
        t.req(Method::GET, "/v2/proj/app/manifests/v1", Body::empty())
            .await
            .code(),
        "MANIFEST_UNKNOWN"
    );
    assert_eq!(
        t.req(
            Method::GET,
            &format!("/v2/proj/app/manifests/{d}"),
            Body::empty()
        )
        .await
        .status,
        StatusCode::OK
    );
    assert_eq!(
        t.req(
            Method::DELETE,
            &format!("/v2/proj/app/manifests/{d}"),
            Body::empty()
        )
        .await
        .status,
        StatusCode::ACCEPTED
    );
    assert_eq!(
        t.req(
            Method::GET,
            &format!("/v2/proj/app/manifests/{d}"),
            Body::empty()
        )
        .await
        .code(),
        "MANIFEST_UNKNOWN"
    );
    assert_eq!(
        t.req(
            Method::DELETE,
            &format!("/v2/proj/app/manifests/{d}"),
            Body::empty()
        )
        .await
        .code(),
        "MANIFEST_UNKNOWN"
    );
}

#[tokio::test]
async fn immutable_tags_refuse_to_move() {
    let t = T::new().await;
    t.image("proj/app", "v1", &[b"a"], None).await;
    let repo = t.db.registry_repo("proj/app").await.unwrap().unwrap();
    t.db.registry_set_repo(repo.id, Some(true), None)
        .await
        .unwrap();
    // The same manifest again is fine.
    t.image("proj/app", "v1", &[b"a"], None).await;
    let cfg = t.blob("proj/app", b"{}").await;
    let m = serde_json::json!({"schemaVersion":2,"mediaType":OCI_MANIFEST,"config":{"mediaType":"x","digest":cfg,"size":2},"layers":[]});
    let r = t
        .send(
            Method::PUT,
            "/v2/proj/app/manifests/v1",
            &[("content-type", OCI_MANIFEST)],
            serde_json::to_vec(&m).unwrap().into(),
        )
        .await;
    assert_eq!(
        (r.status, r.code().as_str()),
        (StatusCode::BAD_REQUEST, "TAG_INVALID")
    );
    let msg = r.json()["errors"][0]["message"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(msg.contains("immutable"), "{msg}");
    let r = t
        .send(
            Method::PUT,
            "/v2/proj/app/manifests/v2",
            &[("content-type", OCI_MANIFEST)],
            serde_json::to_vec(&m).unwrap().into(),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED);
}

#[tokio::test]
async fn tags_list_paginates_with_n_last_and_a_link_header() {
    let t = T::new().await;
    for tag in ["c", "a", "e", "b", "d"] {
        t.image("proj/app", tag, &[], None).await;
    }
    let r = t
        .req(Method::GET, "/v2/proj/app/tags/list", Body::empty())
        .await;
    assert_eq!(
        r.json(),
        serde_json::json!({"name":"proj/app","tags":["a","b","c","d","e"]})
    );
    assert_eq!(r.header("link"), "");
    let r = t
        .req(Method::GET, "/v2/proj/app/tags/list?n=2", Body::empty())
        .await;
    assert_eq!(r.json()["tags"], serde_json::json!(["a", "b"]));
    assert_eq!(
        r.header("link"),
        "</v2/proj/app/tags/list?n=2&last=b>; rel=\"next\""
    );
    let r = t
        .req(
            Method::GET,
            "/v2/proj/app/tags/list?n=2&last=b",
            Body::empty(),
        )
        .await;
    assert_eq!(r.json()["tags"], serde_json::json!(["c", "d"]));
    let r = t
        .req(
            Method::GET,
            "/v2/proj/app/tags/list?n=2&last=d",
            Body::empty(),
        )
        .await;
    assert_eq!(r.json()["tags"], serde_json::json!(["e"]));
    assert_eq!(r.header("link"), "");
    let r = t
        .req(Method::GET, "/v2/proj/app/tags/list?n=0", Body::empty())
        .await;
    assert_eq!(r.json()["tags"], serde_json::json!([]));
}

#[tokio::test]
async fn referrers_list_manifests_whose_subject_is_the_digest() {
    let t = T::new().await;
    let (bytes, d) = t.image("proj/app", "v1", &[b"a"], None).await;
    let r = t
        .req(
            Method::GET,
            &format!("/v2/proj/app/referrers/{d}"),
            Body::empty(),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.header("content-type"), OCI_INDEX);
    assert_eq!(r.json()["manifests"], serde_json::json!([]));
    // A signature pointing at it: the push answers with OCI-Subject.
    let cfg = t.blob("proj/app", b"{}").await;
    let sig = serde_json::to_vec(
        &serde_json::json!({"schemaVersion":2,"mediaType":OCI_MANIFEST,
        "artifactType":"application/vnd.example.sig",
        "config":{"mediaType":"application/vnd.oci.empty.v1+json","digest":cfg,"size":2},
        "layers":[], "subject":{"mediaType":OCI_MANIFEST,"digest":d,"size":bytes.len()},
        "annotations":{"org.example.by":"test"}}),
    )
    .unwrap();
    let sd = Digest::of(&sig);
    let r = t
        .send(
            Method::PUT,
            &format!("/v2/proj/app/manifests/{sd}"),
            &[("content-type", OCI_MANIFEST)],
            sig.clone().into(),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED);
    assert_eq!(r.header("oci-subject"), d.as_str());
    // An SBOM whose artifact type comes from its config.
    let sbom_cfg = t.blob("proj/app", b"{\"sbom\":1}").await;
    let sbom = serde_json::to_vec(
        &serde_json::json!({"schemaVersion":2,"mediaType":OCI_MANIFEST,
        "config":{"mediaType":"application/vnd.example.sbom","digest":sbom_cfg,"size":10},
        "layers":[], "subject":{"mediaType":OCI_MANIFEST,"digest":d,"size":bytes.len()}}),
    )
    .unwrap();
    let r = t
        .send(
            Method::PUT,
            &format!("/v2/proj/app/manifests/{}", Digest::of(&sbom)),
            &[("content-type", OCI_MANIFEST)],
            sbom.into(),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED);
    let r = t
        .req(
            Method::GET,
            &format!("/v2/proj/app/referrers/{d}"),
            Body::empty(),
        )
        .await;
    let ms = r.json()["manifests"].as_array().unwrap().clone();
    assert_eq!(ms.len(), 2);
    assert_eq!(ms[0]["digest"], sd.as_str());
    assert_eq!(ms[0]["artifactType"], "application/vnd.example.sig");
    assert_eq!(ms[0]["annotations"]["org.example.by"], "test");
    assert_eq!(ms[0]["size"], sig.len());
    assert_eq!(ms[1]["artifactType"], "application/vnd.example.sbom");
    let r = t
        .req(
            Method::GET,
            &format!("/v2/proj/app/referrers/{d}?artifactType=application/vnd.example.sbom"),
            Body::empty(),
        )
        .await;
    assert_eq!(r.json()["manifests"].as_array().unwrap().len(), 1);
    assert_eq!(r.header("oci-filters-applied"), "artifactType");
    // The referrer itself is not an image for lifecycle policies.
    let repo = t.db.registry_repo("proj/app").await.unwrap().unwrap();
    assert_eq!(t.db.registry_images(repo.id).await.unwrap().len(), 1);
}

#[tokio::test]
async fn names_and_projects_are_checked() {
    let t = T::new().await;
    let r = t
        .req(Method::POST, "/v2/nosuch/app/blobs/uploads/", Body::empty())
        .await;
    assert_eq!(
        (r.status, r.code().as_str()),
        (StatusCode::NOT_FOUND, "NAME_UNKNOWN")
    );
    assert!(
        r.json()["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("slipway project create nosuch")
    );
    let r = t
        .req(Method::POST, "/v2/Proj/App/blobs/uploads/", Body::empty())
        .await;
    assert_eq!(r.code(), "NAME_INVALID");
    let r = t
        .req(Method::GET, "/v2/proj/manifests/v1", Body::empty())
        .await;
    assert_eq!(r.code(), "NAME_INVALID");
    let r = t
        .req(Method::GET, "/v2/proj/never/tags/list", Body::empty())
        .await;
    assert_eq!(r.code(), "NAME_UNKNOWN");
    let r = t
        .req(Method::PUT, "/v2/proj/app/tags/list", Body::empty())
        .await;
    assert_eq!(r.code(), "UNSUPPORTED");
    // Many components.
    t.image("proj/a/b/c", "v1", &[b"x"], None).await;
    let r = t
        .req(Method::GET, "/v2/proj/a/b/c/tags/list", Body::empty())
        .await;
    assert_eq!(r.json()["tags"], serde_json::json!(["v1"]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_collection_during_pushes_loses_nothing() {
    let t = Arc::new(T::new().await);
    // Garbage: a blob no manifest uses, an upload's link, and the store's own blob.
    let orphan = t.blob("proj/app", b"orphan layer").await;
    let (_, kept) = t.image("proj/app", "keep", &[b"kept layer"], None).await;
    tokio::time::sleep(Duration::from_millis(20)).await;
    let before = crate::services::gc::collect(&t.reg, true).await.unwrap();
    assert_eq!((before.unlinked, before.blobs), (1, 0), "{before:?}");
    let report = crate::services::gc::collect(&t.reg, false).await.unwrap();
    assert_eq!((report.unlinked, report.blobs), (1, 1), "{report:?}");
    assert!(!t.reg.blobs.contains(&orphan));
    assert!(t.reg.blobs.contains(&kept));

    // Pushes of images sharing a base layer race a GC loop with no grace at all.
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let gc = {
        let (t, stop) = (t.clone(), stop.clone());
        tokio::spawn(async move {
            let mut passes = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                crate::services::gc::collect(&t.reg, false).await.unwrap();
                passes += 1;
                tokio::task::yield_now().await;
            }
            passes
        })
    };
    let mut pushes = Vec::new();
    for i in 0..8 {
        let t = t.clone();
        pushes.push(tokio::spawn(async move {
            let mut out = Vec::new();
            for j in 0..5 {
                let layer = format!("layer {i} {j}");
                let (bytes, d) = loop {
                    // A blob collected between its upload and the manifest: the push is
                    // refused with MANIFEST_BLOB_UNKNOWN, and the client pushes again.
                    let cfg = t.blob("proj/app", format!("cfg{i}{j}").as_bytes()).await;
                    let base = t.blob("proj/app", b"shared base").await;
                    let l = t.blob("proj/app", layer.as_bytes()).await;
                    let m = serde_json::to_vec(&serde_json::json!({"schemaVersion":2,"mediaType":OCI_MANIFEST,
                        "config":{"mediaType":"x","digest":cfg,"size":4},
                        "layers":[{"mediaType":"x","digest":base,"size":11},{"mediaType":"x","digest":l,"size":layer.len()}]})).unwrap();
                    let r = t.send(Method::PUT, &format!("/v2/proj/app/manifests/t{i}-{j}"), &[("content-type", OCI_MANIFEST)], m.clone().into()).await;
                    if r.status == StatusCode::CREATED {
                        let md = Digest::of(&m);
                        break (m, md);
                    }
                    assert_eq!(r.code(), "MANIFEST_BLOB_UNKNOWN");
                };
                out.push((format!("t{i}-{j}"), bytes, d));
            }
            out
        }));
    }
    let mut pushed = Vec::new();
    for p in pushes {
        pushed.extend(p.await.unwrap());
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let passes = gc.await.unwrap();
    assert!(passes > 1, "GC ran {passes} times");
    crate::services::gc::collect(&t.reg, false).await.unwrap();
    // Every image pulls whole: manifest, config and layers.
    for (tag, bytes, d) in pushed {
        let r = t
            .req(
                Method::GET,
                &format!("/v2/proj/app/manifests/{tag}"),
                Body::empty(),
            )
            .await;
        assert_eq!(r.body, bytes, "{tag}");
        let m: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
        let mut digests = vec![m["config"]["digest"].as_str().unwrap().to_string()];
        for l in m["layers"].as_array().unwrap() {
            digests.push(l["digest"].as_str().unwrap().to_string());
        }
        for b in digests {
            let r = t
                .req(
                    Method::GET,
                    &format!("/v2/proj/app/blobs/{b}"),
                    Body::empty(),
                )
                .await;
            assert_eq!(r.status, StatusCode::OK, "{tag} ({d}): blob {b} was lost");
            assert_eq!(Digest::of(&r.body).as_str(), b);
        }
    }
}

#[tokio::test]
async fn lifecycle_preview_and_apply_through_the_admin_api() {
    let t = T::new().await;
    for tag in ["v1", "v2", "v3"] {
        t.image("proj/app", tag, &[tag.as_bytes()], None).await;
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let app = axum::Router::new()
        .route(
            "/lc",
            axum::routing::put(crate::admin::put_lifecycle).get(crate::admin::get_lifecycle),
        )
        .route(
            "/preview",
            axum::routing::get(crate::admin::preview_lifecycle),
        )
        .route("/gc", axum::routing::post(crate::admin::gc))
        .with_state(t.reg.clone());
    let call = |m: Method, uri: &str, body: &str| {
        let app = app.clone();
        let req = Request::builder()
            .method(m)
            .uri(uri)
            .body(Body::from(body.to_string()))
            .unwrap();
        async move {
            let r = app.oneshot(req).await.unwrap();
            let s = r.status();
            let b = r.into_body().collect().await.unwrap().to_bytes();
            (
                s,
                serde_json::from_slice::<serde_json::Value>(&b).unwrap_or_default(),
            )
        }
    };
    let (s, e) = call(Method::PUT, "/lc?repository=proj/app", r#"{"rules":[{"rulePriority":1,"selection":{"tagStatus":"tagged","countType":"imageCountMoreThan","countNumber":1},"action":{"type":"expire"}}]}"#).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert!(
        e["details"][0].as_str().unwrap().contains("tagPrefixList"),
        "{e}"
    );
    let (s, _) = call(Method::PUT, "/lc?repository=proj/app", r#"{"rules":[{"rulePriority":1,"selection":{"tagStatus":"tagged","tagPrefixList":["v"],"countType":"imageCountMoreThan","countNumber":1},"action":{"type":"expire"}}]}"#).await;
    assert_eq!(s, StatusCode::OK);
    let (_, p) = call(Method::GET, "/preview?repository=proj/app", "").await;
    let tags: Vec<&str> = p["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["tags"][0].as_str().unwrap())
        .collect();
    assert_eq!(tags, vec!["v1", "v2"]);
    // Preview changed nothing; a GC pass applies the policy.
    assert_eq!(
        t.req(Method::GET, "/v2/proj/app/manifests/v1", Body::empty())
            .await
            .status,
        StatusCode::OK
    );
    let (s, _) = call(Method::POST, "/gc", "").await;
    assert_eq!(s, StatusCode::OK);
    let r = t
        .req(Method::GET, "/v2/proj/app/tags/list", Body::empty())
        .await;
    assert_eq!(r.json()["tags"], serde_json::json!(["v3"]));
}
