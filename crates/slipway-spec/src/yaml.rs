//! YAML text -> a tree of nodes that remember where they came from.
//!
//! Parsing goes through serde-saphyr (safe Rust, budgets against alias bombs) into
//! `Spanned` values, so every later check can name a line and column. Schema checks
//! walk this tree with [`MapReader`] and collect diagnostics instead of stopping at the
//! first problem, which serde's derive would do.

use std::fmt;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_saphyr::Spanned;

use crate::diag::{Diagnostic, Diagnostics, Pos, did_you_mean};

/// A YAML value with its position.
#[derive(Clone, Debug, PartialEq)]
pub struct Node {
    pub pos: Pos,
    pub value: Value,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    Null,
    Bool(bool),
    /// A number, kept as written (`0.2`, `1.10`, `0x1F`) so nothing is lost on the way to a string.
    Number(String),
    String(String),
    Seq(Vec<Node>),
    Map(Vec<(Node, Node)>),
}

impl Node {
    pub fn kind(&self) -> &'static str {
        match self.value {
            Value::Null => "null",
            Value::Bool(_) => "a boolean",
            Value::Number(_) => "a number",
            Value::String(_) => "a string",
            Value::Seq(_) => "a list",
            Value::Map(_) => "a mapping",
        }
    }

    /// A scalar as the text a shell or an environment variable would see.
    pub fn scalar_text(&self) -> Option<String> {
        match &self.value {
            Value::Bool(b) => Some(b.to_string()),
            Value::Number(n) => Some(n.clone()),
            Value::String(s) => Some(s.clone()),
            _ => None,
        }
    }

    pub fn as_map(&self) -> Option<&[(Node, Node)]> {
        match &self.value {
            Value::Map(m) => Some(m),
            _ => None,
        }
    }

    pub fn as_seq(&self) -> Option<&[Node]> {
        match &self.value {
            Value::Seq(s) => Some(s),
            _ => None,
        }
    }
}

/// Parses YAML text. A syntax error (or a budget exceeded) is one diagnostic with its position.
/// An empty document is `Value::Null` at 1:1.
pub fn parse(text: &str) -> Result<Node, Diagnostic> {
    if text.trim().is_empty() {
        return Ok(Node {
            pos: Pos { line: 1, column: 1 },
            value: Value::Null,
        });
    }
    let mut options = serde_saphyr::Options::default();
    // YAML 1.1's `yes`/`no`/`on`/`off`/`y`/`N` stay strings: an env value `yes` or a variable
    // named `N` must not become a boolean. Readers that want one accept them (`boolean`).
    options.strict_booleans = true;
    // Repeated keys reach `MapReader`, which reports them beside every other problem.
    options.duplicate_keys = serde_saphyr::DuplicateKeyPolicy::PassThrough;
    match serde_saphyr::from_str_with_options::<Spanned<Raw>>(text, options) {
        Ok(root) => Ok(convert(root, text)),
        Err(e) => {
            let pos = e
                .location()
                .map(|l| Pos {
                    line: l.line() as u32,
                    column: l.column() as u32,
                })
                .unwrap_or(Pos { line: 1, column: 1 });
            let msg = e.to_string();
            // serde-saphyr appends its own "at line X column Y"; we print the position ourselves.
            let mut msg = msg.lines().next().unwrap_or("invalid YAML").trim();
            msg = msg.strip_prefix("error: ").unwrap_or(msg);
            if msg.starts_with("line ") {
                msg = msg.split_once(": ").map(|(_, rest)| rest).unwrap_or(msg);
            }
            let msg = msg.to_string();
            Err(Diagnostic::error(pos, "", format!("invalid YAML: {msg}")))
        }
    }
}

enum Raw {
    Null,
    Bool(bool),
    Number(String),
    String(String),
    Seq(Vec<Spanned<Raw>>),
    Map(Vec<(Spanned<Raw>, Spanned<Raw>)>),
}

fn convert(s: Spanned<Raw>, text: &str) -> Node {
    let loc = s.referenced;
    let pos = Pos {
        line: loc.line() as u32,
        column: loc.column() as u32,
    };
    let value = match s.value {
        Raw::Null => Value::Null,
        // Only `true` and `false` spelt so are booleans; `True` or `FALSE` stay the text written,
        // so `scalar_text` is always what the file says (`boolean` accepts every spelling).
        Raw::Bool(b) => match raw_text(&loc, text) {
            Some(r) if r != "true" && r != "false" => Value::String(r.to_string()),
            _ => Value::Bool(b),
        },
        // Numbers as written: `1.10` stays `1.10`, `0x1F` stays `0x1F`.
        Raw::Number(n) => Value::Number(raw_text(&loc, text).map(str::to_string).unwrap_or(n)),
        Raw::String(st) => Value::String(st),
        Raw::Seq(items) => Value::Seq(items.into_iter().map(|i| convert(i, text)).collect()),
        Raw::Map(entries) => Value::Map(
            entries
                .into_iter()
                .map(|(k, v)| (convert(k, text), convert(v, text)))
                .collect(),
        ),
    };
    Node { pos, value }
}

