//! The layering of `harness/src`, checked: every `crate::` and `super::` path in a module
//! (outside its tests, comments and string literals) names a module of the same layer or a
//! lower one, in the layer list of `src/lib.rs`'s docs, and no two modules import each other
//! directly or round a circle.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// `a::b` for `src/a/b.rs` and `src/a/b/mod.rs`; `None` for the crate root and the binary.
fn module_of(path: &Path) -> Option<String> {
    let relative = path.strip_prefix(src()).ok()?.with_extension("");
    let mut parts: Vec<String> = relative
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    if parts.last().is_some_and(|p| p == "mod") {
        parts.pop();
    }
    match parts.as_slice() {
        [only]
            if [
                "lib",
                "main",
                "vm_cmd",
                "profile_cmd",
                "existing_cmd",
                "suite_args",
                "plan_cmd",
                "run_cmd",
                "merge_cmd",
                "docs_cmd",
                "diff_cmd",
                "up_cmd",
            ]
            .contains(&only.as_str()) =>
        {
            None
        }
        _ => Some(parts.join("::")),
    }
}

fn rust_files(dir: &Path, found: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            rust_files(&path, found);
        } else if path.extension().is_some_and(|x| x == "rs") {
            found.push(path);
        }
    }
}

/// The code of a file without its `#[cfg(test)]` module, comments, and string and char
/// literals (which may mention modules without importing them).
fn code_of(text: &str) -> String {
    let text = text.split("#[cfg(test)]").next().unwrap_or_default();
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < chars.len() {
        let rest = &chars[i..];
        if rest.starts_with(&['/', '/']) {
            while i < chars.len() && chars[i] != '\n' {
                i += 1;
            }
        } else if rest.starts_with(&['/', '*']) {
            i += 2;
            while i + 1 < chars.len() && !(chars[i] == '*' && chars[i + 1] == '/') {
                i += 1;
            }
            i += 2;
        } else if chars[i] == 'r'
            && matches!(rest.get(1), Some('"' | '#'))
            && !is_ident(chars.get(i.wrapping_sub(1)))
        {
            // r"..." or r#"..."#
            let hashes = rest[1..].iter().take_while(|c| **c == '#').count();
            i += 1 + hashes + 1;
            loop {
                if i >= chars.len() {
                    break;
                }
                if chars[i] == '"'
                    && chars[i + 1..].iter().take(hashes).filter(|c| **c == '#').count() == hashes
                {
                    i += 1 + hashes;
                    break;
                }
                i += 1;
            }
            out.push_str("\"\"");
        } else if chars[i] == '"' {
            i += 1;
            while i < chars.len() && chars[i] != '"' {
                i += if chars[i] == '\\' { 2 } else { 1 };
            }
            i += 1;
            out.push_str("\"\"");
        } else if chars[i] == '\'' && (rest.get(2) == Some(&'\'') || rest.get(1) == Some(&'\\')) {
            // A char literal ('x', '\n', '\''), not a lifetime.
            i += 1;
            while i < chars.len() && chars[i] != '\'' {
                i += if chars[i] == '\\' { 2 } else { 1 };
            }
            i += 1;
        } else {
            out.push(chars[i]);
            i += 1;
        }
    }
    out
}

fn is_ident(c: Option<&char>) -> bool {
    c.is_some_and(|c| c.is_alphanumeric() || *c == '_')
}

/// Module paths a file's code names: `crate::a::b::X` and `super::c::Y`, `use` groups
/// (`crate::a::{b, c::D}`) expanded, as written (resolution to a module comes later).
fn paths_in(code: &str, module: &str) -> Vec<String> {
    let mut found = Vec::new();
    let parent: Vec<&str> = {
        let mut parts: Vec<&str> = module.split("::").collect();
        parts.pop();
        parts
    };
    for (start, root) in [("crate::", None), ("super::", Some(parent.join("::")))] {
        let mut from = 0;
        while let Some(at) = code[from..].find(start) {
            let begin = from + at;
            from = begin + start.len();
            if is_ident(code[..begin].chars().last().as_ref()) || code[..begin].ends_with("::") {
                continue;
            }
            let tail = &code[from..];
            let prefix = match &root {
                Some(parent) if parent.is_empty() => String::new(),
                Some(parent) => format!("{parent}::"),
                None => String::new(),
            };
            expand(tail, &prefix, &mut found);
        }
    }
    found
}

