//! The scenario reference (`docs/reference/scenarios.md`), rendered from [`suite_schema`]: the
//! same types the loader deserialises, so a field cannot be added, renamed or given another
//! default without the reference changing (a test compares it with the committed file).
//!
//! Invariant: every field is listed with its type, its default (or that it is required), its
//! doc comment and, where a shipped suite uses it, an example taken from that suite; a field
//! whose default is neither in the schema nor in its doc comment is an error, so the doc
//! comments keep saying what a missing field means. Pure: suite texts in, Markdown out.

use std::collections::{BTreeSet, VecDeque};
use std::fmt::Write;
use std::path::Path;

use serde_json::Value as Json;
use serde_norway::Value as Yaml;

use super::{suite_schema, Suite, SuiteError};

#[derive(Debug, thiserror::Error)]
pub enum ReferenceError {
    #[error("failed to load the suite the examples come from")]
    Suite(#[source] SuiteError),
    #[error(
        "field {field} of {section} says nothing about its default (add `Default: ...` to its doc comment)"
    )]
    NoDefault { section: String, field: String },
    #[error("field {field} of {section} has no doc comment")]
    NoDescription { section: String, field: String },
}

/// One suite file the examples may come from: its file name and its text.
pub struct SuiteText<'a> {
    pub name: &'a str,
    pub text: &'a str,
}

/// Where an object type sits in a suite file: the section title and the keys from a row to it
/// (`None`: the suite file itself, above the rows).
struct Section {
    def: String,
    title: String,
    path: Option<Vec<String>>,
}

