//! The error line of a request that gave up waiting, in the admin's terms: why, for which
//! backend, after how many attempts and probes, and which limit or cap ended it. Plain Rust,
//! written once for both ways of waiting (`ffi/ending.rs` logs it).

use crate::duration::format_duration;
use crate::retry::GiveUpReason;
use crate::settings::Policy;
use crate::waiting_cap::{Cap, Refusal};
use nix::errno::Errno;
use std::time::Duration;

pub fn give_up_message(
    reason: GiveUpReason,
    address: &str,
    (attempts, probes): (u32, u32),
    (waited, budget): (Duration, Duration),
    last_errno: Option<Errno>,
    policy: &Policy,
) -> String {
    let last_error = last_errno.map(|e| format!("{} (errno {})", e.desc(), e as i32)).unwrap_or_else(|| "none".into());
    let shared = if budget < policy.budget {
        format!(
            ", of which earlier waits of the same request (its ErrorDocument, redirect or subrequest) left {} ms",
            budget.as_millis()
        )
    } else {
        String::new()
    };
    match reason {
        GiveUpReason::BudgetSpent => format!(
            "gave up on backend {address} after {attempts} attempt{} and {probes} probe{} over {:.2}s \
             (FcgiResilientTimeout {}{shared}); last error: {last_error}",
            if attempts == 1 { "" } else { "s" },
            if probes == 1 { "" } else { "s" },
            waited.as_secs_f64(),
            format_duration(policy.budget)
        ),
        GiveUpReason::BackendUnusable => format!(
            "backend {address} cannot be reached and waiting will not help: {last_error}; \
             check the socket path and its permissions"
        ),
        GiveUpReason::TooManyWaiting(refusal) => {
            format!("backend {address} is not accepting and {}; answering 503 at once", describe_refusal(refusal))
        }
        GiveUpReason::ClientGone
        | GiveUpReason::FailOver
        | GiveUpReason::StillRefusing
        | GiveUpReason::WaitsSuspended => {
            format!("stopped waiting for backend {address}")
        }
    }
}

/// Which cap refused a request, with the count it refused at, in the admin's terms.
fn describe_refusal(Refusal { cap, waiting, limit }: Refusal) -> String {
    match cap {
        Cap::ServerWide => format!(
            "{waiting} requests already wait for a backend server-wide, the most FcgiResilientMaxWaiting {limit} allows"
        ),
        Cap::ThisChild => format!(
            "{waiting} requests of this child already wait, the most FcgiResilientMaxWaiting {limit} allows \
             (counted per child: the shared table could not be made)"
        ),
        Cap::BackendShare => format!(
            "it already has {waiting} of the {limit} waiting places (FcgiResilientMaxWaiting) while the room is \
             three quarters full; the rest is kept for other backends"
        ),
        Cap::ChildThreads => format!(
            "{waiting} requests of this child process already wait, the most its threads allow ({limit}, three \
             quarters of ThreadsPerChild, so that it keeps serving)"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::settings::SectionSettings;

    fn policy() -> Policy {
        SectionSettings::default().resolve(300)
    }

    #[test]
    fn a_spent_budget_names_the_counts_the_directive_and_the_last_error() {
        let budget = policy().budget;
        let line = give_up_message(
            GiveUpReason::BudgetSpent,
            "unix:/run/php/www.sock",
            (1, 4),
            (budget, budget),
            Some(Errno::ECONNREFUSED),
            &policy(),
        );
        assert!(
            line.starts_with("gave up on backend unix:/run/php/www.sock after 1 attempt and 4 probes over"),
            "{line}"
        );
        assert!(line.contains("(FcgiResilientTimeout "), "{line}");
        assert!(line.ends_with("last error: Connection refused (errno 111)"), "{line}");
        let shared = give_up_message(GiveUpReason::BudgetSpent, "b", (2, 1), (budget, budget / 2), None, &policy());
        assert!(shared.contains("earlier waits of the same request"), "{shared}");
    }

    #[test]
    fn an_unusable_backend_and_a_full_cap_say_what_to_do() {
        let budget = policy().budget;
        let denied = give_up_message(
            GiveUpReason::BackendUnusable,
            "unix:/s",
            (1, 3),
            (budget, budget),
            Some(Errno::EACCES),
            &policy(),
        );
        assert!(denied.contains("check the socket path and its permissions"), "{denied}");
        let refusal = Refusal { cap: Cap::ServerWide, waiting: 8, limit: 8 };
        let full =
            give_up_message(GiveUpReason::TooManyWaiting(refusal), "b", (1, 0), (budget, budget), None, &policy());
        assert!(full.contains("the most FcgiResilientMaxWaiting 8 allows"), "{full}");
    }
}
