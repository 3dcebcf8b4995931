//! Runs the official JSON Schema test suite (draft 2020-12 and draft 7, required tests only)
//! through meshguard's schema compiler, with the suite's `remotes/` preloaded in memory.
//!
//! The suite is vendored in `tests/data/json-schema-test-suite` (MIT; provenance in `tests/data/README.md`). Cases the underlying crate gets wrong are listed, with the reason,
//! in `tests/jsonschema_known_failures.txt`; every other case must pass, and every listed case
//! must still fail (so the list shrinks when the crate improves).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::collections::{BTreeSet, HashMap};
use std::fs;
use std::path::{Path, PathBuf};

use meshguard::validate::schema::{Dialect, SchemaCompiler};
use serde_json::Value;

fn reference_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data")
}

fn read_json(path: &Path) -> Value {
    let text = fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Every file under `remotes/`, keyed by the URI the suite serves it at.
fn remotes(root: &Path) -> HashMap<String, Value> {
    fn walk(dir: &Path, base: &Path, out: &mut HashMap<String, Value>) {
        let mut entries: Vec<_> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        entries.sort();
        for path in entries {
            if path.is_dir() {
                walk(&path, base, out);
            } else if path.extension().is_some_and(|e| e == "json") {
                let rel = path
                    .strip_prefix(base)
                    .unwrap()
                    .to_string_lossy()
                    .replace('\\', "/");
                out.insert(format!("http://localhost:1234/{rel}"), read_json(&path));
            }
        }
    }
    let mut out = HashMap::new();
    let dir = root.join("remotes");
    walk(&dir, &dir, &mut out);
    out
}

/// `draft/file.json | group | test` lines (after `#` comments are removed) of expected failures.
fn known_failures() -> BTreeSet<String> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/jsonschema_known_failures.txt");
    let Ok(text) = fs::read_to_string(path) else {
        return BTreeSet::new();
    };
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| {
            let fields: Vec<&str> = l.split(" | ").collect();
            assert!(
                fields.len() >= 3,
                "known failure line needs file | group | test | reason: {l}"
            );
            fields[..3].join(" | ")
        })
        .collect()
}

struct Outcome {
    total: usize,
    passed: usize,
    failures: Vec<String>,
}

fn run_draft(root: &Path, dir: &str, dialect: Dialect, docs: &HashMap<String, Value>) -> Outcome {
    let compiler = SchemaCompiler::new()
        .with_default_dialect(dialect)
        .with_documents(docs.clone());
    let mut files: Vec<PathBuf> = fs::read_dir(root.join("tests").join(dir))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file() && p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    let mut out = Outcome {
        total: 0,
        passed: 0,
        failures: Vec::new(),
    };
    for file in files {
        let name = format!("{dir}/{}", file.file_name().unwrap().to_string_lossy());
        let groups = read_json(&file);
        for group in groups.as_array().unwrap() {
            let gdesc = group["description"].as_str().unwrap();
            let compiled = compiler.compile(&group["schema"], "schema");
            for case in group["tests"].as_array().unwrap() {
                let tdesc = case["description"].as_str().unwrap();
                let expected = case["valid"].as_bool().unwrap();
                out.total += 1;
                let ok = match &compiled {
                    Ok(schema) => schema.is_valid(&case["data"]) == expected,
                    Err(_) => false,
                };
                if ok {
                    out.passed += 1;
                } else {
                    let why = match &compiled {
                        Ok(_) => format!("expected valid={expected}"),
                        Err(e) => format!("schema refused: {e}"),
                    };
                    out.failures
                        .push(format!("{name} | {gdesc} | {tdesc} || {why}"));
                }
            }
        }
    }
    out
}

#[test]
fn official_suite_passes_through_meshguard_compiler() {
    let root = reference_dir().join("json-schema-test-suite");
    let docs = remotes(&root);
    let known = known_failures();
    let mut unexpected = Vec::new();
    let mut seen_known = BTreeSet::new();
    let mut summary = Vec::new();
    for (dir, dialect) in [
        ("draft2020-12", Dialect::Draft202012),
        ("draft7", Dialect::Draft7),
    ] {
        let o = run_draft(&root, dir, dialect, &docs);
        summary.push(format!("{dir} {}/{}", o.passed, o.total));
        for f in o.failures {
            let key = f.split(" || ").next().unwrap().to_string();
            if known.contains(&key) {
                seen_known.insert(key);
            } else {
                unexpected.push(f);
            }
        }
    }
    println!("jsonschema conformance: {}", summary.join(", "));
    let stale: Vec<_> = known.difference(&seen_known).collect();
    assert!(
        unexpected.is_empty(),
        "{} unexpected failures:\n{}",
        unexpected.len(),
        unexpected.join("\n")
    );
    assert!(
        stale.is_empty(),
        "listed as known failures but now pass: {stale:#?}"
    );
}
