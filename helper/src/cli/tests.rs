use super::*;
use clap::CommandFactory;
use std::path::PathBuf;
use std::time::Duration;

fn parse(args: &[&str]) -> Result<Command, clap::Error> {
    Cli::try_parse_from(std::iter::once("fcgi-resilient-helper").chain(args.iter().copied())).map(|cli| cli.command)
}

#[test]
fn the_command_definition_is_consistent() {
    Cli::command().debug_assert();
}

#[test]
fn prepare_options() {
    let Command::Prepare(o) = parse(&[
        "prepare",
        "--fpm-config",
        "a.conf",
        "--fpm-config=b.conf",
        "--root",
        "/tmp/r",
        "--dry-run",
        "--mode",
        "0750",
    ])
    .unwrap() else {
        panic!()
    };
    assert_eq!(o.fpm.files, [PathBuf::from("a.conf"), PathBuf::from("b.conf")]);
    assert_eq!((o.root, o.dry_run, o.mode), (PathBuf::from("/tmp/r"), true, 0o750));
    let Command::Prepare(o) = parse(&["prepare", "-n"]).unwrap() else { panic!() };
    assert_eq!((o.root, o.dry_run, o.mode), (PathBuf::from("/"), true, 0o755));
    assert!(parse(&["prepare", "--mode", "0777"]).is_err());
    assert!(parse(&["prepare", "--bogus"]).is_err());
    assert!(parse(&["prepare", "--root"]).is_err());
}

#[test]
fn wait_options() {
    let Command::Wait(o) = parse(&["wait", "/run/php/x.sock", "--timeout", "500ms", "--ping=/ping"]).unwrap() else {
        panic!()
    };
    assert_eq!(o.target.to_string(), "unix:/run/php/x.sock");
    assert_eq!(o.timeout, Duration::from_millis(500));
    assert_eq!(o.readiness.ping.as_deref(), Some("/ping"));
    assert_eq!(o.readiness.expect, "pong");
    let Command::Wait(o) = parse(&["wait", "fcgi://127.0.0.1", "-t", "2mi"]).unwrap() else { panic!() };
    assert_eq!((o.target.to_string(), o.timeout), ("127.0.0.1:8000".to_string(), Duration::from_secs(120)));
    assert!(parse(&["wait"]).is_err());
    assert!(parse(&["wait", "a:1", "b:2"]).is_err());
    assert!(parse(&["wait", "a:1", "--timeout", "soon"]).is_err());
    assert!(parse(&["wait", "a:1", "--ping", "ping"]).is_err());
    assert!(parse(&["wait", "localhost"]).is_err(), "no port");
    assert_eq!(parse(&["wait", "--help"]).unwrap_err().kind(), clap::error::ErrorKind::DisplayHelp);
}

#[test]
fn reload_options() {
    let Command::ReloadAndWait(o) = parse(&["reload-and-wait", "--pid", "123", "127.0.0.1:9000", "-t", "5"]).unwrap()
    else {
        panic!()
    };
    assert_eq!((o.pid, o.wait.timeout), (Some(123), Duration::from_secs(5)));
    assert_eq!(o.wait.target.to_string(), "127.0.0.1:9000");
    assert!(parse(&["reload-and-wait", "--pid", "1", "x:1"]).is_err());
    assert!(parse(&["reload-and-wait", "--pid", "5", "--pid-file", "f", "x:1"]).is_err());
    assert!(parse(&["reload-and-wait", "--pid", "5"]).is_err(), "no target");
    assert!(parse(&["nope"]).is_err());
}

#[test]
fn stop_options() {
    use crate::stop::MainPid;
    let Command::Stop(o) = parse(&["stop", "--pid=4242", "--timeout", "2s", "--fpm-config", "/f.conf"]).unwrap() else {
        panic!()
    };
    assert_eq!((o.pid.pid, o.timeout), (Some(MainPid::Pid(4242)), Duration::from_secs(2)));
    assert_eq!(o.fpm_configs, [PathBuf::from("/f.conf")]);
    let Command::Stop(o) = parse(&["stop", "--pid="]).unwrap() else { panic!() };
    assert_eq!((o.pid.pid, o.timeout), (Some(MainPid::None), Duration::from_secs(30)));
    let Command::Stop(o) = parse(&["stop", "--pid", ""]).unwrap() else { panic!() };
    assert_eq!(o.pid.pid, Some(MainPid::None));
    let Command::Stop(o) = parse(&["stop", "--pid-file", "/run/x.pid"]).unwrap() else { panic!() };
    assert_eq!(o.pid.pid_file, Some(PathBuf::from("/run/x.pid")));
    let Command::Stop(o) = parse(&["stop", "--pid=7", "--fpm-config", "a.conf", "--fpm-config", "b.conf"]).unwrap()
    else {
        panic!()
    };
    assert_eq!(o.fpm_configs, [PathBuf::from("a.conf"), PathBuf::from("b.conf")], "every one, as elsewhere");
    assert!(parse(&["stop"]).is_err());
    assert!(parse(&["stop", "--pid", "7", "--pid-file", "f"]).is_err());
    assert!(parse(&["stop", "--pid", "1"]).is_err());
    assert!(parse(&["stop", "--pid", "x"]).is_err());
}

