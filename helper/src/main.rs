//! fcgi-resilient-helper: keeps the PHP-FPM side ready for Apache
//! (socket directories, configuration cross-check, readiness after (re)start, lossless stops,
//! and pauses that hold requests in Apache during a deploy).

mod apache_config;
mod apache_include;
mod check;
mod cli;
mod deploy;
mod duration;
mod fastcgi;
mod fpm_config;
mod fpm_glob;
mod fpm_process;
mod keeper;
mod options;
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

use clap::Parser;

/// Usage errors exit with 2 (clap's own code for them), help and version with 0, a command
/// with its own status: the exit statuses the man page documents.
fn main() {
    let cli = cli::Cli::parse();
    std::process::exit(cli.command.run());
}
