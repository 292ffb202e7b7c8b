//! Diagnostics: every problem found in a user's file, with where it is and what to do.

use std::fmt;

/// A position in a source file, 1-based as editors show it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Pos {
    pub line: u32,
    pub column: u32,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Severity {
    Error,
    /// Accepted but without effect here (for example an AWS-only key); never silently dropped.
    Warning,
}

/// One problem in one file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Diagnostic {
    pub severity: Severity,
    pub pos: Pos,
    /// Dotted key path, e.g. `phases.build.commands[2]`; empty for the document root.
    pub path: String,
    pub message: String,
    pub hint: Option<String>,
}

impl Diagnostic {
    pub fn error(pos: Pos, path: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            severity: Severity::Error,
            pos,
            path: path.into(),
            message: message.into(),
            hint: None,
        }
    }

    pub fn warning(pos: Pos, path: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            severity: Severity::Warning,
            pos,
            path: path.into(),
            message: message.into(),
            hint: None,
        }
    }

    pub fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }

    /// `file:line:column: error: message (at path)` plus an indented hint line.
    pub fn render(&self, file: &str) -> String {
        let mut out = format!(
            "{file}:{}:{}: {}: {}",
            self.pos.line,
            self.pos.column,
            match self.severity {
                Severity::Error => "error",
                Severity::Warning => "warning",
            },
            self.message
        );
        if !self.path.is_empty() {
            out.push_str(&format!(" (at `{}`)", self.path));
        }
        if let Some(hint) = &self.hint {
            out.push_str(&format!("\n  hint: {hint}"));
        }
        out
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.render("<input>"))
    }
}

/// Diagnostics gathered while reading one file, in source order once sorted.
#[derive(Clone, Debug, Default)]
pub struct Diagnostics(pub Vec<Diagnostic>);

impl Diagnostics {
    pub fn push(&mut self, d: Diagnostic) {
        self.0.push(d);
    }

    pub fn has_errors(&self) -> bool {
        self.0.iter().any(Diagnostic::is_error)
    }

    pub fn into_sorted(mut self) -> Vec<Diagnostic> {
        self.0
            .sort_by(|a, b| a.pos.cmp(&b.pos).then_with(|| a.severity.cmp(&b.severity)));
        self.0
    }

    pub fn render(&self, file: &str) -> String {
        let mut v: Vec<&Diagnostic> = self.0.iter().collect();
        v.sort_by_key(|d| d.pos);
        v.iter()
            .map(|d| d.render(file))
            .collect::<Vec<_>>()
            .join("\n")
    }
}

/// The closest candidate to a misspelt key, if one is close enough to suggest.
pub fn did_you_mean<'a>(given: &str, candidates: &[&'a str]) -> Option<&'a str> {
    let given_l = given.to_ascii_lowercase();
    candidates
        .iter()
        .map(|c| {
            (
                strsim::damerau_levenshtein(&given_l, &c.to_ascii_lowercase()),
                *c,
            )
        })
        .filter(|(d, c)| *d <= 2.max(c.len() / 3))
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggests_close_keys_only() {
        assert_eq!(
            did_you_mean("comands", &["commands", "finally"]),
            Some("commands")
        );
        assert_eq!(
            did_you_mean("prebuild", &["pre_build", "build"]),
            Some("pre_build")
        );
        assert_eq!(did_you_mean("zzz", &["commands", "finally"]), None);
    }
}
