//! ARCHITECTURE.md's dependency rule, kept by a test rather than by convention: the interfaces
//! never name the store, the service modules import each other without a cycle, and no source
//! file grows too big to hold in the head.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

fn files_under(dir: &str) -> Vec<PathBuf> {
    let mut out = Vec::new();
    rust_files(&Path::new(ROOT).join(dir), &mut out);
    out.sort();
    out
}

fn relative(p: &Path) -> String {
    p.strip_prefix(ROOT).unwrap().display().to_string()
}

/// The code of a file without its comments, so a comment may mention what the code may not use.
fn code(p: &Path) -> String {
    std::fs::read_to_string(p)
        .unwrap()
        .lines()
        .map(|l| l.split("//").next().unwrap_or(""))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Whether `word` occurs in `text` as a whole identifier.
fn names(text: &str, word: &str) -> bool {
    text.match_indices(word).any(|(i, _)| {
        let before = text[..i].chars().next_back();
        let after = text[i + word.len()..].chars().next();
        let ident = |c: Option<char>| c.is_some_and(|c| c.is_alphanumeric() || c == '_');
        !ident(before) && !ident(after)
    })
}

/// Whether `module` occurs as a segment of a path: `crate::store::…`, `use super::store;`,
/// `store::users` (a word elsewhere, as in a `no-store` header, is not a path).
fn names_module(text: &str, module: &str) -> bool {
    let ident = |c: Option<char>| c.is_some_and(|c| c.is_alphanumeric() || c == '_');
    text.match_indices(module).any(|(i, _)| {
        let before = &text[..i];
        let after = &text[i + module.len()..];
        let whole = !ident(before.chars().next_back()) && !ident(after.chars().next());
        whole && (before.ends_with("::") || after.starts_with("::"))
    })
}

#[test]
fn the_interfaces_never_name_the_store() {
    let mut offenders = Vec::new();
    for dir in ["src/http", "src/cli"] {
        for f in files_under(dir) {
            let text = code(&f);
            if names_module(&text, "store") {
                offenders.push(format!("{} names `store`", relative(&f)));
            }
            for word in ["test_support", "db_for_test_support"] {
                if names(&text, word) {
                    offenders.push(format!("{} names `{word}`", relative(&f)));
                }
            }
        }
    }
    assert!(
        offenders.is_empty(),
        "the CLI and the HTTP surfaces call the service layer only (ARCHITECTURE.md):\n{}",
        offenders.join("\n")
    );
}

/// What a public item of a public service module says: its signature, or a field or variant.
fn public_surface(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut in_public_type = false;
    let mut signature: Option<String> = None;
    for line in text.lines() {
        let t = line.trim_start();
        if let Some(sig) = &mut signature {
            sig.push_str(t);
            if t.contains('{') || t.ends_with(';') {
                out.push(signature.take().unwrap_or_default());
            }
            continue;
        }
        if t.starts_with("pub fn ") || t.starts_with("pub async fn ") {
            if t.contains('{') || t.ends_with(';') {
                out.push(t.to_string());
            } else {
                signature = Some(t.to_string());
            }
        } else if line.starts_with("pub struct ") || line.starts_with("pub enum ") {
            in_public_type = !t.ends_with(';') && !t.ends_with("{}");
        } else if line.starts_with('}') {
            in_public_type = false;
        } else if in_public_type && !t.starts_with("//") && !t.starts_with("pub(") {
            out.push(t.to_string());
        }
    }
    out
}

#[test]
fn the_services_hand_out_no_storage_rows() {
    let root = Path::new(ROOT).join("src/service");
    let declared = std::fs::read_to_string(root.join("mod.rs")).unwrap();
    let mut offenders = Vec::new();
    for f in files_under("src/service") {
        let name = f.file_stem().unwrap().to_string_lossy().to_string();
        let public = name == "mod" || declared.contains(&format!("pub mod {name};"));
        if !public || name == "views" {
            continue;
        }
        for item in public_surface(&code(&f)) {
            let row = item
                .split(|c: char| !c.is_alphanumeric() && c != '_')
                .any(|w| w.ends_with("Row") && w.len() > 3);
            if row {
                offenders.push(format!("{}: {item}", relative(&f)));
            }
        }
    }
    assert!(
        offenders.is_empty(),
        "public service items name storage rows; hand out a view (service::views):\n{}",
        offenders.join("\n")
    );
}

#[test]
fn only_the_tests_and_the_benchmark_use_the_test_support_path() {
    let mut offenders = Vec::new();
    for f in files_under("src") {
        let rel = relative(&f);
        if rel == "src/lib.rs" || rel == "src/service/mod.rs" {
            continue;
        }
        let text = code(&f);
        if names(&text, "test_support") || names(&text, "db_for_test_support") {
            offenders.push(rel);
        }
    }
    assert!(offenders.is_empty(), "{offenders:?}");
}

/// The first segment of each item of `use super::{a, b::C, …}` and `use crate::service::{…}`.
fn grouped_imports(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for prefix in ["super::{", "crate::service::{"] {
        for (i, _) in text.match_indices(prefix) {
            let rest = &text[i + prefix.len()..];
            let mut depth = 0;
            let end = rest
                .char_indices()
                .find(|&(_, c)| {
                    match c {
                        '{' => depth += 1,
                        '}' if depth == 0 => return true,
                        '}' => depth -= 1,
                        _ => {}
                    }
                    false
                })
                .map_or(rest.len(), |(j, _)| j);
            for item in rest[..end].split(',') {
                let first = item.trim().split("::").next().unwrap_or("").trim();
                out.insert(first.to_string());
            }
        }
    }
    out
}

#[test]
fn the_service_modules_import_each_other_without_a_cycle() {
    let files = files_under("src/service");
    let module = |p: &Path| {
        let rel = p.strip_prefix(Path::new(ROOT).join("src/service")).unwrap();
        let first = rel
            .components()
            .next()
            .unwrap()
            .as_os_str()
            .to_string_lossy();
        first.trim_end_matches(".rs").to_string()
    };
    let modules: BTreeSet<String> = files.iter().map(|p| module(p)).collect();
    let mut uses: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for f in &files {
        let from = module(f);
        if from == "mod" {
            continue;
        }
        let text = code(f);
        let grouped = grouped_imports(&text);
        for m in &modules {
            let used = [format!("super::{m}"), format!("crate::service::{m}")]
                .iter()
                .any(|p| names(&text, p) || text.contains(&format!("{p}::")))
                || grouped.contains(m);
            if *m != from && m != "mod" && used {
                uses.entry(from.clone()).or_default().insert(m.clone());
            }
        }
    }
    // Depth-first search for a path back to where it started.
    fn cycle(
        at: &str,
        uses: &BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(i) = path.iter().position(|p| p == at) {
            let mut c = path[i..].to_vec();
            c.push(at.to_string());
            return Some(c);
        }
        if done.contains(at) {
            return None;
        }
        path.push(at.to_string());
        for next in uses.get(at).into_iter().flatten() {
            if let Some(c) = cycle(next, uses, path, done) {
                return Some(c);
            }
        }
        path.pop();
        done.insert(at.to_string());
        None
    }
    let mut done = BTreeSet::new();
    for m in &modules {
        if let Some(c) = cycle(m, &uses, &mut Vec::new(), &mut done) {
            panic!(
                "service modules import each other in a cycle: {}",
                c.join(" → ")
            );
        }
    }
}

/// `domain/login.rs` is the exception: most of it is the rule table's tests, one row per case.
const LONGEST: usize = 800;

#[test]
fn no_source_file_is_too_long_to_hold_in_the_head() {
    let mut long = Vec::new();
    for dir in [
        "src",
        "tests",
        "bench/loadgen/src",
        "crates/keyward-argon2/src",
    ] {
        for f in files_under(dir) {
            let rel = relative(&f);
            let lines = std::fs::read_to_string(&f).unwrap().lines().count();
            if lines > LONGEST && rel != "src/domain/login.rs" {
                long.push(format!("{rel}: {lines} lines"));
            }
        }
    }
    assert!(
        long.is_empty(),
        "split these (at most {LONGEST} lines):\n{}",
        long.join("\n")
    );
}
