//! A `pod:` row's steps judge what they observe, on a real containerd with runc: a suite of
//! rows that hold pass, and each step's check shown failing on a row that breaks it (wrong
//! output, exit code, exit reason, a SIGTERM the process ignores), with the step and what was
//! seen named in the row's message. The run exits 1 and leaves nothing running.

#[path = "common/cli.rs"]
mod cli;
use cli::run_suite;

const SUITE: &str = r#"
suite: steps
placements: [local]
rows:
  - scenario: holds
    pod:
      handlers: [runc]
      hostname: kh-steps
      containers:
        - name: app
          env: { GREETING: hi }
          resources: { memory: 64Mi }
          mounts: [{ container_path: /data }]
      steps:
        - exec: { command: [sh, -c, 'echo "$GREETING"; echo oops >&2; exit 4'], exit_code: 4, stdout: { equals: hi }, stderr: { contains: oops } }
        - exec: { command: [hostname], stdout: { matches: '^kh-steps$' } }
        - update: { resources: { memory: 128Mi } }
        - exec: { command: [sh, -c, "cat /sys/fs/cgroup/memory.max 2>/dev/null || cat /sys/fs/cgroup/memory/memory.limit_in_bytes"], stdout: { equals: "134217728" } }
        - file: { path: /data/a, writer: node, content: "from the node" }
        - file: { path: /data/b, writer: container, content: "from the container" }
        - stats: {}
        - stop: { grace_seconds: 5, exit_code: 143 }
  - scenario: wrong-stdout
    pod:
      handlers: [runc]
      containers: [{ name: app }]
      steps:
        - exec: { command: [echo, hello] }
        - exec: { command: [echo, hello], stdout: { equals: goodbye } }
  - scenario: wrong-exit-code
    pod:
      handlers: [runc]
      containers: [{ name: app }]
      steps:
        - exec: { command: ["false"] }
  - scenario: wrong-reason
    pod:
      handlers: [runc]
      containers: [{ name: app, command: [sh, -c, "exit 3"] }]
      steps:
        - wait_for: { state: exited, reason: OOMKilled, within_seconds: 30 }
  - scenario: sigterm-ignored
    pod:
      handlers: [runc]
      containers: [{ name: app, command: [sh, -c, 'trap "" TERM; while true; do sleep 1; done'] }]
      steps:
        - stop: { grace_seconds: 3, exit_code: 0, within_seconds: 2 }
"#;

#[test]
fn steps_pass_when_they_hold_and_each_check_fails_a_row_that_breaks_it() {
    let run = run_suite(SUITE, "1.6");
    let said = &run.said;
    assert_eq!(run.code, Some(1), "failed rows exit 1: {said}");
    let trial = |scenario: &str| run.trial(scenario);
    let (verdict, text) = trial("holds-runc");
    assert_eq!(verdict, "passed", "{text}");
    for seen in [
        "`sh -c",
        "exited 4, printed \"hi\"",
        "updated (--memory 134217728)",
        "/data/a written by the node, read back by the container",
        "/data/b written by the container, read back by the node",
        "stats: working set",
        "exit code 143",
        "sandbox removed, nothing left",
    ] {
        assert!(text.contains(seen), "{seen:?} not in {text}");
    }
    for (scenario, want) in [
        ("wrong-stdout-runc", "step 2 (exec): `echo hello` exited 0, printed \"hello\": stdout is \"hello\", expected \"goodbye\""),
        ("wrong-exit-code-runc", "step 1 (exec): `false` exited 1: exit code 1, expected 0"),
        ("wrong-reason-runc", "step 1 (wait_for): CONTAINER_EXITED after"),
        ("wrong-reason-runc", "reason \"Error\", expected \"OOMKilled\""),
        ("sigterm-ignored-runc", "step 1 (stop): stopped in"),
        ("sigterm-ignored-runc", "SIGTERM did not end it"),
        ("sigterm-ignored-runc", "exit code 137, expected 0"),
    ] {
        let (verdict, text) = trial(scenario);
        assert_eq!(verdict, "failed", "{scenario}: {text}");
        assert!(text.contains(want), "{scenario}: {want:?} not in {text}");
    }
}
