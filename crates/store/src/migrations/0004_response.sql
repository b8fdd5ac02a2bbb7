-- Schema version 4: threat response. A decision is what the playbook made of one detection at one
-- severity (unique: a detection is decided once per severity, also across restarts); its actions are a
-- persisted state machine:
--   pending ──▶ running ──▶ done | failed
--      ▲           │ retryable failure: back to pending with next_at (backoff)
--   awaiting_approval ──approve──▶ pending     ──reject──▶ rejected
--   running at a restart: idempotent actions go back to pending, the others become interrupted (never
--   run twice).

CREATE TABLE response_decisions (
    id              INTEGER PRIMARY KEY,
    at              INTEGER NOT NULL,
    detection_id    INTEGER NOT NULL,
    severity        TEXT NOT NULL,
    field_id        TEXT NOT NULL,
    device_id       TEXT,
    threat          TEXT NOT NULL,
    rule            TEXT NOT NULL,
    decided_by      TEXT NOT NULL,          -- playbook.<name> | actions.<threat> | none
    suppressed_by   INTEGER,                -- an earlier decision of the same incident
    note            TEXT,
    UNIQUE (detection_id, severity)
);
CREATE INDEX response_decisions_field ON response_decisions(field_id, id);
CREATE INDEX response_decisions_device ON response_decisions(device_id, threat, at);

CREATE TABLE response_actions (
    id              INTEGER PRIMARY KEY,
    decision_id     INTEGER,                -- none for an action a person started (undo)
    field_id        TEXT NOT NULL,
    device_id       TEXT,
    action          TEXT NOT NULL,
    state           TEXT NOT NULL,          -- pending | awaiting_approval | running | done | failed | rejected | interrupted
    trigger         TEXT NOT NULL,          -- response:<decision> | script:<name> | user:<name>
    input           TEXT,                   -- JSON
    output          TEXT,                   -- JSON
    error           TEXT,
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_at         INTEGER NOT NULL,
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL,
    approved_by     TEXT,
    undo_of         INTEGER,
    undone_by       INTEGER
);
CREATE INDEX response_actions_due ON response_actions(state, next_at);
CREATE INDEX response_actions_decision ON response_actions(decision_id);
CREATE INDEX response_actions_device ON response_actions(device_id, id);

-- Where a field's notifications go (the webhook secret is stored here; the file is encrypted).
CREATE TABLE field_notify (
    field_id        TEXT PRIMARY KEY,
    body            TEXT NOT NULL           -- JSON
);

-- Device information collected for the administrator (V29).
CREATE TABLE device_reports (
    id              INTEGER PRIMARY KEY,
    at              INTEGER NOT NULL,
    field_id        TEXT NOT NULL,
    device_id       TEXT NOT NULL,
    action_id       INTEGER,
    body            TEXT NOT NULL           -- JSON
);
CREATE INDEX device_reports_device ON device_reports(device_id, id);

-- Updates asked of a device by the response (handed over to update management).
CREATE TABLE update_requests (
    id              INTEGER PRIMARY KEY,
    at              INTEGER NOT NULL,
    field_id        TEXT NOT NULL,
    device_id       TEXT NOT NULL,
    action_id       INTEGER,
    reason          TEXT NOT NULL,
    state           TEXT NOT NULL           -- requested | done | cancelled
);
CREATE INDEX update_requests_open ON update_requests(device_id) WHERE state = 'requested';
