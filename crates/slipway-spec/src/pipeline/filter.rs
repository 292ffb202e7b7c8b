//! Trigger filters: glob patterns over branches, tags and changed file paths.
//!
//! Globs follow CodePipeline V2's filters with globset and `literal_separator`: `*` stops at
//! `/`, `**` crosses it. Excludes win over includes; an empty include list means everything.

use globset::{GlobBuilder, GlobMatcher};

/// Include and exclude globs. `matches`: not excluded, and included (empty includes = all).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Patterns {
    pub includes: Vec<String>,
    pub excludes: Vec<String>,
}

/// Compiles one glob the way every filter reads it.
pub(crate) fn compile(pattern: &str) -> Result<GlobMatcher, String> {
    GlobBuilder::new(pattern)
        .literal_separator(true)
        .backslash_escape(true)
        .build()
        .map(|g| g.compile_matcher())
        .map_err(|e| e.kind().to_string())
}

/// A pattern that does not compile matches nothing: validation reports it, and a
/// hand-built filter must not fire on everything because of a typo.
fn any_matches(patterns: &[String], s: &str) -> bool {
    patterns
        .iter()
        .any(|p| compile(p).is_ok_and(|m| m.is_match(s)))
}

impl Patterns {
    pub fn matches(&self, s: &str) -> bool {
        if any_matches(&self.excludes, s) {
            return false;
        }
        self.includes.is_empty() || any_matches(&self.includes, s)
    }

    /// Whether at least one of `items` matches (file paths of a change).
    pub fn matches_any(&self, items: &[&str]) -> bool {
        items.iter().any(|s| self.matches(s))
    }
}

/// `refs/heads/x` -> `x`; a bare name is taken as a branch; other refs are not branches.
fn branch_of(git_ref: &str) -> Option<&str> {
    match git_ref.strip_prefix("refs/heads/") {
        Some(b) => Some(b),
        None if git_ref.starts_with("refs/") => None,
        None => Some(git_ref),
    }
}

/// A push trigger. Absent filters don't restrict, with one rule of CodePipeline's: a filter
/// with `tags` and no `branches` is about tags only, and a tag push fires only when `tags` is set.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PushFilter {
    pub branches: Option<Patterns>,
    pub tags: Option<Patterns>,
    pub file_paths: Option<Patterns>,
}

impl PushFilter {
    /// `git_ref` is `refs/heads/x` or `refs/tags/y` (a bare name is a branch); `changed_paths` are
    /// the files the push changed, which `file-paths` checks (not for tags: a tag changes no files).
    pub fn matches(&self, git_ref: &str, changed_paths: &[&str]) -> bool {
        if let Some(tag) = git_ref.strip_prefix("refs/tags/") {
            return self.tags.as_ref().is_some_and(|t| t.matches(tag));
        }
        let Some(branch) = branch_of(git_ref) else {
            return false;
        };
        match (&self.branches, &self.tags) {
            (Some(b), _) if !b.matches(branch) => return false,
            (None, Some(_)) => return false,
            _ => {}
        }
        self.file_paths
            .as_ref()
            .is_none_or(|f| f.matches_any(changed_paths))
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PullRequestEvent {
    Opened,
    /// New commits pushed to the pull request's branch.
    Updated,
    /// Closed or merged.
    Closed,
}

impl PullRequestEvent {
    pub const ALL: [PullRequestEvent; 3] = [Self::Opened, Self::Updated, Self::Closed];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Opened => "opened",
            Self::Updated => "updated",
            Self::Closed => "closed",
        }
    }
}

/// A pull-request trigger: `branches` filters the branch the pull request targets.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PullRequestFilter {
    /// Parsed files always list at least one event (default all three); empty means all.
    pub events: Vec<PullRequestEvent>,
    pub branches: Option<Patterns>,
    pub file_paths: Option<Patterns>,
}

