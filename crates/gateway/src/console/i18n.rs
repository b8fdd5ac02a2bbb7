//! Every string the console shows, in English and Japanese: one [`Text`] per language, so a missing
//! translation is a compile error, not a blank label. Templates read them as `t.<key>`.
//!
//! The language comes from the `lang` cookie (set by the switch in the page header), else from
//! `Accept-Language`: Japanese when it starts with `ja`, English otherwise.

use sekisho_core::{AuthMode, DeviceStatus, Role};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lang {
    En,
    Ja,
}

impl Lang {
    /// The language for a request: `lang` cookie, else `Accept-Language`.
    pub fn of(headers: &http::HeaderMap) -> Self {
        match super::cookie(headers, super::LANG_COOKIE) {
            Some("ja") => return Self::Ja,
            Some("en") => return Self::En,
            _ => {}
        }
        let accept = headers
            .get(http::header::ACCEPT_LANGUAGE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        if accept.trim_start().to_ascii_lowercase().starts_with("ja") {
            Self::Ja
        } else {
            Self::En
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "en" => Some(Self::En),
            "ja" => Some(Self::Ja),
            _ => None,
        }
    }

    /// The BCP 47 code, for `<html lang>` and the cookie.
    pub fn code(self) -> &'static str {
        match self {
            Self::En => "en",
            Self::Ja => "ja",
        }
    }

    pub fn text(self) -> &'static Text {
        match self {
            Self::En => &EN,
            Self::Ja => &JA,
        }
    }
}

/// The console's strings in one language.
pub struct Text {
    pub console: &'static str,
    pub dashboard: &'static str,
    pub fields: &'static str,
    pub field: &'static str,
    pub devices: &'static str,
    pub device: &'static str,
    pub history: &'static str,
    pub detections: &'static str,
    pub threat: &'static str,
    pub severity: &'static str,
    pub rule: &'static str,
    pub summary: &'static str,
    pub count: &'static str,
    pub unauthorized_access: &'static str,
    pub spoofing: &'static str,
    pub hijacking: &'static str,
    pub eavesdropping: &'static str,
    pub theft: &'static str,
    pub sev_notice: &'static str,
    pub sev_low: &'static str,
    pub sev_medium: &'static str,
    pub sev_high: &'static str,
    pub sev_critical: &'static str,
    pub login: &'static str,
    pub login_title: &'static str,
    pub logout: &'static str,
    pub username: &'static str,
    pub password: &'static str,
    pub login_failed: &'static str,
    /// `{secs}` is replaced by the wait in seconds.
    pub login_locked: &'static str,
    pub language: &'static str,
    pub role_maintainer: &'static str,
    pub role_field_admin: &'static str,
    pub role_analyst: &'static str,
    pub system_status: &'static str,
    pub version: &'static str,
    pub uptime: &'static str,
    pub messages: &'static str,
    pub accepted: &'static str,
    pub rejected: &'static str,
    pub device_auth: &'static str,
    pub success: &'static str,
    pub failure: &'static str,
    pub throttled: &'static str,
    pub outbox: &'static str,
    pub pending: &'static str,
    pub forwarded: &'static str,
    pub dead: &'static str,
    pub listeners: &'static str,
    pub listener_device: &'static str,
    pub listener_admin: &'static str,
    pub conn_accepted: &'static str,
    pub conn_open: &'static str,
    pub plaintext_refused: &'static str,
    pub handshake_failed: &'static str,
    pub over_limit: &'static str,
    pub your_fields: &'static str,
    pub name: &'static str,
    pub auth_id: &'static str,
    pub auth_mode: &'static str,
    pub template: &'static str,
    pub template_default: &'static str,
    pub mode_secret: &'static str,
    pub mode_certificate: &'static str,
    pub mode_either: &'static str,
    pub created: &'static str,
    pub create_field: &'static str,
    pub create: &'static str,
    pub no_fields: &'static str,
    pub cloud: &'static str,
    pub not_set: &'static str,
    pub register_device: &'static str,
    pub register: &'static str,
    pub unique_id: &'static str,
    pub sim_imsi: &'static str,
    pub critical: &'static str,
    pub critical_hint: &'static str,
    pub optional: &'static str,
    pub status: &'static str,
    pub actions: &'static str,
    pub enable: &'static str,
    pub disable: &'static str,
    pub delete: &'static str,
    pub confirm_delete: &'static str,
    pub no_devices: &'static str,
    pub st_active: &'static str,
    pub st_disabled: &'static str,
    pub st_quarantined: &'static str,
    pub st_deleted: &'static str,
    pub registered_title: &'static str,
    pub secret_once: &'static str,
    pub auth_secret: &'static str,
    pub device_id: &'static str,
    pub recent_messages: &'static str,
    pub field_history: &'static str,
    pub auth_attempts: &'static str,
    pub filter: &'static str,
    pub all: &'static str,
    pub outcome: &'static str,
    pub time: &'static str,
    pub source_ip: &'static str,
    pub size: &'static str,
    pub reason: &'static str,
    pub forwarding: &'static str,
    pub method: &'static str,
    pub older: &'static str,
    pub newest: &'static str,
    pub nothing_found: &'static str,
    pub error: &'static str,
    pub err_not_found: &'static str,
    pub err_forbidden: &'static str,
    pub err_conflict: &'static str,
    pub err_invalid: &'static str,
    pub err_unavailable: &'static str,
    pub err_internal: &'static str,
    pub err_cross_origin: &'static str,
    pub back: &'static str,
    // The second factor (security page, device actions).
    pub security: &'static str,
    pub mfa_title: &'static str,
    pub mfa_intro: &'static str,
    pub mfa_on: &'static str,
    pub mfa_off: &'static str,
    pub mfa_set_up: &'static str,
    pub mfa_add_key: &'static str,
    pub mfa_key: &'static str,
    pub mfa_uri: &'static str,
    pub totp_code: &'static str,
    pub mfa_confirm: &'static str,
    pub mfa_turn_off: &'static str,
    pub mfa_enabled_done: &'static str,
    pub mfa_disabled_done: &'static str,
    pub mfa_wrong_code: &'static str,
    pub mfa_lost: &'static str,
    pub err_second_factor: &'static str,
}

