//! The runtime's structure, read from its source: no import circle in `kaufmann/src`, between its
//! stages (folders) nor between its files (none uses one that uses it back, directly or through
//! others), and every file opens with a doc comment saying its one job.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Every `.rs` file under `dir`.
fn sources(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(sources(&path));
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
    out.sort();
    out
}

/// The top-level module a file of `src` belongs to (`registry/http.rs` -> `registry`).
fn module_of(src: &Path, file: &Path) -> String {
    let relative = file.strip_prefix(src).unwrap();
    let first = relative.components().next().unwrap().as_os_str();
    first.to_string_lossy().trim_end_matches(".rs").to_owned()
}

/// The paths `text` names as `crate::<a>::<b>...`, outside comments, as `a/b/...`.
fn uses(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for line in text.lines() {
        let code = line.split("//").next().unwrap_or_default();
        for (at, _) in code.match_indices("crate::") {
            let rest = &code[at + "crate::".len()..];
            let path: String = rest
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == ':')
                .collect();
            let path = path.trim_end_matches(':').replace("::", "/");
            if !path.is_empty() && !path.starts_with("__private") {
                out.insert(path);
            }
        }
    }
    out
}

/// The module a file of `src` is (`registry/http.rs` -> `registry/http`, `registry/mod.rs` ->
/// `registry`).
fn file_module(src: &Path, file: &Path) -> String {
    let relative = file.strip_prefix(src).unwrap().with_extension("");
    let name = relative.to_string_lossy().replace('\\', "/");
    name.strip_suffix("/mod")
        .map_or(name.clone(), str::to_owned)
}

/// The module graph of `kaufmann/src`: module -> the modules it uses. `of` names the module of a
/// file (its folder, or the file itself); a used path is the longest module it starts with.
fn graph_by(src: &Path, of: impl Fn(&Path) -> String) -> BTreeMap<String, BTreeSet<String>> {
    let files = sources(src);
    let modules: BTreeSet<String> = files.iter().map(|f| of(f)).collect();
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for file in files {
        let module = of(&file);
        if module == "lib" {
            continue;
        }
        let text = std::fs::read_to_string(&file).unwrap();
        let used = uses(&text).into_iter().filter_map(|path| {
            let mut candidate = path.as_str();
            loop {
                if modules.contains(candidate) {
                    return Some(candidate.to_owned());
                }
                candidate = &candidate[..candidate.rfind('/')?];
            }
        });
        let used: Vec<String> = used.filter(|m| *m != module).collect();
        graph.entry(module).or_default().extend(used);
    }
    graph
}

/// The graph of the stages: a folder of `src` (or a file beside them) is one node.
fn graph(src: &Path) -> BTreeMap<String, BTreeSet<String>> {
    graph_by(src, |file| module_of(src, file))
}

/// The modules on a cycle through `start`, if there is one (depth-first search).
fn cycle_through(graph: &BTreeMap<String, BTreeSet<String>>, start: &str) -> Option<Vec<String>> {
    fn visit(
        graph: &BTreeMap<String, BTreeSet<String>>,
        start: &str,
        at: &str,
        path: &mut Vec<String>,
        seen: &mut BTreeSet<String>,
    ) -> bool {
        for next in graph.get(at).into_iter().flatten() {
            if next == start {
                return true;
            }
            if graph.contains_key(next) && seen.insert(next.clone()) {
                path.push(next.clone());
                if visit(graph, start, next, path, seen) {
                    return true;
                }
                path.pop();
            }
        }
        false
    }
    let mut path = vec![start.to_owned()];
    visit(graph, start, start, &mut path, &mut BTreeSet::new()).then_some(path)
}

fn runtime_src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../kaufmann/src")
}

#[test]
fn no_stage_of_the_runtime_imports_one_that_imports_it_back() {
    let graph = graph(&runtime_src());
    assert!(graph.len() > 10, "the modules were found: {graph:?}");
    let cycles = circles(&graph);
    assert!(cycles.is_empty(), "import circles:\n{}", cycles.join("\n"));
}

/// Every import circle of `graph`, one line each.
fn circles(graph: &BTreeMap<String, BTreeSet<String>>) -> Vec<String> {
    graph
        .keys()
        .filter_map(|module| cycle_through(graph, module))
        .map(|cycle| format!("{} -> {}", cycle.join(" -> "), cycle[0]))
        .collect()
}

#[test]
fn no_file_of_the_runtime_imports_one_that_imports_it_back() {
    let src = runtime_src();
    let graph = graph_by(&src, |file| file_module(&src, file));
    assert!(graph.contains_key("process/processor"), "{graph:?}");
    let cycles = circles(&graph);
    assert!(cycles.is_empty(), "import circles:\n{}", cycles.join("\n"));
}

#[test]
fn every_runtime_file_opens_with_a_doc_comment() {
    let undocumented: Vec<String> = sources(&runtime_src())
        .into_iter()
        .filter(|file| {
            let text = std::fs::read_to_string(file).unwrap();
            !text.trim_start().starts_with("//!")
        })
        .map(|file| file.display().to_string())
        .collect();
    assert!(
        undocumented.is_empty(),
        "no opening doc comment: {undocumented:?}"
    );
}

#[test]
fn the_cycle_finder_finds_cycles() {
    let graph: BTreeMap<String, BTreeSet<String>> = [
        ("a", vec!["b"]),
        ("b", vec!["c"]),
        ("c", vec!["a"]),
        ("d", vec!["a"]),
    ]
    .into_iter()
    .map(|(m, used)| (m.to_owned(), used.into_iter().map(str::to_owned).collect()))
    .collect();
    assert_eq!(cycle_through(&graph, "a").unwrap(), ["a", "b", "c"]);
    assert_eq!(cycle_through(&graph, "d"), None);
    assert_eq!(
        uses("use crate::config::Config; // crate::engine\nlet x = crate::avro::conv::f();"),
        ["avro/conv/f", "config/Config"]
            .into_iter()
            .map(str::to_owned)
            .collect()
    );
}
