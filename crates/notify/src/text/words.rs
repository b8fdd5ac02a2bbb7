//! The words of the notification texts, in Japanese and English: threats, severities, actions and
//! their states. Every value of each vocabulary has both (the matches are exhaustive).

use sekisho_core::{Action, ActionState, Severity, Threat};

pub(super) fn threat(t: Threat, ja: bool) -> &'static str {
    let (j, e) = match t {
        Threat::UnauthorizedAccess => ("不正アクセス", "unauthorized access"),
        Threat::Spoofing => ("なりすまし", "spoofing"),
        Threat::Hijacking => ("乗っ取り", "hijacking"),
        Threat::Eavesdropping => ("盗聴", "eavesdropping"),
        Threat::Theft => ("盗難", "theft"),
    };
    if ja { j } else { e }
}

pub(super) fn severity(s: Severity, ja: bool) -> &'static str {
    let (j, e) = match s {
        Severity::Notice => ("注意", "notice"),
        Severity::Low => ("低", "low"),
        Severity::Medium => ("中", "medium"),
        Severity::High => ("高", "high"),
        Severity::Critical => ("緊急", "critical"),
    };
    if ja { j } else { e }
}

pub(super) fn action(a: Action, ja: bool) -> &'static str {
    let (j, e) = match a {
        Action::StopAuth => ("認証停止", "stop authentication"),
        Action::EnableAuth => ("認証再開", "re-enable authentication"),
        Action::SuspendSim => ("SIM停止", "suspend the SIM"),
        Action::ResumeSim => ("SIM再開", "resume the SIM"),
        Action::Quarantine => ("隔離", "quarantine"),
        Action::ReleaseQuarantine => ("隔離解除", "release from quarantine"),
        Action::PushUpdate => ("更新の配信", "push an update"),
        Action::CancelUpdate => ("更新の取り消し", "cancel the update"),
        Action::CollectInfo => ("デバイス情報の収集", "collect device information"),
        Action::NotifyAdmin => ("管理者への通知", "notify the administrator"),
        Action::NotifyPersonInCharge => ("担当者への通知", "notify the person in charge"),
        Action::NotifyWebhook => ("Webhook通知", "webhook"),
    };
    if ja { j } else { e }
}

pub(super) fn state(s: ActionState, ja: bool) -> &'static str {
    let (j, e) = match s {
        ActionState::Pending => ("実行待ち", "pending"),
        ActionState::AwaitingApproval => ("承認待ち", "awaiting approval"),
        ActionState::Running => ("実行中", "running"),
        ActionState::Done => ("完了", "done"),
        ActionState::Failed => ("失敗", "failed"),
        ActionState::Skipped => ("省略", "skipped"),
        ActionState::Rejected => ("却下", "rejected"),
        ActionState::Interrupted => ("中断", "interrupted"),
    };
    if ja { j } else { e }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_value_has_a_japanese_and_an_english_word() {
        let ja: Vec<&str> = Threat::ALL
            .iter()
            .map(|t| threat(*t, true))
            .chain(Severity::ALL.iter().map(|s| severity(*s, true)))
            .chain(Action::ALL.iter().map(|a| action(*a, true)))
            .chain(ActionState::ALL.iter().map(|s| state(*s, true)))
            .collect();
        assert!(ja.iter().all(|w| !w.is_ascii()), "{ja:?}");
        assert_eq!(threat(Threat::Hijacking, true), "乗っ取り");
        assert_eq!(
            state(ActionState::AwaitingApproval, false),
            "awaiting approval"
        );
    }
}
