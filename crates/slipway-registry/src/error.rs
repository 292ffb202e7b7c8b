//! Errors: `OciError` is what a `/v2/` client sees (the distribution spec's JSON error codes
//! with their statuses); `RegistryError` is what failed inside (logged, never sent).

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

/// Something failed inside the registry (storage, database); clients see only `internal`.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error(transparent)]
    Store(#[from] slipway_store::StoreError),
    #[error(transparent)]
    Db(#[from] slipway_store::DbError),
    #[error("{op} {}: {source}", path.display())]
    Io {
        op: &'static str,
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{0}")]
    Other(String),
}

pub(crate) fn io<'a>(
    op: &'static str,
    path: &'a std::path::Path,
) -> impl FnOnce(std::io::Error) -> RegistryError + 'a {
    move |source| RegistryError::Io {
        op,
        path: path.to_path_buf(),
        source,
    }
}

/// One of the spec's error codes, with the status it is sent with and a message for people.
#[derive(Debug)]
pub struct OciError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    pub detail: Option<serde_json::Value>,
    /// Extra headers (`WWW-Authenticate`, `Range`, `Location`).
    pub headers: Vec<(header::HeaderName, String)>,
}

impl OciError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            detail: None,
            headers: Vec::new(),
        }
    }

    pub fn with_detail(mut self, detail: serde_json::Value) -> Self {
        self.detail = Some(detail);
        self
    }

    pub fn with_header(mut self, name: header::HeaderName, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }

    pub fn blob_unknown(d: impl std::fmt::Display) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "BLOB_UNKNOWN",
            format!("blob {d} is not known to this repository"),
        )
    }
    pub fn upload_unknown() -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "BLOB_UPLOAD_UNKNOWN",
            "no such upload in this repository (it finished, was cancelled or never started)",
        )
    }
    pub fn upload_invalid(m: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "BLOB_UPLOAD_INVALID", m)
    }
    pub fn digest_invalid(m: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "DIGEST_INVALID", m)
    }
    pub fn manifest_unknown(r: impl std::fmt::Display) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "MANIFEST_UNKNOWN",
            format!("manifest {r} is not known to this repository"),
        )
    }
    pub fn manifest_invalid(m: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "MANIFEST_INVALID", m)
    }
    pub fn name_invalid(m: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "NAME_INVALID", m)
    }
    pub fn name_unknown(m: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "NAME_UNKNOWN", m)
    }
    pub fn tag_invalid(m: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "TAG_INVALID", m)
    }
    pub fn unsupported(m: impl Into<String>) -> Self {
        Self::new(StatusCode::METHOD_NOT_ALLOWED, "UNSUPPORTED", m)
    }
    pub fn denied(m: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "DENIED", m)
    }

    /// The client sees only that something failed; the cause goes to the log.
    pub fn internal(cause: impl std::fmt::Display) -> Self {
        tracing::error!(error = %cause, "registry: internal error");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "UNKNOWN",
            "internal error (see the server's log)",
        )
    }
}

impl From<RegistryError> for OciError {
    fn from(e: RegistryError) -> Self {
        OciError::internal(e)
    }
}

impl From<slipway_store::DbError> for OciError {
    fn from(e: slipway_store::DbError) -> Self {
        OciError::internal(e)
    }
}

impl From<slipway_store::StoreError> for OciError {
    fn from(e: slipway_store::StoreError) -> Self {
        match e {
            slipway_store::StoreError::BlobUnknown(d) => OciError::blob_unknown(d),
            e => OciError::internal(e),
        }
    }
}

impl IntoResponse for OciError {
    fn into_response(self) -> Response {
        let mut err = serde_json::json!({"code": self.code, "message": self.message});
        if let Some(d) = self.detail {
            err["detail"] = d;
        }
        let mut resp = (self.status, Json(serde_json::json!({ "errors": [err] }))).into_response();
        for (name, value) in self.headers {
            if let Ok(v) = HeaderValue::from_str(&value) {
                resp.headers_mut().append(name, v);
            }
        }
        resp
    }
}
