//! Which httpd the module runs in, decided once per configuration (pre_config) from three
//! facts `ffi::compat` asks httpd for: the running httpd's version (`ap_get_server_revision`),
//! the version of the headers the module was built against (`ap_release.h`, through the
//! bindings) and the MPM's name (`ap_show_mpm`).
//!
//! **Refused** (httpd does not start, `apachectl configtest` fails, the message names the
//! three versions):
//! - an httpd other than 2.4, or of another major.minor than the headers: another module
//!   magic number major, which httpd itself refuses at LoadModule before this code runs;
//! - older than [`MINIMUM`], 2.4.53: the module reads `proxy_worker_shared.name_ex` (a
//!   worker's full URL), added by MMN 20120211.124 in 2.4.53 — ap_mmn.h labels that bump
//!   "2.4.51-dev", but the 2.4.51 and 2.4.52 releases do not have the field — and registers
//!   the `child_stopping` hook, added by MMN 20120211.110 in 2.4.49;
//! - older than the headers: within 2.4 httpd's structures only grow at their end, so a module
//!   built against newer headers may read fields past the end of an older httpd's structures.
//!   Measured between the 2.4.53 and 2.4.71 headers on the structures the bindings have:
//!   every field keeps its offset; `proxy_worker_shared`, `proxy_worker` and `proxy_conn_rec`
//!   grew at their end. So a newer httpd than the headers is fine, an older one is not.
//!
//! **No suspension** (the module runs; a waiting request holds its worker thread, as under
//! prefork and worker): any MPM but httpd's own event MPM, and an event MPM newer than
//! [`NEWEST_CHECKED`]. Suspending a request relies on how server/mpm/event/event.c treats a
//! connection left in CONN_STATE_SUSPENDED — internals, not API, which changed within 2.4
//! (2.4.63, see below, in a merge whose CHANGES entry names mod_http2) — so only the versions
//! whose event.c was read are trusted with it:
//!
//! - read in the source (github.com/apache/httpd): the 2.4.51 to 2.4.62 tags (event.c
//!   identical from 2.4.54 to 2.4.61; 2.4.62 changes pollset creation only) and the 2.4.x
//!   branch at 2.4.63-dev (2024-10-18, after the 2.4.63 CONN_STATE_ASYNC_WAITIO rework);
//! - 2.4.71 (Debian 12's): its mod_mpm_event.so is, instruction for instruction, the 2.4.x
//!   branch's event.c of 2024-10-18 compiled against the 2.4.71 headers (same .text size, same
//!   code once addresses are set aside, same strings but the file name), and the scoreboard
//!   and fdqueue functions of its apache2 binary match server/scoreboard.c and
//!   server/mpm_fdqueue.c of that branch. So event.c did not change from 2.4.63 to 2.4.71
//!   (nor do those releases' CHANGES name an event MPM change).
//!
//! What holds in all of them: a connection left SUSPENDED reaches `notify_suspend`, which
//! runs the suspend_connection hooks with `c->cs->state == CONN_STATE_SUSPENDED`, then writes
//! only `c->sbh = NULL` and `cs->suspended = 1`, and process_socket returns; the worker then
//! clears `worker_sockets[slot]` and never touches the connection again; the connection is in
//! no timeout queue, pollset or chain of the MPM; its pool is cleared or destroyed only by
//! the MPM's close paths (`ap_queue_info_push_pool`), and `decrement_connection_count`, a
//! cleanup of that pool, handles CONN_STATE_SUSPENDED. The lingering-close paths run the
//! same hooks with a LINGER state. One difference: up to 2.4.62 process_socket looks at
//! `c->aborted` only before the process_connection hooks run, so a request suspended after
//! its client went away still reaches the hooks as SUSPENDED (and the MPM leaves it to the
//! module); from 2.4.63 an aborted connection is turned into a lingering close instead, and
//! the hooks see CONN_STATE_LINGER.

use std::fmt;

/// A httpd release number, as `ap_get_server_revision` and `ap_release.h` give it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Version {
    pub major: u32,
    pub minor: u32,
    pub patch: u32,
}

