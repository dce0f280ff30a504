//! Local nodes left running on purpose (`kata-harness up --target local`), so that a person
//! can type crictl and ctr against them and `kata-harness down` can remove them: a small JSON
//! file per name under the cache, holding the node's cleanup plan.
//!
//! Invariant: a kept node is removed by the same [`cleanup::run`] a run's testbed gets (its
//! containerd's process group, every process carrying its tag, its mounts, cgroups and bridge,
//! its run dir), so `down` leaves nothing, whatever was started on the node by hand.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::cleanup::{self, CleanupPlan, Leftovers};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct KeptNode {
    pub name: String,
    /// What the node is, as the testbed describes itself.
    pub describe: String,
    pub run_dir: PathBuf,
    pub plan: CleanupPlan,
}

fn dir() -> PathBuf {
    crate::profile::cache_dir().join("nodes")
}

pub fn path(name: &str) -> PathBuf {
    dir().join(format!("{name}.json"))
}

impl KeptNode {
    pub fn save(&self) -> std::io::Result<()> {
        std::fs::create_dir_all(dir())?;
        std::fs::write(
            path(&self.name),
            serde_json::to_vec_pretty(self).expect("serialisable"),
        )
    }

    pub fn load(name: &str) -> std::io::Result<KeptNode> {
        let bytes = std::fs::read(path(name))?;
        serde_json::from_slice(&bytes).map_err(std::io::Error::other)
    }

    /// Stops the node and removes everything of it, then this record; what could not be
    /// removed (the record is then kept, so `down` can be tried again).
    pub fn destroy(&self) -> Leftovers {
        let plan = CleanupPlan {
            keep_run_dir: false,
            ..self.plan.clone()
        };
        let leftovers = cleanup::run(&plan);
        if leftovers.is_clean() {
            let _ = std::fs::remove_file(path(&self.name));
        }
        leftovers
    }
}
