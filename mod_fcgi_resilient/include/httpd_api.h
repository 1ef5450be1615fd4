/* The httpd and APR declarations the module's FFI layer uses; build.rs feeds this to bindgen. */
#include <httpd.h>
#include <http_config.h>
#include <http_core.h>
#include <http_log.h>
#include <http_protocol.h>
#include <http_request.h>
#include <ap_mpm.h>
#include <ap_slotmem.h>
#include <ap_provider.h>
#include <mod_proxy.h>
#include <apr_strings.h>
#include <apr_hooks.h>
#include <apr_pools.h>
#include <apr_tables.h>
#include <apr_shm.h>
#include <apr_portable.h>
