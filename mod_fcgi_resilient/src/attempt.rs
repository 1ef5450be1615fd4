//! Deciding, after one call of mod_proxy_fcgi's handler, whether it may be called again.
//!
//! The evidence is request state the module reads itself, whatever the admin's LogLevel or
//! ErrorLogFormat (httpd drops a filtered line before any hook sees it, so log lines are no
//! evidence at all). mod_proxy_fcgi builds the CGI environment — `GATEWAY_INTERFACE` lands in
//! `r->subprocess_env` — after connecting and after BEGIN_REQUEST, and before it writes the
//! first PARAMS byte; PHP-FPM starts a script only after the empty PARAMS record that ends
//! them, and the body is sent after that. So a 503 with no environment built and nothing sent
//! to the client means the request cannot have reached PHP: the connect failed, the worker
//! refused, or BEGIN_REQUEST could not be written. The module clears `GATEWAY_INTERFACE`
//! before every call so the test speaks of that call alone. Once the environment is built the
//! request counts as delivered, even when writing PARAMS failed: the module cannot tell which
//! write failed, and repeating a request that may have run is the one thing it must not do.
//! A `ProxyFCGISetEnvIf` expression that fails to evaluate also fails after the environment
//! is built, so a configuration error is answered at once, with one attempt.

use crate::retry::Attempt;

const HANDLER_OK: i32 = 0;
const BAD_GATEWAY: i32 = 502;
const SERVICE_UNAVAILABLE: i32 = 503;

/// What one call of mod_proxy_fcgi's handler left behind in the request.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AttemptEvidence {
    /// The handler's return value.
    pub status: i32,
    /// A byte of the response went to the client, or the client connection broke.
    pub response_started: bool,
    /// The backend's response headers were parsed into the request (status, headers,
    /// cookies): the script ran, and a repeat would answer with the first run's headers too.
    pub response_headers_parsed: bool,
    /// The CGI environment was built for this call: PARAMS may have reached PHP.
    pub environment_built: bool,
    /// GET, HEAD or OPTIONS without a request body.
    pub safe_without_body: bool,
}

impl AttemptEvidence {
    /// True when PHP cannot have started the script: repeating the call is always safe.
    pub fn never_reached_backend(&self) -> bool {
        self.status == SERVICE_UNAVAILABLE && !self.environment_built && !self.response_started
    }

    /// The request reached the backend, which dropped it before any answer reached the
    /// client: PHP-FPM's stop cutting what it runs and what waits in its listen queue. The
    /// status page counts these, so an admin sees what is still lost and why.
    pub fn cut_by_backend(&self) -> bool {
        self.environment_built
            && !self.response_started
            && (self.status == SERVICE_UNAVAILABLE || self.status == BAD_GATEWAY)
    }
}

/// How a handler call ended, for the retry loop.
pub fn classify(evidence: &AttemptEvidence) -> Attempt {
    let status = evidence.status;
    if status == HANDLER_OK || evidence.response_started || evidence.response_headers_parsed {
        Attempt::Finished(status)
    } else if evidence.never_reached_backend() {
        Attempt::NotConnected(status)
    } else if evidence.safe_without_body && (status == SERVICE_UNAVAILABLE || status == BAD_GATEWAY) {
        Attempt::DroppedBeforeResponse(status)
    } else {
        Attempt::Finished(status)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused() -> AttemptEvidence {
        AttemptEvidence { status: 503, ..Default::default() }
    }

    #[test]
    fn a_refused_connect_is_retryable_unless_the_response_started() {
        assert_eq!(classify(&refused()), Attempt::NotConnected(503));
        let started = AttemptEvidence { response_started: true, ..refused() };
        assert_eq!(classify(&started), Attempt::Finished(503));
    }

    #[test]
    fn a_503_after_the_environment_was_built_is_final_for_requests_with_a_body() {
        let delivered = AttemptEvidence { environment_built: true, ..refused() };
        assert_eq!(classify(&delivered), Attempt::Finished(503));
        let safe = AttemptEvidence { safe_without_body: true, ..delivered };
        assert_eq!(classify(&safe), Attempt::DroppedBeforeResponse(503));
        let timeout = AttemptEvidence { status: 504, ..safe };
        assert_eq!(classify(&timeout), Attempt::Finished(504));
    }

    #[test]
    fn a_request_whose_response_headers_were_parsed_is_never_repeated() {
        let evidence = AttemptEvidence {
            environment_built: true,
            response_headers_parsed: true,
            safe_without_body: true,
            ..refused()
        };
        assert_eq!(classify(&evidence), Attempt::Finished(503));
    }

    #[test]
    fn other_statuses_without_an_environment_are_final() {
        // A failed DNS lookup (500/502) or a bad request body (400) is no restart symptom.
        for status in [400, 500, 502] {
            let evidence = AttemptEvidence { status, ..Default::default() };
            assert_eq!(classify(&evidence), Attempt::Finished(status));
        }
    }

    #[test]
    fn a_drop_after_the_request_reached_the_backend_counts_as_cut() {
        assert!(!refused().cut_by_backend(), "a refused connect is not a cut");
        let dropped = AttemptEvidence { environment_built: true, ..refused() };
        assert!(dropped.cut_by_backend());
        assert!(!AttemptEvidence { response_started: true, ..dropped }.cut_by_backend());
        assert!(!AttemptEvidence { status: 504, ..dropped }.cut_by_backend(), "a timeout is no cut");
        assert!(!AttemptEvidence { status: 0, ..dropped }.cut_by_backend());
    }

    #[test]
    fn success_is_final() {
        let evidence = AttemptEvidence { status: 0, environment_built: true, ..Default::default() };
        assert_eq!(classify(&evidence), Attempt::Finished(0));
    }
}