impl Text {
    pub fn role(&self, r: Role) -> &'static str {
        match r {
            Role::Maintainer => self.role_maintainer,
            Role::FieldAdmin => self.role_field_admin,
            Role::Analyst => self.role_analyst,
        }
    }

    pub fn mode(&self, m: AuthMode) -> &'static str {
        match m {
            AuthMode::Secret => self.mode_secret,
            AuthMode::Certificate => self.mode_certificate,
            AuthMode::Either => self.mode_either,
        }
    }

    pub fn device_status(&self, s: DeviceStatus) -> &'static str {
        match s {
            DeviceStatus::Active => self.st_active,
            DeviceStatus::Disabled => self.st_disabled,
            DeviceStatus::Quarantined => self.st_quarantined,
            DeviceStatus::Deleted => self.st_deleted,
        }
    }

    /// A stored outcome or forwarding state (`accepted`, `failure`, `dead`, ...) in words.
    pub fn word(&self, stored: &str) -> String {
        match stored {
            "accepted" => self.accepted,
            "rejected" => self.rejected,
            "success" => self.success,
            "failure" => self.failure,
            "throttled" => self.throttled,
            "pending" => self.pending,
            "forwarded" => self.forwarded,
            "dead" => self.dead,
            "none" => "—",
            "unauthorized_access" => self.unauthorized_access,
            "spoofing" => self.spoofing,
            "hijacking" => self.hijacking,
            "eavesdropping" => self.eavesdropping,
            "theft" => self.theft,
            "notice" => self.sev_notice,
            "low" => self.sev_low,
            "medium" => self.sev_medium,
            "high" => self.sev_high,
            "critical" => self.sev_critical,
            other => return other.to_owned(),
        }
        .to_owned()
    }
}

