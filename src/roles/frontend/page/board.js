// The status board: counts per state, the latest and the failed tasks, and a retry button; refreshed every few seconds.
'use strict'

const REFRESH_MS = 3000
const NAMES = { 0: 'Waiting', 1: 'Processing', 2: 'Finished', 3: 'Failed' }
const $ = (selector) => document.querySelector(selector)
const status = $('#board-status')
let timer
let failures = 0

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

/** Retrying is internal when the system runs with PIXMILL_TOKEN: ask the operator for it once per tab. */
async function postRetry(id) {
  const send = () => {
    const token = sessionStorage.getItem('pixmill-token')
    return fetch(`/api/retry?id=${id}`, { method: 'POST', headers: token ? { authorization: `Bearer ${token}` } : {} })
  }
  let r = await send()
  if (r.status === 401) {
    const token = window.prompt('Retrying needs the operator token (PIXMILL_TOKEN):')
    if (!token) return r
    sessionStorage.setItem('pixmill-token', token)
    r = await send()
    if (r.status === 401) sessionStorage.removeItem('pixmill-token')
  }
  return r
}

async function retry(id, button) {
  button.disabled = true
  try {
    const r = await postRetry(id)
    const text = (await r.text()).replace(/^Error:\s*/, '')
    $('#retry-message').textContent = r.ok ? `Task ${id} is queued again.` : `Task ${id} could not be retried: ${text}`
  } catch {
    $('#retry-message').textContent = `Task ${id} could not be retried: the frontend cannot be reached.`
  }
  refresh()
}

function render(board) {
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
    const button = document.createElement('button')
    button.type = 'button'
    button.className = 'button quiet'
    button.textContent = 'Try again'
    button.setAttribute('aria-label', `Try task ${task.id} again`)
    button.addEventListener('click', () => retry(task.id, button))
    row.insertCell().append(button)
  })
  fill($('#latest'), $('#latest-empty'), board.latest, (row, task) => {
    cell(row, String(task.id))
    cell(row, NAMES[task.state] ?? task.stateName)
    cell(row, String(task.attempts))
    cell(row, time(task.createdAt))
    cell(row, time(task.updatedAt))
  })
}

/** Loads the board; waits longer after each failure (up to 30 s) and pauses while the tab is hidden. */
async function refresh() {
  clearTimeout(timer)
  try {
    const r = await fetch('/api/board')
    if (!r.ok) throw new Error((await r.text()).replace(/^Error:\s*/, ''))
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
