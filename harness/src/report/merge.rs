//! `kata-harness merge`: the result dirs of one run's shards (`run --shard K/N`) as one
//! report, the one the whole run would have written: the same trials, verdicts and summary,
//! the results in plan order (testbed by testbed, as a whole run runs them), the failure
//! bundles copied beside it.
//!
//! Invariant: every check passes before anything is written, and the reports are written in a
//! staging dir first, so a failed merge leaves `--out` as it was. The checks: each dir has a
//! readable `results.json` with a shard record; every shard is of the same N and of the same
//! run (command, target, selection, plan); no trial and no testbed is in two shards; no shard
//! is missing; every bundle a result names is there.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::identity::ShardRecord;
use super::{RunInfo, TrialResult};

/// One shard's results as read back.
#[derive(Debug, Clone)]
pub struct ShardResults {
    pub dir: PathBuf,
    pub info: RunInfo,
    pub shard: ShardRecord,
    pub results: Vec<TrialResult>,
}

/// What `results.json` holds that a merge reads (its `summary` is counted again).
#[derive(Deserialize)]
struct ResultsFile {
    run: RunInfo,
    trials: Vec<TrialResult>,
}

#[derive(Debug, thiserror::Error)]
pub enum MergeError {
    #[error("no result dirs to merge")]
    NoDirs,
    #[error("failed to read {}", file.display())]
    Read {
        file: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("failed to parse {} (a results.json)", file.display())]
    Parse {
        file: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("{}: field run.shard: missing (not the results of `run --shard K/N`)", file.display())]
    NotAShard { file: PathBuf },
    #[error("{} is shard {a_shard} and {} is shard {b_shard}: shards of different N do not merge", a.display(), b.display())]
    DifferentCount {
        a: PathBuf,
        a_shard: String,
        b: PathBuf,
        b_shard: String,
    },
    #[error("{} and {} are shards of different runs: their {field} differ ({a_value} / {b_value})", a.display(), b.display())]
    DifferentRun {
        a: PathBuf,
        b: PathBuf,
        field: &'static str,
        a_value: String,
        b_value: String,
    },
    #[error("trial {name} is in both {} (shard {a_shard}) and {} (shard {b_shard})", a.display(), b.display())]
    DuplicateTrial {
        name: String,
        a: PathBuf,
        a_shard: String,
        b: PathBuf,
        b_shard: String,
    },
    #[error("shard {shard} is given twice: {} and {}", a.display(), b.display())]
    SameShard { shard: String, a: PathBuf, b: PathBuf },
    #[error("missing shard {missing} of {count} (given: {given})")]
    Missing {
        missing: String,
        count: usize,
        given: String,
    },
    #[error("testbed {group} is in both {} and {}", a.display(), b.display())]
    GroupTwice { group: String, a: PathBuf, b: PathBuf },
    #[error(
        "testbed {group} of the plan is in no shard (were the shards balanced with different --durations?)"
    )]
    GroupNowhere { group: String },
    #[error("trial {trial}: its failure bundle {} is missing", path.display())]
    MissingBundle { trial: String, path: PathBuf },
    #[error("--out {}: is one of the shard dirs being merged", out.display())]
    OutIsInput { out: PathBuf },
    #[error("failed to write the merged results to {}", dir.display())]
    Write {
        dir: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// Reads `dir/results.json` of a shard.
pub fn load(dir: &Path) -> Result<ShardResults, MergeError> {
    let file = dir.join("results.json");
    let text = std::fs::read_to_string(&file).map_err(|source| MergeError::Read {
        file: file.clone(),
        source,
    })?;
    let parsed: ResultsFile = serde_json::from_str(&text).map_err(|source| MergeError::Parse {
        file: file.clone(),
        source,
    })?;
    let shard = parsed.run.shard.clone().ok_or(MergeError::NotAShard { file })?;
    Ok(ShardResults {
        dir: dir.to_owned(),
        info: parsed.run,
        shard,
        results: parsed.trials,
    })
}

/// The merged run: its facts, its results in plan order, and the bundles to copy
/// (`(from, dir name under bundles/)`), each result's `bundle` already pointing into `out`.
#[derive(Debug)]
pub struct Merged {
    pub info: RunInfo,
    pub results: Vec<TrialResult>,
    pub bundles: Vec<(PathBuf, String)>,
}

/// Checks `shards` are the whole of one run and combines them, for writing into `out`.
pub fn merge(mut shards: Vec<ShardResults>, out: &Path) -> Result<Merged, MergeError> {
    let first = shards.first().ok_or(MergeError::NoDirs)?.clone();
    for other in &shards[1..] {
        same_run(&first, other)?;
    }
    no_trial_twice(&shards)?;
    shards.sort_by_key(|s| s.shard.index);
    for pair in shards.windows(2) {
        if pair[0].shard.index == pair[1].shard.index {
            return Err(MergeError::SameShard {
                shard: pair[0].shard.to_string(),
                a: pair[0].dir.clone(),
                b: pair[1].dir.clone(),
            });
        }
    }
    let count = first.shard.count;
    let missing: Vec<String> = (1..=count)
        .filter(|k| !shards.iter().any(|s| s.shard.index == *k))
        .map(|k| k.to_string())
        .collect();
    if !missing.is_empty() {
        let given: Vec<String> = shards
            .iter()
            .map(|s| format!("{} from {}", s.shard, s.dir.display()))
            .collect();
        return Err(MergeError::Missing {
            missing: missing.join(", "),
            count,
            given: given.join(", "),
        });
    }
    every_group_once(&shards)?;
    let plan = &first.shard.plan_groups;
    let group_of = |variant: &str| plan.iter().position(|g| g == variant).unwrap_or(plan.len());
    let mut results: Vec<(usize, TrialResult)> = Vec::new();
    let mut bundles = Vec::new();
    for shard in &shards {
        for result in &shard.results {
            let mut result = result.clone();
            if let Some(path) = &result.bundle {
                let name = path
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default();
                let from = shard.dir.join("bundles").join(&name);
                if name.is_empty() || !from.is_dir() {
                    return Err(MergeError::MissingBundle {
                        trial: result.name.clone(),
                        path: from,
                    });
                }
                result.bundle = Some(out.join("bundles").join(&name));
                bundles.push((from, name));
            }
            results.push((group_of(&result.variant), result));
        }
    }
    // Stable: within a testbed, the order its shard ran it in.
    results.sort_by_key(|(group, _)| *group);
    let info = RunInfo {
        command: first.info.command.clone(),
        target: first.info.target.clone(),
        environment: environment(&shards),
        selection: first.info.selection.clone(),
        shard: None,
    };
    Ok(Merged {
        info,
        results: results.into_iter().map(|(_, r)| r).collect(),
        bundles,
    })
}

/// The same N, command, target, selection and plan as the first shard.
fn same_run(first: &ShardResults, other: &ShardResults) -> Result<(), MergeError> {
    if first.shard.count != other.shard.count {
        return Err(MergeError::DifferentCount {
            a: first.dir.clone(),
            a_shard: first.shard.to_string(),
            b: other.dir.clone(),
            b_shard: other.shard.to_string(),
        });
    }
    let fields: [(&'static str, String, String); 4] = [
        (
            "run.command",
            json(&first.info.command),
            json(&other.info.command),
        ),
        ("run.target", json(&first.info.target), json(&other.info.target)),
        (
            "run.selection",
            json(&first.info.selection),
            json(&other.info.selection),
        ),
        (
            "run.shard.plan_groups",
            json(&first.shard.plan_groups),
            json(&other.shard.plan_groups),
        ),
    ];
    for (field, a_value, b_value) in fields {
        if a_value != b_value {
            return Err(MergeError::DifferentRun {
                a: first.dir.clone(),
                b: other.dir.clone(),
                field,
                a_value,
                b_value,
            });
        }
    }
    Ok(())
}

/// A value as compact JSON, for comparing it and naming it in an error.
fn json<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_string(value).unwrap_or_default()
}

fn no_trial_twice(shards: &[ShardResults]) -> Result<(), MergeError> {
    let mut seen: BTreeMap<&str, &ShardResults> = BTreeMap::new();
    for shard in shards {
        for result in &shard.results {
            if let Some(before) = seen.insert(&result.name, shard) {
                return Err(MergeError::DuplicateTrial {
                    name: result.name.clone(),
                    a: before.dir.clone(),
                    a_shard: before.shard.to_string(),
                    b: shard.dir.clone(),
                    b_shard: shard.shard.to_string(),
                });
            }
        }
    }
    Ok(())
}

/// Each testbed of the plan in exactly one shard's groups.
fn every_group_once(shards: &[ShardResults]) -> Result<(), MergeError> {
    let mut holder: BTreeMap<&str, &Path> = BTreeMap::new();
    for shard in shards {
        for group in &shard.shard.groups {
            if let Some(before) = holder.insert(group, &shard.dir) {
                return Err(MergeError::GroupTwice {
                    group: group.clone(),
                    a: before.to_owned(),
                    b: shard.dir.clone(),
                });
            }
        }
    }
    match shards[0]
        .shard
        .plan_groups
        .iter()
        .find(|g| !holder.contains_key(g.as_str()))
    {
        Some(group) => Err(MergeError::GroupNowhere { group: group.clone() }),
        None => Ok(()),
    }
}

/// The shards' facts as one run's: the run's own first (a value the shards disagree on, such
/// as the host kernel of different CI runners, as each shard's), then each testbed's
/// (`<variant>.<fact>`) in plan order.
fn environment(shards: &[ShardResults]) -> Vec<(String, String)> {
    let plan = &shards[0].shard.plan_groups;
    let testbed = |key: &str| {
        plan.iter().position(|g| {
            key.strip_prefix(g.as_str())
                .is_some_and(|rest| rest.starts_with('.'))
        })
    };
    let mut values: Vec<(String, Vec<(String, &ShardRecord)>)> = Vec::new();
    for shard in shards {
        for (key, value) in &shard.info.environment {
            match values.iter_mut().find(|(k, _)| k == key) {
                Some((_, seen)) => seen.push((value.clone(), &shard.shard)),
                None => values.push((key.clone(), vec![(value.clone(), &shard.shard)])),
            }
        }
    }
    let mut merged: Vec<(Option<usize>, String, String)> = values
        .into_iter()
        .map(|(key, seen)| {
            let value = if seen.iter().all(|(v, _)| *v == seen[0].0) {
                seen[0].0.clone()
            } else {
                let each: Vec<String> = seen.iter().map(|(v, s)| format!("{v} (shard {s})")).collect();
                each.join("; ")
            };
            (testbed(&key), key, value)
        })
        .collect();
    // Stable: the run's own facts (None) first, then by testbed.
    merged.sort_by_key(|(group, _, _)| group.map_or(0, |g| g + 1));
    merged.into_iter().map(|(_, k, v)| (k, v)).collect()
}

/// Writes the merged reports and bundles into `out`, through a staging dir beside it.
pub fn write(out: &Path, merged: &Merged, inputs: &[PathBuf]) -> Result<(), MergeError> {
    let canonical = |p: &Path| std::path::absolute(p).map(|p| p.canonicalize().unwrap_or(p));
    let out_abs = canonical(out).unwrap_or_else(|_| out.to_owned());
    if inputs
        .iter()
        .any(|dir| canonical(dir).is_ok_and(|d| d == out_abs))
    {
        return Err(MergeError::OutIsInput { out: out.to_owned() });
    }
    let failed = |source| MergeError::Write {
        dir: out.to_owned(),
        source,
    };
    let parent = out_abs.parent().unwrap_or(Path::new("/"));
    std::fs::create_dir_all(parent).map_err(failed)?;
    let staging = tempfile::Builder::new()
        .prefix(".kata-harness-merge-")
        .tempdir_in(parent)
        .map_err(failed)?;
    for (from, name) in &merged.bundles {
        copy_tree(from, &staging.path().join("bundles").join(name)).map_err(failed)?;
    }
    super::write_reports(staging.path(), &merged.info, &merged.results).map_err(failed)?;
    move_into(staging.path(), out).map_err(failed)
}

fn copy_tree(from: &Path, to: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            copy_tree(&entry.path(), &target)?;
        } else {
            std::fs::copy(entry.path(), target)?;
        }
    }
    Ok(())
}

