//! The terminal: a progress bar while trials run, one line per finished trial, and the final
//! table (scenario, expected, observed, verdict). Failure details go between banners, bounded.

use indicatif::{ProgressBar, ProgressStyle};

use super::{Event, Sink, Summary, TrialResult, Verdict};

pub struct Terminal {
    bar: ProgressBar,
    results: Vec<TrialResult>,
}

impl Default for Terminal {
    fn default() -> Self {
        Self::new()
    }
}

impl Terminal {
    pub fn new() -> Self {
        let bar = ProgressBar::new(0);
        bar.set_style(
            ProgressStyle::with_template("{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} {wide_msg}")
                .expect("valid template"),
        );
        Terminal {
            bar,
            results: Vec::new(),
        }
    }

    fn say(&self, text: String) {
        // suspend() prints even when the bar is hidden (not a terminal).
        self.bar.suspend(|| eprintln!("{text}"));
    }
}

fn verdict_word(v: Verdict) -> &'static str {
    match v {
        Verdict::Passed => "PASS",
        Verdict::Failed => "FAIL",
        Verdict::Skipped => "SKIP",
        Verdict::Quarantined => "QUARANTINED",
        Verdict::Flaky => "FLAKY",
    }
}

fn clip(text: &str, width: usize) -> String {
    let one_line = text.lines().next().unwrap_or("");
    if one_line.chars().count() <= width {
        one_line.to_owned()
    } else {
        let mut clipped: String = one_line.chars().take(width.saturating_sub(1)).collect();
        clipped.push('…');
        clipped
    }
}

/// The final table as text.
pub fn table(results: &[TrialResult]) -> String {
    let name_w = results
        .iter()
        .map(|r| r.name.len())
        .max()
        .unwrap_or(8)
        .clamp(8, 60);
    let mut out = format!(
        "{:<name_w$}  {:<44}  {:<56}  VERDICT\n",
        "SCENARIO", "EXPECTED", "OBSERVED"
    );
    // Rows that ran differently here than on a KVM host get a footnote per set of conditions.
    let mut notes: Vec<&[String]> = Vec::new();
    for r in results {
        let mark = if r.conditions.is_empty() {
            String::new()
        } else {
            let n = match notes.iter().position(|c| *c == r.conditions.as_slice()) {
                Some(i) => i + 1,
                None => {
                    notes.push(&r.conditions);
                    notes.len()
                }
            };
            format!(" [{n}]")
        };
        let observed = if r.verdict == Verdict::Skipped {
            format!("skipped: {}", r.message)
        } else {
            r.observed.clone()
        };
        out.push_str(&format!(
            "{:<name_w$}  {:<44}  {:<56}  {}\n",
            clip(&r.name, name_w),
            clip(&r.expected, 44),
            clip(&observed, 56),
            verdict_word(r.verdict),
        ));
        out.truncate(out.trim_end().len());
        out.push_str(&mark);
        out.push('\n');
    }
    for (i, conditions) in notes.iter().enumerate() {
        out.push_str(&format!("[{}] ran here as: {}\n", i + 1, conditions.join("; ")));
    }
    // One line per suite and variant, in the order they ran, then the whole run's.
    let mut groups: Vec<((&str, &str), Summary)> = Vec::new();
    for r in results {
        let key = (r.suite.as_str(), r.variant.as_str());
        let at = match groups.iter().position(|(k, _)| *k == key) {
            Some(at) => at,
            None => {
                groups.push((key, Summary::default()));
                groups.len() - 1
            }
        };
        groups[at].1.add(r.verdict);
    }
    out.push('\n');
    if groups.len() > 1 {
        let width = groups
            .iter()
            .map(|((s, v), _)| s.len() + v.len() + 1)
            .max()
            .unwrap_or(0);
        for ((suite, variant), summary) in &groups {
            let label = format!("{suite} {variant}");
            out.push_str(&format!("{label:<width$}  {}\n", summary_line(summary)));
        }
    }
    out.push_str(&summary_line(&Summary::of(results)));
    out.push('\n');
    out
}

