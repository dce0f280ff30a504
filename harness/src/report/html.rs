//! `results.html`: the run as people read it: a header with the command, a matrix of scenario x
//! variant whose cells link to their rows (a scenario with many results in one variant, such as
//! a critest trial's specs, shows their counts), the time a row takes per runtime and variant
//! (so what Kata costs next to runc is one glance), the environment once per node (with the
//! conditions all its Kata rows ran under), and each row with what was expected and observed,
//! its timing, its own conditions, its evidence (the CRI inspect JSON, containerd's record, OCI
//! state, the VMM process, as the row collected them) and, for a failure, links to its bundle
//! files and reproduce.sh.
//!
//! Invariant: one static file with its style and script inline and only relative links (to
//! `bundles/` beside it), so it works from an unpacked CI artifact with no network; the page
//! is complete without its script, which only counts the cells and the results they stand for,
//! checks the links and records errors on `<body>` (`data-cells`, `data-results`,
//! `data-broken-links`, `data-errors`) for the browser test.

use std::fmt::Write as _;
use std::path::Path;

use super::bundle::dir_name;
use super::{RunInfo, Summary, TrialResult, Verdict};

/// Evidence files are shown inline up to this size (the bundle has them whole).
const INLINE_LIMIT: usize = 16 * 1024;

pub fn write(path: &Path, info: &RunInfo, results: &[TrialResult]) -> std::io::Result<()> {
    std::fs::write(path, render(info, results))
}

/// `&`, `<`, `>`, `"` and `'` as entities: every text and attribute value goes through it.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn verdict_name(verdict: Verdict) -> &'static str {
    match verdict {
        Verdict::Passed => "passed",
        Verdict::Failed => "failed",
        Verdict::Skipped => "skipped",
        Verdict::Quarantined => "quarantined",
        Verdict::Flaky => "flaky",
    }
}

/// The anchor of a trial's section.
fn anchor(trial: &str) -> String {
    format!("t-{}", dir_name(trial))
}

/// Items in the order they first appear.
fn in_order<'a>(items: impl Iterator<Item = &'a str>) -> Vec<&'a str> {
    let mut seen = Vec::new();
    for item in items {
        if !seen.contains(&item) {
            seen.push(item);
        }
    }
    seen
}

pub fn render(info: &RunInfo, results: &[TrialResult]) -> String {
    let summary = Summary::of(results);
    let mut page = String::new();
    page.push_str(HEAD);
    let _ = write!(
        page,
        "<h1>kata-harness results</h1>\n<p class=\"summary\">{} passed, {} failed, {} skipped, {} flaky, {} quarantined</p>\n",
        summary.passed, summary.failed, summary.skipped, summary.flaky, summary.quarantined
    );
    let _ = writeln!(page, "<p><code>{}</code></p>", escape(&info.command));
    matrix(&mut page, results);
    times(&mut page, results);
    let shared = shared_conditions(results);
    let variants = in_order(results.iter().map(|r| r.variant.as_str()));
    header(&mut page, info, &variants, &shared);
    page.push_str("<h2>Rows</h2>\n");
    for result in results {
        trial(&mut page, result, &shared);
    }
    page.push_str(SCRIPT);
    page.push_str("</body>\n</html>\n");
    page
}

/// The conditions every row of a variant that has conditions shares (a node's Kata conditions,
/// the same on each of its Kata rows): shown once, in that node's environment.
fn shared_conditions(results: &[TrialResult]) -> Vec<(String, Vec<String>)> {
    let mut shared = Vec::new();
    for variant in in_order(results.iter().map(|r| r.variant.as_str())) {
        let mut with: Vec<&TrialResult> = results
            .iter()
            .filter(|r| r.variant == variant && !r.conditions.is_empty())
            .collect();
        let Some(first) = with.pop() else {
            continue;
        };
        let common: Vec<String> = first
            .conditions
            .iter()
            .filter(|c| with.iter().all(|r| r.conditions.contains(c)))
            .cloned()
            .collect();
        if with.len() + 1 > 1 && !common.is_empty() {
            shared.push((variant.to_owned(), common));
        }
    }
    shared
}