/// Moves what `staging` holds into `out`: `out` itself where it does not exist yet, else each
/// report and each bundle, replacing what was there of the same name.
fn move_into(staging: &Path, out: &Path) -> std::io::Result<()> {
    if !out.exists() {
        return std::fs::rename(staging, out);
    }
    let bundles = staging.join("bundles");
    if bundles.is_dir() {
        std::fs::create_dir_all(out.join("bundles"))?;
        for entry in std::fs::read_dir(&bundles)? {
            let entry = entry?;
            let target = out.join("bundles").join(entry.file_name());
            if target.exists() {
                std::fs::remove_dir_all(&target)?;
            }
            std::fs::rename(entry.path(), target)?;
        }
    }
    for name in ["junit.xml", "results.json", "results.html"] {
        std::fs::rename(staging.join(name), out.join(name))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::identity::Selection;
    use crate::report::{Evidence, Verdict};

    const PLAN: [&str; 3] = ["containerd-1.6", "containerd-1.7", "containerd-2.1"];

    fn result(name: &str, verdict: Verdict) -> TrialResult {
        let variant = name.rsplit("::").next().unwrap().to_owned();
        TrialResult {
            name: name.into(),
            suite: "s".into(),
            scenario: name.split("::").nth(1).unwrap().into(),
            variant,
            verdict,
            expected: "io.containerd.runc.v2".into(),
            observed: "io.containerd.runc.v2".into(),
            message: String::new(),
            seconds: 1.0,
            conditions: vec![],
            bundle: None,
            attempts: vec![],
            evidence: Evidence::default(),
        }
    }

    /// Shard `k` of `n` of the run, holding `groups`' rows a (passed) and b (failed, with its
    /// bundle), written into `root/<name>` as `run --shard` writes it.
    fn shard_dir(root: &Path, name: &str, k: usize, n: usize, groups: &[&str]) -> PathBuf {
        let dir = root.join(name);
        let mut results = Vec::new();
        for group in groups {
            results.push(result(&format!("s::a::{group}"), Verdict::Passed));
            results.push(result(&format!("s::b::{group}"), Verdict::Failed));
        }
        let info = RunInfo {
            command: "kata-harness run --target local".into(),
            target: "local".into(),
            environment: std::iter::once(("host-kernel".to_owned(), format!("6.1.{k}")))
                .chain(groups.iter().map(|g| (format!("{g}.version"), format!("v-{g}"))))
                .collect(),
            selection: Some(Selection::of(["whole plan"], Some("s::"), false)),
            shard: Some(ShardRecord {
                index: k,
                count: n,
                groups: groups.iter().map(|g| g.to_string()).collect(),
                plan_groups: PLAN.map(String::from).to_vec(),
                balanced_by: "trial counts".into(),
            }),
        };
        std::fs::create_dir_all(&dir).unwrap();
        crate::report::write_results(&dir, &info, &mut results).unwrap();
        dir
    }

    fn merge_dirs(dirs: &[PathBuf], out: &Path) -> Result<Merged, String> {
        let shards = dirs
            .iter()
            .map(|d| load(d))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| crate::errors::chain(&e))?;
        let merged = merge(shards, out).map_err(|e| crate::errors::chain(&e))?;
        write(out, &merged, dirs).map_err(|e| crate::errors::chain(&e))?;
        Ok(merged)
    }

    #[test]
    fn shards_merge_into_plan_order_with_their_bundles_and_facts() {
        let root = tempfile::tempdir().unwrap();
        let two = shard_dir(root.path(), "two", 2, 2, &["containerd-1.7"]);
        let one = shard_dir(root.path(), "one", 1, 2, &["containerd-1.6", "containerd-2.1"]);
        let out = root.path().join("merged");
        let merged = merge_dirs(&[two, one], &out).unwrap();
        let names: Vec<&str> = merged.results.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "s::a::containerd-1.6",
                "s::b::containerd-1.6",
                "s::a::containerd-1.7",
                "s::b::containerd-1.7",
                "s::a::containerd-2.1",
                "s::b::containerd-2.1"
            ]
        );
        let json: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(out.join("results.json")).unwrap()).unwrap();
        assert_eq!(json["summary"]["passed"], 3);
        assert_eq!(json["summary"]["failed"], 3);
        assert!(json["run"].get("shard").is_none(), "{}", json["run"]);
        assert_eq!(json["run"]["selection"]["filter"], "s::");
        let bundle = out.join("bundles/s__b__containerd-1.7");
        assert!(bundle.join("reproduce.sh").is_file());
        assert_eq!(json["trials"][3]["bundle"], bundle.to_str().unwrap());
        assert!(std::fs::read_to_string(out.join("junit.xml"))
            .unwrap()
            .contains("s::b::containerd-2.1"));
        // The run's facts first, the shards' disagreement kept; then each testbed's, in plan order.
        let keys: Vec<&str> = merged.info.environment.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(
            keys,
            [
                "host-kernel",
                "containerd-1.6.version",
                "containerd-1.7.version",
                "containerd-2.1.version"
            ]
        );
        assert_eq!(
            merged.info.environment[0].1,
            "6.1.1 (shard 1/2); 6.1.2 (shard 2/2)"
        );
    }

    /// A merge that fails names `expected` and leaves `out` unwritten.
    fn fails(root: &Path, dirs: &[PathBuf], expected: &str) {
        let out = root.join("out");
        let error = merge_dirs(dirs, &out).unwrap_err();
        assert!(error.contains(expected), "{error}\nexpected: {expected}");
        assert!(!out.exists(), "{error}: {} was written", out.display());
    }

    #[test]
    fn a_shard_given_twice_is_a_duplicate_naming_the_trial_and_both_dirs() {
        let root = tempfile::tempdir().unwrap();
        let one = shard_dir(root.path(), "one", 1, 2, &["containerd-1.6", "containerd-2.1"]);
        let copy = shard_dir(root.path(), "copy", 1, 2, &["containerd-1.6", "containerd-2.1"]);
        let two = shard_dir(root.path(), "two", 2, 2, &["containerd-1.7"]);
        let expected = format!(
            "trial s::a::containerd-1.6 is in both {} (shard 1/2) and {} (shard 1/2)",
            one.display(),
            copy.display()
        );
        fails(root.path(), &[one.clone(), copy, two.clone()], &expected);
        // Empty shards have no trials to collide: the shard itself is given twice.
        let a = shard_dir(root.path(), "a", 1, 2, &[]);
        let b = shard_dir(root.path(), "b", 1, 2, &[]);
        fails(
            root.path(),
            &[a.clone(), b.clone(), two],
            &format!("shard 1/2 is given twice: {} and {}", a.display(), b.display()),
        );
    }

    #[test]
    fn a_missing_shard_is_named() {
        let root = tempfile::tempdir().unwrap();
        let two = shard_dir(root.path(), "two", 2, 3, &["containerd-1.7"]);
        fails(
            root.path(),
            std::slice::from_ref(&two),
            &format!("missing shard 1, 3 of 3 (given: 2/3 from {})", two.display()),
        );
    }

    #[test]
    fn shards_of_different_n_or_runs_do_not_merge() {
        let root = tempfile::tempdir().unwrap();
        let one = shard_dir(root.path(), "one", 1, 2, &["containerd-1.6", "containerd-2.1"]);
        let other_n = shard_dir(root.path(), "n3", 2, 3, &["containerd-1.7"]);
        fails(root.path(), &[one.clone(), other_n.clone()], "is shard 1/2 and");
        let other_run = shard_dir(root.path(), "other", 2, 2, &["containerd-1.7"]);
        let file = other_run.join("results.json");
        let text = std::fs::read_to_string(&file).unwrap();
        std::fs::write(
            &file,
            text.replace("\"filter\": \"s::\"", "\"filter\": \"cri::\""),
        )
        .unwrap();
        fails(
            root.path(),
            &[one, other_run],
            "are shards of different runs: their run.selection differ",
        );
    }

    #[test]
    fn a_testbed_in_no_shard_or_in_two_is_an_error() {
        let root = tempfile::tempdir().unwrap();
        let one = shard_dir(root.path(), "one", 1, 2, &["containerd-1.6"]);
        let two = shard_dir(root.path(), "two", 2, 2, &["containerd-1.7"]);
        fails(
            root.path(),
            &[one.clone(), two],
            "testbed containerd-2.1 of the plan is in no shard",
        );
        // Shard 2 as if balanced otherwise: 1.6 again (no trials of its own in the file).
        let again = shard_dir(root.path(), "again", 2, 2, &[]);
        let file = again.join("results.json");
        let text = std::fs::read_to_string(&file).unwrap();
        std::fs::write(
            &file,
            text.replace("\"groups\": []", "\"groups\": [\"containerd-1.6\"]"),
        )
        .unwrap();
        fails(root.path(), &[one, again], "testbed containerd-1.6 is in both");
    }

    #[test]
    fn unreadable_results_and_missing_bundles_name_the_file() {
        let root = tempfile::tempdir().unwrap();
        let one = shard_dir(root.path(), "one", 1, 2, &["containerd-1.6", "containerd-2.1"]);
        let two = shard_dir(root.path(), "two", 2, 2, &["containerd-1.7"]);
        let file = two.join("results.json");
        let text = std::fs::read_to_string(&file).unwrap();

        std::fs::write(&file, "{\"run\": ").unwrap();
        fails(
            root.path(),
            &[one.clone(), two.clone()],
            &format!("failed to parse {} (a results.json)", file.display()),
        );
        std::fs::write(
            &file,
            text.replace("\"verdict\": \"passed\"", "\"verdict\": \"won\""),
        )
        .unwrap();
        fails(root.path(), &[one.clone(), two.clone()], "unknown variant `won`");
        let whole: serde_json::Value = serde_json::from_str(&text).unwrap();
        let mut unsharded = whole.clone();
        unsharded["run"].as_object_mut().unwrap().remove("shard");
        std::fs::write(&file, unsharded.to_string()).unwrap();
        fails(
            root.path(),
            &[one.clone(), two.clone()],
            &format!("{}: field run.shard: missing", file.display()),
        );
        std::fs::remove_file(&file).unwrap();
        fails(
            root.path(),
            &[one.clone(), two.clone()],
            &format!("failed to read {}", file.display()),
        );

        std::fs::write(&file, &text).unwrap();
        let bundle = two.join("bundles/s__b__containerd-1.7");
        std::fs::remove_dir_all(&bundle).unwrap();
        fails(
            root.path(),
            &[one, two],
            &format!(
                "trial s::b::containerd-1.7: its failure bundle {} is missing",
                bundle.display()
            ),
        );
    }

    #[test]
    fn out_may_not_be_a_shard_dir_and_a_rerun_replaces_what_it_wrote() {
        let root = tempfile::tempdir().unwrap();
        let one = shard_dir(root.path(), "one", 1, 2, &["containerd-1.6", "containerd-2.1"]);
        let two = shard_dir(root.path(), "two", 2, 2, &["containerd-1.7"]);
        let before = std::fs::read_to_string(one.join("results.json")).unwrap();
        let error = merge_dirs(&[one.clone(), two.clone()], &one).unwrap_err();
        assert!(error.contains("is one of the shard dirs"), "{error}");
        assert_eq!(std::fs::read_to_string(one.join("results.json")).unwrap(), before);
        let out = root.path().join("merged");
        merge_dirs(&[one.clone(), two.clone()], &out).unwrap();
        merge_dirs(&[one, two], &out).unwrap();
        assert_eq!(std::fs::read_dir(out.join("bundles")).unwrap().count(), 3);
    }
}
