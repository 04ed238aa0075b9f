-- The coalition's partner organisations (domain.md §6): the denominator of "share of partner
-- organisations with trained staff", with the dates they joined and left. Having an API key does
-- not make an organisation a partner: readers, Prometheus, the coalition itself and test
-- organisations have keys and are never registered here. Written by `verbinding partner register`
-- and `verbinding partner leave` only.
CREATE TABLE partners (
    organisation_id  text PRIMARY KEY,
    name             text NOT NULL,
    joined           date NOT NULL,
    left_on          date,  -- the first day it is no longer a partner
    CHECK (left_on IS NULL OR left_on > joined)
);
