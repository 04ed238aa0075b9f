-- A trained professional or volunteer can be erased too (by the reference sent with their
-- trainings): the erasure's scope says so, still without anything of the person.
ALTER TABLE erasures DROP CONSTRAINT erasures_scope_check;
ALTER TABLE erasures ADD CONSTRAINT erasures_scope_check
    CHECK (scope IN ('organisation', 'resident', 'person'));
