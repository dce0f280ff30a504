//! `kata-harness docs`: the generated references, written or checked.
//!
//! Invariant: every generated file comes from the code or data it documents, never from a
//! copy: the CLI reference, man pages and completions from the clap definition of this binary,
//! the scenario reference from the suite types (`scenario::model::reference`) with examples
//! from `suites/*.yaml`, and `bench/README.md` from `scripts/bench-*` and `bench/*.json`.
//! `--check` writes nothing and fails naming each stale file and the command that
//! regenerates them (`harness/tests/docs.rs` runs it).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use clap::CommandFactory;
use serde_json::Value as Json;

use kata_harness::scenario::model::reference::{self, SuiteText};

/// The command that regenerates the files, for messages.
pub(crate) const REGENERATE: &str = "cargo run -p kata-harness -- docs";

/// Folders whose every file is generated: a file there that is not generated any more is stale.
const GENERATED_DIRS: [&str; 2] = ["docs/reference/man", "docs/reference/completions"];

#[derive(clap::Args)]
pub(crate) struct DocsArgs {
    /// Compare the committed files with what would be generated, write nothing, and exit 1
    /// naming each stale file.
    #[arg(long)]
    check: bool,
    /// The checkout to read from and write into [default: this checkout].
    #[arg(long, value_name = "DIR")]
    root: Option<PathBuf>,
}

pub(crate) fn run(args: DocsArgs, repo: &Path) -> Result<ExitCode> {
    let root = args.root.unwrap_or_else(|| repo.to_owned());
    let files = generate(&root)?;
    if args.check {
        let stale = stale(&root, &files)?;
        if stale.is_empty() {
            println!("{} generated files are current", files.len());
            return Ok(ExitCode::SUCCESS);
        }
        for (path, why) in &stale {
            println!("stale: {} ({why})", path.display());
        }
        println!("regenerate with: {REGENERATE}");
        return Ok(ExitCode::from(1));
    }
    for dir in GENERATED_DIRS {
        let dir = root.join(dir);
        if dir.is_dir() {
            std::fs::remove_dir_all(&dir).with_context(|| format!("failed to clear {}", dir.display()))?;
        }
    }
    for (path, content) in &files {
        let path = root.join(path);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("failed to create {}", parent.display()))?;
        }
        std::fs::write(&path, content).with_context(|| format!("failed to write {}", path.display()))?;
        println!("wrote {}", path.display());
    }
    Ok(ExitCode::SUCCESS)
}

/// Every generated file: path relative to the checkout, content.
fn generate(root: &Path) -> Result<BTreeMap<PathBuf, Vec<u8>>> {
    let mut files = BTreeMap::new();
    let cli = cli_for_docs();
    files.insert("docs/reference/cli.md".into(), cli_markdown(&cli).into_bytes());
    man_pages(&cli, &mut files)?;
    for (shell, name) in [
        (clap_complete::Shell::Bash, "kata-harness"),
        (clap_complete::Shell::Zsh, "_kata-harness"),
        (clap_complete::Shell::Fish, "kata-harness.fish"),
    ] {
        let mut out = Vec::new();
        clap_complete::generate(shell, &mut cli.clone(), "kata-harness", &mut out);
        files.insert(Path::new("docs/reference/completions").join(name), out);
    }
    files.insert(
        "docs/reference/scenarios.md".into(),
        scenario_reference(root)?.into_bytes(),
    );
    files.insert(
        "docs/reference/rows.md".into(),
        rows_reference(root)?.into_bytes(),
    );
    files.insert("bench/README.md".into(), bench_readme(root)?.into_bytes());
    files.insert(
        "suites/schema.json".into(),
        kata_harness::scenario::model::suite_schema_json().into_bytes(),
    );
    Ok(files)
}

/// Files that differ from `files`, are missing, or sit in a generated folder without being
/// generated; each with why.
fn stale(root: &Path, files: &BTreeMap<PathBuf, Vec<u8>>) -> Result<Vec<(PathBuf, &'static str)>> {
    let mut found = Vec::new();
    for (path, content) in files {
        match std::fs::read(root.join(path)) {
            Ok(on_disk) if &on_disk == content => {}
            Ok(_) => found.push((path.clone(), "differs from what the code generates")),
            Err(_) => found.push((path.clone(), "missing")),
        }
    }
    for dir in GENERATED_DIRS {
        let Ok(entries) = std::fs::read_dir(root.join(dir)) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = Path::new(dir).join(entry.file_name());
            if !files.contains_key(&path) {
                found.push((path, "no longer generated"));
            }
        }
    }
    Ok(found)
}

