//! How a request body the module read itself is framed for PHP: with a Content-Length, or
//! streamed without one, exactly as mod_proxy_fcgi frames it when nothing waits. Free of
//! Apache, so it is unit-tested here; `ffi/request_body.rs` reads the body and applies it.
//!
//! Why it matters: PHP-FPM reads CONTENT_LENGTH bytes of a body and no more. A body without
//! one (chunked over HTTP/1.1, an HTTP/2 stream without content-length, which mod_http2 hands
//! on as chunked) reaches PHP whole only when mod_proxy_fcgi gives it a Content-Length, and
//! stock mod_proxy_fcgi does that only for a body its non-blocking prefetch read whole, or
//! when `proxy-sendcl` is set (mod_proxy_fcgi.c, proxy_fcgi_handler, httpd 2.4.47 and later).
//! A 2 MB chunked upload reaches PHP empty. A request that waited must meet the same framing:
//! the same request may not get a different answer depending on when PHP-FPM restarted.
//!
//! What mod_proxy_fcgi decides, the first time its handler runs for a request:
//! - a Transfer-Encoding removes any Content-Length;
//! - the prefetch (non-blocking, up to `PREFETCH_LIMIT` bytes) ended with the body's end:
//!   Content-Length is the bytes read (none for a request that announced and sent no body),
//!   Transfer-Encoding goes;
//! - otherwise a Content-Length is kept and the body streams, and a chunked body streams
//!   without one — unless `proxy-sendcl` is set: then the whole body is spooled and gets its
//!   Content-Length.
//!
//! A later run of the handler for the same request finds its prefetch brigade and decides
//! nothing: the headers stay as the first run left them, or as the module sets them.
//!
//! So where mod_proxy_fcgi's handler ran before the module read the body, its decision stands:
//! it was made when the request arrived, exactly as it would have been without a wait (short
//! bodies whose end had not arrived yet included: an HTTP/2 stream's DATA may follow its
//! HEADERS, a client that sent `Expect: 100-continue` sends nothing before it is asked). Where
//! the module reads first, mod_proxy_fcgi will decide nothing, and the module decides as it
//! would have for the request as it arrived: a short body the prefetch reads whole gets its
//! length — unless the client waits for `100 Continue`, which a non-blocking read never sends.

/// mod_proxy_fcgi's MAX_MEM_SPOOL: the most its prefetch reads before the first connect.
pub const PREFETCH_LIMIT: u64 = 16_384;

/// The prefetch stops reading once it holds `PREFETCH_LIMIT` - 80 bytes (ap_proxy_prefetch_input):
/// a body shorter than this is read whole whenever the client had sent it by then; a longer one
/// only when its end came in the same read. Measured with httpd 2.4.71 and curl: a chunked body
/// of 16,303 bytes reaches PHP with its length, one of 16,304 without (HTTP/1.1 and h2c alike).
pub const SURELY_PREFETCHED_BELOW: u64 = PREFETCH_LIMIT - 80;

/// How the client framed its body, read from the request before the module reads any of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Announced {
    pub content_length: bool,
    pub transfer_encoding: bool,
    /// `Expect: 100-continue` not yet answered (r->expecting_100): the client sends its body
    /// only after `100 Continue`, which a non-blocking read never sends (http_filters.c).
    pub expects_continue: bool,
}

/// When the module read the body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadWhen {
    /// mod_proxy_fcgi's handler ran first and its prefetch did not reach the body's end: it has
    /// framed the body already.
    AfterItsPrefetch,
    /// Before mod_proxy_fcgi's handler ran (a request suspended or held by a pause before it,
    /// or FcgiResilientSpoolChunkedBody): it will find a complete brigade and frame nothing.
    BeforeItRan,
}

/// What to do with the request headers once the whole body is held.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// Leave Content-Length and Transfer-Encoding as they are.
    Unchanged,
    /// Keep Transfer-Encoding, remove Content-Length: PHP gets no CONTENT_LENGTH.
    WithoutLength,
    /// Set Content-Length to this, remove Transfer-Encoding.
    Length(u64),
}

/// Whether a request's body is read whole before the first connect: only a body without a
/// Content-Length (it has a Transfer-Encoding), and only where FcgiResilientSpoolChunkedBody
/// is On. A request with a Content-Length costs nothing more than with the directive Off.
pub fn spool_before_connect(spool_chunked_body: bool, announced: Announced) -> bool {
    spool_chunked_body && announced.transfer_encoding
}

/// Whether a body spooled for FcgiResilientSpoolChunkedBody has grown past LimitRequestBody
/// (`limit`, 0 for none): it is answered 413 before the backend is asked. httpd's own input
/// filter does not apply LimitRequestBody to proxied requests, and stock mod_proxy_fcgi streams
/// such a body; a body the module keeps in memory and on disk is bounded by it. Other bodies
/// (a Content-Length, or the directive Off) keep stock's behaviour, waited or not.
pub fn exceeds_limit(spool_chunked_body: bool, announced: Announced, total: u64, limit: u64) -> bool {
    spool_before_connect(spool_chunked_body, announced) && limit > 0 && total > limit
}

