-- OAuth clients can be disabled (issue 14): a disabled client authenticates nowhere, its access
-- tokens are ended when it is disabled, and its refresh tokens are refused until it is enabled.
ALTER TABLE oauth_clients ADD COLUMN enabled BOOLEAN NOT NULL DEFAULT TRUE;
