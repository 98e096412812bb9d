// The upload page: drag and drop or pick PNGs, check them here, upload with progress, follow each task live.
import { createLiveStatus } from '/live.js'
import { operatorPost } from '/operator.js'

const FIELD = 'uploadfile'
const PNG_SIGNATURE = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]
const PARALLEL_UPLOADS = 3
const LABELS = {
  queued: 'Queued',
  uploading: 'Uploading',
  rejected: 'Not accepted',
  cancelled: 'Cancelled',
  0: 'Waiting',
  1: 'Processing',
  2: 'Finished',
  3: 'Failed',
  pending: 'Not finished',
  unknown: 'Unknown',
}
const MESSAGES = { 0: 'Waiting for a worker.', 1: 'A worker is swapping the colours now.', 2: 'Done. Compare the two and download the result.' }

const $ = (selector, root = document) => root.querySelector(selector)
const form = $('#upload-form')
const input = $('#uploadfile')
const drop = $('#drop')
const list = $('#tasks')
const formMessage = $('#form-message')
const announcer = $('#announcer')
const connection = $('#connection')
let maxBytes = 50 * 1024 * 1024
const cards = new Map() // task id -> card (which keeps the task's key, when its result is private)
const waiting = [] // uploads not started yet
let active = 0

document.documentElement.classList.add('enhanced')
input.multiple = true
$('.drop-title').textContent = 'Choose PNG files'

function formatBytes(n) {
  const [size, unit] = n >= 1048576 ? [n / 1048576, 'MiB'] : n >= 1024 ? [n / 1024, 'KiB'] : [n, 'bytes']
  return `${Number(size.toFixed(1))} ${unit}`
}

function announce(text) {
  // Each message is a new line, so that two close together are both read; only the last few are kept.
  const line = document.createElement('p')
  line.textContent = text
  announcer.append(line)
  while (announcer.children.length > 5) announcer.firstElementChild.remove()
}

fetch('/api/config')
  .then((r) => (r.ok ? r.json() : Promise.reject(new Error(String(r.status)))))
  .then((config) => {
    maxBytes = config.maxUploadBytes
    $('#limit').textContent = formatBytes(maxBytes)
  })
  .catch(() => {}) // the server checks the limit anyway

/** One file's card in the list, with what it shows in each state. */
function createCard(file) {
  const node = $('#task-template').content.firstElementChild.cloneNode(true)
  const card = { file, node, id: undefined, key: undefined, xhr: undefined, url: URL.createObjectURL(file) }
  $('.task-name', node).textContent = file.name
  $('.task-size', node).textContent = formatBytes(file.size)
  $('.task-progress', node).setAttribute('aria-label', `Upload of ${file.name}`)
  const original = $('.original', node)
  original.src = card.url
  original.alt = `Your original image ${file.name}`
  original.addEventListener('load', () => original.classList.toggle('pixelated', original.naturalWidth < 200))
  $('.cancel', node).addEventListener('click', () => cancel(card))
  $('.remove', node).addEventListener('click', () => removeAsked(card))
  list.prepend(node)
  $('#tasks-section').hidden = false
  return card
}

function show(card, state, message) {
  const node = card.node
  node.dataset.state = String(state)
  $('.badge', node).textContent = LABELS[state] ?? String(state)
  $('.task-message', node).textContent = message ?? ''
  $('.task-progress', node).hidden = state !== 'uploading' && state !== 'queued'
  $('.cancel', node).hidden = state !== 'uploading' && state !== 'queued'
}

function cancel(card) {
  if (card.xhr) return card.xhr.abort()
  const at = waiting.indexOf(card)
  if (at >= 0) waiting.splice(at, 1)
  show(card, 'cancelled', 'The upload was cancelled.')
}

/**
 * "Remove from list": a finished or failed task can also be deleted on the server, with both its images, if the
 * person says so; otherwise (or for any other card) it only leaves this list.
 */
async function removeAsked(card) {
  const state = card.node.dataset.state
  if (
    card.id !== undefined &&
    (state === '2' || state === '3') &&
    window.confirm(`Also delete ${card.file.name} (task ${card.id}) and its result from the server? Cancel only removes it from this list.`)
  ) {
    const { ok, message } = await operatorPost(`/api/delete?id=${card.id}`, `Deleting ${card.file.name}`)
    if (!ok) {
      $('.task-message', card.node).textContent = `It could not be deleted on the server: ${message}.`
      return
    }
    announce(`${card.file.name}: deleted on the server.`)
  }
  removeCard(card)
}

function removeCard(card) {
  card.xhr?.abort()
  const at = waiting.indexOf(card)
  if (at >= 0) waiting.splice(at, 1)
  URL.revokeObjectURL(card.url)
  card.node.remove()
  if (card.id !== undefined) cards.delete(card.id)
  if (!list.children.length) $('#tasks-section').hidden = true
  watchChanged()
}

/** Checks size and signature here, so that a wrong file is refused before a byte is sent. */
async function problemOf(file) {
  if (file.size === 0) return 'The file is empty.'
  if (file.size > maxBytes) return `The file is too large (${formatBytes(file.size)}); the limit is ${formatBytes(maxBytes)}.`
  const head = new Uint8Array(await file.slice(0, 8).arrayBuffer())
  if (!PNG_SIGNATURE.every((byte, i) => head[i] === byte)) return 'This is not a PNG image. Only PNG files can be processed.'
  return undefined
}