/// The clap definition as the references show it: `--help` at a fixed width. (No default may
/// depend on where the checkout is: `--suites` hides its absolute one.)
fn cli_for_docs() -> clap::Command {
    let mut cli = crate::Cli::command().term_width(100);
    cli.build();
    cli
}

/// Each visible command's `--help`, in one page.
fn cli_markdown(cli: &clap::Command) -> String {
    let mut out = String::from(
        "# CLI reference\n\n<!-- Generated by `kata-harness docs` from the clap definition in harness/src/; do not edit.\n     A test fails when this file is stale. -->\n\nEach command's `--help`, as the binary prints it. Also as man pages ([man/](man/)) and shell\ncompletions ([completions/](completions/)).\n\n",
    );
    let mut commands = Vec::new();
    visible_commands(cli, &mut Vec::new(), &mut commands);
    for (path, _) in &commands {
        let anchor = path.join("-");
        let _ = writeln!(out, "- [`{}`](#{anchor})", path.join(" "));
    }
    out.push('\n');
    for (path, command) in commands {
        let _ = writeln!(out, "## {}\n", path.join(" "));
        let mut command = command.clone().bin_name(path.join(" "));
        let help = command.render_long_help().to_string();
        let help: Vec<&str> = help.lines().map(str::trim_end).collect();
        let _ = writeln!(out, "```text\n{}\n```\n", help.join("\n").trim_end());
    }
    out.trim_end().to_owned() + "\n"
}

/// The command and its visible subcommands, depth first, with their paths.
fn visible_commands<'a>(
    command: &'a clap::Command,
    path: &mut Vec<String>,
    out: &mut Vec<(Vec<String>, &'a clap::Command)>,
) {
    path.push(command.get_name().to_owned());
    out.push((path.clone(), command));
    for sub in command.get_subcommands().filter(|s| !s.is_hide_set()) {
        if sub.get_name() == "help" {
            continue;
        }
        visible_commands(sub, path, out);
    }
    path.pop();
}

/// A man page per visible command: `kata-harness.1`, `kata-harness-run.1`, ...
fn man_pages(cli: &clap::Command, files: &mut BTreeMap<PathBuf, Vec<u8>>) -> Result<()> {
    let mut commands = Vec::new();
    visible_commands(cli, &mut Vec::new(), &mut commands);
    for (path, command) in commands {
        let name = path.join("-");
        let command = command.clone().name(name.clone()).bin_name(path.join(" "));
        let mut out = Vec::new();
        clap_mangen::Man::new(command)
            .render(&mut out)
            .with_context(|| format!("failed to render the man page of {name}"))?;
        files.insert(Path::new("docs/reference/man").join(format!("{name}.1")), out);
    }
    Ok(())
}

fn scenario_reference(root: &Path) -> Result<String> {
    let dir = root.join("suites");
    let mut names: Vec<PathBuf> = std::fs::read_dir(&dir)
        .with_context(|| format!("failed to list {}", dir.display()))?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .filter(|p| p.file_name().is_some_and(|n| n != "quarantine.yaml"))
        .collect();
    names.sort();
    let texts: Vec<(String, String)> = names
        .iter()
        .map(|p| {
            let text =
                std::fs::read_to_string(p).with_context(|| format!("failed to read {}", p.display()))?;
            Ok((
                format!("suites/{}", p.file_name().unwrap_or_default().to_string_lossy()),
                text,
            ))
        })
        .collect::<Result<_>>()?;
    let suites: Vec<SuiteText> = texts
        .iter()
        .map(|(name, text)| SuiteText { name, text })
        .collect();
    reference::markdown(&suites).context("failed to render the scenario reference")
}

