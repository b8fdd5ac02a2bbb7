//! The words of the notification texts, in Japanese and English: threats, severities, actions and
//! their states. A code these tables do not know is shown as it is (by the caller).

/// (code, Japanese, English) of each threat (as `sekisho-detect` names them).
const THREATS: &[(&str, &str, &str)] = &[
    ("unauthorized_access", "不正アクセス", "unauthorized access"),
    ("spoofing", "なりすまし", "spoofing"),
    ("hijacking", "乗っ取り", "hijacking"),
    ("eavesdropping", "盗聴", "eavesdropping"),
    ("theft", "盗難", "theft"),
];

const SEVERITIES: &[(&str, &str, &str)] = &[
    ("notice", "注意", "notice"),
    ("low", "低", "low"),
    ("medium", "中", "medium"),
    ("high", "高", "high"),
    ("critical", "緊急", "critical"),
];

const ACTIONS: &[(&str, &str, &str)] = &[
    ("stop_auth", "認証停止", "stop authentication"),
    ("enable_auth", "認証再開", "re-enable authentication"),
    ("suspend_sim", "SIM停止", "suspend the SIM"),
    ("resume_sim", "SIM再開", "resume the SIM"),
    ("quarantine", "隔離", "quarantine"),
    ("release_quarantine", "隔離解除", "release from quarantine"),
    ("push_update", "更新の配信", "push an update"),
    ("cancel_update", "更新の取り消し", "cancel the update"),
    (
        "collect_info",
        "デバイス情報の収集",
        "collect device information",
    ),
    ("notify_admin", "管理者への通知", "notify the administrator"),
    (
        "notify_person_in_charge",
        "担当者への通知",
        "notify the person in charge",
    ),
    ("notify_webhook", "Webhook通知", "webhook"),
];

const STATES: &[(&str, &str, &str)] = &[
    ("pending", "実行待ち", "pending"),
    ("awaiting_approval", "承認待ち", "awaiting approval"),
    ("running", "実行中", "running"),
    ("done", "完了", "done"),
    ("failed", "失敗", "failed"),
    ("rejected", "却下", "rejected"),
    ("interrupted", "中断", "interrupted"),
];

fn look(
    table: &[(&str, &'static str, &'static str)],
    code: &str,
    ja: bool,
) -> Option<&'static str> {
    table
        .iter()
        .find(|(c, _, _)| *c == code)
        .map(|&(_, j, e)| if ja { j } else { e })
}

pub(super) fn threat(code: &str, ja: bool) -> Option<&'static str> {
    look(THREATS, code, ja)
}

pub(super) fn severity(code: &str, ja: bool) -> Option<&'static str> {
    look(SEVERITIES, code, ja)
}

pub(super) fn action(code: &str, ja: bool) -> Option<&'static str> {
    look(ACTIONS, code, ja)
}

pub(super) fn state(code: &str, ja: bool) -> Option<&'static str> {
    look(STATES, code, ja)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_has_both_languages_and_unknown_codes_pass_through() {
        for t in [THREATS, SEVERITIES, ACTIONS, STATES] {
            for (code, ja, en) in t {
                assert!(!ja.is_empty() && !en.is_empty(), "{code}");
                assert!(!ja.is_ascii(), "{code}");
            }
        }
        assert_eq!(threat("hijacking", true), Some("乗っ取り"));
        assert_eq!(state("awaiting_approval", false), Some("awaiting approval"));
        assert_eq!(threat("new_threat", true), None);
    }
}
