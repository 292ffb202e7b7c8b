//! `.slipway/pipeline.yml`: Slipway's pipeline format, after CodePipeline V2, parsed and validated.
//!
//! `parse` reads the file into a [`Pipeline`] and reports every problem at once, each with its
//! line, column and key path. The format is documented for users in `docs/pipeline.md`; keep
//! the two in step. Submodules: `filter` (trigger globs), `duration`, `cron`, `vars` (`#{ns.name}`).

mod cron;
mod duration;
mod filter;
#[cfg(test)]
mod tests;
pub mod vars;

use std::time::Duration;

use crate::diag::{Diagnostic, Diagnostics, Pos, did_you_mean};
use crate::yaml::{self, Located, MapReader, Node, Value, join};

pub use cron::{CRON_HELP, Cron};
pub use duration::{DURATION_FORMS, format_duration, parse_duration};
pub use filter::{Patterns, PullRequestEvent, PullRequestFilter, PushFilter};

/// Namespace of the pipeline variables: `#{variables.REGION}`, as CodePipeline spells it.
pub const VARIABLES_NAMESPACE: &str = "variables";
/// Namespace of the values Slipway sets for every execution.
pub const SLIPWAY_NAMESPACE: &str = "slipway";
/// What `#{slipway.NAME}` may name; the engine supplies each of these.
pub const SLIPWAY_VARIABLES: &[&str] = &["ExecutionId", "PipelineName", "SourceRevision"];
/// CodePipeline's reserved namespace, accepted so copied references keep working.
pub const CODEPIPELINE_NAMESPACE: &str = "codepipeline";
/// What `#{codepipeline.NAME}` may name (the same value as `#{slipway.ExecutionId}`).
pub const CODEPIPELINE_VARIABLES: &[&str] = &["PipelineExecutionId"];
/// The artifact every pipeline has: the checkout of the revision that started the execution.
pub const SOURCE_ARTIFACT: &str = "source";
/// Default buildspec path of a build action, relative to the repository root.
pub const DEFAULT_BUILDSPEC: &str = "buildspec.yml";
/// CodePipeline's manual approval timeout, which Slipway keeps as the default.
pub const DEFAULT_APPROVAL_TIMEOUT: Duration = Duration::from_secs(7 * 24 * 3600);

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pipeline {
    pub name: String,
    pub execution_mode: ExecutionMode,
    pub variables: Vec<Variable>,
    /// Empty: a push to the project's default branch starts the pipeline (see `starts_on_push`).
    pub triggers: Vec<Trigger>,
    pub stages: Vec<Stage>,
}