pub static EN: Text = Text {
    console: "Console",
    dashboard: "Dashboard",
    fields: "Fields",
    field: "Field",
    devices: "Devices",
    device: "Device",
    history: "History",
    detections: "Detections",
    threat: "Threat",
    severity: "Severity",
    rule: "Rule",
    summary: "What was seen",
    count: "Count",
    unauthorized_access: "Unauthorized access",
    spoofing: "Spoofing",
    hijacking: "Hijacking",
    eavesdropping: "Eavesdropping",
    theft: "Theft",
    sev_notice: "notice",
    sev_low: "low",
    sev_medium: "medium",
    sev_high: "high",
    sev_critical: "critical",
    login: "Log in",
    login_title: "Log in to Sekisho",
    logout: "Log out",
    username: "User name",
    password: "Password",
    login_failed: "Wrong user name or password.",
    login_locked: "Too many failed logins for this user. Try again in {secs} seconds.",
    language: "Language",
    role_maintainer: "Maintainer",
    role_field_admin: "Field admin",
    role_analyst: "Analyst",
    system_status: "System status",
    version: "Version",
    uptime: "Uptime",
    messages: "Messages",
    accepted: "Accepted",
    rejected: "Rejected",
    device_auth: "Device authentication",
    success: "Success",
    failure: "Failure",
    throttled: "Throttled",
    outbox: "Cloud outbox",
    pending: "Pending",
    forwarded: "Forwarded",
    dead: "Dead letters",
    listeners: "Listeners",
    listener_device: "Device",
    listener_admin: "Admin",
    conn_accepted: "Accepted",
    conn_open: "Open",
    plaintext_refused: "Plain HTTP refused",
    handshake_failed: "Handshake failed",
    over_limit: "Over limit",
    your_fields: "Your fields",
    name: "Name",
    auth_id: "Auth ID",
    auth_mode: "Authentication",
    template: "Detection template",
    template_default: "(gateway default)",
    mode_secret: "Secret",
    mode_certificate: "Client certificate",
    mode_either: "Secret or certificate",
    created: "Created",
    create_field: "New field",
    create: "Create",
    no_fields: "No fields yet.",
    cloud: "Cloud destination",
    not_set: "Not set",
    register_device: "Register a device",
    register: "Register",
    unique_id: "Unique ID",
    sim_imsi: "SIM IMSI",
    critical: "Critical",
    critical_hint: "Never cut off automatically",
    optional: "optional",
    status: "Status",
    actions: "Actions",
    enable: "Enable",
    disable: "Disable",
    delete: "Delete",
    confirm_delete: "Delete this device? Its credentials stop working at once.",
    no_devices: "No devices yet.",
    st_active: "Active",
    st_disabled: "Disabled",
    st_quarantined: "Quarantined",
    st_deleted: "Deleted",
    registered_title: "Device registered",
    secret_once: "Copy the secret now. It is shown only this once and cannot be shown again.",
    auth_secret: "Secret",
    device_id: "Device ID",
    recent_messages: "Recent messages",
    field_history: "Full history",
    auth_attempts: "Authentication",
    filter: "Filter",
    all: "All",
    outcome: "Outcome",
    time: "Time (UTC)",
    source_ip: "Source IP",
    size: "Size",
    reason: "Reason",
    forwarding: "Forwarding",
    method: "Method",
    older: "Older",
    newest: "Newest",
    nothing_found: "Nothing found.",
    error: "Error",
    err_not_found: "Not found.",
    err_forbidden: "Your role does not allow this.",
    err_conflict: "That already exists.",
    err_invalid: "Please check the input.",
    err_unavailable: "The gateway cannot do this right now. Try again shortly.",
    err_internal: "Something went wrong. See the gateway's log.",
    err_cross_origin: "This request came from another site and was refused.",
    back: "Back to the console",
    security: "Security",
    mfa_title: "Second factor (TOTP)",
    mfa_intro: "With a second factor on, stopping or deleting a device and suspending its SIM need the 6-digit code from an authenticator app on your phone.",
    mfa_on: "On",
    mfa_off: "Off",
    mfa_set_up: "Set up",
    mfa_add_key: "Add this key to your authenticator app (type it in, or paste the URI), then enter the code the app shows.",
    mfa_key: "Key",
    mfa_uri: "URI",
    totp_code: "Code",
    mfa_confirm: "Confirm and turn on",
    mfa_turn_off: "Turn off",
    mfa_enabled_done: "The second factor is on.",
    mfa_disabled_done: "The second factor is off.",
    mfa_wrong_code: "That code does not match the key. Check the key in the app and your phone's clock, then try again.",
    mfa_lost: "Lost your phone? A maintainer can reset your second factor.",
    err_second_factor: "This needs the current code from your authenticator app. The code was missing, wrong or already used.",
};

