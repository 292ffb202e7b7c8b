//! Credentials and tokens: the Docker token flow (`/v2/token` with Basic credentials gives an
//! HMAC-signed bearer token with an expiry), Basic credentials straight on `/v2/` requests, and
//! anonymous tokens for repositories that allow anonymous pulls. Credentials are compared in
//! constant time.

use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use hmac::{Hmac, KeyInit, Mac};
use sha2::{Digest as _, Sha256};
use subtle::ConstantTimeEq;

use crate::error::{RegistryError, io};

type HmacSha256 = Hmac<Sha256>;

/// Who a request comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Caller {
    /// Valid credentials (or a token issued for them).
    User(String),
    /// A token issued without credentials: may pull from repositories that allow it.
    Anonymous,
    /// No credentials at all, or ones that do not check out.
    Nobody,
}

/// The key tokens are signed with, kept in the data directory (mode 0600).
pub struct TokenKey([u8; 32]);

impl TokenKey {
    pub fn load_or_create(path: &Path) -> Result<TokenKey, RegistryError> {
        if let Ok(bytes) = std::fs::read(path)
            && let Ok(k) = <[u8; 32]>::try_from(bytes.as_slice())
        {
            return Ok(TokenKey(k));
        }
        let key: [u8; 32] = rand::random();
        write_private(path, &key)?;
        Ok(TokenKey(key))
    }

    fn mac(&self, payload: &str) -> HmacSha256 {
        let mut m = <HmacSha256 as KeyInit>::new_from_slice(&self.0).expect("any key length");
        m.update(payload.as_bytes());
        m
    }

    /// A token for `sub` (None: anonymous) good for `ttl_secs`.
    pub fn issue(&self, sub: Option<&str>, ttl_secs: u64) -> String {
        let exp = unix_now() + ttl_secs;
        let claims = serde_json::json!({ "sub": sub, "exp": exp });
        let payload = URL_SAFE_NO_PAD.encode(claims.to_string());
        let sig = URL_SAFE_NO_PAD.encode(self.mac(&payload).finalize().into_bytes());
        format!("{payload}.{sig}")
    }

    /// Who a token names, if it is ours and has not expired.
    pub fn verify(&self, token: &str) -> Option<Caller> {
        let (payload, sig) = token.split_once('.')?;
        let sig = URL_SAFE_NO_PAD.decode(sig).ok()?;
        self.mac(payload).verify_slice(&sig).ok()?;
        let claims: serde_json::Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).ok()?).ok()?;
        let exp = claims.get("exp")?.as_u64()?;
        if exp <= unix_now() {
            return None;
        }
        Some(match claims.get("sub").and_then(|s| s.as_str()) {
            Some(u) => Caller::User(u.to_string()),
            None => Caller::Anonymous,
        })
    }
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Equal in constant time (over hashes, so lengths leak nothing either).
pub fn same(a: &str, b: &str) -> bool {
    let ha = Sha256::digest(a.as_bytes());
    let hb = Sha256::digest(b.as_bytes());
    ha.as_slice().ct_eq(hb.as_slice()).into()
}

/// The user and password of a `Basic` authorization value.
pub fn parse_basic(value: &str) -> Option<(String, String)> {
    let b64 = value
        .strip_prefix("Basic ")
        .or_else(|| value.strip_prefix("basic "))?;
    let raw = STANDARD.decode(b64.trim()).ok()?;
    let text = String::from_utf8(raw).ok()?;
    let (u, p) = text.split_once(':')?;
    Some((u.to_string(), p.to_string()))
}

/// The configured password's file: read it, or generate one on first start.
pub fn load_or_generate_password(path: &Path) -> Result<String, RegistryError> {
    if let Ok(p) = std::fs::read_to_string(path) {
        let p = p.trim().to_string();
        if !p.is_empty() {
            return Ok(p);
        }
    }
    const ALPHABET: &[u8] = b"abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    let bytes: [u8; 24] = rand::random();
    let p: String = bytes
        .iter()
        .map(|b| ALPHABET[*b as usize % ALPHABET.len()] as char)
        .collect();
    write_private(path, format!("{p}\n").as_bytes())?;
    Ok(p)
}

fn write_private(path: &Path, bytes: &[u8]) -> Result<(), RegistryError> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(io("create", dir))?;
    }
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(io("create", &tmp))?;
    f.write_all(bytes).map_err(io("write", &tmp))?;
    f.sync_all().map_err(io("sync", &tmp))?;
    std::fs::rename(&tmp, path).map_err(io("rename", path))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_verify_until_they_expire_and_not_when_altered() {
        let dir = tempfile::tempdir().unwrap();
        let key = TokenKey::load_or_create(&dir.path().join("k")).unwrap();
        let t = key.issue(Some("slipway"), 60);
        assert_eq!(key.verify(&t), Some(Caller::User("slipway".into())));
        assert_eq!(key.verify(&key.issue(None, 60)), Some(Caller::Anonymous));
        assert_eq!(key.verify(&key.issue(Some("x"), 0)), None);
        let mut bad = t.clone();
        bad.insert(3, 'A');
        assert_eq!(key.verify(&bad), None);
        // The key persists: a restarted server accepts the tokens it gave out.
        let again = TokenKey::load_or_create(&dir.path().join("k")).unwrap();
        assert!(again.verify(&t).is_some());
    }

    #[test]
    fn generated_passwords_persist_with_mode_0600() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("registry-password");
        let p = load_or_generate_password(&f).unwrap();
        assert_eq!(p.len(), 24);
        assert_eq!(load_or_generate_password(&f).unwrap(), p);
        assert_eq!(
            std::fs::metadata(&f).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert!(same("a", "a") && !same("a", "b") && !same("a", "aa"));
        assert_eq!(
            parse_basic("Basic dTpwOnE="),
            Some(("u".into(), "p:q".into()))
        );
    }
}