/// The reference for the suite format, with examples from `suites` (each must load).
pub fn markdown(suites: &[SuiteText]) -> Result<String, ReferenceError> {
    let mut parsed = Vec::new();
    for suite in suites {
        Suite::parse(Path::new(suite.name), suite.text).map_err(ReferenceError::Suite)?;
        let value: Yaml = serde_norway::from_str(suite.text).map_err(|e| {
            ReferenceError::Suite(SuiteError {
                file: suite.name.into(),
                location: String::new(),
                message: e.to_string(),
            })
        })?;
        parsed.push((suite, value));
    }
    let schema = serde_json::to_value(suite_schema()).expect("a schema is JSON");
    let defs = schema.get("$defs").cloned().unwrap_or(Json::Null);
    let def = |name: &str| -> Json {
        if name == "SuiteFile" {
            schema.clone()
        } else {
            defs.get(name).cloned().unwrap_or(Json::Null)
        }
    };

    let mut out = String::new();
    out.push_str(HEADER);

    // Object types in the order a reader meets them: the file, a row, then what a row holds.
    let mut queue = VecDeque::from([Section {
        def: "SuiteFile".into(),
        title: "Suite file".into(),
        path: None,
    }]);
    let mut seen = BTreeSet::from(["SuiteFile".to_owned()]);
    while let Some(section) = queue.pop_front() {
        let schema = def(&section.def);
        let properties = schema
            .get("properties")
            .and_then(Json::as_object)
            .cloned()
            .unwrap_or_default();
        let required: BTreeSet<&str> = schema
            .get("required")
            .and_then(Json::as_array)
            .map(|r| r.iter().filter_map(Json::as_str).collect())
            .unwrap_or_default();
        let _ = writeln!(out, "## {}\n", section.title);
        if let Some(about) = schema.get("description").and_then(Json::as_str) {
            let _ = writeln!(out, "{}\n", clean(about));
        }
        if let Some(path) = &section.path {
            if let Some((suite, scenario, text)) = first_row_with(&parsed, path) {
                let _ = writeln!(
                    out,
                    "Example (`{}`, row `{scenario}`):\n\n```yaml\n{text}```\n",
                    suite.name
                );
            }
        }
        out.push_str("| field | type | default | what it means | example |\n|---|---|---|---|---|\n");
        let mut enums = Vec::new();
        let mut tagged = Vec::new();
        for (field, property) in &properties {
            let description = property
                .get("description")
                .and_then(Json::as_str)
                .ok_or_else(|| ReferenceError::NoDescription {
                    section: section.title.clone(),
                    field: field.clone(),
                })?;
            let (kind, target) = type_of(property, &defs);
            let default = if required.contains(field.as_str()) {
                "**required**".to_owned()
            } else {
                default_of(property, description).ok_or_else(|| ReferenceError::NoDefault {
                    section: section.title.clone(),
                    field: field.clone(),
                })?
            };
            let mut path = section.path.clone();
            if let Some(path) = &mut path {
                path.push(field.clone());
            }
            // Into a list's elements: `[]` (see value_at).
            let element_path = path.clone().map(|mut p| {
                if kind.starts_with("list of") {
                    p.push("[]".into());
                }
                p
            });
            let example = match &path {
                Some(path) => first_value_at(&parsed, path)
                    .map(|(suite, scenario, value)| {
                        format!(
                            "{} ({}, `{scenario}`)",
                            code(&cell(&format!("{field}: {}", shorten(&flow(&value))))),
                            suite.name
                        )
                    })
                    .unwrap_or_default(),
                None => parsed
                    .iter()
                    .find_map(|(suite, v)| v.get(field.as_str()).map(|value| (suite, value)))
                    .filter(|_| field != "rows")
                    .map(|(suite, value)| {
                        format!(
                            "{} ({})",
                            code(&cell(&format!("{field}: {}", shorten(&flow(value))))),
                            suite.name
                        )
                    })
                    .unwrap_or_default(),
            };
            let _ = writeln!(
                out,
                "| `{field}` | {kind} | {default} | {} | {example} |",
                cell(&clean(description))
            );
            match target {
                // Each object type gets one section, where a reader first meets it.
                Some(Target::Object(name)) if seen.insert(name.clone()) => {
                    let title = match &section.path {
                        None => "Row (`rows[]`)".to_owned(),
                        Some(p) if p.is_empty() => action_title(field),
                        Some(p) => format!("`{}`", dotted(p, field)),
                    };
                    queue.push_back(Section {
                        def: name,
                        title,
                        path: Some(element_path.clone().unwrap_or_default()),
                    });
                }
                Some(Target::Enum(name)) => enums.push((field.clone(), name)),
                Some(Target::Tagged(name)) => {
                    let base = match &section.path {
                        Some(p) => dotted(p, field),
                        None => field.clone(),
                    };
                    let variants =
                        tagged_variants(defs.get(&name).unwrap_or(&Json::Null)).unwrap_or_default();
                    for (key, variant) in &variants {
                        let target = variant
                            .pointer(&format!("/properties/{key}"))
                            .map(|p| type_of(p, &defs).1);
                        if let Some(Some(Target::Object(object))) = target {
                            if seen.insert(object.clone()) {
                                let mut path = element_path.clone().unwrap_or_default();
                                path.push(key.clone());
                                queue.push_back(Section {
                                    def: object,
                                    title: format!("`{base}[].{key}`"),
                                    path: Some(path),
                                });
                            }
                        }
                    }
                    tagged.push((field.clone(), variants));
                }
                Some(Target::Object(_)) | None => {}
            }
        }
        out.push('\n');
        for (field, variants) in tagged {
            let _ = writeln!(out, "Keys of `{field}` (one per entry):\n");
            for (key, variant) in variants {
                let about = variant.get("description").and_then(Json::as_str).unwrap_or("");
                let _ = writeln!(out, "- `{key}`: {}", clean(about));
            }
            out.push('\n');
        }
        for (field, name) in enums {
            let _ = writeln!(out, "Values of `{field}`:\n");
            for variant in defs
                .get(&name)
                .and_then(|d| d.get("oneOf"))
                .and_then(Json::as_array)
                .into_iter()
                .flatten()
            {
                let value = variant.get("const").and_then(Json::as_str).unwrap_or("?");
                let about = variant.get("description").and_then(Json::as_str).unwrap_or("");
                let _ = writeln!(out, "- `{value}`: {}", clean(about));
            }
            out.push('\n');
        }
    }
    Ok(out.trim_end().to_owned() + "\n")
}

const HEADER: &str = "# Scenario reference

<!-- Generated by `kata-harness docs` from the types in harness/src/scenario/model/; do not edit.
     A test fails when this file is stale. -->

