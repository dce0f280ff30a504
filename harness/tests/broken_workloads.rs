//! Each scenario of suites/workloads.yaml whose check a user-side change can break, run on runc
//! as the suite has it and as a deliberately broken copy (one expectation changed): the row as
//! shipped passes and its broken copy fails, naming the step and what it saw. The suite's text
//! is taken from the file itself, so a row edited there is the row tested here.

#[path = "common/cli.rs"]
mod cli;
use cli::run_suite;

/// (scenario, text in its row, what the broken copy has instead, what its failure says).
const BREAKS: &[(&str, &str, &str, &str)] = &[
    (
        "exec",
        "stdout: { equals: out }",
        "stdout: { equals: OUT }",
        "stdout is \"out\", expected \"OUT\"",
    ),
    (
        "env",
        "equals: \"hello from kata-harness\"",
        "equals: \"hello from runc\"",
        "expected \"hello from runc\"",
    ),
    (
        "hostname-and-dns",
        "equals: kh-workload",
        "equals: kh-other",
        "expected \"kh-other\"",
    ),
    (
        "memory-limit",
        "equals: \"536870912\"",
        "equals: \"268435456\"",
        "stdout is \"536870912\", expected \"268435456\"",
    ),
    (
        "cpu-limit",
        "equals: \"200000 100000\"",
        "equals: \"100000 100000\"",
        "expected \"100000 100000\"",
    ),
    (
        "oom",
        "reason: OOMKilled",
        "reason: Completed",
        "expected \"Completed\"",
    ),
    (
        "graceful-termination",
        "'^exiting after 1$'",
        "'^exiting after 2$'",
        "exiting after 2",
    ),
    (
        "host-directory",
        "exit_code: 1, stderr",
        "exit_code: 0, stderr",
        "exit code 1, expected 0",
    ),
];

/// The row of `scenario` in the suite's text: from its `- scenario:` line to the next row.
fn row_text<'a>(suite: &'a str, scenario: &str) -> &'a str {
    let start = suite
        .find(&format!("\n  - scenario: {scenario}\n"))
        .unwrap_or_else(|| panic!("suites/workloads.yaml has no row {scenario}"))
        + 1;
    let end = suite[start + 4..]
        .find("\n  - scenario: ")
        .map_or(suite.len(), |i| start + 4 + i + 1);
    &suite[start..end]
}

#[test]
fn workload_rows_pass_as_shipped_and_fail_when_broken() {
    let repo = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let shipped = std::fs::read_to_string(repo.join("suites/workloads.yaml")).unwrap();
    let mut suite = String::from("suite: broken\nplacements: [local]\nrows:\n");
    for (scenario, text, broken, _) in BREAKS {
        let row = row_text(&shipped, scenario);
        assert_eq!(
            row.matches(text).count(),
            1,
            "{scenario}: {text:?} once in:\n{row}"
        );
        let runc_only = row.replace(
            "handlers: [runc, crun, kata, kata-qemu-runtime-rs]",
            "handlers: [runc]",
        );
        assert!(
            runc_only.contains("handlers: [runc]"),
            "{scenario}: its handlers changed:\n{row}"
        );
        suite.push_str(&runc_only);
        suite.push_str(
            &runc_only
                .replacen(
                    &format!("scenario: {scenario}"),
                    &format!("scenario: broken-{scenario}"),
                    1,
                )
                .replace(text, broken),
        );
    }
    let run = run_suite(&suite, "2.1");
    let said = &run.said;
    assert_eq!(run.code, Some(1), "the broken rows fail the run: {said}");
    let trial = |scenario: &str| run.trial(scenario);
    for (scenario, _, _, says) in BREAKS {
        let (verdict, text) = trial(&format!("{scenario}-runc"));
        assert_eq!(verdict, "passed", "{scenario} as shipped: {text}");
        let (verdict, text) = trial(&format!("broken-{scenario}-runc"));
        assert_eq!(verdict, "failed", "broken {scenario}: {text}");
        assert!(
            text.contains("step "),
            "broken {scenario}: the step is named: {text}"
        );
        assert!(text.contains(says), "broken {scenario}: {says:?} not in {text}");
    }
    assert_eq!(
        run.json["trials"].as_array().unwrap().len(),
        2 * BREAKS.len(),
        "{said}"
    );
}
