//! A runc-vs-Kata difference table: the same probes answered in a runc container and a Kata
//! container of the same pod spec, each judged against what the probe declares. A `diff` row
//! (crate::scenario::diff) makes one; `results.json` carries it as data, the HTML report as a
//! table, `kata-harness diff` and the row's `diff.txt` as text.

use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Differences {
    /// The Kata handler compared with runc.
    pub handler: String,
    pub probes: Vec<ProbeAnswers>,
}

/// One probe: its two answers, what it declares and the verdict.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProbeAnswers {
    pub probe: String,
    pub runc: String,
    pub kata: String,
    /// `same`, `differs`, `may differ` or `within N s`.
    pub declared: String,
    /// Why the answers differ, where the probe declares a difference.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Why the answers are not as declared; `None`: as declared.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub surprise: Option<String>,
}

impl ProbeAnswers {
    /// The verdict as one phrase.
    pub fn verdict(&self) -> String {
        match (&self.surprise, &self.reason, self.runc == self.kata) {
            (Some(why), _, _) => format!("NOT AS DECLARED: {why}"),
            (None, _, true) => "alike".into(),
            (None, Some(why), false) => format!("differs, as declared: {why}"),
            (None, None, false) => format!("{}, as declared", self.declared),
        }
    }
}

impl Differences {
    /// The probes whose answers are not as declared.
    pub fn surprises(&self) -> impl Iterator<Item = &ProbeAnswers> {
        self.probes.iter().filter(|p| p.surprise.is_some())
    }

    /// Every probe, its two answers side by side and its verdict.
    pub fn text(&self) -> String {
        let kata = &self.handler;
        let mut out = format!("runc vs {kata}: what a workload sees differently\n\n");
        for p in &self.probes {
            let _ = writeln!(
                out,
                "## {}\n   runc: {}\n   {kata}: {}\n   -> {}\n",
                p.probe,
                indent(&p.runc),
                indent(&p.kata),
                p.verdict()
            );
        }
        let surprises = self.surprises().count();
        let _ = writeln!(
            out,
            "{} probes: {} alike, {} differ as declared, {surprises} not as declared",
            self.probes.len(),
            self.probes.iter().filter(|p| p.runc == p.kata).count(),
            self.probes
                .iter()
                .filter(|p| p.runc != p.kata && p.surprise.is_none())
                .count(),
        );
        out
    }

    /// The table as HTML (the caller escapes nothing: every cell is escaped here).
    pub fn html(&self, escape: impl Fn(&str) -> String) -> String {
        let mut out = format!(
            "<table class=\"differences\"><caption>runc vs {}: what a workload sees differently</caption>\n<tr><th>probe</th><th>runc</th><th>{}</th><th>verdict</th></tr>\n",
            escape(&self.handler),
            escape(&self.handler)
        );
        for p in &self.probes {
            let class = match (&p.surprise, p.runc == p.kata) {
                (Some(_), _) => "surprise",
                (None, true) => "alike",
                (None, false) => "declared",
            };
            let _ = writeln!(
                out,
                "<tr class=\"{class}\"><td>{}</td><td><pre>{}</pre></td><td><pre>{}</pre></td><td>{}</td></tr>",
                escape(&p.probe),
                escape(&p.runc),
                escape(&p.kata),
                escape(&p.verdict())
            );
        }
        out.push_str("</table>\n");
        out
    }
}

fn indent(text: &str) -> String {
    text.replace('\n', "\n         ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answers(
        probe: &str,
        runc: &str,
        kata: &str,
        reason: Option<&str>,
        surprise: Option<&str>,
    ) -> ProbeAnswers {
        ProbeAnswers {
            probe: probe.into(),
            runc: runc.into(),
            kata: kata.into(),
            declared: if reason.is_some() { "differs" } else { "same" }.into(),
            reason: reason.map(Into::into),
            surprise: surprise.map(Into::into),
        }
    }

    fn table() -> Differences {
        Differences {
            handler: "kata".into(),
            probes: vec![
                answers("kernel", "6.18", "6.1", Some("the guest's kernel"), None),
                answers(
                    "hostname",
                    "kh-diff",
                    "other",
                    None,
                    Some("nothing declares a difference"),
                ),
                answers("PATH", "/bin", "/bin", None, None),
            ],
        }
    }

    #[test]
    fn the_text_names_each_probe_its_answers_and_verdict() {
        let text = table().text();
        assert!(
            text.contains(
                "## kernel\n   runc: 6.18\n   kata: 6.1\n   -> differs, as declared: the guest's kernel"
            ),
            "{text}"
        );
        assert!(
            text.contains(
                "## hostname\n   runc: kh-diff\n   kata: other\n   -> NOT AS DECLARED: nothing declares"
            ),
            "{text}"
        );
        assert!(
            text.contains("## PATH\n   runc: /bin\n   kata: /bin\n   -> alike"),
            "{text}"
        );
        assert!(
            text.ends_with("3 probes: 1 alike, 1 differ as declared, 1 not as declared\n"),
            "{text}"
        );
    }

    #[test]
    fn the_html_table_escapes_and_marks_the_surprises() {
        let mut differences = table();
        differences.probes[2].kata = "<b>".into();
        let html = differences.html(|s| s.replace('<', "&lt;"));
        assert!(
            html.contains("<tr class=\"surprise\"><td>hostname</td>"),
            "{html}"
        );
        assert!(html.contains("<tr class=\"declared\"><td>kernel</td>"), "{html}");
        assert!(html.contains("<pre>&lt;b></pre>"), "{html}");
        assert!(!html.contains("<b>"), "{html}");
    }

    #[test]
    fn it_reads_back_as_written() {
        let json = serde_json::to_string(&table()).unwrap();
        assert!(
            json.contains("\"surprise\":\"nothing declares a difference\""),
            "{json}"
        );
        assert!(!json.contains("\"reason\":null"), "{json}");
        assert_eq!(serde_json::from_str::<Differences>(&json).unwrap(), table());
    }
}
