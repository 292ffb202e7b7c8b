//! Repository names and references as the distribution spec writes them, and the `/v2/` path
//! grammar: names have any number of components (`project/app`, `a/b/c`), so the router hands
//! the whole path here.

use slipway_model::Digest;

use crate::error::OciError;

/// What a `/v2/<name>/...` path asks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Endpoint {
    /// `blobs/<digest>`
    Blob(String),
    /// `blobs/uploads/`
    UploadStart,
    /// `blobs/uploads/<id>`
    Upload(String),
    /// `manifests/<tag or digest>`
    Manifest(String),
    /// `tags/list`
    Tags,
    /// `referrers/<digest>`
    Referrers(String),
}

/// Splits the path after `/v2/` into the repository name and the endpoint.
pub fn parse_path(rest: &str) -> Option<(&str, Endpoint)> {
    if let Some(name) = rest.strip_suffix("/tags/list") {
        return Some((name, Endpoint::Tags));
    }
    if let Some((name, id)) = rest.rsplit_once("/blobs/uploads/") {
        return Some((
            name,
            if id.is_empty() {
                Endpoint::UploadStart
            } else {
                Endpoint::Upload(id.to_string())
            },
        ));
    }
    if let Some(name) = rest.strip_suffix("/blobs/uploads") {
        return Some((name, Endpoint::UploadStart));
    }
    for (sep, make) in [
        ("/manifests/", Endpoint::Manifest as fn(String) -> Endpoint),
        ("/referrers/", Endpoint::Referrers),
        ("/blobs/", Endpoint::Blob),
    ] {
        if let Some((name, r)) = rest.rsplit_once(sep)
            && !r.is_empty()
            && !r.contains('/')
        {
            return Some((name, make(r.to_string())));
        }
    }
    None
}

/// A component: `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*`.
fn component_ok(c: &str) -> bool {
    let b = c.as_bytes();
    if b.is_empty() || !is_alnum(b[0]) || !is_alnum(b[b.len() - 1]) {
        return false;
    }
    let mut i = 0;
    while i < b.len() {
        if is_alnum(b[i]) {
            i += 1;
            continue;
        }
        // A separator run: `.`, `_`, `__` or any number of `-`.
        let start = i;
        while i < b.len() && !is_alnum(b[i]) {
            i += 1;
        }
        let sep = &c[start..i];
        let ok = sep == "." || sep == "_" || sep == "__" || sep.bytes().all(|x| x == b'-');
        if !ok {
            return false;
        }
    }
    true
}

fn is_alnum(b: u8) -> bool {
    b.is_ascii_lowercase() || b.is_ascii_digit()
}

/// A valid repository name, `PROJECT/NAME[/MORE...]`; returns the project's name.
pub fn check_name(name: &str) -> Result<&str, OciError> {
    if name.len() > 255 {
        return Err(OciError::name_invalid(format!(
            "repository name `{name}` is longer than 255 characters"
        )));
    }
    let mut parts = name.split('/');
    let project = parts.next().unwrap_or("");
    if !name.split('/').all(component_ok) {
        return Err(OciError::name_invalid(format!(
            "repository name `{name}`: each /-separated part must be lowercase letters and \
             digits, separated by `.`, `_`, `__` or dashes"
        )));
    }
    if parts.next().is_none() {
        return Err(OciError::name_invalid(format!(
            "repository name `{name}`: repositories live under their project, as \
             `{name}/NAME` (the first part names a Slipway project)"
        )));
    }
    Ok(project)
}

/// A tag: `[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}`.
pub fn tag_ok(t: &str) -> bool {
    let b = t.as_bytes();
    !b.is_empty()
        && b.len() <= 128
        && (b[0].is_ascii_alphanumeric() || b[0] == b'_')
        && b[1..]
            .iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'-'))
}

/// A manifest reference: a tag or a digest.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reference {
    Tag(String),
    Digest(Digest),
}

impl Reference {
    pub fn parse(r: &str) -> Result<Reference, OciError> {
        if r.contains(':') {
            return parse_digest(r).map(Reference::Digest);
        }
        if tag_ok(r) {
            Ok(Reference::Tag(r.to_string()))
        } else {
            Err(OciError::tag_invalid(format!(
                "tag `{r}`: use letters, digits, `_`, `.` and `-` (not `.` or `-` first), at \
                 most 128 characters"
            )))
        }
    }
}

impl std::fmt::Display for Reference {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Reference::Tag(t) => f.write_str(t),
            Reference::Digest(d) => write!(f, "{d}"),
        }
    }
}

/// A digest from a client: sha256 only.
pub fn parse_digest(s: &str) -> Result<Digest, OciError> {
    match s.split_once(':') {
        Some(("sha256", _)) => {
            Digest::parse(s).map_err(|e| OciError::digest_invalid(e.to_string()))
        }
        Some((alg, _)) if !alg.is_empty() => Err(OciError::new(
            axum::http::StatusCode::BAD_REQUEST,
            "UNSUPPORTED",
            format!("digest `{s}`: only sha256 digests are supported"),
        )),
        _ => Err(OciError::digest_invalid(format!(
            "`{s}` is not a digest (sha256:<64 hex digits>)"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_split_into_name_and_endpoint() {
        let check =
            |p: &str, want: Option<(&str, Endpoint)>| assert_eq!(parse_path(p), want, "{p}");
        check("p/app/tags/list", Some(("p/app", Endpoint::Tags)));
        check(
            "a/b/c/blobs/uploads/",
            Some(("a/b/c", Endpoint::UploadStart)),
        );
        check(
            "a/b/blobs/uploads/abc",
            Some(("a/b", Endpoint::Upload("abc".into()))),
        );
        check(
            "a/b/manifests/v1",
            Some(("a/b", Endpoint::Manifest("v1".into()))),
        );
        check(
            "a/blobs/b/blobs/sha256:x",
            Some(("a/blobs/b", Endpoint::Blob("sha256:x".into()))),
        );
        check(
            "a/b/referrers/sha256:x",
            Some(("a/b", Endpoint::Referrers("sha256:x".into()))),
        );
        check("a/b/nothing", None);
    }

    #[test]
    fn names_and_tags() {
        assert_eq!(check_name("proj/app").unwrap(), "proj");
        assert_eq!(check_name("proj/a.b/c__d/e-f--g").unwrap(), "proj");
        for bad in [
            "proj",
            "Proj/app",
            "proj/-app",
            "proj//app",
            "proj/app.",
            "proj/a..b",
            "proj/a___b",
        ] {
            assert!(check_name(bad).is_err(), "{bad}");
        }
        assert!(
            tag_ok("v1.0_rc-2") && tag_ok("_x") && !tag_ok(".x") && !tag_ok("-x") && !tag_ok("")
        );
        assert!(!tag_ok(&"a".repeat(129)));
        assert!(matches!(Reference::parse("v1"), Ok(Reference::Tag(_))));
        assert_eq!(
            Reference::parse("sha512:ab").unwrap_err().code,
            "UNSUPPORTED"
        );
        assert_eq!(
            Reference::parse("sha256:ab").unwrap_err().code,
            "DIGEST_INVALID"
        );
    }
}
