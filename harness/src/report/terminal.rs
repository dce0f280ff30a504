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
    let s = Summary::of(results);
    out.push_str(&format!(
        "\n{} passed, {} failed, {} skipped\n",
        s.passed, s.failed, s.skipped
    ));
    out
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
