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
mod pause;
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
