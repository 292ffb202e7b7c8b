//! `batch:` of a buildspec: build lists, build graphs, build matrices and build fanouts.

use std::collections::HashMap;

use super::{check_var_name, ignored, opt_bool, opt_string};
use crate::diag::{Diagnostic, Diagnostics, Pos, did_you_mean};
use crate::yaml::{self, Located, MapReader, Node, Value, join};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Batch {
    /// Stop the running builds as soon as one fails (AWS default: let them finish).
    pub fast_fail: bool,
    pub kind: BatchKind,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BatchKind {
    /// Independent builds, run in parallel.
    List(Vec<BatchBuild>),
    /// Builds ordered by `depend_on`; validated to name existing builds and to have no cycle.
    Graph(Vec<BatchBuild>),
    /// One build per combination; see [`BuildMatrix::expand`].
    Matrix(BuildMatrix),
    /// `parallelism` identical builds of this buildspec.
    Fanout {
        parallelism: u32,
        ignore_failure: bool,
    },
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BatchBuild {
    /// `[A-Za-z0-9_]{1,127}`, unique in the batch; exported as `CODEBUILD_BATCH_BUILD_IDENTIFIER`.
    pub identifier: String,
    /// Another buildspec file for this build; `None` = this one.
    pub buildspec: Option<String>,
    pub env: BatchEnv,
    /// A failure of this build does not fail the batch.
    pub ignore_failure: bool,
    /// Graph builds only: identifiers that must finish first.
    pub depend_on: Vec<String>,
    /// Ignored by Slipway (warned).
    pub debug_session: bool,
}

/// Per-build overrides of the build environment.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BatchEnv {
    pub image: Option<String>,
    /// Ignored by Slipway (warned).
    pub compute_type: Option<String>,
    pub privileged_mode: Option<bool>,
    /// `type` (LINUX_CONTAINER, ...); ignored by Slipway (warned).
    pub env_type: Option<String>,
    pub variables: Vec<(String, String)>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BuildMatrix {
    pub static_ignore_failure: bool,
    pub static_env: BatchEnv,
    /// Dimensions; an empty one does not multiply.
    pub buildspecs: Vec<String>,
    pub images: Vec<String>,
    pub compute_types: Vec<String>,
    /// One dimension per variable, in file order.
    pub variables: Vec<(String, Vec<String>)>,
}

impl BuildMatrix {
    /// The number of builds [`expand`](Self::expand) produces (saturating at `u64::MAX`).
    pub fn build_count(&self) -> u64 {
        self.dimensions()
            .iter()
            .fold(1u64, |acc, d| acc.saturating_mul(d.len().max(1) as u64))
    }

    fn dimensions(&self) -> Vec<&[String]> {
        let mut dims: Vec<&[String]> = vec![&self.buildspecs, &self.images, &self.compute_types];
        dims.extend(self.variables.iter().map(|(_, v)| v.as_slice()));
        dims
    }

    /// One build per combination of buildspec × image × compute type × each variable's values,
    /// the last dimension varying fastest (AWS's documented order: `matrix1.yml` with each
    /// value, then `matrix2.yml` ...). Identifiers are `build1`, `build2`, ... in that order:
    /// deterministic, valid AWS identifiers, and stable as long as the matrix is unchanged.
    /// Each build starts from `static_env`; a dynamic variable replaces a static one of the
    /// same name. The parser refuses matrices of more than 100 builds; a matrix built by hand
    /// expands in full.
    pub fn expand(&self) -> Vec<BatchBuild> {
        let dims = self.dimensions();
        let total = self.build_count();
        let mut out = Vec::new();
        for index in 0..total {
            // Mixed-radix digits of `index`, most significant = first dimension.
            let mut picks = vec![None; dims.len()];
            let mut rest = index;
            for (d, dim) in dims.iter().enumerate().rev() {
                let radix = dim.len().max(1) as u64;
                if !dim.is_empty() {
                    picks[d] = dim.get((rest % radix) as usize);
                }
                rest /= radix;
            }
            let mut env = self.static_env.clone();
            let pick = |d: usize| picks.get(d).copied().flatten().cloned();
            if let Some(image) = pick(1) {
                env.image = Some(image);
            }
            if let Some(ct) = pick(2) {
                env.compute_type = Some(ct);
            }
            for (i, (name, _)) in self.variables.iter().enumerate() {
                if let Some(value) = pick(3 + i) {
                    match env.variables.iter_mut().find(|(n, _)| n == name) {
                        Some(slot) => slot.1 = value,
                        None => env.variables.push((name.clone(), value)),
                    }
                }
            }
            out.push(BatchBuild {
                identifier: format!("build{}", index + 1),
                buildspec: pick(0),
                env,
                ignore_failure: self.static_ignore_failure,
                depend_on: Vec::new(),
                debug_session: false,
            });
        }
        out
    }
}

pub(super) const IDENTIFIER_RULE: &str =
    "use only letters, digits and `_`, fewer than 128 characters (AWS's rule for identifiers)";

/// AWS: "must contain only alphanumeric characters and underscores and be less than 128
/// characters in length".
pub(super) fn valid_identifier(s: &str) -> bool {
    !s.is_empty() && s.len() < 128 && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

const KINDS: [&str; 4] = ["build-list", "build-graph", "build-matrix", "build-fanout"];
const BATCH_KEYS: &[&str] = &[
    "fast-fail",
    "build-list",
    "build-graph",
    "build-matrix",
    "build-fanout",
];
const BUILD_KEYS: &[&str] = &[
    "identifier",
    "buildspec",
    "env",
    "ignore-failure",
    "depend-on",
    "debug-session",
];
const ENV_KEYS: &[&str] = &[
    "compute-type",
    "fleet",
    "image",
    "privileged-mode",
    "type",
    "variables",
];
const MATRIX_KEYS: &[&str] = &["static", "dynamic"];
const STATIC_KEYS: &[&str] = &["ignore-failure", "env"];
const DYNAMIC_KEYS: &[&str] = &["buildspec", "env"];
const DYNAMIC_ENV_KEYS: &[&str] = &["compute-type", "image", "variables"];
const FANOUT_KEYS: &[&str] = &["parallelism", "ignore-failure"];
/// Slipway's own bound on a matrix or fanout, so a few lines of YAML cannot ask for millions
/// of builds.
const MAX_BATCH_BUILDS: u64 = 100;

pub(super) fn read_batch(node: &Node, path: &str, diags: &mut Diagnostics) -> Option<Batch> {
    let mut m = MapReader::new(node, path, diags)?;
    let fast_fail = opt_bool(&mut m, "fast-fail", diags).unwrap_or(false);
    let mut kinds: Vec<(Pos, &str, Option<BatchKind>)> = Vec::new();
    for key in KINDS {
        let Some(n) = m.get(key) else { continue };
        let key_pos = m.key_node(key).map_or(n.pos, |k| k.pos);
        let p = m.child_path(key);
        let kind = match key {
            "build-list" => read_builds(n, &p, false, diags).map(BatchKind::List),
            "build-graph" => read_builds(n, &p, true, diags).map(BatchKind::Graph),
            "build-matrix" => read_matrix(n, &p, diags).map(BatchKind::Matrix),
            _ => read_fanout(n, &p, key_pos, diags),
        };
        kinds.push((key_pos, key, kind));
    }
    kinds.sort_by_key(|k| k.0);
    let kinds_hint = format!("a batch uses exactly one of {}", KINDS.join(", "));
    if let Some((_, first, _)) = kinds.first() {
        for (pos, other, _) in kinds.iter().skip(1) {
            diags.push(
                Diagnostic::error(
                    *pos,
                    join(path, other),
                    format!("`{path}` has both `{first}` and `{other}`"),
                )
                .with_hint(kinds_hint.clone()),
            );
        }
    } else {
        diags.push(
            Diagnostic::error(node.pos, path, format!("`{path}` names no kind of batch"))
                .with_hint(kinds_hint),
        );
    }
    m.finish(BATCH_KEYS, diags);
    let kind = kinds.into_iter().next()?.2?;
    Some(Batch { fast_fail, kind })
}

fn read_builds(
    node: &Node,
    path: &str,
    graph: bool,
    diags: &mut Diagnostics,
) -> Option<Vec<BatchBuild>> {
    let Some(items) = node.as_seq() else {
        diags.push(
            Diagnostic::error(
                node.pos,
                path,
                format!("expected a list of builds, found {}", node.kind()),
            )
            .with_hint("write each build as `- identifier: name` followed by its settings"),
        );
        return None;
    };
    if items.is_empty() {
        diags.push(
            Diagnostic::error(node.pos, path, "the batch lists no builds")
                .with_hint("add `- identifier: build1`"),
        );
    }
    let mut builds = Vec::new();
    // Per build: where its identifier is, and its dependencies with positions.
    let mut where_: Vec<(Pos, Vec<Located<String>>)> = Vec::new();
    let mut seen: HashMap<String, Pos> = HashMap::new();
    for (i, item) in items.iter().enumerate() {
        let p = format!("{path}[{i}]");
        let Some(mut m) = MapReader::new(item, &p, diags) else {
            continue;
        };
        let mut build = BatchBuild::default();
        let mut id_pos = item.pos;
        match m.get("identifier") {
            None => diags.push(
                Diagnostic::error(
                    item.pos,
                    join(&p, "identifier"),
                    "build has no `identifier`",
                )
                .with_hint("add `identifier: build1` (letters, digits and `_`)"),
            ),
            Some(n) => {
                id_pos = n.pos;
                if let Some(id) = yaml::string(n, &join(&p, "identifier"), diags) {
                    if !valid_identifier(&id) {
                        diags.push(
                            Diagnostic::error(
                                n.pos,
                                join(&p, "identifier"),
                                format!("invalid build identifier `{id}`"),
                            )
                            .with_hint(IDENTIFIER_RULE),
                        );
                    } else if let Some(first) = seen.get(&id) {
                        diags.push(
                            Diagnostic::error(
                                n.pos,
                                join(&p, "identifier"),
                                format!("duplicate build identifier `{id}`"),
                            )
                            .with_hint(format!(
                                "it is already used at line {}; identifiers must be unique in a batch",
                                first.line
                            )),
                        );
                    } else {
                        seen.insert(id.clone(), n.pos);
                    }
                    build.identifier = id;
                }
            }
        }
        build.buildspec = opt_string(&mut m, "buildspec", diags);
        if let Some(n) = m.get("env") {
            build.env = read_env(n, &m.child_path("env"), diags);
        }
        build.ignore_failure = opt_bool(&mut m, "ignore-failure", diags).unwrap_or(false);
        let mut deps = Vec::new();
        if let Some(n) = m.get("depend-on") {
            let dp = m.child_path("depend-on");
            if graph {
                deps = yaml::string_list(n, &dp, diags);
            } else {
                let k = m.key_node("depend-on").unwrap_or(n);
                diags.push(
                    Diagnostic::error(k.pos, dp, "`depend-on` is only allowed in `build-graph`")
                        .with_hint("use `build-graph` to order builds; `build-list` runs them all in parallel"),
                );
            }
        }
        build.depend_on = deps.iter().map(|d| d.value.clone()).collect();
        if let Some(b) = opt_bool(&mut m, "debug-session", diags) {
            build.debug_session = b;
            ignored(
                &m,
                "debug-session",
                "Session Manager debugging is AWS-only",
                diags,
            );
        }
        m.finish(BUILD_KEYS, diags);
        builds.push(build);
        where_.push((id_pos, deps));
    }
    if graph {
        check_graph(&builds, &where_, path, diags);
    }
    Some(builds)
}

/// Every `depend-on` names a build of the graph, and following them never comes back.
fn check_graph(
    builds: &[BatchBuild],
    where_: &[(Pos, Vec<Located<String>>)],
    path: &str,
    diags: &mut Diagnostics,
) {
    let mut index: HashMap<&str, usize> = HashMap::new();
    for (i, b) in builds.iter().enumerate() {
        index.entry(b.identifier.as_str()).or_insert(i);
    }
    let ids: Vec<&str> = builds.iter().map(|b| b.identifier.as_str()).collect();
    let mut edges: Vec<Vec<usize>> = vec![Vec::new(); builds.len()];
    for (i, (_, deps)) in where_.iter().enumerate() {
        for (j, d) in deps.iter().enumerate() {
            match index.get(d.value.as_str()) {
                Some(&t) => {
                    if let Some(e) = edges.get_mut(i) {
                        e.push(t);
                    }
                }
                None => {
                    let d_ = Diagnostic::error(
                        d.pos,
                        format!("{path}[{i}].depend-on[{j}]"),
                        format!(
                            "`{}` is not the identifier of a build in this graph",
                            d.value
                        ),
                    );
                    diags.push(match did_you_mean(&d.value, &ids) {
                        Some(c) => d_.with_hint(format!("did you mean `{c}`?")),
                        None => d_.with_hint(format!("the builds are: {}", ids.join(", "))),
                    });
                }
            }
        }
    }
    // Iterative depth-first search (a long chain must not overflow the stack):
    // 0 = not visited, 1 = on the current path, 2 = done.
    let mut color = vec![0u8; builds.len()];
    for start in 0..builds.len() {
        if color.get(start) != Some(&0) {
            continue;
        }
        color[start] = 1;
        let mut stack: Vec<(usize, usize)> = vec![(start, 0)];
        while let Some(top) = stack.last_mut() {
            let v = top.0;
            let Some(&w) = edges.get(v).and_then(|e| e.get(top.1)) else {
                color[v] = 2;
                stack.pop();
                continue;
            };
            top.1 += 1;
            match color.get(w) {
                Some(0) => {
                    color[w] = 1;
                    stack.push((w, 0));
                }
                Some(1) => {
                    let from = stack.iter().position(|&(x, _)| x == w).unwrap_or(0);
                    let mut cycle: Vec<&str> = stack
                        .iter()
                        .skip(from)
                        .filter_map(|&(x, _)| ids.get(x).copied())
                        .collect();
                    cycle.push(ids.get(w).copied().unwrap_or("?"));
                    let pos = where_.get(w).map_or(Pos::default(), |x| x.0);
                    diags.push(
                        Diagnostic::error(
                            pos,
                            format!("{path}[{w}].depend-on"),
                            format!("dependency cycle: {}", cycle.join(" -> ")),
                        )
                        .with_hint("remove one of these `depend-on` entries"),
                    );
                }
                _ => {}
            }
        }
    }
}

fn read_env(node: &Node, path: &str, diags: &mut Diagnostics) -> BatchEnv {
    let mut env = BatchEnv::default();
    let Some(mut m) = MapReader::new(node, path, diags) else {
        return env;
    };
    env.image = opt_string(&mut m, "image", diags);
    env.compute_type = opt_string(&mut m, "compute-type", diags);
    if env.compute_type.is_some() {
        ignored(
            &m,
            "compute-type",
            "AWS compute types do not apply to Slipway agents",
            diags,
        );
    }
    if opt_string(&mut m, "fleet", diags).is_some() {
        ignored(&m, "fleet", "reserved capacity fleets are AWS-only", diags);
        if let (Some(_), Some(k)) = (&env.compute_type, m.key_node("fleet")) {
            diags.push(
                Diagnostic::error(
                    k.pos,
                    m.child_path("fleet"),
                    "`compute-type` and `fleet` cannot both be given",
                )
                .with_hint("keep one of them"),
            );
        }
    }
    env.privileged_mode = opt_bool(&mut m, "privileged-mode", diags);
    env.env_type = opt_string(&mut m, "type", diags);
    if env.env_type.is_some() {
        ignored(
            &m,
            "type",
            "the environment type follows from the image",
            diags,
        );
    }
    if let Some(n) = m.get("variables") {
        env.variables = super::read_variables(n, &m.child_path("variables"), diags);
    }
    m.finish(ENV_KEYS, diags);
    env
}

fn read_matrix(node: &Node, path: &str, diags: &mut Diagnostics) -> Option<BuildMatrix> {
    let mut m = MapReader::new(node, path, diags)?;
    let mut matrix = BuildMatrix::default();
    if let Some(n) = m.get("static") {
        let sp = m.child_path("static");
        if let Some(mut s) = MapReader::new(n, &sp, diags) {
            matrix.static_ignore_failure =
                opt_bool(&mut s, "ignore-failure", diags).unwrap_or(false);
            if let Some(e) = s.get("env") {
                matrix.static_env = read_env(e, &s.child_path("env"), diags);
            }
            s.finish(STATIC_KEYS, diags);
        }
    }
    let dynamic_pos = m.key_node("dynamic").map(|k| k.pos);
    if let Some(n) = m.get("dynamic") {
        let dp = m.child_path("dynamic");
        if let Some(mut d) = MapReader::new(n, &dp, diags) {
            matrix.buildspecs = super::strings(&mut d, "buildspec", diags);
            if let Some(e) = d.get("env") {
                let ep = d.child_path("env");
                if let Some(mut em) = MapReader::new(e, &ep, diags) {
                    matrix.compute_types = super::strings(&mut em, "compute-type", diags);
                    if !matrix.compute_types.is_empty() {
                        ignored(
                            &em,
                            "compute-type",
                            "AWS compute types do not apply to Slipway agents",
                            diags,
                        );
                    }
                    matrix.images = super::strings(&mut em, "image", diags);
                    if let Some(v) = em.get("variables") {
                        matrix.variables =
                            read_matrix_variables(v, &em.child_path("variables"), diags);
                    }
                    em.finish(DYNAMIC_ENV_KEYS, diags);
                }
            }
            d.finish(DYNAMIC_KEYS, diags);
        }
    }
    m.finish(MATRIX_KEYS, diags);
    let total = matrix.build_count();
    let all_empty = matrix.buildspecs.is_empty()
        && matrix.images.is_empty()
        && matrix.compute_types.is_empty()
        && matrix.variables.is_empty();
    if all_empty {
        diags.push(
            Diagnostic::warning(
                dynamic_pos.unwrap_or(node.pos),
                join(path, "dynamic"),
                "the matrix has no dynamic values: it is a single build",
            )
            .with_hint("list values under `dynamic`, e.g. `buildspec: [a.yml, b.yml]`"),
        );
    }
    if total > MAX_BATCH_BUILDS {
        diags.push(
            Diagnostic::error(
                dynamic_pos.unwrap_or(node.pos),
                join(path, "dynamic"),
                format!("the matrix expands to {total} builds; Slipway allows at most {MAX_BATCH_BUILDS} in one batch"),
            )
            .with_hint("remove values, or split the matrix over several projects"),
        );
    }
    Some(matrix)
}

fn read_matrix_variables(
    node: &Node,
    path: &str,
    diags: &mut Diagnostics,
) -> Vec<(String, Vec<String>)> {
    let Some(mut m) = MapReader::new(node, path, diags) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for (k, name, v) in m.named("a name", diags) {
        if !check_var_name(k, &name, path, diags) {
            continue;
        }
        let p = join(path, &name);
        let values: Vec<String> = yaml::string_list(v, &p, diags)
            .into_iter()
            .map(|l| l.value)
            .collect();
        if values.is_empty() && !matches!(v.value, Value::Seq(ref s) if !s.is_empty()) {
            diags.push(
                Diagnostic::error(v.pos, p, format!("`{name}` lists no values"))
                    .with_hint(format!("write `{name}: [value1, value2]`")),
            );
            continue;
        }
        out.push((name, values));
    }
    out
}

fn read_fanout(
    node: &Node,
    path: &str,
    key_pos: Pos,
    diags: &mut Diagnostics,
) -> Option<BatchKind> {
    let mut m = MapReader::new(node, path, diags)?;
    let ignore_failure = opt_bool(&mut m, "ignore-failure", diags).unwrap_or(false);
    let parallelism = match m.get("parallelism") {
        None => {
            diags.push(
                Diagnostic::error(
                    key_pos,
                    join(path, "parallelism"),
                    "build fanout has no `parallelism`",
                )
                .with_hint("add `parallelism: 2` (the number of builds)"),
            );
            None
        }
        Some(n) => {
            let p = m.child_path("parallelism");
            match yaml::uint(n, &p, diags) {
                Some(v) if (1..=MAX_BATCH_BUILDS).contains(&v) => u32::try_from(v).ok(),
                Some(v) => {
                    diags.push(
                        Diagnostic::error(
                            n.pos,
                            p,
                            format!("`parallelism` {v} is out of range 1..={MAX_BATCH_BUILDS}"),
                        )
                        .with_hint("choose the number of builds to run in parallel"),
                    );
                    None
                }
                None => None,
            }
        }
    };
    m.finish(FANOUT_KEYS, diags);
    if let Some(n) = parallelism {
        diags.push(Diagnostic::warning(
            key_pos,
            path,
            format!(
                "test sharding (`codebuild-tests-run`) is accepted but ignored by Slipway: each of the {n} builds runs the whole buildspec"
            ),
        ));
    }
    Some(BatchKind::Fanout {
        parallelism: parallelism?,
        ignore_failure,
    })
}
