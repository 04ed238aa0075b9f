-- The interval in which each version of an activity is in force, stored (issue 14,
-- docs/benchmarks.md "Stored validity intervals"). The view activity_validity (migration 002)
-- computed it with a window over every version of every activity, again in each statement that
-- classifies sessions: about a quarter of the first-attendance upkeep, which runs in every
-- consumer transaction. The view keeps its name and columns and now reads this table, so every
-- reader is unchanged.
CREATE TABLE activity_intervals (
    organisation_id     text NOT NULL,
    activity_id         text NOT NULL,
    version             integer NOT NULL,
    category            text NOT NULL,
    aimed_at_connection boolean NOT NULL,
    neighbourhood       text NOT NULL,
    valid_from          timestamptz NOT NULL,
    valid_to            timestamptz NOT NULL,
    PRIMARY KEY (organisation_id, activity_id, version)
);

-- The definition of migration 002, for the activities (orgs[i], activities[i]) (NULL: all).
CREATE FUNCTION activity_intervals_of(schema_name text, orgs text[], activities text[])
RETURNS TABLE (organisation_id text, activity_id text, version integer, category text,
               aimed_at_connection boolean, neighbourhood text, valid_from timestamptz,
               valid_to timestamptz)
LANGUAGE plpgsql STABLE AS $$
BEGIN
    RETURN QUERY EXECUTE format($q$
        SELECT organisation_id, activity_id, version, category, aimed_at_connection,
               neighbourhood,
               CASE WHEN row_number() OVER w = 1 THEN '-infinity'::timestamptz ELSE starts END,
               coalesce(lead(starts) OVER w, 'infinity'::timestamptz)
        FROM (
            SELECT *, max(valid_from) OVER (PARTITION BY organisation_id, activity_id
                                            ORDER BY version ROWS UNBOUNDED PRECEDING) AS starts
            FROM %I.activity_versions
            WHERE $1 IS NULL OR (organisation_id, activity_id) IN (SELECT * FROM unnest($1, $2))
        ) v
        WINDOW w AS (PARTITION BY organisation_id, activity_id ORDER BY version)
    $q$, schema_name) USING orgs, activities;
END $$;

INSERT INTO activity_intervals SELECT * FROM activity_intervals_of(current_schema(), NULL, NULL);

-- Kept by the database itself, in the statement that inserts versions, whoever inserts them (the
-- consumer, a rebuild's replay, a test): the rows of the activities that got a version are
-- computed again from all their versions. Two transactions adding versions of one activity at
-- once would each miss the other's, so each first takes a lock per activity (in one order: no
-- deadlock between two of them) and computes after it: the other's versions are then committed
-- and, in READ COMMITTED, seen by the next statement. The schema is the trigger's table's own
-- (TG_TABLE_SCHEMA), not a search path: a rebuild renames its schema into place.
CREATE FUNCTION activity_intervals_upkeep() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    orgs text[];
    activities text[];
BEGIN
    SELECT array_agg(o ORDER BY o, a), array_agg(a ORDER BY o, a) INTO orgs, activities
    FROM (SELECT DISTINCT organisation_id, activity_id FROM new_versions) AS n (o, a);
    IF orgs IS NULL THEN
        RETURN NULL;
    END IF;
    FOR i IN 1 .. array_length(orgs, 1) LOOP
        -- 16707 (0x4143, "AC"): this lock's class, apart from the other advisory locks' keys.
        PERFORM pg_advisory_xact_lock(
            16707, hashtext(TG_TABLE_SCHEMA || '/' || orgs[i] || '/' || activities[i]));
    END LOOP;
    EXECUTE format('DELETE FROM %I.activity_intervals '
                   'WHERE (organisation_id, activity_id) IN (SELECT * FROM unnest($1, $2))',
                   TG_TABLE_SCHEMA)
        USING orgs, activities;
    EXECUTE format('INSERT INTO %1$I.activity_intervals '
                   'SELECT * FROM %1$I.activity_intervals_of($3, $1, $2)', TG_TABLE_SCHEMA)
        USING orgs, activities, TG_TABLE_SCHEMA;
    RETURN NULL;
END $$;

CREATE TRIGGER activity_intervals_upkeep AFTER INSERT ON activity_versions
    REFERENCING NEW TABLE AS new_versions
    FOR EACH STATEMENT EXECUTE FUNCTION activity_intervals_upkeep();

CREATE OR REPLACE VIEW activity_validity AS
    SELECT organisation_id, activity_id, version, category, aimed_at_connection, neighbourhood,
           valid_from, valid_to
    FROM activity_intervals;
