//! The socket keeper measured under a real systemd (Debian's php8.2-fpm.service in
//! systemd-nspawn, harness::nspawn): for PHP-FPM as Debian ships it (plus Restart=on-failure,
//! for the crash), with `socket-keeper`, and with `socket-keeper` and the drain drop-in
//! (`systemd-dropin`) together, each event below is run under load through three front ends
//! at once: Apache without mod_fcgi_resilient, Apache with it On at its defaults, and nginx.
//! Prints per event and front end the failed connects (the front end's error log: Apache's
//! AH02454/AH00957, nginx's `connect() ... failed`) and the failed requests (GETs of a 20 ms
//! page and 64 KiB POSTs echoed back and compared). Asserts nothing: figures for the docs.
//!
//!     scripts/bench-socket-keeper.sh   (builds, then runs this with --module and --helper)

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use harness::apache::{ApacheConfig, ModulePlacement};
use harness::load::{failed_count, LoadSpec, Record, RunningLoad};
use harness::nspawn::Container;
use harness::WorkDir;

const UNIT: &str = "php8.2-fpm";
const SOCKET: &str = "/run/php/php8.2-fpm.sock";
const WWW: &str = "/etc/php/8.2/fpm/pool.d/www.conf";
const WORKERS: usize = 8;

struct Front {
    name: &'static str,
    port: u16,
    log: PathBuf,
    /// What a failed connect to PHP-FPM looks like in its error log.
    markers: &'static [&'static str],
}

impl Front {
    fn failed_connects(&self) -> usize {
        let log = std::fs::read_to_string(&self.log).unwrap_or_default();
        log.lines().filter(|l| self.markers.iter().any(|m| l.contains(m))).count()
    }
}

struct Row {
    setup: &'static str,
    event: &'static str,
    /// Per front end: (failed connects, failed GETs, GETs, failed POSTs, POSTs).
    cells: Vec<(usize, usize, usize, usize, usize)>,
}

fn events() -> Vec<(&'static str, String)> {
    vec![
        ("systemctl restart", format!("systemctl restart {UNIT}")),
        ("stop, 2 s, start", format!("systemctl stop {UNIT}; sleep 2; systemctl start {UNIT}")),
        ("kill -9 of the master", format!("kill -9 $(systemctl show -p MainPID --value {UNIT}); sleep 2")),
        (
            "broken reload, fixed 2 s later",
            format!(
                "cp {WWW} /root/www.good; echo 'pm = broken' >> {WWW}; systemctl reload {UNIT}; sleep 2; \
                 cp /root/www.good {WWW}; systemctl reload {UNIT} || systemctl restart {UNIT}; \
                 for i in $(seq 50); do systemctl is-active --quiet {UNIT} && break; sleep 0.1; done"
            ),
        ),
    ]
}

fn arg(name: &str) -> Option<PathBuf> {
    let args: Vec<String> = std::env::args().collect();
    args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).map(PathBuf::from)
}

fn nginx_config(dir: &Path, docroot: &Path, port: u16) -> String {
    let d = dir.display();
    format!(
        "user www-data;\nworker_processes 2;\npid {d}/nginx.pid;\nerror_log {d}/error.log error;\n\
         events {{ worker_connections 2048; }}\n\
         http {{\n  access_log off;\n  client_max_body_size 10m;\n  client_body_temp_path {d}/body;\n\
           fastcgi_temp_path {d}/fastcgi;\n  proxy_temp_path {d}/proxy;\n  uwsgi_temp_path {d}/uwsgi;\n\
           scgi_temp_path {d}/scgi;\n\
           server {{\n    listen 127.0.0.1:{port};\n    root {root};\n\
             location ~ \\.php$ {{\n      include /etc/nginx/fastcgi_params;\n\
               fastcgi_param SCRIPT_FILENAME $document_root$fastcgi_script_name;\n\
               fastcgi_pass unix:{SOCKET};\n    }}\n  }}\n}}\n",
        root = docroot.display()
    )
}