impl Version {
    pub const fn new(major: u32, minor: u32, patch: u32) -> Version {
        Version { major, minor, patch }
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.patch)
    }
}

/// The oldest httpd the module runs in: `proxy_worker_shared.name_ex` is 2.4.53's.
pub const MINIMUM: Version = Version::new(2, 4, 53);
/// The newest httpd whose event MPM was checked for suspending requests.
pub const NEWEST_CHECKED: Version = Version::new(2, 4, 71);

/// What the module does in a given httpd.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Must not run: pre_config fails with this message, so httpd does not start.
    Refuse(String),
    /// Runs, but never suspends a request. The message, when there is one, says why (the MPM
    /// could suspend but is not one the module was checked against): logged at NOTICE.
    NoSuspension(Option<String>),
    /// Runs, and suspends requests: the event MPM of a checked version.
    Ok,
}

/// MPMs that cannot suspend a request at all: nothing to say about them.
const THREAD_PER_REQUEST_MPMS: [&str; 2] = ["prefork", "worker"];

pub fn decide(running: Version, headers: Version, mpm: &str) -> Verdict {
    let refuse = |why: String, advice: &str| {
        Verdict::Refuse(format!(
            "mod_fcgi_resilient cannot run in this httpd (httpd {running}; the module was built against the \
             headers of httpd {headers} and needs httpd {MINIMUM} or later, no older than those headers): \
             {why}. {advice}"
        ))
    };
    let rebuild = "Rebuild the module against this httpd's headers (apache2-dev, httpd-devel), \
                   or remove it (Debian: a2dismod fcgi_resilient)";
    if (running.major, running.minor) != (MINIMUM.major, MINIMUM.minor) {
        return refuse("it supports httpd 2.4 only".to_string(), "Remove it (Debian: a2dismod fcgi_resilient)");
    }
    if (headers.major, headers.minor) != (running.major, running.minor) {
        return refuse(format!("it was built for httpd {}.{}", headers.major, headers.minor), rebuild);
    }
    if running < MINIMUM {
        return refuse(
            format!(
                "httpd {running} lacks proxy_worker_shared.name_ex (added in 2.4.53), which the module \
                 reads{}",
                if running < Version::new(2, 4, 49) { ", and the child_stopping hook (2.4.49)" } else { "" }
            ),
            "Upgrade httpd, or remove the module (Debian: a2dismod fcgi_resilient)",
        );
    }
    if headers < MINIMUM {
        return refuse(format!("the headers of httpd {headers} lack proxy_worker_shared.name_ex"), rebuild);
    }
    if running < headers {
        return refuse(
            format!(
                "httpd {running} is older than the headers, and httpd's structures grow from one 2.4 \
                 release to the next: the module would read past the end of this httpd's structures"
            ),
            rebuild,
        );
    }
    if THREAD_PER_REQUEST_MPMS.contains(&mpm) {
        return Verdict::NoSuspension(None);
    }
    if mpm != "event" {
        return Verdict::NoSuspension(Some(format!(
            "mod_fcgi_resilient: the {mpm:?} MPM is not httpd's event MPM, whose handling of suspended \
             connections the module was checked against: waiting requests hold their worker thread"
        )));
    }
    if running > NEWEST_CHECKED {
        return Verdict::NoSuspension(Some(format!(
            "mod_fcgi_resilient: the event MPM of httpd {running} is newer than the newest one checked for \
             suspending waiting requests ({NEWEST_CHECKED}): waiting requests hold their worker thread \
             instead (everything else works as usual); a release of the module that has checked \
             {running} suspends them again"
        )));
    }
    Verdict::Ok
}

#[cfg(test)]
mod tests {
    use super::*;

    const fn v(patch: u32) -> Version {
        Version::new(2, 4, patch)
    }

    fn refusal(running: Version, headers: Version) -> String {
        match decide(running, headers, "event") {
            Verdict::Refuse(message) => message,
            other => panic!("{running} with {headers} headers: {other:?}, not a refusal"),
        }
    }

    #[test]
    fn versions_compare_by_number_not_text() {
        assert!(v(9) < v(10));
        assert!(v(53) < v(100));
        assert!(Version::new(2, 4, 99) < Version::new(2, 5, 0));
        assert_eq!(v(53).to_string(), "2.4.53");
    }