/// The run's facts (target, profile, component versions), then each node's (`<variant>.<fact>`:
/// its image, kernel, accelerator, and the conditions its Kata rows share), once per node.
fn header(page: &mut String, info: &RunInfo, variants: &[&str], shared: &[(String, Vec<String>)]) {
    page.push_str("<h2>Environment</h2>\n<table class=\"facts\">\n");
    let target = ("target".to_owned(), info.target.clone());
    let repeated = info.environment.iter().any(|(key, _)| key == "target");
    let all: Vec<&(String, String)> = (!repeated)
        .then_some(&target)
        .into_iter()
        .chain(&info.environment)
        .collect();
    // A node's facts are `<variant>.<fact>` (variant names have dots of their own).
    let node_of = |key: &str| -> Option<String> {
        variants
            .iter()
            .find(|v| key.strip_prefix(**v).is_some_and(|rest| rest.starts_with('.')))
            .map(|v| (*v).to_owned())
    };
    let nodes: Vec<&str> = variants
        .iter()
        .copied()
        .filter(|v| {
            all.iter().any(|(key, _)| node_of(key).as_deref() == Some(*v))
                || shared.iter().any(|(s, _)| s == v)
        })
        .collect();
    for (key, value) in all.iter().filter(|(key, _)| node_of(key).is_none()) {
        let _ = writeln!(
            page,
            "<tr><th>{}</th><td>{}</td></tr>",
            escape(key),
            escape(value)
        );
    }
    page.push_str("</table>\n");
    for node in nodes {
        let _ = writeln!(
            page,
            "<h3 id=\"{}\">{}</h3>\n<table class=\"facts\">",
            env_anchor(node),
            escape(node)
        );
        for (key, value) in all
            .iter()
            .filter(|(key, _)| node_of(key).as_deref() == Some(node))
        {
            let fact = &key[node.len() + 1..];
            let _ = writeln!(
                page,
                "<tr><th>{}</th><td>{}</td></tr>",
                escape(fact),
                escape(value)
            );
        }
        if let Some((_, conditions)) = shared.iter().find(|(v, _)| v == node) {
            page.push_str("<tr><th>conditions of its rows</th><td><ul>");
            for condition in conditions {
                let _ = write!(page, "<li>{}</li>", escape(condition));
            }
            page.push_str("</ul></td></tr>\n");
        }
        page.push_str("</table>\n");
    }
}

fn env_anchor(variant: &str) -> String {
    format!("env-{}", dir_name(variant))
}

/// Which runtime a row measured, from what it expected: critest's `(handler H)`, crun's
/// `BinaryName=crun`, else the runtime type (`io.containerd.kata.v2` -> `kata`); `None` for
/// rows about no runtime (an error, an image import).
fn runtime_of(result: &TrialResult) -> Option<String> {
    let expected = &result.expected;
    if let Some(rest) = expected.split("(handler ").nth(1) {
        return rest.split(')').next().map(str::to_owned);
    }
    if expected.contains("BinaryName=crun") {
        return Some("crun".into());
    }
    let runtime_type = expected
        .split(|c: char| c.is_whitespace() || c == ',')
        .find(|w| w.starts_with("io.containerd.") && w.ends_with(".v2"))?;
    let name = runtime_type
        .trim_start_matches("io.containerd.")
        .trim_end_matches(".v2");
    Some(if name == "runc" {
        "runc".into()
    } else {
        name.to_owned()
    })
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    let n = values.len();
    if n % 2 == 1 {
        values[n / 2]
    } else {
        (values[n / 2 - 1] + values[n / 2]) / 2.0
    }
}

