//! docs/rules.md is the project's own statement of its rules: every rule id used in the code,
//! the docs and the tests is defined there, every test it names exists, every section of
//! docs/wire.md cited exists, and nothing points at documents a clone does not have.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");
const RULES: &str = include_str!("../docs/rules.md");
const WIRE: &str = include_str!("../docs/wire.md");

/// The project's text files: src/, docs/, tests/ (without installed packages), bench/, scripts/
/// and the top-level documents.
fn text_files() -> Vec<PathBuf> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            let name = p.file_name().unwrap().to_string_lossy().to_string();
            if p.is_dir() {
                if !matches!(name.as_str(), "node_modules" | "__pycache__" | "results") {
                    walk(&p, out);
                }
            } else if [".rs", ".md", ".py", ".mjs", ".java", ".html", ".toml"]
                .iter()
                .any(|x| name.ends_with(x))
                || p.parent().unwrap().ends_with("scripts")
            {
                out.push(p);
            }
        }
    }
    let root = Path::new(ROOT);
    let mut out = Vec::new();
    for d in ["src", "docs", "tests", "bench", "scripts", "templates"] {
        walk(&root.join(d), &mut out);
    }
    for f in [
        "README.md",
        "CHANGELOG.md",
        "ARCHITECTURE.md",
        "BENCHMARKS.md",
    ] {
        out.push(root.join(f));
    }
    out
}

/// Every `R-X9` in a text.
fn rule_ids(text: &str) -> BTreeSet<String> {
    let b = text.as_bytes();
    let mut out = BTreeSet::new();
    for i in 0..b.len().saturating_sub(3) {
        if b[i] == b'R'
            && b[i + 1] == b'-'
            && b"TLUEMI".contains(&b[i + 2])
            && b[i + 3].is_ascii_digit()
            && (i == 0 || !b[i - 1].is_ascii_alphanumeric())
        {
            let digits = b[i + 3..].iter().take_while(|c| c.is_ascii_digit()).count();
            out.insert(String::from_utf8(b[i..i + 3 + digits].to_vec()).unwrap());
        }
    }
    out
}

fn defined() -> BTreeSet<String> {
    RULES
        .lines()
        .filter_map(|l| l.strip_prefix("### "))
        .map(str::to_string)
        .collect()
}

#[test]
fn every_rule_id_used_is_defined_in_docs_rules_md() {
    let defined = defined();
    assert!(defined.len() >= 29, "{defined:?}");
    let mut missing = Vec::new();
    for f in text_files() {
        let text = std::fs::read_to_string(&f).unwrap_or_default();
        for id in rule_ids(&text) {
            if !defined.contains(&id) {
                missing.push(format!("{id} ({})", f.display()));
            }
        }
    }
    assert!(missing.is_empty(), "not in docs/rules.md: {missing:#?}");
}

#[test]
fn every_rule_names_tests_that_exist() {
    let sections: Vec<&str> = RULES.split("\n### ").skip(1).collect();
    assert_eq!(sections.len(), defined().len());
    for section in sections {
        let id = section.lines().next().unwrap();
        let tested = section
            .split("- Tested:")
            .nth(1)
            .unwrap_or_else(|| panic!("{id} names no test"));
        let tested = tested.split("\n## ").next().unwrap();
        let mut named = 0;
        for quoted in tested.split('`').skip(1).step_by(2) {
            let (file, what) = if let Some((f, scenario)) = quoted.split_once(": \"") {
                (f, format!("'{}'", scenario.trim_end_matches('"')))
            } else {
                let (f, name) = quoted
                    .split_once("::")
                    .unwrap_or_else(|| panic!("{id}: `{quoted}` is not FILE::TEST"));
                (f, format!("fn {name}("))
            };
            let source = std::fs::read_to_string(Path::new(ROOT).join(file))
                .unwrap_or_else(|e| panic!("{id} names {file}: {e}"));
            assert!(
                source.contains(&what),
                "{id} names {what} in {file}, which has none"
            );
            named += 1;
        }
        assert!(named > 0, "{id} names no test");
    }
}

#[test]
fn nothing_points_outside_the_repository_and_wire_sections_exist() {
    let headings: Vec<&str> = WIRE
        .lines()
        .filter(|l| l.starts_with('#'))
        .map(|l| l.trim_start_matches('#').trim())
        .collect();
    for f in text_files() {
        let text = std::fs::read_to_string(&f).unwrap_or_default();
        // Split so that this file does not name them itself.
        for (a, b) in [
            ("SPEC", " §"),
            ("SPEC", ".md"),
            ("PROTOCOL", ".md"),
            ("../", "shared"),
        ] {
            let outside = format!("{a}{b}");
            assert!(
                !text.contains(&outside),
                "{} refers to {outside}, which a clone does not have",
                f.display()
            );
        }
        for cite in text.split(&format!("docs/wire.md {}", '§')).skip(1) {
            let section: String = cite
                .chars()
                .take_while(|c| c.is_ascii_digit() || *c == '.')
                .collect();
            let section = section.trim_end_matches('.');
            assert!(
                headings
                    .iter()
                    .any(|h| h.starts_with(&format!("{section} "))
                        || h.starts_with(&format!("{section}. "))),
                "{} cites section {section} of docs/wire.md, which has no such section",
                f.display()
            );
        }
    }
}
