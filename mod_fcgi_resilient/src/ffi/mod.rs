//! Everything that touches httpd lives here, and only here: the generated bindings, the
//! module record, directive and hook registration, logging, and the glue that runs the retry
//! policy over a real `request_rec`. Each `extern "C"` entry point catches panics (`guard`).

mod brigade;
mod compat;
mod dir_config;
mod directives;
mod ending;
mod guard;
mod hook_chain;
mod hooks;
mod log;
mod module_record;
mod pause_watch;
mod proxy;
mod request;
mod request_body;
mod scheme_handler;
mod scoreboard;
mod server_status;
mod status_code;
mod status_handler;
mod suspend;
mod sys;
mod worker;