A suite file (`suites/*.yaml`) is strict YAML: an unknown or misspelt key, a row with no or two
actions, or an expectation that does not fit its action is an error naming the file, the row
and the field, before anything starts (exit 2). Each row becomes one trial per variant, named
`suite::scenario::variant` (e.g. `cri::kata-container::containerd-2.1`). A row has exactly one
action (`sandbox`, `image_import`, `pull`, `sandbox_image`, `ctr_run`, `kube`, `critest`,
`pod`, `diff` or `kata_check`), or none with a `node:` block whose start it checks. A `pod` row is written by
hand: containers, then steps each with what it must observe; it lists its handlers and loads as
one row per handler (`<scenario>-<handler>`), each checking that handler's runtime. A `diff`
row runs the same probes in a runc pod and a Kata pod and fails on a difference no probe
declares (its table, `diff.txt`, is in the row's evidence). A `kata_check` row runs the Kata
runtime's own host check on the node and judges its verdict against what the harness found
(KVM, vhost_vsock, vhost_net). A suite with
Kata rows needs a runc control row (handler runc or default, `runtime_type:
io.containerd.runc.v2`). Editors complete and check suite files with `suites/schema.json`
(`kata-harness schema`), which each file names in its first line. Examples below are taken from
the shipped suites.

";

/// `pod.containers[].mounts` for the field `mounts` under the path `pod containers []`.
fn dotted(path: &[String], field: &str) -> String {
    let mut text = String::new();
    for key in path.iter().chain(std::iter::once(&field.to_owned())) {
        if key != "[]" && !text.is_empty() {
            text.push('.');
        }
        text.push_str(key);
    }
    text
}

/// The title of a section for a row's key: `` `sandbox` action ``.
fn action_title(field: &str) -> String {
    match field {
        "expect" => "`expect`: what must be observed".into(),
        "node" => "`node`: a node of the row's own".into(),
        _ => format!("`{field}` action"),
    }
}

enum Target {
    Object(String),
    Enum(String),
    /// One of several one-key mappings (`- exec: {...}`): serde's externally tagged enum.
    Tagged(String),
}

/// The keys of a one-key-mapping enum's variants, each with its variant's schema.
fn tagged_variants(def: &Json) -> Option<Vec<(String, Json)>> {
    let variants = def.get("oneOf")?.as_array()?;
    variants
        .iter()
        .map(|v| {
            let properties = v.get("properties")?.as_object()?;
            match properties.iter().collect::<Vec<_>>().as_slice() {
                [(key, _)] => Some(((*key).clone(), v.clone())),
                _ => None,
            }
        })
        .collect()
}

/// The type column, and the definition a property leads to.
fn type_of(property: &Json, defs: &Json) -> (String, Option<Target>) {
    let reference = |r: &str| -> (String, Option<Target>) {
        let name = r.rsplit('/').next().unwrap_or(r).to_owned();
        let def = defs.get(&name).cloned().unwrap_or(Json::Null);
        if let Some(variants) = tagged_variants(&def) {
            let keys: Vec<String> = variants.iter().map(|(k, _)| format!("`{k}`")).collect();
            return (
                format!("one-key mapping: {}", keys.join(", ")),
                Some(Target::Tagged(name)),
            );
        }
        if let Some(any) = def.get("anyOf").and_then(Json::as_array) {
            let types: Vec<&str> = any
                .iter()
                .filter_map(|a| a.get("type").and_then(Json::as_str))
                .collect();
            return (types.join(" or "), None);
        }
        if let Some(variants) = def.get("oneOf").and_then(Json::as_array) {
            let values: Vec<String> = variants
                .iter()
                .filter_map(|v| v.get("const").and_then(Json::as_str))
                .map(|v| format!("`{v}`"))
                .collect();
            (format!("one of {}", values.join(", ")), Some(Target::Enum(name)))
        } else {
            ("mapping (below)".into(), Some(Target::Object(name)))
        }
    };
    if let Some(r) = property.get("$ref").and_then(Json::as_str) {
        return reference(r);
    }
    if let Some(any) = property.get("anyOf").and_then(Json::as_array) {
        if let Some(r) = any.iter().find_map(|a| a.get("$ref").and_then(Json::as_str)) {
            return reference(r);
        }
    }
    let types: Vec<&str> = match property.get("type") {
        Some(Json::String(t)) => vec![t.as_str()],
        Some(Json::Array(ts)) => ts
            .iter()
            .filter_map(Json::as_str)
            .filter(|t| *t != "null")
            .collect(),
        _ => vec![],
    };
    match types.as_slice() {
        ["array"] => {
            let (item, target) = property
                .get("items")
                .map(|i| type_of(i, defs))
                .unwrap_or(("any".into(), None));
            (format!("list of {item}"), target)
        }
        ["object"] => ("mapping of string to string".into(), None),
        ["integer"] => ("integer".into(), None),
        [t] => ((*t).to_owned(), None),
        _ => ("any".into(), None),
    }
}

/// The default column: serde's default where the schema has one, `none` for an optional
/// value, else the doc comment's `Default: ...` sentence.
fn default_of(property: &Json, description: &str) -> Option<String> {
    if let Some(sentence) = description.split("Default:").nth(1) {
        let sentence = clean(sentence);
        let end = sentence.find(". ").map(|i| i + 1).unwrap_or(sentence.len());
        return Some(cell(sentence[..end].trim().trim_end_matches('.')));
    }
    match property.get("default") {
        Some(Json::Null) => Some("none".into()),
        Some(Json::String(s)) if s.is_empty() => Some("empty".into()),
        Some(Json::Array(a)) if a.is_empty() => Some("none".into()),
        Some(Json::Object(o)) if o.is_empty() => Some("none".into()),
        Some(other) => Some(format!("`{other}`")),
        None => {
            let nullable = property.get("anyOf").and_then(Json::as_array).is_some_and(|a| {
                a.iter()
                    .any(|t| t.get("type").and_then(Json::as_str) == Some("null"))
            }) || property
                .get("type")
                .and_then(Json::as_array)
                .is_some_and(|t| t.iter().any(|t| t == "null"));
            nullable.then(|| "none".to_owned())
        }
    }
}

/// The first row (in file order) that has a value at `path`, as its file, its scenario and its
/// text exactly as written.
fn first_row_with<'a>(
    suites: &'a [(&'a SuiteText<'a>, Yaml)],
    path: &[String],
) -> Option<(&'a SuiteText<'a>, String, String)> {
    let (suite, scenario, _) = first_value_at(suites, path)?;
    Some((suite, scenario.clone(), row_text(suite.text, &scenario)?))
}

