//! When a balancer member refuses: fail over at once, or wait for the backend?
//!
//! Stock mod_proxy answers a member's 503 by putting it in error state and handing the
//! request to the next usable member (mod_proxy.c, proxy_handler's loop). That is faster than
//! any wait, so the module waits only where fail-over cannot serve: no other member usable.
//! Then it does what mod_proxy_balancer's own `forcerecovery` does when every member is in
//! error — treat the error state as stale — but only for the member it has just seen accept,
//! and never for states an admin or a health check set (disabled, stopped, draining,
//! health-check failed, shutting down), nor when the admin turned `forcerecovery` off.

/// The bits of `proxy_worker_shared.status` this decision reads (mod_proxy.h).
pub mod status_bits {
    pub const INITIALIZED: u32 = 0x0001;
    pub const IGNORE_ERRORS: u32 = 0x0002;
    pub const DRAIN: u32 = 0x0004;
    pub const IN_SHUTDOWN: u32 = 0x0010;
    pub const DISABLED: u32 = 0x0020;
    pub const STOPPED: u32 = 0x0040;
    pub const IN_ERROR: u32 = 0x0080;
    pub const HC_FAIL: u32 = 0x0400;
    /// PROXY_WORKER_NOT_USABLE_BITMAP.
    pub const NOT_USABLE: u32 = IN_SHUTDOWN | DISABLED | STOPPED | IN_ERROR | HC_FAIL;
    /// Set on purpose by an admin (balancer-manager, `status=`) or a health check.
    pub const OUT_ON_PURPOSE: u32 = IN_SHUTDOWN | DISABLED | STOPPED | HC_FAIL | DRAIN;
}

use status_bits::*;

/// A worker outside a balancer ignores errors and is never put in error state.
pub fn is_balancer_member(status: u32) -> bool {
    status & IGNORE_ERRORS == 0
}

/// mod_proxy.h's PROXY_WORKER_IS_USABLE.
pub fn is_usable(status: u32) -> bool {
    status & NOT_USABLE == 0 && status & INITIALIZED != 0
}

/// The member's error state is one a refused connect sets, and nothing else keeps it out.
pub fn may_recover(status: u32) -> bool {
    status & OUT_ON_PURPOSE == 0
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnRefusal {
    /// Return the 503: mod_proxy puts the member in error and tries the next one.
    FailOver,
    /// No member can serve: wait for this one.
    Wait,
}

/// `member` is the refusing member's status, `others` the other members' statuses.
pub fn on_refusal(member: u32, others: impl IntoIterator<Item = u32>, force_recovery: bool) -> OnRefusal {
    let another_can_serve = others.into_iter().any(is_usable);
    if another_can_serve || !force_recovery || !may_recover(member) {
        OnRefusal::FailOver
    } else {
        OnRefusal::Wait
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEALTHY: u32 = INITIALIZED;
    const REFUSED: u32 = INITIALIZED | IN_ERROR;

    #[test]
    fn fails_over_while_another_member_is_usable() {
        assert_eq!(on_refusal(REFUSED, [HEALTHY], true), OnRefusal::FailOver);
        assert_eq!(on_refusal(REFUSED, [REFUSED, HEALTHY], true), OnRefusal::FailOver);
    }

    #[test]
    fn waits_when_no_member_can_serve() {
        assert_eq!(on_refusal(REFUSED, [REFUSED], true), OnRefusal::Wait);
        assert_eq!(on_refusal(REFUSED, [], true), OnRefusal::Wait, "a balancer of one member");
        assert_eq!(on_refusal(REFUSED, [INITIALIZED | DISABLED], true), OnRefusal::Wait);
    }

    #[test]
    fn respects_states_set_on_purpose_and_forcerecovery_off() {
        assert_eq!(on_refusal(REFUSED | HC_FAIL, [REFUSED], true), OnRefusal::FailOver);
        assert_eq!(on_refusal(INITIALIZED | DISABLED, [], true), OnRefusal::FailOver);
        assert_eq!(on_refusal(REFUSED, [REFUSED], false), OnRefusal::FailOver);
    }

    #[test]
    fn members_and_plain_workers() {
        assert!(is_balancer_member(REFUSED));
        assert!(!is_balancer_member(INITIALIZED | IGNORE_ERRORS));
        assert!(!is_usable(REFUSED));
        assert!(!is_usable(0), "not initialised yet");
        assert!(is_usable(HEALTHY));
    }
}
