//! Manifests as pushed: the four media types (OCI image manifest and index, Docker schema 2
//! manifest and manifest list), what each refers to, its `subject`, `artifactType` and
//! annotations. The bytes are stored exactly as pushed; this only reads them.

use serde_json::Value;
use slipway_model::Digest;
use slipway_store::db::RefKind;

use crate::error::OciError;
use crate::name::parse_digest;

pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";

/// The largest manifest accepted (the distribution registry's limit too).
pub const MAX_MANIFEST: usize = 4 * 1024 * 1024;

/// What a manifest says about itself and what it needs.
#[derive(Debug, Default)]
pub struct Parsed {
    pub media_type: String,
    pub refs: Vec<(Digest, RefKind)>,
    pub subject: Option<Digest>,
    pub artifact_type: Option<String>,
    /// A JSON object, as pushed.
    pub annotations: Option<String>,
}

impl Parsed {
    pub fn blobs(&self) -> Vec<Digest> {
        self.kind(RefKind::Blob)
    }
    pub fn manifests(&self) -> Vec<Digest> {
        self.kind(RefKind::Manifest)
    }
    fn kind(&self, k: RefKind) -> Vec<Digest> {
        self.refs
            .iter()
            .filter(|(_, kind)| *kind == k)
            .map(|(d, _)| d.clone())
            .collect()
    }
}

fn descriptor_digest(v: &Value, at: &str) -> Result<Digest, OciError> {
    let d = v.get("digest").and_then(Value::as_str).ok_or_else(|| {
        OciError::manifest_invalid(format!("{at}: the descriptor has no `digest`"))
    })?;
    if v.get("size").and_then(Value::as_i64).is_none_or(|s| s < 0) {
        return Err(OciError::manifest_invalid(format!(
            "{at}: the descriptor has no valid `size`"
        )));
    }
    parse_digest(d).map_err(|mut e| {
        e.message = format!("{at}: {}", e.message);
        e
    })
}

