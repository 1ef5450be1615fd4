//! Generates Rust bindings from the httpd and APR headers installed on the build machine.
//!
//! Bindings are never committed: structs such as `proxy_worker_shared` change with httpd's
//! minor module magic number, so they must match the httpd the module will be loaded into.
//! Override discovery with `APXS`, `HTTPD_INCLUDE_DIR`, `APR_INCLUDE_DIR` or `HTTPD_CPPFLAGS`.

use std::env;
use std::path::PathBuf;
use std::process::Command;

fn main() {
    for var in ["APXS", "HTTPD_INCLUDE_DIR", "APR_INCLUDE_DIR", "HTTPD_CPPFLAGS", "APR_CONFIG"] {
        println!("cargo:rerun-if-env-changed={var}");
    }
    println!("cargo:rerun-if-changed=include/httpd_api.h");

    let mut clang_args = Vec::new();
    clang_args.push(format!("-I{}", httpd_include_dir()));
    clang_args.extend(apr_include_flags());
    clang_args.extend(httpd_cppflags());

    let bindings = bindgen::Builder::default()
        .header("include/httpd_api.h")
        .clang_args(&clang_args)
        .allowlist_type("request_rec|server_rec|conn_rec|module|command_rec|cmd_parms|cmd_how")
        .allowlist_type("proxy_worker|proxy_worker_shared|proxy_server_conf|proxy_balancer")
        .allowlist_type("proxy_LINK_scheme_handler_t|proxy_HOOK_scheme_handler_t")
        .allowlist_type("ap_errorlog_info|ap_logconf|apr_array_header_t|ap_slotmem_provider_t")
        .allowlist_function("ap_log_rerror_|ap_log_error_|ap_find_linked_module|ap_mpm_query")
        .allowlist_function("ap_hook_(pre_config|post_config|error_log|handler|child_init)")
        .allowlist_function("ap_set_content_type|ap_rputs|ap_rwrite|ap_state_query|ap_lookup_provider")
        .allowlist_function("ap_get_server_name|ap_runtime_dir_relative|ap_escape_html2")
        // The load-time check of the running httpd against these headers (ffi/compat.rs).
        .allowlist_function("ap_get_server_revision|ap_show_mpm")
        .allowlist_var("AP_SERVER_(MAJORVERSION|MINORVERSION|PATCHLEVEL)_NUMBER")
        .allowlist_function("apr_palloc|apr_pstrdup|apr_pstrndup|apr_table_get|apr_table_setn|apr_table_unset")
        .allowlist_function("apr_pool_cleanup_register|apr_pool_cleanup_null|apr_time_now")
        .allowlist_function("apr_pool_userdata_get|apr_pool_userdata_set")
        .allowlist_function("ap_get_conn_socket|apr_os_sock_get")
        // mod_status's optional status_hook (ffi/server_status.rs); AP_STATUS_SHORT is ?auto.
        .allowlist_function("apr_optional_hook_add")
        .allowlist_var("AP_STATUS_SHORT")
        // Reading the rest of a request body before waiting (ffi/request_body.rs).
        .allowlist_function("ap_get_brigade|ap_save_brigade|ap_map_http_request_error|ap_get_limit_req_body")
        .allowlist_var("PROXYREQ_NONE|PROXYREQ_REVERSE")
        .allowlist_function("apr_brigade_(create|length|flatten|split_ex|cleanup|insert_file)")
        .allowlist_function("apr_temp_dir_get|apr_file_mktemp|apr_file_write_full|apr_pool_userdata_setn")
        .allowlist_var("apr_bucket_type_eos|AP_IOBUFSIZE")
        .allowlist_type("apr_bucket_brigade|apr_bucket|ap_input_mode_t|apr_read_type_e")
        .allowlist_var("apr_hook_debug_current|ap_server_conf")
        // Waiting without a worker thread (ffi/suspend.rs). Not ap_hook_child_stopping (2.4.49):
        // ffi/compat.rs looks it up, so that an older httpd gets a message rather than dlopen's
        // "undefined symbol".
        .allowlist_function("ap_hook_suspend_connection|ap_mpm_register_timed_callback")
        .allowlist_function("ap_run_handler|ap_die|ap_process_request_after_handler")
        // Where an internal redirect (a front controller's rewrite) leads (ffi/suspend.rs).
        .allowlist_function("ap_sub_req_lookup_uri|ap_destroy_sub_req")
        .allowlist_function("apr_pool_destroy|apr_thread_mutex_(lock|unlock)|ap_hook_get_handler")
        .allowlist_type("ap_LINK_handler_t")
        // Who owns a suspended connection, and resumed requests on the scoreboard (ffi/scoreboard.rs).
        .allowlist_var("ap_scoreboard_image|SERVER_.*")
        .allowlist_type("scoreboard|worker_score|process_score|global_score")
        .allowlist_function("ap_create_sb_handle|ap_update_child_status|ap_update_child_status_from_indexes")
        .allowlist_function("ap_find_child_by_pid|ap_start_lingering_close|apr_socket_timeout_set")
        .allowlist_var("SUSPENDED")
        .allowlist_var("MODULE_MAGIC_.*|APLOG_.*|HTTP_.*|OK|DECLINED|DONE|RSRC_CONF|ACCESS_CONF|OR_.*")
        .allowlist_var("PROXY_WORKER_.*|APR_HOOK_.*|AP_MPMQ_.*|AP_SQ_.*|M_GET|M_OPTIONS|AP_SLOTMEM_.*")
        .allowlist_var("AP_SLOTMEM_PROVIDER_.*|APR_SUCCESS")
        .derive_default(true)
        .layout_tests(false)
        .generate_comments(false)
        .parse_callbacks(Box::new(bindgen::CargoCallbacks::new()))
        .generate()
        .expect("bindgen could not read the httpd headers (install apache2-dev and libclang-dev)");

    let out = PathBuf::from(env::var("OUT_DIR").expect("cargo sets OUT_DIR"));
    bindings.write_to_file(out.join("httpd_bindings.rs")).expect("writing the generated bindings");
}

