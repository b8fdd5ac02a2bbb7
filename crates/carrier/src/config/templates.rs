//! The `rest` connector's part of the configuration: one request template per operation and the
//! JSON pointers that read the answers, with the problems they can have.

use crate::template::{self, Escape, Values};
use serde::{Deserialize, Serialize};

const METHODS: [&str; 5] = ["GET", "POST", "PUT", "PATCH", "DELETE"];

/// One request of the `rest` connector.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OpTemplate {
    /// `GET`, `POST`, `PUT`, `PATCH` or `DELETE`.
    pub method: String,
    /// Path (and query) after the base URL, with `{imsi}`, `{iccid}` or `{id}`; values are
    /// percent-encoded.
    pub path: String,
    /// JSON body with the same placeholders (empty: no body).
    #[serde(default)]
    pub body: String,
}

impl OpTemplate {
    fn new(method: &str, path: &str) -> Self {
        Self {
            method: method.into(),
            path: path.into(),
            body: String::new(),
        }
    }
}

/// The `rest` connector's requests and how to read the answers. The defaults describe the same
/// MVNO-shaped API as the `mvno` connector, as a worked example.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RestTemplates {
    pub suspend: OpTemplate,
    pub resume: OpTemplate,
    pub status: OpTemplate,
    pub usage: OpTemplate,
    /// Looks a SIM up by ICCID when a template needs `{imsi}` and the call has only the ICCID; the
    /// IMSI is read at `imsi_pointer`. Empty path: such calls fail as invalid.
    pub resolve: OpTemplate,
    /// JSON pointer to the SIM's state in a status answer (and in a suspend/resume answer, when
    /// there; otherwise the status is read after the change).
    pub state_pointer: String,
    /// State values meaning active / suspended / terminated (compared without case; a boolean or a
    /// number is compared as its JSON text, e.g. `"true"`). Anything else is reported as it is.
    pub active_values: Vec<String>,
    pub suspended_values: Vec<String>,
    pub terminated_values: Vec<String>,
    /// Pointers to the other status fields (empty: the carrier does not report it).
    pub imsi_pointer: String,
    pub iccid_pointer: String,
    pub msisdn_pointer: String,
    pub online_pointer: String,
    pub ip_pointer: String,
    /// Pointers to the byte counts in a usage answer; a `*` segment matches every array element or
    /// object member, and everything matched is added up.
    pub uplink_pointer: String,
    pub downlink_pointer: String,
}

impl Default for RestTemplates {
    fn default() -> Self {
        let strings = |v: &[&str]| v.iter().map(|s| (*s).to_owned()).collect();
        Self {
            suspend: OpTemplate::new("POST", "/v1/subscribers/{imsi}/deactivate"),
            resume: OpTemplate::new("POST", "/v1/subscribers/{imsi}/activate"),
            status: OpTemplate::new("GET", "/v1/subscribers/{imsi}"),
            usage: OpTemplate::new("GET", "/v1/stats/air/subscribers/{imsi}"),
            resolve: OpTemplate::new("GET", "/v1/sims/{iccid}"),
            state_pointer: "/status".into(),
            active_values: strings(&["active"]),
            suspended_values: strings(&["inactive", "suspended"]),
            terminated_values: strings(&["terminated"]),
            imsi_pointer: "/imsi".into(),
            iccid_pointer: "/iccid".into(),
            msisdn_pointer: "/msisdn".into(),
            online_pointer: "/sessionStatus/online".into(),
            ip_pointer: "/sessionStatus/ipAddress".into(),
            uplink_pointer: "/*/dataTrafficStatsMap/*/uploadByteSizeTotal".into(),
            downlink_pointer: "/*/dataTrafficStatsMap/*/downloadByteSizeTotal".into(),
        }
    }
}

impl RestTemplates {
    /// Problems of the templates and the mapping, key names relative to `rest`.
    pub fn problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        let ops = [
            ("suspend", &self.suspend),
            ("resume", &self.resume),
            ("status", &self.status),
            ("usage", &self.usage),
        ];
        for (name, t) in ops {
            op_problems(name, t, &mut out);
        }
        let needs_imsi = ops.iter().any(|(_, t)| {
            template::used(&t.path)
                .chain(template::used(&t.body))
                .any(|p| p == "imsi")
        });
        if !self.resolve.path.is_empty() {
            op_problems("resolve", &self.resolve, &mut out);
            if template::used(&self.resolve.path)
                .chain(template::used(&self.resolve.body))
                .any(|p| p == "imsi")
            {
                out.push("resolve: looks an IMSI up, so it cannot use {imsi}".into());
            }
            if needs_imsi && self.imsi_pointer.is_empty() {
                out.push("imsi_pointer: needed to read the IMSI from the resolve answer".into());
            }
        }
        for (name, p, required) in [
            ("state_pointer", &self.state_pointer, true),
            ("imsi_pointer", &self.imsi_pointer, false),
            ("iccid_pointer", &self.iccid_pointer, false),
            ("msisdn_pointer", &self.msisdn_pointer, false),
            ("online_pointer", &self.online_pointer, false),
            ("ip_pointer", &self.ip_pointer, false),
            ("uplink_pointer", &self.uplink_pointer, true),
            ("downlink_pointer", &self.downlink_pointer, true),
        ] {
            if p.is_empty() && required {
                out.push(format!("{name}: not set"));
            } else if let Some(problem) = template::pointer_problem(p) {
                out.push(format!("{name}: {problem}"));
            }
        }
        if self.active_values.is_empty() {
            out.push("active_values: empty (which state value means active?)".into());
        }
        if self.suspended_values.is_empty() {
            out.push("suspended_values: empty (which state value means suspended?)".into());
        }
        let lists = [
            ("active_values", &self.active_values),
            ("suspended_values", &self.suspended_values),
            ("terminated_values", &self.terminated_values),
        ];
        for (i, (a_name, a)) in lists.iter().enumerate() {
            for (b_name, b) in &lists[i + 1..] {
                for v in b
                    .iter()
                    .filter(|v| a.iter().any(|w| w.eq_ignore_ascii_case(v)))
                {
                    out.push(format!("{b_name}: '{v}' is also in {a_name}"));
                }
            }
        }
        out
    }
}

fn op_problems(name: &str, t: &OpTemplate, out: &mut Vec<String>) {
    if !METHODS.contains(&t.method.as_str()) {
        out.push(format!(
            "{name}.method: '{}' is not one of {}",
            t.method,
            METHODS.join(", ")
        ));
    }
    if !t.path.starts_with('/') {
        out.push(format!("{name}.path: '{}' must start with '/'", t.path));
    }
    for p in template::problems(&t.path, true) {
        out.push(format!("{name}.path: {p}"));
    }
    let body_problems = template::problems(&t.body, false);
    let placeholders_ok = body_problems.is_empty();
    for p in body_problems {
        out.push(format!("{name}.body: {p}"));
    }
    if !t.body.is_empty() {
        if t.method == "GET" {
            out.push(format!("{name}.body: a GET request has no body"));
        }
        let sample = Values {
            imsi: Some("001010123456789"),
            iccid: Some("8900000000000000000"),
            id: "001010123456789",
        };
        let filled = template::fill(&t.body, sample, Escape::Json);
        if let (true, Ok(filled)) = (placeholders_ok, filled)
            && let Err(e) = serde_json::from_str::<serde_json::Value>(&filled)
        {
            out.push(format!("{name}.body: not JSON once filled in ({e})"));
        }
    }
}