/// What happens when a new execution starts while another is running (CodePipeline V2).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum ExecutionMode {
    /// One at a time, first in first out.
    Queued,
    /// A newer execution replaces an older one waiting between stages.
    #[default]
    Superseded,
    /// Independent executions side by side.
    Parallel,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Variable {
    pub name: String,
    /// Absent: the variable must be given when the execution is started.
    pub default: Option<String>,
    pub description: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Trigger {
    Push(PushFilter),
    PullRequest(PullRequestFilter),
    Schedule(Schedule),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Schedule {
    /// Always five fields (macros such as `@daily` are expanded); see [`Cron`].
    pub cron: String,
    /// Absent: the project's default branch.
    pub branch: Option<String>,
    /// The IANA time zone whose wall clock `cron` reads (`Europe/Paris`); absent: UTC. Only its
    /// spelling is checked here; the server looks it up in the system's time zone database.
    pub timezone: Option<String>,
}

impl Schedule {
    pub fn parsed(&self) -> Result<Cron, String> {
        Cron::parse(&self.cron)
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Stage {
    pub name: String,
    pub actions: Vec<Action>,
    pub on_failure: StageFailure,
}

impl Stage {
    /// Same as [`Pipeline::stage_groups`].
    pub fn groups(&self) -> Vec<Vec<&Action>> {
        Pipeline::stage_groups(self)
    }
}

/// What a stage does when one of its actions fails (CodePipeline's `onFailure` condition).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum StageFailure {
    /// The execution fails.
    #[default]
    Fail,
    /// Run the failed actions again, up to this many times, then fail.
    Retry(u32),
    /// Redeploy the stage with the revision of its last successful execution, then fail.
    Rollback,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Action {
    pub name: String,
    /// Where the action's mapping starts in the file, for messages about it at run time.
    pub pos: Pos,
    pub kind: ActionKind,
    /// 1 or more; actions of one stage with the same run order run in parallel.
    pub run_order: u32,
    /// Artifact names; `source` is the revision's checkout. Empty: the action sees `source`.
    pub inputs: Vec<String>,
    /// Artifact names this action produces (build actions only).
    pub outputs: Vec<String>,
    /// Its output variables are `#{namespace.NAME}`.
    pub namespace: Option<String>,
    /// Absent: [`Action::effective_timeout`] gives the default of its type.
    pub timeout: Option<Duration>,
    pub retry: RetryPolicy,
}

impl Action {
    /// The timeout set, or the default of the action's type: build and image 8 h (CodeBuild's
    /// default), deploy 1 h, approval 7 days (CodePipeline's).
    pub fn effective_timeout(&self) -> Duration {
        self.timeout.unwrap_or(match &self.kind {
            ActionKind::Build(_) | ActionKind::Image(_) => Duration::from_secs(8 * 3600),
            ActionKind::Deploy(_) => Duration::from_secs(3600),
            ActionKind::Approval(a) => a.timeout.unwrap_or(DEFAULT_APPROVAL_TIMEOUT),
        })
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Total tries, the first included: 1 means no retry.
    pub attempts: u32,
    /// Which failures are retried; empty when `attempts` is 1.
    pub on: Vec<RetryOn>,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            attempts: 1,
            on: Vec::new(),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RetryOn {
    /// The executor, agent or engine failed (an `Err`, not a failed command).
    Infrastructure,
    /// The action ran past its timeout.
    Timeout,
    /// Any failure, a failed command included.
    Any,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ActionKind {
    Build(BuildAction),
    Image(ImageAction),
    Deploy(DeployAction),
    Approval(ApprovalAction),
}

impl ActionKind {
    /// The `type:` value that selects this kind.
    pub fn type_name(&self) -> &'static str {
        match self {
            Self::Build(_) => "build",
            Self::Image(_) => "image",
            Self::Deploy(_) => "deploy",
            Self::Approval(_) => "approval",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BuildAction {
    /// Path of the buildspec in the primary input, default `buildspec.yml`.
    pub buildspec: String,
    pub image: Option<String>,
    /// Absent: docker when `image` or `services` is set, otherwise the runner's default.
    pub executor: Option<ExecutorChoice>,
    pub env: Vec<(String, String)>,
    pub privileged: bool,
    pub services: Vec<ServiceSpec>,
    /// Labels an agent must have to run this build (`runs-on`); empty: the server's
    /// embedded runner runs it.
    pub runs_on: Vec<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ExecutorChoice {
    Local,
    Docker,
}

/// A container started next to a build (a database for tests), reachable by its `name`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServiceSpec {
    pub name: String,
    pub image: String,
    pub env: Vec<(String, String)>,
    /// Absent: the image's own command.
    pub command: Option<Vec<String>>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImageAction {
    /// Relative to the primary input; default `Dockerfile`.
    pub dockerfile: String,
    /// Build context directory, relative to the primary input; default `.`.
    pub context: String,
    /// Repository in Slipway's registry; default the pipeline's name.
    pub repository: String,
    /// Default `["#{slipway.SourceRevision}"]`.
    pub tags: Vec<String>,
    pub build_args: Vec<(String, String)>,
    /// The Dockerfile stage to build (`docker build --target`).
    pub target: Option<String>,
    /// Another registry to push to (`host[:port]`); default Slipway's own.
    pub registry: Option<String>,
    /// The secret (`USER:PASSWORD`) that signs in to `registry`.
    pub credentials: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeployAction {
    pub environment: String,
    /// Services of `.slipway/services.yml` to deploy; empty = all of the environment's.
    pub services: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApprovalAction {
    pub message: Option<String>,
    /// Parsed files always set it (default 7 days); `None` in a hand-built value means 7 days.
    pub timeout: Option<Duration>,
}

impl Pipeline {
    /// The stage's actions grouped by run order, ascending; a group's actions run in parallel.
    /// Within a group, actions keep their order in the file.
    pub fn stage_groups(stage: &Stage) -> Vec<Vec<&Action>> {
        let mut orders: Vec<u32> = stage.actions.iter().map(|a| a.run_order).collect();
        orders.sort_unstable();
        orders.dedup();
        orders
            .into_iter()
            .map(|o| stage.actions.iter().filter(|a| a.run_order == o).collect())
            .collect()
    }

    pub fn stage(&self, name: &str) -> Option<&Stage> {
        self.stages.iter().find(|s| s.name == name)
    }

    /// Whether a push of `git_ref` (`refs/heads/x`, `refs/tags/y`) changing `changed_paths` starts
    /// an execution. With no triggers, only pushes to `default_branch` do, as CodePipeline's
    /// source action watches its one branch.
    pub fn starts_on_push(
        &self,
        git_ref: &str,
        changed_paths: &[&str],
        default_branch: &str,
    ) -> bool {
        if self.triggers.is_empty() {
            let branch = git_ref.strip_prefix("refs/heads/").unwrap_or(git_ref);
            return branch == default_branch && !git_ref.starts_with("refs/tags/");
        }
        self.triggers.iter().any(|t| match t {
            Trigger::Push(f) => f.matches(git_ref, changed_paths),
            _ => false,
        })
    }
}

/// The pipeline of a repository that has a buildspec and no `.slipway/pipeline.yml`: one stage
/// `build` with one build action `build` running `buildspec`, started by pushes to the default branch.
pub fn implicit(name: &str, buildspec: &str) -> Pipeline {
    Pipeline {
        name: name.to_string(),
        execution_mode: ExecutionMode::default(),
        variables: Vec::new(),
        triggers: Vec::new(),
        stages: vec![Stage {
            name: "build".into(),
            on_failure: StageFailure::Fail,
            actions: vec![Action {
                name: "build".into(),
                pos: Pos { line: 1, column: 1 },
                kind: ActionKind::Build(BuildAction {
                    buildspec: buildspec.to_string(),
                    image: None,
                    executor: None,
                    env: Vec::new(),
                    privileged: false,
                    services: Vec::new(),
                    runs_on: Vec::new(),
                }),
                run_order: 1,
                inputs: Vec::new(),
                outputs: Vec::new(),
                namespace: None,
                timeout: None,
                retry: RetryPolicy::default(),
            }],
        }],
    }
}

/// Parses and validates `.slipway/pipeline.yml`. The pipeline is `Some` when no diagnostic is an
/// error; the diagnostics (warnings included) come sorted by position.
pub fn parse(text: &str) -> (Option<Pipeline>, Vec<Diagnostic>) {
    let root = match yaml::parse(text) {
        Ok(n) => n,
        Err(d) => return (None, vec![d]),
    };
    let mut r = Reader {
        ..Reader::default()
    };
    let pipeline = r.pipeline(&root);
    let ok = !r.diags.has_errors();
    (pipeline.filter(|_| ok), r.diags.into_sorted())
}

// ---------------------------------------------------------------------------------------------
// Reading

const TOP_KEYS: &[&str] = &["name", "execution-mode", "variables", "triggers", "stages"];
const STAGE_KEYS: &[&str] = &["name", "actions", "on-failure"];
const VARIABLE_KEYS: &[&str] = &["name", "default", "description"];
const TRIGGER_KINDS: &[&str] = &["push", "pull-request", "schedule"];
const PUSH_KEYS: &[&str] = &["branches", "tags", "file-paths"];
const PULL_REQUEST_KEYS: &[&str] = &["events", "branches", "file-paths"];
const SCHEDULE_KEYS: &[&str] = &["cron", "branch", "timezone"];
const PATTERN_KEYS: &[&str] = &["includes", "excludes"];
const RETRY_KEYS: &[&str] = &["attempts", "on"];
const SERVICE_KEYS: &[&str] = &["name", "image", "env", "command"];

/// Keys every action type takes.
const ACTION_KEYS: &[&str] = &["name", "type", "run-order", "namespace", "timeout"];
/// Keys that only some types take: (key, types that take it).
const TYPED_KEYS: &[(&str, &[Type])] = &[
    ("inputs", &[Type::Build, Type::Image, Type::Deploy]),
    ("outputs", &[Type::Build]),
    ("retry", &[Type::Build, Type::Image, Type::Deploy]),
    ("buildspec", &[Type::Build]),
    ("image", &[Type::Build]),
    ("executor", &[Type::Build]),
    ("env", &[Type::Build]),
    ("privileged", &[Type::Build]),
    ("runs-on", &[Type::Build]),
    ("services", &[Type::Build, Type::Deploy]),
    ("dockerfile", &[Type::Image]),
    ("context", &[Type::Image]),
    ("repository", &[Type::Image]),
    ("tags", &[Type::Image]),
    ("build-args", &[Type::Image]),
    ("target", &[Type::Image]),
    ("registry", &[Type::Image]),
    ("credentials", &[Type::Image]),
    ("environment", &[Type::Deploy]),
    ("message", &[Type::Approval]),
];

const NAME_HINT: &str = "use letters, digits, `_`, `-` and `.`, at most 100 characters";
const NAME_HINT_NO_DOT: &str = "use letters, digits, `_` and `-`, at most 100 characters (a `.` would end the namespace in `#{namespace.name}`)";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Type {
    Build,
    Image,
    Deploy,
    Approval,
}

impl Type {
    fn name(self) -> &'static str {
        match self {
            Type::Build => "build",
            Type::Image => "image",
            Type::Deploy => "deploy",
            Type::Approval => "approval",
        }
    }

    fn keys(self) -> Vec<&'static str> {
        let mut keys = ACTION_KEYS.to_vec();
        keys.extend(
            TYPED_KEYS
                .iter()
                .filter(|(_, types)| types.contains(&self))
                .map(|(k, _)| *k),
        );
        keys
    }
}

/// A string field of an action, kept for the `#{ns.name}` check once all actions are known.
struct Field {
    pos: Pos,
    path: String,
    text: String,
}

/// What the cross-action checks need to know about one action.
struct ActionInfo {
    stage: usize,
    run_order: u32,
    /// `stage.action`, for messages.
    label: String,
    namespace: Option<(Located<String>, String)>,
    inputs: Vec<(Located<String>, String)>,
    outputs: Vec<(Located<String>, String)>,
    fields: Vec<Field>,
}

impl ActionInfo {
    /// Whether this action finishes before `other` starts.
    fn runs_before(&self, other: &ActionInfo) -> bool {
        self.stage < other.stage || (self.stage == other.stage && self.run_order < other.run_order)
    }
}

#[derive(Default)]
struct Reader {
    diags: Diagnostics,
    /// String fields of the action being read.
    fields: Vec<Field>,
    pipeline_name: String,
    execution_mode: ExecutionMode,
    variable_names: Vec<String>,
    infos: Vec<ActionInfo>,
}

fn valid_name(s: &str, allow_dot: bool) -> bool {
    !s.is_empty()
        && s.len() <= 100
        && s.bytes().all(|b| {
            b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || (allow_dot && b == b'.')
        })
}

/// OCI distribution's repository name grammar, without a registry host.
fn valid_repository(s: &str) -> bool {
    s.len() <= 255
        && s.split('/').all(|part| {
            let b = part.as_bytes();
            !b.is_empty()
                && b[0].is_ascii_alphanumeric()
                && b[b.len() - 1].is_ascii_alphanumeric()
                && b.iter().all(|&c| {
                    c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, b'.' | b'_' | b'-')
                })
        })
}

/// OCI distribution's tag grammar.
fn valid_tag(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 128
        && (b[0].is_ascii_alphanumeric() || b[0] == b'_')
        && b.iter()
            .all(|&c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'_' | b'-'))
}

fn list_or_none(items: &[String]) -> String {
    if items.is_empty() {
        "none".to_string()
    } else {
        items.join(", ")
    }
}

impl Reader {
    fn string(&mut self, node: &Node, path: &str) -> Option<String> {
        yaml::string(node, path, &mut self.diags)
    }

    fn error(&mut self, pos: Pos, path: &str, message: impl Into<String>) -> &mut Diagnostic {
        self.diags.push(Diagnostic::error(pos, path, message));
        self.diags.0.last_mut().expect("just pushed")
    }

    fn missing(&mut self, m: &MapReader, key: &str, hint: &str) {
        let path = m.child_path(key);
        let pos = m.node.pos;
        let d = self.error(pos, &path, format!("missing required key `{key}`"));
        if !hint.is_empty() {
            d.hint = Some(hint.to_string());
        }
    }

    /// A string field of an action: read, and kept for the reference check.
    fn text(&mut self, node: &Node, path: &str) -> Option<String> {
        let s = self.string(node, path)?;
        self.fields.push(Field {
            pos: node.pos,
            path: path.to_string(),
            text: s.clone(),
        });
        Some(s)
    }

    /// A string that must not be empty.
    fn non_empty(&mut self, node: &Node, path: &str, what: &str) -> Option<String> {
        let s = self.text(node, path)?;
        if s.trim().is_empty() {
            self.error(node.pos, path, format!("{what} must not be empty"));
            return None;
        }
        Some(s)
    }

    fn check_name(
        &mut self,
        pos: Pos,
        path: &str,
        what: &str,
        value: &str,
        allow_dot: bool,
    ) -> bool {
        if valid_name(value, allow_dot) {
            return true;
        }
        self.error(pos, path, format!("`{value}` is not a valid {what} name"))
            .hint = Some(
            if allow_dot {
                NAME_HINT
            } else {
                NAME_HINT_NO_DOT
            }
            .to_string(),
        );
        false
    }

    /// A name given under `key` (required).
    fn required_name(
        &mut self,
        m: &mut MapReader,
        key: &str,
        what: &str,
    ) -> Option<Located<String>> {
        let Some(node) = m.get(key) else {
            self.missing(m, key, "");
            return None;
        };
        let path = m.child_path(key);
        let value = self.string(node, &path)?;
        let pos = node.pos;
        self.check_name(pos, &path, what, &value, true)
            .then_some(Located { pos, value })
    }

    /// One of a closed set of words, compared without case (so CodePipeline's `QUEUED` reads too).
    fn keyword<T: Copy>(&mut self, node: &Node, path: &str, options: &[(&str, T)]) -> Option<T> {
        let s = self.string(node, path)?;
        let lower = s.to_ascii_lowercase();
        if let Some((_, v)) = options.iter().find(|(k, _)| *k == lower) {
            return Some(*v);
        }
        let names: Vec<&str> = options.iter().map(|(k, _)| *k).collect();
        let hint = match did_you_mean(&lower, &names) {
            Some(k) => format!("did you mean `{k}`?"),
            None => format!("expected one of: {}", names.join(", ")),
        };
        self.error(node.pos, path, format!("unknown value `{s}`"))
            .hint = Some(hint);
        None
    }

    fn duration(&mut self, node: &Node, path: &str) -> Option<Duration> {
        let s = self.string(node, path)?;
        match parse_duration(&s) {
            Ok(d) if d.is_zero() => {
                self.error(node.pos, path, "a timeout must be longer than zero");
                None
            }
            Ok(d) => Some(d),
            Err(e) => {
                let hint = if s.bytes().all(|b| b.is_ascii_digit()) {
                    format!("add a unit: `{s}m` or `{s}s`")
                } else {
                    format!("write {DURATION_FORMS}")
                };
                self.error(node.pos, path, e).hint = Some(hint);
                None
            }
        }
    }

    fn bounded(&mut self, node: &Node, path: &str, lo: u64, hi: u64, what: &str) -> Option<u32> {
        let n = yaml::uint(node, path, &mut self.diags)?;
        if n < lo || n > hi {
            self.error(
                node.pos,
                path,
                format!("{what} must be between {lo} and {hi}, found {n}"),
            );
            return None;
        }
        Some(n as u32)
    }

    // -- top level ------------------------------------------------------------------------

    fn pipeline(&mut self, root: &Node) -> Option<Pipeline> {
        match &root.value {
            Value::Map(_) => {}
            Value::Null => {
                self.error(root.pos, "", "the file is empty").hint = Some(
                    "a pipeline needs at least `name` and `stages`; see docs/pipeline.md".into(),
                );
                return None;
            }
            _ => {
                self.error(
                    root.pos,
                    "",
                    format!(
                        "expected a mapping with `name` and `stages`, found {}",
                        root.kind()
                    ),
                )
                .hint = Some("start the file with `name: <pipeline>` then `stages:`".into());
                return None;
            }
        }
        let mut m = MapReader::new(root, "", &mut self.diags)?;
        let name = self.required_name(&mut m, "name", "pipeline");
        self.pipeline_name = name.as_ref().map(|n| n.value.clone()).unwrap_or_default();
        if let Some(n) = m.get("execution-mode") {
            self.execution_mode = self
                .keyword(
                    n,
                    "execution-mode",
                    &[
                        ("queued", ExecutionMode::Queued),
                        ("superseded", ExecutionMode::Superseded),
                        ("parallel", ExecutionMode::Parallel),
                    ],
                )
                .unwrap_or_default();
        }
        let variables = m
            .get("variables")
            .map(|n| self.variables(n))
            .unwrap_or_default();
        let triggers = m
            .get("triggers")
            .map(|n| self.triggers(n))
            .unwrap_or_default();
        let stages_node = m.get("stages");
        if stages_node.is_none() {
            self.missing(
                &m,
                "stages",
                "a pipeline has at least one stage with one action",
            );
        }
        m.finish(TOP_KEYS, &mut self.diags);
        let stages = stages_node.map(|n| self.stages(n)).unwrap_or_default();
        self.cross_check();
        Some(Pipeline {
            name: name?.value,
            execution_mode: self.execution_mode,
            variables,
            triggers,
            stages,
        })
    }

    fn variables(&mut self, node: &Node) -> Vec<Variable> {
        let path = "variables";
        let mut out: Vec<(Variable, Pos)> = Vec::new();
        let mut add = |r: &mut Reader, v: Variable, pos: Pos, p: &str| {
            if !r.check_name(pos, p, "variable", &v.name, false) {
                return;
            }
            if let Some((_, first)) = out.iter().find(|(o, _)| o.name == v.name) {
                let first = *first;
                r.error(pos, p, format!("variable `{}` is declared twice", v.name))
                    .hint = Some(format!("first declared at line {}", first.line));
                return;
            }
            out.push((v, pos));
        };
        match &node.value {
            Value::Null => {}
            // The short form: `variables: { REGION: local, TOKEN: ~ }`.
            Value::Map(_) => {
                let Some(mut m) = MapReader::new(node, path, &mut self.diags) else {
                    return Vec::new();
                };
                for (k, name, v) in m.named("a variable name", &mut self.diags) {
                    let p = join(path, &name);
                    let default = match v.value {
                        Value::Null => None,
                        _ => self.string(v, &p),
                    };
                    add(
                        self,
                        Variable {
                            name,
                            default,
                            description: None,
                        },
                        k.pos,
                        &p,
                    );
                }
            }
            Value::Seq(items) => {
                for (i, item) in items.iter().enumerate() {
                    let p = format!("{path}[{i}]");
                    let Some(mut m) = MapReader::new(item, &p, &mut self.diags) else {
                        continue;
                    };
                    let name = m.get("name");
                    let default = m
                        .get("default")
                        .filter(|d| d.value != Value::Null)
                        .and_then(|d| self.string(d, &m.child_path("default")));
                    let description = m
                        .get("description")
                        .and_then(|d| self.string(d, &m.child_path("description")));
                    match name {
                        None => self.missing(&m, "name", ""),
                        Some(n) => {
                            let np = m.child_path("name");
                            if let Some(name) = self.string(n, &np) {
                                add(
                                    self,
                                    Variable {
                                        name,
                                        default,
                                        description,
                                    },
                                    n.pos,
                                    &np,
                                );
                            }
                        }
                    }
                    m.finish(VARIABLE_KEYS, &mut self.diags);
                }
            }
            _ => {
                self.error(
                    node.pos,
                    path,
                    format!(
                        "expected a list of `{{ name, default }}`, found {}",
                        node.kind()
                    ),
                );
            }
        }
        self.variable_names = out.iter().map(|(v, _)| v.name.clone()).collect();
        out.into_iter().map(|(v, _)| v).collect()
    }

    // -- triggers -------------------------------------------------------------------------

    fn triggers(&mut self, node: &Node) -> Vec<Trigger> {
        let items = match &node.value {
            Value::Null => return Vec::new(),
            Value::Seq(items) => items,
            _ => {
                self.error(
                    node.pos,
                    "triggers",
                    format!("expected a list, found {}", node.kind()),
                )
                .hint = Some(
                    "write `triggers:` then items such as `- push: { branches: [main] }`".into(),
                );
                return Vec::new();
            }
        };
        let mut out = Vec::new();
        for (i, item) in items.iter().enumerate() {
            let path = format!("triggers[{i}]");
            // `- push` alone is a push trigger with no filter.
            let (kind, kind_pos, body, null) = match &item.value {
                Value::String(s) => (
                    s.clone(),
                    item.pos,
                    item,
                    Node {
                        pos: item.pos,
                        value: Value::Null,
                    },
                ),
                Value::Map(entries) if entries.len() == 1 => {
                    let (k, v) = &entries[0];
                    (
                        k.scalar_text().unwrap_or_default(),
                        k.pos,
                        v,
                        Node {
                            pos: v.pos,
                            value: Value::Null,
                        },
                    )
                }
                _ => {
                    self.error(
                        item.pos,
                        &path,
                        format!("expected one of `push`, `pull-request` or `schedule` with its filter, found {}", item.kind()),
                    )
                    .hint = Some("one trigger per list item, e.g. `- push: { branches: [main] }`".into());
                    continue;
                }
            };
            let body = if matches!(item.value, Value::String(_)) {
                &null
            } else {
                body
            };
            let kpath = join(&path, &kind);
            let t = match kind.as_str() {
                "push" => self.push(body, &kpath).map(Trigger::Push),
                "pull-request" => self.pull_request(body, &kpath).map(Trigger::PullRequest),
                "schedule" => self.schedule(body, &kpath).map(Trigger::Schedule),
                _ => {
                    let hint = match did_you_mean(&kind, TRIGGER_KINDS) {
                        Some(k) => format!("did you mean `{k}`?"),
                        None => format!("expected one of: {}", TRIGGER_KINDS.join(", ")),
                    };
                    self.error(kind_pos, &kpath, format!("unknown trigger `{kind}`"))
                        .hint = Some(hint);
                    None
                }
            };
            out.extend(t);
        }
        out
    }

    fn push(&mut self, node: &Node, path: &str) -> Option<PushFilter> {
        let mut m = MapReader::new(node, path, &mut self.diags)?;
        let f = PushFilter {
            branches: m
                .get("branches")
                .and_then(|n| self.patterns(n, &join(path, "branches"))),
            tags: m
                .get("tags")
                .and_then(|n| self.patterns(n, &join(path, "tags"))),
            file_paths: m
                .get("file-paths")
                .and_then(|n| self.patterns(n, &join(path, "file-paths"))),
        };
        if f.tags.is_some() && f.branches.is_none() && f.file_paths.is_some() {
            // A tag push changes no files, so the paths would never be looked at.
            let pos = m.key_node("file-paths").map_or(node.pos, |k| k.pos);
            self.diags.push(
                Diagnostic::warning(
                    pos,
                    join(path, "file-paths"),
                    "`file-paths` has no effect on tag pushes",
                )
                .with_hint("add `branches` for branch pushes, or remove `file-paths`"),
            );
        }
        m.finish(PUSH_KEYS, &mut self.diags);
        Some(f)
    }

    fn pull_request(&mut self, node: &Node, path: &str) -> Option<PullRequestFilter> {
        let mut m = MapReader::new(node, path, &mut self.diags)?;
        let events = match m.get("events") {
            None => PullRequestEvent::ALL.to_vec(),
            Some(n) => {
                let ep = join(path, "events");
                let mut events = Vec::new();
                let listed = yaml::string_list(n, &ep, &mut self.diags);
                for (i, e) in listed.iter().enumerate() {
                    let node = Node {
                        pos: e.pos,
                        value: Value::String(e.value.clone()),
                    };
                    let opts = PullRequestEvent::ALL.map(|e| (e.as_str(), e));
                    if let Some(ev) = self.keyword(&node, &format!("{ep}[{i}]"), &opts)
                        && !events.contains(&ev)
                    {
                        events.push(ev);
                    }
                }
                if listed.is_empty() && matches!(n.value, Value::Seq(_) | Value::Null) {
                    self.error(n.pos, &ep, "no events listed").hint = Some(
                        "list some of opened, updated, closed, or remove `events` for all three"
                            .into(),
                    );
                }
                events
            }
        };
        let f = PullRequestFilter {
            events,
            branches: m
                .get("branches")
                .and_then(|n| self.patterns(n, &join(path, "branches"))),
            file_paths: m
                .get("file-paths")
                .and_then(|n| self.patterns(n, &join(path, "file-paths"))),
        };
        m.finish(PULL_REQUEST_KEYS, &mut self.diags);
        Some(f)
    }

    fn schedule(&mut self, node: &Node, path: &str) -> Option<Schedule> {
        // The short form: `schedule: "0 3 * * *"`.
        let (cron_node, branch, timezone) = if let Value::String(_) = node.value {
            (Some(node), None, None)
        } else {
            let mut m = MapReader::new(node, path, &mut self.diags)?;
            let c = m.get("cron");
            if c.is_none() {
                self.missing(&m, "cron", CRON_HELP);
            }
            let branch = m.get("branch").and_then(|b| {
                let bp = join(path, "branch");
                let s = self.string(b, &bp)?;
                if s.trim().is_empty() || s.contains(char::is_whitespace) || s.starts_with("refs/")
                {
                    self.error(b.pos, &bp, format!("`{s}` is not a branch name"))
                        .hint = Some("write the branch's short name, e.g. `main`".into());
                    return None;
                }
                Some(s)
            });
            let timezone = m.get("timezone").and_then(|t| {
                let tp = join(path, "timezone");
                let s = self.string(t, &tp)?;
                let plausible = !s.is_empty()
                    && !s.starts_with('/')
                    && !s.ends_with('/')
                    && !s.contains("..")
                    && s.chars()
                        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '/' | '_' | '-' | '+'));
                if !plausible {
                    self.error(t.pos, &tp, format!("`{s}` is not a time zone name"))
                        .hint = Some(
                        "an IANA name such as `UTC`, `Europe/Paris` or `America/New_York`".into(),
                    );
                    return None;
                }
                Some(s)
            });
            m.finish(SCHEDULE_KEYS, &mut self.diags);
            (c, branch, timezone)
        };
        let cron_node = cron_node?;
        let cp = if matches!(node.value, Value::String(_)) {
            path.to_string()
        } else {
            join(path, "cron")
        };
        let expr = self.string(cron_node, &cp)?;
        match Cron::parse(&expr) {
            Ok(_) => Some(Schedule {
                cron: cron::expand_macro(&expr)
                    .map(str::to_string)
                    .unwrap_or_else(|| expr.split_whitespace().collect::<Vec<_>>().join(" ")),
                branch,
                timezone,
            }),
            Err(e) => {
                self.error(
                    cron_node.pos,
                    &cp,
                    format!("invalid cron expression `{expr}`: {e}"),
                )
                .hint = Some(CRON_HELP.into());
                None
            }
        }
    }

    /// `{ includes, excludes }`, or a list (or one string) as the includes alone.
    fn patterns(&mut self, node: &Node, path: &str) -> Option<Patterns> {
        let mut p = Patterns::default();
        if let Value::Map(_) = node.value {
            let mut m = MapReader::new(node, path, &mut self.diags)?;
            if let Some(n) = m.get("includes") {
                p.includes = self.globs(n, &join(path, "includes"));
            }
            if let Some(n) = m.get("excludes") {
                p.excludes = self.globs(n, &join(path, "excludes"));
            }
            m.finish(PATTERN_KEYS, &mut self.diags);
        } else {
            p.includes = self.globs(node, path);
        }
        Some(p)
    }

    fn globs(&mut self, node: &Node, path: &str) -> Vec<String> {
        let mut out = Vec::new();
        let items = yaml::string_list(node, path, &mut self.diags);
        let single = !matches!(node.value, Value::Seq(_));
        for (i, g) in items.into_iter().enumerate() {
            let p = if single {
                path.to_string()
            } else {
                format!("{path}[{i}]")
            };
            if g.value.is_empty() {
                self.error(g.pos, &p, "empty pattern").hint =
                    Some("remove it; an empty `includes` already means everything".into());
                continue;
            }
            match filter::compile(&g.value) {
                Ok(_) => out.push(g.value),
                Err(e) => {
                    self.error(g.pos, &p, format!("invalid glob `{}`: {e}", g.value)).hint =
                        Some("`*` matches within one path segment, `**` across `/`, `?` one character, `[ab]` a set".into());
                }
            }
        }
        out
    }

    // -- stages and actions ---------------------------------------------------------------

    fn stages(&mut self, node: &Node) -> Vec<Stage> {
        let items = match &node.value {
            Value::Seq(items) if !items.is_empty() => items,
            Value::Seq(_) | Value::Null => {
                self.error(node.pos, "stages", "a pipeline needs at least one stage")
                    .hint = Some(
                    "e.g. `stages: [ { name: build, actions: [ { name: build, type: build } ] } ]`"
                        .into(),
                );
                return Vec::new();
            }
            _ => {
                self.error(
                    node.pos,
                    "stages",
                    format!("expected a list of stages, found {}", node.kind()),
                );
                return Vec::new();
            }
        };
        let mut out: Vec<Stage> = Vec::new();
        let mut seen: Vec<(String, Pos)> = Vec::new();
        for (i, item) in items.iter().enumerate() {
            let path = format!("stages[{i}]");
            let Some(mut m) = MapReader::new(item, &path, &mut self.diags) else {
                continue;
            };
            let name = self.required_name(&mut m, "name", "stage");
            if let Some(n) = &name {
                if let Some((_, first)) = seen.iter().find(|(s, _)| *s == n.value) {
                    let first = *first;
                    self.error(
                        n.pos,
                        &m.child_path("name"),
                        format!("stage `{}` is defined twice", n.value),
                    )
                    .hint = Some(format!(
                        "stage names are unique; the first is at line {}",
                        first.line
                    ));
                } else {
                    seen.push((n.value.clone(), n.pos));
                }
            }
            let on_failure = m
                .get("on-failure")
                .and_then(|n| self.on_failure(n, &join(&path, "on-failure")))
                .unwrap_or_default();
            let stage_name = name.as_ref().map(|n| n.value.clone()).unwrap_or_default();
            let actions = match m.get("actions") {
                None => {
                    self.missing(&m, "actions", "a stage has at least one action");
                    Vec::new()
                }
                Some(n) => self.actions(n, &join(&path, "actions"), i, &stage_name),
            };
            m.finish(STAGE_KEYS, &mut self.diags);
            out.push(Stage {
                name: stage_name,
                actions,
                on_failure,
            });
        }
        out
    }

    fn on_failure(&mut self, node: &Node, path: &str) -> Option<StageFailure> {
        const FORMS: &str = "write `fail`, `rollback`, `retry`, `retry 2` or `{ retry: 2 }`";
        let result = match &node.value {
            Value::Map(_) => {
                let mut m = MapReader::new(node, path, &mut self.diags)?;
                let n = m.get("retry");
                if n.is_none() {
                    self.missing(&m, "retry", FORMS);
                }
                m.finish(&["retry"], &mut self.diags);
                match n {
                    None => return None,
                    Some(n) => StageFailure::Retry(self.bounded(
                        n,
                        &join(path, "retry"),
                        1,
                        10,
                        "the number of stage retries",
                    )?),
                }
            }
            _ => {
                let s = self.string(node, path)?;
                let words: Vec<&str> = s.split_whitespace().collect();
                match words.as_slice() {
                    ["fail"] => StageFailure::Fail,
                    ["rollback"] => StageFailure::Rollback,
                    ["retry"] => StageFailure::Retry(1),
                    ["retry", n] => match n.parse::<u32>() {
                        Ok(n @ 1..=10) => StageFailure::Retry(n),
                        _ => {
                            self.error(node.pos, path, format!("the number of stage retries must be between 1 and 10, found `{n}`"));
                            return None;
                        }
                    },
                    _ => {
                        self.error(
                            node.pos,
                            path,
                            format!("unknown stage failure action `{s}`"),
                        )
                        .hint = Some(FORMS.into());
                        return None;
                    }
                }
            }
        };
        if result == StageFailure::Rollback && self.execution_mode == ExecutionMode::Parallel {
            self.error(node.pos, path, "`on-failure: rollback` is not allowed with `execution-mode: parallel`")
                .hint = Some("parallel executions have no single last good revision to roll back to (as in CodePipeline); use `queued` or `superseded`, or `fail`".into());
            return None;
        }
        Some(result)
    }

    fn actions(&mut self, node: &Node, path: &str, stage: usize, stage_name: &str) -> Vec<Action> {
        let items = match &node.value {
            Value::Seq(items) if !items.is_empty() => items,
            Value::Seq(_) | Value::Null => {
                self.error(node.pos, path, "a stage needs at least one action")
                    .hint = Some("e.g. `- { name: test, type: build }`".into());
                return Vec::new();
            }
            _ => {
                self.error(
                    node.pos,
                    path,
                    format!("expected a list of actions, found {}", node.kind()),
                );
                return Vec::new();
            }
        };
        let mut out: Vec<Action> = Vec::new();
        let mut seen: Vec<(String, Pos)> = Vec::new();
        for (i, item) in items.iter().enumerate() {
            let ap = format!("{path}[{i}]");
            let Some((action, name_pos)) = self.action(item, &ap, stage, stage_name) else {
                continue;
            };
            if let Some((_, first)) = seen.iter().find(|(n, _)| *n == action.name) {
                let first = *first;
                self.error(
                    name_pos,
                    &join(&ap, "name"),
                    format!(
                        "action `{}` is defined twice in stage `{stage_name}`",
                        action.name
                    ),
                )
                .hint = Some(format!(
                    "action names are unique within a stage; the first is at line {}",
                    first.line
                ));
            } else {
                seen.push((action.name.clone(), name_pos));
            }
            out.push(action);
        }
        out
    }

    /// One action and the position of its name.
    fn action(
        &mut self,
        node: &Node,
        path: &str,
        stage: usize,
        stage_name: &str,
    ) -> Option<(Action, Pos)> {
        self.fields.clear();
        let mut m = MapReader::new(node, path, &mut self.diags)?;
        let name = self.required_name(&mut m, "name", "action");
        let ty = match m.get("type") {
            None => {
                self.missing(&m, "type", "one of: build, image, deploy, approval");
                None
            }
            Some(n) => self.keyword(
                n,
                &m.child_path("type"),
                &[
                    ("build", Type::Build),
                    ("image", Type::Image),
                    ("deploy", Type::Deploy),
                    ("approval", Type::Approval),
                ],
            ),
        };
        let run_order = m
            .get("run-order")
            .and_then(|n| self.bounded(n, &join(path, "run-order"), 1, 999, "run-order"))
            .unwrap_or(1);
        let inputs = m
            .get("inputs")
            .map(|n| self.artifact_list(n, &join(path, "inputs")))
            .unwrap_or_default();
        let outputs = m
            .get("outputs")
            .map(|n| self.artifact_list(n, &join(path, "outputs")))
            .unwrap_or_default();
        let namespace = m.get("namespace").and_then(|n| {
            let np = join(path, "namespace");
            let s = self.string(n, &np)?;
            let pos = n.pos;
            self.check_name(pos, &np, "namespace", &s, false)
                .then_some((Located { pos, value: s }, np))
        });
        let timeout = m
            .get("timeout")
            .and_then(|n| self.duration(n, &join(path, "timeout")));
        let retry = m
            .get("retry")
            .and_then(|n| self.retry(n, &join(path, "retry")))
            .unwrap_or_default();

        let kind = match ty {
            Some(Type::Build) => Some(ActionKind::Build(self.build(&mut m, path))),
            Some(Type::Image) => Some(ActionKind::Image(self.image(&mut m, path))),
            Some(Type::Deploy) => Some(ActionKind::Deploy(self.deploy(&mut m, path))),
            Some(Type::Approval) => Some(ActionKind::Approval(ApprovalAction {
                message: m
                    .get("message")
                    .and_then(|n| self.text(n, &join(path, "message"))),
                timeout: Some(timeout.unwrap_or(DEFAULT_APPROVAL_TIMEOUT)),
            })),
            None => None,
        };
        // Keys some other type takes: say so, rather than calling them unknown.
        for (key, types) in TYPED_KEYS {
            let Some(k) = m.key_node(key) else { continue };
            m.get(key);
            let Some(t) = ty else { continue };
            if types.contains(&t) {
                continue;
            }
            let takers = match types {
                [one] => one.name().to_string(),
                [init @ .., last] => format!(
                    "{} and {}",
                    init.iter().map(|t| t.name()).collect::<Vec<_>>().join(", "),
                    last.name()
                ),
                [] => String::new(),
            };
            self.error(
                k.pos,
                &join(path, key),
                format!("`{key}` does not apply to {} actions", t.name()),
            )
            .hint = Some(format!("`{key}` is a key of {takers} actions"));
        }
        let known = ty.map_or_else(|| ACTION_KEYS.to_vec(), Type::keys);
        m.finish(&known, &mut self.diags);

        let name = name?;
        let info = ActionInfo {
            stage,
            run_order,
            label: format!("{stage_name}.{}", name.value),
            namespace: namespace.clone(),
            inputs: inputs.clone(),
            outputs: outputs.clone(),
            fields: std::mem::take(&mut self.fields),
        };
        self.infos.push(info);
        let action = Action {
            name: name.value,
            pos: node.pos,
            kind: kind?,
            run_order,
            inputs: inputs.into_iter().map(|(l, _)| l.value).collect(),
            outputs: outputs.into_iter().map(|(l, _)| l.value).collect(),
            namespace: namespace.map(|(l, _)| l.value),
            timeout: match ty {
                Some(Type::Approval) => Some(timeout.unwrap_or(DEFAULT_APPROVAL_TIMEOUT)),
                _ => timeout,
            },
            retry,
        };
        Some((action, name.pos))
    }

    fn artifact_list(&mut self, node: &Node, path: &str) -> Vec<(Located<String>, String)> {
        let single = !matches!(node.value, Value::Seq(_));
        let mut out: Vec<(Located<String>, String)> = Vec::new();
        for (i, a) in yaml::string_list(node, path, &mut self.diags)
            .into_iter()
            .enumerate()
        {
            let p = if single {
                path.to_string()
            } else {
                format!("{path}[{i}]")
            };
            if !self.check_name(a.pos, &p, "artifact", &a.value, true) {
                continue;
            }
            if out.iter().any(|(o, _)| o.value == a.value) {
                self.error(a.pos, &p, format!("artifact `{}` is listed twice", a.value));
                continue;
            }
            out.push((a, p));
        }
        out
    }

    fn retry(&mut self, node: &Node, path: &str) -> Option<RetryPolicy> {
        const ATTEMPTS: &str = "retry attempts (total tries, the first included)";
        if let Value::Number(_) = node.value {
            // `retry: 3`: three tries whatever the failure, as GitLab's `retry` does.
            let attempts = self.bounded(node, path, 1, 10, ATTEMPTS)?;
            return Some(policy(attempts, vec![RetryOn::Any]));
        }
        let mut m = MapReader::new(node, path, &mut self.diags)?;
        let attempts = match m.get("attempts") {
            None => {
                self.missing(
                    &m,
                    "attempts",
                    "the number of tries, 1 to 10, e.g. `retry: { attempts: 3 }`",
                );
                None
            }
            Some(n) => self.bounded(n, &join(path, "attempts"), 1, 10, ATTEMPTS),
        };
        // YAML 1.1 reads a bare `on` key as the boolean true; both spellings mean `on`.
        let on = match m.get("on").or_else(|| m.get("true")) {
            None => vec![RetryOn::Any],
            Some(n) => {
                let op = join(path, "on");
                let mut on = Vec::new();
                for (i, s) in yaml::string_list(n, &op, &mut self.diags)
                    .iter()
                    .enumerate()
                {
                    let node = Node {
                        pos: s.pos,
                        value: Value::String(s.value.clone()),
                    };
                    let opts = [
                        ("infrastructure", RetryOn::Infrastructure),
                        ("timeout", RetryOn::Timeout),
                        ("any", RetryOn::Any),
                    ];
                    if let Some(r) = self.keyword(&node, &format!("{op}[{i}]"), &opts)
                        && !on.contains(&r)
                    {
                        on.push(r);
                    }
                }
                on
            }
        };
        m.finish(RETRY_KEYS, &mut self.diags);
        Some(policy(attempts?, on))
    }

    fn env_map(&mut self, node: &Node, path: &str) -> Vec<(String, String)> {
        let Some(mut m) = MapReader::new(node, path, &mut self.diags) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for (k, name, v) in m.named("a variable name", &mut self.diags) {
            let p = join(path, &name);
            if !yaml::is_env_name(&name) {
                self.error(k.pos, &p, format!("`{name}` is not a valid variable name"))
                    .hint = Some("start with a letter or `_`, then letters, digits or `_`".into());
                continue;
            }
            if v.value == Value::Null {
                self.error(v.pos, &p, "expected a string, found null").hint =
                    Some("write `\"\"` for an empty value".into());
                continue;
            }
            if let Some(s) = self.text(v, &p) {
                out.push((name, s));
            }
        }
        out
    }

    fn build(&mut self, m: &mut MapReader, path: &str) -> BuildAction {
        let buildspec = m
            .get("buildspec")
            .and_then(|n| self.non_empty(n, &join(path, "buildspec"), "`buildspec`"))
            .unwrap_or_else(|| DEFAULT_BUILDSPEC.to_string());
        let image = m
            .get("image")
            .and_then(|n| self.non_empty(n, &join(path, "image"), "`image`"));
        let executor_node = m.get("executor");
        let executor = executor_node.and_then(|n| {
            self.keyword(
                n,
                &join(path, "executor"),
                &[
                    ("local", ExecutorChoice::Local),
                    ("docker", ExecutorChoice::Docker),
                ],
            )
        });
        let env = m
            .get("env")
            .map(|n| self.env_map(n, &join(path, "env")))
            .unwrap_or_default();
        let privileged = m
            .get("privileged")
            .and_then(|n| yaml::boolean(n, &join(path, "privileged"), &mut self.diags))
            .unwrap_or(false);
        let services = m
            .get("services")
            .map(|n| self.services(n, &join(path, "services")))
            .unwrap_or_default();
        let runs_on = m
            .get("runs-on")
            .map(|n| self.labels(n, &join(path, "runs-on")))
            .unwrap_or_default();
        if let (Some(ExecutorChoice::Local), Some(n)) = (executor, executor_node) {
            let ep = join(path, "executor");
            for (set, what) in [
                (image.is_some(), "`image`"),
                (!services.is_empty(), "`services`"),
                (privileged, "`privileged`"),
            ] {
                if set {
                    self.error(
                        n.pos,
                        &ep,
                        format!("{what} needs the docker executor, not `local`"),
                    )
                    .hint = Some(format!("use `executor: docker`, or remove {what}"));
                }
            }
        }
        BuildAction {
            buildspec,
            image,
            executor,
            env,
            privileged,
            services,
            runs_on,
        }
    }

    /// `runs-on`: one agent label or a list of them (letters, digits, `_`, `-`, `.`, `:`, `=`).
    fn labels(&mut self, node: &Node, path: &str) -> Vec<String> {
        let items: Vec<&Node> = match node.as_seq() {
            Some(items) => items.iter().collect(),
            None => vec![node],
        };
        let mut out = Vec::new();
        let mut bad = 0;
        for (i, n) in items.into_iter().enumerate() {
            let p = format!("{path}[{i}]");
            let Some(label) = self.string(n, &p) else {
                bad += 1;
                continue;
            };
            let ok = !label.is_empty()
                && label.len() <= 100
                && label
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | ':' | '='));
            if ok {
                out.push(label);
            } else {
                bad += 1;
                self.error(n.pos, &p, format!("agent label `{label}` is not valid"))
                    .hint = Some(
                    "use letters, digits, `_`, `-`, `.`, `:` and `=`, at most 100 characters"
                        .into(),
                );
            }
        }
        if out.is_empty() && bad == 0 {
            self.error(node.pos, path, "`runs-on` names no label".to_string())
                .hint = Some("name the labels an agent must have, e.g. `runs-on: [linux]`".into());
        }
        out
    }

    fn services(&mut self, node: &Node, path: &str) -> Vec<ServiceSpec> {
        let Some(items) = node.as_seq() else {
            self.error(
                node.pos,
                path,
                format!(
                    "expected a list of `{{ name, image }}`, found {}",
                    node.kind()
                ),
            );
            return Vec::new();
        };
        let mut out: Vec<ServiceSpec> = Vec::new();
        for (i, item) in items.iter().enumerate() {
            let p = format!("{path}[{i}]");
            let Some(mut m) = MapReader::new(item, &p, &mut self.diags) else {
                continue;
            };
            let name = self.required_name(&mut m, "name", "service");
            let image = match m.get("image") {
                None => {
                    self.missing(&m, "image", "e.g. `image: postgres:15`");
                    None
                }
                Some(n) => self.non_empty(n, &join(&p, "image"), "`image`"),
            };
            let env = m
                .get("env")
                .map(|n| self.env_map(n, &join(&p, "env")))
                .unwrap_or_default();
            let command = m.get("command").and_then(|n| {
                let cp = join(&p, "command");
                let Some(args) = n.as_seq() else {
                    // A string would have to be split by someone's shell rules; a list is exact.
                    self.error(
                        n.pos,
                        &cp,
                        format!("expected a list of arguments, found {}", n.kind()),
                    )
                    .hint = Some(
                        "write it as a list, e.g. `command: [postgres, -c, fsync=off]`".into(),
                    );
                    return None;
                };
                let args: Vec<String> = args
                    .iter()
                    .enumerate()
                    .filter_map(|(j, a)| self.text(a, &format!("{cp}[{j}]")))
                    .collect();
                Some(args)
            });
            m.finish(SERVICE_KEYS, &mut self.diags);
            let (Some(name), Some(image)) = (name, image) else {
                continue;
            };
            if out.iter().any(|s| s.name == name.value) {
                self.error(
                    name.pos,
                    &join(&p, "name"),
                    format!("service `{}` is listed twice", name.value),
                );
                continue;
            }
            out.push(ServiceSpec {
                name: name.value,
                image,
                env,
                command,
            });
        }
        out
    }

    fn image(&mut self, m: &mut MapReader, path: &str) -> ImageAction {
        let dockerfile = m
            .get("dockerfile")
            .and_then(|n| self.non_empty(n, &join(path, "dockerfile"), "`dockerfile`"))
            .unwrap_or_else(|| "Dockerfile".into());
        let context = m
            .get("context")
            .and_then(|n| self.non_empty(n, &join(path, "context"), "`context`"))
            .unwrap_or_else(|| ".".into());
        let default_repository = self.pipeline_name.to_ascii_lowercase();
        let repository = match m.get("repository") {
            Some(n) => {
                let rp = join(path, "repository");
                let s = self.text(n, &rp).unwrap_or_default();
                if !s.contains("#{") && !valid_repository(&s) {
                    self.error(n.pos, &rp, format!("`{s}` is not a valid repository name")).hint = Some(
                        "a repository in Slipway's registry: lowercase letters, digits, `.`, `_`, `-`, parts split by `/`, no host and no tag".into(),
                    );
                }
                s
            }
            None => default_repository,
        };
        let tags = match m.get("tags") {
            None => vec![format!("#{{{SLIPWAY_NAMESPACE}.SourceRevision}}")],
            Some(n) => {
                let tp = join(path, "tags");
                let single = !matches!(n.value, Value::Seq(_));
                let list = yaml::string_list(n, &tp, &mut self.diags);
                if list.is_empty() {
                    self.error(n.pos, &tp, "an image needs at least one tag")
                        .hint =
                        Some("remove `tags` for the default `#{slipway.SourceRevision}`".into());
                }
                let mut tags = Vec::new();
                for (i, t) in list.into_iter().enumerate() {
                    let p = if single {
                        tp.clone()
                    } else {
                        format!("{tp}[{i}]")
                    };
                    self.fields.push(Field {
                        pos: t.pos,
                        path: p.clone(),
                        text: t.value.clone(),
                    });
                    if !t.value.contains("#{") && !valid_tag(&t.value) {
                        self.error(t.pos, &p, format!("`{}` is not a valid image tag", t.value)).hint =
                            Some("letters, digits, `_`, `.` and `-`, not starting with `.` or `-`, at most 128".into());
                    }
                    tags.push(t.value);
                }
                tags
            }
        };
        let build_args = m
            .get("build-args")
            .map(|n| self.env_map(n, &join(path, "build-args")))
            .unwrap_or_default();
        let target = m
            .get("target")
            .and_then(|n| self.non_empty(n, &join(path, "target"), "`target`"));
        let registry = m
            .get("registry")
            .and_then(|n| self.non_empty(n, &join(path, "registry"), "`registry`"));
        let credentials = m
            .get("credentials")
            .and_then(|n| self.non_empty(n, &join(path, "credentials"), "`credentials`"));
        if let (Some(c), None) = (m.get("credentials"), &registry) {
            self.error(
                c.pos,
                &join(path, "credentials"),
                "`credentials` signs in to another registry, but no `registry` is given",
            )
            .hint = Some("Slipway's own registry needs no credentials here".into());
        }
        ImageAction {
            dockerfile,
            context,
            repository,
            tags,
            build_args,
            target,
            registry,
            credentials,
        }
    }

    fn deploy(&mut self, m: &mut MapReader, path: &str) -> DeployAction {
        let environment = match m.get("environment") {
            None => {
                self.missing(
                    m,
                    "environment",
                    "the environment of `.slipway/services.yml` to deploy to, e.g. `staging`",
                );
                String::new()
            }
            Some(n) => {
                let ep = join(path, "environment");
                let s = self.text(n, &ep).unwrap_or_default();
                self.check_name(n.pos, &ep, "environment", &s, true);
                s
            }
        };
        let services = m
            .get("services")
            .map(|n| {
                let sp = join(path, "services");
                let single = !matches!(n.value, Value::Seq(_));
                let mut out = Vec::new();
                for (i, s) in yaml::string_list(n, &sp, &mut self.diags)
                    .into_iter()
                    .enumerate()
                {
                    let p = if single {
                        sp.clone()
                    } else {
                        format!("{sp}[{i}]")
                    };
                    if self.check_name(s.pos, &p, "service", &s.value, true) {
                        out.push(s.value);
                    }
                }
                out
            })
            .unwrap_or_default();
        DeployAction {
            environment,
            services,
        }
    }

    // -- checks across actions ------------------------------------------------------------

    fn cross_check(&mut self) {
        let infos = std::mem::take(&mut self.infos);
        // Artifacts: unique names, `source` reserved.
        let mut producers: Vec<(&str, usize)> = Vec::new();
        for (ai, a) in infos.iter().enumerate() {
            for (o, p) in &a.outputs {
                if o.value == SOURCE_ARTIFACT {
                    self.error(
                        o.pos,
                        p,
                        "`source` is the name of the revision's checkout and cannot be an output",
                    )
                    .hint = Some("choose another name, e.g. `build_output`".into());
                } else if let Some((_, other)) = producers.iter().find(|(n, _)| *n == o.value) {
                    let other = &infos[*other].label;
                    self.error(
                        o.pos,
                        p,
                        format!("artifact `{}` is already an output of `{other}`", o.value),
                    )
                    .hint = Some("output artifact names are unique in a pipeline".into());
                } else {
                    producers.push((&o.value, ai));
                }
            }
        }
        // Namespaces: unique, not reserved, not an artifact's name.
        let mut namespaces: Vec<(&str, usize)> = Vec::new();
        for (ai, a) in infos.iter().enumerate() {
            let Some((ns, p)) = &a.namespace else {
                continue;
            };
            let reserved = [
                VARIABLES_NAMESPACE,
                SLIPWAY_NAMESPACE,
                CODEPIPELINE_NAMESPACE,
            ];
            if reserved.contains(&ns.value.as_str()) {
                self.error(ns.pos, p, format!("namespace `{}` is reserved", ns.value))
                    .hint = Some(format!("reserved namespaces: {}", reserved.join(", ")));
            } else if let Some((_, other)) = namespaces.iter().find(|(n, _)| *n == ns.value) {
                let other = &infos[*other].label;
                self.error(
                    ns.pos,
                    p,
                    format!("namespace `{}` is already used by `{other}`", ns.value),
                )
                .hint = Some("namespaces are unique in a pipeline".into());
            } else if ns.value == SOURCE_ARTIFACT || producers.iter().any(|(n, _)| *n == ns.value) {
                self.error(
                    ns.pos,
                    p,
                    format!("namespace `{}` is also an artifact name", ns.value),
                )
                .hint =
                    Some("as in CodePipeline, namespaces and artifact names must differ".into());
            } else {
                namespaces.push((&ns.value, ai));
            }
        }
        for a in &infos {
            // Inputs come from actions that finish before this one starts.
            let available: Vec<String> = std::iter::once(SOURCE_ARTIFACT.to_string())
                .chain(
                    producers
                        .iter()
                        .filter(|(_, i)| infos[*i].runs_before(a))
                        .map(|(n, _)| n.to_string()),
                )
                .collect();
            for (input, p) in &a.inputs {
                if available.contains(&input.value) {
                    continue;
                }
                let msg = match producers.iter().find(|(n, _)| *n == input.value) {
                    Some((_, i)) => format!(
                        "input `{}` is an output of `{}`, which does not finish before this action starts",
                        input.value, infos[*i].label
                    ),
                    None => format!("no action outputs an artifact named `{}`", input.value),
                };
                self.error(input.pos, p, msg).hint = Some(format!(
                    "artifacts available here: {}",
                    available.join(", ")
                ));
            }
            let mut available_ns: Vec<String> = vec![
                VARIABLES_NAMESPACE.into(),
                SLIPWAY_NAMESPACE.into(),
                CODEPIPELINE_NAMESPACE.into(),
            ];
            available_ns.extend(
                namespaces
                    .iter()
                    .filter(|(_, i)| infos[*i].runs_before(a))
                    .map(|(n, _)| n.to_string()),
            );
            for f in &a.fields {
                self.check_references(f, &available_ns, &namespaces, &infos);
            }
        }
    }

    fn check_references(
        &mut self,
        f: &Field,
        available: &[String],
        namespaces: &[(&str, usize)],
        infos: &[ActionInfo],
    ) {
        for piece in vars::scan(&f.text) {
            let Some((ns, name)) = piece.reference else {
                let snippet = &f.text[piece.start..piece.end];
                self.diags.push(
                    Diagnostic::warning(f.pos, &f.path, format!("`{snippet}` is not a variable reference and is kept as written"))
                        .with_hint("a reference is `#{namespace.name}`, e.g. `#{variables.REGION}` or `#{slipway.ExecutionId}`"),
                );
                continue;
            };
            let known: Option<Vec<String>> = match ns.as_str() {
                VARIABLES_NAMESPACE => Some(self.variable_names.clone()),
                SLIPWAY_NAMESPACE => {
                    Some(SLIPWAY_VARIABLES.iter().map(|s| s.to_string()).collect())
                }
                CODEPIPELINE_NAMESPACE => Some(
                    CODEPIPELINE_VARIABLES
                        .iter()
                        .map(|s| s.to_string())
                        .collect(),
                ),
                _ => None,
            };
            if let Some(known) = known {
                if !known.contains(&name) {
                    let refs: Vec<&str> = known.iter().map(String::as_str).collect();
                    let hint = match did_you_mean(&name, &refs) {
                        Some(s) => format!("did you mean `#{{{ns}.{s}}}`?"),
                        None => format!("`{ns}` has: {}", list_or_none(&known)),
                    };
                    let what = if ns == VARIABLES_NAMESPACE {
                        "pipeline variable"
                    } else {
                        "variable"
                    };
                    self.error(
                        f.pos,
                        &f.path,
                        format!("`#{{{ns}.{name}}}`: no {what} `{name}` in `{ns}`"),
                    )
                    .hint = Some(hint);
                }
                continue;
            }
            if available.contains(&ns) {
                // The names an action exports are known only when it runs (a build's come from its buildspec).
                continue;
            }
            let msg = match namespaces.iter().find(|(n, _)| *n == ns) {
                Some((_, i)) => format!(
                    "`#{{{ns}.{name}}}`: namespace `{ns}` belongs to `{}`, which does not finish before this action starts",
                    infos[*i].label
                ),
                None => format!("`#{{{ns}.{name}}}`: unknown namespace `{ns}`"),
            };
            let refs: Vec<&str> = available.iter().map(String::as_str).collect();
            let hint = match did_you_mean(&ns, &refs) {
                Some(s) if !namespaces.iter().any(|(n, _)| *n == ns) => format!(
                    "did you mean `{s}`? namespaces available here: {}",
                    available.join(", ")
                ),
                _ => format!("namespaces available here: {}", available.join(", ")),
            };
            self.error(f.pos, &f.path, msg).hint = Some(hint);
        }
    }
}

fn policy(attempts: u32, on: Vec<RetryOn>) -> RetryPolicy {
    // One try retries nothing, so there is nothing to retry on.
    let on = if attempts <= 1 { Vec::new() } else { on };
    RetryPolicy { attempts, on }
}
