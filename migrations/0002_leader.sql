-- rmf-dash store, version 2: leadership (src/store/leader.rs).
-- Only the process holding the site's advisory lock claims a term; every write transaction
-- locks this row and checks that its term is still the latest (a fencing token), so writes of
-- two processes can never interleave. `lineage` names the store (proxies use it to tell a
-- takeover, whose sequence numbers continue, from an unrelated restart).
CREATE TABLE leader (
    id smallint PRIMARY KEY DEFAULT 1 CHECK (id = 1),
    term bigint NOT NULL,
    lineage text NOT NULL
);

-- One row per term: who held it, from which checkpoint, and what it wrote (first and last
-- write, last checkpoint, transactions). Successive terms never overlap: a term's first write
-- comes after the previous term's last one.
CREATE TABLE leader_terms (
    term bigint PRIMARY KEY,
    writer text NOT NULL,
    site text NOT NULL,
    acquired_at timestamptz NOT NULL,
    from_checkpoint_ms bigint,
    first_write_at timestamptz,
    last_write_at timestamptz,
    last_checkpoint_ms bigint,
    transactions bigint NOT NULL DEFAULT 0
);