impl PullRequestFilter {
    /// `target_branch` is the pull request's base (`main` or `refs/heads/main`).
    pub fn matches(
        &self,
        event: PullRequestEvent,
        target_branch: &str,
        changed_paths: &[&str],
    ) -> bool {
        if !self.events.is_empty() && !self.events.contains(&event) {
            return false;
        }
        let Some(branch) = branch_of(target_branch) else {
            return false;
        };
        self.branches.as_ref().is_none_or(|b| b.matches(branch))
            && self
                .file_paths
                .as_ref()
                .is_none_or(|f| f.matches_any(changed_paths))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pats(includes: &[&str], excludes: &[&str]) -> Patterns {
        Patterns {
            includes: includes.iter().map(|s| s.to_string()).collect(),
            excludes: excludes.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn star_stops_at_slash_double_star_crosses() {
        let p = pats(&["release/*"], &[]);
        assert!(p.matches("release/1.0"));
        assert!(!p.matches("release/1.0/hotfix"));
        let p = pats(&["release/**"], &[]);
        assert!(p.matches("release/1.0/hotfix"));
        assert!(!p.matches("main"));
        let p = pats(&["*.md"], &[]);
        assert!(p.matches("README.md"));
        assert!(!p.matches("docs/a.md"));
        assert!(pats(&["**/*.md"], &[]).matches("docs/a.md"));
    }

    #[test]
    fn excludes_win_and_empty_includes_mean_all() {
        let p = pats(&["release/**"], &["release/old*"]);
        assert!(p.matches("release/new"));
        assert!(!p.matches("release/old-1"));
        let p = pats(&[], &["wip/*"]);
        assert!(p.matches("main"));
        assert!(!p.matches("wip/x"));
        assert!(Patterns::default().matches("anything/at/all"));
        // A broken glob matches nothing rather than everything.
        assert!(!pats(&["[oops"], &[]).matches("[oops"));
    }

    #[test]
    fn push_filter_branches_tags_and_paths() {
        let f = PushFilter {
            branches: Some(pats(&["main", "release/**"], &["release/old*"])),
            tags: None,
            file_paths: Some(pats(&["src/**"], &["src/**/*.md"])),
        };
        assert!(f.matches("refs/heads/main", &["src/lib.rs"]));
        assert!(f.matches("main", &["README.md", "src/a/b.rs"]));
        assert!(!f.matches("refs/heads/main", &["docs/x.md"]));
        // Excludes win: the only changed file is excluded.
        assert!(!f.matches("refs/heads/main", &["src/notes.md"]));
        assert!(!f.matches("refs/heads/release/old-2", &["src/lib.rs"]));
        assert!(!f.matches("refs/heads/feature", &["src/lib.rs"]));
        // No tags filter: tag pushes never fire.
        assert!(!f.matches("refs/tags/v1", &["src/lib.rs"]));
        assert!(!f.matches("refs/pull/1/head", &["src/lib.rs"]));
    }

    #[test]
    fn push_filter_tags_only_and_empty() {
        let tags = PushFilter {
            tags: Some(pats(&["v*"], &["v0*"])),
            ..Default::default()
        };
        assert!(tags.matches("refs/tags/v1.2.0", &[]));
        assert!(!tags.matches("refs/tags/v0.9", &[]));
        assert!(!tags.matches("refs/heads/main", &["src/a"]));
        let any_branch = PushFilter::default();
        assert!(any_branch.matches("refs/heads/feature/x", &[]));
        assert!(!any_branch.matches("refs/tags/v1", &[]));
        let both = PushFilter {
            branches: Some(pats(&["main"], &[])),
            tags: Some(pats(&["v*"], &[])),
            file_paths: None,
        };
        assert!(both.matches("refs/heads/main", &[]));
        assert!(both.matches("refs/tags/v2", &[]));
        assert!(!both.matches("refs/heads/dev", &[]));
    }

    #[test]
    fn pull_request_filter() {
        let f = PullRequestFilter {
            events: vec![PullRequestEvent::Opened, PullRequestEvent::Updated],
            branches: Some(pats(&["main"], &[])),
            file_paths: None,
        };
        assert!(f.matches(PullRequestEvent::Opened, "main", &[]));
        assert!(f.matches(PullRequestEvent::Updated, "refs/heads/main", &[]));
        assert!(!f.matches(PullRequestEvent::Closed, "main", &[]));
        assert!(!f.matches(PullRequestEvent::Opened, "dev", &[]));
    }
}
