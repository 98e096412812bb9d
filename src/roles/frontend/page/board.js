// The status board: counts per state, the latest and the failed tasks, retry and delete, the live workers; refreshed every few seconds.
import { operatorFetch, operatorPost } from '/operator.js'

const REFRESH_MS = 3000
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
  for (const section of document.querySelectorAll('.board-figures')) section.hidden = Boolean(board.unavailable)
  $('#board-unavailable').hidden = !board.unavailable
  $('#board-unavailable').textContent = board.unavailable || ''
  if (board.unavailable) return
  for (const [state, n] of Object.entries(board.counts)) $(`#count-${state}`).textContent = String(n)
  fill($('#failed'), $('#failed-empty'), board.failed, (row, task) => {
    cell(row, String(task.id))
    cell(row, String(task.attempts))
    cell(row, time(task.updatedAt))
    cell(row, task.error || 'no reason recorded', 'reason-cell')
    const retry = actionButton('Try again', `Try task ${task.id} again`, (button) =>
      act(button, `/api/retry?id=${task.id}`, `Retrying task ${task.id}`, `Task ${task.id} is queued again.`),
    )
    row.insertCell().append(retry, ' ', deleteButton(task))
  })
  fill($('#latest'), $('#latest-empty'), board.latest, (row, task) => {
    cell(row, String(task.id))
    cell(row, NAMES[task.state] ?? task.stateName)
    cell(row, String(task.attempts))
    cell(row, time(task.createdAt))
    cell(row, time(task.updatedAt))
    const actions = row.insertCell()
    if (task.state >= 2) actions.append(deleteButton(task))
  })
}

/** Loads the board; waits longer after each failure (up to 30 s) and pauses while the tab is hidden. */
async function refresh() {
  clearTimeout(timer)
  try {
    const r = await operatorFetch('/api/board', 'The board', { ask: !askedForToken })
    if (r.status === 401) askedForToken = true
    if (!r.ok) throw new Error(r.status === 401 ? 'the board needs the operator token (PIXMILL_TOKEN); reload the page to give it' : (await r.text()).replace(/^Error:\s*/, ''))
    render(await r.json())
    failures = 0
    status.className = 'board-status'
    status.textContent = `Updated ${new Date().toLocaleTimeString()}; refreshes every ${REFRESH_MS / 1000} seconds.`
  } catch (error) {
    failures++
    status.className = 'board-status bad'
    status.textContent = `The figures cannot be loaded: ${error.message || 'the frontend cannot be reached'}. Trying again.`
  }
  if (!document.hidden) timer = setTimeout(refresh, Math.min(REFRESH_MS * 2 ** failures, 30000))
}

document.addEventListener('visibilitychange', () => (document.hidden ? clearTimeout(timer) : refresh()))
refresh()
