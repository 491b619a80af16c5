-- A claim reads each kind's oldest due jobs (registry_storage::jobs::claim_among weighs kinds by
-- the share of their limit in use): one index range per kind, whatever another kind's backlog.
CREATE INDEX jobs_kind_due ON jobs (kind, run_at, id) WHERE status IN ('pending', 'running');
