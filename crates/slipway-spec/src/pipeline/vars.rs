//! `#{namespace.name}` variable references (CodePipeline's syntax): finding and substituting them.
//!
//! A namespace is `[A-Za-z0-9_-]+` and a name `[A-Za-z0-9_.-]+`; the namespace ends at the
//! first `.`, so `#{unit.a.b}` is name `a.b` in namespace `unit`. Text that starts with `#{`
//! but is not a well-formed reference is left as written (validation warns about it).

/// Where a `#{` sequence sits in a text and what it is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Piece {
    /// Byte range of the whole `#{...}` (or of the lone `#{` when nothing closes it).
    pub start: usize,
    pub end: usize,
    /// `Some((namespace, name))` for a well-formed reference.
    pub reference: Option<(String, String)>,
}

pub(crate) fn is_namespace(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

fn is_var_name(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || b == b'.')
}

/// Every `#{` in `text`, in order.
pub(crate) fn scan(text: &str) -> Vec<Piece> {
    let mut out = Vec::new();
    let mut from = 0;
    while let Some(off) = text[from..].find("#{") {
        let start = from + off;
        let body_start = start + 2;
        match text[body_start..].find('}') {
            Some(close) => {
                let body = &text[body_start..body_start + close];
                let reference = body
                    .split_once('.')
                    .filter(|(ns, name)| is_namespace(ns) && is_var_name(name))
                    .map(|(ns, name)| (ns.to_string(), name.to_string()));
                let end = body_start + close + 1;
                // A malformed one may contain another `#{`; rescan from just after ours.
                from = if reference.is_some() { end } else { body_start };
                out.push(Piece {
                    start,
                    end,
                    reference,
                });
            }
            None => {
                out.push(Piece {
                    start,
                    end: body_start,
                    reference: None,
                });
                from = body_start;
            }
        }
    }
    out
}

/// The `(namespace, name)` of every well-formed `#{namespace.name}` in `text`, in order.
pub fn references(text: &str) -> Vec<(String, String)> {
    scan(text).into_iter().filter_map(|p| p.reference).collect()
}

/// Replaces each `#{namespace.name}` with `lookup(namespace, name)`, in one pass: a value that
/// itself contains `#{...}` is not expanded again, so a variable's value cannot inject references.
///
/// `Err` lists every reference `lookup` did not know, as `#{namespace.name}`, each once.
pub fn interpolate(
    text: &str,
    lookup: impl Fn(&str, &str) -> Option<String>,
) -> Result<String, Vec<String>> {
    let mut out = String::with_capacity(text.len());
    let mut unresolved: Vec<String> = Vec::new();
    let mut last = 0;
    for piece in scan(text) {
        let Some((ns, name)) = &piece.reference else {
            continue;
        };
        out.push_str(&text[last..piece.start]);
        match lookup(ns, name) {
            Some(v) => out.push_str(&v),
            None => {
                let r = format!("#{{{ns}.{name}}}");
                if !unresolved.contains(&r) {
                    unresolved.push(r);
                }
            }
        }
        last = piece.end;
    }
    out.push_str(&text[last..]);
    if unresolved.is_empty() {
        Ok(out)
    } else {
        Err(unresolved)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(ns: &str, name: &str) -> Option<String> {
        match (ns, name) {
            ("unit", "VERSION") => Some("1.2.3".into()),
            ("variables", "REGION") => Some("local".into()),
            ("slipway", "Evil") => Some("#{unit.VERSION}".into()),
            _ => None,
        }
    }

    #[test]
    fn finds_references_and_skips_malformed() {
        assert_eq!(
            references("v#{unit.VERSION}-#{variables.REGION} #{nodot} #{a b.c} #{x.y"),
            vec![
                ("unit".to_string(), "VERSION".to_string()),
                ("variables".to_string(), "REGION".to_string())
            ]
        );
        assert_eq!(
            references("#{ns.a.b}"),
            vec![("ns".to_string(), "a.b".to_string())]
        );
        // A malformed opener does not swallow a good reference after it.
        assert_eq!(
            references("#{oops #{unit.VERSION}"),
            vec![("unit".to_string(), "VERSION".to_string())]
        );
        assert!(references("no refs, ${SHELL} stays, # { too").is_empty());
    }

    #[test]
    fn interpolates_once_and_reports_unresolved() {
        assert_eq!(
            interpolate("app:#{unit.VERSION}-#{variables.REGION}", env).unwrap(),
            "app:1.2.3-local"
        );
        assert_eq!(
            interpolate("#{nodot} stays", env).unwrap(),
            "#{nodot} stays"
        );
        // Not expanded twice: a value cannot smuggle in another reference.
        assert_eq!(
            interpolate("#{slipway.Evil}", env).unwrap(),
            "#{unit.VERSION}"
        );
        assert_eq!(
            interpolate("#{a.X} #{unit.VERSION} #{a.X} #{b.Y}", env).unwrap_err(),
            vec!["#{a.X}".to_string(), "#{b.Y}".to_string()]
        );
        assert_eq!(interpolate("", env).unwrap(), "");
        assert_eq!(
            interpolate("héllo #{unit.VERSION}ü", env).unwrap(),
            "héllo 1.2.3ü"
        );
    }
}