async function addFiles(files) {
  formMessage.textContent = ''
  for (const file of files) {
    const card = createCard(file)
    const problem = await problemOf(file)
    if (problem) {
      show(card, 'rejected', problem)
      announce(`${file.name}: not accepted. ${problem}`)
      continue
    }
    show(card, 'queued', 'Waiting for the uploads before it to finish.')
    waiting.push(card)
  }
  pump()
}

function pump() {
  while (active < PARALLEL_UPLOADS && waiting.length) upload(waiting.shift())
}

function upload(card) {
  active++
  const xhr = new XMLHttpRequest()
  card.xhr = xhr
  const progress = $('.task-progress', card.node)
  show(card, 'uploading', 'Uploading…')
  xhr.upload.addEventListener('progress', (e) => {
    if (!e.lengthComputable) return
    progress.value = Math.round((e.loaded / e.total) * 100)
    $('.badge', card.node).textContent = `Uploading ${progress.value}%`
  })
  xhr.addEventListener('loadend', () => {
    active--
    card.xhr = undefined
    const text = xhr.responseText.trim()
    if (xhr.status === 200 && /^\d+$/.test(text)) {
      card.id = Number(text)
      // With private results the server answers the task's key: the only way to see the result, so kept with the card.
      card.key = xhr.getResponseHeader('X-Task-Key') || undefined
      cards.set(card.id, card)
      $('.task-name', card.node).textContent = `${card.file.name} · task ${card.id}`
      show(card, 0, MESSAGES[0])
      announce(`${card.file.name} uploaded; waiting to be processed.`)
      watchChanged()
    } else if (card.cancelled) show(card, 'cancelled', 'The upload was cancelled.')
    else {
      const reason =
        xhr.status === 0 ? 'The upload failed: the server could not be reached.' : text.replace(/^Error:\s*/, '') || `The server answered ${xhr.status}.`
      show(card, 'rejected', reason)
      announce(`${card.file.name}: not accepted. ${reason}`)
    }
    pump()
  })
  xhr.addEventListener('abort', () => (card.cancelled = true))
  const data = new FormData()
  data.append(FIELD, card.file, card.file.name)
  xhr.open('POST', '/submitTask')
  xhr.send(data)
}

/** The finished image of `card`'s task, with its key when it has one. */
function resultUrl(card) {
  return `/getImage?id=${card.id}${card.key ? `&key=${encodeURIComponent(card.key)}` : ''}`
}

/** Shows a task's state as the server tells it. */
function update(task) {
  const card = cards.get(task.id)
  // A master of the original protocol tells only whether a task is finished: not yet may be waiting or in progress.
  const state = task.readinessOnly && task.state === 0 ? 'pending' : task.state
  if (!card || card.node.dataset.state === String(state)) return
  const reason =
    state === 'pending'
      ? 'Queued or being processed; this server tells only when the image is ready.'
      : task.state === 3
        ? `The image could not be processed: ${task.error || 'no reason given'}.`
        : MESSAGES[task.state]
  show(card, state, reason)
  if (task.state === 2) {
    const processed = $('.processed', card.node)
    processed.src = resultUrl(card)
    processed.alt = `${card.file.name} with red and green swapped`
    processed.hidden = false
    processed.addEventListener('load', () => processed.classList.toggle('pixelated', processed.naturalWidth < 200))
    $('.placeholder', card.node).hidden = true
    const link = $('.download', card.node)
    link.href = resultUrl(card)
    link.download = `${card.file.name.replace(/\.png$/i, '')}-swapped.png`
    link.textContent = `Download ${link.download}`
    link.hidden = false
  }
  if (task.state >= 2) announce(`${card.file.name}: ${LABELS[task.state].toLowerCase()}.`)
  if (task.state === 2) watchChanged()
}

// Live states of every task not yet finished.
const live = createLiveStatus({
  onStatus: update,
  onUnknown(id) {
    const card = cards.get(id)
    if (card) show(card, 'unknown', 'The server no longer knows this task.')
  },
  onConnection: (text) => (connection.textContent = text),
})

function watchChanged() {
  live.watch([...cards.values()].filter((c) => !['2', 'unknown'].includes(c.node.dataset.state)).map((c) => ({ id: c.id, key: c.key })))
}

// Picking, dropping, and the plain form's button (kept for keyboards and for browsers without JavaScript).
input.addEventListener('change', () => {
  if (input.files.length) addFiles([...input.files])
  input.value = ''
})
form.addEventListener('submit', (e) => {
  e.preventDefault()
  if (input.files.length) addFiles([...input.files])
  else formMessage.textContent = 'Choose one or more PNG files first.'
})
for (const type of ['dragenter', 'dragover']) {
  drop.addEventListener(type, (e) => {
    e.preventDefault()
    drop.classList.add('dragging')
  })
}
for (const type of ['dragleave', 'drop']) drop.addEventListener(type, () => drop.classList.remove('dragging'))
drop.addEventListener('drop', (e) => {
  e.preventDefault()
  const files = [...(e.dataTransfer?.files ?? [])]
  if (files.length) addFiles(files)
  else formMessage.textContent = 'Nothing to upload was dropped; drop PNG files.'
})
// A file dropped next to the drop zone would make the browser leave the page.
window.addEventListener('dragover', (e) => e.preventDefault())
window.addEventListener('drop', (e) => e.preventDefault())
$('#clear-done').addEventListener('click', () => {
  for (const card of [...cards.values()]) if (card.node.dataset.state === '2') removeCard(card)
  for (const node of list.querySelectorAll('[data-state="rejected"], [data-state="cancelled"]')) node.querySelector('.remove').click()
})
