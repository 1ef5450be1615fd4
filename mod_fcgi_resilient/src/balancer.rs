//! When a balancer member refuses: fail over at once, or wait for the backend?
//!
//! Stock mod_proxy answers a member's 503 by putting it in error state and handing the
//! request to the next usable member (mod_proxy.c, proxy_handler's loop). That is faster than
//! any wait, so the module waits only where fail-over cannot serve: no other member accepts.
//! Then it does what mod_proxy_balancer's own `forcerecovery` does when every member is in
//! error — treat the error state as stale — but only for a member it has just seen accept,
//! and never for states an admin or a health check set (disabled, stopped, draining,
//! health-check failed, shutting down), nor when the admin turned `forcerecovery` off. While
//! it waits, a member that accepts again takes the request over.

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

/// A member mod_proxy can be handed back to: usable, or kept out only by the error state a
/// refused connect (or mod_proxy_balancer's failonstatus) sets, which `forcerecovery` would
/// clear as well once every member is in error.
pub fn may_take_over(status: u32) -> bool {
    is_usable(status) || (status & INITIALIZED != 0 && status & IN_ERROR != 0 && may_recover(status))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnRefusal {
    /// Return the 503: mod_proxy puts this member in error and hands the request to another.
    FailOver,
    /// No member can serve: wait for this one.
    Wait,
}

/// The first of `others` (statuses of the other members) that may take the request over and
/// whose backend `accepts` now. Only a member seen accepting counts: a usable-looking member
/// may be one `forcerecovery` has just cleared, and bouncing the request to it would spend
/// mod_proxy's few fail-over attempts (`maxattempts`, by default members - 1) for nothing.
pub fn fail_over_target(others: &[u32], mut accepts: impl FnMut(usize) -> bool) -> Option<usize> {
    (0..others.len()).filter(|&index| may_take_over(others[index])).find(|&index| accepts(index))
}

/// What a refusing balancer member does: `target` is `fail_over_target`'s answer.
pub fn on_refusal(member: u32, target: Option<usize>, force_recovery: bool) -> OnRefusal {
    if target.is_some() || !force_recovery || !may_recover(member) {
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
    fn fails_over_to_a_member_that_accepts() {
        assert_eq!(fail_over_target(&[HEALTHY], |_| true), Some(0));
        assert_eq!(fail_over_target(&[REFUSED, HEALTHY], |_| true), Some(0), "in error only: may take over");
        assert_eq!(on_refusal(REFUSED, Some(0), true), OnRefusal::FailOver);
    }

    #[test]
    fn a_member_that_refuses_too_is_no_target() {
        assert_eq!(fail_over_target(&[HEALTHY, REFUSED], |index| index == 1), Some(1));
        assert_eq!(fail_over_target(&[HEALTHY], |_| false), None);
        assert_eq!(on_refusal(REFUSED, None, true), OnRefusal::Wait);
    }

    #[test]
    fn members_out_on_purpose_never_take_over() {
        let mut probed = Vec::new();
        let others = [INITIALIZED | DISABLED, INITIALIZED | IN_ERROR | HC_FAIL, INITIALIZED | STOPPED, 0];
        let target = fail_over_target(&others, |index| {
            probed.push(index);
            true
        });
        assert_eq!(target, None);
        assert!(probed.is_empty(), "not even probed: {probed:?}");
    }

    #[test]
    fn respects_states_set_on_purpose_and_forcerecovery_off() {
        assert_eq!(on_refusal(REFUSED | HC_FAIL, None, true), OnRefusal::FailOver);
        assert_eq!(on_refusal(INITIALIZED | DISABLED, None, true), OnRefusal::FailOver);
        assert_eq!(on_refusal(REFUSED, None, false), OnRefusal::FailOver);
        assert_eq!(on_refusal(REFUSED, None, true), OnRefusal::Wait, "a balancer of one member");
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
