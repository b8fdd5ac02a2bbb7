//! The vocabulary of threat response: the actions a playbook can ask for (with what undoes each and
//! whether it cuts a device off) and the states of an action's life.

use crate::detection::named_enum;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;
use utoipa::ToSchema;

pub use crate::detection::UnknownName;

named_enum! {
    /// What a response can do (a playbook's actions, their undos, and a person's own actions).
    Action, "action" {
        /// Mail the field's administrators.
        NotifyAdmin = "notify_admin",
        /// Mail the field's persons in charge.
        NotifyPersonInCharge = "notify_person_in_charge",
        /// Post the field's signed webhook.
        NotifyWebhook = "notify_webhook",
        /// Revoke the device's tokens and refuse new ones (V25).
        StopAuth = "stop_auth",
        /// Suspend the device's SIM at the carrier (V26).
        SuspendSim = "suspend_sim",
        /// Only the update and state endpoints stay open to the device.
        Quarantine = "quarantine",
        /// Ask the device to update.
        PushUpdate = "push_update",
        /// Gather the device's registration, self-report, SIM session, traffic and history (V29).
        CollectInfo = "collect_info",
        /// Undo of `stop_auth`.
        EnableAuth = "enable_auth",
        /// Undo of `suspend_sim`.
        ResumeSim = "resume_sim",
        /// Undo of `quarantine`.
        ReleaseQuarantine = "release_quarantine",
        /// Undo of `push_update`.
        CancelUpdate = "cancel_update",
    }
}

impl Action {
    /// The actions a playbook may name (undos are not).
    pub const PLAYBOOK: &'static [Action] = &[
        Action::NotifyAdmin,
        Action::NotifyPersonInCharge,
        Action::NotifyWebhook,
        Action::StopAuth,
        Action::SuspendSim,
        Action::Quarantine,
        Action::PushUpdate,
        Action::CollectInfo,
    ];

    /// Cuts the device off or changes it: waits for a person's approval on a critical device.
    pub fn is_disruptive(self) -> bool {
        matches!(
            self,
            Action::StopAuth | Action::SuspendSim | Action::Quarantine | Action::PushUpdate
        )
    }

    /// Harmless to run again after a restart caught it running (a mail is not: never sent twice).
    pub fn is_idempotent(self) -> bool {
        !matches!(self, Action::NotifyAdmin | Action::NotifyPersonInCharge)
    }

    /// A notification (mail or webhook).
    pub fn is_notification(self) -> bool {
        matches!(
            self,
            Action::NotifyAdmin | Action::NotifyPersonInCharge | Action::NotifyWebhook
        )
    }

    /// The action that undoes this one, if it has one.
    pub fn undo(self) -> Option<Action> {
        Some(match self {
            Action::StopAuth => Action::EnableAuth,
            Action::SuspendSim => Action::ResumeSim,
            Action::Quarantine => Action::ReleaseQuarantine,
            Action::PushUpdate => Action::CancelUpdate,
            _ => return None,
        })
    }
}

named_enum! {
    /// Where an action is in its life: `pending → running → done | failed | skipped`, with
    /// `awaiting_approval → pending | rejected` before, `pending` again after a retryable failure, and
    /// `interrupted` for one a restart caught running that must not run twice.
    ActionState, "action state" {
        Pending = "pending",
        Running = "running",
        Done = "done",
        Failed = "failed",
        /// Nothing to do: a notification whose target the field has not set (the reason is recorded).
        Skipped = "skipped",
        AwaitingApproval = "awaiting_approval",
        Rejected = "rejected",
        Interrupted = "interrupted",
    }
}

impl ActionState {
    /// No further change happens to an action in this state.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            ActionState::Done
                | ActionState::Failed
                | ActionState::Skipped
                | ActionState::Rejected
                | ActionState::Interrupted
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_action_vocabulary_says_what_each_does() {
        for a in Action::ALL {
            assert_eq!(a.as_str().parse::<Action>(), Ok(*a));
            if let Some(u) = a.undo() {
                assert!(a.is_disruptive() && !u.is_disruptive() && !Action::PLAYBOOK.contains(&u));
            }
        }
        assert!(!Action::NotifyAdmin.is_idempotent() && Action::NotifyWebhook.is_idempotent());
        assert_eq!(
            Action::ALL.iter().filter(|a| a.is_disruptive()).count(),
            4,
            "stop_auth, suspend_sim, quarantine, push_update"
        );
        assert!("stop".parse::<Action>().is_err());
        for s in ActionState::ALL {
            assert_eq!(s.as_str().parse::<ActionState>(), Ok(*s));
        }
        assert!(ActionState::Skipped.is_final() && !ActionState::AwaitingApproval.is_final());
    }
}