/// Seconds per row by runtime and variant (rows that passed): the median as a bar, the count,
/// and the ratio to runc's median in the same variant.
fn times(page: &mut String, results: &[TrialResult]) {
    let timed: Vec<(&str, String, f64)> = results
        .iter()
        .filter(|r| matches!(r.verdict, Verdict::Passed | Verdict::Flaky))
        .filter_map(|r| Some((r.variant.as_str(), runtime_of(r)?, r.seconds)))
        .collect();
    if timed.is_empty() {
        return;
    }
    let mut groups: Vec<(&str, String, Vec<f64>)> = Vec::new();
    for (variant, runtime, seconds) in &timed {
        match groups.iter_mut().find(|(v, r, _)| v == variant && r == runtime) {
            Some((_, _, all)) => all.push(*seconds),
            None => groups.push((variant, runtime.clone(), vec![*seconds])),
        }
    }
    let medians: Vec<(&str, &str, f64, usize)> = groups
        .iter()
        .map(|(v, r, all)| (*v, r.as_str(), median(all.clone()), all.len()))
        .collect();
    let longest = medians.iter().map(|m| m.2).fold(0.0_f64, f64::max).max(0.001);
    page.push_str("<h2>Time per row</h2>\n<p>The median seconds of the rows that passed, per runtime and variant; <em>x runc</em> is the ratio to runc's median in the same variant, under the conditions of that node (below).</p>\n<table class=\"times\">\n<tr><th>variant</th><th>runtime</th><th>rows</th><th>median seconds</th><th>x runc</th></tr>\n");
    for (variant, runtime, seconds, count) in &medians {
        let runc = medians
            .iter()
            .find(|(v, r, _, _)| v == variant && *r == "runc")
            .map(|m| m.2);
        let ratio = match runc {
            Some(runc) if runc > 0.0 && *runtime != "runc" => format!("{:.1}", seconds / runc),
            _ => String::new(),
        };
        let _ = writeln!(
            page,
            "<tr data-runtime=\"{}\"><td>{}</td><td>{}</td><td>{count}</td><td><span class=\"bar\" style=\"width:{:.0}px\"></span> {seconds:.1}</td><td>{ratio}</td></tr>",
            escape(runtime),
            escape(variant),
            escape(runtime),
            (seconds / longest * 300.0).max(1.0),
        );
    }
    page.push_str("</table>\n");
}

/// Scenario (grouped by suite) x variant; each cell links to its row.
fn matrix(page: &mut String, results: &[TrialResult]) {
    let variants = in_order(results.iter().map(|r| r.variant.as_str()));
    let suites = in_order(results.iter().map(|r| r.suite.as_str()));
    page.push_str("<h2>Matrix</h2>\n<table class=\"matrix\">\n<tr><th>scenario</th>");
    for variant in &variants {
        let _ = write!(page, "<th>{}</th>", escape(variant));
    }
    page.push_str("</tr>\n");
    for suite in suites {
        let _ = writeln!(
            page,
            "<tr class=\"suite\"><th colspan=\"{}\">{}</th></tr>",
            variants.len() + 1,
            escape(suite)
        );
        let in_suite: Vec<&TrialResult> = results.iter().filter(|r| r.suite == suite).collect();
        for scenario in in_order(in_suite.iter().map(|r| r.scenario.as_str())) {
            let _ = write!(page, "<tr><th class=\"scenario\">{}</th>", escape(scenario));
            for variant in &variants {
                let here: Vec<&TrialResult> = in_suite
                    .iter()
                    .copied()
                    .filter(|r| r.scenario == scenario && r.variant == *variant)
                    .collect();
                match here.as_slice() {
                    [] => page.push_str("<td class=\"none\">&ndash;</td>"),
                    [one] => cell(page, one),
                    many => aggregate_cell(page, many),
                }
            }
            page.push_str("</tr>\n");
        }
    }
    page.push_str("</table>\n");
}

