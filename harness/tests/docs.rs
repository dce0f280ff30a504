//! The documentation tells the truth: the generated references are what the code generates
//! now (`kata-harness docs --check`), every command line quoted in README.md and docs/ parses
//! with the real CLI (run with `--help`), every script it names exists, every test target it
//! names exists, every relative link resolves, and every repository path named in comments,
//! suite and profile files, scripts and docs exists. Each check is also shown failing on a
//! broken case.

use std::path::{Path, PathBuf};
use std::process::Command;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn harness() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_kata-harness"));
    cmd.current_dir(repo());
    cmd
}

// --- generated references -------------------------------------------------------------

#[test]
fn generated_references_are_current() {
    let out = harness().args(["docs", "--check"]).output().unwrap();
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// What `docs` reads and writes, copied into a scratch checkout.
fn scratch_checkout() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for sub in ["suites", "bench", "scripts", "docs/reference"] {
        std::fs::create_dir_all(dir.path().join(sub).parent().unwrap()).unwrap();
        let status = Command::new("cp")
            .arg("-a")
            .arg(repo().join(sub))
            .arg(dir.path().join(sub).parent().unwrap())
            .status()
            .unwrap();
        assert!(status.success(), "cp {sub}");
    }
    dir
}

fn check(root: &Path) -> (bool, String) {
    let out = harness()
        .args(["docs", "--check", "--root"])
        .arg(root)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[test]
fn a_stale_generated_file_is_named_with_the_command_that_regenerates_it() {
    let root = scratch_checkout();
    let root = root.path();
    let (ok, text) = check(root);
    assert!(ok, "the copy is current: {text}");

    // A suite's example row changes: the scenario reference is stale.
    let cri = root.join("suites/cri.yaml");
    let suite = std::fs::read_to_string(&cri).unwrap();
    std::fs::write(
        &cri,
        suite.replacen(
            "crictl runp pod.json (no -r)",
            "crictl runp pod.json (without -r)",
            1,
        ),
    )
    .unwrap();
    // A benchmark figure changes: bench/README.md is stale.
    let bench = root.join("bench/kata-1.6.json");
    let figures = std::fs::read_to_string(&bench).unwrap();
    std::fs::write(
        &bench,
        figures.replacen(
            "\"kata_over_runc_median\": 12.9",
            "\"kata_over_runc_median\": 13.9",
            1,
        ),
    )
    .unwrap();
    // A man page of a command that no longer exists, and a missing completion.
    std::fs::write(root.join("docs/reference/man/kata-harness-gone.1"), "").unwrap();
    std::fs::remove_file(root.join("docs/reference/completions/kata-harness.fish")).unwrap();

    let (ok, text) = check(root);
    assert!(!ok, "{text}");
    for want in [
        "stale: docs/reference/scenarios.md (differs from what the code generates)",
        "stale: docs/reference/rows.md (differs from what the code generates)",
        "stale: bench/README.md (differs from what the code generates)",
        "stale: docs/reference/man/kata-harness-gone.1 (no longer generated)",
        "stale: docs/reference/completions/kata-harness.fish (missing)",
        "regenerate with: cargo run -p kata-harness -- docs",
    ] {
        assert!(text.contains(want), "{want}:\n{text}");
    }
    assert!(!text.contains("cli.md"), "cli.md did not change:\n{text}");

    // Regenerating makes it current again, and removes the stray page.
    let out = harness().args(["docs", "--root"]).arg(root).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let (ok, text) = check(root);
    assert!(ok, "{text}");
    assert!(!root.join("docs/reference/man/kata-harness-gone.1").exists());
}

#[test]
fn a_benchmark_without_its_record_is_refused() {
    let root = scratch_checkout();
    let bench = root.path().join("bench/crictl-overhead.json");
    let mut value: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&bench).unwrap()).unwrap();
    value["recorded"].as_object_mut().unwrap().remove("commit");
    std::fs::write(&bench, value.to_string()).unwrap();
    let (ok, text) = check(root.path());
    assert!(!ok, "{text}");
    assert!(
        text.contains("bench/crictl-overhead.json: no recorded.commit"),
        "{text}"
    );
}

// --- command lines quoted in the docs -----------------------------------------------------

/// The Markdown files a reader is pointed at (the generated references are checked above).
fn docs() -> Vec<PathBuf> {
    let mut files = vec![repo().join("README.md")];
    for entry in std::fs::read_dir(repo().join("docs")).unwrap().flatten() {
        if entry.path().extension().is_some_and(|x| x == "md") {
            files.push(entry.path());
        }
    }
    files.sort();
    files
}

