-- Who may use the web app and the API: users with a role, API tokens, and who acknowledged an alert.
-- Idempotent (IF NOT EXISTS everywhere); plain PostgreSQL.

-- A person who signs in.  Passwords are argon2id hashes (argon2-cffi's encoded form, salt included).
-- session_epoch is part of every session cookie: bumping it (new password, new role, removal) signs
-- the user out everywhere.
CREATE TABLE IF NOT EXISTS users (
    user_id        bigint       GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    username       text         NOT NULL UNIQUE CHECK (username ~ '^[a-z0-9][a-z0-9._@-]{0,63}$'),
    password_hash  text         NOT NULL,
    role           text         NOT NULL CHECK (role IN ('viewer', 'operator', 'admin')),
    session_epoch  integer      NOT NULL DEFAULT 0,
    created_at     timestamptz  NOT NULL DEFAULT now(),
    last_login_at  timestamptz
);

-- A credential for integrators (Authorization: Bearer <token>).  Only the SHA-256 of the token is
-- stored (the token is 256 random bits, shown once); prefix identifies it in listings.
CREATE TABLE IF NOT EXISTS api_tokens (
    token_id      bigint       GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name          text         NOT NULL CHECK (length(name) BETWEEN 1 AND 64),
    token_hash    text         NOT NULL UNIQUE,
    prefix        text         NOT NULL,
    role          text         NOT NULL CHECK (role IN ('viewer', 'operator', 'admin')),
    created_by    text,
    created_at    timestamptz  NOT NULL DEFAULT now(),
    expires_at    timestamptz,
    last_used_at  timestamptz,
    revoked_at    timestamptz
);
CREATE INDEX IF NOT EXISTS api_tokens_name_idx ON api_tokens (name);

-- Acknowledgements name the signed-in user (or "token:<name>"), never free text: say so in the schema.
COMMENT ON COLUMN alerts.acknowledged_by IS
    'username of the signed-in user who acknowledged, or token:<name> for an API token';