/// Reads a pushed manifest. `content_type` is the request's Content-Type, if any.
pub fn parse(bytes: &[u8], content_type: Option<&str>) -> Result<Parsed, OciError> {
    let v: Value = serde_json::from_slice(bytes)
        .map_err(|e| OciError::manifest_invalid(format!("the manifest is not JSON: {e}")))?;
    if !v.is_object() {
        return Err(OciError::manifest_invalid(
            "the manifest is not a JSON object",
        ));
    }
    match v.get("schemaVersion").and_then(Value::as_i64) {
        Some(2) => {}
        Some(1) => {
            return Err(OciError::manifest_invalid(
                "Docker schema 1 manifests are not supported (push with a current client)",
            ));
        }
        _ => return Err(OciError::manifest_invalid("`schemaVersion` must be 2")),
    }
    let ct = content_type
        .map(|c| c.split(';').next().unwrap_or("").trim())
        .filter(|c| !c.is_empty() && *c != "application/json" && *c != "application/octet-stream");
    let body_type = v.get("mediaType").and_then(Value::as_str);
    let media_type = match (ct, body_type) {
        (Some(c), Some(b)) if c != b => {
            return Err(OciError::manifest_invalid(format!(
                "Content-Type `{c}` differs from the manifest's mediaType `{b}`"
            )));
        }
        (Some(c), _) => c.to_string(),
        (None, Some(b)) => b.to_string(),
        (None, None) if v.get("manifests").is_some() => OCI_INDEX.to_string(),
        (None, None) => OCI_MANIFEST.to_string(),
    };
    let mut p = Parsed {
        media_type: media_type.clone(),
        ..Default::default()
    };
    match media_type.as_str() {
        OCI_MANIFEST | DOCKER_MANIFEST => {
            let config = v
                .get("config")
                .ok_or_else(|| OciError::manifest_invalid("the manifest has no `config`"))?;
            p.refs
                .push((descriptor_digest(config, "config")?, RefKind::Blob));
            let layers = v
                .get("layers")
                .and_then(Value::as_array)
                .ok_or_else(|| OciError::manifest_invalid("the manifest has no `layers` list"))?;
            for (i, l) in layers.iter().enumerate() {
                let d = descriptor_digest(l, &format!("layers[{i}]"))?;
                // Foreign layers (with `urls`) live elsewhere.
                if l.get("urls").is_none() {
                    p.refs.push((d, RefKind::Blob));
                }
            }
            p.artifact_type = v
                .get("artifactType")
                .and_then(Value::as_str)
                .or_else(|| config.get("mediaType").and_then(Value::as_str))
                .map(String::from);
        }
        OCI_INDEX | DOCKER_LIST => {
            let list = v
                .get("manifests")
                .and_then(Value::as_array)
                .ok_or_else(|| OciError::manifest_invalid("the index has no `manifests` list"))?;
            for (i, m) in list.iter().enumerate() {
                p.refs.push((
                    descriptor_digest(m, &format!("manifests[{i}]"))?,
                    RefKind::Manifest,
                ));
            }
            p.artifact_type = v
                .get("artifactType")
                .and_then(Value::as_str)
                .map(String::from);
        }
        other => {
            return Err(OciError::manifest_invalid(format!(
                "media type `{other}` is not a manifest this registry stores (OCI image \
                 manifest or index, Docker schema 2 manifest or manifest list)"
            )));
        }
    }
    if let Some(s) = v.get("subject") {
        p.subject = Some(descriptor_digest(s, "subject")?);
    }
    if let Some(a) = v.get("annotations") {
        if !a.is_object() {
            return Err(OciError::manifest_invalid(
                "`annotations` must be an object",
            ));
        }
        p.annotations = Some(a.to_string());
    }
    p.refs.sort_by(|a, b| a.0.cmp(&b.0));
    p.refs.dedup_by(|a, b| a.0 == b.0);
    Ok(p)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(n: u8) -> String {
        Digest::of(&[n]).to_string()
    }

    #[test]
    fn image_manifests_refer_to_config_and_layers() {
        let m = format!(
            r#"{{"schemaVersion":2,"mediaType":"{OCI_MANIFEST}","config":{{"mediaType":"application/x-cfg","digest":"{}","size":2}},
            "layers":[{{"digest":"{}","size":3}},{{"digest":"{}","size":3,"urls":["http://x"]}}],
            "subject":{{"digest":"{}","size":9}},"annotations":{{"a":"b"}}}}"#,
            d(1),
            d(2),
            d(3),
            d(4)
        );
        let p = parse(m.as_bytes(), None).unwrap();
        assert_eq!(p.media_type, OCI_MANIFEST);
        assert_eq!(p.blobs().len(), 2);
        assert_eq!(p.subject.unwrap().to_string(), d(4));
        assert_eq!(p.artifact_type.as_deref(), Some("application/x-cfg"));
        assert_eq!(p.annotations.as_deref(), Some(r#"{"a":"b"}"#));
    }

    #[test]
    fn bad_manifests_say_why() {
        let check = |m: &str, ct: Option<&str>, want: &str| {
            let e = parse(m.as_bytes(), ct).unwrap_err();
            assert!(e.message.contains(want), "{m}: {}", e.message);
        };
        check("nope", None, "not JSON");
        check(r#"{"schemaVersion":1}"#, None, "schema 1");
        check(r#"{"schemaVersion":2,"layers":[]}"#, None, "no `config`");
        check(
            &format!(r#"{{"schemaVersion":2,"mediaType":"{OCI_INDEX}","manifests":[]}}"#),
            Some(OCI_MANIFEST),
            "differs",
        );
        check(
            r#"{"schemaVersion":2,"manifests":[{"digest":"sha256:12","size":1}]}"#,
            None,
            "manifests[0]",
        );
        check(
            r#"{"schemaVersion":2,"mediaType":"text/plain"}"#,
            None,
            "not a manifest",
        );
    }
}
