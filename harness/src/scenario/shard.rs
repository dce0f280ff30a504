//! `--shard K/N`: a deterministic share of a run's planned trials.
//!
//! A share is made of whole testbeds (a variant's trials: a containerd line's, a VM image's,
//! the cluster's), never a split one, since its trials share one node. The testbeds are
//! balanced over the N shards by weight, heaviest first, each to the lightest shard so far
//! (ties to the lower K): a testbed's weight is its recorded seconds where a durations file
//! (`--durations`: a `results.json` of an earlier run, or `{"groups": {label: seconds}}`) has
//! it, else the number of its trials that will run (skips cost nothing) times the recorded
//! seconds per trial (1 where nothing is recorded).
//!
//! Invariant: the same trials, variants, N and durations give every K the same assignment,
//! so the N shards together run every trial exactly once.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::plan::{Trial, Variant};
use crate::report::identity::ShardRecord;

/// `K/N`: the K-th of N shares (K from 1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    pub index: usize,
    pub count: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum ShardError {
    #[error("expected K/N, two whole numbers such as 2/3, not {text:?}")]
    Malformed { text: String },
    #[error("N, the number of shards, must be at least 1 (got {text:?})")]
    NoShards { text: String },
    #[error("K must be from 1 to N ({count}), not {index}")]
    OutOfRange { index: usize, count: usize },
    #[error("failed to read the durations file {}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("failed to parse the durations file {} as JSON", path.display())]
    Parse {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("durations file {}: field {field}: {why}", path.display())]
    Field {
        path: PathBuf,
        field: String,
        why: String,
    },
}

impl std::str::FromStr for Shard {
    type Err = ShardError;

    fn from_str(text: &str) -> Result<Self, ShardError> {
        let malformed = || ShardError::Malformed {
            text: text.to_owned(),
        };
        let (k, n) = text.split_once('/').ok_or_else(malformed)?;
        let number = |s: &str| {
            (!s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
                .then(|| s.parse::<usize>().ok())
                .flatten()
                .ok_or_else(malformed)
        };
        let (index, count) = (number(k)?, number(n)?);
        if count == 0 {
            return Err(ShardError::NoShards {
                text: text.to_owned(),
            });
        }
        if index == 0 || index > count {
            return Err(ShardError::OutOfRange { index, count });
        }
        Ok(Shard { index, count })
    }
}

impl std::fmt::Display for Shard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

/// Recorded seconds per testbed (variant label).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Durations {
    /// Where they were read, for the shard record.
    pub source: String,
    pub seconds: BTreeMap<String, f64>,
}

impl Durations {
    /// Reads a `results.json` (its trials' `seconds` summed per `variant`) or a file of
    /// `{"groups": {"<variant>": seconds}}`.
    pub fn load(path: &Path) -> Result<Self, ShardError> {
        let text = std::fs::read_to_string(path).map_err(|source| ShardError::Read {
            path: path.to_owned(),
            source,
        })?;
        let doc: serde_json::Value = serde_json::from_str(&text).map_err(|source| ShardError::Parse {
            path: path.to_owned(),
            source,
        })?;
        let field = |field: &str, why: &str| ShardError::Field {
            path: path.to_owned(),
            field: field.to_owned(),
            why: why.to_owned(),
        };
        let mut seconds = BTreeMap::new();
        if let Some(trials) = doc.get("trials") {
            let trials = trials.as_array().ok_or_else(|| field("trials", "not a list"))?;
            for (i, trial) in trials.iter().enumerate() {
                let variant = trial["variant"]
                    .as_str()
                    .ok_or_else(|| field(&format!("trials[{i}].variant"), "missing or not text"))?;
                let took = trial["seconds"]
                    .as_f64()
                    .filter(|s| s.is_finite() && *s >= 0.0)
                    .ok_or_else(|| {
                        field(
                            &format!("trials[{i}].seconds"),
                            "missing or not a number of seconds",
                        )
                    })?;
                *seconds.entry(variant.to_owned()).or_insert(0.0) += took;
            }
        } else if let Some(groups) = doc.get("groups") {
            let groups = groups
                .as_object()
                .ok_or_else(|| field("groups", "not a map of variant to seconds"))?;
            for (label, took) in groups {
                let took = took
                    .as_f64()
                    .filter(|s| s.is_finite() && *s >= 0.0)
                    .ok_or_else(|| field(&format!("groups.{label}"), "not a number of seconds"))?;
                seconds.insert(label.clone(), took);
            }
        } else {
            return Err(field(
                "trials",
                "missing: neither a results.json (trials) nor a durations file (groups)",
            ));
        }
        Ok(Durations {
            source: path.display().to_string(),
            seconds,
        })
    }
}

