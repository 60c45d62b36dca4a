-- PostgreSQL's 0004 adds triggers that notify other replicas of ended sessions. A SQLite
-- database has one Stackgate process, which evicts its own cache as it commits: nothing to add,
-- and this file keeps both backends' migration numbers in step.
SELECT 1;