/// Command lines in a Markdown text: the lines of fenced `sh` blocks (with `\` continuations
/// joined, comments dropped) and inline code spans that start like a command. Each as (line
/// number, text).
fn quoted_commands(text: &str) -> Vec<(usize, String)> {
    let mut found = Vec::new();
    let mut in_sh = false;
    let mut in_other = false;
    let mut pending = String::new();
    for (n, line) in text.lines().enumerate() {
        let n = n + 1;
        let trimmed = line.trim();
        if let Some(lang) = trimmed.strip_prefix("```") {
            if in_sh || in_other {
                in_sh = false;
                in_other = false;
            } else if lang == "sh" || lang == "console" {
                in_sh = true;
            } else {
                in_other = true;
            }
            continue;
        }
        if in_sh {
            if trimmed.starts_with('#') {
                continue;
            }
            pending.push_str(trimmed.trim_end_matches('\\'));
            pending.push(' ');
            if !trimmed.ends_with('\\') {
                found.push((n, pending.trim().to_owned()));
                pending.clear();
            }
            continue;
        }
        if in_other {
            continue;
        }
        for span in line.split('`').skip(1).step_by(2) {
            found.push((n, span.to_owned()));
        }
    }
    found
}

/// Words of a shell command line (quotes removed, a trailing comment dropped); `None` for
/// lines this check does not read (substitutions, variables).
fn words(line: &str) -> Option<Vec<String>> {
    if line.contains("$(") || line.contains('$') {
        return None;
    }
    let mut words = Vec::new();
    let mut word = String::new();
    let mut quote = None;
    let mut started = false;
    for c in line.chars() {
        match (quote, c) {
            (None, '\'' | '"') => {
                quote = Some(c);
                started = true;
            }
            (Some(q), c) if c == q => quote = None,
            (None, '#') if !started => break,
            (None, c) if c.is_whitespace() => {
                if started {
                    words.push(std::mem::take(&mut word));
                    started = false;
                }
            }
            (_, c) => {
                word.push(c);
                started = true;
            }
        }
    }
    if started {
        words.push(word);
    }
    Some(words)
}

/// What is wrong with one quoted command, if it is one this check knows: a `kata-harness`
/// line that the CLI does not parse, a script that does not exist, a test target that does not.
fn problem(command: &str) -> Option<String> {
    let words = words(command)?;
    // `a && b`: each part on its own.
    let parts: Vec<&[String]> = words.split(|w| w == "&&" || w == "||" || w == "|").collect();
    for part in parts {
        let args: Option<&[String]> = match part {
            [first, rest @ ..] if first == "kata-harness" || first.ends_with("/kata-harness") => Some(rest),
            [c, r, rel, p, k, dashes, rest @ ..]
                if c == "cargo"
                    && r == "run"
                    && rel == "--release"
                    && p == "-p"
                    && k == "kata-harness"
                    && dashes == "--" =>
            {
                Some(rest)
            }
            _ => None,
        };
        if let Some(args) = args {
            if args.is_empty() || args.iter().any(|a| a == "..." || a.starts_with('[')) {
                continue;
            }
            // `--help` before a `--`, so that nothing after it (a command for a VM) runs.
            let mut args = args.to_vec();
            let at = args.iter().position(|a| a == "--").unwrap_or(args.len());
            args.insert(at, "--help".into());
            let out = harness().args(&args).output().unwrap();
            if !out.status.success() {
                return Some(format!(
                    "does not parse: {}",
                    String::from_utf8_lossy(&out.stderr)
                        .lines()
                        .next()
                        .unwrap_or_default()
                ));
            }
            continue;
        }
        if let Some(first) = part
            .first()
            .filter(|w| w.starts_with("scripts/") && !w.contains('*'))
        {
            let path = repo().join(first);
            let executable = std::fs::metadata(&path)
                .map(|m| std::os::unix::fs::PermissionsExt::mode(&m.permissions()) & 0o111 != 0)
                .unwrap_or(false);
            if !executable {
                return Some(format!("{first}: no such executable script"));
            }
            continue;
        }
        if part.first().is_some_and(|w| w == "cargo") {
            let package = part.windows(2).find(|w| w[0] == "-p").map(|w| w[1].as_str());
            let test = part.windows(2).find(|w| w[0] == "--test").map(|w| w[1].as_str());
            if let (Some(package), Some(test)) = (package, test) {
                let dir = match package {
                    "kata-harness" => repo().join("harness/tests"),
                    "kata-harness-suites" => repo().join("suites"),
                    other => return Some(format!("-p {other}: no such package")),
                };
                if !dir.join(format!("{test}.rs")).is_file() && !dir.join(test).join("main.rs").is_file() {
                    return Some(format!("--test {test}: no such test target in {package}"));
                }
            }
        }
    }
    None
}

