//! `prepare`: socket directories for every pool, before PHP-FPM starts.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use clap::Args;

use crate::fpm_config::{self, Listen, Pool};
use crate::options::FpmConfigs;
use crate::safe_dir::{self, Wanted};
use crate::users;

#[derive(Args, Debug, Clone, PartialEq)]
pub struct PrepareArgs {
    #[command(flatten)]
    pub fpm: FpmConfigs,
    /// Create the directories below DIR instead of / (for tests, chroots, images)
    #[arg(long, value_name = "DIR", default_value = "/")]
    pub root: PathBuf,
    /// Octal mode of the socket directories (world-writable refused)
    #[arg(long, value_name = "MODE", default_value = "0755", value_parser = safe_dir::parse_mode)]
    pub mode: u32,
    /// Print what would be done, change nothing
    #[arg(long, short = 'n')]
    pub dry_run: bool,
}

struct Claim {
    pool: String,
    loc: String,
    uid: u32,
    gid: u32,
}

fn owner_of(pool: &Pool) -> Result<(u32, u32), String> {
    let (uid, primary) = match pool.socket_owner() {
        Some(s) => {
            let u = users::user(&s.value)
                .map_err(|e| format!("{}: {e} (pool [{}]; create it or fix listen.owner/user)", s.loc(), pool.name))?;
            (u.uid.as_raw(), u.gid.as_raw())
        }
        // FPM itself refuses a pool without `user` when started as root, so this
        // only happens for non-root masters; root:root is the conservative choice.
        None => (0, 0),
    };
    let gid = match pool.socket_group() {
        Some(s) => users::group(&s.value)
            .map_err(|e| format!("{}: {e} (pool [{}]; create it or fix listen.group/group)", s.loc(), pool.name))?
            .gid
            .as_raw(),
        None => primary,
    };
    Ok((uid, gid))
}

pub fn run(o: &PrepareArgs) -> i32 {
    let configs = match fpm_config::load_all(&o.fpm.files, &o.fpm.load_options()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("fcgi-resilient-helper: {e}");
            eprintln!("fcgi-resilient-helper: nothing was changed");
            return 1;
        }
    };
    let mut errors = Vec::new();
    let mut dirs: BTreeMap<PathBuf, Vec<Claim>> = BTreeMap::new();
    for cfg in &configs {
        for w in &cfg.warnings {
            eprintln!("fcgi-resilient-helper: warning: {w}");
        }
        if cfg.pools.is_empty() {
            eprintln!("fcgi-resilient-helper: warning: {}: no pools defined", cfg.main.display());
        }
        for pool in &cfg.pools {
            let Some((listen, setting)) = pool.listen() else {
                errors.push(format!("{}: pool [{}] has no `listen` setting", pool.loc(), pool.name));
                continue;
            };
            match listen {
                Err(e) => errors.push(format!("{}: {e}", setting.loc())),
                Ok(Listen::Tcp { .. }) => {
                    println!("pool [{}]: listens on TCP {}: no directory needed", pool.name, setting.value)
                }
                Ok(Listen::Unix(path)) => {
                    let dir = match path.parent() {
                        Some(d) if path.is_absolute() && d != Path::new("/") => d.to_path_buf(),
                        _ => {
                            errors.push(format!(
                                "{}: listen = {}: only absolute socket paths inside a directory are handled",
                                setting.loc(),
                                path.display()
                            ));
                            continue;
                        }
                    };
                    match owner_of(pool) {
                        Ok((uid, gid)) => dirs.entry(dir).or_default().push(Claim {
                            pool: pool.name.clone(),
                            loc: setting.loc(),
                            uid,
                            gid,
                        }),
                        Err(e) => errors.push(e),
                    }
                }
            }
        }
    }
    if !errors.is_empty() {
        for e in &errors {
            eprintln!("fcgi-resilient-helper: {e}");
        }
        eprintln!("fcgi-resilient-helper: nothing was changed");
        return 1;
    }
    let mut rc = 0;
    for (dir, claims) in &dirs {
        let first = &claims[0];
        let agree = claims.iter().all(|c| (c.uid, c.gid) == (first.uid, first.gid));
        let (uid, gid) = if agree {
            (first.uid, first.gid)
        } else {
            // Pools with different users share the directory: nobody gets it, and the
            // root master still creates each socket with its own listen.owner.
            let who: Vec<String> = claims
                .iter()
                .map(|c| format!("[{}] {}:{} ({})", c.pool, users::user_name(c.uid), users::group_name(c.gid), c.loc))
                .collect();
            eprintln!(
                "fcgi-resilient-helper: note: {} is shared by pools with different owners ({}); using root:root",
                dir.display(),
                who.join(", ")
            );
            (0, 0)
        };
        let want = Wanted { path: dir.clone(), uid, gid, mode: o.mode };
        match safe_dir::ensure(&o.root, &want, o.dry_run) {
            Ok(changes) if changes.is_empty() => println!(
                "{}: ok ({}:{} {:04o})",
                o.root.join(dir.strip_prefix("/").unwrap_or(dir)).display(),
                users::user_name(uid),
                users::group_name(gid),
                o.mode
            ),
            Ok(changes) => {
                for c in changes {
                    if o.dry_run {
                        println!("would {c}");
                    } else {
                        println!("{c}");
                    }
                }
            }
            Err(e) => {
                eprintln!("fcgi-resilient-helper: {e}");
                rc = 1;
            }
        }
    }
    rc
}
