// Operators' calls from the page and the board (retry, delete, and the board itself with private results): internal when
// the system runs with PIXMILL_TOKEN, so the token is asked for once per tab, kept in sessionStorage, and forgotten when
// it is refused.

const KEY = 'pixmill-token'

/**
 * Sends `method` to `path` with the operator token when one is kept; on 401 asks for it (unless `ask` is false) and tries
 * once more. Resolves to the Response; rejects when the frontend cannot be reached.
 */
export async function operatorFetch(path, what, { method = 'GET', ask = true } = {}) {
  const send = () => {
    const token = sessionStorage.getItem(KEY)
    return fetch(path, { method, headers: token ? { authorization: `Bearer ${token}` } : {} })
  }
  let r = await send()
  if (r.status === 401 && ask) {
    const token = window.prompt(`${what} needs the operator token (PIXMILL_TOKEN):`)
    if (!token) return r
    sessionStorage.setItem(KEY, token)
    r = await send()
  }
  if (r.status === 401) sessionStorage.removeItem(KEY)
  return r
}

/** POSTs `path` as an operator. Resolves to `{ ok, message }`. */
export async function operatorPost(path, what) {
  try {
    const r = await operatorFetch(path, what, { method: 'POST' })
    const text = (await r.text()).replace(/^Error:\s*/, '')
    return {
      ok: r.ok,
      message: r.ok ? '' : r.status === 401 && !sessionStorage.getItem(KEY) ? 'no operator token was given' : text || `the server answered ${r.status}`,
    }
  } catch {
    return { ok: false, message: 'the frontend cannot be reached' }
  }
}