fn first_value_at<'a>(
    suites: &'a [(&'a SuiteText<'a>, Yaml)],
    path: &[String],
) -> Option<(&'a SuiteText<'a>, String, Yaml)> {
    suites.iter().find_map(|(suite, value)| {
        value.get("rows")?.as_sequence()?.iter().find_map(|row| {
            let found = value_at(row, path)?;
            let scenario = row.get("scenario")?.as_str()?.to_owned();
            Some((*suite, scenario, found.clone()))
        })
    })
}

/// The value at `path` under `value`; a `[]` step is any element of a list (the first that has
/// the rest of the path).
fn value_at<'a>(value: &'a Yaml, path: &[String]) -> Option<&'a Yaml> {
    match path.split_first() {
        None => Some(value),
        Some((key, rest)) if key == "[]" => value.as_sequence()?.iter().find_map(|e| value_at(e, rest)),
        Some((key, rest)) => value_at(value.get(key.as_str())?, rest),
    }
}

/// A row's lines as the file has them: from `- scenario: <name>` to the last line indented
/// under it.
fn row_text(text: &str, scenario: &str) -> Option<String> {
    let mut lines = text.lines();
    let first = lines.find(|l| {
        l.trim_start()
            .strip_prefix("- scenario:")
            .is_some_and(|s| s.trim().trim_matches('"') == scenario)
    })?;
    let indent = first.len() - first.trim_start().len() + 2;
    let mut out = format!("{}\n", &first[indent - 2..]);
    for line in lines {
        if line.len() - line.trim_start().len() < indent || line.trim().is_empty() {
            break;
        }
        let _ = writeln!(out, "{}", &line[indent - 2..]);
    }
    Some(out)
}

