//! Lifecycle policies in ECR's own JSON form: rules by `rulePriority` (lowest first), each
//! selecting images by `tagStatus` (`tagged` with a `tagPrefixList`, `untagged`, `any`) and
//! expiring those beyond `imageCountMoreThan` (newest kept) or older than `sinceImagePushed`
//! days. As in ECR, an image that a rule's selection matches is not considered by rules of a
//! lower priority, so it expires by at most one rule.

use serde::{Deserialize, Serialize};
use slipway_model::Digest;
use slipway_store::db::ImageRow;

use crate::Registry;
use crate::error::RegistryError;

/// A validated policy.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LifecyclePolicy {
    pub rules: Vec<Rule>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    #[serde(rename = "rulePriority")]
    pub rule_priority: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    pub selection: Selection,
    pub action: Action,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Selection {
    #[serde(rename = "tagStatus")]
    pub tag_status: String,
    #[serde(
        rename = "tagPrefixList",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub tag_prefix_list: Option<Vec<String>>,
    #[serde(rename = "countType")]
    pub count_type: String,
    #[serde(rename = "countUnit", default, skip_serializing_if = "Option::is_none")]
    pub count_unit: Option<String>,
    #[serde(rename = "countNumber")]
    pub count_number: i64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Action {
    #[serde(rename = "type")]
    pub kind: String,
}

/// Everything wrong with a policy, each naming the rule and field.
#[derive(Debug, thiserror::Error)]
#[error("invalid lifecycle policy:\n  {}", .0.join("\n  "))]
pub struct PolicyError(pub Vec<String>);

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PolicyFile {
    rules: Vec<Rule>,
}

impl LifecyclePolicy {
    /// Parses and validates the JSON ECR takes; every problem is reported, not only the first.
    pub fn parse(text: &str) -> Result<LifecyclePolicy, PolicyError> {
        let f: PolicyFile =
            serde_json::from_str(text).map_err(|e| PolicyError(vec![e.to_string()]))?;
        let mut errs = Vec::new();
        if f.rules.is_empty() {
            errs.push("rules: at least one rule is needed".to_string());
        }
        let mut seen = std::collections::BTreeSet::new();
        let mut untagged = 0;
        let mut prefixes = std::collections::BTreeSet::new();
        for (i, r) in f.rules.iter().enumerate() {
            let at = format!("rules[{i}] (rulePriority {})", r.rule_priority);
            if r.rule_priority < 1 {
                errs.push(format!(
                    "{at}: rulePriority must be a whole number of 1 or more"
                ));
            }
            if !seen.insert(r.rule_priority) {
                errs.push(format!("{at}: another rule has the same rulePriority"));
            }
            let s = &r.selection;
            match s.tag_status.as_str() {
                "tagged" => match &s.tag_prefix_list {
                    Some(l) if !l.is_empty() && l.iter().all(|p| !p.is_empty()) => {
                        for p in l {
                            if !prefixes.insert(p.clone()) {
                                errs.push(format!(
                                    "{at}: tag prefix `{p}` is used by another rule (prefixes must be unique in a policy)"
                                ));
                            }
                        }
                    }
                    _ => errs.push(format!(
                        "{at}: selection.tagPrefixList must list at least one non-empty prefix when tagStatus is `tagged`"
                    )),
                },
                "untagged" | "any" => {
                    if s.tag_prefix_list.is_some() {
                        errs.push(format!(
                            "{at}: selection.tagPrefixList is only allowed when tagStatus is `tagged`"
                        ));
                    }
                    if s.tag_status == "untagged" {
                        untagged += 1;
                    }
                }
                other => errs.push(format!(
                    "{at}: selection.tagStatus `{other}`: expected tagged, untagged or any"
                )),
            }
            match (s.count_type.as_str(), s.count_unit.as_deref()) {
                ("imageCountMoreThan", None) => {}
                ("imageCountMoreThan", Some(_)) => errs.push(format!(
                    "{at}: selection.countUnit is not allowed with countType imageCountMoreThan"
                )),
                ("sinceImagePushed", Some("days")) => {}
                ("sinceImagePushed", u) => errs.push(format!(
                    "{at}: selection.countUnit must be `days` with countType sinceImagePushed (got {u:?})"
                )),
                (other, _) => errs.push(format!(
                    "{at}: selection.countType `{other}`: expected imageCountMoreThan or sinceImagePushed"
                )),
            }
            if s.count_number < 1 {
                errs.push(format!("{at}: selection.countNumber must be 1 or more"));
            }
            if r.action.kind != "expire" {
                errs.push(format!(
                    "{at}: action.type `{}`: the only action is `expire`",
                    r.action.kind
                ));
            }
        }
        if untagged > 1 {
            errs.push("only one rule may select tagStatus `untagged`".to_string());
        }
        let max = f.rules.iter().map(|r| r.rule_priority).max().unwrap_or(0);
        for r in &f.rules {
            if r.selection.tag_status == "any" && r.rule_priority != max {
                errs.push(format!(
                    "rule {}: a rule with tagStatus `any` must have the highest rulePriority",
                    r.rule_priority
                ));
            }
        }
        if errs.is_empty() {
            let mut rules = f.rules;
            rules.sort_by_key(|r| r.rule_priority);
            Ok(LifecyclePolicy { rules })
        } else {
            Err(PolicyError(errs))
        }
    }

    /// The images that expire now, each with the priority of the rule that expires it, oldest
    /// push first. `images` are newest first.
    pub fn evaluate(&self, images: &[ImageRow], now_ms: i64) -> Vec<(ImageRow, i64)> {
        let mut claimed = vec![false; images.len()];
        let mut out = Vec::new();
        for rule in &self.rules {
            let s = &rule.selection;
            let matching: Vec<usize> = (0..images.len())
                .filter(|&i| !claimed[i] && selects(s, &images[i]))
                .collect();
            for &i in &matching {
                claimed[i] = true;
            }
            let expire: Vec<usize> = match s.count_type.as_str() {
                "imageCountMoreThan" => matching
                    .iter()
                    .copied()
                    .skip(usize::try_from(s.count_number).unwrap_or(usize::MAX))
                    .collect(),
                _ => {
                    let cutoff = now_ms - s.count_number.saturating_mul(86_400_000);
                    matching
                        .iter()
                        .copied()
                        .filter(|&i| images[i].pushed_ms < cutoff)
                        .collect()
                }
            };
            out.extend(
                expire
                    .into_iter()
                    .map(|i| (images[i].clone(), rule.rule_priority)),
            );
        }
        out.sort_by_key(|(img, _)| img.pushed_ms);
        out
    }
}

fn selects(s: &Selection, img: &ImageRow) -> bool {
    match s.tag_status.as_str() {
        "untagged" => img.tags.is_empty(),
        "tagged" => s
            .tag_prefix_list
            .as_deref()
            .unwrap_or_default()
            .iter()
            .all(|p| img.tags.iter().any(|t| t.starts_with(p.as_str()))),
        _ => true,
    }
}

/// One expired (or, in a preview, expiring) image.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Expiry {
    pub repository: String,
    pub digest: String,
    pub tags: Vec<String>,
    pub pushed_ms: i64,
    pub rule_priority: i64,
}