/// The plain scalar text a location spans, when it is one token.
fn raw_text<'t>(loc: &serde_saphyr::Location, text: &'t str) -> Option<&'t str> {
    let span = loc.span();
    span.byte_offset()
        .zip(span.byte_len())
        .and_then(|(o, l)| text.get(o as usize..(o + l) as usize))
        .map(str::trim)
        .filter(|r| !r.is_empty() && !r.contains(char::is_whitespace))
}

impl<'de> Deserialize<'de> for Raw {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(RawVisitor)
    }
}

struct RawVisitor;

impl<'de> Visitor<'de> for RawVisitor {
    type Value = Raw;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any YAML value")
    }
    fn visit_unit<E: de::Error>(self) -> Result<Raw, E> {
        Ok(Raw::Null)
    }
    fn visit_none<E: de::Error>(self) -> Result<Raw, E> {
        Ok(Raw::Null)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Raw, D::Error> {
        Raw::deserialize(d)
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Raw, E> {
        Ok(Raw::Bool(v))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Raw, E> {
        Ok(Raw::Number(v.to_string()))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Raw, E> {
        Ok(Raw::Number(v.to_string()))
    }
    fn visit_i128<E: de::Error>(self, v: i128) -> Result<Raw, E> {
        Ok(Raw::Number(v.to_string()))
    }
    fn visit_u128<E: de::Error>(self, v: u128) -> Result<Raw, E> {
        Ok(Raw::Number(v.to_string()))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Raw, E> {
        Ok(Raw::Number(v.to_string()))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Raw, E> {
        Ok(Raw::String(v.to_string()))
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<Raw, E> {
        Ok(Raw::String(v))
    }
    fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<Raw, E> {
        Ok(Raw::String(String::from_utf8_lossy(v).into_owned()))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Raw, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element::<Spanned<Raw>>()? {
            items.push(item);
        }
        Ok(Raw::Seq(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Raw, A::Error> {
        let mut entries = Vec::new();
        while let Some((k, v)) = map.next_entry::<Spanned<Raw>, Spanned<Raw>>()? {
            entries.push((k, v));
        }
        Ok(Raw::Map(entries))
    }
}

/// Reads a mapping against a known set of keys, reporting unknown ones with a suggestion.
///
/// Typical use: `let mut m = MapReader::new(node, "phases.build", diags)?;`, then
/// `m.get("commands")` for each known key, then `m.finish(&KNOWN)` reports the rest.
pub struct MapReader<'a> {
    pub node: &'a Node,
    pub path: String,
    entries: &'a [(Node, Node)],
    seen: Vec<bool>,
}

impl<'a> MapReader<'a> {
    /// `None` (with an error pushed) when the node is not a mapping. A null node reads as empty.
    pub fn new(node: &'a Node, path: &str, diags: &mut Diagnostics) -> Option<Self> {
        let entries: &[(Node, Node)] = match &node.value {
            Value::Map(m) => m,
            Value::Null => &[],
            _ => {
                diags.push(Diagnostic::error(
                    node.pos,
                    path,
                    format!("expected a mapping, found {}", node.kind()),
                ));
                return None;
            }
        };
        // Duplicate keys are reported; the first one wins.
        let mut seen = vec![false; entries.len()];
        for (i, (k, _)) in entries.iter().enumerate() {
            let Some(ks) = k.scalar_text() else { continue };
            let first = entries[..i]
                .iter()
                .find(|(k2, _)| k2.scalar_text().as_deref() == Some(ks.as_str()));
            if let Some((first, _)) = first {
                diags.push(
                    Diagnostic::error(k.pos, join(path, &ks), format!("duplicate key `{ks}`"))
                        .with_hint(format!(
                            "first given at line {}; the first one is used",
                            first.pos.line
                        )),
                );
                seen[i] = true;
            }
        }
        Some(Self {
            node,
            path: path.to_string(),
            entries,
            seen,
        })
    }

    /// The value for `key`, marking it as known.
    pub fn get(&mut self, key: &str) -> Option<&'a Node> {
        for (i, (k, v)) in self.entries.iter().enumerate() {
            if !self.seen[i] && k.scalar_text().as_deref() == Some(key) {
                self.seen[i] = true;
                return Some(v);
            }
        }
        None
    }

    /// The key node for `key` (for positions of errors about the key itself).
    pub fn key_node(&self, key: &str) -> Option<&'a Node> {
        self.entries
            .iter()
            .find(|(k, _)| k.scalar_text().as_deref() == Some(key))
            .map(|(k, _)| k)
    }

    /// Entries not yet taken by `get`, for maps whose keys are user-chosen names.
    pub fn rest(&mut self) -> Vec<(&'a Node, &'a Node)> {
        let mut out = Vec::new();
        for (i, (k, v)) in self.entries.iter().enumerate() {
            if !self.seen[i] {
                self.seen[i] = true;
                out.push((k, v));
            }
        }
        out
    }

    /// Entries not yet taken, for maps whose keys the user chooses (variables, report groups,
    /// artifact identifiers): each key as text. A key that is not a scalar is reported as not
    /// being `what` ("a variable name") and left out.
    pub fn named(
        &mut self,
        what: &str,
        diags: &mut Diagnostics,
    ) -> Vec<(&'a Node, String, &'a Node)> {
        let mut out = Vec::new();
        for (k, v) in self.rest() {
            match k.scalar_text() {
                Some(name) => out.push((k, name, v)),
                None => diags.push(Diagnostic::error(
                    k.pos,
                    self.path.as_str(),
                    format!("expected {what}, found {}", k.kind()),
                )),
            }
        }
        out
    }

    pub fn child_path(&self, key: &str) -> String {
        join(&self.path, key)
    }

    /// Reports every key not taken by `get` as unknown, suggesting the closest of `known`.
    pub fn finish(self, known: &[&str], diags: &mut Diagnostics) {
        let where_ = if self.path.is_empty() {
            "the top level".to_string()
        } else {
            format!("`{}`", self.path)
        };
        for (i, (k, _)) in self.entries.iter().enumerate() {
            if self.seen[i] {
                continue;
            }
            let name = k.scalar_text().unwrap_or_else(|| format!("<{}>", k.kind()));
            let mut d = Diagnostic::error(
                k.pos,
                join(&self.path, &name),
                format!("unknown key `{name}` in {where_}"),
            );
            d = match did_you_mean(&name, known) {
                Some(s) => d.with_hint(format!("did you mean `{s}`?")),
                None => d.with_hint(format!("expected one of: {}", known.join(", "))),
            };
            diags.push(d);
        }
    }
}

/// Whether `s` can name an environment (and shell) variable: `[A-Za-z_][A-Za-z0-9_]*`.
pub fn is_env_name(s: &str) -> bool {
    let mut b = s.bytes();
    b.next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == b'_')
        && b.all(|c| c.is_ascii_alphanumeric() || c == b'_')
}

/// `a.b` joined, or just `b` at the root.
pub fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

/// Reads a scalar as a string (numbers and booleans as written).
pub fn string(node: &Node, path: &str, diags: &mut Diagnostics) -> Option<String> {
    match node.scalar_text() {
        Some(s) => Some(s),
        None => {
            diags.push(Diagnostic::error(
                node.pos,
                path,
                format!("expected a string, found {}", node.kind()),
            ));
            None
        }
    }
}

/// Reads a YAML boolean, accepting YAML 1.1's yes/no/on/off as AWS's files use them.
pub fn boolean(node: &Node, path: &str, diags: &mut Diagnostics) -> Option<bool> {
    let text = match &node.value {
        Value::Bool(b) => return Some(*b),
        Value::String(s) => s.to_ascii_lowercase(),
        _ => String::new(),
    };
    match text.as_str() {
        "yes" | "y" | "true" | "on" => Some(true),
        "no" | "n" | "false" | "off" => Some(false),
        _ => {
            diags.push(
                Diagnostic::error(
                    node.pos,
                    path,
                    format!("expected yes/no or true/false, found {}", node.kind()),
                )
                .with_hint("write `yes` or `no`"),
            );
            None
        }
    }
}

/// Reads a non-negative integer.
pub fn uint(node: &Node, path: &str, diags: &mut Diagnostics) -> Option<u64> {
    if let Some(n) = node.scalar_text().and_then(|t| t.parse::<u64>().ok()) {
        return Some(n);
    }
    diags.push(Diagnostic::error(
        node.pos,
        path,
        format!("expected a whole number, found {}", node.kind()),
    ));
    None
}

/// Reads a list of strings; a single string is accepted as a one-item list.
pub fn string_list(node: &Node, path: &str, diags: &mut Diagnostics) -> Vec<Located<String>> {
    match &node.value {
        Value::Null => Vec::new(),
        Value::Seq(items) => items
            .iter()
            .enumerate()
            .filter_map(|(i, n)| {
                let p = format!("{path}[{i}]");
                string(n, &p, diags).map(|v| Located {
                    pos: n.pos,
                    value: v,
                })
            })
            .collect(),
        _ => match node.scalar_text() {
            Some(s) => vec![Located {
                pos: node.pos,
                value: s,
            }],
            None => {
                diags.push(Diagnostic::error(
                    node.pos,
                    path,
                    format!("expected a list of strings, found {}", node.kind()),
                ));
                Vec::new()
            }
        },
    }
}

/// A value with the position it was read from (ours, so the spec's types don't expose serde-saphyr).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Located<T> {
    pub pos: Pos,
    pub value: T,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_numbers_as_written_and_positions() {
        let n = parse("version: 0.2\nenv:\n  variables:\n    V: 1.10\n").unwrap();
        let m = n.as_map().unwrap();
        assert_eq!(m[0].1.value, Value::Number("0.2".into()));
        assert_eq!(
            m[0].1.pos,
            Pos {
                line: 1,
                column: 10
            }
        );
        let vars = m[1].1.as_map().unwrap()[0].1.as_map().unwrap();
        assert_eq!(vars[0].1.value, Value::Number("1.10".into()));
        assert_eq!(vars[0].0.pos, Pos { line: 4, column: 5 });
    }

    #[test]
    fn yaml_1_1_words_stay_strings_and_true_false_are_booleans() {
        let n = parse("a: yes\nN: 1\nc: true\nd: off\ne: False\n").unwrap();
        // (`False` stays the text written; `boolean` reads it.)
        let m = n.as_map().unwrap();
        assert_eq!(m[0].1.value, Value::String("yes".into()));
        assert_eq!(m[1].0.value, Value::String("N".into()));
        assert_eq!(m[2].1.value, Value::Bool(true));
        assert_eq!(m[3].1.value, Value::String("off".into()));
        assert_eq!(m[4].1.value, Value::String("False".into()));
        assert_eq!(
            boolean(&m[4].1, "e", &mut Diagnostics::default()),
            Some(false)
        );
        let mut d = Diagnostics::default();
        assert_eq!(boolean(&m[0].1, "a", &mut d), Some(true));
        assert_eq!(boolean(&m[3].1, "d", &mut d), Some(false));
        assert!(d.0.is_empty());
    }

    #[test]
    fn duplicate_keys_are_reported_with_the_other_problems() {
        let n = parse("a: 1\nb: 2\na: 3\nzzz: 4\n").unwrap();
        let mut d = Diagnostics::default();
        let mut m = MapReader::new(&n, "", &mut d).unwrap();
        assert_eq!(m.get("a").and_then(Node::scalar_text).as_deref(), Some("1"));
        m.get("b");
        m.finish(&["a", "b"], &mut d);
        let rendered = d.render("f.yml");
        assert!(
            rendered.contains("f.yml:3:1: error: duplicate key `a`"),
            "{rendered}"
        );
        assert!(rendered.contains("first given at line 1"), "{rendered}");
        assert!(
            rendered.contains("f.yml:4:1: error: unknown key `zzz`"),
            "{rendered}"
        );
    }

    #[test]
    fn syntax_error_has_position() {
        let e = parse("a: [1, 2\nb: c\n").unwrap_err();
        assert!(e.pos.line >= 1, "{e:?}");
        assert!(e.message.starts_with("invalid YAML"));
        assert!(
            !e.message.contains("line "),
            "the position is printed once, by render: {}",
            e.message
        );
    }

    #[test]
    fn alias_bomb_is_refused_not_expanded() {
        let mut s = String::from("a: &a [x, x, x, x, x, x, x, x, x, x]\n");
        for i in 1..12 {
            s.push_str(&format!(
                "{}: &{} [*{}, *{}, *{}, *{}, *{}, *{}, *{}, *{}, *{}, *{}]\n",
                (b'a' + i) as char,
                (b'a' + i) as char,
                (b'a' + i - 1) as char,
                (b'a' + i - 1) as char,
                (b'a' + i - 1) as char,
                (b'a' + i - 1) as char,
                (b'a' + i - 1) as char,
                (b'a' + i - 1) as char,
                (b'a' + i - 1) as char,
                (b'a' + i - 1) as char,
                (b'a' + i - 1) as char,
                (b'a' + i - 1) as char
            ));
        }
        assert!(parse(&s).is_err());
    }
}
