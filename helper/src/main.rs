//! fcgi-resilient-helper: keeps the PHP-FPM side ready for Apache
//! (socket directories, configuration cross-check, readiness after (re)start, lossless stops,
//! and pauses that hold requests in Apache during a deploy).

mod apache_config;
mod check;
mod cli;
mod deploy;
mod duration;
mod fastcgi;
mod fpm_config;
mod fpm_process;
mod glob;
/// `socket-keeper`: PHP-FPM's sockets held by systemd across restarts (own argument parsing).
mod keeper;
mod pause;
/// The pause file's format, shared with the module: one definition for both (the module
/// uses the parts the helper does not).
#[allow(dead_code)]
#[path = "../../mod_fcgi_resilient/src/pause_file.rs"]
mod pause_file;
mod prepare;
mod reload;
mod safe_dir;
mod stop;
mod systemd;
mod tcp_sockets;
mod unix_sockets;
mod users;
mod wait;

const EXIT_USAGE: i32 = 2;

fn main() {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    if argv.first().is_some_and(|c| c == "socket-keeper") {
        std::process::exit(keeper::main(argv[1..].to_vec()));
    }
    let code = match cli::parse(argv) {
        Ok(cli::Command::Help(text)) => {
            println!("{text}");
            0
        }
        Ok(cli::Command::Version) => {
            println!("fcgi-resilient-helper {}", env!("CARGO_PKG_VERSION"));
            0
        }
        Ok(cli::Command::Prepare(o)) => prepare::run(&o),
        Ok(cli::Command::Wait(o)) => wait::run(&o),
        Ok(cli::Command::Check(o)) => check::run(&o),
        Ok(cli::Command::ReloadAndWait(o)) => reload::run(&o),
        Ok(cli::Command::Stop(o)) => stop::run(&o),
        Ok(cli::Command::SystemdDropin(o)) => systemd::run(&o),
        Ok(cli::Command::Pause(o)) => pause::run_pause(&o),
        Ok(cli::Command::Resume(o)) => pause::run_resume(&o),
        Ok(cli::Command::Deploy(o)) => deploy::run(&o),
        Err(e) => {
            eprintln!("fcgi-resilient-helper: {e}");
            eprintln!("Try `fcgi-resilient-helper --help`.");
            EXIT_USAGE
        }
    };
    std::process::exit(code);
}