/// One testbed's trials, as the balancing sees them.
#[derive(Debug, Clone, PartialEq)]
pub struct Group {
    pub label: String,
    /// Its trials that will run (not skipped).
    pub runnable: usize,
    pub weight: f64,
}

/// The testbeds that have trials, in `variants` order, each weighed. A testbed is known by
/// its variant's label (what results and shard records name), so variants of one label stay
/// in one group.
pub fn groups(trials: &[Trial], variants: &[Variant], durations: Option<&Durations>) -> Vec<Group> {
    let recorded = |label: &str| durations.and_then(|d| d.seconds.get(label).copied());
    let mut labels: Vec<&str> = Vec::new();
    for variant in variants {
        let label = variant.label.as_str();
        if !labels.contains(&label) && trials.iter().any(|t| t.variant.label == label) {
            labels.push(label);
        }
    }
    let groups: Vec<(String, usize, Option<f64>)> = labels
        .into_iter()
        .map(|label| {
            let runnable = trials
                .iter()
                .filter(|t| t.variant.label == label && t.skip.is_none())
                .count();
            (label.to_owned(), runnable, recorded(label))
        })
        .collect();
    let (known_seconds, known_trials) = groups
        .iter()
        .filter_map(|(_, n, s)| s.map(|s| (s, *n)))
        .fold((0.0, 0), |(s, n), (gs, gn)| (s + gs, n + gn));
    let per_trial = if known_trials > 0 {
        known_seconds / known_trials as f64
    } else {
        1.0
    };
    groups
        .into_iter()
        .map(|(label, runnable, seconds)| Group {
            label,
            runnable,
            weight: seconds.unwrap_or(runnable as f64 * per_trial),
        })
        .collect()
}

/// The shard (0-based) of each group: heaviest first (ties in plan order), each to the
/// lightest shard so far (ties to the lowest).
pub fn assign(groups: &[Group], count: usize) -> Vec<usize> {
    let mut order: Vec<usize> = (0..groups.len()).collect();
    order.sort_by(|&a, &b| groups[b].weight.total_cmp(&groups[a].weight).then(a.cmp(&b)));
    let mut load = vec![0.0_f64; count.max(1)];
    let mut shard_of = vec![0; groups.len()];
    for g in order {
        let lightest = (0..load.len())
            .min_by(|&a, &b| load[a].total_cmp(&load[b]).then(a.cmp(&b)))
            .unwrap_or(0);
        load[lightest] += groups[g].weight;
        shard_of[g] = lightest;
    }
    shard_of
}