fn apxs() -> String {
    env::var("APXS").unwrap_or_else(|_| {
        ["/usr/bin/apxs", "/usr/bin/apxs2", "/usr/sbin/apxs"]
            .iter()
            .find(|p| std::path::Path::new(p).exists())
            .unwrap_or(&"apxs")
            .to_string()
    })
}

fn query_tool(tool: &str, args: &[&str]) -> Option<String> {
    let output = Command::new(tool).args(args).output().ok()?;
    output.status.success().then(|| String::from_utf8_lossy(&output.stdout).trim().to_string())
}

fn httpd_include_dir() -> String {
    env::var("HTTPD_INCLUDE_DIR").ok().or_else(|| query_tool(&apxs(), &["-q", "INCLUDEDIR"])).unwrap_or_else(|| {
        panic!(
            "cannot find httpd's headers: install apache2-dev (Debian) or httpd-devel (RHEL), or set HTTPD_INCLUDE_DIR"
        )
    })
}

fn apr_include_flags() -> Vec<String> {
    if let Ok(dir) = env::var("APR_INCLUDE_DIR") {
        return vec![format!("-I{dir}")];
    }
    let apr_config = env::var("APR_CONFIG").unwrap_or_else(|_| "apr-1-config".to_string());
    let includes = query_tool(&apr_config, &["--includes"])
        .or_else(|| query_tool(&apxs(), &["-q", "APR_INCLUDEDIR"]).map(|d| format!("-I{d}")))
        .unwrap_or_else(|| panic!("cannot find APR's headers: install libapr1-dev, or set APR_INCLUDE_DIR"));
    includes.split_whitespace().map(str::to_string).collect()
}

fn httpd_cppflags() -> Vec<String> {
    let flags =
        env::var("HTTPD_CPPFLAGS").ok().or_else(|| query_tool(&apxs(), &["-q", "EXTRA_CPPFLAGS"])).unwrap_or_default();
    flags.split_whitespace().map(str::to_string).collect()
}
