// The bun:sqlite task store's schema, brought up to date on open (files of earlier versions included).
import type { Database } from 'bun:sqlite'
import { bucketOf, COUNTED_EVENTS, EVENT, PROCESSING_COLUMNS } from './task-events.ts'

/**
 * A task is visible (seen by reads, counted) unless it is held (`ready = 0`: its image is on its way) or marked for
 * removal (`removing_until` set). Every query of visible tasks uses this condition.
 */
export const VISIBLE = 'ready = 1 AND removing_until IS NULL'

const TABLES = `
CREATE TABLE IF NOT EXISTS tasks (
  id          INTEGER PRIMARY KEY,
  state       INTEGER NOT NULL DEFAULT 0 CHECK (state IN (0, 1, 2, 3)),
  attempts    INTEGER NOT NULL DEFAULT 0,
  error       TEXT,
  created_at  INTEGER NOT NULL,
  updated_at  INTEGER NOT NULL,
  lease_until INTEGER,
  lease_token TEXT,
  ready       INTEGER NOT NULL DEFAULT 1
);
-- The next id lives apart from the rows so that an id is never handed out twice, even after a removal.
CREATE TABLE IF NOT EXISTS sequence (name TEXT PRIMARY KEY, next INTEGER NOT NULL) WITHOUT ROWID;
INSERT OR IGNORE INTO sequence (name, next) VALUES ('tasks', 0);
`

const INDEXES = `
CREATE INDEX IF NOT EXISTS tasks_claimable ON tasks (id) WHERE state = 0 AND ready = 1;
CREATE INDEX IF NOT EXISTS tasks_leased ON tasks (lease_until) WHERE state = 1;
CREATE INDEX IF NOT EXISTS tasks_held ON tasks (created_at) WHERE ready = 0;
CREATE INDEX IF NOT EXISTS tasks_by_state ON tasks (state, id);
-- For the sweep: finished and failed tasks by when they ended, and removals begun.
CREATE INDEX IF NOT EXISTS tasks_ended ON tasks (updated_at) WHERE state >= 2 AND ${VISIBLE};
CREATE INDEX IF NOT EXISTS tasks_removing ON tasks (removing_until) WHERE removing_until IS NOT NULL;
`

/** Visible tasks per state, kept by triggers in the same transaction as every change: /counts reads four rows. */
const COUNTS = `
CREATE TABLE task_counts (state INTEGER PRIMARY KEY, n INTEGER NOT NULL) WITHOUT ROWID;
INSERT INTO task_counts (state, n) SELECT s.value, (SELECT COUNT(*) FROM tasks WHERE state = s.value AND ${VISIBLE})
  FROM (SELECT 0 AS value UNION ALL SELECT 1 UNION ALL SELECT 2 UNION ALL SELECT 3) AS s;
CREATE TRIGGER tasks_counted_insert AFTER INSERT ON tasks WHEN NEW.ready = 1 AND NEW.removing_until IS NULL
BEGIN UPDATE task_counts SET n = n + 1 WHERE state = NEW.state; END;
CREATE TRIGGER tasks_counted_delete AFTER DELETE ON tasks WHEN OLD.ready = 1 AND OLD.removing_until IS NULL
BEGIN UPDATE task_counts SET n = n - 1 WHERE state = OLD.state; END;
CREATE TRIGGER tasks_counted_update AFTER UPDATE OF state, ready, removing_until ON tasks
WHEN OLD.state IS NOT NEW.state OR OLD.ready IS NOT NEW.ready OR (OLD.removing_until IS NULL) IS NOT (NEW.removing_until IS NULL)
BEGIN
  UPDATE task_counts SET n = n - 1 WHERE state = OLD.state AND OLD.ready = 1 AND OLD.removing_until IS NULL;
  UPDATE task_counts SET n = n + 1 WHERE state = NEW.state AND NEW.ready = 1 AND NEW.removing_until IS NULL;
END;
`

/**
 * Each task's events (its timeline), written in the transaction of the change they describe, and deleted with the task
 * by a trigger. The per-minute figures are kept by a trigger on every counted event, as task_counts is: the history of
 * the charts is read from a row per minute, never from the tasks. The queue's depth is sampled into its own table.
 */