/// The trials of `shard` (in plan order) and its record for the reports.
pub fn select(
    trials: Vec<Trial>,
    variants: &[Variant],
    shard: Shard,
    durations: Option<&Durations>,
) -> (Vec<Trial>, ShardRecord) {
    let groups = groups(&trials, variants, durations);
    let shard_of = assign(&groups, shard.count);
    let mine: Vec<String> = groups
        .iter()
        .zip(&shard_of)
        .filter(|(_, s)| **s + 1 == shard.index)
        .map(|(g, _)| g.label.clone())
        .collect();
    let record = ShardRecord {
        index: shard.index,
        count: shard.count,
        groups: mine.clone(),
        plan_groups: groups.iter().map(|g| g.label.clone()).collect(),
        balanced_by: match durations {
            Some(d) => format!("durations from {}", d.source),
            None => "trial counts".into(),
        },
    };
    let trials = trials
        .into_iter()
        .filter(|t| mine.contains(&t.variant.label))
        .collect();
    (trials, record)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::profile::ContainerdChoice;
    use crate::scenario::model::Suite;
    use crate::scenario::plan::{plan, Capabilities};

    fn shard(text: &str) -> Result<Shard, String> {
        text.parse::<Shard>().map_err(|e| e.to_string())
    }

    #[test]
    fn k_of_n_parses_and_bad_ones_say_why() {
        assert_eq!(shard("2/3"), Ok(Shard { index: 2, count: 3 }));
        assert_eq!(shard("1/1"), Ok(Shard { index: 1, count: 1 }));
        assert_eq!(shard("0/2").unwrap_err(), "K must be from 1 to N (2), not 0");
        assert_eq!(shard("3/2").unwrap_err(), "K must be from 1 to N (2), not 3");
        assert!(shard("1/0").unwrap_err().contains("at least 1"));
        for bad in [
            "", "1", "1/", "/2", "a/2", "1/2/3", "-1/2", "+1/2", " 1/2", "1.5/2",
        ] {
            assert!(
                shard(bad).unwrap_err().starts_with("expected K/N"),
                "{bad}: {:?}",
                shard(bad)
            );
        }
    }

    /// Three rows (one skipped) on `lines`' local containerds.
    fn planned(lines: &[&str]) -> (Vec<Trial>, Vec<Variant>) {
        let text = "suite: s\nrows:\n  - scenario: a\n    sandbox: {}\n    expect: { runtime_type: io.containerd.runc.v2 }\n  - scenario: b\n    sandbox: {}\n    expect: { runtime_type: io.containerd.runc.v2 }\n  - scenario: c\n    skip: not here\n    sandbox: {}\n    expect: { runtime_type: io.containerd.runc.v2 }\n";
        let suite = Suite::parse(Path::new("s.yaml"), text).unwrap();
        let variants: Vec<Variant> = lines
            .iter()
            .map(|l| Variant::containerd(ContainerdChoice::Line((*l).into())))
            .collect();
        let with_caps: Vec<_> = variants
            .iter()
            .map(|v| (v.clone(), Capabilities::without_kata("no Kata")))
            .collect();
        (plan(&[suite], &with_caps), variants)
    }

    /// Every shard's names, for `count` shards.
    fn shares(lines: &[&str], count: usize, durations: Option<&Durations>) -> Vec<Vec<String>> {
        let (trials, variants) = planned(lines);
        (1..=count)
            .map(|index| {
                let (mine, record) = select(trials.clone(), &variants, Shard { index, count }, durations);
                assert_eq!(record.plan_groups.len(), lines.len());
                // A shard's trials are exactly its groups' trials.
                for t in &mine {
                    assert!(record.groups.contains(&t.variant.label), "{}", t.name);
                }
                mine.into_iter().map(|t| t.name).collect()
            })
            .collect()
    }

    #[test]
    fn every_trial_is_in_exactly_one_shard_and_no_testbed_is_split() {
        let lines = ["1.6", "1.7", "2.1", "2.3", "2.9"];
        let (trials, _) = planned(&lines);
        for count in 1..=7 {
            let shares = shares(&lines, count, None);
            let mut all: Vec<&String> = shares.iter().flatten().collect();
            all.sort();
            let mut expected: Vec<&String> = trials.iter().map(|t| &t.name).collect();
            expected.sort();
            assert_eq!(all, expected, "N={count}");
            for line in lines {
                let holders = shares
                    .iter()
                    .filter(|s| s.iter().any(|n| n.ends_with(&format!("::containerd-{line}"))))
                    .count();
                assert_eq!(holders, 1, "containerd-{line} with N={count}: {shares:?}");
            }
        }
    }

    #[test]
    fn the_assignment_is_the_same_every_time_and_in_plan_order_within_a_shard() {
        let lines = ["1.6", "1.7", "2.1"];
        assert_eq!(shares(&lines, 2, None), shares(&lines, 2, None));
        // Equal weights: the first two lines go to shards 1 and 2, the third to shard 1.
        assert_eq!(
            shares(&lines, 2, None),
            [
                vec![
                    "s::a::containerd-1.6",
                    "s::a::containerd-2.1",
                    "s::b::containerd-1.6",
                    "s::b::containerd-2.1",
                    "s::c::containerd-1.6",
                    "s::c::containerd-2.1"
                ],
                vec![
                    "s::a::containerd-1.7",
                    "s::b::containerd-1.7",
                    "s::c::containerd-1.7"
                ],
            ]
        );
        // More shards than testbeds: the rest are empty, which is not an error.
        assert!(shares(&lines, 5, None)[3..].iter().all(Vec::is_empty));
    }

    #[test]
    fn recorded_durations_balance_the_shards_and_unrecorded_groups_are_estimated() {
        let durations = Durations {
            source: "d.json".into(),
            seconds: BTreeMap::from([("containerd-1.6".into(), 100.0), ("containerd-1.7".into(), 10.0)]),
        };
        let (trials, variants) = planned(&["1.6", "1.7", "2.1"]);
        let weighed = groups(&trials, &variants, Some(&durations));
        // 2.1 has 2 runnable trials; the recorded ones take 110 s over 4: 27.5 s a trial.
        assert_eq!(weighed[2].runnable, 2);
        assert_eq!(weighed[2].weight, 55.0);
        assert_eq!(assign(&weighed, 2), [0, 1, 1]);
        let shares = shares(&["1.6", "1.7", "2.1"], 2, Some(&durations));
        assert!(
            shares[0].iter().all(|n| n.ends_with("containerd-1.6")),
            "{shares:?}"
        );
        let (_, record) = select(trials, &variants, Shard { index: 1, count: 2 }, Some(&durations));
        assert_eq!(record.balanced_by, "durations from d.json");
        // Counts alone: 1.6, 1.7, 2.1 weigh the same, so 1.6 and 2.1 share shard 1.
        assert_eq!(
            assign(&groups(&planned(&["1.6", "1.7", "2.1"]).0, &variants, None), 2),
            [0, 1, 0]
        );
    }

    #[test]
    fn durations_come_from_a_results_json_or_a_groups_file_and_bad_ones_name_the_field() {
        let dir = tempfile::tempdir().unwrap();
        let file = |name: &str, text: &str| {
            let path = dir.path().join(name);
            std::fs::write(&path, text).unwrap();
            path
        };
        let results = file(
            "results.json",
            r#"{"run": {}, "trials": [{"variant": "containerd-1.6", "seconds": 1.5}, {"variant": "containerd-1.6", "seconds": 2.5}, {"variant": "vm-bookworm", "seconds": 30}]}"#,
        );
        let d = Durations::load(&results).unwrap();
        assert_eq!(d.seconds["containerd-1.6"], 4.0);
        assert_eq!(d.seconds["vm-bookworm"], 30.0);
        let groups = file("d.json", r#"{"groups": {"k8s-1.20": 240}}"#);
        assert_eq!(Durations::load(&groups).unwrap().seconds["k8s-1.20"], 240.0);
        let error = |path: &Path| crate::errors::chain(&Durations::load(path).unwrap_err());
        let bad = file("bad.json", r#"{"trials": [{"variant": "containerd-1.6"}]}"#);
        assert!(
            error(&bad).contains("bad.json: field trials[0].seconds"),
            "{}",
            error(&bad)
        );
        let neither = file("n.json", "{}");
        assert!(
            error(&neither).contains("neither a results.json"),
            "{}",
            error(&neither)
        );
        let not_json = file("x.json", "{");
        assert!(
            error(&not_json).contains("failed to parse the durations file"),
            "{}",
            error(&not_json)
        );
        assert!(error(&dir.path().join("absent.json")).contains("failed to read"));
    }
}
