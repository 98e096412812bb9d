// The PostgreSQL task store's schema and its migrations, run once per start under an advisory lock.
import type { SQL } from 'bun'
import { bucketOf, COUNTED_EVENTS, EVENT, PROCESSING_COLUMNS } from './task-events.ts'

/**
 * Rows of the per-minute figures per minute: each database connection adds to one of them (by its backend's pid), so
 * that connections recording events at once do not queue on one row lock held until each commit. Reads add them up.
 */
export const FIGURE_SHARDS = 8

/**
 * Numbered migrations, applied in order once each. A database records how many it has in `pixmill_schema`;
 * a later release appends to this list and never edits an entry that has shipped.
 */
const MIGRATIONS: readonly string[] = [
  `
  CREATE TABLE IF NOT EXISTS pixmill_tasks (
    id          BIGINT PRIMARY KEY,
    state       SMALLINT NOT NULL DEFAULT 0 CHECK (state IN (0, 1, 2, 3)),
    attempts    INTEGER NOT NULL DEFAULT 0,
    error       TEXT,
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL,
    lease_until BIGINT,
    lease_token TEXT,
    ready       BOOLEAN NOT NULL DEFAULT TRUE,
    request_id  TEXT
  );
  CREATE INDEX IF NOT EXISTS pixmill_tasks_claimable ON pixmill_tasks (id) WHERE state = 0 AND ready;
  CREATE INDEX IF NOT EXISTS pixmill_tasks_leased ON pixmill_tasks (lease_until) WHERE state = 1;
  CREATE INDEX IF NOT EXISTS pixmill_tasks_held ON pixmill_tasks (created_at) WHERE NOT ready;
  CREATE INDEX IF NOT EXISTS pixmill_tasks_by_state ON pixmill_tasks (state, id);
  -- A counter row rather than a SEQUENCE: a sequence skips up to 32 values after a crash and on a rolled-back
  -- insert, and ids here count up from 0 without gaps (held by the row lock until the insert commits).
  CREATE TABLE IF NOT EXISTS pixmill_counters (name TEXT PRIMARY KEY, next BIGINT NOT NULL);
  INSERT INTO pixmill_counters (name, next) VALUES ('tasks', 0) ON CONFLICT (name) DO NOTHING;
  `,
  // 2: removal (retention and operators' deletes). A task being removed is seen by no read; the mark is a lease.
  `
  ALTER TABLE pixmill_tasks ADD COLUMN IF NOT EXISTS removing_until BIGINT;
  CREATE INDEX IF NOT EXISTS pixmill_tasks_ended ON pixmill_tasks (updated_at) WHERE state >= 2 AND ready AND removing_until IS NULL;
  CREATE INDEX IF NOT EXISTS pixmill_tasks_removing ON pixmill_tasks (removing_until) WHERE removing_until IS NOT NULL;
  `,
  // 3: private results. Only the SHA-256 of a task's key is kept; the master compares it.
  `
  ALTER TABLE pixmill_tasks ADD COLUMN IF NOT EXISTS key_hash TEXT;
    `,
  // 4: the upload's trace context, which the worker's spans continue.
  `
  ALTER TABLE pixmill_tasks ADD COLUMN IF NOT EXISTS trace_parent TEXT;
  `,
  // 5: each task's events (its timeline), written by the statement that makes the change and deleted with the task;
  // per-minute figures kept by a trigger on every counted event; the queue's depth sampled per minute. The processing
  // time of an attempt runs from claimed_at.
  `
  ALTER TABLE pixmill_tasks ADD COLUMN IF NOT EXISTS claimed_at BIGINT;
  CREATE TABLE IF NOT EXISTS pixmill_task_events (
    task_id  BIGINT NOT NULL,
    seq      BIGINT GENERATED ALWAYS AS IDENTITY,
    at       BIGINT NOT NULL,
    event    SMALLINT NOT NULL,
    attempt  INTEGER,
    error    TEXT,
    for_good BOOLEAN,
    ms       INTEGER,
    PRIMARY KEY (task_id, seq)
  );
  CREATE TABLE IF NOT EXISTS pixmill_task_minutes (
    minute BIGINT NOT NULL,
    shard  SMALLINT NOT NULL,
    created INTEGER NOT NULL DEFAULT 0, finished INTEGER NOT NULL DEFAULT 0, failed INTEGER NOT NULL DEFAULT 0, failed_for_good INTEGER NOT NULL DEFAULT 0,
    ${PROCESSING_COLUMNS.map((c) => `${c} INTEGER NOT NULL DEFAULT 0`).join(', ')},
    PRIMARY KEY (minute, shard)
  );
  CREATE TABLE IF NOT EXISTS pixmill_queue_samples (minute BIGINT PRIMARY KEY, at BIGINT NOT NULL, waiting INTEGER NOT NULL, in_progress INTEGER NOT NULL);
  CREATE OR REPLACE FUNCTION pixmill_count_event() RETURNS trigger LANGUAGE plpgsql AS $$
  DECLARE
    bucket INTEGER := CASE WHEN NEW.ms IS NULL THEN -1 ELSE ${bucketOf('NEW.ms')} END;
    failure BOOLEAN := NEW.event IN (${EVENT.failed}, ${EVENT.lease_expired});
  BEGIN
    INSERT INTO pixmill_task_minutes AS m (minute, shard, created, finished, failed, failed_for_good, ${PROCESSING_COLUMNS.join(', ')})
    VALUES (NEW.at - NEW.at % 60000, pg_backend_pid() % ${FIGURE_SHARDS}, (NEW.event = ${EVENT.created})::int, (NEW.event = ${EVENT.finished})::int,
      failure::int, (failure AND COALESCE(NEW.for_good, FALSE))::int, ${PROCESSING_COLUMNS.map((_, i) => `(bucket = ${i})::int`).join(', ')})
    ON CONFLICT (minute, shard) DO UPDATE SET created = m.created + EXCLUDED.created, finished = m.finished + EXCLUDED.finished,
      failed = m.failed + EXCLUDED.failed, failed_for_good = m.failed_for_good + EXCLUDED.failed_for_good,
      ${PROCESSING_COLUMNS.map((c) => `${c} = m.${c} + EXCLUDED.${c}`).join(', ')};
    RETURN NULL;
  END $$;
  DROP TRIGGER IF EXISTS pixmill_task_events_counted ON pixmill_task_events;
  CREATE TRIGGER pixmill_task_events_counted AFTER INSERT ON pixmill_task_events
    FOR EACH ROW WHEN (NEW.event IN (${COUNTED_EVENTS})) EXECUTE FUNCTION pixmill_count_event();
  `,
]