/// A YAML value on one line, in flow style.
fn flow(value: &Yaml) -> String {
    match value {
        Yaml::Null => "null".into(),
        Yaml::Bool(b) => b.to_string(),
        Yaml::Number(n) => n.to_string(),
        Yaml::String(s) => {
            // A string that YAML would read as a number, a boolean or null keeps its quotes.
            let other_type = s.parse::<f64>().is_ok()
                || ["true", "false", "yes", "no", "null", "~"].contains(&s.to_lowercase().as_str());
            let plain = !other_type
                && !s.is_empty()
                && !s.contains(": ")
                && !s.contains(" #")
                && !s.starts_with(|c: char| "{[\"'&*!|>%@`-?:,#".contains(c))
                && !s.contains([',', '{', '}', '[', ']']);
            if plain {
                s.clone()
            } else {
                format!("{s:?}")
            }
        }
        Yaml::Sequence(items) => format!("[{}]", items.iter().map(flow).collect::<Vec<_>>().join(", ")),
        Yaml::Mapping(map) => format!(
            "{{ {} }}",
            map.iter()
                .map(|(k, v)| format!("{}: {}", flow(k), flow(v)))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        Yaml::Tagged(tagged) => flow(&tagged.value),
    }
}

fn shorten(text: &str) -> String {
    const MAX: usize = 60;
    match text.char_indices().nth(MAX) {
        Some((at, _)) => format!("{}…", &text[..at]),
        None => text.to_owned(),
    }
}

/// A doc comment as one line of Markdown: rustdoc links as plain code.
fn clean(text: &str) -> String {
    let one_line = text.split_whitespace().collect::<Vec<_>>().join(" ");
    let mut out = String::with_capacity(one_line.len());
    let mut rest = one_line.as_str();
    while let Some(at) = rest.find("[`") {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        match after.find("`]") {
            Some(end) => {
                out.push_str(&after[..end + 1]);
                rest = &after[end + 2..];
                // `[`x`](link)`: drop the link.
                if rest.starts_with('(') {
                    if let Some(close) = rest.find(')') {
                        rest = &rest[close + 1..];
                    }
                }
            }
            None => {
                out.push_str("[`");
                rest = after.strip_prefix('`').unwrap_or(after);
            }
        }
    }
    out.push_str(rest);
    out
}

/// Text safe inside a table cell.
fn cell(text: &str) -> String {
    text.replace('|', "\\|")
}

/// `text` as inline code, with a longer fence where it holds a backtick.
fn code(text: &str) -> String {
    if text.contains('`') {
        format!("`` {text} ``")
    } else {
        format!("`{text}`")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SUITE: &str = "suite: t\nrows:\n  - scenario: a\n    sandbox: { handler: crun, container: true }\n    expect:\n      runtime_type: io.containerd.runc.v2\n\n  - scenario: b\n    image_import: { namespace: k8s.io }\n    expect: { cri_visible: true }\n";

    #[test]
    fn every_field_is_listed_with_a_default_and_examples_come_from_the_suites() {
        let text = markdown(&[SuiteText {
            name: "t.yaml",
            text: SUITE,
        }])
        .unwrap();
        assert!(
            text.contains("| `handler` | string | empty, containerd's default handler |"),
            "{text}"
        );
        assert!(text.contains("`handler: crun` (t.yaml, `a`)"), "{text}");
        assert!(text.contains("| `namespace` | string | **required** |"), "{text}");
        assert!(text.contains("```yaml\n- scenario: a\n  sandbox: { handler: crun, container: true }\n  expect:\n    runtime_type: io.containerd.runc.v2\n```"), "{text}");
        assert!(text.contains("## `pull` action"), "{text}");
        assert!(text.contains("- `tls`: docker-registry over HTTPS"), "{text}");
        assert!(text.contains("## `expect.error`"), "{text}");
    }

    #[test]
    fn a_suite_that_does_not_load_is_an_error() {
        let err = markdown(&[SuiteText {
            name: "t.yaml",
            text: "suite: t\nrows: []\n",
        }])
        .unwrap_err();
        assert!(
            crate::errors::chain_line(&err).contains("a suite needs at least one row"),
            "{err}"
        );
    }

    #[test]
    fn defaults_come_from_the_schema_or_the_doc_comment() {
        let optional = serde_json::json!({"type": ["string", "null"]});
        assert_eq!(default_of(&optional, "A thing."), Some("none".into()));
        assert_eq!(
            default_of(&serde_json::json!({"default": false}), "x"),
            Some("`false`".into())
        );
        assert_eq!(
            default_of(&serde_json::json!({}), "A thing. Default: `amd64`."),
            Some("`amd64`".into())
        );
        assert_eq!(
            default_of(&serde_json::json!({"type": "string"}), "A thing."),
            None
        );
        assert_eq!(
            clean("See [`NodeSetup`] and\n[`x`](crate::y)."),
            "See `NodeSetup` and `x`."
        );
        assert_eq!(flow(&Yaml::String("2.1".into())), "\"2.1\"");
        assert_eq!(flow(&Yaml::String("true".into())), "\"true\"");
        assert_eq!(code("got `4`"), "`` got `4` ``");
    }
}