#[test]
fn pause_resume_and_deploy_options() {
    let Command::Pause(o) = parse(&["pause", "127.0.0.1:9000", "--for", "2s", "--pause-dir=/tmp/p"]).unwrap() else {
        panic!()
    };
    assert_eq!((o.target.backend.as_str(), o.pause_for), ("127.0.0.1:9000", Duration::from_secs(2)));
    assert_eq!((o.target.pause_dir, o.timeout), (PathBuf::from("/tmp/p"), Duration::from_secs(30)));
    let Command::Pause(o) = parse(&["pause", "/run/php/x.sock"]).unwrap() else { panic!() };
    assert_eq!(o.pause_for, Duration::from_secs(60));
    assert_eq!(o.target.pause_dir, PathBuf::from("/run/fcgi-resilient/pause"));
    assert!(parse(&["pause"]).is_err());
    assert!(parse(&["pause", "a:1", "b:2"]).is_err());
    assert!(parse(&["pause", "a:1", "--for", "0"]).is_err());
    assert!(parse(&["pause", "a:1", "--for", "25h"]).is_err());
    assert!(parse(&["resume", "a:1", "--for", "2s"]).is_err());
    let Command::Resume(o) = parse(&["resume", "a:1"]).unwrap() else { panic!() };
    assert_eq!(o.target.backend, "a:1");
    let Command::Deploy(o) =
        parse(&["deploy", "a:1", "--timeout", "10s", "--", "systemctl", "restart", "--now", "php8.2-fpm"]).unwrap()
    else {
        panic!()
    };
    assert_eq!(o.command, ["systemctl", "restart", "--now", "php8.2-fpm"], "options after -- are COMMAND's");
    assert_eq!((o.timeout, o.pause_for()), (Duration::from_secs(10), Duration::from_secs(30)));
    let Command::Deploy(o) = parse(&["deploy", "a:1", "--for", "5s", "--", "true"]).unwrap() else { panic!() };
    assert_eq!(o.pause_for(), Duration::from_secs(5));
    let Command::Deploy(o) = parse(&["deploy", "a:1", "--timeout", "9h", "--", "true"]).unwrap() else { panic!() };
    assert_eq!(o.pause_for(), Duration::from_secs(24 * 3600), "the pause's own end stays within a day");
    assert!(parse(&["deploy", "a:1"]).is_err(), "no COMMAND");
    assert!(parse(&["deploy", "a:1", "--ping", "ping", "--", "true"]).is_err());
}

#[test]
fn systemd_options() {
    let Command::SystemdDropin(o) = parse(&["systemd-dropin", "--root", "/tmp/r", "--remove"]).unwrap() else {
        panic!()
    };
    assert_eq!((o.units.root, o.remove), (PathBuf::from("/tmp/r"), true));
    assert!(parse(&["systemd-dropin", "--remove=yes"]).is_err());
    assert!(parse(&[]).is_err());
}

#[test]
fn repeated_options_behave_alike_in_every_command() {
    // A repeatable option takes every value everywhere; a single-valued one refuses a second.
    let configs = ["--fpm-config", "a.conf", "--fpm-config", "b.conf"];
    for command in [
        vec!["prepare"],
        vec!["check"],
        vec!["reload-and-wait", "x:1"],
        vec!["stop", "--pid=7"],
        vec!["pause", "x:1"],
        vec!["resume", "x:1"],
        vec!["deploy", "x:1"],
    ] {
        let mut args = command.clone();
        args.extend(configs);
        if command[0] == "deploy" {
            args.extend(["--", "true"]);
        }
        assert!(parse(&args).is_ok(), "{args:?}");
        let mut twice = command.clone();
        twice.extend(["--fpm-prefix", "/a", "--fpm-prefix", "/b"]);
        if command[0] == "deploy" {
            twice.extend(["--", "true"]);
        }
        assert!(parse(&twice).is_err(), "{twice:?}: a second --fpm-prefix must be refused");
    }
}

mod manual;
