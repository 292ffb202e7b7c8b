//! ARCHITECTURE.md's dependency table is the law: checked against `cargo metadata`.

use std::collections::{BTreeMap, BTreeSet};

use super::support::repo_root;

#[test]
fn crate_dependencies_follow_the_table() {
    let root = repo_root();
    let text = std::fs::read_to_string(root.join("ARCHITECTURE.md")).unwrap();
    let mut allowed: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for line in text.lines() {
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        if cells.len() >= 4 && cells[1].starts_with("slipway") {
            let deps = cells[2]
                .split(',')
                .map(str::trim)
                .filter(|d| d.starts_with("slipway"))
                .map(String::from)
                .collect();
            allowed.insert(cells[1].to_string(), deps);
        }
    }
    assert!(
        allowed.len() >= 7,
        "dependency table not found in ARCHITECTURE.md"
    );
    let meta = cargo_metadata::MetadataCommand::new()
        .manifest_path(root.join("Cargo.toml"))
        .no_deps()
        .exec()
        .unwrap();
    let ours: BTreeSet<String> = meta
        .workspace_packages()
        .iter()
        .map(|p| p.name.to_string())
        .collect();
    let mut problems = Vec::new();
    for p in meta.workspace_packages() {
        let name = p.name.to_string();
        let Some(ok) = allowed.get(&name) else {
            problems.push(format!(
                "{name} is not in ARCHITECTURE.md's dependency table"
            ));
            continue;
        };
        for d in &p.dependencies {
            if d.kind == cargo_metadata::DependencyKind::Normal
                && ours.contains(&d.name)
                && !ok.contains(&d.name)
            {
                problems.push(format!(
                    "{name} depends on {}, which the table does not allow",
                    d.name
                ));
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}
