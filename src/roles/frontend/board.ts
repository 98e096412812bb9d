// What the status board shows, read for `/api/board` and for its live feed: counts, the latest and the failed tasks, and
// the live workers; and the feed that sends both it and the charts to every open board.
import type { MasterPublicClient } from '../../clients/master-public-client.ts'
import { NotOffered } from '../../shared/errors.ts'
import { type BoardFeed, createBoardFeed } from './board-feed.ts'
import { chartData } from './chart-data.ts'
import type { ConsoleSource } from './console-source.ts'
import type { WorkerDirectory, WorkerView } from './worker-directory.ts'

/** Reads the board's figures; a master of the original protocol gives none, which the board says. */
export async function boardFigures(master: Pick<MasterPublicClient, 'counts' | 'tasks'>, workers: WorkerDirectory | undefined) {
  const generatedAt = new Date().toISOString()
  // The workers come from kv and their own ports: shown whatever the master says, and a kv outage only empties them.
  const workersRead: Promise<{ workers: WorkerView[]; workersProblem?: string }> = (workers?.list() ?? Promise.resolve([])).then(
    (list) => ({ workers: list }),
    (error: Error) => ({ workers: [], workersProblem: `The workers cannot be listed: ${error.message}` }),
  )
  try {
    const [counts, latest, failed, listed] = await Promise.all([
      master.counts(),
      master.tasks({ limit: 25 }),
      master.tasks({ state: 3, limit: 50 }),
      workersRead,
    ])
    return { counts, latest, failed, ...listed, generatedAt }
  } catch (error) {
    if (!(error instanceof NotOffered)) throw error
    return {
      unavailable:
        'The master offers no status: it knows only the original endpoints, so there are no counts or task lists to show. Uploads and downloads work.',
      ...(await workersRead),
      generatedAt,
    }
  }
}

/** The live feed of one frontend: the board's figures every 3 s and the charts' every 15 s, one read for every board. */
export function boardFeedOf(master: Pick<MasterPublicClient, 'counts' | 'tasks'> & ConsoleSource, workers: WorkerDirectory | undefined): BoardFeed {
  return createBoardFeed({ board: () => boardFigures(master, workers), history: (window) => chartData(window, master, workers) })
}
