//! A container's limits as Kubernetes writes them (`cpu: 2`, `memory: 256Mi`), for `pod:`
//! rows' containers and their `update` steps.

use serde::Deserialize;

/// Limits as Kubernetes writes them: `cpu: 2` or `"500m"`, `memory: 256Mi`.
#[derive(Debug, Clone, PartialEq, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Resources {
    /// CPU limit in cores (`2`, `"1.5"`, `"500m"`).
    #[serde(default)]
    pub cpu: Option<Quantity>,
    /// Memory limit (`256Mi`, `1Gi`, `1000000`).
    #[serde(default)]
    pub memory: Option<Quantity>,
}

/// A Kubernetes quantity as written (`2`, `500m`, `256Mi`); parsed by [`Quantity::millis`] and
/// [`Quantity::bytes`] when the row is checked.
#[derive(Debug, Clone, PartialEq, Deserialize, schemars::JsonSchema)]
#[serde(untagged)]
pub enum Quantity {
    Number(f64),
    Text(String),
}

impl Quantity {
    /// CPU in thousandths of a core.
    pub fn millis(&self) -> Result<u64, String> {
        let cores = match self {
            Quantity::Number(n) => *n,
            Quantity::Text(t) => match t.strip_suffix('m') {
                Some(m) => {
                    return m
                        .parse::<u64>()
                        .map_err(|_| format!("{t:?} is not a CPU quantity like 2, 1.5 or 500m"))
                }
                None => t
                    .parse::<f64>()
                    .map_err(|_| format!("{t:?} is not a CPU quantity like 2, 1.5 or 500m"))?,
            },
        };
        if !(cores > 0.0 && cores.is_finite()) {
            return Err(format!("{cores} is not a positive number of cores"));
        }
        Ok((cores * 1000.0).round() as u64)
    }

    /// Bytes: a number, or a number with a Kubernetes suffix (Ki Mi Gi, k M G).
    pub fn bytes(&self) -> Result<u64, String> {
        let bad = |t: &str| format!("{t:?} is not a memory quantity like 256Mi, 1Gi or 1000000");
        match self {
            Quantity::Number(n) if *n >= 1.0 && n.fract() == 0.0 => Ok(*n as u64),
            Quantity::Number(n) => Err(bad(&n.to_string())),
            Quantity::Text(t) => {
                let units = [
                    ("Ki", 1u64 << 10),
                    ("Mi", 1 << 20),
                    ("Gi", 1 << 30),
                    ("k", 1000),
                    ("M", 1_000_000),
                    ("G", 1_000_000_000),
                ];
                let (number, unit) = units
                    .iter()
                    .find_map(|(suffix, unit)| t.strip_suffix(suffix).map(|n| (n, *unit)))
                    .unwrap_or((t.as_str(), 1));
                let n: u64 = number.parse().map_err(|_| bad(t))?;
                match n.checked_mul(unit) {
                    Some(bytes) if bytes > 0 => Ok(bytes),
                    _ => Err(bad(t)),
                }
            }
        }
    }
}

impl Resources {
    pub(super) fn validate(&self) -> Result<(), (&'static str, String)> {
        if let Some(cpu) = &self.cpu {
            cpu.millis().map_err(|m| ("cpu", m))?;
        }
        if let Some(memory) = &self.memory {
            memory.bytes().map_err(|m| ("memory", m))?;
        }
        Ok(())
    }

    /// The CRI's form; the quantities were checked when the row loaded.
    pub fn to_render(&self) -> crate::render::cri::Resources {
        crate::render::cri::Resources {
            cpu_millis: self.cpu.as_ref().and_then(|q| q.millis().ok()),
            memory_bytes: self.memory.as_ref().and_then(|q| q.bytes().ok()),
        }
    }
}
