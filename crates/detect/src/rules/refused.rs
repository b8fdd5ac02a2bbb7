//! What the gateway refused from a known device: data that is not JSON, data from outside the
//! field's networks, bodies over the field's hard limits.

use super::{MessageFacts, f, network::off_network};
use crate::finding::{Finding, Rule, Severity, Threat};
use crate::template::Compiled;
use sekisho_core::ErrorCode;
use serde_json::json;

/// The finding a refusal is, if it is one (other refusals, such as a wrong token, are not the
/// device's behaviour).
pub(super) fn judge(c: &Compiled, code: ErrorCode, m: &MessageFacts) -> Option<Finding> {
    match code {
        ErrorCode::MalformedJson | ErrorCode::JsonTooDeep => Some(f(
            Rule::FormatMalformed,
            Threat::Hijacking,
            Severity::Medium,
            format!("the device sent data that is not valid JSON ({code})"),
            json!({"error": code, "size": m.size}),
        )),
        ErrorCode::OffNetwork => Some(off_network(c, m.source_ip, "data (refused)")),
        ErrorCode::PayloadTooLarge | ErrorCode::BatchTooLarge => Some(f(
            Rule::SizeMax,
            Threat::Hijacking,
            Severity::Medium,
            format!(
                "the device sent {} bytes, over the field's hard limit",
                m.size
            ),
            json!({"error": code, "size": m.size}),
        )),
        _ => None,
    }
}
