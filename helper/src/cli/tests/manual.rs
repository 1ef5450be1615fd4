//! The man page (docs/helper.md) against the command definition: the same options in each
//! command's SYNOPSIS line and in clap, every option documented, and every command the page
//! shows accepted by the parser, so that scripts written from it keep working.

use super::*;
use std::collections::BTreeSet;

const MANUAL: &str = include_str!("../../../../docs/helper.md");

/// What `[BACKEND OPTIONS]` in the SYNOPSIS stands for.
const BACKEND_OPTIONS: &[&str] = &["--pause-dir", "--apache-config", "--fpm-config", "--fpm-prefix", "--force"];

fn subcommands() -> Vec<clap::Command> {
    Cli::command().get_subcommands().cloned().collect()
}

/// `--long` names, and `-s` short ones, of a command's options (not --help/--version).
fn clap_options(command: &clap::Command) -> BTreeSet<String> {
    let mut options = BTreeSet::new();
    for argument in command.get_arguments() {
        if let Some(long) = argument.get_long() {
            if long != "help" && long != "version" {
                options.insert(format!("--{long}"));
            }
        }
        if let Some(short) = argument.get_short() {
            if short != 'h' && short != 'V' {
                options.insert(format!("-{short}"));
            }
        }
    }
    options
}

/// The `-x`/`--name` tokens of a text (`[--pid-file FILE | --pid PID]` gives both).
fn option_tokens(text: &str) -> BTreeSet<String> {
    let mut tokens = BTreeSet::new();
    for word in text.split(|c: char| c.is_whitespace() || "[]()|=`,;.".contains(c)) {
        let is_long = word.starts_with("--") && word.len() > 2;
        let is_short = word.len() == 2 && word.starts_with('-') && word.as_bytes()[1].is_ascii_alphabetic();
        if is_long || is_short {
            tokens.insert(word.to_string());
        }
    }
    tokens
}

fn synopsis_line(name: &str) -> &'static str {
    let synopsis = section(MANUAL, "## SYNOPSIS", "## ");
    synopsis
        .lines()
        .find(|line| line.starts_with(&format!("fcgi-resilient-helper {name} ")))
        .unwrap_or_else(|| panic!("no SYNOPSIS line for {name}"))
}

/// From the line starting with `heading` to the next line starting with `next`.
fn section<'a>(text: &'a str, heading: &str, next: &str) -> &'a str {
    let start = text.find(&format!("\n{heading}\n")).unwrap_or_else(|| panic!("no {heading}")) + 1;
    let body = &text[start + heading.len()..];
    let end = body.find(&format!("\n{next}")).map_or(text.len(), |at| start + heading.len() + at);
    &text[start..end]
}

#[test]
fn each_synopsis_line_names_the_options_clap_takes() {
    for command in subcommands() {
        let name = command.get_name();
        let line = synopsis_line(name);
        let mut documented = option_tokens(line);
        if line.contains("[BACKEND OPTIONS]") {
            documented.extend(BACKEND_OPTIONS.iter().map(|option| option.to_string()));
        }
        assert_eq!(documented, clap_options(&command), "SYNOPSIS of {name}: {line}");
    }
}

#[test]
fn every_option_is_documented_in_its_commands_section() {
    let backend_options = section(MANUAL, "### pause", "### ");
    for command in subcommands() {
        let name = command.get_name();
        let mut text = section(MANUAL, &format!("### {name}"), "### ").to_string();
        if ["pause", "resume", "deploy"].contains(&name) {
            text += backend_options;
        }
        for option in clap_options(&command) {
            assert!(text.contains(&format!("`{option}")), "{name}: `{option}` is not documented in `### {name}`");
        }
    }
}

#[test]
fn every_command_has_a_section_and_no_section_is_for_a_command_that_is_gone() {
    let commands: BTreeSet<String> = subcommands().iter().map(|c| c.get_name().to_string()).collect();
    let described = section(MANUAL, "## COMMANDS", "## ");
    let sections: BTreeSet<String> =
        described.lines().filter_map(|line| line.strip_prefix("### ")).map(str::to_string).collect();
    assert_eq!(sections, commands);
}

/// Every `fcgi-resilient-helper ...` the page shows past its SYNOPSIS: the EXAMPLES, the
/// recipes, the drop-in's lines.
pub(crate) fn documented_commands() -> Vec<Vec<String>> {
    let body = &MANUAL[MANUAL.find("\n## DESCRIPTION\n").expect("DESCRIPTION")..];
    let mut commands = Vec::new();
    let mut in_block = false;
    let mut pending = String::new();
    for line in body.lines() {
        if line.trim_start().starts_with("```") {
            in_block = !in_block;
            continue;
        }
        if !in_block && !line.starts_with("    ") {
            continue;
        }
        if let Some(continued) = line.trim_end().strip_suffix('\\') {
            pending += continued;
            continue;
        }
        let line = std::mem::take(&mut pending) + line;
        let Some(at) = line.find("fcgi-resilient-helper ") else { continue };
        let quoted = line[..at].matches('\'').count() % 2 == 1;
        let mut invocation = &line[at + "fcgi-resilient-helper ".len()..];
        if quoted {
            invocation = invocation.split('\'').next().unwrap_or(invocation);
        }
        let invocation = invocation.split(" #").next().unwrap_or(invocation).replace("${MAINPID}", "4242");
        commands.push(shell_words(&invocation));
    }
    assert!(commands.len() >= 20, "only {} documented commands found", commands.len());
    commands
}

/// Words as sh splits them, for the quoting the page uses ('...', "...").
fn shell_words(text: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut quote = None;
    for c in text.chars() {
        match (quote, c) {
            (Some(open), c) if c == open => quote = None,
            (Some(_), c) => word.push(c),
            (None, '\'' | '"') => {
                quote = Some(c);
                in_word = true;
            }
            (None, c) if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            (None, c) => {
                word.push(c);
                in_word = true;
            }
        }
    }
    if in_word {
        words.push(word);
    }
    words
}

#[test]
fn every_documented_command_is_accepted_as_written() {
    for words in documented_commands() {
        let arguments: Vec<&str> = words.iter().map(String::as_str).collect();
        if let Err(error) = parse(&arguments) {
            panic!("the man page shows `fcgi-resilient-helper {}`, which is refused:\n{error}", words.join(" "));
        }
    }
}

#[test]
fn shell_words_keep_quoted_text_whole() {
    assert_eq!(
        shell_words("deploy x -- sh -c 'mv a b && systemctl reload php'"),
        ["deploy", "x", "--", "sh", "-c", "mv a b && systemctl reload php"]
    );
}
