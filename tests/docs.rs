//! Docs that stay true: the README's layout names every source file and folder, lib.rs's module
//! list names every top-level module, and measured figures live in BENCHMARKS.md only (a dated
//! figure in a doc comment or `--help` goes stale with the next change).
use std::collections::BTreeSet;
use std::path::Path;

use crate::common::repo;

/// The README's `## Layout` code block.
fn layout() -> String {
    let readme = std::fs::read_to_string(repo().join("README.md")).unwrap();
    let start = readme.find("## Layout").expect("README has a ## Layout section");
    let block = &readme[start..];
    let open = block.find("```").unwrap() + 3;
    let close = open + block[open..].find("```").unwrap();
    block[open..close].to_string()
}

/// The layout's entry for `folder` (e.g. `src/train/`): its line and the indented lines under it.
fn entry(layout: &str, folder: &str) -> String {
    let mut out = String::new();
    let mut inside = false;
    for line in layout.lines() {
        if line.starts_with(folder) {
            inside = true;
        } else if !line.starts_with(' ') {
            inside = false;
        }
        if inside {
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}

/// Module names of a folder: its `.rs` files (but mod.rs) and its subfolders.
fn modules(dir: &Path) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let path = e.unwrap().path();
        let stem = path.file_stem().unwrap().to_string_lossy().into_owned();
        if path.is_dir() || (path.extension().is_some_and(|x| x == "rs") && stem != "mod") {
            names.insert(stem);
        }
    }
    names
}

fn mentions(text: &str, word: &str) -> bool {
    text.split(|c: char| !(c.is_alphanumeric() || c == '_')).any(|w| w == word)
}

#[test]
fn the_readme_layout_names_every_module_of_every_folder() {
    let layout = layout();
    let src = repo().join("src");
    let mut missing = Vec::new();
    for e in std::fs::read_dir(&src).unwrap() {
        let path = e.unwrap().path();
        if !path.is_dir() {
            continue;
        }
        let folder = format!("src/{}/", path.file_name().unwrap().to_string_lossy());
        let text = entry(&layout, &folder);
        if text.is_empty() {
            missing.push(folder);
            continue;
        }
        for m in modules(&path) {
            if !mentions(&text, &m) {
                missing.push(format!("{folder}{m}"));
            }
        }
    }
    assert!(missing.is_empty(), "README's ## Layout does not name: {missing:?}");
}

#[test]
fn lib_rs_describes_every_top_level_module() {
    let lib = std::fs::read_to_string(repo().join("src/lib.rs")).unwrap();
    let docs: String = lib.lines().filter(|l| l.starts_with("//!")).collect::<Vec<_>>().join("\n");
    let undocumented: Vec<&str> = lib
        .lines()
        .filter_map(|l| l.strip_prefix("pub mod "))
        .map(|m| m.trim_end_matches(';'))
        .filter(|m| !docs.contains(&format!("`{m}`")))
        .collect();
    assert!(undocumented.is_empty(), "src/lib.rs's docs do not describe {undocumented:?}");
}

#[test]
fn dated_figures_live_in_benchmarks_md_only() {
    // A date next to a figure (`2026-11-29`) marks a measurement.
    let dated = |text: &str| {
        text.as_bytes().windows(10).any(|w| {
            w[..4].iter().all(u8::is_ascii_digit)
                && w[4] == b'-'
                && w[5..7].iter().all(u8::is_ascii_digit)
                && w[7] == b'-'
                && w[8..].iter().all(u8::is_ascii_digit)
        })
    };
    let mut found = Vec::new();
    let mut stack = vec![repo().join("src")];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).unwrap() {
            let path = e.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|x| x == "rs") {
                let text = std::fs::read_to_string(&path).unwrap();
                for (i, line) in text.lines().enumerate() {
                    let comment = line.trim_start().starts_with("//") || line.contains("///");
                    let help = line.contains("help") || line.trim_start().starts_with('"');
                    if (comment || help) && dated(line) {
                        found.push(format!("{}:{}: {}", path.display(), i + 1, line.trim()));
                    }
                }
            }
        }
    }
    assert!(found.is_empty(), "dated figures outside BENCHMARKS.md:\n{}", found.join("\n"));
}

/// README's run-classification flag table is the one the binary renders from its table.
#[test]
fn the_readme_flag_table_is_the_rendered_one() {
    let readme = std::fs::read_to_string(repo().join("README.md")).unwrap();
    let start = readme.find("<!-- flag-table").expect("README has the flag table");
    let start = start + readme[start..].find("-->\n").unwrap() + 4;
    let end = readme.find("<!-- /flag-table -->").unwrap();
    let rendered = bertfit::cli::run_classification::help::render_table();
    assert!(
        readme[start..end] == rendered,
        "README's flag table differs: run `bertfit run-classification --flag-table`"
    );
}
