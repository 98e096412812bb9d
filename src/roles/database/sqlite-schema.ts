// The bun:sqlite task store's schema, brought up to date on open (files of earlier versions included).
import type { Database } from 'bun:sqlite'
import { bucketOf, FIGURE_RULES, PROCESSING_COLUMNS } from './task-events.ts'

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
 * Per-minute figures, kept by triggers on the tasks in the transaction of every change (as task_counts is), from the
 * change itself (FIGURE_RULES): the history of the charts reads a row per minute, never the tasks. A claim fires none.
 * The queue's depth is sampled into its own table.
 */
const FIGURES = `
CREATE TABLE IF NOT EXISTS task_minutes (
  minute INTEGER PRIMARY KEY,
  created INTEGER NOT NULL DEFAULT 0, finished INTEGER NOT NULL DEFAULT 0, failed INTEGER NOT NULL DEFAULT 0, failed_for_good INTEGER NOT NULL DEFAULT 0,
  ${PROCESSING_COLUMNS.map((c) => `${c} INTEGER NOT NULL DEFAULT 0`).join(', ')}
);
CREATE TRIGGER IF NOT EXISTS tasks_figures_insert AFTER INSERT ON tasks WHEN NEW.ready = 1
BEGIN ${addToMinute('NEW.created_at', { created: '1' })} END;
CREATE TRIGGER IF NOT EXISTS tasks_figures_update AFTER UPDATE OF state, attempts, ready ON tasks WHEN ${FIGURE_RULES.counted}
BEGIN
  ${addToMinute('NEW.updated_at', { created: FIGURE_RULES.created, finished: FIGURE_RULES.finished, failed: FIGURE_RULES.failed, failed_for_good: FIGURE_RULES.failedForGood }, FIGURE_RULES.ms)}
END;
CREATE TABLE IF NOT EXISTS queue_samples (minute INTEGER PRIMARY KEY, at INTEGER NOT NULL, waiting INTEGER NOT NULL, in_progress INTEGER NOT NULL);
`

/**
 * A file of the release that kept events in a table of their own (task_events, its triggers counting them into the
 * figures and deleting them with their task): each task's events are moved into its row, oldest first, as
 * task-events.ts writes them (trailing nulls left out), and the table goes with its triggers.
 */
const MOVE_EVENTS = `
DROP TRIGGER IF EXISTS tasks_events_removed;
DROP TRIGGER IF EXISTS task_events_counted;
UPDATE tasks SET events = moved.events
FROM (
  SELECT task_id, group_concat(
    CASE WHEN error IS NOT NULL THEN json_array(at, event, attempt, for_good, ms, error)
    WHEN ms IS NOT NULL THEN json_array(at, event, attempt, for_good, ms)
    WHEN for_good IS NOT NULL THEN json_array(at, event, attempt, for_good)
    WHEN attempt IS NOT NULL THEN json_array(at, event, attempt) ELSE json_array(at, event) END,
    ',' ORDER BY id) AS events
  FROM task_events GROUP BY task_id
) AS moved
WHERE tasks.id = moved.task_id;
DROP TABLE task_events;
`

/** The upsert adding `counts` (SQL expressions, 0/1) and a processing time `ms` (SQL, or NULL) to the minute of `at`. */
function addToMinute(at: string, counts: Partial<Record<'created' | 'finished' | 'failed' | 'failed_for_good', string>>, ms = 'NULL'): string {
  const names = ['created', 'finished', 'failed', 'failed_for_good'] as const
  return `INSERT INTO task_minutes (minute, ${names.join(', ')}, ${PROCESSING_COLUMNS.join(', ')})
    VALUES (${at} - ${at} % 60000, ${names.map((n) => counts[n] ?? '0').join(', ')},
      ${PROCESSING_COLUMNS.map((_, i) => `coalesce((${ms}) IS NOT NULL AND (${bucketOf(`(${ms})`)}) = ${i}, 0)`).join(', ')})
    ON CONFLICT (minute) DO UPDATE SET ${[...names, ...PROCESSING_COLUMNS].map((c) => `${c} = ${c} + excluded.${c}`).join(', ')};`
}

/** Creates the schema, or brings a file of an earlier version up to date, in one transaction. */
export function migrateSqlite(db: Database): void {
  db.transaction(() => {
    db.exec(TABLES)
    const columns = new Set(
      db
        .prepare<{ name: string }, []>('PRAGMA table_info(tasks)')
        .all()
        .map((c) => c.name),
    )
    // Added after the first release: older files get the columns on open.
    if (!columns.has('request_id')) db.exec('ALTER TABLE tasks ADD COLUMN request_id TEXT')
    if (!columns.has('removing_until')) db.exec('ALTER TABLE tasks ADD COLUMN removing_until INTEGER')
    if (!columns.has('key_hash')) db.exec('ALTER TABLE tasks ADD COLUMN key_hash TEXT')
    if (!columns.has('trace_parent')) db.exec('ALTER TABLE tasks ADD COLUMN trace_parent TEXT')
    // The task's timeline (task-events.ts), and when its current attempt was claimed (its processing time runs from it).
    if (!columns.has('events')) db.exec('ALTER TABLE tasks ADD COLUMN events TEXT')
    if (!columns.has('claimed_at')) db.exec('ALTER TABLE tasks ADD COLUMN claimed_at INTEGER')
    db.exec(INDEXES)
    const hasCounts = db.prepare<{ n: number }, []>(`SELECT COUNT(*) AS n FROM sqlite_master WHERE type = 'table' AND name = 'task_counts'`).get()!.n > 0
    // Counted once, when the table is made; the triggers keep it from then on.
    if (!hasCounts) db.exec(COUNTS)
    const hasEventTable = db.prepare<{ n: number }, []>(`SELECT COUNT(*) AS n FROM sqlite_master WHERE type = 'table' AND name = 'task_events'`).get()!.n > 0
    if (hasEventTable) db.exec(MOVE_EVENTS)
    db.exec(FIGURES)
  }).immediate()
}
