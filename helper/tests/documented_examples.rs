//! The EXAMPLES of docs/helper.md, run as written where that has no effect beyond this test:
//! each must at least not be a usage error (exit 2). The others (a stop, a pause in the
//! system's pause directory, a drop-in in /etc) are parsed, like every other command the page
//! shows, by the parser's own test (`cli::tests::manual`).

mod common;

use common::run;

const MANUAL: &str = include_str!("../../docs/helper.md");

fn examples() -> Vec<String> {
    let start = MANUAL.find("\n## EXAMPLES\n").expect("an EXAMPLES section");
    let section = &MANUAL[start + 1..];
    let section = &section[..section[3..].find("\n## ").map_or(section.len(), |end| end + 3)];
    section.lines().filter_map(|line| line.strip_prefix("fcgi-resilient-helper ")).map(str::to_string).collect()
}

/// Read-only, or bounded to a second: what a test may run on a shared machine.
fn harmless(words: &[&str]) -> bool {
    match words {
        ["prepare", rest @ ..] => rest.contains(&"--dry-run"),
        ["check", ..] => true,
        ["wait", .., "--timeout", timeout] => timeout.ends_with("ms"),
        _ => false,
    }
}

#[test]
fn the_harmless_examples_run_and_none_is_a_usage_error() {
    let examples = examples();
    assert!(examples.len() >= 10, "{examples:?}");
    let mut ran = 0;
    for example in &examples {
        let words: Vec<&str> = example.split_whitespace().collect();
        if !harmless(&words) {
            continue;
        }
        let result = run(&words);
        assert_ne!(result.code, 2, "`fcgi-resilient-helper {example}` is a usage error: {}", result.stderr);
        assert!(!result.stderr.contains("error: "), "`{example}`: {}", result.stderr);
        ran += 1;
    }
    assert!(ran >= 3, "only {ran} examples ran");
}

#[test]
fn help_and_version_exit_0_and_usage_errors_2() {
    for help in [&["--help"][..], &["help"], &["help", "deploy"], &["pause", "--help"], &["--version"]] {
        assert_eq!(run(help).code, 0, "{help:?}");
    }
    for wrong in [&[][..], &["frobnicate"], &["wait"], &["wait", "localhost"], &["pause", "x:1", "--for", "2d"]] {
        assert_eq!(run(wrong).code, 2, "{wrong:?}");
    }
}
