//! `fcgi-resilient-helper` over hundreds of pool files: how long `prepare`, `check` and `wait`
//! take, and what `check` prints when some sites point at a socket no pool listens on.

use harness::PhpFpm;
use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

/// Every `BROKEN_EVERY`-th virtual host of the second `check` names a socket no pool has.
const BROKEN_EVERY: usize = 50;

pub fn measure(dir: &Path, helper: &Path, pools: usize) {
    let _ = std::fs::remove_dir_all(dir);
    let sockets = dir.join("run");
    let pool_dir = dir.join("pool.d");
    for path in [dir, &sockets, &pool_dir, &dir.join("root"), &dir.join("www")] {
        std::fs::create_dir_all(path).expect("helper directory");
    }
    let fpm_config = dir.join("php-fpm.conf");
    write_fpm_configs(dir, &pool_dir, &sockets, pools);
    println!("\nfcgi-resilient-helper over {pools} pool files (one include of pool.d/*.conf):");
    let root = dir.join("root");
    let (took, output) = time(helper, &["prepare", "--fpm-config", &text(&fpm_config), "--root", &text(&root)]);
    println!("prepare (creates the socket directory below --root): {} ms, exit {}", ms(took), code(&output));
    let (took, output) = time(helper, &["prepare", "--fpm-config", &text(&fpm_config), "--root", &text(&root)]);
    println!("prepare again (nothing to do):                       {} ms, exit {}", ms(took), code(&output));

    let apache = dir.join("apache2.conf");
    std::fs::write(&apache, apache_config(&sockets, pools, usize::MAX)).expect("apache2.conf");
    let check_args = |apache: &Path| {
        vec!["check".to_string(), "--apache-config".into(), text(apache), "--fpm-config".into(), text(&fpm_config)]
    };
    let run_check = |apache: &Path| {
        let args = check_args(apache);
        time(helper, &args.iter().map(String::as_str).collect::<Vec<_>>())
    };
    let (took, output) = run_check(&apache);
    println!("check, {pools} vhosts against {pools} pools, all fine:    {} ms, exit {}", ms(took), code(&output));
    print_output(&output);

    let broken = dir.join("apache2-broken.conf");
    std::fs::write(&broken, apache_config(&sockets, pools, BROKEN_EVERY)).expect("apache2-broken.conf");
    let (took, output) = run_check(&broken);
    println!("check, every {BROKEN_EVERY}th vhost at a socket no pool has:  {} ms, exit {}", ms(took), code(&output));
    print_output(&output);

    // Static children, so that `wait --ping` times the helper and not php-fpm's forks.
    let mut fpm = PhpFpm::with_pools(dir, &dir.join("www"), &socket_paths(&sockets, pools), "static", 1);
    let started = Instant::now();
    fpm.start();
    fpm.wait_all_accepting();
    println!(
        "php-fpm with {pools} pools (pm = static, 1 child each) accepting on every socket after {} ms",
        ms(started.elapsed())
    );
    for ping in [false, true] {
        let started = Instant::now();
        let mut failed = 0;
        for socket in socket_paths(&sockets, pools) {
            let mut args = vec!["wait".to_string(), text(&socket), "--timeout".into(), "10s".into()];
            if ping {
                args.extend(["--ping".to_string(), "/ping".into()]);
            }
            let output = Command::new(helper).args(&args).output().expect("run helper wait");
            failed += usize::from(!output.status.success());
        }
        let took = started.elapsed();
        println!(
            "wait{}, once per pool as the systemd drop-in runs it: {pools} runs in {} ms ({:.2} ms each), {failed} failed",
            if ping { " --ping /ping" } else { "" },
            ms(took),
            took.as_secs_f64() * 1000.0 / pools as f64
        );
    }
    fpm.stop();
}

fn socket_paths(sockets: &Path, pools: usize) -> Vec<std::path::PathBuf> {
    (0..pools).map(|i| sockets.join(format!("site{i:04}.sock"))).collect()
}

/// A main config including one file per pool, as Debian's pool.d/ does.
fn write_fpm_configs(dir: &Path, pool_dir: &Path, sockets: &Path, pools: usize) {
    let main = format!(
        "[global]\npid = {dir}/php-fpm.pid\nerror_log = {dir}/php-fpm.log\nprocess_control_timeout = 30s\n\
         include = {pool_dir}/*.conf\n",
        dir = dir.display(),
        pool_dir = pool_dir.display()
    );
    std::fs::write(dir.join("php-fpm.conf"), main).expect("php-fpm.conf");
    for (index, socket) in socket_paths(sockets, pools).iter().enumerate() {
        let pool = format!(
            "[site{index:04}]\nuser = www-data\ngroup = www-data\nlisten = {}\nlisten.owner = www-data\n\
             listen.group = www-data\nlisten.mode = 0660\npm = ondemand\npm.max_children = 1\nping.path = /ping\n",
            socket.display()
        );
        std::fs::write(pool_dir.join(format!("site{index:04}.conf")), pool).expect("pool file");
    }
}

fn apache_config(sockets: &Path, pools: usize, broken_every: usize) -> String {
    let mut text = "User www-data\nGroup www-data\nMaxRequestWorkers 400\n".to_string();
    for (index, socket) in socket_paths(sockets, pools).iter().enumerate() {
        let socket = if (index + 1) % broken_every == 0 {
            socket.with_file_name(format!("php8.1-site{index:04}.sock"))
        } else {
            socket.clone()
        };
        text += &format!(
            "<VirtualHost *:80>\n    ServerName site{index:04}.test\n    <FilesMatch \\.php$>\n        \
             SetHandler \"proxy:unix:{}|fcgi://localhost\"\n    </FilesMatch>\n</VirtualHost>\n",
            socket.display()
        );
    }
    text
}

fn time(helper: &Path, args: &[&str]) -> (Duration, Output) {
    let started = Instant::now();
    let output = Command::new(helper).args(args).output().expect("run fcgi-resilient-helper");
    (started.elapsed(), output)
}

/// Its stdout, and its stderr with long lines shown by their length.
fn print_output(output: &Output) {
    let stderr = String::from_utf8_lossy(&output.stderr);
    let lines: Vec<&str> = stderr.lines().collect();
    let longest = lines.iter().map(|l| l.len()).max().unwrap_or(0);
    println!("  stdout: {}", String::from_utf8_lossy(&output.stdout).trim_end().replace('\n', "\n          "));
    println!("  stderr: {} line(s), longest {longest} characters; first 3:", lines.len());
    for line in lines.iter().take(3) {
        let shown: String = line.chars().take(300).collect();
        println!("    {shown}{}", if line.len() > 300 { " [...]" } else { "" });
    }
}

fn text(path: &Path) -> String {
    path.display().to_string()
}

fn code(output: &Output) -> i32 {
    output.status.code().unwrap_or(-1)
}

fn ms(duration: Duration) -> String {
    format!("{:.0}", duration.as_secs_f64() * 1000.0)
}