#[test]
fn every_command_quoted_in_readme_and_docs_parses() {
    let mut problems = Vec::new();
    let mut checked = 0;
    for file in docs() {
        let text = std::fs::read_to_string(&file).unwrap();
        for (line, command) in quoted_commands(&text) {
            checked += 1;
            if let Some(p) = problem(&command) {
                problems.push(format!("{}:{line}: `{command}`: {p}", file.display()));
            }
        }
    }
    assert!(
        checked > 50,
        "only {checked} quoted commands found: the extraction is broken"
    );
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn the_command_check_fails_on_broken_commands() {
    let text = "Run `kata-harness run --target local --no-such-flag`, then\n\n```sh\nscripts/setup && cargo run --release -p kata-harness -- lsit\nscripts/no-such-script --x\ncargo nextest run -p kata-harness --test no_such_test\n# kata-harness comment --not-checked\nkata-harness run --target local \\\n    --containerd 2.1 --filter 'cri::'\n```\n";
    let commands = quoted_commands(text);
    assert_eq!(
        commands.iter().map(|(_, c)| c.as_str()).collect::<Vec<_>>(),
        [
            "kata-harness run --target local --no-such-flag",
            "scripts/setup && cargo run --release -p kata-harness -- lsit",
            "scripts/no-such-script --x",
            "cargo nextest run -p kata-harness --test no_such_test",
            "kata-harness run --target local  --containerd 2.1 --filter 'cri::'",
        ]
    );
    let verdicts: Vec<Option<String>> = commands.iter().map(|(_, c)| problem(c)).collect();
    assert!(
        verdicts[0]
            .as_deref()
            .unwrap_or_default()
            .contains("--no-such-flag"),
        "{verdicts:?}"
    );
    assert!(
        verdicts[1].as_deref().unwrap_or_default().contains("lsit"),
        "{verdicts:?}"
    );
    assert!(
        verdicts[2]
            .as_deref()
            .unwrap_or_default()
            .contains("no such executable script"),
        "{verdicts:?}"
    );
    assert!(
        verdicts[3]
            .as_deref()
            .unwrap_or_default()
            .contains("no such test target"),
        "{verdicts:?}"
    );
    assert_eq!(verdicts[4], None);
}

// --- links ------------------------------------------------------------------------------

/// The anchors GitHub gives a Markdown text's headings: lower case, punctuation dropped,
/// spaces as `-`.
fn anchors(text: &str) -> Vec<String> {
    let mut in_code = false;
    let mut found = Vec::new();
    for line in text.lines() {
        if line.trim_start().starts_with("```") {
            in_code = !in_code;
        }
        if in_code {
            continue;
        }
        if let Some(heading) = line.strip_prefix('#') {
            let heading = heading.trim_start_matches('#').trim();
            let slug: String = heading
                .to_lowercase()
                .chars()
                .filter(|c| c.is_alphanumeric() || *c == ' ' || *c == '-' || *c == '_')
                .map(|c| if c == ' ' { '-' } else { c })
                .collect();
            found.push(slug);
        }
    }
    found
}

/// Relative link targets in a Markdown text that do not exist beside `file`, or whose
/// `#anchor` is no heading of the file they point at.
fn broken_links(file: &Path, text: &str) -> Vec<String> {
    let dir = file.parent().unwrap();
    let mut broken = Vec::new();
    let mut in_code = false;
    for line in text.lines() {
        if line.trim_start().starts_with("```") {
            in_code = !in_code;
            continue;
        }
        if in_code {
            continue;
        }
        let mut rest = line;
        while let Some(at) = rest.find("](") {
            let after = &rest[at + 2..];
            let end = after.find(')').unwrap_or(after.len());
            let target = &after[..end];
            rest = &after[end..];
            if target.starts_with("http://") || target.starts_with("https://") {
                continue;
            }
            let (path, anchor) = target.split_once('#').unwrap_or((target, ""));
            let linked = if path.is_empty() {
                file.to_owned()
            } else {
                dir.join(path)
            };
            if !linked.exists() {
                broken.push(target.to_owned());
            } else if !anchor.is_empty() {
                let text = if path.is_empty() {
                    Some(text.to_owned())
                } else {
                    std::fs::read_to_string(&linked).ok()
                };
                if !text.is_some_and(|t| anchors(&t).iter().any(|a| a == anchor)) {
                    broken.push(target.to_owned());
                }
            }
        }
    }
    broken
}

#[test]
fn every_relative_link_resolves() {
    let mut files = docs();
    files.push(repo().join("bench/README.md"));
    for entry in std::fs::read_dir(repo().join("docs/reference"))
        .unwrap()
        .flatten()
    {
        if entry.path().extension().is_some_and(|x| x == "md") {
            files.push(entry.path());
        }
    }
    let mut problems = Vec::new();
    let mut links = 0;
    for file in &files {
        let text = std::fs::read_to_string(file).unwrap();
        links += text.matches("](").count();
        for target in broken_links(file, &text) {
            problems.push(format!("{}: ({target}) does not exist", file.display()));
        }
    }
    assert!(links > 20, "only {links} links found");
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn the_link_check_fails_on_a_broken_link() {
    let file = repo().join("docs/guide.md");
    let text = "## The `x` heading: here\n[ok](../README.md) [anchor](#the-x-heading-here) [web](https://example.org) [gone](reference/nope.md#a)\n[no such heading](#nope) [heading elsewhere](troubleshooting.md#exit-code-2-before-anything-starts) [wrong heading](troubleshooting.md#exit-code-3)\n```\n[in code](nope)\n```\n";
    assert_eq!(
        broken_links(&file, text),
        ["reference/nope.md#a", "#nope", "troubleshooting.md#exit-code-3"]
    );
}

// --- repository paths named in comments and docs ----------------------------------------

/// Repository paths (a source file under `harness/`, a suite, a script, a page) named in
/// `text` that do not exist in the checkout.
fn missing_paths(text: &str) -> Vec<String> {
    const ROOTS: [&str; 7] = [
        "harness/",
        "suites/",
        "scripts/",
        "profiles/",
        "bench/",
        "docs/",
        "vm-images/",
    ];
    const EXTENSIONS: [&str; 6] = [".rs", ".yaml", ".md", ".sh", ".json", ".toml"];
    let mut missing = Vec::new();
    for word in text.split(|c: char| !(c.is_alphanumeric() || "_./-".contains(c))) {
        let word = word.trim_end_matches('.');
        let Some(root) = ROOTS.iter().find(|r| word.starts_with(**r)) else {
            continue;
        };
        let preceded_by_path = text
            .find(word)
            .is_some_and(|at| text[..at].ends_with('/') || text[..at].ends_with("../"));
        if word.len() == root.len() || preceded_by_path || !EXTENSIONS.iter().any(|x| word.ends_with(x)) {
            continue;
        }
        if !repo().join(word).exists() {
            missing.push(word.to_owned());
        }
    }
    missing
}

/// The text of a file that may name paths: comments of Rust and shell, all of YAML and Markdown.
fn pointer_text(path: &Path) -> Option<String> {
    let text = std::fs::read_to_string(path).ok()?;
    let name = path.file_name()?.to_string_lossy().into_owned();
    let comments = |marker: &str| -> String {
        text.lines()
            .filter_map(|l| l.trim_start().strip_prefix(marker))
            .collect::<Vec<_>>()
            .join("\n")
    };
    if name.ends_with(".rs") {
        Some(comments("//"))
    } else if name.ends_with(".yaml") || name.ends_with(".md") {
        Some(text)
    } else if text.starts_with("#!") || name.ends_with(".sh") {
        Some(comments("#"))
    } else {
        None
    }
}

fn files_under(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            files_under(&path, out);
        } else {
            out.push(path);
        }
    }
}

