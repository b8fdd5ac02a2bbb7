//! Configuration: every problem is listed, unknown keys are refused, the token's sources, and
//! `connect` building the right connector.

mod common;

use common::*;
use sekisho_carrier::{CarrierApiConfig, OpTemplate, connect};
use std::path::Path;

fn assert_lists(problems: &[String], needles: &[&str]) {
    for n in needles {
        assert!(
            problems.iter().any(|p| p.contains(n)),
            "'{n}' missing from {problems:#?}"
        );
    }
}

#[test]
fn none_needs_nothing_and_connects_to_disabled() {
    let cfg = CarrierApiConfig::default();
    assert_eq!(cfg.kind, "none");
    assert!(cfg.validate(Path::new("/nonexistent")).is_empty());
    let c = connect(&cfg, Path::new("/nonexistent")).unwrap();
    assert_eq!(c.name(), "none");
}

#[test]
fn every_connection_problem_is_listed() {
    let dir = TempDir::new();
    let mut cfg = CarrierApiConfig {
        kind: "mvno".into(),
        base_url: "http://carrier.example".into(),
        token_env: String::new(),
        auth_header: "Bad Header".into(),
        auth_scheme: "Bearer token".into(),
        ca_file: Some("missing-ca.pem".into()),
        client_cert_file: Some("client.pem".into()),
        timeout_ms: 0,
        retries: 11,
        backoff_initial_ms: 100,
        backoff_max_ms: 50,
        ..CarrierApiConfig::default()
    };
    cfg.headers.insert("X-Tenant".into(), "a\nb".into());
    cfg.headers.insert("bad header".into(), "x".into());
    let p = cfg.validate(dir.path());
    assert_lists(
        &p,
        &[
            "base_url: 'http://carrier.example' is plain http",
            "token_file: cannot read",
            "auth_header: 'Bad Header'",
            "auth_scheme",
            "headers.X-Tenant",
            "headers: 'bad header'",
            "ca_file: ",
            "missing-ca.pem does not exist",
            "client_cert_file: ",
            "client_cert_file and client_key_file go together",
            "timeout_ms must be greater than 0",
            "retries: 11",
            "backoff_max_ms must be at least backoff_initial_ms",
        ],
    );
    assert_eq!(p.len(), 12, "{p:#?}");
    assert_eq!(connect(&cfg, dir.path()).err().unwrap(), p);

    cfg.kind = "sorcery".into();
    cfg.base_url = String::new();
    assert_lists(
        &cfg.validate(dir.path()),
        &[
            "kind: 'sorcery' is not one of none, mvno, rest",
            "base_url: not set",
        ],
    );
}

#[test]
fn every_template_problem_is_listed() {
    let dir = TempDir::new();
    dir.write("carrier.token", "t");
    let mut cfg = CarrierApiConfig {
        kind: "rest".into(),
        base_url: "https://carrier.example/api".into(),
        token_env: String::new(),
        ..CarrierApiConfig::default()
    };
    assert!(
        cfg.validate(dir.path()).is_empty(),
        "{:#?}",
        cfg.validate(dir.path())
    );
    let r = &mut cfg.rest;
    r.suspend = OpTemplate {
        method: "FETCH".into(),
        path: "v1/{imis}/off".into(),
        body: "{\"sim\": \"{imsi}\"".into(),
    };
    r.resume.path = "/v1/{imsi/on".into();
    r.status.body = "{\"a\": \"{sim}\"}".into();
    r.resolve.path = "/v1/lookup/{imsi}".into();
    r.state_pointer = String::new();
    r.ip_pointer = "sessionStatus/ip".into();
    r.uplink_pointer = "/up~2".into();
    r.active_values = vec![];
    r.terminated_values = vec!["Suspended".into()];
    let p = cfg.validate(dir.path());
    assert_lists(
        &p,
        &[
            "rest.suspend.method: 'FETCH'",
            "rest.suspend.path: 'v1/{imis}/off' must start with '/'",
            "rest.suspend.path: unknown placeholder {imis}",
            "rest.suspend.body: not JSON",
            "rest.resume.path: has a '{' or '}'",
            "rest.status.body: unknown placeholder {sim}",
            "rest.status.body: a GET request has no body",
            "rest.resolve: looks an IMSI up",
            "rest.state_pointer: not set",
            "rest.ip_pointer: 'sessionStatus/ip' is not a JSON pointer",
            "rest.uplink_pointer: '/up~2'",
            "rest.active_values: empty",
            "rest.terminated_values: 'Suspended' is also in suspended_values",
        ],
    );
    assert_eq!(p.len(), 13, "{p:#?}");
}