/// What a repository's policy expires now; with `apply`, the images are deleted.
pub async fn run(reg: &Registry, repo: &str, apply: bool) -> Result<Vec<Expiry>, RegistryError> {
    let Some(r) = reg.db.registry_repo(repo).await? else {
        return Ok(Vec::new());
    };
    let Some(text) = &r.lifecycle else {
        return Ok(Vec::new());
    };
    let policy = LifecyclePolicy::parse(text).map_err(|e| RegistryError::Other(e.to_string()))?;
    let images = reg.db.registry_images(r.id).await?;
    let mut out = Vec::new();
    for (img, prio) in policy.evaluate(&images, crate::now_ms()) {
        if apply {
            delete_image(reg, r.id, &img.digest).await?;
        }
        out.push(Expiry {
            repository: repo.to_string(),
            digest: img.digest.to_string(),
            tags: img.tags,
            pushed_ms: img.pushed_ms,
            rule_priority: prio,
        });
    }
    if apply && !out.is_empty() {
        tracing::info!(
            repository = repo,
            expired = out.len(),
            "lifecycle policy applied"
        );
    }
    Ok(out)
}

/// Deletes a manifest with its tags, its referrers and (for an index) the children no other
/// manifest includes.
pub async fn delete_image(reg: &Registry, repo_id: i64, d: &Digest) -> Result<(), RegistryError> {
    let children = reg.db.registry_children(repo_id, d).await?;
    for r in reg.db.registry_referrers(repo_id, d).await? {
        reg.db.registry_delete_manifest(repo_id, &r.digest).await?;
    }
    reg.db.registry_delete_manifest(repo_id, d).await?;
    let images = reg.db.registry_images(repo_id).await?;
    for c in children {
        // Now a top-level image only if nothing else includes it: then it goes too.
        if images.iter().any(|i| i.digest == c && i.tags.is_empty()) {
            reg.db.registry_delete_manifest(repo_id, &c).await?;
        }
    }
    Ok(())
}

