//! `results.html`: the run as people read it: a header with the command, target and component
//! versions, a matrix of scenario x variant whose cells link to their rows, and each row with
//! what was expected and observed, its timing, its conditions, its evidence (the CRI inspect
//! JSON, containerd's record, OCI state, the VMM process, as the row collected them) and, for
//! a failure, links to its bundle files and reproduce.sh.
//!
//! Invariant: one static file with its style and script inline and only relative links (to
//! `bundles/` beside it), so it works from an unpacked CI artifact with no network; the page
//! is complete without its script, which only counts the cells, checks the links and records
//! errors on `<body>` (`data-cells`, `data-broken-links`, `data-errors`) for the browser test.

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
    header(&mut page, info);
    page.push_str("<h2>Rows</h2>\n");
    for result in results {
        trial(&mut page, result);
    }
    page.push_str(SCRIPT);
    page.push_str("</body>\n</html>\n");
    page
}

/// The target and every environment fact (profile, component versions, each testbed's
/// image, kernel and accelerator).
fn header(page: &mut String, info: &RunInfo) {
    page.push_str("<h2>Environment</h2>\n<table class=\"facts\">\n");
    let target = ("target".to_owned(), info.target.clone());
    let repeated = info.environment.iter().any(|(key, _)| key == "target");
    for (key, value) in (!repeated)
        .then_some(&target)
        .into_iter()
        .chain(&info.environment)
    {
        let _ = writeln!(
            page,
            "<tr><th>{}</th><td>{}</td></tr>",
            escape(key),
            escape(value)
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
                match in_suite
                    .iter()
                    .find(|r| r.scenario == scenario && r.variant == *variant)
                {
                    Some(r) => cell(page, r),
                    None => page.push_str("<td class=\"none\">&ndash;</td>"),
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
        "<td class=\"cell v-{verdict}\" data-trial=\"{}\"><a href=\"#{}\">{verdict}</a>{mark} <small>{:.1} s</small></td>",
        escape(&result.name),
        anchor(&result.name),
        result.seconds
    );
}

/// One row: verdict, expected and observed, message, timing, conditions, the commands that
/// redo it, its evidence, and its bundle where it has one.
fn trial(page: &mut String, result: &TrialResult) {
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
        page.push_str("<dt>ran differently here</dt><dd><ul>");
        for condition in &result.conditions {
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
    document.body.dataset.cells = document.querySelectorAll("td[data-trial]").length;
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
}