/// The framing of a body of `total` bytes the module read whole, `when`; `send_length` is
/// `proxy-sendcl` set for the request, or FcgiResilientSpoolChunkedBody On.
pub fn framing(when: ReadWhen, announced: Announced, total: u64, send_length: bool) -> Framing {
    let prefetch_reads_it = match when {
        // mod_proxy_fcgi framed it when the request arrived: not with a length.
        ReadWhen::AfterItsPrefetch => false,
        ReadWhen::BeforeItRan => !announced.expects_continue && total < SURELY_PREFETCHED_BELOW,
    };
    if prefetch_reads_it || send_length {
        if announced.content_length || announced.transfer_encoding || total > 0 {
            return Framing::Length(total);
        }
        return Framing::Unchanged;
    }
    if announced.transfer_encoding {
        Framing::WithoutLength
    } else {
        // A Content-Length body streams with the client's Content-Length.
        Framing::Unchanged
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ReadWhen::{AfterItsPrefetch, BeforeItRan};

    const CHUNKED: Announced = Announced { content_length: false, transfer_encoding: true, expects_continue: false };
    const WITH_LENGTH: Announced =
        Announced { content_length: true, transfer_encoding: false, expects_continue: false };
    const NO_BODY: Announced = Announced { content_length: false, transfer_encoding: false, expects_continue: false };
    const CHUNKED_AFTER_CONTINUE: Announced = Announced { expects_continue: true, ..CHUNKED };
    const LARGE: u64 = 2_000_000;

    #[test]
    fn after_mod_proxy_fcgi_framed_it_its_framing_stands() {
        // It removed the Content-Length of a chunked body and kept the Transfer-Encoding; a
        // short body whose end it did not see streams without a length, as it would unwaited.
        assert_eq!(framing(AfterItsPrefetch, CHUNKED, LARGE, false), Framing::WithoutLength);
        assert_eq!(framing(AfterItsPrefetch, CHUNKED, 10_000, false), Framing::WithoutLength);
        assert_eq!(framing(AfterItsPrefetch, WITH_LENGTH, LARGE, false), Framing::Unchanged);
        assert_eq!(framing(AfterItsPrefetch, WITH_LENGTH, 100, false), Framing::Unchanged);
    }

    #[test]
    fn a_large_chunked_body_streams_without_a_length_as_stock_sends_it() {
        assert_eq!(framing(BeforeItRan, CHUNKED, LARGE, false), Framing::WithoutLength);
        assert_eq!(
            framing(BeforeItRan, CHUNKED, SURELY_PREFETCHED_BELOW, false),
            Framing::WithoutLength,
            "the prefetch stops 80 bytes short of its limit"
        );
    }

    #[test]
    fn a_chunked_body_the_prefetch_reads_whole_gets_its_length() {
        assert_eq!(framing(BeforeItRan, CHUNKED, 10_000, false), Framing::Length(10_000));
        assert_eq!(framing(BeforeItRan, CHUNKED, 0, false), Framing::Length(0));
        assert_eq!(
            framing(BeforeItRan, CHUNKED, SURELY_PREFETCHED_BELOW - 1, false),
            Framing::Length(SURELY_PREFETCHED_BELOW - 1)
        );
    }

    #[test]
    fn a_client_waiting_for_100_continue_has_sent_nothing_to_prefetch() {
        assert_eq!(framing(BeforeItRan, CHUNKED_AFTER_CONTINUE, 10_000, false), Framing::WithoutLength);
        assert_eq!(framing(BeforeItRan, CHUNKED_AFTER_CONTINUE, 10_000, true), Framing::Length(10_000));
    }

    #[test]
    fn spooling_gives_every_chunked_body_its_length() {
        assert_eq!(framing(BeforeItRan, CHUNKED, LARGE, true), Framing::Length(LARGE));
        assert_eq!(framing(AfterItsPrefetch, CHUNKED, LARGE, true), Framing::Length(LARGE));
    }

    #[test]
    fn a_content_length_body_keeps_its_length() {
        assert_eq!(framing(BeforeItRan, WITH_LENGTH, LARGE, false), Framing::Unchanged);
        assert_eq!(framing(BeforeItRan, WITH_LENGTH, 100, false), Framing::Length(100));
        assert_eq!(framing(BeforeItRan, WITH_LENGTH, 0, false), Framing::Length(0));
    }

    #[test]
    fn no_length_for_a_request_that_announced_and_sent_no_body() {
        assert_eq!(framing(BeforeItRan, NO_BODY, 0, false), Framing::Unchanged);
        assert_eq!(framing(BeforeItRan, NO_BODY, 0, true), Framing::Unchanged);
    }

    #[test]
    fn limit_request_body_bounds_spooled_chunked_bodies_only() {
        assert!(exceeds_limit(true, CHUNKED, 1_000_001, 1_000_000));
        assert!(!exceeds_limit(true, CHUNKED, 1_000_000, 1_000_000));
        assert!(!exceeds_limit(true, CHUNKED, LARGE, 0), "LimitRequestBody 0: no limit");
        assert!(!exceeds_limit(false, CHUNKED, LARGE, 1_000_000), "stock streams it");
        assert!(!exceeds_limit(true, WITH_LENGTH, LARGE, 1_000_000), "stock streams it");
    }

    #[test]
    fn only_chunked_bodies_are_spooled_before_the_first_connect_and_only_when_asked() {
        assert!(spool_before_connect(true, CHUNKED));
        assert!(!spool_before_connect(false, CHUNKED));
        assert!(!spool_before_connect(true, WITH_LENGTH));
        assert!(!spool_before_connect(true, NO_BODY));
        let both = Announced { content_length: true, ..CHUNKED };
        assert!(spool_before_connect(true, both), "Transfer-Encoding wins, as in mod_proxy_fcgi");
    }
}
