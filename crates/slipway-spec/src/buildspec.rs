//! AWS CodeBuild buildspec.yml (versions 0.1 and 0.2): parsing and validation.
//!
//! [`parse`] reads the whole file and reports every problem at once. Every key AWS documents is
//! accepted; the ones that have no effect in Slipway (explicit-proxy settings, runtime
//! installation, session debugging, compute types, ...) are kept or dropped *with a warning*,
//! never silently, so a team moving off CodeBuild sees what will behave differently.

use crate::diag::{Diagnostic, Diagnostics, Pos, did_you_mean};
use crate::yaml::{self, Located, MapReader, Node, Value, join};

mod batch;

pub use batch::{Batch, BatchBuild, BatchEnv, BatchKind, BuildMatrix};

#[cfg(test)]
mod tests;

/// The buildspec format version (`version:`). 0.1 runs every command in its own shell.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Version {
    V0_1,
    V0_2,
}

/// A validated buildspec.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Buildspec {
    pub version: Version,
    /// Linux user for every command unless a phase says otherwise; `None` = root, as on AWS.
    pub run_as: Option<String>,
    pub env: Env,
    /// Explicit-proxy settings; read for completeness, ignored by Slipway (warned).
    pub proxy: Proxy,
    pub batch: Option<Batch>,
    pub phases: Phases,
    pub reports: Vec<Report>,
    pub artifacts: Option<Artifacts>,
    pub cache: Option<Cache>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Env {
    /// `bash`, `/bin/sh`, `powershell.exe` or `cmd.exe`; `None` = the image's default shell.
    pub shell: Option<String>,
    /// Plain-text variables in file order, values exactly as written (`1.10` stays `1.10`).
    pub variables: Vec<(String, String)>,
    /// Variable name -> parameter name in the secret store.
    pub parameter_store: Vec<(String, String)>,
    pub secrets_manager: Vec<(String, SecretRef)>,
    pub exported_variables: Vec<String>,
    /// Ignored by Slipway (warned when present).
    pub git_credential_helper: bool,
}

/// `secret-id:json-key:version-stage:version-id`, where the secret id may be an ARN with colons.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SecretRef {
    pub secret_id: String,
    pub json_key: Option<String>,
    pub version_stage: Option<String>,
    pub version_id: Option<String>,
    /// The reference as written, for messages.
    pub raw: String,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Proxy {
    pub upload_artifacts: bool,
    pub logs: bool,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Phases {
    pub install: Option<Phase>,
    pub pre_build: Option<Phase>,
    pub build: Option<Phase>,
    pub post_build: Option<Phase>,
}

impl Phases {
    /// The phases present, in the order they run.
    pub fn iter(&self) -> impl Iterator<Item = (PhaseName, &Phase)> {
        [
            (PhaseName::Install, self.install.as_ref()),
            (PhaseName::PreBuild, self.pre_build.as_ref()),
            (PhaseName::Build, self.build.as_ref()),
            (PhaseName::PostBuild, self.post_build.as_ref()),
        ]
        .into_iter()
        .filter_map(|(n, p)| p.map(|p| (n, p)))
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum PhaseName {
    Install,
    PreBuild,
    Build,
    PostBuild,
}

impl PhaseName {
    pub const ALL: [PhaseName; 4] = [
        PhaseName::Install,
        PhaseName::PreBuild,
        PhaseName::Build,
        PhaseName::PostBuild,
    ];

    /// The key in the buildspec.
    pub fn as_str(self) -> &'static str {
        match self {
            PhaseName::Install => "install",
            PhaseName::PreBuild => "pre_build",
            PhaseName::Build => "build",
            PhaseName::PostBuild => "post_build",
        }
    }

    /// The name CodeBuild shows in its phase list and logs.
    pub fn codebuild_name(self) -> &'static str {
        match self {
            PhaseName::Install => "INSTALL",
            PhaseName::PreBuild => "PRE_BUILD",
            PhaseName::Build => "BUILD",
            PhaseName::PostBuild => "POST_BUILD",
        }
    }
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Phase {
    pub run_as: Option<String>,
    pub on_failure: Option<OnFailure>,
    /// Install phase only; ignored by Slipway (warned).
    pub runtime_versions: Vec<(String, String)>,
    pub commands: Vec<Located<String>>,
    /// Runs after `commands` even when one of them failed.
    pub finally: Vec<Located<String>>,
}

/// `on-failure:` of a phase.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OnFailure {
    Abort,
    Continue,
    /// Retry the build `count` times (0..=100) when the failure message matches `pattern`;
    /// `None` matches everything (AWS's `.*`). Plain `RETRY` is 3 retries, any message.
    Retry {
        count: u32,
        pattern: Option<String>,
    },
}

/// One report group: test results or code coverage files.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Report {
    /// The group name or ARN, as written.
    pub name: String,
    pub files: Vec<String>,
    pub base_directory: Option<String>,
    pub discard_paths: bool,
    pub file_format: ReportFormat,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum ReportFormat {
    #[default]
    JunitXml,
    CucumberJson,
    NunitXml,
    Nunit3Xml,
    TestNgXml,
    VisualStudioTrx,
    CloverXml,
    CoberturaXml,
    JacocoXml,
    SimpleCov,
}

impl ReportFormat {
    pub const ALL: [ReportFormat; 10] = [
        ReportFormat::JunitXml,
        ReportFormat::CucumberJson,
        ReportFormat::NunitXml,
        ReportFormat::Nunit3Xml,
        ReportFormat::TestNgXml,
        ReportFormat::VisualStudioTrx,
        ReportFormat::CloverXml,
        ReportFormat::CoberturaXml,
        ReportFormat::JacocoXml,
        ReportFormat::SimpleCov,
    ];

    /// AWS's spelling (`JUNITXML`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            ReportFormat::JunitXml => "JUNITXML",
            ReportFormat::CucumberJson => "CUCUMBERJSON",
            ReportFormat::NunitXml => "NUNITXML",
            ReportFormat::Nunit3Xml => "NUNIT3XML",
            ReportFormat::TestNgXml => "TESTNGXML",
            ReportFormat::VisualStudioTrx => "VISUALSTUDIOTRX",
            ReportFormat::CloverXml => "CLOVERXML",
            ReportFormat::CoberturaXml => "COBERTURAXML",
            ReportFormat::JacocoXml => "JACOCOXML",
            ReportFormat::SimpleCov => "SIMPLECOV",
        }
    }

    /// Case-insensitive, as AWS documents.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|f| f.as_str().eq_ignore_ascii_case(s.trim()))
    }

    /// A coverage format rather than a test-result format.
    pub fn is_coverage(self) -> bool {
        matches!(
            self,
            ReportFormat::CloverXml
                | ReportFormat::CoberturaXml
                | ReportFormat::JacocoXml
                | ReportFormat::SimpleCov
        )
    }
}