/// Reads one path (with `{...}` groups) from the start of `tail`.
fn expand(tail: &str, prefix: &str, found: &mut Vec<String>) {
    let head: String = tail
        .chars()
        .take_while(|c| c.is_alphanumeric() || *c == '_' || *c == ':')
        .collect();
    let head = head.trim_end_matches(':');
    let path = format!("{prefix}{head}");
    let after = &tail[head.len()..];
    if let Some(group) = after.strip_prefix("::{") {
        let mut depth = 1;
        let mut end = 0;
        for (i, c) in group.char_indices() {
            match c {
                '{' => depth += 1,
                '}' => depth -= 1,
                _ => {}
            }
            if depth == 0 {
                end = i;
                break;
            }
        }
        let mut depth = 0;
        let mut item_start = 0;
        let inner = &group[..end];
        for (i, c) in inner.char_indices().chain([(inner.len(), ',')]) {
            match c {
                '{' => depth += 1,
                '}' => depth -= 1,
                ',' if depth == 0 => {
                    let item = inner[item_start..i].trim();
                    if !item.is_empty() && item != "self" {
                        expand(item, &format!("{path}::"), found);
                    } else if item == "self" {
                        found.push(path.clone());
                    }
                    item_start = i + 1;
                }
                _ => {}
            }
        }
    } else if !head.is_empty() {
        found.push(path);
    }
}

/// The module a path names: its longest prefix that is a module.
fn resolve<'a>(path: &str, modules: &'a BTreeSet<String>) -> Option<&'a String> {
    let parts: Vec<&str> = path.split("::").collect();
    (1..=parts.len())
        .rev()
        .find_map(|n| modules.get(&parts[..n].join("::")))
}

/// `lib.rs`'s layer list: module prefix -> layer number.
fn layers() -> BTreeMap<String, usize> {
    let lib = std::fs::read_to_string(src().join("lib.rs")).unwrap();
    let mut layers = BTreeMap::new();
    let mut current = None;
    for line in lib.lines() {
        let Some(doc) = line.strip_prefix("//!") else {
            continue;
        };
        let doc = doc.trim();
        if let Some((number, _)) = doc.split_once(". ").filter(|(n, _)| n.parse::<usize>().is_ok()) {
            current = number.parse::<usize>().ok();
        } else if doc.is_empty() || doc.starts_with("The CLI") {
            current = None;
        }
        if let Some(layer) = current {
            for name in doc.split('`').skip(1).step_by(2) {
                layers.insert(name.to_owned(), layer);
            }
        }
    }
    layers
}

fn layer_of(module: &str, layers: &BTreeMap<String, usize>) -> Option<usize> {
    let parts: Vec<&str> = module.split("::").collect();
    (1..=parts.len())
        .rev()
        .find_map(|n| layers.get(&parts[..n].join("::")).copied())
}

/// Every module's imports of other modules (not of its own descendants).
fn graph() -> BTreeMap<String, BTreeSet<String>> {
    let mut files = Vec::new();
    rust_files(&src(), &mut files);
    let sources: Vec<(String, String)> = files
        .iter()
        .filter_map(|f| Some((module_of(f)?, std::fs::read_to_string(f).unwrap())))
        .collect();
    let modules: BTreeSet<String> = sources.iter().map(|(m, _)| m.clone()).collect();
    let mut graph = BTreeMap::new();
    for (module, text) in &sources {
        let imports: BTreeSet<String> = paths_in(&code_of(text), module)
            .iter()
            .filter_map(|p| resolve(p, &modules))
            .filter(|t| *t != module && !t.starts_with(&format!("{module}::")))
            .cloned()
            .collect();
        graph.insert(module.clone(), imports);
    }
    graph
}