/// The background pass: every repository with a policy.
pub async fn apply_all(reg: &Registry) -> Result<usize, RegistryError> {
    let mut n = 0;
    for r in reg.db.registry_repos(None).await? {
        if r.repo.lifecycle.is_some() {
            n += run(reg, &r.repo.name, true).await?.len();
        }
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn img(n: u8, age_days: i64, tags: &[&str]) -> ImageRow {
        ImageRow {
            digest: Digest::of(&[n]),
            pushed_ms: 100 * 86_400_000 - age_days * 86_400_000,
            tags: tags.iter().map(|t| t.to_string()).collect(),
        }
    }

    #[test]
    fn invalid_policies_list_every_problem() {
        let e = LifecyclePolicy::parse(
            r#"{"rules":[
              {"rulePriority":1,"selection":{"tagStatus":"any","countType":"imageCountMoreThan","countNumber":1},"action":{"type":"expire"}},
              {"rulePriority":1,"selection":{"tagStatus":"tagged","countType":"sinceImagePushed","countNumber":0},"action":{"type":"keep"}},
              {"rulePriority":3,"selection":{"tagStatus":"untagged","countType":"imageCountMoreThan","countUnit":"days","countNumber":1},"action":{"type":"expire"}}
            ]}"#,
        )
        .unwrap_err();
        let text = e.to_string();
        for want in [
            "same rulePriority",
            "tagPrefixList must list",
            "countUnit must be `days`",
            "countNumber must be 1",
            "the only action is `expire`",
            "countUnit is not allowed",
            "highest rulePriority",
        ] {
            assert!(text.contains(want), "missing {want:?} in {text}");
        }
        let e =
            LifecyclePolicy::parse(r#"{"rules":[{"rulePriority":1,"selectoin":{}}]}"#).unwrap_err();
        assert!(e.to_string().contains("unknown field `selectoin`"), "{e}");
    }

    #[test]
    fn rules_apply_by_priority_and_an_image_matched_once_is_not_reconsidered() {
        let p = LifecyclePolicy::parse(
            r#"{"rules":[
              {"rulePriority":1,"description":"keep 2 releases","selection":{"tagStatus":"tagged","tagPrefixList":["v"],"countType":"imageCountMoreThan","countNumber":2},"action":{"type":"expire"}},
              {"rulePriority":2,"selection":{"tagStatus":"untagged","countType":"sinceImagePushed","countUnit":"days","countNumber":7},"action":{"type":"expire"}},
              {"rulePriority":9,"selection":{"tagStatus":"any","countType":"imageCountMoreThan","countNumber":1},"action":{"type":"expire"}}
            ]}"#,
        )
        .unwrap();
        // Newest first.
        let images = vec![
            img(1, 1, &["v3"]),
            img(2, 2, &["dev"]),
            img(3, 3, &["v2"]),
            img(4, 8, &[]),
            img(5, 9, &["v1"]),
            img(6, 10, &["dev-old"]),
            img(7, 2, &[]),
        ];
        let out = p.evaluate(&images, 100 * 86_400_000);
        let got: Vec<(u8, i64)> = out
            .iter()
            .map(|(i, p)| {
                (
                    images.iter().position(|x| x.digest == i.digest).unwrap() as u8 + 1,
                    *p,
                )
            })
            .collect();
        // v1 goes by rule 1 (v3, v2 kept and not reconsidered), the 8-day untagged by rule 2
        // (the 2-day one matched rule 2 and is kept), dev-old by rule 9 (dev kept as newest).
        assert_eq!(got, vec![(6, 9), (5, 1), (4, 2)]);
    }
}
