-- rmf-dash store, version 6: the site the store belongs to (src/store/leader.rs). One site per
-- database (or schema): the RMF data tables are not keyed by site, and terms and fencing are the
-- store's, so two sites on one store would fence each other and mix their data. The first main
-- process to claim a term records its `--site-name` here; a main process of another site is
-- refused at start, before it takes any lock or term.
CREATE TABLE site (
    id smallint PRIMARY KEY DEFAULT 1 CHECK (id = 1),
    name text NOT NULL,
    claimed_by text NOT NULL,
    claimed_at timestamptz NOT NULL DEFAULT now()
);

-- A store written before this version belongs to the site of its latest term.
INSERT INTO site (id, name, claimed_by, claimed_at)
SELECT 1, site, writer, acquired_at FROM leader_terms ORDER BY term DESC LIMIT 1;
