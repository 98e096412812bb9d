// Live task states for the page: one server-sent event stream for every watched task, polling with back-off where streams fail.

/** Most tasks one stream watches (the server's limit too). */
const MAX_WATCHED = 100

/**
 * `onStatus(task)` gets each state as the server tells it, `onUnknown(id)` an id the server does not know, and
 * `onConnection(text)` a line about the connection ('' when all is well).
 */
export function createLiveStatus({ onStatus, onUnknown, onConnection }) {
  let tasks = [] // { id, key }: the key of a private result, when the upload answered one
  let source
  let streamFor = ''
  let reopenTimer
  let pollTimer
  let pollDelay = 1000
  const seen = new Map() // id -> last state, so that polling knows when something changed

  function open() {
    const ids = tasks.map((task) => task.id).join(',')
    // Keys follow the ids one for one; left out altogether when no task has one (a server without private results).
    const keys = tasks.some((task) => task.key) ? `&keys=${tasks.map((task) => encodeURIComponent(task.key ?? '')).join(',')}` : ''
    const wanted = ids ? ids + keys : ''
    if (wanted === streamFor && (source || pollTimer)) return
    source?.close()
    source = undefined
    clearTimeout(pollTimer)
    pollTimer = undefined
    streamFor = wanted
    if (!wanted) return
    if (!('EventSource' in window)) return poll()
    const stream = new EventSource(`/api/events?ids=${wanted}`)
    source = stream
    stream.addEventListener('status', (e) => onStatus(JSON.parse(e.data)))
    stream.addEventListener('unknown', (e) => onUnknown(JSON.parse(e.data).id))
    stream.addEventListener('trouble', (e) => onConnection(JSON.parse(e.data).message))
    stream.addEventListener('recovered', () => onConnection(''))
    stream.addEventListener('open', () => onConnection(''))
    stream.addEventListener('error', () => {
      if (source !== stream) return
      // The browser reconnects by itself; a stream refused for good falls back to polling.
      if (stream.readyState === EventSource.CLOSED) {
        source = undefined
        poll()
      } else onConnection('Connection lost; reconnecting…')
    })
  }

  async function poll() {
    clearTimeout(pollTimer)
    pollTimer = undefined
    let changed = false
    for (const { id, key } of tasks) {
      try {
        const r = await fetch(`/api/status?id=${id}${key ? `&key=${encodeURIComponent(key)}` : ''}`)
        if (r.status === 404) onUnknown(id)
        if (!r.ok) continue
        const task = await r.json()
        changed ||= seen.get(id) !== task.state
        seen.set(id, task.state)
        onStatus(task)
        onConnection('')
      } catch {
        onConnection('The server cannot be reached; trying again.')
      }
    }
    if (source || !tasks.length) return
    pollDelay = changed ? 1000 : Math.min(pollDelay * 1.5, 10000)
    pollTimer = setTimeout(poll, pollDelay)
  }

  return {
    /** Watches exactly these tasks (`{ id, key }`) from now on; several changes close together share one reconnect. */
    watch(next) {
      tasks = next.slice(-MAX_WATCHED)
      clearTimeout(reopenTimer)
      reopenTimer = setTimeout(open, 100)
    },
  }
}