pub static JA: Text = Text {
    console: "コンソール",
    dashboard: "ダッシュボード",
    fields: "フィールド",
    field: "フィールド",
    devices: "デバイス",
    device: "デバイス",
    history: "履歴",
    detections: "検知",
    threat: "想定リスク",
    severity: "重大度",
    rule: "ルール",
    summary: "内容",
    count: "回数",
    unauthorized_access: "不正アクセス",
    spoofing: "なりすまし",
    hijacking: "乗っ取り",
    eavesdropping: "盗聴",
    theft: "盗難",
    sev_notice: "通知",
    sev_low: "低",
    sev_medium: "中",
    sev_high: "高",
    sev_critical: "重大",
    login: "ログイン",
    login_title: "Sekisho にログイン",
    logout: "ログアウト",
    username: "ユーザー名",
    password: "パスワード",
    login_failed: "ユーザー名またはパスワードが違います。",
    login_locked: "ログインの失敗が続いたため、このユーザーは一時的にロックされています。{secs} 秒後にもう一度お試しください。",
    language: "言語",
    role_maintainer: "保守担当",
    role_field_admin: "フィールド管理者",
    role_analyst: "分析担当",
    system_status: "システム状態",
    version: "バージョン",
    uptime: "稼働時間",
    messages: "メッセージ",
    accepted: "受理",
    rejected: "拒否",
    device_auth: "デバイス認証",
    success: "成功",
    failure: "失敗",
    throttled: "制限",
    outbox: "クラウド送信キュー",
    pending: "送信待ち",
    forwarded: "転送済み",
    dead: "配信不能",
    listeners: "リスナー",
    listener_device: "デバイス用",
    listener_admin: "管理用",
    conn_accepted: "受付",
    conn_open: "接続中",
    plaintext_refused: "平文 HTTP 拒否",
    handshake_failed: "ハンドシェイク失敗",
    over_limit: "上限超過",
    your_fields: "担当フィールド",
    name: "名前",
    auth_id: "認証 ID",
    auth_mode: "認証方式",
    template: "検知テンプレート",
    template_default: "（既定）",
    mode_secret: "シークレット",
    mode_certificate: "クライアント証明書",
    mode_either: "シークレットまたは証明書",
    created: "作成日時",
    create_field: "フィールドを作成",
    create: "作成",
    no_fields: "フィールドはまだありません。",
    cloud: "クラウド転送先",
    not_set: "未設定",
    register_device: "デバイスを登録",
    register: "登録",
    unique_id: "固有 ID",
    sim_imsi: "SIM IMSI",
    critical: "重要",
    critical_hint: "自動で遮断しない",
    optional: "任意",
    status: "状態",
    actions: "操作",
    enable: "有効化",
    disable: "無効化",
    delete: "削除",
    confirm_delete: "このデバイスを削除しますか？認証情報はすぐに使えなくなります。",
    no_devices: "デバイスはまだありません。",
    st_active: "有効",
    st_disabled: "無効",
    st_quarantined: "隔離中",
    st_deleted: "削除済み",
    registered_title: "デバイスを登録しました",
    secret_once: "シークレットを今すぐ控えてください。表示されるのはこの一度だけで、再表示はできません。",
    auth_secret: "シークレット",
    device_id: "デバイス ID",
    recent_messages: "最近のメッセージ",
    field_history: "すべての履歴",
    auth_attempts: "認証",
    filter: "絞り込み",
    all: "すべて",
    outcome: "結果",
    time: "日時 (UTC)",
    source_ip: "送信元 IP",
    size: "サイズ",
    reason: "理由",
    forwarding: "転送",
    method: "方式",
    older: "さらに古い",
    newest: "最新",
    nothing_found: "該当するものはありません。",
    error: "エラー",
    err_not_found: "見つかりません。",
    err_forbidden: "この操作を行う権限がありません。",
    err_conflict: "既に存在します。",
    err_invalid: "入力内容を確認してください。",
    err_unavailable: "現在処理できません。しばらくしてからもう一度お試しください。",
    err_internal: "エラーが発生しました。ゲートウェイのログを確認してください。",
    err_cross_origin: "他のサイトからのリクエストのため拒否しました。",
    back: "コンソールに戻る",
    security: "セキュリティ",
    mfa_title: "二要素認証 (TOTP)",
    mfa_intro: "二要素認証を有効にすると、デバイスの無効化・削除や SIM の一時停止に、スマートフォンの認証アプリが表示する 6 桁のコードが必要になります。",
    mfa_on: "有効",
    mfa_off: "無効",
    mfa_set_up: "設定する",
    mfa_add_key: "このキーを認証アプリに登録し（手入力、または URI を貼り付け）、アプリに表示されたコードを入力してください。",
    mfa_key: "キー",
    mfa_uri: "URI",
    totp_code: "認証コード",
    mfa_confirm: "確認して有効にする",
    mfa_turn_off: "無効にする",
    mfa_enabled_done: "二要素認証を有効にしました。",
    mfa_disabled_done: "二要素認証を無効にしました。",
    mfa_wrong_code: "コードがキーと一致しません。アプリに登録したキーとスマートフォンの時刻を確認して、もう一度お試しください。",
    mfa_lost: "スマートフォンを紛失した場合は、保守担当に二要素認証のリセットを依頼してください。",
    err_second_factor: "この操作には認証アプリの現在のコードが必要です。コードが未入力か、誤っているか、使用済みです。",
};

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderMap;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, http::HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn language_comes_from_the_cookie_then_accept_language() {
        let check = |pairs: &[(&'static str, &'static str)], want: Lang| {
            assert_eq!(Lang::of(&headers(pairs)), want, "{pairs:?}")
        };
        check(&[], Lang::En);
        check(&[("accept-language", "ja-JP,ja;q=0.9,en;q=0.8")], Lang::Ja);
        check(&[("accept-language", "JA")], Lang::Ja);
        check(&[("accept-language", "en-US,ja;q=0.9")], Lang::En);
        check(
            &[("cookie", "lang=en"), ("accept-language", "ja")],
            Lang::En,
        );
        check(
            &[("cookie", "a=b; lang=ja"), ("accept-language", "en")],
            Lang::Ja,
        );
        check(
            &[("cookie", "lang=xx"), ("accept-language", "ja")],
            Lang::Ja,
        );
    }
}