#[test]
fn unknown_keys_and_missing_template_fields_are_refused() {
    let e = toml::from_str::<CarrierApiConfig>("kind = \"mvno\"\ntimeout_sec = 3\n").unwrap_err();
    assert!(e.to_string().contains("timeout_sec"), "{e}");
    let e = toml::from_str::<CarrierApiConfig>("[rest.suspend]\npath = \"/x\"\n").unwrap_err();
    assert!(e.to_string().contains("method"), "{e}");
    let e = toml::from_str::<CarrierApiConfig>("[rest]\nstate = \"/x\"\n").unwrap_err();
    assert!(e.to_string().contains("state"), "{e}");
}

#[test]
fn the_token_comes_from_the_file_or_the_variable() {
    let dir = TempDir::new();
    let mut cfg = CarrierApiConfig {
        token_env: String::new(),
        ..CarrierApiConfig::default()
    };
    assert!(cfg.token(dir.path()).unwrap_err().contains("token_file"));
    dir.write("carrier.token", "  \n");
    assert!(cfg.token(dir.path()).unwrap_err().contains("is empty"));
    dir.write("carrier.token", "abc def");
    let e = cfg.token(dir.path()).unwrap_err();
    assert!(!e.contains("abc"), "the token is never quoted: {e}");
    dir.write("carrier.token", " s3cret-token\n");
    assert_eq!(cfg.token(dir.path()).unwrap().expose(), "s3cret-token");
    assert!(!format!("{:?}", cfg.token(dir.path()).unwrap()).contains("s3cret"));

    // An absolute token_file is used as it is.
    let abs = dir.write("elsewhere.token", "abs-token");
    cfg.token_file = abs;
    assert_eq!(
        cfg.token(Path::new("/nonexistent")).unwrap().expose(),
        "abs-token"
    );

    // The variable wins when set; cargo sets CARGO_PKG_NAME for the tests it runs.
    if let Ok(v) = std::env::var("CARGO_PKG_NAME") {
        cfg.token_env = "CARGO_PKG_NAME".into();
        assert_eq!(cfg.token(dir.path()).unwrap().expose(), v);
    }
    cfg.token_env = "SEKISHO_TEST_SURELY_UNSET_VARIABLE".into();
    assert_eq!(
        cfg.token(Path::new("/nonexistent")).unwrap().expose(),
        "abs-token"
    );
}

#[test]
fn relative_paths_resolve_against_the_data_directory() {
    let mut cfg = CarrierApiConfig {
        ca_file: Some("tls/carrier-ca.crt".into()),
        client_key_file: Some("/etc/abs.key".into()),
        ..CarrierApiConfig::default()
    };
    cfg.resolve_paths(Path::new("/data"));
    assert_eq!(cfg.token_file, Path::new("/data/carrier.token"));
    assert_eq!(
        cfg.ca_file.as_deref(),
        Some(Path::new("/data/tls/carrier-ca.crt"))
    );
    assert_eq!(
        cfg.client_key_file.as_deref(),
        Some(Path::new("/etc/abs.key"))
    );
    assert_eq!(cfg.client_cert_file, None);
}

#[test]
fn a_ca_file_that_is_not_pem_is_refused_at_connect() {
    let dir = TempDir::new();
    let mut cfg = config(&dir, "https://carrier.example");
    cfg.ca_file = Some(dir.write("ca.pem", "not a certificate"));
    let e = connect(&cfg, dir.path()).err().unwrap();
    assert!(e[0].starts_with("ca_file:"), "{e:?}");
}