fn main() {
    if let Some(why) = harness::nspawn::unavailable() {
        eprintln!("socket_keeper bench: no real systemd to measure under: {why}");
        std::process::exit(1);
    }
    let module = arg("--module").unwrap_or_else(harness::apache::module_path);
    let helper = arg("--helper").expect("--helper PATH (target/release/fcgi-resilient-helper)");
    let out = arg("--out").unwrap_or_else(|| PathBuf::from("target/bench"));
    let work = WorkDir::new("bench-socket-keeper");
    let bin = work.join("fcgi-resilient-helper");
    std::fs::copy(&helper, &bin).expect("copy the helper");
    std::fs::copy(&module, work.join("mod_fcgi_resilient.so")).expect("copy the module");
    let bin = bin.display().to_string();
    let container = Container::boot(work.path());
    let sh = |script: &str| container.sh_ok(script);
    sh(&format!(
        "sed -i -e 's/^pm = .*/pm = static/' -e 's/^pm.max_children = .*/pm.max_children = {WORKERS}/' {WWW}; \
         mkdir -p /etc/systemd/system/{UNIT}.service.d; \
         printf '[Service]\\nRestart=on-failure\\nRestartSec=500ms\\n' > /etc/systemd/system/{UNIT}.service.d/restart.conf; \
         systemctl daemon-reload; systemctl start {UNIT}"
    ));
    let mut fronts = Vec::new();
    for (name, port, placement) in [
        ("Apache, module Off", 8080, ModulePlacement::NotLoaded),
        ("Apache, module On", 8081, ModulePlacement::AfterProxy),
    ] {
        let root = work.subdir(&format!("apache-{port}"));
        let mut config = ApacheConfig::new(&work.docroot(), &format!("proxy:unix:{SOCKET}|fcgi://localhost"));
        config.port = port;
        config.module = placement;
        config.module_file = Some(work.join("mod_fcgi_resilient.so"));
        config.log_level = "warn".into();
        if placement != ModulePlacement::NotLoaded {
            config = config.with_server_directives("FcgiResilient On");
        }
        std::fs::write(root.join("httpd.conf"), config.render(&root)).expect("apache config");
        sh(&format!("apache2 -f {}/httpd.conf -k start", root.display()));
        fronts.push(Front { name, port, log: root.join("error.log"), markers: &["AH02454", "AH00957"] });
    }
    let nginx = work.subdir("nginx");
    std::fs::write(nginx.join("nginx.conf"), nginx_config(&nginx, &work.docroot(), 8082)).expect("nginx config");
    sh(&format!("chown www-data {0}; nginx -c {0}/nginx.conf", nginx.display()));
    fronts.push(Front { name: "nginx", port: 8082, log: nginx.join("error.log"), markers: &["connect() to"] });
    std::thread::sleep(Duration::from_millis(500));

    let setups: [(&str, String); 3] = [
        ("Debian as shipped", String::new()),
        ("socket-keeper", format!("{bin} socket-keeper --helper {bin} && systemctl restart {UNIT}")),
        (
            "socket-keeper + drain drop-in",
            format!(
                "{bin} systemd-dropin --helper {bin} && {bin} socket-keeper --helper {bin} && systemctl restart {UNIT}"
            ),
        ),
    ];
    let mut rows = Vec::new();
    for (setup, install) in &setups {
        if !install.is_empty() {
            eprintln!("{}", sh(install));
        }
        std::thread::sleep(Duration::from_secs(1));
        for (event, script) in events() {
            let before: Vec<usize> = fronts.iter().map(Front::failed_connects).collect();
            let records = container.in_network(|| {
                let epoch = Instant::now();
                let spec = |port: u16, path: &str, clients| LoadSpec {
                    target: SocketAddr::from(([127, 0, 0, 1], port)),
                    path: path.into(),
                    clients,
                    duration: Duration::ZERO,
                    // Longer than any event: a request waiting on a queued connect is not cut
                    // by the client.
                    timeout: Duration::from_secs(30),
                };
                let loads: Vec<(RunningLoad, RunningLoad)> = fronts
                    .iter()
                    .map(|f| {
                        (
                            RunningLoad::start(&spec(f.port, "/sleep.php?ms=20", 8), epoch),
                            RunningLoad::start_posts(&spec(f.port, "/slow-echo.php", 2), epoch, 64 * 1024),
                        )
                    })
                    .collect();
                std::thread::sleep(Duration::from_secs(1));
                let ran = container.sh(&script);
                eprintln!("{setup} / {event}: {}", ran.status);
                std::thread::sleep(Duration::from_secs(2));
                loads
                    .into_iter()
                    .map(|(g, p)| (g.stop_after(Duration::ZERO), p.stop_after(Duration::ZERO)))
                    .collect::<Vec<(Vec<Record>, Vec<Record>)>>()
            });
            let cells = fronts
                .iter()
                .zip(records)
                .zip(before)
                .map(|((f, (gets, posts)), b)| {
                    (f.failed_connects() - b, failed_count(&gets), gets.len(), failed_count(&posts), posts.len())
                })
                .collect();
            // Every run starts from a serving PHP-FPM.
            container.sh(&format!(
                "systemctl reset-failed {UNIT}; systemctl is-active --quiet {UNIT} || systemctl start {UNIT}"
            ));
            rows.push(Row { setup, event, cells });
        }
    }
    let mut table = format!(
        "Failed connects / failed requests (GETs of a 20 ms page + 64 KiB POSTs; 8 + 2 clients per front end, all three \
         at once; pool of {WORKERS} static workers; the event 1 s into the run, 2 s after it); under systemd 252 in \
         systemd-nspawn, php8.2-fpm, Apache 2.4 event.\n\n| PHP-FPM | event |"
    );
    for f in &fronts {
        table += &format!(" {} |", f.name);
    }
    table += "\n|---|---|";
    table += &"---|".repeat(fronts.len());
    table += "\n";
    for row in &rows {
        table += &format!("| {} | {} |", row.setup, row.event);
        for (connects, failed_gets, gets, failed_posts, posts) in &row.cells {
            table += &format!(
                " {connects} / {} (GET {failed_gets} of {gets}, POST {failed_posts} of {posts}) |",
                failed_gets + failed_posts
            );
        }
        table += "\n";
    }
    println!("{table}");
    let _ = std::fs::create_dir_all(&out);
    let file = out.join("socket-keeper.md");
    match std::fs::write(&file, &table) {
        Ok(()) => eprintln!("written: {}", file.display()),
        Err(e) => eprintln!("{}: {e}", file.display()),
    }
}