#[test]
fn every_module_has_a_layer_and_imports_only_its_own_or_lower_ones() {
    let layers = layers();
    assert!(
        layers.len() > 20,
        "the layer list in lib.rs was not found: {layers:?}"
    );
    let mut problems = Vec::new();
    for (module, imports) in graph() {
        let Some(mine) = layer_of(&module, &layers) else {
            problems.push(format!("{module}: not in lib.rs's layer list"));
            continue;
        };
        for target in imports {
            match layer_of(&target, &layers) {
                Some(theirs) if theirs > mine => problems.push(format!(
                    "{module} (layer {mine}) imports {target} (layer {theirs}): an import may not point up"
                )),
                _ => {}
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// The import circles of `graph` (Tarjan's strongly connected components of more than one
/// module), each as `m -> the members it imports; ...`.
fn cycles(graph: &BTreeMap<String, BTreeSet<String>>) -> Vec<String> {
    struct State<'a> {
        graph: &'a BTreeMap<String, BTreeSet<String>>,
        index: BTreeMap<&'a str, usize>,
        low: BTreeMap<&'a str, usize>,
        stack: Vec<&'a str>,
        components: Vec<Vec<&'a str>>,
    }
    fn visit<'a>(s: &mut State<'a>, v: &'a str) {
        let n = s.index.len();
        s.index.insert(v, n);
        s.low.insert(v, n);
        s.stack.push(v);
        for w in s.graph.get(v).into_iter().flatten() {
            if !s.index.contains_key(w.as_str()) {
                visit(s, w);
                let low = s.low[w.as_str()].min(s.low[v]);
                s.low.insert(v, low);
            } else if s.stack.contains(&w.as_str()) {
                let low = s.index[w.as_str()].min(s.low[v]);
                s.low.insert(v, low);
            }
        }
        if s.low[v] == s.index[v] {
            let at = s.stack.iter().position(|m| *m == v).unwrap();
            let component = s.stack.split_off(at);
            if component.len() > 1 {
                s.components.push(component);
            }
        }
    }
    let mut state = State {
        graph,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        components: Vec::new(),
    };
    for module in graph.keys() {
        if !state.index.contains_key(module.as_str()) {
            visit(&mut state, module);
        }
    }
    let mut found: Vec<String> = state
        .components
        .iter()
        .map(|c| {
            let mut c = c.clone();
            c.sort();
            let members: Vec<String> = c
                .iter()
                .map(|m| {
                    let into: Vec<&str> = graph
                        .get(*m)
                        .into_iter()
                        .flatten()
                        .filter(|t| c.contains(&t.as_str()))
                        .map(String::as_str)
                        .collect();
                    format!("{m} -> {}", into.join(", "))
                })
                .collect();
            members.join("; ")
        })
        .collect();
    found.sort();
    found
}

#[test]
fn no_modules_import_each_other_round_a_circle() {
    let found = cycles(&graph());
    assert!(found.is_empty(), "import cycles:\n{}", found.join("\n"));
}

/// The checker itself: it sees imports through groups and `super::`, and not in comments or
/// strings; a cycle and an upward import are reported.
#[test]
fn the_checker_reads_imports_as_rust_does() {
    let code = code_of(
        "use crate::a::{b::C, d, e::{f, g::H}};\nuse super::sib::X;\n// crate::comment::Y\nlet s = \"crate::string::Z\";\nlet c = '\"'; let t = crate::real::T;\n#[cfg(test)]\nmod tests { use crate::test_only::W; }",
    );
    let paths = paths_in(&code, "m::child");
    assert_eq!(
        paths,
        ["a::b::C", "a::d", "a::e::f", "a::e::g::H", "real::T", "m::sib::X"],
        "{code}"
    );
    let modules: BTreeSet<String> = ["a", "a::e", "m", "m::sib"].map(String::from).into();
    assert_eq!(resolve("a::e::g::H", &modules).map(String::as_str), Some("a::e"));
    assert_eq!(resolve("a::d", &modules).map(String::as_str), Some("a"));
    assert_eq!(resolve("real::T", &modules), None);
    let layers = layers();
    assert_eq!(
        layer_of("provision::cleanup", &layers),
        layer_of("provision", &layers)
    );
    assert!(layer_of("errors", &layers) < layer_of("scenario::run", &layers));
    assert!(layer_of("scenario::model", &layers) < layer_of("scenario::plan", &layers));
    let graph: BTreeMap<String, BTreeSet<String>> = [("a", "b"), ("b", "c"), ("c", "a"), ("d", "a")]
        .iter()
        .fold(BTreeMap::new(), |mut g, (from, to)| {
            g.entry(from.to_string())
                .or_insert_with(BTreeSet::new)
                .insert(to.to_string());
            g
        });
    assert_eq!(cycles(&graph), ["a -> b; b -> c; c -> a"]);
}
