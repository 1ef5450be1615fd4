//! `apachectl configtest`: bad values and a missing mod_proxy are named clearly; the
//! position of the module's LoadModule line does not matter.

use harness::apache::{configtest, ApacheConfig, ModulePlacement};
use harness::{Listen, WorkDir};

fn config(work: &WorkDir, directives: &str) -> ApacheConfig {
    let socket = Listen::Unix(work.join("php-fpm.sock"));
    ApacheConfig::new(&work.docroot(), &socket.proxy_handler()).with_server_directives(directives)
}

#[test]
fn every_bad_value_fails_configtest_naming_directive_and_value() {
    let work = WorkDir::new("configtest");
    let cases = [
        ("FcgiResilient maybe", &["FcgiResilient", "maybe"][..]),
        ("FcgiResilientTimeout 10x", &["FcgiResilientTimeout", "10x"]),
        ("FcgiResilientTimeout 0", &["FcgiResilientTimeout", "0"]),
        ("FcgiResilientBackoff 50ms 10ms", &["FcgiResilientBackoff", "50ms", "10ms"]),
        ("FcgiResilientBackoff fast 10ms", &["FcgiResilientBackoff", "fast"]),
        ("FcgiResilientMaxWaiting 0", &["FcgiResilientMaxWaiting", "0"]),
        ("FcgiResilientMaxWaiting lots", &["FcgiResilientMaxWaiting", "lots"]),
        ("FcgiResilientRetryIdempotent yes", &["FcgiResilientRetryIdempotent", "yes"]),
        ("FcgiResilientRetryAfter soon", &["FcgiResilientRetryAfter", "soon"]),
        ("FcgiResilientMaxBodySpool 1T", &["FcgiResilientMaxBodySpool", "1T"]),
        ("FcgiResilientMaxBodySpool 10K", &["FcgiResilientMaxBodySpool", "10K"]),
        ("FcgiResilientSpoolChunkedBody always", &["FcgiResilientSpoolChunkedBody", "always"]),
        ("FcgiResilientPauseDir run/pause", &["FcgiResilientPauseDir", "run/pause"]),
        ("FcgiResilientPauseDir /run/pause no-such-user-here", &["FcgiResilientPauseDir", "no-such-user-here"]),
        (
            "<VirtualHost 127.0.0.1:80>\n    FcgiResilientPauseDir /run/pause\n</VirtualHost>",
            &["FcgiResilientPauseDir", "<VirtualHost>"],
        ),
    ];
    for (line, expected) in cases {
        let (passed, output) = configtest(work.path(), &config(&work, line));
        assert!(!passed, "{line:?} passed configtest:\n{output}");
        assert!(output.contains("Syntax error on line"), "{line:?}: httpd names the line:\n{output}");
        for part in expected {
            assert!(output.contains(part), "{line:?}: {part:?} missing in:\n{output}");
        }
        let message = output.lines().find(|l| l.contains(expected[0]) && !l.contains("Syntax error")).unwrap_or("");
        assert!(message.contains(expected[1]), "{line:?}: the message names the value:\n{output}");
    }
}

#[test]
fn good_values_pass_in_every_context() {
    let work = WorkDir::new("configtest-good");
    let directives = format!(
        "FcgiResilient On\nFcgiResilientTimeout 2500ms\nFcgiResilientBackoff 1ms 300ms\nFcgiResilientMaxWaiting 7\n\
         FcgiResilientRetryIdempotent Off\nFcgiResilientRetryAfter Off\nFcgiResilientPauseDir /run/x/pause www-data\n\
         FcgiResilientMaxBodySpool 256M\n\
         <Directory {docroot}>\n    FcgiResilientTimeout 1mi\n</Directory>\n<Location /x>\n    FcgiResilient Off\n</Location>\n\
         FcgiResilientSpoolChunkedBody Off\n<Location /uploads>\n    FcgiResilientSpoolChunkedBody On\n</Location>\n",
        docroot = work.docroot().display()
    );
    let (passed, output) = configtest(work.path(), &config(&work, &directives));
    assert!(passed, "{output}");
    assert!(output.contains("Syntax OK"), "{output}");
}

#[test]
fn load_order_does_not_matter() {
    let work = WorkDir::new("configtest-order");
    let mut first = config(&work, "FcgiResilient On");
    first.module = ModulePlacement::BeforeProxy;
    let (passed, output) = configtest(work.path(), &first);
    assert!(passed, "LoadModule before mod_proxy (alphabetical mods-enabled order):\n{output}");
}

#[test]
fn missing_proxy_modules_are_named_with_what_to_enable() {
    let work = WorkDir::new("configtest-missing");
    for (missing, expected) in [("proxy_fcgi", "a2enmod proxy_fcgi"), ("proxy", "mod_proxy is not loaded")] {
        let mut without = config(&work, "");
        without.modules.retain(|m| *m != missing && !(missing == "proxy" && *m == "proxy_fcgi"));
        // Nothing may use mod_proxy's handler syntax when mod_proxy is absent.
        without.site = String::new();
        let (passed, output) = configtest(work.path(), &without);
        assert!(!passed, "configtest passed without mod_{missing}:\n{output}");
        assert!(output.contains(expected), "without mod_{missing}: {expected:?} missing in:\n{output}");
        assert!(!output.contains("undefined symbol"), "a dlopen error instead of advice:\n{output}");
    }
}
