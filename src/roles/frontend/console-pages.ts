// The operator's console pages, made on the server so that they work without JavaScript: the task list and a task.
import type { TaskReadiness, TaskStatus } from '../../clients/master-public-client.ts'
import type { TaskEvent } from './console-source.ts'
import { escapeHtml, PAGE_ICON } from './task-page.ts'

export const STATE_LABELS: Record<number, string> = { 0: 'Waiting', 1: 'Processing', 2: 'Finished', 3: 'Failed' }

/** How many tasks one page of the list shows, unless asked otherwise. */
export const PAGE_SIZE = 25

type Section = 'board' | 'tasks'

function layout(title: string, section: Section, body: string): string {
  const current = (s: Section) => (s === section ? ' aria-current="page"' : '')
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="color-scheme" content="light dark">
<title>${escapeHtml(title)} · pixmill</title>
<link rel="icon" href="${PAGE_ICON}">
<link rel="stylesheet" href="/style.css">
</head>
<body>
<a class="skip" href="#main">Skip to the content</a>
<header class="site">
  <a class="brand" href="/">pixmill</a>
  <nav aria-label="Site"><a href="/">Upload</a><a href="/board"${current('board')}>Status board</a><a href="/board/tasks"${current('tasks')}>Tasks</a><a href="/swagger">API</a></nav>
</header>
<main id="main" class="console">
${body}
</main>
</body>
</html>
`
}

/** A time as UTC text a person reads, in a <time> element a script could localise. */
function time(iso: string): string {
  const text = iso
    .replace('T', ' ')
    .replace(/\.\d+Z$/, ' UTC')
    .replace(/Z$/, ' UTC')
  return `<time datetime="${escapeHtml(iso)}">${escapeHtml(text)}</time>`
}

function badge(state: number): string {
  return `<span class="badge state-${state}">${escapeHtml(STATE_LABELS[state] ?? String(state))}</span>`
}

/** The search box: any page of the console finds a task by its id in one step. */
export function findForm(): string {
  return `<form class="console-find" method="get" action="/board/task" role="search" aria-label="Find a task">
  <label for="find-id">Find a task by id</label>
  <span class="inline-field"><input id="find-id" name="id" inputmode="numeric" pattern="(0|[1-9][0-9]{0,14})" required autocomplete="off" size="10">
  <button class="button" type="submit">Find</button></span>
</form>`
}

export interface TaskListPage {
  readonly tasks: readonly TaskStatus[]
  readonly state?: number
  readonly before?: number
  readonly limit: number
  /** Why there is no list (a master of the original protocol), instead of it. */
  readonly unavailable?: string
  /** What the last action did (a task deleted from its page), said at the top. */
  readonly message?: string
}

function listUrl(query: { state?: number; before?: number; limit?: number }): string {
  const params = new URLSearchParams()
  if (query.state !== undefined) params.set('state', String(query.state))
  if (query.before !== undefined) params.set('before', String(query.before))
  if (query.limit !== undefined && query.limit !== PAGE_SIZE) params.set('limit', String(query.limit))
  const text = params.toString()
  return `/board/tasks${text ? `?${text}` : ''}`
}

/** The task list, newest first: a state filter, the search box, and pages that stay put while new tasks come in. */
export function renderTaskList(page: TaskListPage): string {
  const options = ['<option value="">Any state</option>']
  for (const [state, label] of Object.entries(STATE_LABELS)) {
    options.push(`<option value="${state}"${Number(state) === page.state ? ' selected' : ''}>${label}</option>`)
  }
  const heading = page.state === undefined ? 'Tasks' : `${STATE_LABELS[page.state]} tasks`
  const parts = [
    `<h1>${escapeHtml(heading)}</h1>`,
    '<div class="console-tools">',
    `<form class="console-filter" method="get" action="/board/tasks" aria-label="Filter the tasks">
  <label for="state">Show</label>
  <span class="inline-field"><select id="state" name="state">${options.join('')}</select>
  <button class="button" type="submit">Filter</button></span>
</form>`,
    findForm(),
    '</div>',
  ]
  if (page.message) parts.splice(1, 0, `<p class="notice ok" role="status">${escapeHtml(page.message)}</p>`)
  if (page.unavailable) {
    parts.push(`<p class="notice" role="status">${escapeHtml(page.unavailable)}</p>`)
    return layout(heading, 'tasks', parts.join('\n'))
  }
  const rows = page.tasks.map(
    (task) => `<tr>
  <th scope="row"><a href="/board/task?id=${task.id}">${task.id}</a></th>
  <td>${badge(task.state)}</td>
  <td>${task.attempts}</td>
  <td>${time(task.createdAt)}</td>
  <td>${time(task.updatedAt)}</td>
  <td class="reason-cell">${task.error ? escapeHtml(task.error) : ''}</td>
</tr>`,
  )
  const where = page.before === undefined ? 'the newest' : `before task ${page.before}`
  parts.push(
    `<div class="table-wrap">
<table id="task-list">
<caption>${page.tasks.length === 0 ? 'No tasks' : `${page.tasks.length} task${page.tasks.length === 1 ? '' : 's'}`}, ${escapeHtml(where)}, newest first</caption>
<thead><tr><th scope="col">Task</th><th scope="col">State</th><th scope="col">Attempts</th><th scope="col">Created</th><th scope="col">Last change</th><th scope="col">Reason</th></tr></thead>
<tbody>
${rows.join('\n')}
</tbody>
</table>
</div>`,
  )
  const links: string[] = []
  if (page.before !== undefined) links.push(`<a class="button quiet" href="${escapeHtml(listUrl({ state: page.state, limit: page.limit }))}">Newest</a>`)
  const last = page.tasks.at(-1)
  // A full page may have more behind it; the next page starts below its last id, whatever was uploaded meanwhile.
  if (last !== undefined && page.tasks.length >= page.limit && last.id > 0) {
    links.push(`<a class="button quiet" rel="next" href="${escapeHtml(listUrl({ state: page.state, before: last.id, limit: page.limit }))}">Older</a>`)
  }
  if (links.length > 0) parts.push(`<nav class="pager" aria-label="Pages">${links.join(' ')}</nav>`)
  return layout(heading, 'tasks', parts.join('\n'))
}

const EVENT_WORDS: Record<TaskEvent['event'], string> = {
  created: 'Uploaded and queued',
  claimed: 'Claimed by a worker',
  finished: 'Finished',
  failed: 'Failed',
  lease_expired: 'The worker’s lease ran out',
  released: 'Handed back by a worker that stopped',
  retried: 'Put back by an operator',
}

function timelineItem(event: TaskEvent): string {
  const details: string[] = []
  if (event.attempt !== undefined) details.push(`attempt ${event.attempt}`)
  if (event.ms !== undefined) details.push(`${(event.ms / 1000).toFixed(event.ms < 10_000 ? 2 : 1)} s of work`)
  if (event.event === 'failed') details.push(event.forGood ? 'for good' : 'will be tried again')
  const detail = details.length > 0 ? ` <span class="muted">(${escapeHtml(details.join(', '))})</span>` : ''
  const error = event.error ? `<div class="reason">${escapeHtml(event.error)}</div>` : ''
  return `<li class="event-${event.event}">${time(event.at)} <strong>${escapeHtml(EVENT_WORDS[event.event] ?? event.event)}</strong>${detail}${error}</li>`
}

export interface TaskPage {
  readonly task: TaskStatus | TaskReadiness
  /** Undefined when the master offers no timeline (a master of the original protocol). */
  readonly events?: readonly TaskEvent[]
  /** Whether actions want the operator token (PIXMILL_TOKEN is set): the forms then ask for it. */
  readonly tokenNeeded: boolean
  /** What the last action did or why it failed, said at the top. */
  readonly message?: { readonly ok: boolean; readonly text: string }
}

function actionForm(path: string, id: number, label: string, tokenNeeded: boolean, extra = ''): string {
  const token = tokenNeeded ? `<label>Operator token <input type="password" name="token" autocomplete="current-password" required></label>` : ''
  return `<form class="console-action" method="post" action="${path}">
  <input type="hidden" name="id" value="${id}">
  ${extra}${token}
  <button class="button" type="submit">${escapeHtml(label)}</button>
</form>`
}

/** One task: its state, its timeline, both images side by side, and what an operator may do with it. */
export function renderTaskConsolePage(page: TaskPage): string {
  const { task } = page
  const full = 'createdAt' in task ? task : undefined
  const parts = [`<h1>Task ${task.id} ${badge(task.state)}</h1>`, findForm()]
  if (page.message) parts.push(`<p class="notice ${page.message.ok ? 'ok' : 'bad'}" role="status">${escapeHtml(page.message.text)}</p>`)
  if (full) {
    parts.push(`<dl class="facts">
  <div><dt>Attempts</dt><dd>${full.attempts}</dd></div>
  <div><dt>Created</dt><dd>${time(full.createdAt)}</dd></div>
  <div><dt>Last change</dt><dd>${time(full.updatedAt)}</dd></div>
  ${full.error ? `<div class="wide"><dt>Last failure</dt><dd class="reason">${escapeHtml(full.error)}</dd></div>` : ''}
</dl>`)
  }
  parts.push('<h2>Timeline</h2>')
  if (page.events === undefined) parts.push('<p class="notice">The master offers no timeline: it knows only the original endpoints.</p>')
  else if (page.events.length === 0) parts.push('<p class="muted">No events recorded for this task.</p>')
  else parts.push(`<ol class="timeline" id="timeline">\n${page.events.map(timelineItem).join('\n')}\n</ol>`)
  parts.push(`<h2>Images</h2>
<div class="pair">
  <figure><img src="/board/image?id=${task.id}&amp;area=working" alt="The uploaded image of task ${task.id}" loading="lazy"><figcaption>Uploaded</figcaption></figure>
  ${task.state === 2 ? `<figure><img src="/board/image?id=${task.id}&amp;area=finished" alt="The processed image of task ${task.id}" loading="lazy"><figcaption>Processed</figcaption></figure>` : `<figure class="placeholder"><div>${task.state === 3 ? 'No result: the task failed.' : 'Not processed yet.'}</div><figcaption>Processed</figcaption></figure>`}
</div>`)
  const actions: string[] = []
  if (task.state === 3) actions.push(actionForm('/board/task/retry', task.id, 'Try again', page.tokenNeeded))
  if (task.state >= 2) {
    const confirm = `<label class="confirm"><input type="checkbox" name="confirm" value="yes" required> Remove task ${task.id} and both its images for good</label>`
    actions.push(actionForm('/board/task/delete', task.id, 'Delete', page.tokenNeeded, confirm))
  }
  if (actions.length > 0) parts.push('<h2>Actions</h2>', `<div class="console-actions">${actions.join('\n')}</div>`)
  return layout(`Task ${task.id}`, 'board', parts.join('\n'))
}

/** A task the master does not know. */
export function renderUnknownConsoleTask(id: number): string {
  return layout(
    'Unknown task',
    'board',
    `<h1>No task ${id}</h1>\n${findForm()}\n<p role="status">There is no task with this id (it may have been removed).</p>`,
  )
}
