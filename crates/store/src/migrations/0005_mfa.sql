-- Schema version 5: second factor (TOTP) for administrators.
--
-- totp_secret: the user's TOTP key (20 bytes), pending until confirmed, then in use while mfa_enabled = 1.
-- The file is SQLCipher-encrypted, so the key is at rest like every other row; it is never logged.
-- totp_last_step: the last 30-second step whose code this user used (a code works once).
ALTER TABLE users ADD COLUMN totp_secret BLOB;
ALTER TABLE users ADD COLUMN mfa_enabled INTEGER NOT NULL DEFAULT 0;
ALTER TABLE users ADD COLUMN totp_last_step INTEGER;