#[test]
fn every_repository_path_named_in_comments_suites_and_docs_exists() {
    let mut files = vec![repo().join("README.md")];
    for dir in [
        "harness/src",
        "harness/tests",
        "suites",
        "scripts",
        "profiles",
        "docs",
        "vm-images",
    ] {
        files_under(&repo().join(dir), &mut files);
    }
    let mut problems = Vec::new();
    for file in &files {
        if let Some(text) = pointer_text(file) {
            for path in missing_paths(&text) {
                problems.push(format!("{}: names {path}, which does not exist", file.display()));
            }
        }
    }
    assert!(files.len() > 100, "only {} files read", files.len());
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn the_path_check_fails_on_a_path_that_moved() {
    assert_eq!(
        missing_paths("Fields: harness/src/scenario/model.rs and harness/src/scenario/model/mod.rs."),
        ["harness/src/scenario/model.rs"]
    );
    assert!(missing_paths("see kata-containers/docs/Limitations.md upstream").is_empty());
    assert_eq!(missing_paths("(docs/Limitations.md)"), ["docs/Limitations.md"]);
}

// --- the suite schema ---------------------------------------------------------------------

/// The first line of a suite file: editors (the YAML language server) read the schema there.
const SCHEMA_LINE: &str = "# yaml-language-server: $schema=schema.json";

/// The suite files under `root/suites` whose first line does not name the schema.
fn suites_without_schema_line(root: &Path) -> Vec<String> {
    let mut missing: Vec<String> = std::fs::read_dir(root.join("suites"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .filter(|p| p.file_name().is_some_and(|n| n != "quarantine.yaml"))
        .filter(|p| std::fs::read_to_string(p).unwrap().lines().next() != Some(SCHEMA_LINE))
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    missing.sort();
    missing
}

#[test]
fn every_suite_names_the_schema_that_schema_prints_and_docs_keeps_current() {
    assert_eq!(suites_without_schema_line(&repo()), Vec::<String>::new());
    let out = harness().arg("schema").output().unwrap();
    assert!(out.status.success());
    let printed: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let file: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(repo().join("suites/schema.json")).unwrap()).unwrap();
    assert_eq!(printed, file);
    // The schema knows the row kinds and the pod steps (it is generated from the loader's types).
    let text = printed.to_string();
    for name in ["\"pod\"", "\"wait_for\"", "\"grace_seconds\"", "\"local_lines\""] {
        assert!(text.contains(name), "{name} is not in the schema");
    }

    // Broken: a suite without the line is named; a schema that drifted is stale.
    let root = scratch_checkout();
    let root = root.path();
    let cri = root.join("suites/cri.yaml");
    let text = std::fs::read_to_string(&cri).unwrap();
    std::fs::write(&cri, text.replacen(&format!("{SCHEMA_LINE}\n"), "", 1)).unwrap();
    assert_eq!(suites_without_schema_line(root), ["cri.yaml"]);
    let schema = root.join("suites/schema.json");
    let text = std::fs::read_to_string(&schema).unwrap();
    std::fs::write(&schema, text.replacen("\"wait_for\"", "\"wait_until\"", 1)).unwrap();
    let (ok, text) = check(root);
    assert!(!ok, "a drifted schema passed: {text}");
    assert!(text.contains("suites/schema.json"), "{text}");
}

// --- the rows the README and the guide show load ------------------------------------------------------------

/// Every YAML block of `markdown` that holds rows, as a suite: a whole suite as written, a
/// bare list of rows wrapped in one. Errors name the block by its first line.
fn yaml_row_blocks_load(markdown: &str) -> Result<usize, String> {
    let mut loaded = 0;
    let mut blocks = markdown.split("```yaml\n").skip(1);
    for block in blocks.by_ref() {
        let block = block.split("```").next().unwrap_or_default();
        let text = if block.starts_with("suite:") {
            block.to_owned()
        } else if block.trim_start().starts_with("- scenario:") {
            format!("suite: readme\nrows:\n{block}")
        } else {
            continue;
        };
        kata_harness::scenario::Suite::parse(Path::new("README.md"), &text)
            .map_err(|e| format!("{}: {e}", block.lines().next().unwrap_or_default()))?;
        loaded += 1;
    }
    Ok(loaded)
}

#[test]
fn the_rows_the_readme_shows_load() {
    // The README's suite and the guide's pod row.
    let readme = std::fs::read_to_string(repo().join("README.md")).unwrap()
        + &std::fs::read_to_string(repo().join("docs/guide.md")).unwrap();
    assert_eq!(
        yaml_row_blocks_load(&readme),
        Ok(2),
        "the README shows a suite and the guide a pod row"
    );
    // Broken: a step misspelt in the shown row is an error naming it.
    let broken = readme.replacen("- update: {", "- upgrade: {", 1);
    assert_ne!(broken, readme);
    let err = yaml_row_blocks_load(&broken).unwrap_err();
    assert!(err.contains("upgrade"), "{err}");
}