    #[test]
    fn the_decision_table() {
        let refused = |running, headers, mpm| matches!(decide(running, headers, mpm), Verdict::Refuse(_));
        // (running, headers, mpm, expected) — `None` means refused.
        let table: &[(Version, Version, &str, Option<Verdict>)] = &[
            // Too old for the module: 2.4.41 (Ubuntu 20.04), 2.4.49-2.4.50 (child_stopping but no
            // name_ex), 2.4.51-2.4.52 (labelled 2.4.51-dev in ap_mmn.h, still no name_ex).
            (v(41), v(71), "event", None),
            (v(49), v(71), "event", None),
            (v(52), v(53), "event", None),
            (v(52), v(52), "event", None),
            // Older than the headers, even if supported itself.
            (v(62), v(71), "event", None),
            (v(70), v(71), "prefork", None),
            // Not 2.4.
            (Version::new(2, 2, 34), v(71), "event", None),
            (Version::new(2, 6, 0), Version::new(2, 6, 0), "event", None),
            (Version::new(3, 0, 0), v(71), "event", None),
            // Supported, event MPM checked: suspension.
            (v(53), v(53), "event", Some(Verdict::Ok)),
            (v(62), v(53), "event", Some(Verdict::Ok)),
            (v(63), v(62), "event", Some(Verdict::Ok)),
            (v(71), v(71), "event", Some(Verdict::Ok)),
            // Supported, MPMs that hold a thread per request anyway: nothing to say.
            (v(71), v(71), "prefork", Some(Verdict::NoSuspension(None))),
            (v(58), v(53), "worker", Some(Verdict::NoSuspension(None))),
        ];
        for (running, headers, mpm, expected) in table {
            match expected {
                None => assert!(refused(*running, *headers, mpm), "{running} with {headers} headers ({mpm}) runs"),
                Some(verdict) => assert_eq!(&decide(*running, *headers, mpm), verdict, "{running}, {headers}, {mpm}"),
            }
        }
    }

    #[test]
    fn an_event_mpm_newer_than_the_newest_checked_does_not_suspend_and_says_why() {
        for running in [v(72), v(99), v(100)] {
            let Verdict::NoSuspension(Some(message)) = decide(running, v(71), "event") else {
                panic!("{running}: {:?}", decide(running, v(71), "event"));
            };
            assert!(message.contains(&running.to_string()), "{message}");
            assert!(message.contains("2.4.71"), "the newest checked: {message}");
            assert!(message.contains("hold their worker thread"), "{message}");
        }
    }

    #[test]
    fn another_mpm_that_might_suspend_is_not_trusted_with_it() {
        let Verdict::NoSuspension(Some(message)) = decide(v(71), v(71), "motorz") else { panic!("motorz suspends") };
        assert!(message.contains("\"motorz\"") && message.contains("event MPM"), "{message}");
    }

    #[test]
    fn every_refusal_names_the_running_version_the_headers_and_the_minimum() {
        for (running, headers) in [(v(41), v(71)), (v(51), v(71)), (v(62), v(71)), (Version::new(2, 6, 1), v(71))] {
            let message = refusal(running, headers);
            for version in [running.to_string(), headers.to_string(), "2.4.53".to_string()] {
                assert!(message.contains(&version), "{version} missing: {message}");
            }
        }
    }

    #[test]
    fn refusals_say_what_is_missing_and_what_to_do() {
        let too_old = refusal(v(41), v(71));
        assert!(too_old.contains("name_ex") && too_old.contains("child_stopping"), "{too_old}");
        assert!(too_old.contains("Upgrade httpd"), "{too_old}");
        let name_ex_only = refusal(v(52), v(71));
        assert!(name_ex_only.contains("name_ex") && !name_ex_only.contains("child_stopping"), "{name_ex_only}");
        let older_than_headers = refusal(v(62), v(71));
        assert!(older_than_headers.contains("older than the headers"), "{older_than_headers}");
        assert!(older_than_headers.contains("Rebuild the module against this httpd's headers"), "{older_than_headers}");
    }
}
