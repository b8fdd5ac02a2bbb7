-- Schema version 7: update management. Artifacts are stored content-addressed (files named by their
-- SHA-256; the rows describe them); a campaign is one approved version for one field, with its signed
-- manifest, its rollout stage and failure threshold; progress is tracked per device until the device
-- reports the new version.

CREATE TABLE artifacts (
    sha256      TEXT PRIMARY KEY,
    size        INTEGER NOT NULL,
    kind        TEXT NOT NULL,          -- firmware | config
    version     TEXT NOT NULL,
    name        TEXT NOT NULL,
    at          INTEGER NOT NULL,
    by          TEXT NOT NULL
);

CREATE TABLE campaigns (
    id          INTEGER PRIMARY KEY,
    field_id    TEXT NOT NULL,
    kind        TEXT NOT NULL,
    version     TEXT NOT NULL,
    sha256      TEXT NOT NULL REFERENCES artifacts(sha256),
    sequence    INTEGER NOT NULL,
    payload     TEXT NOT NULL,          -- the signed manifest's JSON text
    signature   TEXT NOT NULL,
    key_id      TEXT NOT NULL,
    percent     INTEGER NOT NULL,       -- devices offered the update (by a stable hash of their id)
    max_failures INTEGER NOT NULL,      -- rejections before the campaign halts (0: never)
    status      TEXT NOT NULL,          -- active | halted | superseded
    note        TEXT,
    created_at  INTEGER NOT NULL,
    by          TEXT NOT NULL,
    UNIQUE (field_id, sequence)
);
CREATE INDEX campaigns_field ON campaigns(field_id, kind, status);

CREATE TABLE update_progress (
    campaign_id INTEGER NOT NULL REFERENCES campaigns(id),
    device_id   TEXT NOT NULL,
    state       TEXT NOT NULL,          -- offered | applied | rejected | confirmed
    reason      TEXT,
    at          INTEGER NOT NULL,
    PRIMARY KEY (campaign_id, device_id)
);
