-- Users of an OpenID Connect provider are found by their issuer and subject when they sign in
-- in the browser (the link is part of the user's record).
CREATE INDEX users_oidc_subject ON users (((record::jsonb -> 'oidc' ->> 'issuer') || ' ' || (record::jsonb -> 'oidc' ->> 'subject')))
    WHERE record::jsonb ? 'oidc';