/// `3 passed, 0 failed, 2 skipped` (`, 1 flaky`, `, 4 quarantined` when there are any).
pub fn summary_line(s: &Summary) -> String {
    let mut line = format!("{} passed, {} failed, {} skipped", s.passed, s.failed, s.skipped);
    if s.flaky > 0 {
        line.push_str(&format!(", {} flaky", s.flaky));
    }
    if s.quarantined > 0 {
        line.push_str(&format!(", {} quarantined", s.quarantined));
    }
    line
}

impl Sink for Terminal {
    fn event(&mut self, event: &Event) {
        match event {
            Event::RunStarted { trials } => self.bar.set_length(*trials as u64),
            Event::Note(text) => self.say(format!("note: {text}")),
            Event::TestbedStarting { variant } => self.bar.set_message(format!("starting {variant}")),
            Event::TestbedReady {
                variant,
                description,
                facts,
            } => {
                let facts: Vec<String> = facts.iter().map(|(k, v)| format!("  {k}: {v}")).collect();
                self.say(format!("ready: {variant}: {description}\n{}", facts.join("\n")))
            }
            Event::TrialStarted { name } => self.bar.set_message(name.clone()),
            Event::TrialFinished(result) => {
                self.bar.inc(1);
                let mut line = format!(
                    "{} {} ({:.1}s)",
                    verdict_word(result.verdict),
                    result.name,
                    result.seconds
                );
                match result.verdict {
                    Verdict::Skipped => line.push_str(&format!(": {}", result.message)),
                    Verdict::Quarantined | Verdict::Flaky => {
                        line.push_str(&format!(": {}", clip(&result.message, 200)));
                    }
                    Verdict::Failed => {
                        let tail: Vec<&str> = result.message.lines().take(25).collect();
                        line.push_str(&format!(
                            "\n----- {} -----\nexpected: {}\nobserved: {}\n{}\n-----",
                            result.name,
                            result.expected,
                            result.observed,
                            tail.join("\n")
                        ));
                    }
                    Verdict::Passed => {}
                }
                self.say(line);
                self.results.push((**result).clone());
            }
            Event::RunFinished => {
                self.bar.finish_and_clear();
                println!("\n{}", table(&self.results));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::Evidence;

    fn row(suite: &str, variant: &str, verdict: Verdict) -> TrialResult {
        TrialResult {
            name: format!("{suite}::row::{variant}"),
            suite: suite.into(),
            scenario: "row".into(),
            variant: variant.into(),
            verdict,
            expected: "e".into(),
            observed: "o".into(),
            message: "m".into(),
            seconds: 0.0,
            conditions: vec![],
            bundle: None,
            attempts: vec![],
            evidence: Evidence::default(),
        }
    }

    #[test]
    fn the_table_ends_with_a_summary_per_suite_and_variant_then_the_runs() {
        let results = [
            row("cri", "containerd-1.6", Verdict::Passed),
            row("cri", "containerd-1.6", Verdict::Skipped),
            row("critest", "containerd-1.6", Verdict::Quarantined),
            row("cri", "vm-bookworm", Verdict::Failed),
        ];
        let text = table(&results);
        let tail: Vec<&str> = text.lines().rev().take(4).collect();
        assert_eq!(
            tail,
            [
                "1 passed, 1 failed, 1 skipped, 1 quarantined",
                "cri vm-bookworm         0 passed, 1 failed, 0 skipped",
                "critest containerd-1.6  0 passed, 0 failed, 0 skipped, 1 quarantined",
                "cri containerd-1.6      1 passed, 0 failed, 1 skipped",
            ]
        );
        assert!(text.contains("QUARANTINED"), "{text}");
        // One suite and variant: only the run's line.
        let one = table(&results[..2]);
        assert!(one.ends_with("\n\n1 passed, 0 failed, 1 skipped\n"), "{one}");
    }
}