const TIMELINE = `
CREATE TABLE IF NOT EXISTS task_events (
  id       INTEGER PRIMARY KEY,
  task_id  INTEGER NOT NULL,
  at       INTEGER NOT NULL,
  event    INTEGER NOT NULL,
  attempt  INTEGER,
  error    TEXT,
  for_good INTEGER,
  ms       INTEGER
);
CREATE INDEX IF NOT EXISTS task_events_by_task ON task_events (task_id);
CREATE TRIGGER IF NOT EXISTS tasks_events_removed AFTER DELETE ON tasks BEGIN DELETE FROM task_events WHERE task_id = OLD.id; END;
CREATE TABLE IF NOT EXISTS task_minutes (
  minute INTEGER PRIMARY KEY,
  created INTEGER NOT NULL DEFAULT 0, finished INTEGER NOT NULL DEFAULT 0, failed INTEGER NOT NULL DEFAULT 0, failed_for_good INTEGER NOT NULL DEFAULT 0,
  ${PROCESSING_COLUMNS.map((c) => `${c} INTEGER NOT NULL DEFAULT 0`).join(', ')}
);
CREATE TRIGGER IF NOT EXISTS task_events_counted AFTER INSERT ON task_events WHEN NEW.event IN (${COUNTED_EVENTS})
BEGIN
  INSERT INTO task_minutes (minute, created, finished, failed, failed_for_good, ${PROCESSING_COLUMNS.join(', ')})
  VALUES (NEW.at - NEW.at % 60000, NEW.event = ${EVENT.created}, NEW.event = ${EVENT.finished},
    NEW.event IN (${EVENT.failed}, ${EVENT.lease_expired}), NEW.event IN (${EVENT.failed}, ${EVENT.lease_expired}) AND NEW.for_good = 1,
    ${PROCESSING_COLUMNS.map((_, i) => `COALESCE(${bucketOf('NEW.ms')} = ${i} AND NEW.ms IS NOT NULL, 0)`).join(', ')})
  ON CONFLICT (minute) DO UPDATE SET created = created + excluded.created, finished = finished + excluded.finished,
    failed = failed + excluded.failed, failed_for_good = failed_for_good + excluded.failed_for_good,
    ${PROCESSING_COLUMNS.map((c) => `${c} = ${c} + excluded.${c}`).join(', ')};
END;
CREATE TABLE IF NOT EXISTS queue_samples (minute INTEGER PRIMARY KEY, at INTEGER NOT NULL, waiting INTEGER NOT NULL, in_progress INTEGER NOT NULL);
`

/** Creates the schema, or brings a file of an earlier version up to date, in one transaction. */
export function migrateSqlite(db: Database): void {
  db.transaction(() => {
    db.exec(TABLES)
    const columns = new Set(db.prepare<{ name: string }, []>('PRAGMA table_info(tasks)').all().map((c) => c.name))
    // Added after the first release: older files get the columns on open.
    if (!columns.has('request_id')) db.exec('ALTER TABLE tasks ADD COLUMN request_id TEXT')
    if (!columns.has('removing_until')) db.exec('ALTER TABLE tasks ADD COLUMN removing_until INTEGER')
    if (!columns.has('key_hash')) db.exec('ALTER TABLE tasks ADD COLUMN key_hash TEXT')
    if (!columns.has('trace_parent')) db.exec('ALTER TABLE tasks ADD COLUMN trace_parent TEXT')
    // When the current attempt was claimed: its processing time is taken from it when it finishes.
    if (!columns.has('claimed_at')) db.exec('ALTER TABLE tasks ADD COLUMN claimed_at INTEGER')
    db.exec(INDEXES)
    const hasCounts = db.prepare<{ n: number }, []>(`SELECT COUNT(*) AS n FROM sqlite_master WHERE type = 'table' AND name = 'task_counts'`).get()!.n > 0
    // Counted once, when the table is made; the triggers keep it from then on.
    if (!hasCounts) db.exec(COUNTS)
    db.exec(TIMELINE)
  }).immediate()
}
