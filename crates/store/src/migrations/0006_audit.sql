-- Schema version 6: device audit. Every self-report a device sends (with what changed since its
-- previous one), the baselines approved per field and per device (versioned), a field's learning
-- period, and every audit run with what it found.

CREATE TABLE device_states (
    id          INTEGER PRIMARY KEY,
    at          INTEGER NOT NULL,
    field_id    TEXT NOT NULL,
    device_id   TEXT NOT NULL,
    body        TEXT NOT NULL,          -- JSON self-report
    changed     TEXT NOT NULL           -- JSON list of what differs from the previous report
);
CREATE INDEX device_states_device ON device_states(device_id, id);
CREATE INDEX device_states_field ON device_states(field_id, at);

CREATE TABLE baselines (
    field_id    TEXT NOT NULL,
    device_id   TEXT NOT NULL DEFAULT '',   -- '' = the field's own
    version     INTEGER NOT NULL,
    at          INTEGER NOT NULL,
    by          TEXT NOT NULL,
    body        TEXT NOT NULL,              -- JSON Baseline
    PRIMARY KEY (field_id, device_id, version)
);

CREATE TABLE learning (
    field_id    TEXT PRIMARY KEY,
    started_at  INTEGER NOT NULL,
    until_at    INTEGER NOT NULL,
    by          TEXT NOT NULL
);

CREATE TABLE audit_runs (
    id          INTEGER PRIMARY KEY,
    at          INTEGER NOT NULL,
    field_id    TEXT NOT NULL,
    device_id   TEXT NOT NULL,
    trigger     TEXT NOT NULL,          -- report | periodic
    outcome     TEXT NOT NULL,          -- clean | findings | learning | no_baseline
    rules       TEXT NOT NULL           -- JSON list of the rules that fired
);
CREATE INDEX audit_runs_field ON audit_runs(field_id, id);