/// One artifact: the primary one (`identifier: None`) or a secondary one.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ArtifactSet {
    pub identifier: Option<String>,
    pub files: Vec<String>,
    /// Shell-evaluated at upload time (`myname-$(date +%F)`).
    pub name: Option<String>,
    pub discard_paths: bool,
    pub base_directory: Option<String>,
    pub exclude_paths: Vec<String>,
    /// Ignored by Slipway (warned).
    pub enable_symlinks: bool,
    /// Ignored by Slipway (warned).
    pub s3_prefix: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Artifacts {
    pub primary: ArtifactSet,
    /// Each with `identifier: Some(..)`, unique, in file order.
    pub secondary: Vec<ArtifactSet>,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum CacheAction {
    #[default]
    RestoreAndSave,
    Restore,
    Save,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cache {
    pub paths: Vec<String>,
    /// Shell-evaluated (`npm-$(codebuild-hash-files package-lock.json)`); exact match.
    pub key: Option<String>,
    /// Prefix matches tried in order when `key` misses; empty when `key` is absent.
    pub fallback_keys: Vec<String>,
    pub action: CacheAction,
}

const TOP_KEYS: &[&str] = &[
    "version",
    "run-as",
    "env",
    "proxy",
    "batch",
    "phases",
    "reports",
    "artifacts",
    "cache",
];
const ENV_KEYS: &[&str] = &[
    "shell",
    "variables",
    "parameter-store",
    "secrets-manager",
    "exported-variables",
    "git-credential-helper",
];
const PROXY_KEYS: &[&str] = &["upload-artifacts", "logs"];
const PHASE_NAMES: &[&str] = &["install", "pre_build", "build", "post_build"];
const PHASE_KEYS: &[&str] = &[
    "run-as",
    "on-failure",
    "runtime-versions",
    "commands",
    "finally",
];
const REPORT_KEYS: &[&str] = &["files", "base-directory", "discard-paths", "file-format"];
const ARTIFACT_KEYS: &[&str] = &[
    "files",
    "name",
    "discard-paths",
    "base-directory",
    "exclude-paths",
    "enable-symlinks",
    "s3-prefix",
    "secondary-artifacts",
    "type",
];
const CACHE_KEYS: &[&str] = &["paths", "key", "fallback-keys", "action"];
const SHELLS: &[&str] = &["bash", "/bin/sh", "powershell.exe", "cmd.exe"];
const ON_FAILURE_FORMS: &str =
    "ABORT, CONTINUE, RETRY, RETRY-<count>, RETRY-<regex> or RETRY-<count>-<regex> (count 0..=100)";
/// AWS: "A project can have a maximum of five report groups."
const MAX_REPORT_GROUPS: usize = 5;
/// AWS: "Up to five fallback keys are supported."
const MAX_FALLBACK_KEYS: usize = 5;

/// Parses and validates a buildspec. `Some` whenever no diagnostic is an error (warnings are
/// allowed); diagnostics are sorted by position.
pub fn parse(text: &str) -> (Option<Buildspec>, Vec<Diagnostic>) {
    let root = match yaml::parse(text) {
        Ok(n) => n,
        Err(d) => return (None, vec![d]),
    };
    let mut diags = Diagnostics::default();
    let spec = read_root(&root, &mut diags);
    let spec = if diags.has_errors() { None } else { spec };
    (spec, diags.into_sorted())
}

fn read_root(root: &Node, diags: &mut Diagnostics) -> Option<Buildspec> {
    match &root.value {
        Value::Null => {
            diags.push(
                // A comment-only file parses to null at its end; the top is where to add keys.
                Diagnostic::error(Pos { line: 1, column: 1 }, "", "empty buildspec")
                    .with_hint("start with `version: 0.2` and a `phases` mapping"),
            );
            return None;
        }
        Value::Map(_) => {}
        _ => {
            diags.push(
                Diagnostic::error(
                    root.pos,
                    "",
                    format!(
                        "a buildspec must be a mapping of keys such as `version` and `phases`, found {}",
                        root.kind()
                    ),
                )
                .with_hint("start with `version: 0.2` and a `phases` mapping"),
            );
            return None;
        }
    }
    let mut m = MapReader::new(root, "", diags)?;

    let version = match m.get("version") {
        None => {
            diags.push(
                Diagnostic::error(root.pos, "version", "missing required key `version`")
                    .with_hint("add `version: 0.2` at the top of the file"),
            );
            None
        }
        Some(v) => read_version(v, diags),
    };
    let run_as = opt_string(&mut m, "run-as", diags);

    // 0.1 called `env` `environment_variables` and `variables` `plaintext`; read it there so
    // old files keep working, and point 0.2 files at the new names.
    let mut env = Env::default();
    if let Some(n) = m.get("env") {
        env = read_env(n, "env", diags);
    }
    if let Some(n) = m.get("environment_variables") {
        if version == Some(Version::V0_1) {
            if let Some(mut em) = MapReader::new(n, "environment_variables", diags) {
                if let Some(p) = em.get("plaintext") {
                    env.variables = read_variables(p, "environment_variables.plaintext", diags);
                }
                em.finish(&["plaintext"], diags);
            }
        } else {
            let k = m.key_node("environment_variables").unwrap_or(n);
            diags.push(
                Diagnostic::error(
                    k.pos,
                    "environment_variables",
                    "`environment_variables` is the buildspec 0.1 name",
                )
                .with_hint("in version 0.2 write `env:` with `variables:` instead of `plaintext:`"),
            );
        }
    }

    let proxy = match m.get("proxy") {
        Some(n) => read_proxy(n, diags),
        None => Proxy::default(),
    };
    let batch = m
        .get("batch")
        .and_then(|n| batch::read_batch(n, "batch", diags));
    let phases = match m.get("phases") {
        Some(n) => read_phases(n, diags),
        None => {
            diags.push(
                Diagnostic::error(root.pos, "phases", "missing required key `phases`")
                    .with_hint("add `phases:` with at least `build:` and its `commands:`"),
            );
            Phases::default()
        }
    };
    let reports = m
        .get("reports")
        .map_or_else(Vec::new, |n| read_reports(n, diags));
    let artifacts = m.get("artifacts").and_then(|n| read_artifacts(n, diags));
    let cache = m.get("cache").and_then(|n| read_cache(n, diags));
    m.finish(TOP_KEYS, diags);

    Some(Buildspec {
        version: version?,
        run_as,
        env,
        proxy,
        batch,
        phases,
        reports,
        artifacts,
        cache,
    })
}

fn read_version(v: &Node, diags: &mut Diagnostics) -> Option<Version> {
    let text = match &v.value {
        Value::Number(s) | Value::String(s) => s.trim().to_string(),
        _ => String::new(),
    };
    match text.as_str() {
        "0.2" => Some(Version::V0_2),
        "0.1" => Some(Version::V0_1),
        _ => {
            let message = match v.scalar_text() {
                Some(shown) => format!("unsupported buildspec version `{shown}`"),
                None => format!("`version` must be 0.2 or 0.1, found {}", v.kind()),
            };
            diags.push(
                Diagnostic::error(v.pos, "version", message)
                    .with_hint("use `version: 0.2` (0.1 is also accepted)"),
            );
            None
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Small readers shared by the sections.

/// A warning for a key that is read but has no effect in Slipway.
fn ignored(m: &MapReader, key: &str, why: &str, diags: &mut Diagnostics) {
    if let Some(k) = m.key_node(key) {
        diags.push(Diagnostic::warning(
            k.pos,
            m.child_path(key),
            format!("`{key}` is accepted but ignored by Slipway: {why}"),
        ));
    }
}

fn missing(m: &MapReader, key: &str, hint: &str, diags: &mut Diagnostics) {
    let where_ = if m.path.is_empty() {
        "at the top level".to_string()
    } else {
        format!("in `{}`", m.path)
    };
    diags.push(
        Diagnostic::error(
            m.node.pos,
            m.child_path(key),
            format!("missing required key `{key}` {where_}"),
        )
        .with_hint(hint),
    );
}

fn opt_string(m: &mut MapReader, key: &str, diags: &mut Diagnostics) -> Option<String> {
    let path = m.child_path(key);
    let n = m.get(key)?;
    if matches!(n.value, Value::Null) {
        return None;
    }
    yaml::string(n, &path, diags)
}

fn opt_bool(m: &mut MapReader, key: &str, diags: &mut Diagnostics) -> Option<bool> {
    let path = m.child_path(key);
    let n = m.get(key)?;
    if matches!(n.value, Value::Null) {
        return None;
    }
    yaml::boolean(n, &path, diags)
}

fn strings(m: &mut MapReader, key: &str, diags: &mut Diagnostics) -> Vec<String> {
    let path = m.child_path(key);
    m.get(key).map_or_else(Vec::new, |n| {
        yaml::string_list(n, &path, diags)
            .into_iter()
            .map(|l| l.value)
            .collect()
    })
}

/// A `NAME: value` mapping whose keys are chosen by the user: (key node, name, value).
fn named_scalars<'a>(
    node: &'a Node,
    path: &str,
    diags: &mut Diagnostics,
) -> Vec<(&'a Node, String, String)> {
    let Some(mut m) = MapReader::new(node, path, diags) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for (k, name, v) in m.named("a name", diags) {
        let p = join(path, &name);
        if matches!(v.value, Value::Null) {
            diags.push(
                Diagnostic::error(v.pos, p, format!("`{name}` has no value"))
                    .with_hint(format!("write `{name}: \"\"` for an empty value")),
            );
            continue;
        }
        if let Some(value) = yaml::string(v, &p, diags) {
            out.push((k, name, value));
        }
    }
    out
}

/// Environment variables; names starting `CODEBUILD_` are reserved on AWS.
fn read_variables(node: &Node, path: &str, diags: &mut Diagnostics) -> Vec<(String, String)> {
    named_scalars(node, path, diags)
        .into_iter()
        .filter_map(|(k, name, value)| {
            check_var_name(k, &name, path, diags).then_some((name, value))
        })
        .collect()
}

fn check_var_name(k: &Node, name: &str, path: &str, diags: &mut Diagnostics) -> bool {
    // The build reads variables back through the shell (`"${NAME-}"`), so names are identifiers.
    if !yaml::is_env_name(name) {
        diags.push(
            Diagnostic::error(
                k.pos,
                join(path, name),
                format!("`{name}` is not a valid variable name"),
            )
            .with_hint("start with a letter or `_`, then letters, digits or `_`"),
        );
        return false;
    }
    if name.starts_with("CODEBUILD_") {
        diags.push(
            Diagnostic::error(
                k.pos,
                join(path, name),
                format!("`{name}`: names starting with `CODEBUILD_` are reserved"),
            )
            .with_hint("choose another name; CODEBUILD_* variables are set by the build itself"),
        );
        return false;
    }
    true
}

// ---------------------------------------------------------------------------------------------
// env, proxy

fn read_env(node: &Node, path: &str, diags: &mut Diagnostics) -> Env {
    let mut env = Env::default();
    let Some(mut m) = MapReader::new(node, path, diags) else {
        return env;
    };
    if let Some(n) = m.get("shell") {
        let p = m.child_path("shell");
        if let Some(s) = yaml::string(n, &p, diags) {
            if SHELLS.contains(&s.as_str()) {
                env.shell = Some(s);
            } else {
                let mut d = Diagnostic::error(n.pos, p, format!("unsupported shell `{s}`"));
                d = match did_you_mean(&s, SHELLS) {
                    Some(c) => d.with_hint(format!("did you mean `{c}`?")),
                    None => d.with_hint(format!("expected one of: {}", SHELLS.join(", "))),
                };
                diags.push(d);
            }
        }
    }
    if let Some(n) = m.get("variables") {
        env.variables = read_variables(n, &m.child_path("variables"), diags);
    }
    if let Some(n) = m.get("parameter-store") {
        env.parameter_store = read_variables(n, &m.child_path("parameter-store"), diags);
    }
    if let Some(n) = m.get("secrets-manager") {
        let p = m.child_path("secrets-manager");
        for (k, name, raw) in named_scalars(n, &p, diags) {
            if !check_var_name(k, &name, &p, diags) {
                continue;
            }
            let vp = join(&p, &name);
            let pos = m_value_pos(n, k);
            match parse_secret_ref(&raw) {
                Ok(r) => env.secrets_manager.push((name, r)),
                Err((msg, hint)) => diags.push(Diagnostic::error(pos, vp, msg).with_hint(hint)),
            }
        }
    }
    if let Some(n) = m.get("exported-variables") {
        let p = m.child_path("exported-variables");
        for (i, l) in yaml::string_list(n, &p, diags).into_iter().enumerate() {
            if !yaml::is_env_name(&l.value) {
                diags.push(
                    Diagnostic::error(
                        l.pos,
                        format!("{p}[{i}]"),
                        format!("`{}` is not a valid variable name", l.value),
                    )
                    .with_hint("start with a letter or `_`, then letters, digits or `_`"),
                );
            } else if l.value.starts_with("AWS_") {
                diags.push(
                    Diagnostic::error(
                        l.pos,
                        format!("{p}[{i}]"),
                        format!(
                            "`{}` cannot be exported: names starting with `AWS_` are not exported",
                            l.value
                        ),
                    )
                    .with_hint("copy the value into a variable with another name and export that"),
                );
            } else {
                env.exported_variables.push(l.value);
            }
        }
    }
    if let Some(b) = opt_bool(&mut m, "git-credential-helper", diags) {
        env.git_credential_helper = b;
        ignored(
            &m,
            "git-credential-helper",
            "CodeBuild's git credential helper is AWS-only",
            diags,
        );
    }
    m.finish(ENV_KEYS, diags);
    env
}

/// The position of the value under key node `k` in mapping `map` (for messages about the value).
fn m_value_pos(map: &Node, k: &Node) -> Pos {
    map.as_map()
        .and_then(|entries| entries.iter().find(|(kk, _)| std::ptr::eq(kk, k)))
        .map_or(k.pos, |(_, v)| v.pos)
}

/// Splits `secret-id:json-key:version-stage:version-id`. An ARN secret id
/// (`arn:partition:secretsmanager:region:account:secret:name`) is its first seven fields.
pub fn parse_secret_ref(raw: &str) -> Result<SecretRef, (String, String)> {
    const FORM: &str = "write `secret-id[:json-key[:version-stage[:version-id]]]`, e.g. `prod/db:password` or `arn:aws:secretsmanager:eu-west-1:123456789012:secret:prod/db-AbCdEf:password`";
    let fields: Vec<&str> = raw.trim().split(':').collect();
    let id_len = if fields.first() == Some(&"arn") { 7 } else { 1 };
    if fields.len() < id_len {
        return Err((
            format!("secret ARN `{raw}` is incomplete: an ARN has 7 `:`-separated fields"),
            FORM.to_string(),
        ));
    }
    let secret_id = fields
        .iter()
        .take(id_len)
        .copied()
        .collect::<Vec<_>>()
        .join(":");
    let rest: Vec<&str> = fields.iter().skip(id_len).copied().collect();
    if rest.len() > 3 {
        return Err((
            format!("secret reference `{raw}` has too many `:`-separated fields"),
            FORM.to_string(),
        ));
    }
    if secret_id.is_empty() || (id_len == 7 && fields.iter().take(7).any(|f| f.is_empty())) {
        return Err((
            format!("secret reference `{raw}` has no secret id"),
            FORM.to_string(),
        ));
    }
    let field = |i: usize| {
        rest.get(i)
            .map(|s| s.trim())
            .filter(|s| !s.is_empty())
            .map(str::to_string)
    };
    let (json_key, version_stage, version_id) = (field(0), field(1), field(2));
    if version_stage.is_some() && version_id.is_some() {
        return Err((
            format!("secret reference `{raw}` gives both a version stage and a version id"),
            "give one of them: `id:key:AWSCURRENT` or `id:key::<version-id>`".to_string(),
        ));
    }
    Ok(SecretRef {
        secret_id,
        json_key,
        version_stage,
        version_id,
        raw: raw.to_string(),
    })
}

fn read_proxy(node: &Node, diags: &mut Diagnostics) -> Proxy {
    let mut proxy = Proxy::default();
    let Some(mut m) = MapReader::new(node, "proxy", diags) else {
        return proxy;
    };
    const WHY: &str = "explicit proxy server mode is AWS-only";
    if let Some(b) = opt_bool(&mut m, "upload-artifacts", diags) {
        proxy.upload_artifacts = b;
        ignored(&m, "upload-artifacts", WHY, diags);
    }
    if let Some(b) = opt_bool(&mut m, "logs", diags) {
        proxy.logs = b;
        ignored(&m, "logs", WHY, diags);
    }
    m.finish(PROXY_KEYS, diags);
    proxy
}

// ---------------------------------------------------------------------------------------------
// phases

fn read_phases(node: &Node, diags: &mut Diagnostics) -> Phases {
    let mut phases = Phases::default();
    let Some(mut m) = MapReader::new(node, "phases", diags) else {
        return phases;
    };
    let mut any = false;
    for name in PhaseName::ALL {
        let Some(n) = m.get(name.as_str()) else {
            continue;
        };
        any = true;
        let key_pos = m.key_node(name.as_str()).map_or(n.pos, |k| k.pos);
        let phase = read_phase(n, name, key_pos, diags);
        match name {
            PhaseName::Install => phases.install = phase,
            PhaseName::PreBuild => phases.pre_build = phase,
            PhaseName::Build => phases.build = phase,
            PhaseName::PostBuild => phases.post_build = phase,
        }
    }
    if !any && node.as_map().is_none_or(|e| e.is_empty()) {
        diags.push(
            Diagnostic::error(node.pos, "phases", "`phases` has no phase")
                .with_hint("add `build:` with its `commands:`"),
        );
    }
    m.finish(PHASE_NAMES, diags);
    phases
}

fn read_phase(
    node: &Node,
    name: PhaseName,
    key_pos: Pos,
    diags: &mut Diagnostics,
) -> Option<Phase> {
    let path = join("phases", name.as_str());
    let mut phase = Phase::default();
    let mut m = MapReader::new(node, &path, diags)?;
    phase.run_as = opt_string(&mut m, "run-as", diags);
    if let Some(n) = m.get("on-failure") {
        let p = m.child_path("on-failure");
        if let Some(s) = yaml::string(n, &p, diags) {
            match parse_on_failure(&s) {
                Ok(f) => phase.on_failure = Some(f),
                Err(msg) => diags.push(
                    Diagnostic::error(n.pos, p, msg)
                        .with_hint(format!("valid forms: {ON_FAILURE_FORMS}")),
                ),
            }
        }
    }
    if let Some(n) = m.get("runtime-versions") {
        let p = m.child_path("runtime-versions");
        if name == PhaseName::Install {
            let versions = named_scalars(n, &p, diags);
            if versions.is_empty() && n.as_map().is_none_or(|e| e.is_empty()) {
                diags.push(
                    Diagnostic::error(n.pos, &p, "`runtime-versions` lists no runtime")
                        .with_hint("list at least one, e.g. `python: 3.12`, or remove the key"),
                );
            }
            phase.runtime_versions = versions.into_iter().map(|(_, k, v)| (k, v)).collect();
            ignored(
                &m,
                "runtime-versions",
                "Slipway runs the build image as it is; pick an image with these runtimes or install them in `commands`",
                diags,
            );
        } else {
            let k = m.key_node("runtime-versions").unwrap_or(n);
            diags.push(
                Diagnostic::error(
                    k.pos,
                    p,
                    format!(
                        "`runtime-versions` is only allowed in `install`, not in `{}`",
                        name.as_str()
                    ),
                )
                .with_hint("move it to `phases.install`"),
            );
        }
    }
    if let Some(n) = m.get("commands") {
        phase.commands = read_commands(n, &m.child_path("commands"), diags);
    }
    if let Some(n) = m.get("finally") {
        phase.finally = read_commands(n, &m.child_path("finally"), diags);
    }
    // AWS requires `commands` in every phase but install, which may hold only runtime-versions.
    if name != PhaseName::Install && phase.commands.is_empty() && m.key_node("commands").is_none() {
        diags.push(
            Diagnostic::error(
                key_pos,
                join(&path, "commands"),
                format!("phase `{}` has no `commands`", name.as_str()),
            )
            .with_hint(
                "AWS requires `commands` in a phase that is present; add them or remove the phase",
            ),
        );
    } else if name != PhaseName::Install
        && phase.commands.is_empty()
        && let Some(k) = m.key_node("commands")
        && k_value_is_empty(node, k)
    {
        diags.push(
            Diagnostic::error(
                k.pos,
                join(&path, "commands"),
                format!("phase `{}` has an empty `commands` list", name.as_str()),
            )
            .with_hint("add at least one command or remove the phase"),
        );
    }
    m.finish(PHASE_KEYS, diags);
    Some(phase)
}

fn k_value_is_empty(map: &Node, k: &Node) -> bool {
    map.as_map()
        .and_then(|entries| entries.iter().find(|(kk, _)| std::ptr::eq(kk, k)))
        .is_some_and(|(_, v)| match &v.value {
            Value::Null => true,
            Value::Seq(s) => s.is_empty(),
            _ => false,
        })
}

/// A list of shell commands. Scalars are taken as written (`- 42` is "42"); a mapping is
/// almost always an unquoted `: ` inside a command, so the hint says exactly that.
fn read_commands(node: &Node, path: &str, diags: &mut Diagnostics) -> Vec<Located<String>> {
    let items: &[Node] = match &node.value {
        Value::Null => return Vec::new(),
        Value::Seq(items) => items,
        Value::Map(_) => std::slice::from_ref(node),
        _ => {
            diags.push(
                Diagnostic::error(
                    node.pos,
                    path,
                    format!("expected a list of commands, found {}", node.kind()),
                )
                .with_hint("write each command on its own line starting with `- `"),
            );
            return Vec::new();
        }
    };
    let mut out = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let p = if matches!(node.value, Value::Seq(_)) {
            format!("{path}[{i}]")
        } else {
            path.to_string()
        };
        match &item.value {
            Value::Map(entries) => {
                let guess = match entries.as_slice() {
                    [(k, v)] => k.scalar_text().map(|k| match v.scalar_text() {
                        Some(v) => format!("{k}: {v}"),
                        None => format!("{k}:"),
                    }),
                    _ => None,
                };
                let mut hint = "quote the command: it contains `: `".to_string();
                if let Some(g) = guess {
                    hint.push_str(&format!(" (write `- {}`)", quote_yaml(&g)));
                }
                diags.push(
                    Diagnostic::error(
                        item.pos,
                        p,
                        "a command must be a string, but YAML read this one as a mapping",
                    )
                    .with_hint(hint),
                );
            }
            Value::Null => diags.push(
                Diagnostic::error(item.pos, p, "empty command")
                    .with_hint("remove the empty `- ` line"),
            ),
            Value::Seq(_) => diags.push(
                Diagnostic::error(item.pos, p, "a command must be a string, found a list")
                    .with_hint(
                        "write one command per `- ` line; quote commands that start with `[`",
                    ),
            ),
            _ => {
                if let Some(s) = item.scalar_text() {
                    out.push(Located {
                        pos: item.pos,
                        value: s,
                    });
                }
            }
        }
    }
    out
}

/// A YAML double-quoted scalar for a hint.
fn quote_yaml(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

/// `ABORT`, `CONTINUE`, `RETRY`, `RETRY-5`, `RETRY-<regex>`, `RETRY-5-<regex>`. The keywords
/// are matched case-insensitively (AWS's own examples write `Retry-`); the regex is kept as is.
/// A RETRY pattern must compile, so a typo is found by `slipway validate`, not at run time.
fn checked_pattern(pattern: &str) -> Result<String, String> {
    regex::Regex::new(pattern)
        .map(|_| pattern.to_string())
        .map_err(|e| {
            format!(
                "retry pattern `{pattern}` is not a valid regular expression: {}",
                e.to_string()
                    .lines()
                    .last()
                    .unwrap_or("")
                    .trim_start_matches("error: ")
            )
        })
}

pub fn parse_on_failure(s: &str) -> Result<OnFailure, String> {
    let t = s.trim();
    if t.eq_ignore_ascii_case("ABORT") {
        return Ok(OnFailure::Abort);
    }
    if t.eq_ignore_ascii_case("CONTINUE") {
        return Ok(OnFailure::Continue);
    }
    if t.eq_ignore_ascii_case("RETRY") {
        return Ok(OnFailure::Retry {
            count: 3,
            pattern: None,
        });
    }
    let rest = match t.get(..6) {
        Some(head) if head.eq_ignore_ascii_case("RETRY-") => t.get(6..).unwrap_or(""),
        _ => return Err(format!("unknown `on-failure` value `{t}`")),
    };
    let count = |digits: &str| -> Result<u32, String> {
        match digits.parse::<u32>() {
            Ok(n) if n <= 100 => Ok(n),
            _ => Err(format!("retry count `{digits}` is out of range 0..=100")),
        }
    };
    let is_count = |d: &str| !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit());
    if rest.is_empty() {
        return Err(format!("`{t}` names neither a retry count nor a pattern"));
    }
    if is_count(rest) {
        return Ok(OnFailure::Retry {
            count: count(rest)?,
            pattern: None,
        });
    }
    if let Some((d, pattern)) = rest.split_once('-')
        && is_count(d)
    {
        if pattern.is_empty() {
            return Err(format!("`{t}` has an empty pattern after the retry count"));
        }
        return Ok(OnFailure::Retry {
            count: count(d)?,
            pattern: Some(checked_pattern(pattern)?),
        });
    }
    checked_pattern(rest)?;
    Ok(OnFailure::Retry {
        count: 3,
        pattern: Some(rest.to_string()),
    })
}

// ---------------------------------------------------------------------------------------------
// reports, artifacts, cache

fn read_reports(node: &Node, diags: &mut Diagnostics) -> Vec<Report> {
    let Some(mut m) = MapReader::new(node, "reports", diags) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for (i, (k, name, v)) in m
        .named("a report group name", diags)
        .into_iter()
        .enumerate()
    {
        if i == MAX_REPORT_GROUPS {
            diags.push(
                Diagnostic::warning(
                    k.pos,
                    join("reports", &name),
                    format!("more than {MAX_REPORT_GROUPS} report groups"),
                )
                .with_hint(
                    "AWS allows at most 5 report groups per project; Slipway reads them all",
                ),
            );
        }
        let path = join("reports", &name);
        let Some(mut r) = MapReader::new(v, &path, diags) else {
            continue;
        };
        let files = strings(&mut r, "files", diags);
        if files.is_empty() {
            if r.key_node("files").is_none() {
                missing(
                    &r,
                    "files",
                    "list the report files, e.g. `files: ['**/*.xml']`",
                    diags,
                );
            } else {
                diags.push(
                    Diagnostic::error(v.pos, join(&path, "files"), "`files` is empty")
                        .with_hint("list the report files, e.g. `files: ['**/*.xml']`"),
                );
            }
        }
        let base_directory = opt_string(&mut r, "base-directory", diags);
        let discard_paths = opt_bool(&mut r, "discard-paths", diags).unwrap_or(false);
        let mut file_format = ReportFormat::default();
        if let Some(n) = r.get("file-format") {
            let p = r.child_path("file-format");
            if let Some(s) = yaml::string(n, &p, diags) {
                match ReportFormat::parse(&s) {
                    Some(f) => file_format = f,
                    None => {
                        let names: Vec<&str> =
                            ReportFormat::ALL.iter().map(|f| f.as_str()).collect();
                        let upper = s.to_ascii_uppercase();
                        let mut d =
                            Diagnostic::error(n.pos, p, format!("unknown report format `{s}`"));
                        // `JUNIT` is far from `JUNITXML` by edit distance but plainly meant it.
                        let prefixed = names
                            .iter()
                            .copied()
                            .find(|c| !upper.is_empty() && c.starts_with(&upper));
                        d = match prefixed.or_else(|| did_you_mean(&upper, &names)) {
                            Some(c) => d.with_hint(format!("did you mean `{c}`?")),
                            None => d.with_hint(format!("expected one of: {}", names.join(", "))),
                        };
                        diags.push(d);
                    }
                }
            }
        }
        r.finish(REPORT_KEYS, diags);
        out.push(Report {
            name,
            files,
            base_directory,
            discard_paths,
            file_format,
        });
    }
    m.finish(&[], diags);
    out
}

fn read_artifacts(node: &Node, diags: &mut Diagnostics) -> Option<Artifacts> {
    let mut m = MapReader::new(node, "artifacts", diags)?;
    let primary = read_artifact_set(&mut m, None, diags);
    let mut secondary = Vec::new();
    if let Some(n) = m.get("secondary-artifacts") {
        let sp = m.child_path("secondary-artifacts");
        if let Some(mut sm) = MapReader::new(n, &sp, diags) {
            for (k, id, v) in sm.named("an artifact identifier", diags) {
                if !batch::valid_identifier(&id) {
                    diags.push(
                        Diagnostic::error(
                            k.pos,
                            join(&sp, &id),
                            format!("invalid artifact identifier `{id}`"),
                        )
                        .with_hint(batch::IDENTIFIER_RULE),
                    );
                }
                let p = join(&sp, &id);
                if let Some(mut am) = MapReader::new(v, &p, diags) {
                    let set = read_artifact_set(&mut am, Some(id), diags);
                    am.finish(&ARTIFACT_KEYS[..ARTIFACT_KEYS.len() - 2], diags);
                    secondary.push(set);
                }
            }
            sm.finish(&[], diags);
        }
    }
    m.finish(ARTIFACT_KEYS, diags);
    Some(Artifacts { primary, secondary })
}

fn read_artifact_set(
    m: &mut MapReader,
    id: Option<String>,
    diags: &mut Diagnostics,
) -> ArtifactSet {
    let files = strings(m, "files", diags);
    if files.is_empty() {
        let hint = if id.is_none() {
            "AWS requires `artifacts.files` even when only secondary artifacts are used, e.g. `files: ['**/*']`"
        } else {
            "list the files of this artifact, e.g. `files: ['dist/**/*']`"
        };
        if m.key_node("files").is_none() {
            missing(m, "files", hint, diags);
        } else if let Some(k) = m.key_node("files") {
            diags.push(
                Diagnostic::error(k.pos, m.child_path("files"), "`files` is empty").with_hint(hint),
            );
        }
    }
    let mut set = ArtifactSet {
        identifier: id,
        files,
        name: opt_string(m, "name", diags),
        discard_paths: opt_bool(m, "discard-paths", diags).unwrap_or(false),
        base_directory: opt_string(m, "base-directory", diags),
        exclude_paths: strings(m, "exclude-paths", diags),
        ..ArtifactSet::default()
    };
    if let Some(b) = opt_bool(m, "enable-symlinks", diags) {
        set.enable_symlinks = b;
        ignored(
            m,
            "enable-symlinks",
            "Slipway packages artifacts its own way",
            diags,
        );
    }
    if let Some(s) = opt_string(m, "s3-prefix", diags) {
        set.s3_prefix = Some(s);
        ignored(
            m,
            "s3-prefix",
            "artifacts go to Slipway's store, not to an S3 bucket path",
            diags,
        );
    }
    if set.identifier.is_none() && opt_string(m, "type", diags).is_some() {
        ignored(
            m,
            "type",
            "`artifacts.type` is deprecated since buildspec 0.2",
            diags,
        );
    }
    set
}

fn read_cache(node: &Node, diags: &mut Diagnostics) -> Option<Cache> {
    let mut m = MapReader::new(node, "cache", diags)?;
    let paths = strings(&mut m, "paths", diags);
    if paths.is_empty() {
        diags.push(
            Diagnostic::warning(
                m.key_node("paths").map_or(node.pos, |k| k.pos),
                "cache.paths",
                "the cache has no `paths`: nothing is cached",
            )
            .with_hint("list what to keep between builds, e.g. `paths: ['/root/.m2/**/*']`"),
        );
    }
    let key = opt_string(&mut m, "key", diags);
    let mut fallback_keys = Vec::new();
    if let Some(n) = m.get("fallback-keys") {
        let p = m.child_path("fallback-keys");
        let keys = yaml::string_list(n, &p, diags);
        if let Some(extra) = keys.get(MAX_FALLBACK_KEYS) {
            diags.push(
                Diagnostic::error(
                    extra.pos,
                    format!("{p}[{MAX_FALLBACK_KEYS}]"),
                    format!(
                        "at most {MAX_FALLBACK_KEYS} fallback keys are allowed, found {}",
                        keys.len()
                    ),
                )
                .with_hint("keep the five most useful prefixes"),
            );
        }
        if key.is_none() {
            if let Some(k) = m.key_node("fallback-keys") {
                diags.push(
                    Diagnostic::warning(k.pos, p, "`fallback-keys` is ignored without `key`")
                        .with_hint("add `key:`; fallback keys are only tried when it misses"),
                );
            }
        } else {
            fallback_keys = keys.into_iter().map(|l| l.value).collect();
        }
    }
    let mut action = CacheAction::RestoreAndSave;
    if let Some(n) = m.get("action") {
        let p = m.child_path("action");
        if let Some(s) = yaml::string(n, &p, diags) {
            match s.trim().to_ascii_lowercase().as_str() {
                "restore" => action = CacheAction::Restore,
                "save" => action = CacheAction::Save,
                _ => diags.push(
                    Diagnostic::error(n.pos, p, format!("unknown cache action `{s}`"))
                        .with_hint("use `restore` or `save`, or leave `action` out to do both"),
                ),
            }
        }
    }
    m.finish(CACHE_KEYS, diags);
    Some(Cache {
        paths,
        key,
        fallback_keys,
        action,
    })
}
