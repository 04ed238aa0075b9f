"""The disclosure audit (domain.md §7): what can a reader work out from everything published?

It reads like a reader does — over HTTP, with the keys of the audiences — and builds its own
model of the underlying counts from the definitions of domain.md §6, independent of the
suppression engine's. Then, for every count that something hides, linear programming gives the
smallest and largest value consistent with everything published; a range narrower than 2 is a
disclosure, printed with the figures that gave it away.

    verbinding disclosure audit --year 2025 --key $COALITION_KEY \\
        --analyst-key $ANALYST_KEY --partner-key $PARTNER_KEY --metrics-key $SCRAPE_KEY
    python -m tools.disclosure_audit ...   (the same)

Modules: :mod:`.published` (what was read), :mod:`.model` (the reader's model),
:mod:`.check` (the bounds and the report), :mod:`.collect` (the HTTP reads), :mod:`.cli`;
:mod:`.synthetic` makes a year of records of known truth for tests and timing.
"""
