// The status board: counts per state, charts of the last hour or day, the latest and the failed tasks, retry and delete,
// the live workers. Live over the board's event stream; polled instead where the stream is refused (private results).
import { lineChart } from '/charts.js'
import { operatorFetch, operatorPost } from '/operator.js'

const REFRESH_MS = 3000
const HISTORY_MS = 15000
const NAMES = { 0: 'Waiting', 1: 'Processing', 2: 'Finished', 3: 'Failed' }
const $ = (selector) => document.querySelector(selector)
const status = $('#board-status')
let timer
let failures = 0
// With private results the board is for operators: the token is asked for once, not at every refresh.
let askedForToken = false

const time = (iso) => new Date(iso).toLocaleString()

function cell(row, text, className) {
  const td = row.insertCell()
  td.textContent = text
  if (className) td.className = className
  return td
}

/** The task's id, linked to its console page. */
function idCell(row, task) {
  const link = document.createElement('a')
  link.href = `/board/task?id=${task.id}`
  link.textContent = String(task.id)
  row.insertCell().append(link)
}

function fill(body, empty, tasks, columns) {
  body.replaceChildren()
  empty.hidden = tasks.length > 0
  for (const task of tasks) columns(body.insertRow(), task)
}

/** An operator's action on a task (retry, delete), with its outcome said on the board. */
async function act(button, path, what, done) {
  button.disabled = true
  const { ok, message } = await operatorPost(path, what)
  $('#action-message').textContent = ok ? done : `${what} failed: ${message}`
  refresh()
}

function actionButton(label, ariaLabel, onClick) {
  const button = document.createElement('button')
  button.type = 'button'
  button.className = 'button quiet'
  button.textContent = label
  button.setAttribute('aria-label', ariaLabel)
  button.addEventListener('click', () => onClick(button))
  return button
}

/** Deleting removes a finished or failed task with both its images, for good: asked first. */
function deleteButton(task) {
  return actionButton('Delete', `Delete task ${task.id}`, (button) => {
    if (!window.confirm(`Delete task ${task.id} and both its images for good?`)) return
    act(button, `/api/delete?id=${task.id}`, `Deleting task ${task.id}`, `Task ${task.id} is deleted.`)
  })
}

const figure = (n) => (n === null || n === undefined ? '–' : String(n))

function renderWorkers(board) {
  $('#workers-problem').hidden = !board.workersProblem
  $('#workers-problem').textContent = board.workersProblem || ''
  fill($('#workers'), $('#workers-empty'), board.workers || [], (row, worker) => {
    cell(row, worker.address)
    cell(row, figure(worker.loops))
    cell(row, figure(worker.busy))
    cell(row, figure(worker.done))
    cell(row, figure(worker.failed))
    cell(row, worker.lastSeen ? time(worker.lastSeen) : 'never')
    cell(row, worker.problem || (worker.reachable ? 'working' : ''), worker.reachable && !worker.problem ? '' : 'reason-cell')
  })
}

function render(board) {
  renderWorkers(board)
  // A master of the original protocol has no counts or task lists: say so instead of showing empty tables.
  for (const section of /** @type {NodeListOf<HTMLElement>} */ (document.querySelectorAll('.board-figures'))) section.hidden = Boolean(board.unavailable)
  $('#board-unavailable').hidden = !board.unavailable
  $('#board-unavailable').textContent = board.unavailable || ''
  if (board.unavailable) return
  for (const [state, n] of Object.entries(board.counts)) $(`#count-${state}`).textContent = String(n)
  fill($('#failed'), $('#failed-empty'), board.failed, (row, task) => {
    idCell(row, task)
    cell(row, String(task.attempts))
    cell(row, time(task.updatedAt))
    cell(row, task.error || 'no reason recorded', 'reason-cell')
    const retry = actionButton('Try again', `Try task ${task.id} again`, (button) =>
      act(button, `/api/retry?id=${task.id}`, `Retrying task ${task.id}`, `Task ${task.id} is queued again.`),
    )
    row.insertCell().append(retry, ' ', deleteButton(task))
  })
  fill($('#latest'), $('#latest-empty'), board.latest, (row, task) => {
    idCell(row, task)
    cell(row, NAMES[task.state] ?? task.stateName)
    cell(row, String(task.attempts))
    cell(row, time(task.createdAt))
    cell(row, time(task.updatedAt))
    const actions = row.insertCell()
    if (task.state >= 2) actions.append(deleteButton(task))
  })
}

const number = (v) => (Number.isInteger(v) ? String(v) : v.toFixed(v < 10 ? 2 : 1))
const seconds = (ms) => (ms >= 1000 ? `${(ms / 1000).toFixed(ms < 10000 ? 2 : 1)} s` : `${Math.round(ms)} ms`)

/** The last figures drawn: the charts are drawn again at a new width when the window is resized. */
let drawn
let resizeTimer
addEventListener('resize', () => {
  clearTimeout(resizeTimer)
  resizeTimer = setTimeout(() => drawn && renderCharts(drawn), 150)
})

