-- User groups (Harbor's: LDAP groups by DN, OIDC and HTTP groups by name), members of projects
-- beside users: a membership is of exactly one user or one group.
CREATE TABLE user_groups (
    id BIGSERIAL PRIMARY KEY,
    kind SMALLINT NOT NULL,
    key TEXT NOT NULL,
    record TEXT NOT NULL,
    UNIQUE (kind, key)
);

ALTER TABLE members ALTER COLUMN user_id DROP NOT NULL;
ALTER TABLE members ADD COLUMN group_id BIGINT REFERENCES user_groups (id) ON DELETE CASCADE;
ALTER TABLE members ADD CONSTRAINT members_one_entity CHECK (num_nonnulls(user_id, group_id) = 1);
ALTER TABLE members ADD CONSTRAINT members_project_group UNIQUE (project_id, group_id);