/// `docs/reference/rows.md`: every row of the shipped suites with what it checks (its `about`),
/// what it needs and what it does, so no hand-written table repeats the suites and goes stale.
fn rows_reference(root: &Path) -> Result<String> {
    use kata_harness::scenario::model::{Action, Suite};
    let suites = Suite::load_dir(&root.join("suites")).context("failed to load suites/")?;
    let mut out = String::from(
        "# Rows

<!-- Generated by `kata-harness docs` from suites/*.yaml; do not edit.
     A test fails when this file is stale. -->

Every row of the shipped suites. Each runs once per variant of its suite's placements
(`suite::scenario::variant`); a row whose requirement is absent is skipped with the reason.
Fields: [scenario reference](scenarios.md).

",
    );
    for suite in &suites {
        let file = suite
            .file
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned();
        let placements: Vec<String> = suite
            .placements
            .iter()
            .map(|p| format!("{p:?}").to_lowercase())
            .collect();
        let _ = writeln!(
            out,
            "## {}

{} ([`suites/{file}`](../../suites/{file}); placements: {})

| scenario | action | needs | checks |
|---|---|---|---|",
            suite.name,
            suite.about,
            placements.join(", ")
        );
        for row in &suite.rows {
            let action = match &row.action {
                Action::Sandbox(s) if s.handler.is_empty() => "sandbox".to_owned(),
                Action::Sandbox(s) => format!("sandbox ({})", s.handler),
                Action::Critest(c) => format!("critest ({})", c.handler),
                Action::Kube(k) => format!("kube ({})", k.check.name()),
                Action::Diff(d) => format!("diff (runc vs {})", d.handler()),
                Action::KataCheck(c) => format!("kata_check ({})", c.handler()),
                Action::Pod(p) => {
                    let steps: Vec<&str> = p.steps.iter().map(|s| s.key()).collect();
                    format!(
                        "pod ({}): {}",
                        p.handler(),
                        if steps.is_empty() {
                            "start".into()
                        } else {
                            steps.join(", ")
                        }
                    )
                }
                other => other.key().to_owned(),
            };
            let mut needs: Vec<String> = row.requires.iter().map(ToString::to_string).collect();
            if let Some(node) = &row.node {
                needs.push(node.describe());
            }
            if let Some(skip) = &row.skip {
                needs.push(format!("skipped: {skip}"));
            }
            let _ = writeln!(
                out,
                "| `{}` | {action} | {} | {} |",
                row.scenario,
                table_text(&needs.join("; ")),
                table_text(&row.about)
            );
        }
        out.push('\n');
    }
    Ok(out.trim_end().to_owned() + "\n")
}

/// Text for a Markdown table cell: `|` escaped, `<` and `>` as entities (not tags).
fn table_text(text: &str) -> String {
    text.replace('|', "\\|").replace('<', "&lt;").replace('>', "&gt;")
}

/// `bench/README.md`: each benchmark script's header (what it measures, how to run it) and the
/// figures of every `bench/*.json` it wrote, with the record of when, where and at which
/// commit.
fn bench_readme(root: &Path) -> Result<String> {
    let mut scripts: Vec<PathBuf> = std::fs::read_dir(root.join("scripts"))
        .context("failed to list scripts/")?
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("bench-"))
        })
        .collect();
    scripts.sort();
    let mut figures: Vec<(String, Json)> = Vec::new();
    let mut jsons: Vec<PathBuf> = std::fs::read_dir(root.join("bench"))
        .context("failed to list bench/")?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    jsons.sort();
    for path in jsons {
        let name = format!("bench/{}", path.file_name().unwrap_or_default().to_string_lossy());
        let text = std::fs::read_to_string(&path).with_context(|| format!("failed to read {name}"))?;
        let value: Json = serde_json::from_str(&text).with_context(|| format!("failed to parse {name}"))?;
        for key in ["command", "date", "machine", "commit"] {
            if value
                .pointer(&format!("/recorded/{key}"))
                .and_then(Json::as_str)
                .is_none()
            {
                bail!("{name}: no recorded.{key} (the benchmark scripts write it through scripts/lib/bench-record.sh)");
            }
        }
        figures.push((name, value));
    }

    let mut out = String::from(
        "# Benchmarks\n\n<!-- Generated by `kata-harness docs` from scripts/bench-* and bench/*.json; do not edit.\n     A test fails when this file is stale. -->\n\nFigures, not timed tests: machines here are shared and noisy, so each script reports\nmin/median/max over its runs and records when, on what and at which commit it ran. A script\nwrites its JSON under `bench/`; commit the JSON, then regenerate this page with\n`cargo run -p kata-harness -- docs`.\n\n",
    );
    for script in &scripts {
        let name = format!(
            "scripts/{}",
            script.file_name().unwrap_or_default().to_string_lossy()
        );
        let text = std::fs::read_to_string(script).with_context(|| format!("failed to read {name}"))?;
        let header: Vec<&str> = text
            .lines()
            .skip(1)
            .take_while(|l| l.starts_with('#'))
            .map(|l| l.strip_prefix("# ").unwrap_or(l.trim_start_matches('#')))
            .collect();
        let _ = writeln!(
            out,
            "## {name}\n\n```text\n{}\n```\n",
            header.join("\n").trim_end()
        );
        let mine: Vec<&(String, Json)> = figures
            .iter()
            .filter(|(_, v)| {
                v.pointer("/recorded/command")
                    .and_then(Json::as_str)
                    .and_then(|c| c.split_whitespace().next())
                    == Some(name.as_str())
            })
            .collect();
        if mine.is_empty() {
            out.push_str("No figures recorded in `bench/`.\n\n");
        }
        for (file, value) in mine {
            let recorded = &value["recorded"];
            let field = |k: &str| recorded.get(k).and_then(Json::as_str).unwrap_or_default();
            let _ = writeln!(
                out,
                "Latest figures: [`{file}`]({}), from `{}` on {}, {}, at commit `{}`.",
                file.trim_start_matches("bench/"),
                field("command"),
                field("date"),
                field("machine"),
                field("commit"),
            );
            if let Some(note) = recorded.get("note").and_then(Json::as_str) {
                let _ = writeln!(out, "{note}");
            }
            out.push_str("\n| figure | value |\n|---|---|\n");
            let mut rows = Vec::new();
            flatten(value, "", &mut rows);
            for (key, text) in rows {
                let _ = writeln!(out, "| `{key}` | {} |", text.replace('|', "\\|"));
            }
            out.push('\n');
        }
    }
    let orphans: Vec<&String> = figures
        .iter()
        .map(|(f, _)| f)
        .filter(|f| {
            let command = figures
                .iter()
                .find(|(g, _)| g == *f)
                .and_then(|(_, v)| v.pointer("/recorded/command").and_then(Json::as_str))
                .and_then(|c| c.split_whitespace().next())
                .unwrap_or_default();
            !scripts.iter().any(|s| root.join(command) == *s)
        })
        .collect();
    if let Some(file) = orphans.first() {
        bail!("{file}: recorded.command names no scripts/bench-* script");
    }
    Ok(out.trim_end().to_owned() + "\n")
}

/// A benchmark's figures as `path -> text` rows: a `{min, median, max}` object on one row,
/// other leaves as they are, per-run lists and the record left out.
fn flatten(value: &Json, path: &str, rows: &mut Vec<(String, String)>) {
    let at = |key: &str| {
        if path.is_empty() {
            key.to_owned()
        } else {
            format!("{path}.{key}")
        }
    };
    match value {
        Json::Object(map) => {
            if let (Some(min), Some(median), Some(max)) = (map.get("min"), map.get("median"), map.get("max"))
            {
                let mut text = format!("{min} / {median} / {max} (min / median / max)");
                if let Some(n) = map.get("runs").and_then(Json::as_array).map(Vec::len) {
                    let _ = write!(text, ", {n} runs");
                } else if let Some(n) = map.get("runs").and_then(Json::as_u64) {
                    let _ = write!(text, ", {n} runs");
                }
                if let (Some(date), Some(commit)) = (map.get("date"), map.get("commit")) {
                    let _ = write!(text, ", on {} at `{}`", leaf(date), leaf(commit));
                }
                rows.push((path.to_owned(), text));
                return;
            }
            for (key, v) in map {
                if path.is_empty() && key == "recorded" {
                    continue;
                }
                flatten(v, &at(key), rows);
            }
        }
        Json::Array(items) if items.iter().all(Json::is_number) => {}
        Json::Array(items) => {
            let text: Vec<String> = items.iter().map(leaf).collect();
            rows.push((path.to_owned(), text.join("; ")));
        }
        other => rows.push((path.to_owned(), leaf(other))),
    }
}

fn leaf(value: &Json) -> String {
    let text = match value {
        Json::String(s) => s.clone(),
        other => other.to_string(),
    };
    const MAX: usize = 200;
    match text.char_indices().nth(MAX) {
        Some((at, _)) => format!("{}…", &text[..at]),
        None => text,
    }
}