/** The schema version a database has once migrated: the number of migrations. */
export const SCHEMA_VERSION = MIGRATIONS.length

/** Arbitrary, fixed: every pixmill instance migrating the same database takes this advisory lock. */
const MIGRATION_LOCK = 7_368_801_920_001

/**
 * Brings the database's schema up to date. Instances that start together queue on a transaction-scoped advisory
 * lock, so exactly one of them runs a migration and the others find it done (concurrent CREATE ... IF NOT EXISTS
 * alone can still fail on the system catalogues' unique indexes).
 */
export async function migrate(sql: SQL): Promise<number> {
  return sql.begin(async (tx) => {
    await tx`SELECT pg_advisory_xact_lock(${MIGRATION_LOCK})`
    await tx`CREATE TABLE IF NOT EXISTS pixmill_schema (version INTEGER NOT NULL)`
    const [row] = await tx<{ version: number }[]>`SELECT version FROM pixmill_schema`
    const from = row?.version ?? 0
    for (const step of MIGRATIONS.slice(from)) await tx.unsafe(step)
    if (!row) await tx`INSERT INTO pixmill_schema (version) VALUES (${MIGRATIONS.length})`
    else if (from < MIGRATIONS.length) await tx`UPDATE pixmill_schema SET version = ${MIGRATIONS.length}`
    return MIGRATIONS.length
  })
}