fn cell(page: &mut String, result: &TrialResult) {
    let verdict = verdict_name(result.verdict);
    let mark = if result.conditions.is_empty() {
        String::new()
    } else {
        format!(
            " <span class=\"condition\" title=\"{}\">&dagger;</span>",
            escape(&result.conditions.join("; "))
        )
    };
    let _ = write!(
        page,
        "<td class=\"cell v-{verdict}\" data-trial=\"{}\" data-results=\"1\"><a href=\"#{}\">{verdict}</a>{mark} <small>{:.1} s</small></td>",
        escape(&result.name),
        anchor(&result.name),
        result.seconds
    );
}

/// A cell standing for several results (a critest trial's specs): their counts, coloured by
/// the worst, linking to the first failure (else the first result), and their total time.
fn aggregate_cell(page: &mut String, results: &[&TrialResult]) {
    let summary = Summary::of(results.iter().copied());
    let counts: Vec<String> = [
        (summary.passed, "passed"),
        (summary.failed, "failed"),
        (summary.flaky, "flaky"),
        (summary.quarantined, "quarantined"),
        (summary.skipped, "skipped"),
    ]
    .iter()
    .filter(|(n, _)| *n > 0)
    .map(|(n, what)| format!("{n} {what}"))
    .collect();
    let worst = if summary.failed > 0 {
        Verdict::Failed
    } else if summary.flaky > 0 {
        Verdict::Flaky
    } else if summary.quarantined > 0 {
        Verdict::Quarantined
    } else if summary.passed > 0 {
        Verdict::Passed
    } else {
        Verdict::Skipped
    };
    let first = results
        .iter()
        .find(|r| r.verdict == Verdict::Failed)
        .unwrap_or(&results[0]);
    let seconds: f64 = results.iter().map(|r| r.seconds).sum();
    let _ = write!(
        page,
        "<td class=\"cell v-{}\" data-trial=\"{}\" data-results=\"{}\" data-counts=\"{}\"><a href=\"#{}\">{}</a> <small>{seconds:.1} s</small></td>",
        verdict_name(worst),
        escape(&first.name),
        results.len(),
        counts.join(", "),
        anchor(&first.name),
        counts.join(", "),
    );
}

/// One row: verdict, expected and observed, message, timing, conditions, the commands that
/// redo it, its evidence, and its bundle where it has one.
fn trial(page: &mut String, result: &TrialResult, shared: &[(String, Vec<String>)]) {
    let verdict = verdict_name(result.verdict);
    let _ = write!(
        page,
        "<section class=\"trial v-{verdict}\" id=\"{}\">\n<h3>{} <span class=\"verdict\">{verdict}</span></h3>\n<dl>\n<dt>expected</dt><dd>{}</dd>\n<dt>observed</dt><dd>{}</dd>\n<dt>time</dt><dd>{:.1} s</dd>\n",
        anchor(&result.name),
        escape(&result.name),
        escape(&result.expected),
        escape(&result.observed),
        result.seconds
    );
    if !result.message.is_empty() {
        let label = if result.verdict == Verdict::Skipped {
            "why skipped"
        } else {
            "message"
        };
        let _ = writeln!(
            page,
            "<dt>{label}</dt><dd><pre>{}</pre></dd>",
            escape(&result.message)
        );
    }
    if !result.conditions.is_empty() {
        let node = shared.iter().find(|(v, _)| *v == result.variant);
        page.push_str("<dt>ran differently here</dt><dd><ul>");
        if let Some((variant, _)) = node {
            let _ = write!(
                page,
                "<li>the conditions of <a href=\"#{}\">{}</a></li>",
                env_anchor(variant),
                escape(variant)
            );
        }
        for condition in &result.conditions {
            if node.is_some_and(|(_, common)| common.contains(condition)) {
                continue;
            }
            let _ = write!(page, "<li>{}</li>", escape(condition));
        }
        page.push_str("</ul></dd>\n");
    }
    for (n, attempt) in result.attempts.iter().enumerate() {
        let _ = writeln!(
            page,
            "<dt>attempt {} failed ({:.1} s)</dt><dd>observed {}<pre>{}</pre></dd>",
            n + 1,
            attempt.seconds,
            escape(&attempt.observed),
            escape(&attempt.message)
        );
    }
    page.push_str("</dl>\n");
    if let Some(differences) = &result.evidence.differences {
        page.push_str(&differences.html(escape));
    }
    if !result.evidence.reproduce.is_empty() {
        let _ = writeln!(
            page,
            "<details><summary>commands</summary><pre>{}</pre></details>",
            escape(&result.evidence.reproduce.join("\n"))
        );
    }
    for (name, content) in &result.evidence.files {
        let shown = if content.len() > INLINE_LIMIT {
            let mut end = INLINE_LIMIT;
            while !content.is_char_boundary(end) {
                end -= 1;
            }
            format!("{}\n... ({} bytes in all)", &content[..end], content.len())
        } else {
            content.clone()
        };
        let _ = writeln!(
            page,
            "<details class=\"evidence\"><summary>{} <small>({} bytes)</small></summary><pre>{}</pre></details>",
            escape(name),
            content.len(),
            escape(&shown)
        );
    }
    if result.bundle.is_some() {
        // Relative to this file: bundles/ is beside it in the results dir.
        let dir = format!("bundles/{}", dir_name(&result.name));
        let _ = write!(
            page,
            "<p class=\"bundle\">bundle: <a href=\"{dir}/error.txt\">error.txt</a> <a href=\"{dir}/reproduce.sh\">reproduce.sh</a>"
        );
        for (name, _) in &result.evidence.files {
            let _ = write!(page, " <a href=\"{dir}/{}\">{}</a>", escape(name), escape(name));
        }
        page.push_str("</p>\n");
    }
    page.push_str("</section>\n");
}

