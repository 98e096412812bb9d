// The status page of one task for a browser without JavaScript: it reloads itself until the task is done.
import type { TaskReadiness, TaskStatus } from '../../clients/master-public-client.ts'

const WORDS: Record<number, { label: string; detail: string }> = {
  0: { label: 'Waiting', detail: 'Your image is queued and will be processed soon.' },
  1: { label: 'Processing', detail: 'A worker is swapping the red and green channels now.' },
  2: { label: 'Finished', detail: 'Your image is ready.' },
  3: { label: 'Failed', detail: 'The image could not be processed.' },
}

/** The pages' icon, inline so that no request for /favicon.ico goes unanswered. */
export const PAGE_ICON =
  'data:image/svg+xml,%3Csvg xmlns=%22http://www.w3.org/2000/svg%22 viewBox=%220 0 2 2%22%3E%3Cpath fill=%22%23d93025%22 d=%22M0 0h2L0 2z%22/%3E%3Cpath fill=%22%23188038%22 d=%22M2 0v2H0z%22/%3E%3C/svg%3E'

/** Seconds between reloads while the task is not done. */
const REFRESH_SECONDS = 2

export function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`)
}

function layout(title: string, body: string, refresh: boolean): string {
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
${refresh ? `<meta http-equiv="refresh" content="${REFRESH_SECONDS}">` : ''}
<title>${escapeHtml(title)} · pixmill</title>
<link rel="icon" href="${PAGE_ICON}">
<link rel="stylesheet" href="/style.css">
</head>
<body>
<header class="site"><a class="brand" href="/">pixmill</a></header>
<main class="narrow">
${body}
<p><a href="/">Upload another image</a></p>
</main>
</body>
</html>
`
}

/** What a master of the original protocol can tell of a task not finished: it may be waiting or in progress. */
const NOT_FINISHED = { label: 'Not finished yet', detail: 'Your image is queued or being processed; this server tells only when it is ready.' }

/** The page of a known task; `key`, the task key of a private result, goes into its links to the result. */
export function renderTaskPage(task: TaskStatus | TaskReadiness, key?: string): string {
  const result = escapeHtml(`/getImage?id=${task.id}${key === undefined ? '' : `&key=${encodeURIComponent(key)}`}`)
  const words = 'readinessOnly' in task && task.state === 0 ? NOT_FINISHED : (WORDS[task.state] ?? { label: task.stateName, detail: '' })
  const done = task.state === 2 || task.state === 3
  const parts = [`<h1>Task ${task.id}: ${escapeHtml(words.label)}</h1>`, `<p class="state state-${task.state}" role="status">${escapeHtml(words.detail)}</p>`]
  if (task.state === 3 && 'error' in task && task.error) parts.push(`<p class="reason">Reason: ${escapeHtml(task.error)}</p>`)
  if (task.state === 2) {
    parts.push(
      `<figure class="result"><img src="${result}" alt="The processed image of task ${task.id}"><figcaption>Processed</figcaption></figure>`,
      `<p><a class="button" href="${result}" download="pixmill-${task.id}.png">Download the PNG</a></p>`,
    )
  }
  if (!done) parts.push(`<p class="hint">This page checks again every ${REFRESH_SECONDS} seconds.</p>`)
  return layout(`Task ${task.id}`, parts.join('\n'), !done)
}

/** The page of an id the master does not know. */
export function renderUnknownTaskPage(id: number): string {
  return layout('Unknown task', `<h1>No task ${id}</h1>\n<p role="status">There is no task with this id.</p>`, false)
}
