//! What identifies a run's trials in its reports: the selection it planned (filter and a digest
//! of the planned names) and, for `run --shard K/N`, which share of them it ran. `merge` reads
//! both back to prove its inputs are the shards of one run, each once, none missing.
//!
//! Invariant: every shard of one run records the same [`Selection`] and the same
//! [`ShardRecord::plan_groups`]; a shard's `groups` are its testbeds, and the shards' groups
//! together are `plan_groups`, each once.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The trials a run planned, before any sharding.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Selection {
    /// `--filter`, as given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filter: Option<String>,
    /// `--exact`.
    #[serde(default)]
    pub exact: bool,
    /// How many trials were planned (a critest trial's specs come later: one here).
    pub trials: usize,
    /// sha256 of the planned trial names, one a line, in plan order.
    pub digest: String,
}

impl Selection {
    pub fn of<'a>(names: impl IntoIterator<Item = &'a str>, filter: Option<&str>, exact: bool) -> Self {
        let mut hash = Sha256::new();
        let mut trials = 0;
        for name in names {
            hash.update(name.as_bytes());
            hash.update(b"\n");
            trials += 1;
        }
        Selection {
            filter: filter.map(str::to_owned),
            exact,
            trials,
            digest: hex::encode(hash.finalize()),
        }
    }
}

/// The share of a run's trials that one `run --shard K/N` ran.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShardRecord {
    /// K, from 1.
    pub index: usize,
    /// N.
    pub count: usize,
    /// This shard's testbeds (variant labels: `containerd-2.1`, `vm-bookworm`, `k8s-1.20`),
    /// whole: a testbed's trials are never split between shards.
    pub groups: Vec<String>,
    /// Every testbed of the planned run, in plan order (the order of a whole run's results).
    pub plan_groups: Vec<String>,
    /// What the groups were balanced by: the durations file read, or trial counts.
    pub balanced_by: String,
}

impl std::fmt::Display for ShardRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_digest_follows_the_names_and_their_order() {
        let a = Selection::of(["x::a::c", "x::b::c"], Some("x::"), false);
        assert_eq!(a, Selection::of(["x::a::c", "x::b::c"], Some("x::"), false));
        assert_eq!(a.trials, 2);
        assert_ne!(
            a.digest,
            Selection::of(["x::b::c", "x::a::c"], None, false).digest
        );
        assert_ne!(a.digest, Selection::of(["x::a::c"], None, false).digest);
    }
}