const HEAD: &str = r#"<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>kata-harness results</title>
<style>
body { font-family: system-ui, sans-serif; margin: 1.5em; color: #222; }
code, pre { font-family: ui-monospace, monospace; font-size: 0.9em; }
pre { background: #f6f6f6; padding: 0.5em; overflow-x: auto; white-space: pre-wrap; }
table { border-collapse: collapse; margin-bottom: 1.5em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.5em; text-align: left; vertical-align: top; }
table.facts th { background: #f0f0f0; font-weight: normal; }
tr.suite th { background: #e4e8f0; }
th.scenario { font-weight: normal; }
td.none { color: #999; text-align: center; }
table.differences tr.surprise td { background: #fbe3e3; }
table.differences tr.declared td { background: #fdf6e3; }
table.differences pre { margin: 0; padding: 0; background: none; }
.v-passed { background: #dff3e0; }
.v-failed { background: #f8d7d7; }
.v-skipped { background: #eeeeee; }
.v-quarantined { background: #fbeec8; }
.v-flaky { background: #f3e3f7; }
section.trial { border-left: 6px solid #ccc; padding: 0.25em 1em; margin: 1em 0; }
section.trial.v-passed { border-color: #3a3; background: none; }
section.trial.v-failed { border-color: #c33; background: none; }
section.trial.v-skipped { border-color: #999; background: none; }
section.trial.v-quarantined { border-color: #c90; background: none; }
section.trial.v-flaky { border-color: #a3c; background: none; }
dt { font-weight: bold; }
dd { margin: 0 0 0.5em 1em; }
.condition { color: #a60; cursor: help; }
.bar { display: inline-block; height: 0.8em; background: #6a8cc7; vertical-align: middle; }
</style>
</head>
<body>
"#;

/// For the browser test (and a reader's console): cells counted, in-page links checked,
/// errors recorded; the page needs none of it.
const SCRIPT: &str = r##"<script>
(function () {
  var errors = [];
  window.addEventListener("error", function (e) { errors.push(String(e.message)); });
  function check() {
    var broken = 0;
    document.querySelectorAll('a[href^="#"]').forEach(function (a) {
      if (!document.getElementById(a.getAttribute("href").slice(1))) { broken += 1; }
    });
    var cells = document.querySelectorAll("td[data-trial]");
    var results = 0;
    cells.forEach(function (td) { results += Number(td.dataset.results); });
    document.body.dataset.cells = cells.length;
    document.body.dataset.results = results;
    document.body.dataset.brokenLinks = broken;
    document.body.dataset.errors = errors.length;
    document.body.dataset.checked = "yes";
  }
  if (document.readyState === "loading") { document.addEventListener("DOMContentLoaded", check); } else { check(); }
})();
</script>
"##;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::Evidence;

    fn result(name: &str, variant: &str, verdict: Verdict) -> TrialResult {
        let (suite, rest) = name.split_once("::").unwrap();
        let scenario = rest.split_once("::").unwrap().0;
        TrialResult {
            name: name.into(),
            suite: suite.into(),
            scenario: scenario.into(),
            variant: variant.into(),
            verdict,
            expected: "runtimeType io.containerd.runc.v2".into(),
            observed: "<script>alert(1)</script>".into(),
            message: String::new(),
            seconds: 1.25,
            conditions: vec![],
            bundle: None,
            attempts: vec![],
            evidence: Evidence::default(),
        }
    }

    /// One cell per trial at its scenario and variant, a dash where a scenario did not run
    /// in a variant, and nothing of a row's text taken as markup.
    #[test]
    fn the_matrix_has_a_cell_per_trial_and_escapes_what_rows_say() {
        let results = vec![
            result("cri::a::containerd-1.6", "containerd-1.6", Verdict::Passed),
            result("cri::a::containerd-2.1", "containerd-2.1", Verdict::Failed),
            result("cri::b::containerd-2.1", "containerd-2.1", Verdict::Skipped),
        ];
        let page = render(&RunInfo::default(), &results);
        assert_eq!(page.matches("<td class=\"cell ").count(), 3);
        assert_eq!(page.matches("<td class=\"none\">").count(), 1);
        assert!(page.contains("href=\"#t-cri__a__containerd-2.1\""));
        assert!(page.contains("id=\"t-cri__a__containerd-2.1\""));
        assert!(!page.contains("<script>alert"));
        assert!(page.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
        assert!(page.contains("1 passed, 1 failed, 1 skipped, 0 flaky, 0 quarantined"));
    }

    /// A critest trial's specs share a scenario and variant: one cell with their counts.
    #[test]
    fn a_cell_standing_for_many_results_shows_their_counts() {
        let mut results: Vec<TrialResult> = (0..93)
            .map(|n| {
                result(
                    &format!("critest::runc::containerd-1.7::spec {n}"),
                    "containerd-1.7",
                    Verdict::Passed,
                )
            })
            .chain((0..24).map(|n| {
                result(
                    &format!("critest::runc::containerd-1.7::skipped {n}"),
                    "containerd-1.7",
                    Verdict::Skipped,
                )
            }))
            .collect();
        let page = render(&RunInfo::default(), &results);
        assert_eq!(page.matches("<td class=\"cell ").count(), 1, "{page}");
        assert!(
            page.contains("data-results=\"117\" data-counts=\"93 passed, 24 skipped\""),
            "{page}"
        );
        assert!(page.contains("<td class=\"cell v-passed\""), "{page}");
        results[5].verdict = Verdict::Failed;
        let page = render(&RunInfo::default(), &results);
        assert!(
            page.contains("<td class=\"cell v-failed\" data-trial=\"critest::runc::containerd-1.7::spec 5\""),
            "{page}"
        );
        assert!(page.contains("92 passed, 1 failed, 24 skipped"), "{page}");
    }

    /// A diff row's table is a table on the page, and data in results.json; other rows carry none.
    #[test]
    fn a_diff_rows_table_is_on_the_page_and_in_the_json() {
        use crate::report::differences::{Differences, ProbeAnswers};
        let mut diff = result(
            "workloads::runc-vs-kata::containerd-2.3",
            "containerd-2.3",
            Verdict::Failed,
        );
        diff.evidence.differences = Some(Differences {
            handler: "kata".into(),
            probes: vec![ProbeAnswers {
                probe: "hostname".into(),
                runc: "kh-diff".into(),
                kata: "other".into(),
                declared: "same".into(),
                reason: None,
                surprise: Some("nothing declares a difference".into()),
            }],
        });
        let plain = result("cri::a::containerd-2.3", "containerd-2.3", Verdict::Passed);
        let page = render(&RunInfo::default(), &[diff.clone(), plain.clone()]);
        assert_eq!(page.matches("<table class=\"differences\">").count(), 1, "{page}");
        assert!(
            page.contains("<tr class=\"surprise\"><td>hostname</td><td><pre>kh-diff</pre></td><td><pre>other</pre></td><td>NOT AS DECLARED: nothing declares a difference</td></tr>"),
            "{page}"
        );
        let json = serde_json::to_value([&diff, &plain]).unwrap();
        assert_eq!(json[0]["differences"]["probes"][0]["kata"], "other", "{json}");
        assert!(json[1].get("differences").is_none(), "{json}");
        assert!(
            json[0].get("files").is_none() && json[0].get("evidence").is_none(),
            "{json}"
        );
        // `merge` reads results.json back: the table comes back with it.
        let back: TrialResult = serde_json::from_value(json[0].clone()).unwrap();
        assert_eq!(back.evidence.differences, diff.evidence.differences);
    }

    #[test]
    fn rows_are_timed_per_runtime_with_the_ratio_to_runc() {
        let mut runc = result(
            "cri::default-handler::containerd-2.1",
            "containerd-2.1",
            Verdict::Passed,
        );
        runc.expected = "io.containerd.runc.v2, state in runc".into();
        runc.seconds = 0.5;
        let mut kata = result(
            "cri::kata-handler::containerd-2.1",
            "containerd-2.1",
            Verdict::Passed,
        );
        kata.expected = "io.containerd.kata.v2, VMM process".into();
        kata.seconds = 6.0;
        kata.conditions = vec!["TCG: the Kata guest runs under TCG".into(), "own".into()];
        let mut kata2 = kata.clone();
        kata2.name = "cri::kata-container::containerd-2.1".into();
        kata2.scenario = "kata-container".into();
        kata2.conditions = vec!["TCG: the Kata guest runs under TCG".into()];
        let mut crun = result(
            "critest::crun::containerd-2.1::s",
            "containerd-2.1",
            Verdict::Passed,
        );
        crun.expected = "critest spec passes (handler crun)".into();
        assert_eq!(runtime_of(&crun).as_deref(), Some("crun"));
        let info = RunInfo {
            environment: vec![
                ("containerd-2.1.accelerator".into(), "tcg".into()),
                ("profile".into(), "default".into()),
            ],
            ..RunInfo::default()
        };
        let page = render(&info, &[runc, kata, kata2, crun]);
        assert!(
            page.contains("<tr data-runtime=\"kata\"><td>containerd-2.1</td><td>kata</td><td>2</td>"),
            "{page}"
        );
        assert!(page.contains(" 6.0</td><td>12.0</td></tr>"), "{page}");
        // The node's facts and shared conditions once, under its heading; each row links there
        // and lists only what is its own.
        assert!(
            page.contains("<h3 id=\"env-containerd-2.1\">containerd-2.1</h3>"),
            "{page}"
        );
        assert!(
            page.contains("<tr><th>accelerator</th><td>tcg</td></tr>"),
            "{page}"
        );
        assert_eq!(
            page.matches("<li>TCG: the Kata guest runs under TCG</li>")
                .count(),
            1,
            "{page}"
        );
        assert!(page.contains("<li>own</li>"), "{page}");
        assert_eq!(
            page.matches("the conditions of <a href=\"#env-containerd-2.1\">")
                .count(),
            2,
            "{page}"
        );
    }
}