/** The four charts, from what /api/history answers. */
function renderCharts(data) {
  drawn = data
  $('#charts-problem').hidden = data.problems.length === 0
  $('#charts-problem').textContent = data.problems.join(' ')
  const times = data.buckets.map((b) => b.at)
  const pick = (name) => data.buckets.map((b) => b[name])
  const chart = (id, title, series, format) => lineChart({ plot: $(`#${id} .chart-plot`), table: $(`#${id} .chart-table`), title, times, series, format })
  const span = data.window === 'day' ? 'the last day' : 'the last hour'
  chart(
    'chart-tasks',
    `Tasks per minute over ${span}`,
    [
      { name: 'Uploaded', values: pick('created'), className: 0 },
      { name: 'Finished', values: pick('finished'), className: 1 },
      { name: 'Failed', values: pick('failed'), className: 2 },
    ],
    number,
  )
  chart(
    'chart-queue',
    `Tasks waiting and in progress over ${span}`,
    [
      { name: 'Waiting', values: pick('waiting'), className: 3 },
      { name: 'Processing', values: pick('inProgress'), className: 4 },
    ],
    number,
  )
  chart(
    'chart-time',
    `Processing time per image over ${span}`,
    [
      { name: 'Median', values: pick('p50'), className: 1 },
      { name: '95th percentile', values: pick('p95'), className: 5 },
    ],
    seconds,
  )
  chart(
    'chart-workers',
    `Images per second by worker over ${span}`,
    data.workers.map((w, n) => ({ name: w.address, values: w.perSecond, className: n % 6 })),
    number,
  )
}

let windowName = 'hour'
let source
let historyTimer

function updated(how) {
  status.className = 'board-status'
  status.textContent = `Updated ${new Date().toLocaleTimeString()}; ${how}.`
}

function trouble(message) {
  status.className = 'board-status bad'
  status.textContent = `The figures cannot be loaded: ${message || 'the frontend cannot be reached'}. Trying again.`
}

/** The board's event stream: figures every 3 s, charts every 15 s. Refused or absent: the board polls instead. */
function connect() {
  source?.close()
  let heard = false
  source = new EventSource(`/api/board/events?window=${windowName}`)
  source.addEventListener('board', (event) => {
    heard = true
    render(JSON.parse(event.data))
    updated('live')
  })
  source.addEventListener('history', (event) => {
    heard = true
    renderCharts(JSON.parse(event.data))
  })
  source.addEventListener('trouble', (event) => trouble(JSON.parse(event.data).message))
  source.onerror = () => {
    if (heard) return trouble('the connection was lost; reconnecting')
    source.close()
    source = undefined
    refresh()
    refreshHistory()
  }
}

/** Polling, where the stream is refused: the charts. */
async function refreshHistory() {
  clearTimeout(historyTimer)
  try {
    const r = await operatorFetch(`/api/history?window=${windowName}`, 'The charts', { ask: false })
    if (r.ok) renderCharts(await r.json())
  } catch {
    // said by the board's own refresh
  }
  if (!document.hidden) historyTimer = setTimeout(refreshHistory, HISTORY_MS)
}

for (const button of /** @type {NodeListOf<HTMLButtonElement>} */ (document.querySelectorAll('button[data-window]'))) {
  button.addEventListener('click', () => {
    windowName = button.dataset.window
    for (const other of document.querySelectorAll('[data-window]')) other.setAttribute('aria-pressed', String(other === button))
    $('#charts-title').textContent = windowName === 'day' ? 'The last day' : 'The last hour'
    if (source) connect()
    else refreshHistory()
  })
}

/** Loads the board; waits longer after each failure (up to 30 s) and pauses while the tab is hidden. */
async function refresh() {
  clearTimeout(timer)
  try {
    const r = await operatorFetch('/api/board', 'The board', { ask: !askedForToken })
    if (r.status === 401) askedForToken = true
    if (!r.ok)
      throw new Error(
        r.status === 401 ? 'the board needs the operator token (PIXMILL_TOKEN); reload the page to give it' : (await r.text()).replace(/^Error:\s*/, ''),
      )
    render(await r.json())
    failures = 0
    updated(`refreshes every ${REFRESH_MS / 1000} seconds`)
  } catch (error) {
    failures++
    trouble(error.message)
  }
  if (!document.hidden && !source) timer = setTimeout(refresh, Math.min(REFRESH_MS * 2 ** failures, 30000))
}

// A hidden tab costs the frontend nothing: the stream closes, the polls stop; back in view, it picks up again.
let polling = false
document.addEventListener('visibilitychange', () => {
  if (document.hidden) {
    polling = !source && (timer !== undefined || historyTimer !== undefined)
    source?.close()
    clearTimeout(timer)
    clearTimeout(historyTimer)
    return
  }
  if (polling) {
    refresh()
    refreshHistory()
  } else connect()
})
connect()
