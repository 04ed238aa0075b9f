"""The one write pipeline of the writing services: decisions (pure), the unit of work (abstract,
and on PostgreSQL), a batch's items and results, and the pipeline that runs them."""
